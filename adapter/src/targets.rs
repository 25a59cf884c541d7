//! Targets from documents: the `--targets-file` / `--targets-configmap` JSON format
//! ([`parse_targets`]) and the loader that turns each watched ConfigMap version into the
//! ConfigMap-sourced targets of the store ([`TargetsConfigMap`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Deserialize;

use crate::router::{self, AppState};
use crate::store::{Source, Target, now_unix};
use crate::watch as cmwatch;

/// One entry of `--targets-file`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileTarget {
    namespace: String,
    metric: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: f64,
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TargetsFile {
    /// When the document was written (RFC 3339); `ttlSeconds` count from here.
    published_at: Option<String>,
    targets: Vec<FileTarget>,
}

/// How far ahead of this replica's clock `publishedAt` may be (clock skew between the writer and
/// the replicas); anything later would stretch a TTL, so it is refused.
pub const MAX_PUBLISHED_AT_SKEW_S: f64 = 60.0;

/// Parses a `--targets-file` body into targets; `ttlSeconds` count from the document's
/// `publishedAt` if present, else from `now` (the time the file was read).
pub fn parse_targets_file(body: &[u8], now: f64) -> Result<Vec<Target>, String> {
    parse_targets(body, now, Source::File)
}

/// Parses a targets document (the `--targets-file` format) from `source`. For
/// [`Source::ConfigMap`] a target with `ttlSeconds` needs the document's `publishedAt`: every
/// replica, and a restarted one, must compute the same expiry, which the time a replica happened
/// to see the ConfigMap would not give.
pub fn parse_targets(body: &[u8], now: f64, source: Source) -> Result<Vec<Target>, String> {
    let f: TargetsFile = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let published = match &f.published_at {
        Some(s) => {
            let ts: jiff::Timestamp = s
                .parse()
                .map_err(|e| format!("publishedAt {s:?} is not an RFC 3339 time: {e}"))?;
            let unix = ts.as_millisecond() as f64 / 1000.0;
            if unix > now + MAX_PUBLISHED_AT_SKEW_S {
                return Err(format!(
                    "publishedAt {s:?} is more than {MAX_PUBLISHED_AT_SKEW_S} s in the future"
                ));
            }
            Some(unix)
        }
        None => None,
    };
    f.targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            router::validate_target(&t.namespace, &t.metric, &t.labels, t.value)
                .map_err(|e| format!("targets[{i}]: {e}"))?;
            let at = match (published, source, t.ttl_seconds) {
                (Some(p), _, _) => p,
                (None, Source::ConfigMap, Some(_)) => {
                    return Err(format!(
                        "targets[{i}]: ttlSeconds needs the document's publishedAt (RFC 3339) in a ConfigMap"
                    ));
                }
                (None, _, _) => now,
            };
            if let Some(ttl) = t.ttl_seconds
                && !(1..=router::MAX_TTL_SECONDS).contains(&ttl)
            {
                return Err(format!(
                    "targets[{i}]: ttlSeconds must be 1..={}",
                    router::MAX_TTL_SECONDS
                ));
            }
            Ok(Target {
                namespace: t.namespace,
                metric: t.metric,
                labels: t.labels,
                value: t.value,
                published_unix: at,
                expires_unix: t.ttl_seconds.map(|s| at + s as f64),
                source,
            })
        })
        .collect()
}

/// `--targets-configmap`: turns each watched version into the ConfigMap-sourced targets.
pub(crate) struct TargetsConfigMap {
    pub(crate) key: String,
    pub(crate) what: String,
    pub(crate) state: AppState,
    /// The document in force, to skip identical versions.
    pub(crate) last_body: Mutex<Option<String>>,
    /// resourceVersion of the last refused version (logged once, not again on a re-list).
    pub(crate) last_bad: Mutex<Option<String>>,
}

impl TargetsConfigMap {
    /// Replaces the ConfigMap targets with this version's; a bad version is logged once and the
    /// previous targets stay. A deleted (or absent) ConfigMap holds no targets: reads of its
    /// targets answer 404, which the HPA treats like any failed read (replicas held, never 0).
    pub(crate) fn apply(&self, change: cmwatch::Change) -> std::result::Result<usize, String> {
        const SOURCE: &str = "targets";
        let now = now_unix();
        let metrics = &self.state.metrics;
        let cm = match change {
            cmwatch::Change::Applied(cm) => cm,
            cmwatch::Change::Gone => {
                tracing::warn!(configmap = %self.what, "targets ConfigMap absent: serving no targets from it");
                self.state
                    .store
                    .replace_source_targets(Source::ConfigMap, Vec::new());
                let changed = self
                    .last_body
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .is_some();
                metrics.config_loaded(SOURCE, "deleted", changed, now);
                return Ok(0);
            }
        };
        let rv = cm.metadata.resource_version.clone().unwrap_or_default();
        let body = cm.data.as_ref().and_then(|d| d.get(&self.key));
        let mut last = self.last_body.lock().unwrap_or_else(|e| e.into_inner());
        if body.is_some() && body == last.as_ref() {
            // The same document again (a re-list): nothing to do, and in particular the
            // expiries, fixed by the document's publishedAt, stay as they are.
            metrics.config_loaded(SOURCE, "ok", false, now);
            return Ok(0);
        }
        let parsed = match body {
            Some(body) => parse_targets(body.as_bytes(), now, Source::ConfigMap),
            None => Err(format!("has no key {:?}", self.key)),
        };
        match parsed {
            Ok(t) => {
                let n = t.len();
                self.state
                    .store
                    .replace_source_targets(Source::ConfigMap, t);
                *last = body.cloned();
                tracing::info!(configmap = %self.what, resource_version = %rv, targets = n, "targets ConfigMap loaded");
                metrics.config_loaded(SOURCE, "ok", true, now);
                Ok(n)
            }
            Err(e) => {
                let e = format!("{} (resourceVersion {rv}): {e}", self.what);
                let mut bad = self.last_bad.lock().unwrap_or_else(|e| e.into_inner());
                if bad.as_deref() != Some(rv.as_str()) {
                    tracing::error!(error = %e, "bad targets ConfigMap version; keeping the previous targets");
                    metrics.config_loaded(SOURCE, "error", false, now);
                    *bad = Some(rv);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_targets_expire_from_published_at() {
        let now = 1_800_000_000.0;
        let doc = br#"{"publishedAt": "2027-01-15T08:00:00Z",
            "targets": [{"namespace": "prod", "metric": "m", "labels": {"target": "web"}, "value": 3, "ttlSeconds": 60},
                        {"namespace": "prod", "metric": "m", "labels": {"target": "db"}, "value": 2}]}"#;
        let published = 1_800_000_000.0; // 2027-01-15T08:00:00Z
        let t = parse_targets(doc, now, Source::ConfigMap).unwrap();
        assert_eq!(t[0].published_unix, published);
        assert_eq!(t[0].expires_unix, Some(published + 60.0));
        assert_eq!(t[0].source, Source::ConfigMap);
        assert_eq!(t[1].expires_unix, None);
        // The same document read later by another replica gives the same expiry.
        let later = parse_targets(doc, now + 30.0, Source::ConfigMap).unwrap();
        assert_eq!(later[0].expires_unix, t[0].expires_unix);

        // A TTL without publishedAt is refused in a ConfigMap, accepted (from now) in a file.
        let no_at =
            br#"{"targets": [{"namespace": "prod", "metric": "m", "value": 3, "ttlSeconds": 60}]}"#;
        let e = parse_targets(no_at, now, Source::ConfigMap).unwrap_err();
        assert!(e.contains("publishedAt"), "{e}");
        let f = parse_targets(no_at, now, Source::File).unwrap();
        assert_eq!(f[0].expires_unix, Some(now + 60.0));
        // No TTL and no publishedAt is fine anywhere.
        let plain = br#"{"targets": [{"namespace": "prod", "metric": "m", "value": 3}]}"#;
        assert!(parse_targets(plain, now, Source::ConfigMap).is_ok());

        for (bad, why) in [
            (
                r#"{"publishedAt": "2027-01-15T08:05:00Z", "targets": []}"#,
                "future",
            ),
            (r#"{"publishedAt": "yesterday", "targets": []}"#, "RFC 3339"),
            (
                r#"{"publishedAt": "2027-01-15T08:00:00Z", "targets": [{"namespace": "prod", "metric": "m", "value": 3, "ttlSeconds": 0}]}"#,
                "ttlSeconds",
            ),
        ] {
            let e = parse_targets(bad.as_bytes(), now, Source::ConfigMap).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
