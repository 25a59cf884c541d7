//! A small HTTPS/1.1 keep-alive client for the adapter: the publish API (what the agent's live
//! mode calls), and reads for tests and the benchmark. Verifies the server against a given CA
//! and can present a client certificate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::api::{PublishBody, TargetView};
use crate::tls;

/// Client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Bad CA/certificate/key or server name.
    #[error("TLS setup: {0}")]
    Setup(String),
    /// Connect/handshake/IO failure.
    #[error("connection to {addr}: {msg}")]
    Io {
        /// Peer.
        addr: SocketAddr,
        /// What failed.
        msg: String,
    },
    /// The server answered an error status.
    #[error("HTTP {code}: {body}")]
    Status {
        /// Status code.
        code: u16,
        /// Body (a metav1.Status JSON).
        body: String,
    },
}

/// Connection factory for one adapter address.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    addr: SocketAddr,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// `ca_pem` verifies the server as `server_name`; `identity` is an optional (cert, key) PEM pair.
    pub fn new(
        addr: SocketAddr,
        server_name: &str,
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, ClientError> {
        let roots =
            tls::parse_roots(ca_pem, "server CA").map_err(|e| ClientError::Setup(e.to_string()))?;
        let b = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_root_certificates(roots);
        let mut cfg = match identity {
            Some((c, k)) => {
                let certs = tls::parse_certs(c, "client certificate")
                    .map_err(|e| ClientError::Setup(e.to_string()))?;
                let key = tls::parse_key(k, "client key")
                    .map_err(|e| ClientError::Setup(e.to_string()))?;
                b.with_client_auth_cert(certs, key)
                    .map_err(|e| ClientError::Setup(e.to_string()))?
            }
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(cfg)),
            server_name,
            addr,
        })
    }

    /// Opens one keep-alive connection.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let io = |e: &dyn std::fmt::Display| ClientError::Io {
            addr: self.addr,
            msg: e.to_string(),
        };
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| io(&e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| io(&e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| io(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            addr: self.addr,
        })
    }
}

/// One HTTP/1.1 connection; requests go one at a time.
#[derive(Debug)]
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Connection {
    /// Sends a request; returns the status code and body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let io = |e: &dyn std::fmt::Display| ClientError::Io {
            addr: self.addr,
            msg: e.to_string(),
        };
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "kis-adapter");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| io(&e))?;
        self.sender.ready().await.map_err(|e| io(&e))?;
        let resp = self.sender.send_request(req).await.map_err(|e| io(&e))?;
        let code = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io(&e))?
            .to_bytes()
            .to_vec();
        Ok((code, body))
    }

    /// `GET path`, failing on non-2xx.
    pub async fn get_ok(&mut self, path: &str) -> Result<Vec<u8>, ClientError> {
        let (code, body) = self.request("GET", path, &[], None).await?;
        if !(200..300).contains(&code) {
            return Err(ClientError::Status {
                code,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    /// Publishes a target with bearer `token`.
    pub async fn publish(
        &mut self,
        token: &str,
        namespace: &str,
        metric: &str,
        labels: BTreeMap<String, String>,
        value: f64,
        ttl_seconds: u64,
    ) -> Result<TargetView, ClientError> {
        let body = serde_json::to_vec(&PublishBody {
            labels,
            value,
            ttl_seconds,
        })
        .map_err(|e| ClientError::Setup(e.to_string()))?;
        let auth = format!("Bearer {token}");
        let path = format!("/targets/v1/namespaces/{namespace}/{metric}");
        let (code, body) = self
            .request("PUT", &path, &[("authorization", &auth)], Some(body))
            .await?;
        if code != 200 {
            return Err(ClientError::Status {
                code,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Status {
            code,
            body: e.to_string(),
        })
    }
}
