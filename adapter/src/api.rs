//! Wire types: `external.metrics.k8s.io/v1beta1`, serialised exactly as the Go types are
//! (camelCase, integer `window` or none, Quantity strings, RFC 3339 timestamps), the discovery
//! documents and `metav1.Status`; and the publish API's bodies ([`PublishBody`],
//! [`UnpublishBody`], [`TargetView`]), shared by the server and the client (which builds without
//! the server, feature `server` off).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// API group served.
pub const GROUP: &str = "external.metrics.k8s.io";
/// Version served.
pub const VERSION: &str = "v1beta1";
/// `group/version`.
pub const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// `ExternalMetricValueList` (k8s.io/metrics external_metrics/v1beta1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValueList {
    /// Always `ExternalMetricValueList`.
    pub kind: String,
    /// Always `external.metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// ListMeta; empty.
    pub metadata: BTreeMap<String, Value>,
    /// One item per matching target when the adapter answers 200 (the HPA sums their values).
    pub items: Vec<ExternalMetricValue>,
}

/// One `ExternalMetricValue`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValue {
    /// Metric name as asked.
    pub metric_name: String,
    /// Labels of the target that matched.
    pub metric_labels: BTreeMap<String, String>,
    /// RFC 3339 (seconds, UTC) time the value was published.
    pub timestamp: String,
    /// Integer seconds, omitted for instantaneous values (Go `*int64`).
    #[serde(rename = "window", default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    /// Quantity string, e.g. `7` or `1500m`.
    pub value: String,
}

impl ExternalMetricValueList {
    /// A list of `items`.
    pub fn new(items: Vec<ExternalMetricValue>) -> Self {
        Self {
            kind: "ExternalMetricValueList".into(),
            api_version: GROUP_VERSION.into(),
            metadata: BTreeMap::new(),
            items,
        }
    }

    /// A list holding one item.
    pub fn single(item: ExternalMetricValue) -> Self {
        Self::new(vec![item])
    }

    /// What the HPA computes from this list: the sum of every item's value.
    pub fn sum(&self) -> Option<f64> {
        self.items.iter().map(|i| parse_quantity(&i.value)).sum()
    }
}

/// Where a target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The publish API.
    Published,
    /// `--targets-file`.
    File,
    /// `--targets-configmap`.
    #[serde(rename = "configmap")]
    ConfigMap,
}

/// Body of `PUT /targets/v1/namespaces/{ns}/{metric}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishBody {
    /// Labels telling this target apart.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Replica target, finite, 0..=1e9.
    pub value: f64,
    /// Seconds it stays valid, 1..=86400.
    pub ttl_seconds: u64,
}

/// Body of `DELETE /targets/v1/namespaces/{ns}/{metric}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnpublishBody {
    /// Labels of the target to remove.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A target as the publish API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetView {
    /// Namespace.
    pub namespace: String,
    /// Metric.
    pub metric: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// TTL in seconds (`None` for file targets without one).
    pub ttl_seconds: Option<u64>,
    /// RFC 3339.
    pub published_at: String,
    /// RFC 3339, or `None`.
    pub expires_at: Option<String>,
    /// Whether it is served now.
    pub fresh: bool,
    /// `published`, `file` or `configmap`.
    pub source: Source,
}

/// Formats `v` as a Kubernetes Quantity with milli precision: `7`, `1500m`, `0`.
pub fn quantity(v: f64) -> String {
    let milli = (v * 1000.0).round() as i64;
    if milli % 1000 == 0 {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}

/// Parses the Quantity forms this adapter emits (and plain decimals) back to a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    match s.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok().map(|x| x / 1000.0),
        None => s.parse::<f64>().ok(),
    }
}

/// RFC 3339 in UTC with second precision, as Go's `metav1.Time` marshals.
pub fn rfc3339(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn api_group() -> Value {
    let gv = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
           "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/apis`: an `APIGroupList` with our group.
pub fn api_group_list() -> Value {
    let mut g = api_group();
    let o = g.as_object_mut().expect("object");
    o.remove("kind");
    o.remove("apiVersion");
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [g]})
}

/// `/apis/external.metrics.k8s.io`: the `APIGroup`.
pub fn api_group_doc() -> Value {
    api_group()
}

/// `/apis/external.metrics.k8s.io/v1beta1`: an `APIResourceList` that is never empty
/// (a placeholder `externalmetrics` entry, as KEDA and the Go library default do).
pub fn api_resource_list() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
        "resources": [{"name": "externalmetrics", "singularName": "", "namespaced": true,
                       "kind": "ExternalMetricValueList", "verbs": ["get"]}]
    })
}

/// `metav1.Status` for a failure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `Status`.
    pub kind: String,
    /// `v1`.
    pub api_version: String,
    /// Empty ListMeta.
    pub metadata: BTreeMap<String, Value>,
    /// `Failure`.
    pub status: String,
    /// Human-readable reason.
    pub message: String,
    /// Machine reason (`NotFound`, `Forbidden`…).
    pub reason: String,
    /// Extra details (group/kind for Forbidden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// HTTP status code.
    pub code: u16,
}

impl Status {
    /// A failure Status.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: BTreeMap::new(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_forms() {
        assert_eq!(quantity(7.0), "7");
        assert_eq!(quantity(1.5), "1500m");
        assert_eq!(quantity(0.0), "0");
        assert_eq!(quantity(2.0004), "2");
        assert_eq!(quantity(1e6), "1000000");
        assert_eq!(parse_quantity("1500m"), Some(1.5));
        assert_eq!(parse_quantity("7"), Some(7.0));
    }

    #[test]
    fn rfc3339_seconds_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_777_636_800), "2026-05-01T12:00:00Z");
    }

    #[test]
    fn list_serialises_like_go() {
        let l = ExternalMetricValueList::single(ExternalMetricValue {
            metric_name: "m".into(),
            metric_labels: BTreeMap::from([("target".into(), "web".into())]),
            timestamp: rfc3339(0),
            window_seconds: None,
            value: quantity(7.0),
        });
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(
            s,
            r#"{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},"items":[{"metricName":"m","metricLabels":{"target":"web"},"timestamp":"1970-01-01T00:00:00Z","value":"7"}]}"#
        );
        let mut w = l.items[0].clone();
        w.window_seconds = Some(60);
        assert!(
            serde_json::to_string(&w)
                .unwrap()
                .contains(r#""window":60"#)
        );
    }

    #[test]
    fn discovery_never_empty() {
        let r = api_resource_list();
        assert_eq!(r["resources"].as_array().unwrap().len(), 1);
        assert_eq!(api_group_list()["groups"][0]["name"], GROUP);
    }
}
