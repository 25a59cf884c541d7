//! Exact shards: `--shard K/N` makes this process send exactly its share of the one seeded
//! global schedule, so N processes (an Indexed Job's pods) together send the single-process
//! schedule, with no coordinator.
//!
//! A shard is one more level of stride: arrival `i` of the global schedule belongs to shard
//! `i mod N`, and within the shard to generator thread `(i div N) mod threads`; closed-loop user
//! `u` likewise belongs to shard `u mod N`. k6's execution segments (rational `(from, to]`
//! fractions) allow shards of unequal size; shards here are identical pods of one Job, so the
//! equal split is all that is needed, and the stride keeps every shard's arrivals spread over
//! the whole run (each shard sees the same shape at 1/N of the rate) rather than one shard
//! taking a contiguous stretch. Every shard walks the global iterator and skips the other
//! shards' arrivals, so each derives the same schedule from the same seed exactly (no floating
//! rescaling of the rate that could round differently).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Environment variable Kubernetes sets in an Indexed Job's pods.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Environment variable for the number of shards (the Job's `completions`), like `--shards`.
pub const COUNT_ENV: &str = "KIS_LOADGEN_SHARDS";
/// Most shards a run may be split into.
pub const MAX_SHARDS: u32 = 10_000;

/// Shard `index` of `count` (`index < count`); `0/1` is a whole, unsharded run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::WHOLE
    }
}

impl Shard {
    /// The whole schedule: one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        if count == 0 || count > MAX_SHARDS {
            return Err(Error::Usage(format!(
                "shard count must be in 1..={MAX_SHARDS}, got {count}"
            )));
        }
        if index >= count {
            return Err(Error::Usage(format!(
                "shard index {index} is not below the shard count {count} (shards are 0..{count})"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether this is the whole schedule.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The shard from the flags and the environment: `--shard K/N` wins; otherwise
    /// `JOB_COMPLETION_INDEX` with `--shards N` (or `KIS_LOADGEN_SHARDS`); otherwise the whole.
    /// `env` looks a variable up (`std::env::var` in the binary, a map in tests).
    pub fn resolve(
        shard: Option<&str>,
        shards: Option<u32>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard> {
        if let Some(s) = shard {
            let parsed: Shard = s.parse()?;
            if let Some(n) = shards
                && n != parsed.count
            {
                return Err(Error::Usage(format!(
                    "--shard {s} and --shards {n} disagree on the shard count"
                )));
            }
            return Ok(parsed);
        }
        let count = match shards {
            Some(n) => Some(n),
            None => match env(COUNT_ENV) {
                Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                    Error::Usage(format!("{COUNT_ENV}={v:?} is not a shard count"))
                })?),
                None => None,
            },
        };
        let Some(count) = count else {
            return Ok(Shard::WHOLE);
        };
        let index = match env(INDEX_ENV) {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| Error::Usage(format!("{INDEX_ENV}={v:?} is not a shard index")))?,
            None if count == 1 => 0,
            None => {
                return Err(Error::Usage(format!(
                    "{count} shards but no shard index: give --shard K/{count} or set {INDEX_ENV}"
                )));
            }
        };
        Shard::new(index, count)
    }

    /// Where generator thread `thread` of `threads` starts in the global schedule and how far
    /// it strides: its arrivals are `offset`, `offset + stride`, ….
    pub fn thread_slice(&self, thread: usize, threads: usize) -> (usize, usize) {
        let n = self.count as usize;
        (self.index as usize + n * thread, n * threads.max(1))
    }

    /// The global numbers of the closed-loop users generator thread `thread` of `threads` runs,
    /// out of `users` in the whole run.
    pub fn users_of(
        &self,
        thread: usize,
        threads: usize,
        users: u32,
    ) -> impl Iterator<Item = usize> + use<> {
        let (offset, stride) = self.thread_slice(thread, threads);
        (offset..users as usize).step_by(stride)
    }

    /// How many of `total` items (arrivals, users) numbered from 0 fall to this shard.
    pub fn share_of(&self, total: u64) -> u64 {
        let (k, n) = (u64::from(self.index), u64::from(self.count));
        if total <= k {
            0
        } else {
            (total - k).div_ceil(n)
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::Usage(format!("--shard {s:?}: expected K/N, e.g. 0/4"));
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse::<u32>().map_err(|_| bad())?;
        let n = n.trim().parse::<u32>().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k: &str| v.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn shards_parse_and_check() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::new(3, 8).unwrap().to_string(), "3/8");
    }

    #[test]
    fn the_index_comes_from_an_indexed_job() {
        let e = env(&[(INDEX_ENV, "3")]);
        assert_eq!(
            Shard::resolve(None, Some(4), &e).unwrap(),
            Shard::new(3, 4).unwrap()
        );
        let e2 = env(&[(INDEX_ENV, "1"), (COUNT_ENV, "2")]);
        assert_eq!(
            Shard::resolve(None, None, &e2).unwrap(),
            Shard::new(1, 2).unwrap()
        );
        // No count: the whole schedule, even inside a Job.
        assert_eq!(Shard::resolve(None, None, &e).unwrap(), Shard::WHOLE);
        // --shard wins over the environment; a disagreeing --shards is refused.
        assert_eq!(Shard::resolve(Some("0/4"), None, &e).unwrap().index, 0);
        assert!(Shard::resolve(Some("0/4"), Some(3), &e).is_err());
        // A count without an index, or an index out of range, is refused with a line.
        let msg = Shard::resolve(None, Some(4), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains(INDEX_ENV), "{msg}");
        assert!(Shard::resolve(None, Some(3), &e).is_err());
        assert!(Shard::resolve(None, Some(2), env(&[(INDEX_ENV, "x")])).is_err());
    }

    #[test]
    fn users_split_without_gaps_or_overlap() {
        for (n, threads, users) in [(3, 2, 10u32), (4, 1, 3), (1, 3, 7), (5, 4, 100)] {
            let mut all: Vec<usize> = (0..n)
                .flat_map(|k| {
                    let s = Shard::new(k, n).unwrap();
                    (0..threads).flat_map(move |t| s.users_of(t, threads, users))
                })
                .collect();
            let per: u64 = (0..n)
                .map(|k| Shard::new(k, n).unwrap().share_of(u64::from(users)))
                .sum();
            assert_eq!(per, u64::from(users));
            all.sort_unstable();
            assert_eq!(all, (0..users as usize).collect::<Vec<_>>());
        }
    }
}
