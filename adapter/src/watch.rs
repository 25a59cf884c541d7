//! Watches one named ConfigMap with kube-runtime's watcher and hands every version to a
//! callback. Used for `kube-system/extension-apiserver-authentication` (client and front-proxy
//! CAs) and for `--targets-configmap`.
//!
//! The watcher lists with `fieldSelector=metadata.name=NAME` and then watches from that
//! resourceVersion, so RBAC limited by `resourceNames` to that one object suffices. Errors
//! (apiserver down, watch expired, RBAC revoked) are retried with client-go's backoff (0.8 s
//! doubling to 30 s) and logged; they never end the task, and the last good version stays in
//! force meanwhile. Each failure streak is reported to [`Health`], which fails readiness once
//! the streak outlasts `--watch-failure-budget`.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use std::sync::Arc;

use tokio::sync::watch;

use crate::lifecycle::Health;

/// What one watched version means to the callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The object exists with this content (added, modified or seen on a re-list).
    Applied(Box<ConfigMap>),
    /// The object does not exist (deleted, or absent from a re-list).
    Gone,
}

/// Runs until `stop` turns true, calling `on_change` for every version of `namespace/name`.
/// `what` names the object in logs.
pub async fn configmap(
    client: kube::Client,
    namespace: String,
    name: String,
    what: &'static str,
    mut on_change: impl FnMut(Change) + Send,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let stream = kube::runtime::watcher::watch_object(api, &name).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            n = stream.next() => n,
        };
        match next {
            Some(Ok(obj)) => {
                health.watch_ok(what);
                if failing {
                    tracing::info!(what, %namespace, %name, "ConfigMap watch recovered");
                    failing = false;
                }
                on_change(match obj {
                    Some(cm) => Change::Applied(Box::new(cm)),
                    None => Change::Gone,
                });
            }
            Some(Err(e)) => {
                // Every failure is logged (the backoff bounds the rate to one per 30 s at
                // worst); the previous version stays in force.
                failing = true;
                health.watch_failed(what);
                tracing::warn!(what, %namespace, %name, error = %e, "ConfigMap watch failed; retrying with backoff, previous version kept");
            }
            None => {
                // The watcher stream never ends by itself; if it did, nothing more would
                // arrive, which is worth an error line rather than a silent stall.
                tracing::error!(what, %namespace, %name, "ConfigMap watch ended");
                break;
            }
        }
    }
}

/// `NS/NAME` as given to `--targets-configmap`.
pub fn parse_object_ref(s: &str) -> Result<(String, String), String> {
    let (ns, name) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not NAMESPACE/NAME"))?;
    let dns = |v: &str, max: usize| {
        !v.is_empty()
            && v.len() <= max
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && v.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if !dns(ns, 63) || ns.contains('.') {
        return Err(format!("{s:?}: namespace {ns:?} is not a DNS-1123 label"));
    }
    if !dns(name, 253) {
        return Err(format!("{s:?}: name {name:?} is not a DNS-1123 subdomain"));
    }
    Ok((ns.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_refs() {
        assert_eq!(
            parse_object_ref("kis-system/kis-adapter-targets").unwrap(),
            ("kis-system".into(), "kis-adapter-targets".into())
        );
        assert_eq!(
            parse_object_ref("a/b.c").unwrap(),
            ("a".into(), "b.c".into())
        );
        for bad in ["noslash", "/x", "x/", "Upper/x", "a.b/x", "a/-x", "a/b/c"] {
            assert!(parse_object_ref(bad).is_err(), "{bad}");
        }
    }
}
