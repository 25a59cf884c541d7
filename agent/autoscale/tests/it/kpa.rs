use kis_autoscale::{Autoscaler, Kpa, KpaConfig, PodView, Pool, PoolView};

/// Target concurrency 10 at 70 % utilisation → 7 in-flight per pod.
fn kpa() -> KpaConfig {
    KpaConfig {
        target_concurrency: 10.0,
        ..KpaConfig::default()
    }
}

fn kview(now: f64, spec: u32, ready: usize, concurrency: f64) -> PoolView {
    let mut v = PoolView::empty(Pool::Cpu, now, spec);
    v.pods = (0..ready).map(|_| PodView::ready(0.0, 1.0, None)).collect();
    v.concurrency = concurrency;
    v
}

fn ticks2(end: u32) -> impl Iterator<Item = f64> {
    (0..=end / 2).map(|i| f64::from(i * 2))
}

#[test]
fn stable_window_averages_concurrency() {
    // 4 Ready pods, concurrency 28 until 60 s then 7. At t = 60 + 2k the 60 s window (t − 60, t]
    // holds 29 − k samples of 28 and k + 1 of 7: avg = (819 − 21k)/30. dspc = ceil(avg / 7)
    // drops to 3 when avg ≤ 21 ⇔ k ≥ 9 (t = 78): exactly 630/30 = 21. Panic never triggers
    // (panic dppc ≤ 4, 4/4 < 2) and the down-rate floor is floor(4/2) = 2.
    let mut k = Kpa::new("k", &kpa());
    let mut spec = 4;
    for t in ticks2(80) {
        let c = if t < 60.0 { 28.0 } else { 7.0 };
        spec = k.decide(&kview(t, spec, 4, c));
        let want = if t < 78.0 { 4 } else { 3 };
        assert_eq!(spec, want, "at t = {t}");
        assert!(!k.panicking());
    }
    // At t = 80 (k = 10): 19·28 + 11·7 = 609 → 20.3.
    assert!((k.observed().0 - 20.3).abs() < 1e-9);
}

#[test]
fn panic_mode_entry_hold_and_exit() {
    // Target 7. Ready 2 until 66 s, 10 from 68 s. Concurrency 14 until 60 s, 70 for 60..66, 0 after.
    // t < 60: 14/7 = 2 pods. t = 60: panic window (54, 60] = {14, 14, 70} → 32.67 → dppc 5,
    //   5/2 ≥ 2 → panic; stable (0, 60] = (29·14 + 70)/30 = 15.87 → 3; desired max(3, 5) = 5.
    // t = 62: {14, 70, 70} → 51.33 → 8 (8/2 ≥ 2). t = 64: {70, 70, 70} → 10.
    // t = 66: {70, 70, 0} → 46.67 → 7, 7/2 ≥ 2 → panic extended to 66; held at max 10.
    // t ≥ 68: 10 Ready, dppc ≤ 4 → 4/10 < 2; the stable count falls to floor(10/2) = 5, but no
    //   scale-down while panicking: 10 until 66 + 60 < t, i.e. until t = 128, where it drops to 5.
    let mut k = Kpa::new("k", &kpa());
    let mut spec = 2;
    for t in ticks2(130) {
        let ready = if t <= 66.0 { 2 } else { 10 };
        let c = if t < 60.0 {
            14.0
        } else if t < 66.0 {
            70.0
        } else {
            0.0
        };
        spec = k.decide(&kview(t, spec, ready, c));
        let want = match t as u32 {
            0..=58 => 2,
            60 => 5,
            62 => 8,
            64..=126 => 10,
            _ => 5,
        };
        assert_eq!(spec, want, "at t = {t}");
        assert_eq!(
            k.panicking(),
            (60.0..=126.0).contains(&t),
            "panic at t = {t}"
        );
    }
    let s = k.status().unwrap();
    assert!(!s.condition("Panic").unwrap().status);
}

#[test]
fn scale_to_zero_after_grace_period() {
    // One Ready pod, no traffic: dspc 0, down floor floor(1/2) = 0 → wants 0 from t = 0; the
    // 30 s grace keeps 1 while now − 0 < 30, so 0 at t = 30.
    let mut k = Kpa::new("k", &kpa());
    let mut spec = 1;
    for t in ticks2(32) {
        spec = k.decide(&kview(t, spec, 1, 0.0));
        assert_eq!(spec, if t < 30.0 { 1 } else { 0 }, "at t = {t}");
    }
    // With scale to zero disabled it stays at 1.
    let mut k = Kpa::new(
        "k",
        &KpaConfig {
            enable_scale_to_zero: false,
            ..kpa()
        },
    );
    assert_eq!(k.decide(&kview(100.0, 1, 1, 0.0)), 1);
}

#[test]
fn activation_from_zero_through_the_activator() {
    // No pods; 3 requests buffered (queue_len) count as concurrency: ceil(3/7) = 1.
    let mut k = Kpa::new("k", &kpa());
    let mut v = kview(0.0, 0, 0, 0.0);
    v.queue_len = 3.0;
    assert_eq!(k.decide(&v), 1);
    // activation-scale 3: at least 3 when scaling from zero.
    let mut k = Kpa::new(
        "k",
        &KpaConfig {
            activation_scale: 3,
            ..kpa()
        },
    );
    assert_eq!(k.decide(&v), 3);
}

#[test]
fn max_scale_and_min_scale_bound_the_count() {
    // 1 Ready pod at concurrency 700: stable and panic want ceil(700/7) = 100 (≤ 1000·1);
    // max-scale 8 caps it. min-scale 2 lifts an idle revision.
    let mut k = Kpa::new(
        "k",
        &KpaConfig {
            max_scale: 8,
            ..kpa()
        },
    );
    assert_eq!(k.decide(&kview(0.0, 1, 1, 700.0)), 8);
    let mut k = Kpa::new(
        "k",
        &KpaConfig {
            min_scale: 2,
            ..kpa()
        },
    );
    assert_eq!(k.decide(&kview(0.0, 1, 1, 0.0)), 2);
}
