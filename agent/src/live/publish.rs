//! Publishing targets through kis-adapter's publish API (its own client, `kis_adapter::client`):
//! to every address the adapter's host name resolves to (each adapter replica holds its own
//! targets), with a TTL, so a target the agent stops refreshing expires into an error the HPA
//! reads as "metric unavailable" (it holds its count), never as 0.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kis_adapter::client::{ClientError, Connection, TlsClient};

/// A publish that failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The adapter refused the token (401) or publishing is disabled (403): fatal, retrying
    /// cannot help.
    #[error("kis-adapter at {addr} refused the publish token (HTTP {code}): {body}")]
    Refused {
        /// Adapter address.
        addr: SocketAddr,
        /// 401 or 403.
        code: u16,
        /// Its message.
        body: String,
    },
    /// Unreachable, timed out, or another error answer.
    #[error("kis-adapter at {0}: {1}")]
    Failed(String, String),
}

/// Publishes to every replica of the adapter.
pub struct Publisher {
    host: String,
    port: u16,
    server_name: String,
    ca: Vec<u8>,
    token_file: PathBuf,
    timeout: Duration,
    conns: HashMap<SocketAddr, (TlsClient, Option<Connection>)>,
}

/// `https://HOST:PORT` → (host, port).
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("--adapter {url}: expected https://HOST:PORT"))?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("--adapter {url}: expected https://HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("--adapter {url}: bad port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(format!("--adapter {url}: expected https://HOST:PORT"));
    }
    Ok((host.to_string(), port))
}

impl Publisher {
    /// Checks the URL, the CA file and the token file (nothing is contacted yet).
    pub fn new(
        url: &str,
        server_name: &str,
        ca_file: &std::path::Path,
        token_file: PathBuf,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (host, port) = parse_url(url)?;
        let ca = std::fs::read(ca_file)
            .map_err(|e| format!("--adapter-ca {}: {e}", ca_file.display()))?;
        let p = Publisher {
            host,
            port,
            server_name: server_name.into(),
            ca,
            token_file,
            timeout,
            conns: HashMap::new(),
        };
        // Fails early on an unreadable or empty token, and on a CA that is not PEM.
        p.token()?;
        TlsClient::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            &p.server_name,
            &p.ca,
            None,
        )
        .map_err(|e| format!("--adapter-ca {}: {e}", ca_file.display()))?;
        Ok(p)
    }

    fn token(&self) -> Result<String, String> {
        let t = std::fs::read_to_string(&self.token_file)
            .map_err(|e| format!("--token-file {}: {e}", self.token_file.display()))?;
        let t = t.trim().to_string();
        if t.is_empty() {
            return Err(format!("--token-file {}: empty", self.token_file.display()));
        }
        Ok(t)
    }

    async fn resolve(&self) -> Result<Vec<SocketAddr>, PublishError> {
        let what = format!("{}:{}", self.host, self.port);
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            self.timeout,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| PublishError::Failed(what.clone(), "name lookup timed out".into()))?
        .map_err(|e| PublishError::Failed(what.clone(), format!("name lookup: {e}")))?
        .collect();
        if addrs.is_empty() {
            return Err(PublishError::Failed(what, "no address".into()));
        }
        Ok(addrs)
    }

    /// Publishes `value` for (namespace, metric, labels) with `ttl` seconds to every adapter
    /// replica. Ok when at least one took it; a refused token is returned at once.
    pub async fn publish(
        &mut self,
        namespace: &str,
        metric: &str,
        labels: &BTreeMap<String, String>,
        value: f64,
        ttl: u64,
    ) -> Result<usize, PublishError> {
        let token = self
            .token()
            .map_err(|e| PublishError::Failed(self.host.clone(), e))?;
        let addrs = self.resolve().await?;
        self.conns.retain(|a, _| addrs.contains(a));
        let mut ok = 0;
        let mut last_err = None;
        for addr in addrs {
            if !self.conns.contains_key(&addr) {
                let c = TlsClient::new(addr, &self.server_name, &self.ca, None)
                    .map_err(|e| PublishError::Failed(addr.to_string(), e.to_string()))?;
                self.conns.insert(addr, (c, None));
            }
            let Some((client, conn)) = self.conns.get_mut(&addr) else {
                continue;
            };
            let r = tokio::time::timeout(self.timeout, async {
                let c = match conn {
                    Some(c) => c,
                    None => conn.insert(client.connect().await?),
                };
                c.publish(&token, namespace, metric, labels.clone(), value, ttl)
                    .await
            })
            .await;
            match r {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(ClientError::Status { code, body })) if code == 401 || code == 403 => {
                    return Err(PublishError::Refused {
                        addr,
                        code,
                        body: one_line(&body),
                    });
                }
                Ok(Err(e)) => {
                    *conn = None;
                    last_err = Some(PublishError::Failed(
                        addr.to_string(),
                        one_line(&e.to_string()),
                    ));
                }
                Err(_) => {
                    *conn = None;
                    last_err = Some(PublishError::Failed(
                        addr.to_string(),
                        format!("no answer within {:.1} s", self.timeout.as_secs_f64()),
                    ));
                }
            }
        }
        match (ok, last_err) {
            (0, Some(e)) => Err(e),
            (n, e) => {
                if let Some(e) = e {
                    tracing::warn!("publish reached {n} adapter replicas, not all: {e}");
                }
                Ok(n)
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_urls() {
        assert_eq!(
            parse_url("https://127.0.0.1:6443").unwrap(),
            ("127.0.0.1".into(), 6443)
        );
        assert_eq!(
            parse_url("https://kis-adapter-publish.kis-system.svc:6443/").unwrap(),
            ("kis-adapter-publish.kis-system.svc".into(), 6443)
        );
        assert_eq!(parse_url("https://[::1]:443").unwrap(), ("::1".into(), 443));
        for bad in ["http://a:1", "https://a", "https://a:x", "https://:1"] {
            assert!(parse_url(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn bad_files_are_one_line_naming_them() {
        let dir = std::env::temp_dir().join(format!("kis-live-pub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not a pem").unwrap();
        let tok = dir.join("token");
        std::fs::write(&tok, "  \n").unwrap();
        let d = Duration::from_secs(1);
        let e = Publisher::new("https://a:1", "n", &dir.join("none.pem"), tok.clone(), d)
            .err()
            .unwrap();
        assert!(e.contains("none.pem"), "{e}");
        let e = Publisher::new("https://a:1", "n", &ca, tok.clone(), d)
            .err()
            .unwrap();
        assert!(e.contains("token") && e.contains("empty"), "{e}");
        std::fs::write(&tok, "secret\n").unwrap();
        let e = Publisher::new("https://a:1", "n", &ca, tok, d)
            .err()
            .unwrap();
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
