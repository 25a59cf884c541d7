//! Synthetic shard results for timing `kis-loadgen merge` (issue 19: 100 shards' 10-minute logs
//! in under 2 s): `cargo run --release -p kis-loadgen --example merge_fixture -- DIR SHARDS
//! SECONDS RATE` writes SHARDS JSON reports and HDR interval logs (SECONDS 1 s intervals, each
//! shard RATE/SHARDS latencies per second) into DIR ([`kis_loadgen::merge::fixture`]); then
//! `/usr/bin/time -v target/release/kis-loadgen merge DIR --quiet --json DIR.merged.json`
//! (`loadgen/bench/merge.sh` does both and keeps the figures).

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(a.first().map_or("merge-fixture", String::as_str)).to_path_buf();
    let shards: u32 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let secs: u64 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(600);
    let rate: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000.0);
    kis_loadgen::merge::fixture::write_shards(&dir, shards, secs, rate)?;
    println!("{shards} shards x {secs} s in {}", dir.display());
    Ok(())
}
