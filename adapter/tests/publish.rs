use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{self, Pki, json};

const M: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/kis-replicas";

async fn setup(extra: &[String]) -> (Pki, kis_adapter::server::Running) {
    let pki = Pki::new();
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    flags.extend(extra.iter().cloned());
    let r = common::start(&flags).await;
    (pki, r)
}

#[tokio::test]
async fn expired_or_unpublished_targets_answer_an_error_never_zero() {
    let (pki, r) = setup(&[]).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    let (code, body) = c.request("GET", M, &[], None).await.unwrap();
    assert_eq!(code, 404, "never published");
    assert!(!String::from_utf8_lossy(&body).contains("\"value\""));
    common::publish(&mut c, "prod", "kis-replicas", &[], 5.0, 1).await;
    assert_eq!(json(&c.get_ok(M).await.unwrap())["items"][0]["value"], "5");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, body) = c.request("GET", M, &[], None).await.unwrap();
    assert_eq!(code, 503, "expired: {}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["reason"], "ServiceUnavailable");
    assert!(v.get("items").is_none());
    // Republishing makes it fresh again.
    common::publish(&mut c, "prod", "kis-replicas", &[], 6.0, 60).await;
    assert_eq!(json(&c.get_ok(M).await.unwrap())["items"][0]["value"], "6");
    r.shutdown().await;
}

#[tokio::test]
async fn publish_api_checks_token_and_body() {
    let (pki, r) = setup(&[]).await;
    let mut c = common::connect(&pki, &r, None).await;
    let path = "/targets/v1/namespaces/prod/kis-replicas";
    let good = br#"{"labels":{"target":"web"},"value":7,"ttlSeconds":60}"#.to_vec();
    let (code, _) = c
        .request("PUT", path, &[], Some(good.clone()))
        .await
        .unwrap();
    assert_eq!(code, 401, "missing token");
    let (code, _) = c
        .request(
            "PUT",
            path,
            &[("authorization", "Bearer nope")],
            Some(good.clone()),
        )
        .await
        .unwrap();
    assert_eq!(code, 401, "wrong token");
    let auth = [("authorization", "Bearer s3cret-token")];
    for bad in [
        r#"{"value":-1,"ttlSeconds":60}"#,
        r#"{"value":1,"ttlSeconds":0}"#,
        r#"{"value":1,"ttlSeconds":100000}"#,
        r#"{"value":1}"#,
        r#"{"value":1,"ttlSeconds":60,"extra":true}"#,
        r#"{"labels":{"Bad Key":"x"},"value":1,"ttlSeconds":60}"#,
        r#"not json"#,
    ] {
        let (code, body) = c
            .request("PUT", path, &auth, Some(bad.as_bytes().to_vec()))
            .await
            .unwrap();
        assert_eq!(code, 400, "{bad}: {}", String::from_utf8_lossy(&body));
        assert_eq!(json(&body)["reason"], "BadRequest");
    }
    let (code, _) = c
        .request(
            "PUT",
            "/targets/v1/namespaces/Prod/m",
            &auth,
            Some(good.clone()),
        )
        .await
        .unwrap();
    assert_eq!(code, 400, "namespace must be a DNS label");
    let (code, body) = c.request("PUT", path, &auth, Some(good)).await.unwrap();
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(
        (
            v["value"].as_f64(),
            v["ttlSeconds"].as_u64(),
            v["fresh"].as_bool()
        ),
        (Some(7.0), Some(60), Some(true))
    );
    let (code, body) = c.request("GET", "/targets/v1", &auth, None).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(json(&body)["targets"].as_array().unwrap().len(), 1);
    let del = br#"{"labels":{"target":"web"}}"#.to_vec();
    assert_eq!(
        c.request("DELETE", path, &auth, Some(del.clone()))
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        c.request("DELETE", path, &auth, Some(del)).await.unwrap().0,
        404
    );
    r.shutdown().await;
}

#[tokio::test]
async fn publishing_is_disabled_without_a_token_file() {
    let pki = Pki::new();
    let flags: Vec<String> = pki
        .tls_flags()
        .into_iter()
        .filter(|f| !f.starts_with("--publish-token-file"))
        .collect();
    let mut flags = flags;
    flags.push("--no-delegated-authorization".into());
    let r = common::start(&flags).await;
    let mut c = common::connect(&pki, &r, None).await;
    let (code, _) = c
        .request(
            "PUT",
            "/targets/v1/namespaces/prod/m",
            &[("authorization", "Bearer x")],
            Some(br#"{"value":1,"ttlSeconds":5}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(code, 403);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publish_and_read_never_see_a_wrong_value() {
    let (pki, r) = setup(&[]).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    common::publish_each(
        &mut c,
        "prod",
        "kis-replicas",
        &[(&[("target", "gpu")], 1.0), (&[("target", "cpu")], 1001.0)],
        60,
    )
    .await;
    let client = pki.client(r.addr, Some(&pki.alice));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..2u32 {
        let client = client.clone();
        tasks.spawn(async move {
            let mut c = client.connect().await.unwrap();
            for i in 0..200u32 {
                // gpu targets stay in 1..=100 and cpu in 1001..=1100, so a read that mixes
                // them up (or returns 0) is detected.
                let v = f64::from((i + w) % 100 + 1);
                let labels = BTreeMap::from([("target".to_string(), "gpu".to_string())]);
                c.publish("s3cret-token", "prod", "kis-replicas", labels, v, 60)
                    .await
                    .unwrap();
                let labels = BTreeMap::from([("target".to_string(), "cpu".to_string())]);
                c.publish(
                    "s3cret-token",
                    "prod",
                    "kis-replicas",
                    labels,
                    v + 1000.0,
                    60,
                )
                .await
                .unwrap();
            }
        });
    }
    for _ in 0..3 {
        let client = client.clone();
        tasks.spawn(async move {
            let mut c = client.connect().await.unwrap();
            for _ in 0..300 {
                for (sel, lo, hi) in [("gpu", 1.0, 100.0), ("cpu", 1001.0, 1100.0)] {
                    let body = c
                        .get_ok(&format!("{M}?labelSelector=target%3D{sel}"))
                        .await
                        .unwrap();
                    let v = json(&body);
                    assert_eq!(v["items"].as_array().unwrap().len(), 1);
                    let x =
                        kis_adapter::api::parse_quantity(v["items"][0]["value"].as_str().unwrap())
                            .unwrap();
                    assert!((lo..=hi).contains(&x), "{sel}: {x}");
                }
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    assert_eq!(r.state.store.all().len(), 2);
    r.shutdown().await;
}

#[tokio::test]
async fn restart_restores_targets_with_their_original_expiry() {
    let pki = Pki::new();
    let state = pki.path("state.json");
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    flags.push(format!("--state-file={state}"));
    let r = common::start(&flags).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    common::publish(
        &mut c,
        "prod",
        "kis-replicas",
        &[("target", "long")],
        9.0,
        600,
    )
    .await;
    common::publish(
        &mut c,
        "prod",
        "kis-replicas",
        &[("target", "short")],
        4.0,
        1,
    )
    .await;
    r.shutdown().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = common::start(&flags).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    let v = json(
        &c.get_ok(&format!("{M}?labelSelector=target%3Dlong"))
            .await
            .unwrap(),
    );
    assert_eq!(v["items"][0]["value"], "9");
    let (code, _) = c
        .request(
            "GET",
            &format!("{M}?labelSelector=target%3Dshort"),
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        code, 503,
        "a target that expired while the adapter was down stays an error"
    );
    r.shutdown().await;
}

#[tokio::test]
async fn targets_file_is_served_and_reloaded() {
    let pki = Pki::new();
    let file = pki.path("targets.json");
    std::fs::write(&file, r#"{"targets":[{"namespace":"prod","metric":"kis-replicas","labels":{"target":"web"},"value":3}]}"#).unwrap();
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    flags.push(format!("--targets-file={file}"));
    flags.push("--authentication-config-resync=100ms".into());
    let r = common::start(&flags).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    assert_eq!(json(&c.get_ok(M).await.unwrap())["items"][0]["value"], "3");
    std::fs::write(&file, r#"{"targets":[{"namespace":"prod","metric":"kis-replicas","labels":{"target":"web"},"value":4}]}"#).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while json(&c.get_ok(M).await.unwrap())["items"][0]["value"] != "4" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "targets file not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken file keeps the previous targets.
    std::fs::write(&file, "{broken").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(json(&c.get_ok(M).await.unwrap())["items"][0]["value"], "4");
    r.shutdown().await;
}
