use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::{self, Pki, json};

const V1B1: &str = "/apis/external.metrics.k8s.io/v1beta1";

async fn setup() -> (Pki, kis_adapter::server::Running) {
    let pki = Pki::new();
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    flags.push("--metrics-port=0".into());
    let r = common::start(&flags).await;
    (pki, r)
}

const PROTOBUF: (&str, &str) = ("accept", "application/vnd.kubernetes.protobuf, */*");

#[tokio::test]
async fn discovery_documents_are_json_whatever_the_accept_header() {
    let (pki, r) = setup().await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    let (code, body) = c.request("GET", "/apis", &[PROTOBUF], None).await.unwrap();
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(v["kind"], "APIGroupList");
    assert_eq!(v["groups"][0]["name"], "external.metrics.k8s.io");
    assert_eq!(
        v["groups"][0]["preferredVersion"]["groupVersion"],
        "external.metrics.k8s.io/v1beta1"
    );

    let v = json(&c.get_ok("/apis/external.metrics.k8s.io").await.unwrap());
    assert_eq!(v["kind"], "APIGroup");
    assert_eq!(v["versions"][0]["version"], "v1beta1");

    let (code, body) = c.request("GET", V1B1, &[PROTOBUF], None).await.unwrap();
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(v["kind"], "APIResourceList");
    assert_eq!(v["groupVersion"], "external.metrics.k8s.io/v1beta1");
    let res = v["resources"].as_array().unwrap();
    assert!(!res.is_empty(), "APIResourceList must never be empty");
    assert_eq!(res[0]["kind"], "ExternalMetricValueList");
    assert_eq!(res[0]["namespaced"], true);
    assert_eq!(res[0]["verbs"], serde_json::json!(["get"]));
    r.shutdown().await;
}

#[tokio::test]
async fn metric_read_has_the_go_shape() {
    let (pki, r) = setup().await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    common::publish_each(
        &mut c,
        "prod",
        "kis-replicas",
        &[(&[("target", "web")], 7.0), (&[("target", "cpu")], 1.5)],
        60,
    )
    .await;
    let path = format!("{V1B1}/namespaces/prod/kis-replicas?labelSelector=target%3Dweb");
    let (code, body) = c.request("GET", &path, &[PROTOBUF], None).await.unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["kind"], "ExternalMetricValueList");
    assert_eq!(v["apiVersion"], "external.metrics.k8s.io/v1beta1");
    assert_eq!(v["metadata"], serde_json::json!({}));
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let it = items[0].as_object().unwrap();
    assert_eq!(it["metricName"], "kis-replicas");
    assert_eq!(it["metricLabels"], serde_json::json!({"target": "web"}));
    assert_eq!(it["value"], "7");
    assert!(
        !it.contains_key("window"),
        "window must be omitted for instantaneous values"
    );
    let ts = it["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 20, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    let keys: Vec<&String> = it.keys().collect();
    assert_eq!(keys.len(), 4, "unexpected keys {keys:?}");

    let path =
        format!("{V1B1}/namespaces/prod/kis-replicas?labelSelector=target+in+%28cpu%2Cgpu%29");
    let v = json(&c.get_ok(&path).await.unwrap());
    assert_eq!(v["items"][0]["value"], "1500m");
    r.shutdown().await;
}

#[tokio::test]
async fn errors_are_status_objects_with_the_right_code() {
    let (pki, r) = setup().await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    common::publish_each(
        &mut c,
        "prod",
        "m",
        &[(&[("target", "a")], 2.0), (&[("target", "b")], 3.0)],
        60,
    )
    .await;
    let cases = [
        (format!("{V1B1}/nonexistent-metric"), 404, "NotFound"),
        (format!("{V1B1}/namespaces/foo"), 404, "NotFound"),
        (format!("{V1B1}/namespaces//m"), 404, "NotFound"),
        (
            format!("{V1B1}/namespaces/foo/group/metric"),
            404,
            "NotFound",
        ),
        (format!("{V1B1}/namespaces/foo/m"), 404, "NotFound"),
        (format!("{V1B1}/namespaces/prod/unknown"), 404, "NotFound"),
        (
            format!("{V1B1}/namespaces/prod/m?labelSelector=target%3Dc"),
            404,
            "NotFound",
        ),
        (
            format!("{V1B1}/namespaces/prod/m?labelSelector=target+in+%28a"),
            400,
            "BadRequest",
        ),
        (
            format!("{V1B1}/namespaces/prod/m?labelSelector=%3D%3D"),
            400,
            "BadRequest",
        ),
        ("/openapi/v2".to_string(), 404, "NotFound"),
        ("/openapi/v3".to_string(), 404, "NotFound"),
        ("/api".to_string(), 404, "NotFound"),
    ];
    for (path, code, reason) in cases {
        let (got, body) = c.request("GET", &path, &[PROTOBUF], None).await.unwrap();
        assert_eq!(got, code, "{path}: {}", String::from_utf8_lossy(&body));
        let v = json(&body);
        assert_eq!(v["kind"], "Status", "{path}");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], reason, "{path}");
        assert_eq!(v["code"], code);
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let (got, body) = c
        .request(
            "POST",
            &format!("{V1B1}/namespaces/prod/m"),
            &[],
            Some(b"{}".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(got, 405);
    assert_eq!(json(&body)["reason"], "MethodNotAllowed");
    r.shutdown().await;
}

/// A selector matching several targets answers every one (the HPA sums them); one stale member
/// makes the whole read an error, never a partial sum.
#[tokio::test]
async fn a_selector_matching_several_targets_lists_them_all_or_fails_whole() {
    let (pki, r) = setup().await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    common::publish_each(
        &mut c,
        "prod",
        "m",
        &[
            (&[("app", "web"), ("shard", "a")], 2.0),
            (&[("app", "web"), ("shard", "b")], 3.5),
            (&[("app", "web"), ("shard", "c")], 4.0),
            (&[("app", "db")], 9.0),
        ],
        60,
    )
    .await;
    let read = |sel: &str| format!("{V1B1}/namespaces/prod/m?labelSelector={sel}");
    for (sel, values, sum) in [
        ("app%3Dweb%2Cshard+in+%28a%2Cb%29", vec!["2", "3500m"], 5.5),
        ("app%3Dweb", vec!["2", "3500m", "4"], 9.5),
        ("", vec!["9", "2", "3500m", "4"], 18.5),
    ] {
        let body = c.get_ok(&read(sel)).await.unwrap();
        let list: kis_adapter::api::ExternalMetricValueList =
            serde_json::from_slice(&body).unwrap();
        let got: Vec<&str> = list.items.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(got, values, "{sel}");
        assert_eq!(list.sum(), Some(sum), "{sel}");
        assert!(list.items.iter().all(|i| i.metric_name == "m"));
    }
    // One member expires: every read that covers it is 503, the others still answer.
    common::publish(
        &mut c,
        "prod",
        "m",
        &[("app", "web"), ("shard", "c")],
        4.0,
        1,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (code, body) = c
            .request("GET", &read("app%3Dweb"), &[], None)
            .await
            .unwrap();
        if code == 503 {
            let v = json(&body);
            assert_eq!(v["reason"], "ServiceUnavailable");
            assert!(v["message"].as_str().unwrap().contains("\"c\""), "{v}");
            break;
        }
        assert_eq!(code, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the 1 s target never went stale"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ab = json(&c.get_ok(&read("shard+in+%28a%2Cb%29")).await.unwrap());
    assert_eq!(ab["items"].as_array().unwrap().len(), 2);
    r.shutdown().await;
}

#[tokio::test]
async fn health_without_auth_and_metrics() {
    let (pki, r) = setup().await;
    let mut anon = common::connect(&pki, &r, None).await;
    for p in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = anon.request("GET", p, &[], None).await.unwrap();
        assert_eq!((code, body.as_slice()), (200, b"ok".as_slice()), "{p}");
    }
    let (code, _) = anon.request("GET", "/metrics", &[], None).await.unwrap();
    assert_eq!(
        code, 401,
        "/metrics on the secure port needs authentication"
    );
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    common::publish(&mut c, "prod", "m", &[], 2.0, 60).await;
    c.get_ok(&format!("{V1B1}/namespaces/prod/m"))
        .await
        .unwrap();
    let text = String::from_utf8(c.get_ok("/metrics").await.unwrap()).unwrap();
    assert!(text.contains("kis_adapter_requests_total{route=\"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}\",code=\"200\"} 1"), "{text}");
    assert!(
        text.contains("kis_adapter_authentication_failures_total{reason=\"anonymous\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kis_adapter_targets{state=\"fresh\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kis_adapter_target_freshness_seconds_count 1"),
        "{text}"
    );
    // The plain-HTTP metrics port serves the same registry.
    let maddr = r.metrics_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(maddr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("kis_adapter_publishes_total"),
        "{out}"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn serves_h2_on_the_same_port() {
    let (pki, r) = setup().await;
    let roots = kis_adapter::tls::parse_roots(pki.server_ca.cert_pem.as_bytes(), "ca").unwrap();
    let certs = kis_adapter::tls::parse_certs(pki.alice.cert.as_bytes(), "c").unwrap();
    let key = kis_adapter::tls::parse_key(pki.alice.key.as_bytes(), "k").unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(kis_adapter::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost{V1B1}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(json(&body)["kind"], "APIResourceList");
    r.shutdown().await;
}
