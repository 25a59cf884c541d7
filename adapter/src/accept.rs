//! The HTTPS accept loop, with the limits that keep careless or hostile clients from exhausting
//! the adapter (client certificates are optional, so any pod that reaches the port completes the
//! TLS handshake):
//!
//! - at most `--max-connections` open, and `--max-connections-per-client` per IP address; a
//!   connection over either is closed at accept, before any TLS work;
//! - the TLS handshake, and then the first request header, each within
//!   `--request-header-timeout` (hyper's header-read timeout covers later HTTP/1.1 requests);
//! - a connection with no request in flight for `--idle-timeout` is closed;
//! - a request whose body trickles in (or that is otherwise slow) is answered 504 after
//!   `--request-timeout` and its connection closed;
//! - small header buffers (64 KiB) and at most 100 concurrent h2 streams per connection.
//!
//! Each connection uses one snapshot of the reloadable TLS and authentication settings, so a
//! later swap does not change what an open connection was accepted as.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::Peer;
use crate::config::ConnLimits;
use crate::lifecycle::{Health, stopped};
use crate::metrics::Metrics;
use crate::reload::Reloader;

/// Largest request header accepted (HTTP/1.1 read buffer, h2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Concurrent h2 streams per connection.
const MAX_H2_STREAMS: u32 = 100;

/// Open connections, in total and per client address.
#[derive(Debug, Default)]
struct Counts {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; releases its slots when dropped.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        let mut m = self.counts.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
        self.metrics.open_connections.dec();
    }
}

impl Counts {
    /// A slot for a connection from `ip`, or which limit refused it.
    fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &ConnLimits,
        metrics: &Arc<Metrics>,
    ) -> Result<Slot, &'static str> {
        let mut m = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::Relaxed) >= limits.max_connections {
            return Err("max_connections");
        }
        let n = m.entry(ip).or_insert(0);
        if *n >= limits.max_per_client {
            return Err("max_connections_per_client");
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        metrics.open_connections.inc();
        Ok(Slot {
            counts: self.clone(),
            ip,
            metrics: metrics.clone(),
        })
    }
}

/// Requests in flight and the time of the last request activity on one connection.
#[derive(Debug)]
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` of the last request start or end.
    last_ms: AtomicU64,
    /// Whether any request has begun.
    any: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            any: AtomicUsize::new(0),
        }
    }
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn begin(&self) {
        self.any.store(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }
    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }
    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &ConnLimits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let quiet = self
            .start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)));
        if self.any.load(Ordering::Relaxed) == 0 {
            // No complete request header yet (silent, or a partial header): the first header has
            // its own budget, counted from the end of the handshake.
            (quiet >= limits.header_timeout).then_some("header_timeout")
        } else {
            (quiet >= limits.idle_timeout).then_some("idle_timeout")
        }
    }
}

/// The accept loop and what each connection needs.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) app: axum::Router,
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    pub(crate) limits: ConnLimits,
}

impl Acceptor {
    /// Accepts until `stop`; connections then get `shutdown_grace` to finish.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let counts = Arc::new(Counts::default());
        let last_warn = Mutex::new(None::<Instant>);
        self.health.set_listening(true);
        loop {
            let (tcp, remote) = tokio::select! {
                _ = stopped(&mut stop) => break,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let slot = match counts.admit(remote.ip(), &self.limits, &self.metrics) {
                Ok(s) => s,
                Err(reason) => {
                    Metrics::count(&self.metrics.connections_closed, reason);
                    let mut w = last_warn.lock().unwrap_or_else(|e| e.into_inner());
                    if w.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(%remote, reason, "refusing connections over the limit (logged at most every 10 s)");
                        *w = Some(Instant::now());
                    }
                    drop(tcp);
                    continue;
                }
            };
            let conn = Conn {
                app: self.app.clone(),
                reloader: self.reloader.clone(),
                metrics: self.metrics.clone(),
                limits: self.limits,
            };
            tokio::spawn(conn.serve(tcp, remote, slot, stop.clone()));
        }
        self.health.set_listening(false);
    }
}

/// One connection's service.
struct Conn {
    app: axum::Router,
    reloader: Arc<Reloader>,
    metrics: Arc<Metrics>,
    limits: ConnLimits,
}

impl Conn {
    async fn serve(
        self,
        tcp: TcpStream,
        remote: SocketAddr,
        _slot: Slot,
        mut stop: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let cur = self.reloader.current();
        let acceptor = TlsAcceptor::from(cur.server_config.clone());
        let stream =
            match tokio::time::timeout(self.limits.header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%remote, error = %e, "rejected: TLS handshake failed");
                    Metrics::count(&self.metrics.authn_failures, "tls_handshake");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "closed: TLS handshake timed out");
                    Metrics::count(&self.metrics.connections_closed, "handshake_timeout");
                    return;
                }
            };
        let peer = Arc::new(match stream.get_ref().1.peer_certificates() {
            Some(chain) => cur.authn.classify(chain),
            None => Peer::Anonymous,
        });
        let activity = Arc::new(Activity::new());
        let act = activity.clone();
        let app = self.app.clone();
        let request_timeout = self.limits.request_timeout;
        let metrics = self.metrics.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(peer.clone());
            let act = act.clone();
            let app = app.clone();
            let metrics = metrics.clone();
            act.begin();
            async move {
                let r = match tokio::time::timeout(request_timeout, app.oneshot(req)).await {
                    Ok(r) => r,
                    Err(_) => {
                        Metrics::count(&metrics.connections_closed, "request_timeout");
                        Ok(timed_out())
                    }
                };
                act.end();
                r
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(MAX_HEADER_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS)
            .max_header_list_size(MAX_HEADER_BYTES as u32);
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let mut conn = std::pin::pin!(conn);
        let check = (self.limits.header_timeout.min(self.limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut tick = tokio::time::interval(check);
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stopped(&mut stop), if deadline.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    deadline = Some(Instant::now() + self.limits.shutdown_grace);
                }
                _ = tick.tick() => {
                    if let Some(d) = deadline {
                        if Instant::now() >= d {
                            return;
                        }
                    } else if let Some(reason) = activity.expired(&self.limits) {
                        tracing::debug!(%remote, reason, "closing connection");
                        Metrics::count(&self.metrics.connections_closed, reason);
                        conn.as_mut().graceful_shutdown();
                        // A client that ignores the close gets the header budget to go.
                        deadline = Some(Instant::now() + self.limits.header_timeout);
                    }
                }
            }
        }
    }
}

/// 504 as a `metav1.Status`, with `Connection: close` (HTTP/1.1) so a client that was too slow
/// once does not keep the connection.
fn timed_out() -> axum::response::Response {
    let st = crate::api::Status::failure(504, "Timeout", "request did not complete in time");
    let body = serde_json::to_vec(&st).unwrap_or_default();
    let mut r = axum::response::Response::new(axum::body::Body::from(body));
    *r.status_mut() = hyper::StatusCode::GATEWAY_TIMEOUT;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_enforce_both_limits_and_release_on_drop() {
        let limits = ConnLimits {
            max_connections: 3,
            max_per_client: 2,
            ..ConnLimits::default()
        };
        let m = Arc::new(Metrics::new());
        let c = Arc::new(Counts::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let s1 = c.admit(a, &limits, &m).unwrap();
        let _s2 = c.admit(a, &limits, &m).unwrap();
        assert_eq!(
            c.admit(a, &limits, &m).err(),
            Some("max_connections_per_client")
        );
        let _s3 = c.admit(b, &limits, &m).unwrap();
        assert_eq!(c.admit(b, &limits, &m).err(), Some("max_connections"));
        assert_eq!(m.open_connections.get(), 3);
        drop(s1);
        assert!(c.admit(a, &limits, &m).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn silent_and_idle_connections_expire_busy_ones_do_not() {
        let limits = ConnLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            ..ConnLimits::default()
        };
        let a = Activity::new();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(a.expired(&limits), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.expired(&limits), Some("header_timeout"));
        let a = Activity::new();
        a.begin();
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(a.expired(&limits), None, "a request in flight");
        a.end();
        tokio::time::advance(Duration::from_secs(89)).await;
        assert_eq!(a.expired(&limits), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.expired(&limits), Some("idle_timeout"));
    }
}
