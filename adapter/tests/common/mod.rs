//! Test harness: a PKI made with rcgen, an in-process adapter on an ephemeral port, and a
//! STAND-IN for the two kube-apiserver endpoints the adapter calls (SubjectAccessReview and the
//! extension-apiserver-authentication ConfigMap). Everything else is real: rustls on both ends,
//! real certificates, real HTTP/1.1 and h2.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
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

/// STAND-IN for kube-apiserver's SubjectAccessReview and ConfigMap endpoints (plain HTTP on
/// loopback). SAR allows a user when `allowed` holds "user" or "user:resource".
#[derive(Clone, Default)]
pub struct StandIn {
    pub allowed: Arc<Mutex<BTreeSet<String>>>,
    pub reviews: Arc<Mutex<Vec<Value>>>,
    pub configmap: Arc<Mutex<BTreeMap<String, String>>>,
    pub configmap_reads: Arc<AtomicUsize>,
}

impl StandIn {
    pub fn review_count(&self) -> usize {
        self.reviews.lock().unwrap().len()
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
        async fn cm(State(s): State<StandIn>) -> Json<Value> {
            s.configmap_reads.fetch_add(1, Ordering::SeqCst);
            let data = s.configmap.lock().unwrap().clone();
            Json(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
                "data": data}))
        }
        let app = Router::new()
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(sar),
            )
            .route(
                "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
                get(cm),
            )
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
