use clap::Parser;
use kis_adapter::cli::Cli;
use kis_adapter::server;

use crate::common::Pki;

async fn start_err(args: &[String]) -> String {
    let mut a = vec![
        "kis-adapter".to_string(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
    ];
    a.extend(args.iter().cloned());
    match server::start(Cli::parse_from(a)).await {
        Ok(r) => {
            r.shutdown().await;
            panic!("start-up should have failed for {args:?}");
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_inputs_fail_with_one_clear_line() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.pem"), "not a pem").unwrap();
    std::fs::write(pki.path("empty-token"), "  \n").unwrap();
    let dev = "--no-delegated-authorization".to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![dev.clone()], "no serving certificate"),
        (
            vec![
                format!("--tls-cert-file={}", pki.path("tls.crt")),
                dev.clone(),
            ],
            "must be given together",
        ),
        (
            vec![
                format!("--tls-cert-file={}", pki.path("nope.crt")),
                format!("--tls-private-key-file={}", pki.path("tls.key")),
                dev.clone(),
            ],
            "--tls-cert-file",
        ),
        (
            vec![
                format!("--tls-cert-file={}", pki.path("garbage.pem")),
                format!("--tls-private-key-file={}", pki.path("tls.key")),
                dev.clone(),
            ],
            "serving certificate",
        ),
        (
            vec![
                format!("--tls-cert-file={}", pki.path("tls.crt")),
                format!("--tls-private-key-file={}", pki.path("garbage.pem")),
                dev.clone(),
            ],
            "serving key",
        ),
        (
            vec![
                "--self-signed".into(),
                format!("--client-ca-file={}", pki.path("garbage.pem")),
                dev.clone(),
            ],
            "client CA",
        ),
        (
            vec![
                "--self-signed".into(),
                format!("--requestheader-client-ca-file={}", pki.path("missing.crt")),
                dev.clone(),
            ],
            "--requestheader-client-ca-file",
        ),
        (
            vec![
                "--self-signed".into(),
                format!("--publish-token-file={}", pki.path("empty-token")),
                dev.clone(),
            ],
            "is empty",
        ),
        (
            vec![
                "--self-signed".into(),
                format!("--targets-file={}", pki.path("garbage.pem")),
                dev.clone(),
            ],
            "--targets-file",
        ),
        (
            vec!["--self-signed".into()],
            "no kubeconfig for delegated authorization",
        ),
        (
            vec![
                "--self-signed".into(),
                format!("--kubeconfig={}", pki.path("missing.kubeconfig")),
            ],
            "kubeconfig",
        ),
    ];
    for (args, want) in cases {
        let e = start_err(&args).await;
        assert!(
            e.contains(want),
            "{args:?}: got {e:?}, want it to mention {want:?}"
        );
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
}

#[tokio::test]
async fn self_signed_mode_serves_health_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = format!("--cert-dir={}", dir.path().display());
    let a = [
        "kis-adapter",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--self-signed",
        "--no-delegated-authorization",
        &cert_dir,
    ];
    let r = server::start(Cli::parse_from(a)).await.unwrap();
    let ca = std::fs::read(dir.path().join("apiserver.crt")).unwrap();
    let client = kis_adapter::client::TlsClient::new(r.addr, "localhost", &ca, None).unwrap();
    let mut c = client.connect().await.unwrap();
    assert_eq!(c.get_ok("/healthz").await.unwrap(), b"ok");
    // No client CA configured: API requests are refused, not served anonymously.
    let (code, _) = c.request("GET", "/apis", &[], None).await.unwrap();
    assert_eq!(code, 401);
    // A client that trusts another CA cannot connect.
    assert!(Pki::new().client(r.addr, None).connect().await.is_err());
    r.shutdown().await;
}

#[tokio::test]
async fn serving_certificate_is_reloaded_when_its_files_change() {
    let pki = Pki::new();
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    flags.push("--authentication-config-resync=100ms".into());
    let r = crate::common::start(&flags).await;
    pki.client(r.addr, None).connect().await.unwrap();
    let new_ca = kis_adapter::pki::Ca::new("rotated-server-ca").unwrap();
    let new = new_ca.server(&["localhost"]).unwrap();
    // A half-written pair (new cert, old key) must not replace the working one.
    std::fs::write(pki.path("tls.crt"), &new.cert).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        pki.client(r.addr, None).connect().await.is_ok(),
        "a mismatched pair must be ignored"
    );
    std::fs::write(pki.path("tls.key"), &new.key).unwrap();
    let client =
        kis_adapter::client::TlsClient::new(r.addr, "localhost", new_ca.cert_pem.as_bytes(), None)
            .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while client.connect().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new serving certificate not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        pki.client(r.addr, None).connect().await.is_err(),
        "old CA must no longer verify the server"
    );
    r.shutdown().await;
}

/// The binary refuses careless flags before doing anything: one line naming the flag, exit 2.
#[test]
fn the_binary_refuses_bad_flags_with_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = format!(
        "--state-file={}",
        dir.path().join("no-such-dir/state.json").display()
    );
    for (args, flag) in [
        (
            vec!["--self-signed", "--authentication-config-resync=0"],
            "--authentication-config-resync",
        ),
        (
            vec!["--self-signed", "--worker-threads", "0"],
            "--worker-threads",
        ),
        (
            vec!["--self-signed", "--self-signed-hosts", ""],
            "--self-signed-hosts",
        ),
        (vec!["--self-signed", missing_dir.as_str()], "--state-file"),
        (
            vec!["--self-signed", "--max-connections=0"],
            "--max-connections",
        ),
        (vec!["--self-signed", "--idle-timeout=0"], "--idle-timeout"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kis-adapter"))
            .args([
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--no-delegated-authorization",
            ])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("kis-adapter: {flag}:")),
            "{args:?}: {err}"
        );
    }
}

/// A background task that ends turns /readyz to 503 naming it; the replica keeps answering
/// /livez (the probe decides), and readiness never comes back by itself.
#[tokio::test]
async fn a_killed_reloader_flips_readiness() {
    let pki = Pki::new();
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    let r = crate::common::start(&flags).await;
    let mut c = pki.client(r.addr, None).connect().await.unwrap();
    assert_eq!(c.get_ok("/readyz").await.unwrap(), b"ok");
    assert!(r.tasks().contains(&"file-reload"), "{:?}", r.tasks());
    assert!(r.kill_task("file-reload"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let (code, body) = c.request("GET", "/readyz", &[], None).await.unwrap();
        if code == 503 {
            break String::from_utf8(body).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never failed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(body.contains("task file-reload ended"), "{body}");
    assert_eq!(c.get_ok("/livez").await.unwrap(), b"ok");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (code, _) = c.request("GET", "/readyz", &[], None).await.unwrap();
    assert_eq!(code, 503);
    r.shutdown().await;
}

/// Shutdown turns readiness off first, so endpoints drop the replica while it drains.
#[tokio::test]
async fn readiness_follows_the_listener() {
    let pki = Pki::new();
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    let r = crate::common::start(&flags).await;
    let h = r.state.health.clone();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !h.not_ready().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            h.not_ready()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    r.shutdown().await;
    let why = h.not_ready();
    assert!(why.iter().any(|w| w == "shutting down"), "{why:?}");
    assert!(why.iter().any(|w| w == "not listening"), "{why:?}");
}
