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
