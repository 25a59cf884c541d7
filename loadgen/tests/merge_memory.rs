//! `kis-loadgen merge` holds one interval's sum at a time: the number of latency histograms it
//! keeps alive does not grow with the number of intervals (issue 19). A test binary of its own,
//! so that no other test's generator threads make histograms while it counts.

use std::path::{Path, PathBuf};

use kis_loadgen::config::Outputs;
use kis_loadgen::record::{hists_peak, hists_peak_reset};

/// Merges 3 synthetic shards of `secs` 1 s intervals (writing the merged interval log too);
/// returns the most histogram sets alive at once during the merge, and the intervals merged.
fn merge_peak(dir: &Path, secs: u64, threads: usize) -> (usize, u64) {
    if !dir.exists() {
        kis_loadgen::merge::fixture::write_shards(dir, 3, secs, 300.0).unwrap();
    }
    let files = kis_loadgen::merge::report_files(&[dir.to_path_buf()]).unwrap();
    let outputs = Outputs {
        hdr_log: Some(dir.with_extension("merged.hlog")),
        quiet: true,
        ..Outputs::default()
    };
    hists_peak_reset();
    let m = kis_loadgen::merge::merge_with(&files, outputs, false, threads).unwrap();
    let peak = hists_peak();
    assert_eq!(m.report.totals.requests, 300 * secs);
    assert_eq!(m.total.corrected.len(), 300 * secs);
    (peak, m.intervals)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kis-loadgen-mem-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn merge_memory_does_not_grow_with_the_number_of_intervals() {
    // All on one thread: exactly the same number whatever the length.
    let (short, n_short) = merge_peak(&tempdir("short"), 5, 1);
    let (long, n_long) = merge_peak(&tempdir("long"), 120, 1);
    assert_eq!((n_short, n_long), (5, 120));
    assert_eq!(
        short, long,
        "one thread: {short} for 5 intervals, {long} for 120"
    );
    // Three worker threads (one per shard): their partial sums are plain counts arrays, a
    // bounded number in flight (bounded channels); the histogram sets are the caller's own, so
    // the same number again. Holding every interval's sum (as merge once did) would keep 120
    // sets alive here.
    let (short, _) = merge_peak(&tempdir("short3"), 5, 3);
    let (long, _) = merge_peak(&tempdir("long3"), 120, 3);
    assert_eq!(
        short, long,
        "three threads: {short} histogram sets for 5 intervals, {long} for 120"
    );
    assert!(long < 10, "{long} histogram sets alive at once");
}
