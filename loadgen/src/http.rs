//! A minimal HTTP/1.1 keep-alive client for the load loop, and the request template.
//!
//! The request is serialised once ([`Template::wire`]): each send is one `write` of those bytes
//! (more only for bodies larger than the socket buffer), or for large requests the way
//! [`crate::send`] chose for the run (`sendfile` or `splice`, [`Wire::sending`]), and the answer
//! is read into a reused buffer and parsed incrementally ([`crate::h1`]). There is no per-request allocation, no
//! header map and no task hop: the connection's own task writes, reads and parses. The
//! per-request timeout is one timer per connection that is only re-armed when it fires early,
//! so the common case costs no timer-wheel work.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Uri};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::h1::ResponseParser;
use crate::record::{ErrorKind, Outcome};
use crate::send::{Pipe, SendPath};

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

    /// The whole request as it goes on the wire: request line, headers (`Host` first, a
    /// `Content-Length` unless given or the body is empty on a method without one), body.
    pub fn wire(&self) -> Wire {
        let mut out = Vec::with_capacity(256 + self.body.len());
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut put = |n: &[u8], v: &[u8]| {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(h) = self.headers.get(hyper::header::HOST) {
            put(b"host", h.as_bytes());
        }
        for (n, v) in &self.headers {
            if n != hyper::header::HOST {
                put(n.as_str().as_bytes(), v.as_bytes());
            }
        }
        let needs_length = !self.body.is_empty()
            || matches!(self.method, Method::POST | Method::PUT | Method::PATCH);
        if needs_length && !self.headers.contains_key(hyper::header::CONTENT_LENGTH) {
            put(b"content-length", self.body.len().to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        Wire {
            bytes: Bytes::from(out),
            head_request: self.method == Method::HEAD,
            path: SendPath::Write,
            file: None,
        }
    }
}

/// A serialised request.
#[derive(Clone, Debug)]
pub struct Wire {
    /// Request line, headers and body.
    pub bytes: Bytes,
    /// A `HEAD` request: its answer has no body.
    pub head_request: bool,
    /// How each send goes on the wire.
    path: SendPath,
    /// The same bytes in a memory file, for `sendfile`.
    file: Option<Arc<std::fs::File>>,
}

impl Wire {
    /// The same request sent the `path` way (`sendfile` falls back to `write` where no memory
    /// file can be made).
    pub fn sending(mut self, path: SendPath) -> Wire {
        self.file = None;
        self.path = path;
        if path == SendPath::Sendfile {
            self.file = crate::send::memfd_copy(&self.bytes);
            if self.file.is_none() {
                self.path = SendPath::Write;
            }
        }
        self
    }

    /// How each send goes on the wire.
    pub fn path(&self) -> SendPath {
        self.path
    }
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

impl Answer {
    fn failed(kind: ErrorKind) -> Answer {
        Answer {
            outcome: Outcome::Failed(kind),
            bytes: 0,
            body: None,
        }
    }
}

/// First size of a connection's read buffer; it grows (to [`MAX_HEAD`]) only for larger heads.
const READ_BUF: usize = 16 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 1024 * 1024;

/// Read buffer: bytes `start..end` of `buf` are received and not parsed yet.
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room to read into: compacts, or grows when unparsed bytes fill the buffer.
    fn spare(&mut self) -> Result<&mut [u8], ErrorKind> {
        if self.buf.is_empty() {
            self.buf = vec![0; READ_BUF];
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                return Err(ErrorKind::Protocol);
            }
        }
        Ok(&mut self.buf[self.end..])
    }
}

/// A lazily (re)connected HTTP/1.1 connection.
pub struct Conn {
    authority: String,
    stream: Option<TcpStream>,
    /// The pipe of the `splice` way, made on first use.
    pipe: Option<Pipe>,
    rb: ReadBuf,
    /// Fires at or before the current request's deadline; re-armed only when early.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    /// A connection to `authority` (`host:port`), opened on first use.
    pub fn new(authority: &str) -> Conn {
        Conn {
            authority: authority.to_string(),
            stream: None,
            pipe: None,
            rb: ReadBuf {
                buf: Vec::new(),
                start: 0,
                end: 0,
            },
            timer: None,
        }
    }

    /// Opens the connection now (so the first timed request does not pay for it).
    pub async fn warm(&mut self) -> Result<(), ErrorKind> {
        if self.stream.is_none() {
            self.stream = Some(connect(&self.authority).await?);
            self.rb.clear();
        }
        Ok(())
    }

    /// Sends `req` (its send started at `sent`) and reads the whole answer by `sent + timeout`.
    pub async fn send(
        &mut self,
        req: &Wire,
        timeout: Duration,
        sent: Instant,
        keep_body: bool,
    ) -> Answer {
        let deadline = sent + timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        let res = {
            let mut ex = pin!(exchange(
                &mut self.stream,
                &mut self.pipe,
                &mut self.rb,
                &self.authority,
                req,
                keep_body
            ));
            poll_fn(|cx| {
                if let Poll::Ready(r) = ex.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                // The timer may still be set for an earlier request's deadline: move it on.
                while timer.as_mut().poll(cx).is_ready() {
                    if Instant::now() >= deadline {
                        return Poll::Ready(None);
                    }
                    timer.as_mut().reset(deadline.into());
                }
                Poll::Pending
            })
            .await
        };
        match res {
            Some(Ok(a)) => a,
            Some(Err(kind)) => {
                self.stream = None;
                self.pipe = None;
                Answer::failed(kind)
            }
            None => {
                // The connection is mid-exchange; HTTP/1.1 cannot reuse it, and its pipe may
                // hold the rest of an unsent request.
                self.stream = None;
                self.pipe = None;
                Answer::failed(ErrorKind::Timeout)
            }
        }
    }
}

async fn connect(authority: &str) -> Result<TcpStream, ErrorKind> {
    let s = TcpStream::connect(authority)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// One request and its answer on `stream`, (re)connecting as needed.
async fn exchange(
    stream: &mut Option<TcpStream>,
    pipe: &mut Option<Pipe>,
    rb: &mut ReadBuf,
    authority: &str,
    req: &Wire,
    keep_body: bool,
) -> Result<Answer, ErrorKind> {
    // A kept-alive connection the server closed while idle shows up only when used: then the
    // request is sent once more on a fresh connection (the server never saw it).
    let mut retried = false;
    'attempt: loop {
        let reused = stream.is_some();
        if !reused {
            *stream = Some(connect(authority).await?);
            rb.clear();
        }
        let Some(s) = stream.as_mut() else {
            return Err(ErrorKind::Connect);
        };
        let wrote = crate::send::send(s, &req.bytes, req.path, req.file.as_deref(), pipe).await;
        if wrote.is_err() {
            *stream = None;
            if reused && !retried {
                retried = true;
                continue 'attempt;
            }
            return Err(ErrorKind::Io);
        }
        let mut p = ResponseParser::new(req.head_request, keep_body);
        loop {
            if !rb.data().is_empty() {
                let n = p.feed(rb.data()).map_err(|_| ErrorKind::Protocol)?;
                rb.consume(n);
                if p.done() {
                    break;
                }
            }
            let spare = rb.spare()?;
            match s.read(spare).await {
                Ok(0) | Err(_) if p.untouched() && reused && !retried => {
                    *stream = None;
                    retried = true;
                    continue 'attempt;
                }
                Ok(0) => {
                    p.eof().map_err(|_| ErrorKind::Io)?;
                    *stream = None;
                    break;
                }
                Ok(n) => rb.end += n,
                Err(_) => return Err(ErrorKind::Io),
            }
        }
        // Bytes after a complete answer were never asked for: the connection is out of step.
        if p.must_close() || !rb.data().is_empty() {
            *stream = None;
            rb.clear();
        }
        let status = p.status();
        let outcome = if (200..300).contains(&status) {
            Outcome::Ok { status }
        } else {
            Outcome::Status { status }
        };
        return Ok(Answer {
            outcome,
            bytes: p.body_len(),
            body: p.take_body().map(Bytes::from),
        });
    }
}

/// One GET with a fresh connection, for set-up calls (readiness, metadata, statistics).
pub async fn get(authority: &str, path: &str, timeout: Duration) -> Result<(u16, Bytes), String> {
    let mut c = Conn::new(authority);
    let t = Template::new(Method::GET, authority, path, Bytes::new(), &[]);
    let a = c.send(&t.wire(), timeout, Instant::now(), true).await;
    match a.outcome {
        Outcome::Ok { status } | Outcome::Status { status } => {
            Ok((status, a.body.unwrap_or_default()))
        }
        Outcome::Failed(ErrorKind::Connect) => Err("connection refused".into()),
        Outcome::Failed(k) => Err(format!("{} error", k.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[test]
    fn wire_has_host_first_and_a_length_for_bodies() {
        let t = Template::new(
            Method::POST,
            "127.0.0.1:8000",
            "/v2/models/m/infer?x=1",
            Bytes::from_static(b"{}"),
            &[("X-A".into(), "b".into())],
        );
        let w = t.wire();
        assert_eq!(
            &w.bytes[..],
            &b"POST /v2/models/m/infer?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nx-a: b\r\ncontent-length: 2\r\n\r\n{}"[..]
        );
        let g = Template::new(Method::GET, "h:1", "/", Bytes::new(), &[]).wire();
        assert_eq!(&g.bytes[..], &b"GET / HTTP/1.1\r\nhost: h:1\r\n\r\n"[..]);
        assert!(!g.head_request);
    }

    /// A raw TCP peer that answers each request with the next of `answers`, written in pieces,
    /// then closes; returns its address.
    async fn peer(answers: Vec<Vec<u8>>, close_after_each: bool) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            'conns: loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => continue 'conns,
                        Ok(_) => {}
                    }
                    let Some(a) = answers.next() else { return };
                    for piece in a.chunks(7) {
                        s.write_all(piece).await.unwrap();
                        s.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    if close_after_each {
                        continue 'conns;
                    }
                }
            }
        });
        addr
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn keep_alive_split_reads_chunked_and_errors_by_kind() {
        rt().block_on(async {
            let addr = peer(
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                        .to_vec(),
                    b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n".to_vec(),
                    b"HTTP/1.1 2x0 nope\r\n\r\n".to_vec(),
                ],
                false,
            )
            .await;
            let w = Template::new(Method::GET, &addr, "/", Bytes::new(), &[]).wire();
            let mut c = Conn::new(&addr);
            let t = Duration::from_secs(5);
            let a = c.send(&w, t, Instant::now(), true).await;
            assert_eq!(a.outcome, Outcome::Ok { status: 200 });
            assert_eq!(a.body.as_deref(), Some(&b"hello"[..]));
            let a = c.send(&w, t, Instant::now(), false).await;
            assert_eq!((a.outcome, a.bytes), (Outcome::Ok { status: 200 }, 3));
            let a = c.send(&w, t, Instant::now(), false).await;
            assert_eq!(a.outcome, Outcome::Status { status: 503 });
            let a = c.send(&w, t, Instant::now(), false).await;
            assert_eq!(a.outcome, Outcome::Failed(ErrorKind::Protocol));
        });
    }

    /// A large request arrives byte for byte each way it can be sent, twice on one keep-alive
    /// connection (the file offset starts at 0 for each send, the pipe is empty after one).
    #[test]
    fn large_requests_are_sent_whole_every_way() {
        for path in SendPath::ALL {
            large_request_sent_whole(path);
        }
    }

    fn large_request_sent_whole(path: SendPath) {
        rt().block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let body: Bytes = (0..700_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>()
                .into();
            let w = Template::new(Method::POST, &addr, "/big", body, &[])
                .wire()
                .sending(path);
            assert_eq!(w.path(), path);
            let expect = w.bytes.clone();
            let server = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut got = Vec::new();
                for _ in 0..2 {
                    let mut req = vec![0u8; expect.len()];
                    s.read_exact(&mut req).await.unwrap();
                    got.push(req == expect[..]);
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                }
                got
            });
            let mut c = Conn::new(&addr);
            for _ in 0..2 {
                let a = c
                    .send(&w, Duration::from_secs(10), Instant::now(), true)
                    .await;
                assert!(
                    matches!(a.outcome, Outcome::Ok { status: 200 }),
                    "{:?}",
                    a.outcome
                );
            }
            assert_eq!(
                server.await.unwrap(),
                [true, true],
                "{path:?}: bytes differ"
            );
        });
    }

    /// A request cut short by its timeout (the peer stopped reading: the socket's buffers are
    /// full mid-send) leaves nothing behind: the next one, on a new connection, arrives byte for
    /// byte each way (the `splice` way's pipe is dropped with the connection).
    #[test]
    fn a_timeout_mid_send_leaves_nothing_behind() {
        for path in SendPath::ALL {
            rt().block_on(async {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap().to_string();
                // Larger than loopback's socket buffers together, so the send blocks.
                let body: Bytes = (0..16_000_000u32)
                    .map(|i| (i % 249) as u8)
                    .collect::<Vec<_>>()
                    .into();
                let w = Template::new(Method::POST, &addr, "/big", body, &[])
                    .wire()
                    .sending(path);
                let expect = w.bytes.clone();
                let server = tokio::spawn(async move {
                    let (stalled, _) = l.accept().await.unwrap();
                    let (mut s, _) = l.accept().await.unwrap();
                    let mut req = vec![0u8; expect.len()];
                    s.read_exact(&mut req).await.unwrap();
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await
                        .unwrap();
                    drop(stalled);
                    req == expect[..]
                });
                let mut c = Conn::new(&addr);
                let a = c
                    .send(&w, Duration::from_millis(300), Instant::now(), false)
                    .await;
                assert_eq!(a.outcome, Outcome::Failed(ErrorKind::Timeout), "{path:?}");
                let a = c
                    .send(&w, Duration::from_secs(30), Instant::now(), false)
                    .await;
                assert_eq!(a.outcome, Outcome::Ok { status: 200 }, "{path:?}");
                assert!(server.await.unwrap(), "{path:?}: bytes differ");
            });
        }
    }

    #[test]
    fn server_closing_idle_connections_is_retried_once() {
        rt().block_on(async {
            // The peer closes after every answer (without saying so): the next request on the
            // old connection finds it closed and goes out again on a new one.
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
            let addr = peer(vec![ok.clone(), ok.clone(), ok], true).await;
            let w = Template::new(Method::GET, &addr, "/", Bytes::new(), &[]).wire();
            let mut c = Conn::new(&addr);
            for _ in 0..3 {
                let a = c
                    .send(&w, Duration::from_secs(5), Instant::now(), false)
                    .await;
                assert_eq!(a.outcome, Outcome::Ok { status: 200 });
            }
        });
    }

    #[test]
    fn timeouts_and_refused_connections_have_their_kind() {
        rt().block_on(async {
            // Accepts and never answers.
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let hold = tokio::spawn(async move {
                let mut keep = Vec::new();
                while let Ok((s, _)) = l.accept().await {
                    keep.push(s);
                }
            });
            let w = Template::new(Method::GET, &addr, "/", Bytes::new(), &[]).wire();
            let mut c = Conn::new(&addr);
            let start = Instant::now();
            let a = c
                .send(&w, Duration::from_millis(150), Instant::now(), false)
                .await;
            assert_eq!(a.outcome, Outcome::Failed(ErrorKind::Timeout));
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(150) && took < Duration::from_secs(2),
                "{took:?}"
            );
            // The timer of the first request fires early for the second one and is moved on.
            let a = c
                .send(&w, Duration::from_millis(300), Instant::now(), false)
                .await;
            assert_eq!(a.outcome, Outcome::Failed(ErrorKind::Timeout));
            hold.abort();

            let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let gone = closed.local_addr().unwrap().to_string();
            drop(closed);
            let mut c = Conn::new(&gone);
            let a = c
                .send(&w, Duration::from_secs(1), Instant::now(), false)
                .await;
            assert_eq!(a.outcome, Outcome::Failed(ErrorKind::Connect));
        });
    }
}
