//! One parallel map with one progress bar, for every command that runs many simulations. Results
//! come back in input order whatever the thread count, so outputs do not depend on timing.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of `len` steps counting `what`, drawn on a terminal only: hidden when stderr is
/// not a terminal or `CI` is set to anything but `false`/`0`.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what}, {{elapsed}} elapsed, eta {{eta}}");
    b.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Worker threads: `threads`, or every core.
pub fn threads(threads: Option<usize>) -> usize {
    threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// `f` over `items` on `threads` workers, one `bar` step per item; results in input order. The first
/// error (in input order) is returned after every item has run.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    bar: &ProgressBar,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Result<R>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut g) = out.lock() {
                        g[i] = Some(r);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    out.into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?
        .into_iter()
        .map(|r| r.ok_or_else(|| anyhow!("a run did not finish"))?)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_errors_do_not_depend_on_threads() {
        let xs: Vec<u64> = (0..50).collect();
        let bar = ProgressBar::hidden();
        for t in [1, 2, 7] {
            let ys = par_map(&xs, t, &bar, |x| Ok(x * 2)).unwrap();
            assert_eq!(ys, xs.iter().map(|x| x * 2).collect::<Vec<_>>());
            let e = par_map(&xs, t, &bar, |x| {
                if *x % 10 == 3 {
                    Err(anyhow!("item {x}"))
                } else {
                    Ok(*x)
                }
            })
            .unwrap_err();
            assert_eq!(e.to_string(), "item 3");
        }
        assert!(
            par_map(&[] as &[u64], 2, &bar, |x| Ok(*x))
                .unwrap()
                .is_empty()
        );
    }
}
