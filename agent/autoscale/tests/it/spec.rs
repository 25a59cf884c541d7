use kis_autoscale::{AutoscalerSpec, HpaConfig, KedaConfig, KpaConfig, StaticBasis};

fn parse(s: &str) -> Result<AutoscalerSpec, serde_json::Error> {
    serde_json::from_str(s)
}

#[test]
fn defaults_are_the_upstream_defaults() {
    let AutoscalerSpec::Hpa(h) = parse(r#"{"kind":"hpa"}"#).unwrap() else {
        panic!("not an hpa")
    };
    assert_eq!(h, HpaConfig::default());
    assert_eq!(h.sync_period, 15.0);
    assert_eq!(h.cpu_initialization_period, 300.0);
    assert_eq!(h.behavior, None);
    assert_eq!(h.downscale_stabilization, 300.0);
    // `behavior: {}` is the documented default behavior.
    let AutoscalerSpec::Hpa(h) = parse(r#"{"kind":"hpa","behavior":{}}"#).unwrap() else {
        panic!("not an hpa")
    };
    let b = h.behavior.unwrap();
    assert_eq!(b.scale_down.stabilization_window, 300.0);
    assert_eq!(b.scale_up.stabilization_window, 0.0);
    assert_eq!(b.scale_up.policies.len(), 2);
    let AutoscalerSpec::Keda(k) = parse(r#"{"kind":"keda","threshold":3}"#).unwrap() else {
        panic!("not keda")
    };
    assert_eq!((k.polling_interval, k.cooldown_period), (30.0, 300.0));
    assert_eq!(k.threshold, 3.0);
    let AutoscalerSpec::Knative(p) = parse(r#"{"kind":"knative"}"#).unwrap() else {
        panic!("not knative")
    };
    assert_eq!(p, KpaConfig::default());
    assert_eq!(
        (p.stable_window, p.panic_window_percentage, p.tick),
        (60.0, 10.0, 2.0)
    );
}

#[test]
fn every_kind_parses_and_builds() {
    let cases = [
        (r#"{"kind":"hpa"}"#, "hpa-cpu", 15.0),
        (
            r#"{"kind":"hpa","metrics":[{"type":"external","name":"queue_len","target":{"type":"average-value","value":5}}]}"#,
            "hpa-queue_len",
            15.0,
        ),
        (
            r#"{"kind":"keda","polling_interval":20}"#,
            "keda-queue_len",
            5.0,
        ),
        (r#"{"kind":"knative"}"#, "knative-kpa", 2.0),
        (r#"{"kind":"fixed","replicas":3}"#, "fixed-3", 15.0),
        (
            r#"{"kind":"static","replicas":7,"basis":"peak"}"#,
            "static-peak-7",
            15.0,
        ),
        (
            r#"{"kind":"external-target","max_replicas":50}"#,
            "external-target",
            15.0,
        ),
    ];
    for (json, label, period) in cases {
        let spec = parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(spec.label(), label);
        let a = spec.build().unwrap();
        assert_eq!(a.name(), label);
        assert_eq!(a.period(), period, "{json}");
    }
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let e = parse(r#"{"kind":"hpa","tolerence":0.1}"#).unwrap_err();
    assert!(e.to_string().contains("tolerence"), "{e}");
    let e = parse(r#"{"kind":"knative","stable_windw":60}"#).unwrap_err();
    assert!(e.to_string().contains("stable_windw"), "{e}");
}

#[test]
fn invalid_values_name_the_field() {
    let bad = [
        (r#"{"kind":"hpa","tolerance":-1}"#, "hpa.tolerance"),
        (
            r#"{"kind":"hpa","min_replicas":5,"max_replicas":3}"#,
            "hpa.min_replicas",
        ),
        (r#"{"kind":"hpa","max_replicas":0}"#, "hpa.max_replicas"),
        (
            r#"{"kind":"hpa","behavior":{"scale_up":{"stabilization_window":0,"policies":[{"type":"Pods","value":4,"period":0}]}}}"#,
            "hpa.behavior.scale_up.policies[0].period",
        ),
        (
            r#"{"kind":"hpa","behavior":{"scale_down":{"stabilization_window":4000,"policies":[{"type":"Percent","value":100,"period":15}]}}}"#,
            "hpa.behavior.scale_down.stabilization_window",
        ),
        (
            r#"{"kind":"hpa","metrics":[{"type":"cpu-utilization","average_utilization":0}]}"#,
            "hpa.metrics[0].average_utilization",
        ),
        (
            r#"{"kind":"hpa","metrics":[{"type":"external","name":"q","target":{"type":"value","value":-2}}]}"#,
            "hpa.metrics[0].target.value",
        ),
        (r#"{"kind":"keda","threshold":0}"#, "keda.threshold"),
        (
            r#"{"kind":"keda","min_replica_count":5,"max_replica_count":2}"#,
            "keda.min_replica_count",
        ),
        (
            r#"{"kind":"knative","stable_window":1}"#,
            "knative.stable_window",
        ),
        (
            r#"{"kind":"knative","max_scale_down_rate":1}"#,
            "knative.max_scale_down_rate",
        ),
        (
            r#"{"kind":"external-target","metrics":[{"type":"cpu-utilization","average_utilization":50}]}"#,
            "external-target.metrics",
        ),
    ];
    for (json, field) in bad {
        let spec = parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let e = spec
            .build()
            .err()
            .unwrap_or_else(|| panic!("{json} was accepted"));
        assert_eq!(e.field, field, "{json}");
        assert!(e.to_string().contains(field));
    }
}

#[test]
fn param_space_round_trips_and_checks_ranges() {
    let specs = [
        AutoscalerSpec::Hpa(HpaConfig::default()),
        AutoscalerSpec::Keda(KedaConfig::default()),
        AutoscalerSpec::Knative(KpaConfig::default()),
    ];
    for spec in specs {
        let space = spec.param_space();
        assert!(!space.is_empty());
        // Midpoints (geometric for log parameters) are valid and change the spec accordingly.
        let mid: Vec<f64> = space
            .iter()
            .map(|p| {
                let v = if p.log {
                    (p.lo.max(1e-9) * p.hi).sqrt()
                } else {
                    (p.lo + p.hi) / 2.0
                };
                if p.integer { v.round() } else { v }
            })
            .collect();
        let tuned = spec.with_params(&mid).unwrap();
        tuned.build().unwrap();
        assert_eq!(tuned.param_space().len(), space.len());
        // Out of range: the error names the parameter.
        let mut bad = mid.clone();
        bad[0] = space[0].hi * 2.0 + 1.0;
        let e = spec.with_params(&bad).unwrap_err();
        assert_eq!(e.field, space[0].name);
        // Wrong length.
        assert_eq!(spec.with_params(&mid[1..]).unwrap_err().field, "params");
    }
    // The HPA's first parameter is its CPU target (default 80 %): setting it to 60 shows up.
    let spec = AutoscalerSpec::Hpa(HpaConfig::default());
    let AutoscalerSpec::Hpa(h) = spec.with_params(&[60.0, 0.1, 300.0]).unwrap() else {
        panic!()
    };
    assert_eq!(
        h.metrics,
        vec![kis_autoscale::MetricSpec::CpuUtilization {
            average_utilization: 60
        }]
    );
    // Fixed, static and external-target have nothing to tune.
    assert!(
        AutoscalerSpec::Fixed { replicas: 1 }
            .param_space()
            .is_empty()
    );
    assert!(
        AutoscalerSpec::Static {
            replicas: 2,
            basis: StaticBasis::Mean
        }
        .param_space()
        .is_empty()
    );
}
