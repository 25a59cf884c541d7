//! Who is calling and may they: front-proxy (request-header) and client-certificate
//! authentication, and delegated authorization by SubjectAccessReview with a 10 s cache.
//!
//! Identity headers are trusted only on a connection whose client certificate verified against
//! the request-header CA with an allowed CN; on every other connection they are ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use tokio::time::Instant;

use crate::tls::{self, TlsError};

/// Front-proxy settings (from flags or the extension-apiserver-authentication ConfigMap).
#[derive(Debug, Clone)]
pub struct RequestHeaderConfig {
    /// Roots of the front-proxy CA.
    pub roots: Arc<RootCertStore>,
    /// Allowed CNs; empty = any.
    pub allowed_names: Vec<String>,
    /// User-name headers, first non-empty wins.
    pub username_headers: Vec<String>,
    /// Group headers.
    pub group_headers: Vec<String>,
    /// Extra-attribute header prefixes.
    pub extra_prefixes: Vec<String>,
}

/// Authentication settings in force for new connections.
#[derive(Debug, Clone, Default)]
pub struct AuthnConfig {
    /// Front proxy, if configured.
    pub request_header: Option<RequestHeaderConfig>,
    /// Client CA for certificate users, if configured.
    pub client_ca: Option<Arc<RootCertStore>>,
}

/// Raw authentication inputs before parsing (PEM text, header lists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthnInputs {
    /// Client CA PEM.
    pub client_ca_pem: Option<String>,
    /// Front-proxy CA PEM.
    pub requestheader_ca_pem: Option<String>,
    /// Allowed CNs.
    pub allowed_names: Vec<String>,
    /// User headers.
    pub username_headers: Vec<String>,
    /// Group headers.
    pub group_headers: Vec<String>,
    /// Extra prefixes.
    pub extra_prefixes: Vec<String>,
}

/// Name of the ConfigMap kube-apiserver writes for extension API servers.
pub const AUTH_CONFIGMAP: &str = "extension-apiserver-authentication";

impl AuthnInputs {
    /// Reads the ConfigMap's data (list values are JSON string arrays).
    pub fn from_configmap(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let list = |k: &str| -> Result<Vec<String>, String> {
            match data.get(k) {
                None => Ok(Vec::new()),
                Some(s) if s.trim().is_empty() => Ok(Vec::new()),
                Some(s) => serde_json::from_str(s).map_err(|e| format!("ConfigMap key {k}: {e}")),
            }
        };
        Ok(Self {
            client_ca_pem: data.get("client-ca-file").cloned(),
            requestheader_ca_pem: data.get("requestheader-client-ca-file").cloned(),
            allowed_names: list("requestheader-allowed-names")?,
            username_headers: list("requestheader-username-headers")?,
            group_headers: list("requestheader-group-headers")?,
            extra_prefixes: list("requestheader-extra-headers-prefix")?,
        })
    }

    /// Parses the PEM parts.
    pub fn build(&self) -> Result<AuthnConfig, TlsError> {
        let client_ca = match &self.client_ca_pem {
            Some(p) => Some(tls::parse_roots(p.as_bytes(), "client CA")?),
            None => None,
        };
        let request_header = match &self.requestheader_ca_pem {
            Some(p) => Some(RequestHeaderConfig {
                roots: tls::parse_roots(p.as_bytes(), "request-header client CA")?,
                allowed_names: self.allowed_names.clone(),
                username_headers: self.username_headers.clone(),
                group_headers: self.group_headers.clone(),
                extra_prefixes: self.extra_prefixes.clone(),
            }),
            None => None,
        };
        Ok(AuthnConfig {
            request_header,
            client_ca,
        })
    }
}

impl AuthnConfig {
    /// Every CA a client certificate may chain to (for the TLS verifier).
    pub fn all_roots(&self) -> Vec<Arc<RootCertStore>> {
        self.request_header
            .iter()
            .map(|r| r.roots.clone())
            .chain(self.client_ca.clone())
            .collect()
    }

    /// Classifies a connection by its peer chain (leaf first), once per connection.
    pub fn classify(&self, chain: &[CertificateDer<'_>]) -> Peer {
        if chain.is_empty() {
            return Peer::Anonymous;
        }
        let subject = tls::subject(&chain[0]);
        let cn = subject
            .as_ref()
            .map(|(cn, _)| cn.clone())
            .unwrap_or_default();
        let mut refusal = None;
        if let Some(rh) = &self.request_header
            && verifier(&rh.roots).is_some_and(|v| tls::verifies(v.as_ref(), chain))
        {
            if rh.allowed_names.is_empty() || rh.allowed_names.iter().any(|n| n == &cn) {
                return Peer::FrontProxy(Arc::new(rh.clone()));
            }
            refusal = Some(format!(
                "front-proxy certificate CN {cn:?} is not in requestheader-allowed-names"
            ));
        }
        if let Some(ca) = &self.client_ca
            && verifier(ca).is_some_and(|v| tls::verifies(v.as_ref(), chain))
            && let Some((cn, orgs)) = subject
        {
            return Peer::User(User::new(cn, orgs, BTreeMap::new()));
        }
        Peer::Refused(refusal.unwrap_or_else(|| {
            format!("client certificate CN {cn:?} verified by no configured CA")
        }))
    }
}

fn verifier(roots: &Arc<RootCertStore>) -> Option<Arc<dyn ClientCertVerifier>> {
    tls::ca_verifier(roots.clone(), "ca").ok()
}

/// What a connection's TLS handshake established.
#[derive(Debug, Clone)]
pub enum Peer {
    /// No client certificate.
    Anonymous,
    /// A verified front proxy: identity comes from the headers.
    FrontProxy(Arc<RequestHeaderConfig>),
    /// A client-CA user.
    User(User),
    /// A certificate that may not authenticate (e.g. wrong CN); the reason is logged.
    Refused(String),
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct User {
    /// User name.
    pub name: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// A user; adds `system:authenticated` as the Go authenticator does.
    pub fn new(
        name: String,
        mut groups: Vec<String>,
        extra: BTreeMap<String, Vec<String>>,
    ) -> Self {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Self {
            name,
            groups,
            extra,
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    /// No credentials at all.
    #[error("no client certificate: anonymous requests are not allowed")]
    Anonymous,
    /// A front proxy sent no user header.
    #[error("front proxy sent no user in {0:?}")]
    NoUserHeader(Vec<String>),
    /// A certificate that may not authenticate.
    #[error("{0}")]
    Refused(String),
}

/// Authenticates one request given its connection's peer and its headers.
pub fn authenticate(peer: &Peer, headers: &HeaderMap) -> Result<User, AuthnError> {
    match peer {
        Peer::Anonymous => Err(AuthnError::Anonymous),
        Peer::Refused(r) => Err(AuthnError::Refused(r.clone())),
        Peer::User(u) => Ok(u.clone()),
        Peer::FrontProxy(rh) => {
            let name = rh
                .username_headers
                .iter()
                .filter_map(|h| headers.get(h.as_str()))
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .find(|v| !v.is_empty())
                .ok_or_else(|| AuthnError::NoUserHeader(rh.username_headers.clone()))?;
            let groups = rh
                .group_headers
                .iter()
                .flat_map(|h| headers.get_all(h.as_str()))
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect();
            let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in headers {
                let k = k.as_str();
                for p in &rh.extra_prefixes {
                    let p = p.to_ascii_lowercase();
                    if let (Some(rest), Ok(v)) = (k.strip_prefix(p.as_str()), v.to_str()) {
                        extra
                            .entry(rest.to_string())
                            .or_default()
                            .push(v.to_string());
                    }
                }
            }
            Ok(User::new(name.to_string(), groups, extra))
        }
    }
}

/// What a request asks to do, in authorizer terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// `list` on an external metric.
    Resource {
        /// Namespace.
        namespace: String,
        /// Metric (the resource).
        metric: String,
    },
    /// A non-resource path (discovery, /metrics).
    NonResource {
        /// Path.
        path: String,
        /// Lower-case HTTP verb.
        verb: String,
    },
}

/// Authorization outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with the reviewer's reason.
    Deny(String),
}

/// A SubjectAccessReview backend.
#[derive(Clone)]
pub enum Reviewer {
    /// Development: everyone authenticated is allowed.
    AllowAll,
    /// Delegated to kube-apiserver.
    Kube(kube::Client),
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reviewer::AllowAll => "AllowAll",
            Reviewer::Kube(_) => "Kube",
        })
    }
}

/// SubjectAccessReview failures (answered 500).
#[derive(Debug, thiserror::Error)]
#[error("SubjectAccessReview failed: {0}")]
pub struct ReviewError(pub String);

type CacheKey = (User, Attributes);

/// The authorizer: always-allow groups, then cached SubjectAccessReviews.
#[derive(Debug)]
pub struct Authorizer {
    reviewer: Reviewer,
    always_allow_groups: Vec<String>,
    allow_ttl: Duration,
    deny_ttl: Duration,
    cache: Mutex<HashMap<CacheKey, (Decision, Instant)>>,
}

const CACHE_MAX: usize = 10_000;

impl Authorizer {
    /// A new authorizer.
    pub fn new(
        reviewer: Reviewer,
        always_allow_groups: Vec<String>,
        allow_ttl: Duration,
        deny_ttl: Duration,
    ) -> Self {
        Self {
            reviewer,
            always_allow_groups,
            allow_ttl,
            deny_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Decides; the bool is true when the answer came from the cache or an always-allow group.
    pub async fn authorize(
        &self,
        user: &User,
        attrs: &Attributes,
    ) -> Result<(Decision, bool), ReviewError> {
        if user
            .groups
            .iter()
            .any(|g| self.always_allow_groups.contains(g))
        {
            return Ok((Decision::Allow, true));
        }
        let key = (user.clone(), attrs.clone());
        let now = Instant::now();
        if let Some((d, exp)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && now < *exp
        {
            return Ok((d.clone(), true));
        }
        let d = match &self.reviewer {
            Reviewer::AllowAll => Decision::Allow,
            Reviewer::Kube(client) => review(client, user, attrs).await?,
        };
        let ttl = if d == Decision::Allow {
            self.allow_ttl
        } else {
            self.deny_ttl
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, exp)| now < *exp);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (d.clone(), now + ttl));
        Ok((d, false))
    }
}

/// The SubjectAccessReview body for `user` doing `attrs`.
pub fn review_spec(user: &User, attrs: &Attributes) -> SubjectAccessReview {
    let (resource_attributes, non_resource_attributes) = match attrs {
        Attributes::Resource { namespace, metric } => (
            Some(ResourceAttributes {
                namespace: Some(namespace.clone()),
                verb: Some("list".into()),
                group: Some(crate::api::GROUP.into()),
                version: Some(crate::api::VERSION.into()),
                resource: Some(metric.clone()),
                ..Default::default()
            }),
            None,
        ),
        Attributes::NonResource { path, verb } => (
            None,
            Some(NonResourceAttributes {
                path: Some(path.clone()),
                verb: Some(verb.clone()),
            }),
        ),
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn review(
    client: &kube::Client,
    user: &User,
    attrs: &Attributes,
) -> Result<Decision, ReviewError> {
    let api: kube::Api<SubjectAccessReview> = kube::Api::all(client.clone());
    let r = api
        .create(&kube::api::PostParams::default(), &review_spec(user, attrs))
        .await
        .map_err(|e| ReviewError(e.to_string()))?;
    let status = r
        .status
        .ok_or_else(|| ReviewError("no status in the response".into()))?;
    Ok(if status.allowed && !status.denied.unwrap_or(false) {
        Decision::Allow
    } else {
        Decision::Deny(status.reason.unwrap_or_default())
    })
}

/// Reads the extension-apiserver-authentication ConfigMap.
pub async fn fetch_configmap(client: &kube::Client) -> Result<AuthnInputs, String> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    let cm = api
        .get(AUTH_CONFIGMAP)
        .await
        .map_err(|e| format!("cannot read kube-system/{AUTH_CONFIGMAP}: {e}"))?;
    AuthnInputs::from_configmap(&cm.data.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn rh() -> Arc<RequestHeaderConfig> {
        Arc::new(RequestHeaderConfig {
            roots: Arc::new(RootCertStore::empty()),
            allowed_names: vec![],
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_prefixes: vec!["X-Remote-Extra-".into()],
        })
    }

    #[test]
    fn headers_only_count_behind_a_front_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", HeaderValue::from_static("alice"));
        h.append("x-remote-group", HeaderValue::from_static("g1"));
        h.append("x-remote-group", HeaderValue::from_static("g2"));
        h.append("x-remote-extra-scopes", HeaderValue::from_static("s"));
        let u = authenticate(&Peer::FrontProxy(rh()), &h).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, ["g1", "g2", "system:authenticated"]);
        assert_eq!(u.extra["scopes"], ["s"]);
        assert_eq!(
            authenticate(&Peer::Anonymous, &h),
            Err(AuthnError::Anonymous)
        );
        assert!(authenticate(&Peer::FrontProxy(rh()), &HeaderMap::new()).is_err());
    }

    #[test]
    fn configmap_lists_are_json() {
        let data = BTreeMap::from([
            (
                "requestheader-allowed-names".to_string(),
                r#"["front-proxy-client"]"#.to_string(),
            ),
            (
                "requestheader-username-headers".to_string(),
                r#"["X-Remote-User"]"#.to_string(),
            ),
        ]);
        let i = AuthnInputs::from_configmap(&data).unwrap();
        assert_eq!(i.allowed_names, ["front-proxy-client"]);
        assert!(i.client_ca_pem.is_none());
        let bad = BTreeMap::from([(
            "requestheader-allowed-names".to_string(),
            "front".to_string(),
        )]);
        assert!(AuthnInputs::from_configmap(&bad).is_err());
    }

    #[test]
    fn sar_body() {
        let u = User::new("u".into(), vec![], BTreeMap::new());
        let s = review_spec(
            &u,
            &Attributes::Resource {
                namespace: "ns".into(),
                metric: "m".into(),
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "list");
        assert_eq!(
            v["spec"]["resourceAttributes"]["group"],
            "external.metrics.k8s.io"
        );
        assert_eq!(v["spec"]["groups"][0], "system:authenticated");
    }

    #[tokio::test]
    async fn always_allow_groups_and_cache() {
        let a = Authorizer::new(
            Reviewer::AllowAll,
            vec!["system:masters".into()],
            Duration::from_secs(10),
            Duration::from_secs(10),
        );
        let attrs = Attributes::NonResource {
            path: "/apis".into(),
            verb: "get".into(),
        };
        let m = User::new("x".into(), vec!["system:masters".into()], BTreeMap::new());
        assert_eq!(
            a.authorize(&m, &attrs).await.unwrap(),
            (Decision::Allow, true)
        );
        let u = User::new("y".into(), vec![], BTreeMap::new());
        assert_eq!(
            a.authorize(&u, &attrs).await.unwrap(),
            (Decision::Allow, false)
        );
        assert_eq!(
            a.authorize(&u, &attrs).await.unwrap(),
            (Decision::Allow, true)
        );
    }
}
