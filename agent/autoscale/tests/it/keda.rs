use kis_autoscale::{Autoscaler, AutoscalerSpec, Keda, KedaConfig};

use crate::util::{drive_ext, ticks, view_ext};

fn keda(activation: f64) -> KedaConfig {
    KedaConfig {
        metric: "queue_len".into(),
        threshold: 5.0,
        activation_threshold: activation,
        ..KedaConfig::default()
    }
}

#[test]
fn period_is_the_common_beat_of_poll_and_hpa() {
    // polling 30 s, HPA 15 s → called every 15 s.
    let a = AutoscalerSpec::Keda(keda(0.0)).build().unwrap();
    assert_eq!(a.period(), 15.0);
}

#[test]
fn activation_from_zero_then_hpa_takes_over() {
    let mut k = Keda::new("k", &keda(2.0));
    // t = 0: queue 1 ≤ activation 2 → inactive, stays 0; the HPA (min 1) is disabled at 0.
    // t = 15: no poll due (next at 30); HPA disabled → 0.
    // t = 30: queue 2 → still inactive (active means value > activationThreshold).
    // t = 60: queue 3 → active → operator scales 0 → max(minReplicaCount, 1) = 1; the HPA then
    //   sees spec 1 with no pods yet: status.replicas 0 → ratio ∞ → ceil(3/5) = 1 → 1.
    // t = 75: 1 pod, queue 30 → HPA: ceil(30/5) = 6; KEDA sets no behavior by default, so the
    //   HPA's legacy limit max(2·1, 4) = 4 applies.
    let q = |t: f64| {
        Some(match t as u32 {
            0..=15 => 1.0,
            16..=45 => 2.0,
            46..=60 => 3.0,
            _ => 30.0,
        })
    };
    let got = drive_ext(&mut k, 0, ticks(15.0, 75.0), "queue_len", q);
    assert_eq!(
        got,
        vec![
            (0.0, 0),
            (15.0, 0),
            (30.0, 0),
            (45.0, 0),
            (60.0, 1),
            (75.0, 4)
        ]
    );
    let s = k.status().unwrap();
    assert!(s.condition("Active").unwrap().status);
}

#[test]
fn cooldown_before_scaling_to_zero() {
    // Active at t = 0 (queue 10, lastActiveTime 0), then idle. The HPA (AverageValue 5, 2 pods:
    // 10/(5·2) = 1 → keep 2; no behavior → legacy window) holds 2 while the 2 recommended at
    // t = 0 is within 300 s (counted while 0 ≥ t − 300, i.e. up to t = 300); at 315 s it wants
    // ceil(0/5) = 0 → clamped to its min 1. The operator scales to zero at the first poll with
    // lastActive + 300 < now: polls run at 0, 30, ..., 300 (0 + 300 < 300 false), 330 → 0.
    let mut k = Keda::new("k", &keda(0.0));
    let q = |t: f64| Some(if t == 0.0 { 10.0 } else { 0.0 });
    for (t, r) in drive_ext(&mut k, 2, ticks(15.0, 360.0), "queue_len", q) {
        let want = match t as u32 {
            0..=300 => 2,
            315 => 1,
            _ => 0,
        };
        assert_eq!(r, want, "at t = {t}");
    }
    assert!(!k.status().unwrap().condition("Active").unwrap().status);
}

#[test]
fn min_replica_count_is_kept_when_idle() {
    // minReplicaCount 2, idle at 0 replicas → operator restores 2.
    let mut cfg = keda(0.0);
    cfg.min_replica_count = 2;
    let mut k = Keda::new("k", &cfg);
    assert_eq!(k.decide(&view_ext(0.0, 0, "queue_len", Some(0.0))), 2);
}

#[test]
fn missing_metric_changes_nothing() {
    // No value: the trigger errors. With no fallback KEDA only marks the ScaledObject not Ready,
    // and the HPA's only metric is invalid, so it keeps its count too: 3 stays 3.
    let mut k = Keda::new("k", &keda(0.0));
    assert_eq!(k.decide(&view_ext(0.0, 3, "queue_len", None)), 3);
    assert_eq!(k.decide(&view_ext(30.0, 3, "queue_len", None)), 3);
    let s = k.status().unwrap();
    assert!(!s.condition("Active").unwrap().status);
    assert_eq!(
        s.condition("ScalingActive").unwrap().reason,
        "FailedGetExternalMetric"
    );
}

#[test]
fn never_active_target_goes_to_zero_after_the_initial_cooldown() {
    // lastActiveTime is nil: scale to zero once creation + initialCooldownPeriod < now.
    // Default 0: not at the creating poll (0 + 0 < 0 is false), but at the next one (30 s).
    // Meanwhile the fresh HPA (no history in its down-window) wants ceil(0/5) = 0 at t = 0; the
    // −100 % policy allows 0, so its min 1 binds: 2 → 1.
    let mut k = Keda::new("k", &keda(0.0));
    let got = drive_ext(&mut k, 2, ticks(15.0, 30.0), "queue_len", |_| Some(0.0));
    assert_eq!(got, vec![(0.0, 1), (15.0, 1), (30.0, 0)]);
    // initialCooldownPeriod 60: polls at 0, 30, 60 keep it (60 < 60 false), 90 scales to zero.
    let mut cfg = keda(0.0);
    cfg.initial_cooldown_period = 60.0;
    let mut k = Keda::new("k", &cfg);
    let got = drive_ext(&mut k, 1, ticks(30.0, 90.0), "queue_len", |_| Some(0.0));
    assert_eq!(got, vec![(0.0, 1), (30.0, 1), (60.0, 1), (90.0, 0)]);
}
