//! Slow and idle connections against the real binary: a flood of connections that complete the
//! TLS handshake and then send half a request (or nothing) stays bounded in count and memory,
//! is closed after the header timeout, and a normal client is served throughout.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::common::{Pki, publish};

struct Adapter {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// `kis_adapter_open_connections` from the plain-HTTP metrics port.
fn open_connections(metrics: SocketAddr) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("kis_adapter_open_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no open_connections gauge in {body}"))
}

fn start(pki: &Pki, extra: &[&str]) -> Adapter {
    let port = free_port();
    let mport = free_port();
    let mut args = pki.tls_flags();
    args.extend([
        "--no-delegated-authorization".to_string(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--metrics-port={mport}"),
        "--worker-threads=2".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(env!("CARGO_BIN_EXE_kis-adapter"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = Adapter {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        metrics: SocketAddr::from(([127, 0, 0, 1], mport)),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(a.metrics).is_err() {
        assert!(Instant::now() < deadline, "adapter did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    a
}

/// Opens a connection from `src`, completes TLS and sends half a request header, then holds it.
/// `None` when the adapter refused it (closed at accept).
async fn slow_client(
    src: IpAddr,
    to: SocketAddr,
    connector: tokio_rustls::TlsConnector,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(src, 0)).ok()?;
    let tcp = sock.connect(to).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
    let mut tls = tokio::time::timeout(Duration::from_secs(20), connector.connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: kis-adapter\r\nX-Slow: ")
        .await
        .ok()?;
    tls.flush().await.ok()?;
    Some(tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_connection_flood_is_bounded_and_a_normal_client_is_served() {
    let pki = Pki::new();
    let a = start(
        &pki,
        &[
            "--max-connections=400",
            "--max-connections-per-client=60",
            "--request-header-timeout=3s",
            "--idle-timeout=3s",
        ],
    );
    let pid = a.child.id();
    let mut good = crate::common::connect_addr(&pki, a.addr, Some(&pki.alice)).await;
    publish(&mut good, "prod", "m", &[("target", "web")], 7.0, 600).await;
    let base_rss = rss_kib(pid);

    // 3 attacking addresses × 300 connections each, 900 in all: at most 60 per address admitted.
    let roots = kis_adapter::tls::parse_roots(pki.server_ca.cert_pem.as_bytes(), "ca").unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(kis_adapter::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let mut handles = Vec::new();
    for i in 0..900u32 {
        let src = IpAddr::from([127, 0, 0, 2 + (i % 3) as u8]);
        handles.push(tokio::spawn(slow_client(src, a.addr, connector.clone())));
    }
    // Silent ones too: TCP only, never a TLS byte.
    let mut silent = Vec::new();
    for _ in 0..50 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.5:0".parse().unwrap()).unwrap();
        silent.push(sock.connect(a.addr).await.unwrap());
    }
    let mut held = Vec::new();
    for h in handles {
        if let Some(s) = h.await.unwrap() {
            held.push(s);
        }
    }
    // The normal client is served while the flood holds its connections.
    let v = good
        .get_ok(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/m?labelSelector=target%3Dweb",
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&v).contains(r#""value":"7""#));
    let open = open_connections(a.metrics);
    let rss = rss_kib(pid);
    eprintln!(
        "flood: {} slow connections through TLS, {open} open, RSS {base_rss} -> {rss} KiB",
        held.len()
    );
    assert!(
        held.len() <= 180,
        "{} slow connections got through TLS; at most 3 × 60",
        held.len()
    );
    assert!(held.len() >= 30, "the flood itself failed: {}", held.len());
    // Admitted: ≤ 60 per attacking address, 50 silent, 1 normal.
    assert!(open <= 231, "{open} connections open");
    assert!(
        rss.saturating_sub(base_rss) < 24 * 1024,
        "RSS grew from {base_rss} KiB to {rss} KiB"
    );

    // After the header timeout every slow and silent connection is closed by the adapter.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = open_connections(a.metrics);
        if open <= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut s = held.pop().unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "a held slow connection should read EOF/error, got {n:?}"
    );
    // The normal client's keep-alive connection was idle longer than --idle-timeout and was
    // closed too; a new one is served.
    let mut again = crate::common::connect_addr(&pki, a.addr, Some(&pki.alice)).await;
    assert_eq!(again.get_ok("/readyz").await.unwrap(), b"ok");
}

/// A request whose body trickles in is answered 504 after --request-timeout and the connection
/// closed; the idle/header watchdog does not cover it, because a request is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_body_is_cut_off_by_the_request_timeout() {
    let pki = Pki::new();
    let a = start(&pki, &["--request-timeout=1s", "--idle-timeout=30s"]);
    let roots = kis_adapter::tls::parse_roots(pki.server_ca.cert_pem.as_bytes(), "ca").unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(kis_adapter::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(a.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        b"PUT /targets/v1/namespaces/prod/m HTTP/1.1\r\nHost: kis-adapter\r\n\
          Authorization: Bearer s3cret-token\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"value\":",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(read.is_ok(), "the connection was not closed: {text}");
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains(r#""reason":"Timeout""#), "{text}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "cut off too early: {took:?}"
    );
}
