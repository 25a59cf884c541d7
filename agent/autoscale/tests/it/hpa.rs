use kis_autoscale::{
    Autoscaler, AutoscalerSpec, Behavior, ExternalTarget, Hpa, HpaConfig, MetricSpec, PodView,
    PolicyKind, ScalingPolicy, SelectPolicy,
};

use crate::util::{drive_ext, ready_pods, ticks, view, view_ext};

fn cpu_hpa(target: u32) -> Hpa {
    Hpa::new(
        "t",
        &HpaConfig {
            max_replicas: 100,
            metrics: vec![MetricSpec::CpuUtilization {
                average_utilization: target,
            }],
            ..HpaConfig::default()
        },
    )
}

/// HPA on External `m` with AverageValue `target`, tolerance `tol`, max 100, and the default
/// `behavior` (the policy path).
fn avg_hpa(target: f64, tol: f64) -> HpaConfig {
    HpaConfig {
        behavior: Some(Behavior::default()),
        max_replicas: 100,
        metrics: vec![MetricSpec::External {
            name: "m".into(),
            target: ExternalTarget::AverageValue(target),
        }],
        tolerance: Some(tol),
        ..HpaConfig::default()
    }
}

fn cpu_view(now: f64, spec: u32, pods: Vec<PodView>) -> kis_autoscale::PoolView {
    let mut v = view(now, spec);
    v.pods = pods;
    v
}

#[test]
fn tolerance_band_on_cpu() {
    // Target 50 %, 4 Ready pods. ratio = utilisation / 50; inside [0.9, 1.1] nothing changes.
    // 54 % → 1.08: keep 4.
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.54)))), 4);
    // 55 % → 1.1 exactly: isWithin is inclusive, keep 4.
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.55)))), 4);
    // 56 % → 1.12: ceil(1.12 · 4) = ceil(4.48) = 5.
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.56)))), 5);
    // 46 % → 0.92: keep 4.
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.46)))), 4);
    // 30 % → 0.6: ceil(0.6 · 4) = ceil(2.4) = 3 (a fresh HPA has no recommendation history, so
    // the 300 s window holds nothing higher).
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.30)))), 3);
}

#[test]
fn tolerance_zero_reacts_to_any_change_and_utilisation_is_truncated() {
    // Tolerance 0: 51 % → 1.02 → ceil(4.08) = 5.
    let mut cfg = HpaConfig {
        max_replicas: 100,
        metrics: vec![MetricSpec::CpuUtilization {
            average_utilization: 50,
        }],
        tolerance: Some(0.0),
        ..HpaConfig::default()
    };
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.51)))), 5);
    // 50.9 % per pod: Σ = 2036 m of 4000 m → 2036·100/4000 = 50 (integer division) → ratio 1.0.
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(
        h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.509)))),
        4
    );
    // Per-direction tolerance (KEP-4951): up 0.5 keeps 56 % (1.12) at 4.
    let mut b = Behavior::default();
    b.scale_up.tolerance = Some(0.5);
    cfg.behavior = Some(b);
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, ready_pods(4, Some(0.56)))), 4);
}

#[test]
fn stabilization_window_holds_a_dip_then_scales_down() {
    // AverageValue 1, tolerance 0, pods = replicas: the raw proposal is ceil(m) (or status when
    // m equals it). m = 4 until 150 s except a dip to 1 at 60..=90 s; m = 2 from 150 s.
    // Scale-down takes the max recommendation of the last 300 s: the last "4" is at 135 s, so
    // it drops out of (t − 300, t] at t = 435 (135 > 135 is false). The dip never scales down.
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.0));
    let m = |t: f64| {
        Some(if (60.0..=90.0).contains(&t) {
            1.0
        } else if t < 150.0 {
            4.0
        } else {
            2.0
        })
    };
    for (t, r) in drive_ext(&mut h, 4, ticks(15.0, 600.0), "m", m) {
        let want = if t <= 420.0 { 4 } else { 2 };
        assert_eq!(r, want, "at t = {t}");
    }
    let s = h.status().unwrap();
    assert_eq!(s.last_scale_time, Some(435.0));
}

#[test]
fn stabilized_recommendation_sets_able_to_scale_reason() {
    // After a 4 at t = 0, a proposal of 2 at t = 15 is held at 4 by the down-window.
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.0));
    assert_eq!(h.decide(&view_ext(0.0, 4, "m", Some(4.0))), 4);
    assert_eq!(h.decide(&view_ext(15.0, 4, "m", Some(2.0))), 4);
    let s = h.status().unwrap();
    assert_eq!(
        s.condition("AbleToScale").unwrap().reason,
        "ScaleDownStabilized"
    );
    assert!(s.condition("ScalingActive").unwrap().status);
}

#[test]
fn scale_up_window_takes_the_minimum() {
    // Scale-up window 60 s: a spike to 8 at t = 15 after 4 at t = 0 stays at 4 (min of {4, 8});
    // at t = 60 the "4" at 0 s has left the window (0 > 60 − 60 is false), and 8 is reached
    // (rate: max(2·4, 4 + 4) = 8).
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior.as_mut().unwrap().scale_up.stabilization_window = 60.0;
    let mut h = Hpa::new("t", &cfg);
    let m = |t: f64| Some(if t == 0.0 { 4.0 } else { 8.0 });
    let got = drive_ext(&mut h, 4, ticks(15.0, 75.0), "m", m);
    assert_eq!(
        got,
        vec![
            (0.0, 4),
            (15.0, 4),
            (30.0, 4),
            (45.0, 4),
            (60.0, 8),
            (75.0, 8)
        ]
    );
}

#[test]
fn default_scale_up_policy_is_max_of_double_and_four_pods_per_15s() {
    // Target 50 from 2 replicas. Limit per sync = max(2·start, start + 4):
    // 2 → max(4, 6) = 6 → max(12, 10) = 12 → 24 → 48 → 50 (desired 50 < 96).
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.0));
    let got = drive_ext(&mut h, 2, ticks(15.0, 75.0), "m", |_| Some(50.0));
    assert_eq!(
        got,
        vec![
            (0.0, 6),
            (15.0, 12),
            (30.0, 24),
            (45.0, 48),
            (60.0, 50),
            (75.0, 50)
        ]
    );
    let s = h.status().unwrap();
    assert!(!s.condition("ScalingLimited").unwrap().status);
}

#[test]
fn scale_up_policy_counts_events_within_its_period() {
    // Syncing every 5 s: the +4 at t = 0 still counts at t = 5 and 10 (0 > t − 15), so the period
    // started at 2 and the limit stays max(4, 6) = 6; at t = 15 it has left, start = 6 → 12.
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.0));
    let got = drive_ext(&mut h, 2, ticks(5.0, 15.0), "m", |_| Some(50.0));
    assert_eq!(got, vec![(0.0, 6), (5.0, 6), (10.0, 6), (15.0, 12)]);
    h.decide(&view_ext(20.0, 12, "m", Some(50.0)));
    let s = h.status().unwrap();
    let lim = s.condition("ScalingLimited").unwrap();
    assert!(lim.status);
    assert_eq!(lim.reason, "ScaleUpLimit");
}

#[test]
fn custom_policy_and_select_min_and_disabled() {
    // One policy: +1 pod per 60 s. 2 → 3 at t = 0; at 15..45 the period started at 2 → limit 3;
    // at 60 the event at 0 is out (0 > 0 false) → 4.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior.as_mut().unwrap().scale_up.policies = vec![ScalingPolicy {
        kind: PolicyKind::Pods,
        value: 1,
        period: 60.0,
    }];
    let mut h = Hpa::new("t", &cfg);
    let got = drive_ext(&mut h, 2, ticks(15.0, 60.0), "m", |_| Some(10.0));
    assert_eq!(
        got,
        vec![(0.0, 3), (15.0, 3), (30.0, 3), (45.0, 3), (60.0, 4)]
    );

    // selectPolicy Min on the default up-policies: min(2·start, start + 4).
    // 2 → min(4, 6) = 4; 10 → min(20, 14) = 14.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior.as_mut().unwrap().scale_up.select_policy = SelectPolicy::Min;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 2, "m", Some(50.0))), 4);
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 10, "m", Some(50.0))), 14);

    // Disabled up: the count never rises.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior.as_mut().unwrap().scale_up.select_policy = SelectPolicy::Disabled;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 2, "m", Some(50.0))), 2);
    // ... but down still works (window 0 to skip stabilization): ceil(1) = 1.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior.as_mut().unwrap().scale_up.select_policy = SelectPolicy::Disabled;
    cfg.behavior
        .as_mut()
        .unwrap()
        .scale_down
        .stabilization_window = 0.0;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 5, "m", Some(1.0))), 1);
    // Disabled down: never falls.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior.as_mut().unwrap().scale_down.select_policy = SelectPolicy::Disabled;
    cfg.behavior
        .as_mut()
        .unwrap()
        .scale_down
        .stabilization_window = 0.0;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 5, "m", Some(1.0))), 5);
}

#[test]
fn scale_down_percent_policy_truncates_and_respects_its_period() {
    // −50 % per 60 s, no window, m = 1 from 10 replicas.
    // t=0: floor(10·0.5) = 5. t=15..45: period start = 5 + 5 = 10 → limit 5 → stay 5.
    // t=60: start 5 → floor(2.5) = 2. t=120: start 2 → 1, which is min → 1.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior
        .as_mut()
        .unwrap()
        .scale_down
        .stabilization_window = 0.0;
    cfg.behavior.as_mut().unwrap().scale_down.policies = vec![ScalingPolicy {
        kind: PolicyKind::Percent,
        value: 50,
        period: 60.0,
    }];
    let mut h = Hpa::new("t", &cfg);
    let got = drive_ext(&mut h, 10, ticks(15.0, 120.0), "m", |_| Some(1.0));
    let want: Vec<u32> = vec![5, 5, 5, 5, 2, 2, 2, 2, 1];
    assert_eq!(got.iter().map(|p| p.1).collect::<Vec<_>>(), want);
}

#[test]
fn min_max_clamping() {
    // max 5: from 4, desired 50, rate limit 8 > max → 5, ScalingLimited TooManyReplicas.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.max_replicas = 5;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 4, "m", Some(50.0))), 5);
    let s = h.status().unwrap();
    assert_eq!(
        s.condition("ScalingLimited").unwrap().reason,
        "TooManyReplicas"
    );
    // Current above max → max, before any metric.
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 7, "m", None)), 5);
    // Current below min → min.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.min_replicas = 3;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 1, "m", Some(1.0))), 3);
    // Desired below min → min (TooFewReplicas): ceil(0.5) = 1 < min 2.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.min_replicas = 2;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 4, "m", Some(0.5))), 2);
    assert_eq!(
        h.status()
            .unwrap()
            .condition("ScalingLimited")
            .unwrap()
            .reason,
        "TooFewReplicas"
    );
}

#[test]
fn unready_pods_count_as_zero_on_scale_up() {
    // Target 50. 4 Ready pods at 100 % + 2 never-Ready pods (with samples), spec 6.
    // Ready-only ratio 100/50 = 2.0 > 1 with unready pods → add them at 0:
    // Σ = 4000 m of 6000 m → 66 % (integer) → 1.32 → ceil(1.32 · 6) = ceil(7.92) = 8.
    let mut pods = ready_pods(4, Some(1.0));
    for _ in 0..2 {
        pods.push(PodView {
            ready: false,
            ready_since: None,
            ..PodView::ready(990.0, 0.0, Some(0.9))
        });
    }
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 6, pods)), 8);
}

#[test]
fn unready_fill_in_that_flips_direction_keeps_the_count() {
    // 3 Ready at 80 % + 3 Pending (never Ready, no sample), spec 6. Ready-only ratio 1.6, but with
    // the 3 at 0 %: 2400/6000 → 40 % → 0.8 < 1: the direction flips → keep 6 (a naive average
    // over the Ready pods would give ceil(1.6 · 3) = 5).
    let mut pods = ready_pods(3, Some(0.8));
    for _ in 0..3 {
        pods.push(PodView {
            ready: false,
            ready_since: None,
            ..PodView::ready(995.0, 0.0, None)
        });
    }
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 6, pods)), 6);
}

#[test]
fn missing_metrics_count_as_100_percent_on_scale_down() {
    // 3 Ready pods at 10 % + 1 Ready pod with no sample, spec 4, target 50. ratio 10/50 = 0.2 < 1:
    // the missing pod counts as max(100, 50) = 100 % → (300 + 1000)/4000 → 32 % → 0.64 →
    // ceil(0.64 · 4) = ceil(2.56) = 3 (ignoring it would give ceil(0.2 · 3) = 1).
    let mut pods = ready_pods(3, Some(0.1));
    pods.push(PodView::ready(0.0, 10.0, None));
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 4, pods)), 3);
}

#[test]
fn missing_metrics_count_as_zero_on_scale_up() {
    // 5 Ready at 70 % + 3 Ready without samples, spec 8, target 50. ratio 1.4 > 1: missing at 0 % →
    // 3500/8000 → 43 % → 0.86 < 1: direction flips → keep 8 (naive: ceil(1.4 · 5) = 7, a scale-down).
    let mut pods = ready_pods(5, Some(0.7));
    pods.extend(ready_pods(3, None));
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 8, pods)), 8);
}

#[test]
fn cpu_initialization_period_ignores_fresh_samples() {
    // 2 old pods at 100 % + 1 pod created at 950 s, Ready since 990 s, sampled at 100 %; now 1000 s.
    // Within the 300 s init period and Ready for < one 15 s window → unready → 0 % on scale-up:
    // ratio 2.0 → 2000/3000 → 66 % → 1.32 → ceil(3.96) = 4 (counting it: ceil(2 · 3) = 6).
    let mut pods = ready_pods(2, Some(1.0));
    pods.push(PodView::ready(950.0, 990.0, Some(1.0)));
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 3, pods.clone())), 4);
    // Ready since 980 s: a whole window has passed → counted → ceil(2 · 3) = 6.
    pods[2].ready_since = Some(980.0);
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 3, pods)), 6);
}

#[test]
fn no_usable_cpu_sample_keeps_replicas_and_reports_it() {
    let pods = vec![
        PodView {
            ready: false,
            ready_since: None,
            ..PodView::ready(990.0, 0.0, None)
        };
        2
    ];
    let mut h = cpu_hpa(50);
    assert_eq!(h.decide(&cpu_view(1000.0, 2, pods)), 2);
    let s = h.status().unwrap();
    let c = s.condition("ScalingActive").unwrap();
    assert!(!c.status);
    assert_eq!(c.reason, "FailedGetResourceMetric");
}

#[test]
fn external_average_value_maths() {
    // 3 pods, target 5. m = 22 → ratio 22/(5·3) = 1.47 → ceil(22/5) = ceil(4.4) = 5.
    let cfg = avg_hpa(5.0, 0.1);
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 3, "m", Some(22.0))), 5);
    // The status shows averageValue = ceil(22000 m / 3) = 7334 m.
    let s = h.status().unwrap();
    assert_eq!(s.current_metrics[0].value, Some(7.334));
    assert_eq!(s.current_metrics[0].proposal, Some(5));
    // m = 16 → 16/15 = 1.067, within 0.1 → status.replicas = 3.
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&view_ext(0.0, 3, "m", Some(16.0))), 3);
    // Within tolerance the proposal is status.replicas (the pods), not spec: spec 4 with 3 pods,
    // m = 15 → ratio 1 → proposal 3 → a fresh HPA scales spec down to 3.
    let mut h = Hpa::new("t", &cfg);
    let mut v = view_ext(0.0, 4, "m", Some(15.0));
    v.pods.truncate(3);
    assert_eq!(h.decide(&v), 3);
}

#[test]
fn external_value_uses_ready_pods() {
    // Value target 0.2 s, m = 0.5 s, spec 3 with 2 Ready pods: ratio 2.5 → ceil(2.5 · 2) = 5.
    let cfg = HpaConfig {
        max_replicas: 100,
        metrics: vec![MetricSpec::External {
            name: "p95_latency".into(),
            target: ExternalTarget::Value(0.2),
        }],
        ..HpaConfig::default()
    };
    let mut v = view(0.0, 3);
    v.p95_latency = Some(0.5);
    v.pods[2].ready = false;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&v), 5);
    // m = 0.3 → 1.5 → ceil(3.0) = 3 = current.
    v.p95_latency = Some(0.3);
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&v), 3);
}

#[test]
fn queue_length_from_the_view() {
    // External AverageValue 5 on `queue_len`, read from PoolView.queue_len: 2 pods, 17 waiting →
    // ratio 17/10 = 1.7 → ceil(17/5) = 4 (within the legacy limit max(2·2, 4) = 4).
    let cfg = HpaConfig {
        max_replicas: 100,
        metrics: vec![MetricSpec::External {
            name: "queue_len".into(),
            target: ExternalTarget::AverageValue(5.0),
        }],
        ..HpaConfig::default()
    };
    let mut v = view(0.0, 2);
    v.queue_len = 17.0;
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&v), 4);
}

#[test]
fn several_metrics_take_the_max_and_partial_failure_blocks_scale_down() {
    let cfg = HpaConfig {
        max_replicas: 100,
        metrics: vec![
            MetricSpec::CpuUtilization {
                average_utilization: 50,
            },
            MetricSpec::External {
                name: "m".into(),
                target: ExternalTarget::AverageValue(5.0),
            },
        ],
        ..HpaConfig::default()
    };
    // CPU 25 % on 4 pods → 0.5 → ceil(2) = 2; m = 30 → ceil(30/5) = 6. Max = 6 (limit 8).
    // (At 1000 s the pods, Ready since 10 s, are past the CPU initialization period.)
    let mut v = view_ext(1000.0, 4, "m", Some(30.0));
    v.pods = ready_pods(4, Some(0.25));
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&v), 6);
    // m missing, CPU says 2 < 4: some invalid and the rest scale down → no change.
    v.external.insert("m".into(), None);
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&v), 4);
    let s = h.status().unwrap();
    assert_eq!(
        s.condition("ScalingActive").unwrap().reason,
        "FailedGetExternalMetric"
    );
    // m missing but CPU at 100 % → ceil(2 · 4) = 8 > 4: scaling up is still allowed.
    v.pods = ready_pods(4, Some(1.0));
    let mut h = Hpa::new("t", &cfg);
    assert_eq!(h.decide(&v), 8);
}

#[test]
fn missing_external_keeps_replicas_with_scaling_active_false() {
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.0));
    assert_eq!(h.decide(&view_ext(0.0, 3, "m", None)), 3);
    let s = h.status().unwrap();
    let c = s.condition("ScalingActive").unwrap();
    assert!(!c.status);
    assert_eq!(c.reason, "FailedGetExternalMetric");
    assert_eq!(s.desired_replicas, 3);
}

#[test]
fn external_target_follows_n_exactly() {
    let mut a = AutoscalerSpec::ExternalTarget(HpaConfig {
        max_replicas: 100,
        ..HpaConfig::default()
    })
    .build()
    .unwrap();
    // 10 → 11: ratio 11/10 = 1.1; tolerance 0 → ceil(11/1) = 11.
    assert_eq!(a.decide(&view_ext(0.0, 10, "kis-replicas", Some(11.0))), 11);
    // Missing → no change.
    assert_eq!(a.decide(&view_ext(15.0, 11, "kis-replicas", None)), 11);
    // Same step through a stock HPA with the default 0.1 tolerance: 1.1 is within → stays 10.
    let mut h = Hpa::new("t", &{
        let mut c = avg_hpa(1.0, 0.1);
        c.metrics = vec![MetricSpec::External {
            name: "kis-replicas".into(),
            target: ExternalTarget::AverageValue(1.0),
        }];
        c
    });
    assert_eq!(h.decide(&view_ext(0.0, 10, "kis-replicas", Some(11.0))), 10);
}

#[test]
fn external_target_goes_through_the_hpa_rate_limits_and_window() {
    let spec = AutoscalerSpec::ExternalTarget(HpaConfig {
        max_replicas: 100,
        ..HpaConfig::default()
    });
    // No behavior in the spec → the legacy path. N = 20 from 2: at most max(2·c, 4) per sync →
    // 4, 8, 16, 20.
    let mut a = spec.build().unwrap();
    let got = drive_ext(a.as_mut(), 2, ticks(15.0, 45.0), "kis-replicas", |_| {
        Some(20.0)
    });
    assert_eq!(got, vec![(0.0, 4), (15.0, 8), (30.0, 16), (45.0, 20)]);
    // Then N = 5: held at 20 by the 300 s window (legacy counts samples at t ≥ now − 300; the
    // last 20 was recommended at 45 s → still counted at 345, free at 360).
    let got = drive_ext(
        a.as_mut(),
        20,
        ticks(15.0, 360.0).into_iter().skip(4),
        "kis-replicas",
        |_| Some(5.0),
    );
    for (t, r) in got {
        assert_eq!(r, if t < 360.0 { 20 } else { 5 }, "at t = {t}");
    }
}

#[test]
fn scale_to_zero_only_with_the_gate() {
    // min 0 + gate: from 0, ceil(3/1) = 3 (status.replicas = 0 → ratio ∞); limit max(0, 0 + 4) = 4.
    let mut cfg = avg_hpa(1.0, 0.1);
    cfg.min_replicas = 0;
    cfg.scale_to_zero = true;
    let mut a = AutoscalerSpec::Hpa(cfg.clone()).build().unwrap();
    let mut v = view_ext(0.0, 0, "m", Some(3.0));
    v.pods.clear();
    assert_eq!(a.decide(&v), 3);
    // min 1 and spec 0: the HPA disables itself.
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.1));
    assert_eq!(h.decide(&v), 0);
    let s = h.status().unwrap();
    assert_eq!(
        s.condition("ScalingActive").unwrap().reason,
        "ScalingDisabled"
    );
    // min 0 without the gate is rejected.
    cfg.scale_to_zero = false;
    let e = AutoscalerSpec::Hpa(cfg).validate().unwrap_err();
    assert_eq!(e.field, "hpa.min_replicas");
}

#[test]
fn without_behavior_the_legacy_normalisation_runs() {
    // No `behavior`: scale-up at most max(2·current, 4) per sync. From 1 with desired 10: 4
    // (the default behavior would allow max(2, 1 + 4) = 5). Then 8, then 10.
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior = None;
    let mut h = Hpa::new("t", &cfg);
    let got = drive_ext(&mut h, 1, ticks(15.0, 30.0), "m", |_| Some(10.0));
    assert_eq!(got, vec![(0.0, 4), (15.0, 8), (30.0, 10)]);
    // With the default behavior instead: 5, 10.
    let mut h = Hpa::new("t", &avg_hpa(1.0, 0.0));
    let got = drive_ext(&mut h, 1, ticks(15.0, 15.0), "m", |_| Some(10.0));
    assert_eq!(got, vec![(0.0, 5), (15.0, 10)]);
}

#[test]
fn legacy_window_counts_the_boundary_sample() {
    // Same dip scenario as the behavior test, no behavior: `stabilizeRecommendation` drops only
    // samples strictly before now − 300, so the last "4" (135 s) still counts at 435 s; the
    // scale-down to 2 comes at 450 s, with no rate limit (4 → 2 in one step).
    let mut cfg = avg_hpa(1.0, 0.0);
    cfg.behavior = None;
    let mut h = Hpa::new("t", &cfg);
    let m = |t: f64| {
        Some(if (60.0..=90.0).contains(&t) {
            1.0
        } else if t < 150.0 {
            4.0
        } else {
            2.0
        })
    };
    for (t, r) in drive_ext(&mut h, 4, ticks(15.0, 600.0), "m", m) {
        assert_eq!(r, if t <= 435.0 { 4 } else { 2 }, "at t = {t}");
    }
}
