//! Test harness: a PKI made with rcgen, an in-process adapter on an ephemeral port, and a
//! STAND-IN for the two kube-apiserver endpoints the adapter calls (SubjectAccessReview and the
//! extension-apiserver-authentication ConfigMap). Everything else is real: rustls on both ends,
//! real certificates, real HTTP/1.1 and h2.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as AxPath, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use kis_adapter::client::{Connection, TlsClient};
use kis_adapter::pki::{Ca, Pem};
use kis_adapter::server::{self, Running};
use serde_json::{Value, json};

/// Certificates for one test, written to a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub server_ca: Ca,
    pub front_proxy_ca: Ca,
    pub client_ca: Ca,
    /// Front proxy with an allowed CN.
    pub proxy: Pem,
    /// Front-proxy-CA certificate whose CN is not allowed.
    pub wrong_cn: Pem,
    /// Client-CA user alice in group ops.
    pub alice: Pem,
    /// A certificate from an unrelated CA.
    pub stranger: Pem,
}

pub const PROXY_CN: &str = "front-proxy-client";

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::new("kis-test-server-ca").unwrap();
        let front_proxy_ca = Ca::new("kis-test-front-proxy-ca").unwrap();
        let client_ca = Ca::new("kis-test-client-ca").unwrap();
        let serving = server_ca.server(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(dir.path().join("tls.crt"), &serving.cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), &serving.key).unwrap();
        std::fs::write(dir.path().join("server-ca.crt"), &server_ca.cert_pem).unwrap();
        std::fs::write(
            dir.path().join("front-proxy-ca.crt"),
            &front_proxy_ca.cert_pem,
        )
        .unwrap();
        std::fs::write(dir.path().join("client-ca.crt"), &client_ca.cert_pem).unwrap();
        std::fs::write(dir.path().join("token"), "s3cret-token\n").unwrap();
        let proxy = front_proxy_ca.client(PROXY_CN, &[]).unwrap();
        let wrong_cn = front_proxy_ca.client("evil-proxy", &[]).unwrap();
        let alice = client_ca.client("alice", &["ops"]).unwrap();
        let stranger = Ca::new("other").unwrap().client("mallory", &[]).unwrap();
        Self {
            dir,
            server_ca,
            front_proxy_ca,
            client_ca,
            proxy,
            wrong_cn,
            alice,
            stranger,
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Flags serving tls.crt with both CAs from files.
    pub fn tls_flags(&self) -> Vec<String> {
        vec![
            format!("--tls-cert-file={}", self.path("tls.crt")),
            format!("--tls-private-key-file={}", self.path("tls.key")),
            format!("--client-ca-file={}", self.path("client-ca.crt")),
            format!(
                "--requestheader-client-ca-file={}",
                self.path("front-proxy-ca.crt")
            ),
            format!("--requestheader-allowed-names={PROXY_CN}"),
            format!("--publish-token-file={}", self.path("token")),
        ]
    }

    pub fn client(&self, addr: std::net::SocketAddr, identity: Option<&Pem>) -> TlsClient {
        TlsClient::new(
            addr,
            "localhost",
            self.server_ca.cert_pem.as_bytes(),
            identity.map(|p| (p.cert.as_bytes(), p.key.as_bytes())),
        )
        .unwrap()
    }
}

/// Starts the adapter in-process on 127.0.0.1:0 with `extra` flags.
pub async fn start(extra: &[String]) -> Running {
    let mut args = vec![
        "kis-adapter".to_string(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
    ];
    args.extend(extra.iter().cloned());
    server::start(kis_adapter::cli::Cli::parse_from(args))
        .await
        .unwrap()
}

pub async fn connect_addr(
    pki: &Pki,
    addr: std::net::SocketAddr,
    identity: Option<&Pem>,
) -> Connection {
    pki.client(addr, identity).connect().await.unwrap()
}

pub async fn connect(pki: &Pki, r: &Running, identity: Option<&Pem>) -> Connection {
    pki.client(r.addr, identity).connect().await.unwrap()
}

pub fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

pub async fn publish(
    c: &mut Connection,
    ns: &str,
    metric: &str,
    labels: &[(&str, &str)],
    value: f64,
    ttl: u64,
) {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.publish("s3cret-token", ns, metric, labels, value, ttl)
        .await
        .unwrap();
}

/// [`publish`] of each `(labels, value)` in order, same namespace, metric and time-to-live.
pub async fn publish_each(
    c: &mut Connection,
    ns: &str,
    metric: &str,
    points: &[(&[(&str, &str)], f64)],
    ttl: u64,
) {
    for (labels, value) in points {
        publish(c, ns, metric, labels, *value, ttl).await;
    }
}

/// STAND-IN for kube-apiserver's SubjectAccessReview and ConfigMap endpoints (plain HTTP on
/// loopback). SAR allows a user when `allowed` holds "user" or "user:resource". ConfigMaps
/// support what the adapter uses: get by name, and list + watch with
/// `fieldSelector=metadata.name=NAME` (newline-delimited watch events from a resourceVersion, as
/// kube-apiserver streams them). `kube-system/extension-apiserver-authentication` exists from the
/// start with empty data.
#[derive(Clone)]
pub struct StandIn {
    pub allowed: Arc<Mutex<BTreeSet<String>>>,
    pub reviews: Arc<Mutex<Vec<Value>>>,
    objects: Arc<Mutex<Objects>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    /// GETs of a single ConfigMap.
    pub configmap_gets: Arc<AtomicUsize>,
    /// LIST calls on ConfigMaps.
    pub configmap_lists: Arc<AtomicUsize>,
    /// WATCH calls on ConfigMaps (including refused ones).
    pub configmap_watches: Arc<AtomicUsize>,
    /// While set, every watch request is answered 500.
    pub fail_watches: Arc<AtomicBool>,
}

/// (resourceVersion, deleted, data) of one ConfigMap.
type Entry = (u64, bool, BTreeMap<String, String>);

/// (namespace, name) → entry.
#[derive(Default)]
struct Objects {
    rv: u64,
    map: BTreeMap<(String, String), Entry>,
}

pub const AUTH_NS: &str = "kube-system";
pub const AUTH_NAME: &str = "extension-apiserver-authentication";

impl Default for StandIn {
    fn default() -> Self {
        let s = Self {
            allowed: Default::default(),
            reviews: Default::default(),
            objects: Default::default(),
            changed: Arc::new(tokio::sync::watch::channel(0).0),
            configmap_gets: Default::default(),
            configmap_lists: Default::default(),
            configmap_watches: Default::default(),
            fail_watches: Default::default(),
        };
        s.set_configmap(AUTH_NS, AUTH_NAME, BTreeMap::new());
        s
    }
}

fn cm_json(ns: &str, name: &str, rv: u64, data: &BTreeMap<String, String>) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string()},
        "data": data})
}

fn status(code: u16, reason: &str, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::from_u16(code).unwrap(),
        Json(
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
            "code": code, "reason": reason, "message": message}),
        ),
    )
        .into_response()
}

impl StandIn {
    pub fn review_count(&self) -> usize {
        self.reviews.lock().unwrap().len()
    }

    /// Creates or replaces a ConfigMap (a new resourceVersion; watchers get the event).
    pub fn set_configmap(&self, ns: &str, name: &str, data: BTreeMap<String, String>) {
        let rv = {
            let mut o = self.objects.lock().unwrap();
            o.rv += 1;
            let rv = o.rv;
            o.map
                .insert((ns.to_string(), name.to_string()), (rv, false, data));
            rv
        };
        self.changed.send_replace(rv);
    }

    /// The extension-apiserver-authentication ConfigMap's data.
    pub fn set_auth(&self, data: BTreeMap<String, String>) {
        self.set_configmap(AUTH_NS, AUTH_NAME, data);
    }

    /// Deletes a ConfigMap (watchers get a DELETED event).
    pub fn delete_configmap(&self, ns: &str, name: &str) {
        let rv = {
            let mut o = self.objects.lock().unwrap();
            o.rv += 1;
            let rv = o.rv;
            if let Some(e) = o.map.get_mut(&(ns.to_string(), name.to_string())) {
                e.0 = rv;
                e.1 = true;
            }
            rv
        };
        self.changed.send_replace(rv);
    }

    /// Serves it; returns a kubeconfig path pointing at it.
    pub async fn serve(&self, dir: &Path) -> PathBuf {
        async fn sar(State(s): State<StandIn>, Json(mut body): Json<Value>) -> Json<Value> {
            s.reviews.lock().unwrap().push(body.clone());
            let user = body["spec"]["user"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let res = body["spec"]["resourceAttributes"]["resource"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let allowed = {
                let a = s.allowed.lock().unwrap();
                a.contains(&user) || a.contains(&format!("{user}:{res}"))
            };
            body["status"] = json!({"allowed": allowed, "reason": if allowed { "stand-in allows" } else { "stand-in denies" }});
            Json(body)
        }
        async fn get_cm(
            State(s): State<StandIn>,
            AxPath((ns, name)): AxPath<(String, String)>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            s.configmap_gets.fetch_add(1, Ordering::SeqCst);
            let o = s.objects.lock().unwrap();
            match o.map.get(&(ns.clone(), name.clone())) {
                Some((rv, false, data)) => Json(cm_json(&ns, &name, *rv, data)).into_response(),
                _ => status(404, "NotFound", &format!("configmaps {name:?} not found")),
            }
        }
        async fn list_or_watch(
            State(s): State<StandIn>,
            AxPath(ns): AxPath<String>,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            // The adapter's RBAC is by resourceNames: it must always name the object.
            let Some(name) = q
                .get("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name="))
                .map(str::to_string)
            else {
                return status(
                    400,
                    "BadRequest",
                    "stand-in: fieldSelector=metadata.name=NAME required",
                );
            };
            let key = (ns.clone(), name.clone());
            if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                s.configmap_watches.fetch_add(1, Ordering::SeqCst);
                if s.fail_watches.load(Ordering::SeqCst) {
                    return status(500, "InternalError", "stand-in: watch refused on purpose");
                }
                let from: u64 = q
                    .get("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let timeout: u64 = q
                    .get("timeoutSeconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60);
                let deadline =
                    tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
                let rx = s.changed.subscribe();
                let objects = s.objects.clone();
                let stream = futures::stream::unfold((rx, from), move |(mut rx, mut from)| {
                    let objects = objects.clone();
                    let key = key.clone();
                    async move {
                        loop {
                            let event = {
                                let o = objects.lock().unwrap();
                                match o.map.get(&key) {
                                    Some((rv, deleted, data)) if *rv > from => {
                                        let kind = if *deleted { "DELETED" } else { "MODIFIED" };
                                        Some((
                                            *rv,
                                            json!({"type": kind,
                                                "object": cm_json(&key.0, &key.1, *rv, data)}),
                                        ))
                                    }
                                    _ => None,
                                }
                            };
                            if let Some((rv, e)) = event {
                                from = rv;
                                let line = format!("{e}\n");
                                return Some((Ok::<_, std::convert::Infallible>(line), (rx, from)));
                            }
                            match tokio::time::timeout_at(deadline, rx.changed()).await {
                                Ok(Ok(())) => continue,
                                _ => return None,
                            }
                        }
                    }
                });
                return (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    axum::body::Body::from_stream(stream),
                )
                    .into_response();
            }
            s.configmap_lists.fetch_add(1, Ordering::SeqCst);
            let o = s.objects.lock().unwrap();
            let items: Vec<Value> = match o.map.get(&key) {
                Some((rv, false, data)) => vec![cm_json(&ns, &name, *rv, data)],
                _ => Vec::new(),
            };
            Json(json!({"apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": o.rv.to_string()}, "items": items}))
            .into_response()
        }
        let app = Router::new()
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(sar),
            )
            .route("/api/v1/namespaces/{ns}/configmaps/{name}", get(get_cm))
            .route("/api/v1/namespaces/{ns}/configmaps", get(list_or_watch))
            .with_state(self.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(l, app).await });
        let path = dir.join("standin.kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: adapter\n  user:\n    token: standin-token\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: adapter\ncurrent-context: standin\n"
            ),
        )
        .unwrap();
        path
    }
}
