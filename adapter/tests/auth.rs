use std::sync::atomic::Ordering;
use std::time::Duration;

use kis_adapter::pki::Ca;

use kis_adapter::pki::Pem;

use crate::common::{self, PROXY_CN, Pki, StandIn, json};

const METRIC: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/m";

async fn setup(extra: &[&str]) -> (Pki, StandIn, kis_adapter::server::Running) {
    let pki = Pki::new();
    let standin = StandIn::default();
    let kc = standin.serve(pki.dir.path()).await;
    let mut flags = pki.tls_flags();
    flags.push(format!("--kubeconfig={}", kc.display()));
    flags.extend(extra.iter().map(|s| s.to_string()));
    let r = common::start(&flags).await;
    let mut c = common::connect(&pki, &r, None).await;
    common::publish(&mut c, "prod", "m", &[], 3.0, 600).await;
    (pki, standin, r)
}

#[tokio::test]
async fn verified_front_proxy_headers_are_used_and_authorized_by_sar() {
    let (pki, standin, r) = setup(&[]).await;
    standin.allowed.lock().unwrap().insert("carol:m".into());
    let mut c = common::connect(&pki, &r, Some(&pki.proxy)).await;

    // system:masters skips the review (the aggregator's availability probe).
    let (code, _) = c
        .request(
            "GET",
            "/apis/external.metrics.k8s.io/v1beta1",
            &[
                ("x-remote-user", "system:kube-aggregator"),
                ("x-remote-group", "system:masters"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(standin.review_count(), 0);

    let (code, body) = c
        .request(
            "GET",
            METRIC,
            &[
                ("x-remote-user", "carol"),
                ("x-remote-group", "team-a"),
                ("x-remote-extra-scopes", "s1"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["items"][0]["value"], "3");
    let review = standin.reviews.lock().unwrap()[0].clone();
    assert_eq!(review["spec"]["user"], "carol");
    assert_eq!(
        review["spec"]["groups"],
        serde_json::json!(["team-a", "system:authenticated"])
    );
    assert_eq!(review["spec"]["extra"]["scopes"], serde_json::json!(["s1"]));
    let ra = &review["spec"]["resourceAttributes"];
    assert_eq!(
        (
            ra["verb"].as_str(),
            ra["group"].as_str(),
            ra["resource"].as_str(),
            ra["namespace"].as_str()
        ),
        (
            Some("list"),
            Some("external.metrics.k8s.io"),
            Some("m"),
            Some("prod")
        )
    );

    // SAR deny → 403 Status.
    let (code, body) = c
        .request("GET", METRIC, &[("x-remote-user", "dave")], None)
        .await
        .unwrap();
    assert_eq!(code, 403);
    let v = json(&body);
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str(), v["code"].as_u64()),
        (Some("Status"), Some("Forbidden"), Some(403))
    );
    assert!(v["message"].as_str().unwrap().contains("dave"), "{v}");

    // A discovery path is reviewed as a non-resource get.
    let (code, _) = c
        .request("GET", "/apis", &[("x-remote-user", "dave")], None)
        .await
        .unwrap();
    assert_eq!(code, 403);
    let last = standin.reviews.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        last["spec"]["nonResourceAttributes"],
        serde_json::json!({"path": "/apis", "verb": "get"})
    );

    // A front proxy that names no user is refused.
    let (code, _) = c.request("GET", METRIC, &[], None).await.unwrap();
    assert_eq!(code, 401);
    r.shutdown().await;
}

#[tokio::test]
async fn identity_headers_are_ignored_without_a_verified_front_proxy() {
    let (pki, standin, r) = setup(&[]).await;
    let masters = [
        ("x-remote-user", "admin"),
        ("x-remote-group", "system:masters"),
    ];
    // No client certificate: anonymous, headers ignored.
    let mut anon = common::connect(&pki, &r, None).await;
    let (code, body) = anon.request("GET", METRIC, &masters, None).await.unwrap();
    assert_eq!(code, 401, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["reason"], "Unauthorized");
    // Front-proxy CA but a CN not in requestheader-allowed-names.
    let mut wrong = common::connect(&pki, &r, Some(&pki.wrong_cn)).await;
    let (code, _) = wrong.request("GET", METRIC, &masters, None).await.unwrap();
    assert_eq!(code, 401);
    // A client-CA user is itself, whatever headers it sends.
    let mut alice = common::connect(&pki, &r, Some(&pki.alice)).await;
    let (code, _) = alice.request("GET", METRIC, &masters, None).await.unwrap();
    assert_eq!(code, 403);
    let review = standin.reviews.lock().unwrap().last().unwrap().clone();
    assert_eq!(review["spec"]["user"], "alice");
    assert_eq!(
        review["spec"]["groups"],
        serde_json::json!(["ops", "system:authenticated"])
    );
    assert_eq!(
        standin.review_count(),
        1,
        "anonymous and wrong-CN requests must not reach the SAR"
    );
    // A certificate from an unknown CA fails the TLS handshake.
    let stranger = pki.client(r.addr, Some(&pki.stranger));
    let res = match stranger.connect().await {
        Ok(mut c) => c
            .request("GET", METRIC, &masters, None)
            .await
            .map(|(code, _)| code),
        Err(e) => Err(e),
    };
    assert!(
        res.is_err(),
        "unknown-CA certificate must be refused, got {res:?}"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn client_ca_users_are_accepted_and_sar_is_cached() {
    let (pki, standin, r) = setup(&["--authorization-webhook-cache-authorized-ttl=2s"]).await;
    standin.allowed.lock().unwrap().insert("alice".into());
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    for _ in 0..5 {
        let (code, _) = c.request("GET", METRIC, &[], None).await.unwrap();
        assert_eq!(code, 200);
    }
    assert_eq!(
        standin.review_count(),
        1,
        "4 of 5 answers must come from the cache"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (code, _) = c.request("GET", METRIC, &[], None).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        standin.review_count(),
        2,
        "the cache entry must expire after its TTL"
    );
    // Allowed for every metric, so an unknown one reaches the handler: 404, not 403.
    let (code, _) = c
        .request(
            "GET",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/other",
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 404);
    assert_eq!(
        standin.review_count(),
        3,
        "a different resource is a different cache key"
    );
    r.shutdown().await;
}

fn cm_data(ca_pem: &str, client_ca_pem: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("client-ca-file", client_ca_pem.to_string()),
        ("requestheader-client-ca-file", ca_pem.to_string()),
        ("requestheader-allowed-names", format!("[\"{PROXY_CN}\"]")),
        (
            "requestheader-username-headers",
            "[\"X-Remote-User\"]".into(),
        ),
        ("requestheader-group-headers", "[\"X-Remote-Group\"]".into()),
        (
            "requestheader-extra-headers-prefix",
            "[\"X-Remote-Extra-\"]".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const MASTERS: [(&str, &str); 2] = [
    ("x-remote-user", "system:kube-aggregator"),
    ("x-remote-group", "system:masters"),
];
const DISCOVERY: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// The status a fresh connection presenting `id` gets for discovery as system:masters, or None
/// when the TLS handshake (or the connection) fails.
async fn discovery_status(pki: &Pki, r: &kis_adapter::server::Running, id: &Pem) -> Option<u16> {
    let mut c = pki.client(r.addr, Some(id)).connect().await.ok()?;
    c.request("GET", DISCOVERY, &MASTERS, None)
        .await
        .ok()
        .map(|x| x.0)
}

/// Polls until a new connection with `id` gets `want` (None = refused), for at most `secs`.
async fn wait_status(
    pki: &Pki,
    r: &kis_adapter::server::Running,
    id: &Pem,
    want: Option<u16>,
    secs: u64,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let got = discovery_status(pki, r, id).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the adapter on the stand-in's ConfigMap with a 1 h file resync, so only the watch can
/// explain a change.
async fn start_on_configmap(pki: &Pki, standin: &StandIn) -> kis_adapter::server::Running {
    start_on_configmap_with(pki, standin, &[]).await
}

async fn start_on_configmap_with(
    pki: &Pki,
    standin: &StandIn,
    extra: &[&str],
) -> kis_adapter::server::Running {
    standin.set_auth(cm_data(
        &pki.front_proxy_ca.cert_pem,
        &pki.client_ca.cert_pem,
    ));
    let kc = standin.serve(pki.dir.path()).await;
    let mut flags = vec![
        format!("--tls-cert-file={}", pki.path("tls.crt")),
        format!("--tls-private-key-file={}", pki.path("tls.key")),
        format!("--kubeconfig={}", kc.display()),
        "--authentication-config-resync=1h".into(),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    common::start(&flags).await
}

/// `/readyz` status and body, anonymously.
async fn readyz(pki: &Pki, r: &kis_adapter::server::Running) -> (u16, String) {
    let mut c = common::connect(pki, r, None).await;
    let (code, body) = c.request("GET", "/readyz", &[], None).await.unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn configmap_supplies_the_cas_and_rotation_is_picked_up_by_the_watch() {
    let pki = Pki::new();
    let standin = StandIn::default();
    let r = start_on_configmap(&pki, &standin).await;
    // An existing front-proxy connection, accepted under the first configuration.
    let mut kept = common::connect(&pki, &r, Some(&pki.proxy)).await;
    assert_eq!(
        kept.request("GET", DISCOVERY, &MASTERS, None)
            .await
            .unwrap()
            .0,
        200
    );
    let gets = standin.configmap_gets.load(Ordering::SeqCst);

    // Rotate the front-proxy CA in the ConfigMap.
    let new_ca = Ca::new("rotated-front-proxy-ca").unwrap();
    let new_proxy = new_ca.client(PROXY_CN, &[]).unwrap();
    assert_eq!(discovery_status(&pki, &r, &new_proxy).await, None);
    standin.set_auth(cm_data(&new_ca.cert_pem, &pki.client_ca.cert_pem));
    wait_status(&pki, &r, &new_proxy, Some(200), 10, "rotated CA").await;
    // The old front-proxy certificate no longer authenticates on a new connection.
    assert_eq!(discovery_status(&pki, &r, &pki.proxy).await, None);
    // The connection accepted before keeps its verified identity.
    assert_eq!(
        kept.request("GET", DISCOVERY, &MASTERS, None)
            .await
            .unwrap()
            .0,
        200
    );
    // No polling: the change arrived through the watch.
    assert_eq!(standin.configmap_gets.load(Ordering::SeqCst), gets);
    assert!(standin.configmap_watches.load(Ordering::SeqCst) >= 1);

    // A bad version is refused and the rotated CA stays in force.
    let mut bad = cm_data(&new_ca.cert_pem, &pki.client_ca.cert_pem);
    bad.insert(
        "requestheader-client-ca-file".into(),
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
    );
    standin.set_auth(bad);
    let mut m = common::connect(&pki, &r, Some(&new_proxy)).await;
    let metrics_ok = |body: &[u8]| {
        String::from_utf8_lossy(body)
            .contains(r#"kis_adapter_config_loads_total{source="authentication",result="error"} 1"#)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = m.request("GET", "/metrics", &MASTERS, None).await.unwrap();
        assert_eq!(code, 200);
        if metrics_ok(&body) {
            let text = String::from_utf8_lossy(&body);
            assert!(
                text.contains(r#"kis_adapter_config_generation{source="authentication"} 2"#),
                "{text}"
            );
            assert!(
                text.contains(
                    r#"kis_adapter_config_last_load_timestamp_seconds{source="authentication"}"#
                ),
                "{text}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bad version not seen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(discovery_status(&pki, &r, &new_proxy).await, Some(200));
    r.shutdown().await;
}

#[tokio::test]
async fn watch_errors_are_retried_and_never_fatal() {
    let pki = Pki::new();
    let standin = StandIn::default();
    standin.fail_watches.store(true, Ordering::SeqCst);
    let r = start_on_configmap_with(&pki, &standin, &["--watch-failure-budget=1s"]).await;
    // The watch is refused again and again (with backoff); the adapter keeps serving.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while standin.configmap_watches.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watch not retried: {} attempts",
            standin.configmap_watches.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(discovery_status(&pki, &r, &pki.proxy).await, Some(200));
    // Past its failure budget the lost watch fails readiness (the replica keeps serving).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = readyz(&pki, &r).await;
        if code == 503 {
            assert!(body.contains("authentication watch failing"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never failed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once the apiserver recovers, a new client CA arrives through the watch.
    standin.fail_watches.store(false, Ordering::SeqCst);
    let new_ca = Ca::new("rotated-client-ca").unwrap();
    let bob = new_ca.client("bob", &["system:masters"]).unwrap();
    let bundle = format!("{}{}", pki.client_ca.cert_pem, new_ca.cert_pem);
    standin.set_auth(cm_data(&pki.front_proxy_ca.cert_pem, &bundle));
    // Backoff doubles from 0.8 s up to 30 s; three failures take at most ~6 s of it.
    wait_status(
        &pki,
        &r,
        &bob,
        Some(200),
        40,
        "client CA after watch recovery",
    )
    .await;
    assert_eq!(readyz(&pki, &r).await, (200, "ok".to_string()));
    r.shutdown().await;
}
