//! The one "watch Pods, rewrite a file, reload" loop of the testbed: [`Refresher`] lists every
//! Pod from the apiserver each period on a thread of its own, derives what a consumer needs
//! from the list, and when that changed rewrites the consumer's file atomically and tells it.
//! Prometheus's `file_sd_configs` targets ([`crate::prometheus`]) and nginx's configuration
//! ([`crate::balancer`]) are both kept this way. Also the Pod predicates both use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::Error;

/// A running refresh loop; stops when dropped.
#[derive(Debug)]
pub struct Refresher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Derives a consumer's value from the Pod list.
pub type Derive<S> = Box<dyn Fn(&[Pod]) -> S + Send>;

/// What a consumer of the loop provides.
pub struct Consumer<S> {
    /// The file rewritten (atomically: a temporary file, then a rename).
    pub file: PathBuf,
    /// What the consumer needs from the Pod list (compared with the last applied value).
    pub derive: Derive<S>,
    /// The file's text for a value.
    pub render: Box<dyn Fn(&S) -> String + Send>,
    /// Called after the file holds a new value (a reload signal, a record of it).
    pub applied: Box<dyn FnMut(&S) + Send>,
}

impl Refresher {
    /// Starts the loop with the credentials in `kubeconfig` (which need `list` on Pods). A failed
    /// list or write is logged and retried on the next period; the file keeps its last value.
    pub fn start<S: PartialEq + Send + 'static>(
        kubeconfig: &Path,
        period: Duration,
        mut consumer: Consumer<S>,
    ) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Spawn("tokio runtime".into(), e))?;
        let client = rt
            .block_on(crate::kubelet::client(kubeconfig))
            .map_err(|e| Error::Config(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let api: Api<Pod> = Api::all(client);
            let mut last: Option<S> = None;
            while !flag.load(Ordering::Relaxed) {
                match rt.block_on(api.list(&ListParams::default())) {
                    Ok(list) => {
                        let now = (consumer.derive)(&list.items);
                        if last.as_ref() != Some(&now) {
                            match write_atomic(&consumer.file, &(consumer.render)(&now)) {
                                Ok(()) => {
                                    (consumer.applied)(&now);
                                    last = Some(now);
                                }
                                Err(e) => tracing::warn!(error = %e, "rewriting failed"),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "listing Pods failed"),
                }
                std::thread::sleep(period);
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`, so a reader
/// never sees half a file.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::Io(path.to_path_buf(), e))
}

/// Whether the Pod is Ready and not being deleted.
pub fn serving(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Pod's container port named `name`, with its IP: `IP:PORT`.
pub fn pod_port(p: &Pod, name: &str) -> Option<String> {
    let ip = p.status.as_ref()?.pod_ip.clone()?;
    let port = p
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|port| port.name.as_deref() == Some(name))?
        .container_port;
    Some(format!("{ip}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.json");
        write_atomic(&f, "one").unwrap();
        write_atomic(&f, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two");
        assert!(!f.with_extension("tmp").exists());
        let e = write_atomic(&d.path().join("no/such/dir"), "x").unwrap_err();
        assert!(e.to_string().contains("no/such"), "{e}");
    }
}
