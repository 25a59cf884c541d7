//! One HTTP/1.1 keep-alive connection per worker, and a request template whose body is encoded
//! once and shared (a `Bytes` clone is a reference-count increment).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::record::{ErrorKind, Outcome};

/// A request to send again and again.
#[derive(Clone, Debug)]
pub struct Template {
    /// Method.
    pub method: Method,
    /// Origin-form URI (path and query).
    pub uri: Uri,
    /// Headers, `Host` included.
    pub headers: HeaderMap,
    /// Body, encoded once.
    pub body: Bytes,
}

impl Template {
    /// A template for `method authority path` with `body` and extra headers.
    pub fn new(
        method: Method,
        authority: &str,
        path: &str,
        body: Bytes,
        extra: &[(String, String)],
    ) -> Template {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(authority) {
            headers.insert(hyper::header::HOST, v);
        }
        for (n, v) in extra {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(n, v);
            }
        }
        Template {
            method,
            uri: path.parse().unwrap_or_else(|_| Uri::from_static("/")),
            headers,
            body,
        }
    }

    fn build(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// A lazily (re)connected HTTP/1.1 connection.
pub struct Conn {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// The answer to one request: outcome and body bytes; `body` kept only when asked for.
pub struct Answer {
    /// Outcome.
    pub outcome: Outcome,
    /// Response body length.
    pub bytes: u64,
    /// The body, when `keep_body` was set.
    pub body: Option<Bytes>,
}

impl Conn {
    /// A connection to `authority` (`host:port`), opened on first use.
    pub fn new(authority: &str) -> Conn {
        Conn {
            authority: authority.to_string(),
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), ErrorKind> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Opens the connection now (so the first timed request does not pay for it).
    pub async fn warm(&mut self) -> Result<(), ErrorKind> {
        if self.sender.is_none() {
            self.connect().await?;
        }
        Ok(())
    }

    /// Sends `t` and reads the whole answer within `timeout`.
    pub async fn send(&mut self, t: &Template, timeout: Duration, keep_body: bool) -> Answer {
        match tokio::time::timeout(timeout, self.exchange(t, keep_body)).await {
            Ok(Ok(a)) => a,
            Ok(Err(kind)) => {
                self.sender = None;
                Answer {
                    outcome: Outcome::Failed(kind),
                    bytes: 0,
                    body: None,
                }
            }
            Err(_) => {
                // The connection is mid-exchange; HTTP/1.1 cannot reuse it.
                self.sender = None;
                Answer {
                    outcome: Outcome::Failed(ErrorKind::Timeout),
                    bytes: 0,
                    body: None,
                }
            }
        }
    }

    async fn exchange(&mut self, t: &Template, keep_body: bool) -> Result<Answer, ErrorKind> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().ok_or(ErrorKind::Connect)?;
        sender.ready().await.map_err(|_| ErrorKind::Io)?;
        let resp = sender
            .send_request(t.build())
            .await
            .map_err(|_| ErrorKind::Io)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut bytes = 0u64;
        let mut kept = keep_body.then(Vec::new);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ErrorKind::Io)?;
            if let Some(d) = frame.data_ref() {
                bytes += d.len() as u64;
                if let Some(k) = kept.as_mut() {
                    k.extend_from_slice(d);
                }
            }
        }
        let outcome = if (200..300).contains(&status) {
            Outcome::Ok { status }
        } else {
            Outcome::Status { status }
        };
        Ok(Answer {
            outcome,
            bytes,
            body: kept.map(Bytes::from),
        })
    }
}

/// One GET with a fresh connection, for set-up calls (readiness, metadata, statistics).
pub async fn get(authority: &str, path: &str, timeout: Duration) -> Result<(u16, Bytes), String> {
    let mut c = Conn::new(authority);
    let t = Template::new(Method::GET, authority, path, Bytes::new(), &[]);
    let a = c.send(&t, timeout, true).await;
    match a.outcome {
        Outcome::Ok { status } | Outcome::Status { status } => {
            Ok((status, a.body.unwrap_or_default()))
        }
        Outcome::Failed(ErrorKind::Connect) => Err("connection refused".into()),
        Outcome::Failed(k) => Err(format!("{} error", k.as_str())),
    }
}
