//! The emulated accelerator: a Triton model whose compute is a wait (a stand-in for a GPU, named
//! as such). A 2-core machine cannot give each CPU-bound Triton replica its own capacity; this
//! model sleeps, per batch, for an execution time drawn from a `kis-service-profile/v1`, with
//! Triton's dynamic batching and one model instance, so each replica serves like one device of
//! that profile while costing little host CPU.
//!
//! The profile's semantics (distributions, interpolation between batch sizes, extrapolation past
//! the last one) live in kis-sim only: [`LatencyTable::compile`] draws sorted samples per batch
//! size with kis-sim's own sampler, and the model (`scripts/triton/emulated/model.py`, written
//! into a repository by `scripts/triton/make_models.py --emulated`) reads its batch time off that
//! table at a uniform rank.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kis_sim::ServiceProfile;
use kis_sim::profile::ServiceModel;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The emulated GPU model (KIS-S MobileNetV4 GPU figures by default) the testbed's GPU Pods load.
pub const GPU_MODEL: &str = "emulated-gpu";
/// The emulated CPU replica (KIS-S CPU figures) for Pods that request no GPU.
pub const CPU_MODEL: &str = "emulated-cpu";
/// Schema tag of the latency table file.
pub const TABLE_SCHEMA: &str = "kis-emulated-latency/v1";

/// A profile compiled into sorted batch-time samples for batch sizes `1..=max_batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyTable {
    /// [`TABLE_SCHEMA`].
    pub schema: String,
    /// Triton model name.
    pub model: String,
    /// Where the profile came from (file or built-in name) and its description.
    pub profile: String,
    /// Triton's `max_batch_size`.
    pub max_batch: u32,
    /// Triton's `max_queue_delay_microseconds` for the dynamic batcher.
    pub queue_delay_us: u64,
    /// `samples[b - 1]`: sorted execution times in seconds of a batch of `b`.
    pub samples: Vec<Vec<f64>>,
}

/// Settings of the emulated model.
#[derive(Debug, Clone)]
pub struct EmulatedModel {
    /// Triton model name.
    pub name: String,
    /// The service profile.
    pub profile: ServiceProfile,
    /// Where it came from, for the table's record.
    pub source: String,
    /// Largest batch Triton forms.
    pub max_batch: u32,
    /// How long the dynamic batcher waits to fill a batch.
    pub queue_delay: Duration,
    /// Samples per batch size (the table's resolution).
    pub samples: usize,
}

impl Default for EmulatedModel {
    /// [`GPU_MODEL`] with the KIS-S MobileNetV4 GPU figures (kis-sim's built-in `kis-s-rtx3080`).
    fn default() -> Self {
        Self {
            name: GPU_MODEL.into(),
            profile: kis_sim::profiles::kis_s_gpu(),
            source: "built-in kis-s-rtx3080".into(),
            max_batch: 8,
            queue_delay: Duration::from_millis(2),
            samples: 1000,
        }
    }
}

impl EmulatedModel {
    /// [`CPU_MODEL`] with the KIS-S CPU figures (kis-sim's built-in `kis-s-cpu`).
    pub fn kis_s_cpu() -> Self {
        Self {
            name: CPU_MODEL.into(),
            profile: kis_sim::profiles::kis_s_cpu(),
            source: "built-in kis-s-cpu".into(),
            ..Self::default()
        }
    }

    /// The default settings with the profile read from `path` (validated).
    pub fn from_profile_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io(path.to_path_buf(), e))?;
        let profile: ServiceProfile = serde_json::from_str(&text)
            .map_err(|e| Error::Parse(path.display().to_string(), e.to_string()))?;
        profile
            .validate("profile")
            .map_err(|e| Error::Parse(path.display().to_string(), e.to_string()))?;
        Ok(Self {
            profile,
            source: path.display().to_string(),
            ..Self::default()
        })
    }

    /// Compiles the profile into a [`LatencyTable`] (deterministic for a given `seed`).
    pub fn table(&self, seed: u64) -> Result<LatencyTable, Error> {
        LatencyTable::compile(self, seed)
    }

    /// Adds this model to the repository `dir` (created), by running
    /// `scripts/triton/make_models.py --emulated` with the Triton venv's Python from
    /// `triton_home`. `workspace` is the repository root. Returns `dir`.
    pub fn write_repository(
        &self,
        dir: &Path,
        triton_home: &Path,
        workspace: &Path,
    ) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let table = self.table(0x006b_6973_5f65_6d75)?;
        let table_path = dir.join(format!("{}.latency_table.json", self.name));
        let text = serde_json::to_string(&table)
            .map_err(|e| Error::Parse("latency table".into(), e.to_string()))?;
        std::fs::write(&table_path, text).map_err(|e| Error::Io(table_path.clone(), e))?;
        let python = triton_home.join("venv/bin/python");
        let script = workspace.join("scripts/triton/make_models.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg("--emulated")
            .arg(&table_path)
            .arg(dir)
            .output()
            .map_err(|e| Error::Spawn(python.display().to_string(), e))?;
        if !out.status.success() {
            return Err(Error::Command {
                cmd: format!("{} --emulated", script.display()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let _ = std::fs::remove_file(&table_path);
        Ok(dir.to_path_buf())
    }
}

impl LatencyTable {
    /// Draws `model.samples` batch times per size with kis-sim's [`ServiceModel`] and sorts them.
    pub fn compile(model: &EmulatedModel, seed: u64) -> Result<Self, Error> {
        if model.max_batch == 0 || model.samples < 2 {
            return Err(Error::Config(format!(
                "the emulated model needs max_batch >= 1 and >= 2 samples (got {} and {})",
                model.max_batch, model.samples
            )));
        }
        let service = ServiceModel::new(&model.profile, model.max_batch);
        let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(seed);
        let samples = (1..=model.max_batch as usize)
            .map(|size| {
                let mut row: Vec<f64> = (0..model.samples)
                    .map(|_| service.batch_time(size, &mut rng))
                    // Microseconds are plenty for a sleep and keep the file small.
                    .map(|t| (t.max(0.0) * 1e6).round() / 1e6)
                    .collect();
                row.sort_by(f64::total_cmp);
                row
            })
            .collect();
        let description = if model.profile.description.is_empty() {
            String::new()
        } else {
            format!(": {}", model.profile.description)
        };
        Ok(Self {
            schema: TABLE_SCHEMA.into(),
            model: model.name.clone(),
            profile: format!("{}{description}", model.source),
            max_batch: model.max_batch,
            queue_delay_us: model.queue_delay.as_micros() as u64,
            samples,
        })
    }

    /// Mean of the samples for batch size `size` (1-based).
    pub fn mean(&self, size: usize) -> f64 {
        let row = &self.samples[size - 1];
        row.iter().sum::<f64>() / row.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_follows_the_profile_means_and_is_sorted() {
        let m = EmulatedModel::default();
        let t = m.table(1).unwrap();
        assert_eq!(t.samples.len(), 8);
        assert_eq!(t.schema, TABLE_SCHEMA);
        for (i, row) in t.samples.iter().enumerate() {
            assert_eq!(row.len(), 1000);
            assert!(row.windows(2).all(|w| w[0] <= w[1]), "row {i} unsorted");
            let want = m.profile.mean_batch_time(i as u32 + 1);
            let got = t.mean(i + 1);
            // The KIS-S profile's cv is 2.7 %: 1000 samples put the mean within 0.5 %.
            assert!(
                (got / want - 1.0).abs() < 0.005,
                "size {}: {got} vs {want}",
                i + 1
            );
        }
        // One profile point: time proportional to size (kis-sim's rule), so no batching gain.
        assert!((t.mean(8) / t.mean(1) - 8.0).abs() < 0.1);
    }

    #[test]
    fn same_seed_same_table_and_bad_settings_are_refused() {
        let m = EmulatedModel::default();
        assert_eq!(m.table(7).unwrap().samples, m.table(7).unwrap().samples);
        let bad = EmulatedModel {
            max_batch: 0,
            ..EmulatedModel::default()
        };
        let e = bad.table(1).unwrap_err().to_string();
        assert!(e.contains("max_batch"), "{e}");
    }

    #[test]
    fn a_profile_file_that_is_not_a_profile_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(
            &p,
            r#"{"schema": "kis-service-profile/v1", "device": "tpu"}"#,
        )
        .unwrap();
        let e = EmulatedModel::from_profile_file(&p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.json"), "{e}");
    }
}
