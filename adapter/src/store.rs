//! Replica targets in memory: (namespace, metric, labels) → value with an absolute expiry.
//!
//! Reads never invent a value: a selector matching several targets returns all of them (the HPA
//! sums the items of an external-metrics list), no match is `NotFound`, and a match of which any
//! member is past its TTL is `Stale` as a whole (a partial sum would read as fewer replicas).
//! Published targets can be saved to and restored from a state file so a restart answers the
//! same, or an error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::selector::Selector;

pub use crate::api::Source;

/// One stored target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub metric: String,
    /// Labels telling targets of one metric apart.
    pub labels: BTreeMap<String, String>,
    /// Replica target.
    pub value: f64,
    /// Unix seconds (fractional) when published.
    pub published_unix: f64,
    /// Unix seconds when it stops being served; `None` = never (file targets without TTL).
    pub expires_unix: Option<f64>,
    /// Origin.
    pub source: Source,
}

impl Target {
    /// Whether it may still be served at `now` (unix seconds).
    pub fn fresh_at(&self, now: f64) -> bool {
        self.expires_unix.is_none_or(|e| now < e)
    }
}

/// Why a read produced no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// Nothing published for this namespace/metric/selector.
    #[error(
        "no target published for metric {metric:?} in namespace {namespace:?} matching selector {selector:?}"
    )]
    NotFound {
        /// Namespace asked.
        namespace: String,
        /// Metric asked.
        metric: String,
        /// Selector asked.
        selector: String,
    },
    /// A match (the only one, or one of several) is past its TTL.
    #[error(
        "target {labels:?} of metric {metric:?} in namespace {namespace:?} expired {ago:.0}s ago; refusing to serve a stale value"
    )]
    Stale {
        /// Namespace asked.
        namespace: String,
        /// Metric asked.
        metric: String,
        /// Labels of the (first) stale target.
        labels: BTreeMap<String, String>,
        /// Seconds since expiry.
        ago: f64,
    },
}

/// namespace → metric → targets; nested so reads look up by `&str` without allocating.
type Map = HashMap<String, HashMap<String, Vec<Target>>>;

/// Thread-safe target store.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Map>,
}

/// Current unix time in fractional seconds.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Targets servable now.
    pub fresh: usize,
    /// Targets past their TTL.
    pub stale: usize,
}

/// On-disk state file.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    targets: Vec<Target>,
}

impl Store {
    /// Empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces the target with the same (namespace, metric, labels).
    pub fn upsert(&self, t: Target) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let v = g
            .entry(t.namespace.clone())
            .or_default()
            .entry(t.metric.clone())
            .or_default();
        match v.iter_mut().find(|x| x.labels == t.labels) {
            Some(slot) => *slot = t,
            None => v.push(t),
        }
    }

    /// Removes one target; true if it existed.
    pub fn remove(&self, namespace: &str, metric: &str, labels: &BTreeMap<String, String>) -> bool {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let Some(metrics) = g.get_mut(namespace) else {
            return false;
        };
        let Some(v) = metrics.get_mut(metric) else {
            return false;
        };
        let before = v.len();
        v.retain(|x| &x.labels != labels);
        let removed = v.len() != before;
        if v.is_empty() {
            metrics.remove(metric);
        }
        if metrics.is_empty() {
            g.remove(namespace);
        }
        removed
    }

    /// Replaces every file-sourced target with `targets` (published ones with equal keys win).
    pub fn replace_file_targets(&self, targets: Vec<Target>) {
        self.replace_source_targets(Source::File, targets);
    }

    /// Replaces every target from `source` with `targets` in one step (readers see the old set or
    /// the new one, never a mix); targets of other sources with equal keys win, so a value
    /// published through the API is not overwritten by a file or ConfigMap.
    pub fn replace_source_targets(&self, source: Source, targets: Vec<Target>) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for metrics in g.values_mut() {
            for v in metrics.values_mut() {
                v.retain(|t| t.source != source);
            }
        }
        for t in targets {
            let v = g
                .entry(t.namespace.clone())
                .or_default()
                .entry(t.metric.clone())
                .or_default();
            if !v.iter().any(|x| x.labels == t.labels) {
                v.push(t);
            }
        }
        for metrics in g.values_mut() {
            metrics.retain(|_, v| !v.is_empty());
        }
        g.retain(|_, m| !m.is_empty());
    }

    /// Every target matching `selector` for (namespace, metric), sorted by labels, if all of them
    /// are fresh at `now`: none is [`LookupError::NotFound`], and any stale member makes the whole
    /// read [`LookupError::Stale`].
    pub fn lookup(
        &self,
        namespace: &str,
        metric: &str,
        selector: &Selector,
        now: f64,
    ) -> Result<Vec<Target>, LookupError> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let list = g
            .get(namespace)
            .and_then(|m| m.get(metric))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut found: Vec<&Target> = list
            .iter()
            .filter(|t| selector.matches(&t.labels))
            .collect();
        if found.is_empty() {
            return Err(LookupError::NotFound {
                namespace: namespace.into(),
                metric: metric.into(),
                selector: selector.to_string(),
            });
        }
        found.sort_by(|a, b| a.labels.cmp(&b.labels));
        if let Some(stale) = found.iter().find(|t| !t.fresh_at(now)) {
            return Err(LookupError::Stale {
                namespace: namespace.into(),
                metric: metric.into(),
                labels: stale.labels.clone(),
                ago: now - stale.expires_unix.unwrap_or(now),
            });
        }
        Ok(found.into_iter().cloned().collect())
    }

    /// Every target, sorted by namespace, metric, labels.
    pub fn all(&self) -> Vec<Target> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Target> = g
            .values()
            .flat_map(|m| m.values().flatten())
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            (&a.namespace, &a.metric, &a.labels).cmp(&(&b.namespace, &b.metric, &b.labels))
        });
        v
    }

    /// Fresh/stale counts at `now`.
    pub fn counts(&self, now: f64) -> Counts {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut c = Counts::default();
        for t in g.values().flat_map(|m| m.values().flatten()) {
            if t.fresh_at(now) {
                c.fresh += 1;
            } else {
                c.stale += 1;
            }
        }
        c
    }

    /// Writes published targets to `path` atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let targets: Vec<Target> = self
            .all()
            .into_iter()
            .filter(|t| t.source == Source::Published)
            .collect();
        let body =
            serde_json::to_vec_pretty(&StateFile { targets }).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, path)
    }

    /// Restores published targets saved by [`Store::save`]; a missing file is an empty state.
    pub fn load_state(&self, path: &Path) -> Result<usize, String> {
        let body = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
        };
        let state: StateFile = serde_json::from_slice(&body)
            .map_err(|e| format!("bad state file {}: {e}", path.display()))?;
        let n = state.targets.len();
        for t in state.targets {
            self.upsert(Target {
                source: Source::Published,
                ..t
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(labels: &[(&str, &str)], value: f64, expires: Option<f64>) -> Target {
        Target {
            namespace: "prod".into(),
            metric: "m".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            published_unix: 100.0,
            expires_unix: expires,
            source: Source::Published,
        }
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn lookup_by_labels() {
        let s = Store::new();
        s.upsert(t(&[("target", "gpu")], 3.0, Some(200.0)));
        s.upsert(t(&[("target", "cpu")], 5.0, Some(200.0)));
        assert_eq!(
            s.lookup("prod", "m", &sel("target=gpu"), 150.0).unwrap()[0].value,
            3.0
        );
        assert_eq!(
            s.lookup("prod", "m", &sel("target in (cpu)"), 150.0)
                .unwrap()[0]
                .value,
            5.0
        );
        // A selector matching both returns both, sorted by labels (the HPA sums them).
        let both = s.lookup("prod", "m", &sel(""), 150.0).unwrap();
        assert_eq!(both.iter().map(|t| t.value).collect::<Vec<_>>(), [5.0, 3.0]);
        // One stale member makes the whole read stale, never a partial sum.
        s.upsert(t(&[("target", "old")], 2.0, Some(100.0)));
        match s.lookup("prod", "m", &sel(""), 150.0) {
            Err(LookupError::Stale { labels, .. }) => assert_eq!(labels["target"], "old"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.lookup("prod", "m", &sel("target!=old"), 150.0)
                .unwrap()
                .len(),
            2
        );
        assert!(matches!(
            s.lookup("dev", "m", &sel(""), 150.0),
            Err(LookupError::NotFound { .. })
        ));
        assert!(matches!(
            s.lookup("prod", "m", &sel("target=x"), 150.0),
            Err(LookupError::NotFound { .. })
        ));
    }

    #[test]
    fn stale_is_an_error_never_zero() {
        let s = Store::new();
        s.upsert(t(&[], 4.0, Some(200.0)));
        assert!(s.lookup("prod", "m", &sel(""), 199.9).is_ok());
        match s.lookup("prod", "m", &sel(""), 230.0) {
            Err(LookupError::Stale { ago, .. }) => assert!((ago - 30.0).abs() < 1e-9),
            other => panic!("expected stale, got {other:?}"),
        }
        assert_eq!(s.counts(230.0), Counts { fresh: 0, stale: 1 });
    }

    #[test]
    fn upsert_replaces_and_remove_deletes() {
        let s = Store::new();
        s.upsert(t(&[("a", "1")], 1.0, None));
        s.upsert(t(&[("a", "1")], 2.0, None));
        assert_eq!(s.all().len(), 1);
        assert_eq!(s.all()[0].value, 2.0);
        assert!(s.remove("prod", "m", &t(&[("a", "1")], 0.0, None).labels));
        assert!(!s.remove("prod", "m", &t(&[("a", "1")], 0.0, None).labels));
        assert!(s.all().is_empty());
    }

    #[test]
    fn file_targets_do_not_override_published() {
        let s = Store::new();
        s.upsert(t(&[("a", "1")], 9.0, None));
        let mut f = t(&[("a", "1")], 1.0, None);
        f.source = Source::File;
        let mut g = t(&[("a", "2")], 2.0, None);
        g.source = Source::File;
        s.replace_file_targets(vec![f, g.clone()]);
        assert_eq!(s.all().len(), 2);
        assert_eq!(
            s.lookup("prod", "m", &sel("a=1"), 0.0).unwrap()[0].value,
            9.0
        );
        s.replace_file_targets(vec![]);
        assert_eq!(s.all().len(), 1);
    }

    #[test]
    fn state_round_trip_keeps_absolute_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let s = Store::new();
        s.upsert(t(&[("a", "1")], 7.0, Some(300.0)));
        s.save(&path).unwrap();
        let r = Store::new();
        assert_eq!(r.load_state(&path).unwrap(), 1);
        assert_eq!(
            r.lookup("prod", "m", &sel("a=1"), 299.0).unwrap()[0].value,
            7.0
        );
        assert!(matches!(
            r.lookup("prod", "m", &sel("a=1"), 301.0),
            Err(LookupError::Stale { .. })
        ));
        assert_eq!(
            Store::new().load_state(&dir.path().join("none")).unwrap(),
            0
        );
    }
}
