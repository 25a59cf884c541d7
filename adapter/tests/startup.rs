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
