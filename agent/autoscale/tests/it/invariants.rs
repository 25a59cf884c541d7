use kis_autoscale::{
    Autoscaler, AutoscalerSpec, Behavior, ExternalTarget, HpaConfig, KedaConfig, Kpa, KpaConfig,
    MetricSpec, PodView, Pool, PoolView,
};

/// xorshift64*: a tiny deterministic generator so the invariants run over many random views
/// without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// A random view at `now`: `spec` replicas, a random mix of Ready / starting pods, random CPU
/// samples (some missing), random queue and p95, and `m` sometimes missing.
fn random_view(r: &mut Rng, now: f64, spec: u32) -> PoolView {
    let mut v = PoolView::empty(Pool::Gpu, now, spec);
    let n = if r.below(4) == 0 {
        r.below(spec + 2)
    } else {
        spec
    };
    v.pods = (0..n)
        .map(|_| {
            let created = (now - 400.0 * r.unit()).max(0.0);
            let ready = r.below(5) != 0;
            PodView {
                ready,
                created_at: created,
                ready_since: if ready || r.below(2) == 0 {
                    Some(created + 5.0)
                } else {
                    None
                },
                cpu_utilization: if r.below(6) == 0 {
                    None
                } else {
                    Some(1.5 * r.unit())
                },
                gpu_utilization: None,
                queue_len: 0,
                in_flight: 0,
            }
        })
        .collect();
    v.queue_len = 40.0 * r.unit();
    v.concurrency = 60.0 * r.unit();
    v.p95_latency = (r.below(5) != 0).then(|| r.unit());
    v.request_rate = 100.0 * r.unit();
    let m = (r.below(6) != 0).then(|| 30.0 * r.unit());
    v.external.insert("m".into(), m);
    v.external
        .insert("kis-replicas".into(), m.map(|x| x.round()));
    v
}

fn specs() -> Vec<AutoscalerSpec> {
    let ext = |t| MetricSpec::External {
        name: "m".into(),
        target: t,
    };
    vec![
        AutoscalerSpec::Hpa(HpaConfig {
            min_replicas: 2,
            max_replicas: 12,
            ..HpaConfig::default()
        }),
        AutoscalerSpec::Hpa(HpaConfig {
            min_replicas: 1,
            max_replicas: 12,
            metrics: vec![
                MetricSpec::CpuUtilization {
                    average_utilization: 60,
                },
                ext(ExternalTarget::AverageValue(3.0)),
                ext(ExternalTarget::Value(10.0)),
            ],
            behavior: Some(Behavior::default()),
            ..HpaConfig::default()
        }),
        AutoscalerSpec::ExternalTarget(HpaConfig {
            max_replicas: 12,
            ..HpaConfig::default()
        }),
    ]
}

#[test]
fn hpa_stays_within_min_max_and_is_deterministic() {
    for (i, spec) in specs().into_iter().enumerate() {
        let (min, max) = match &spec {
            AutoscalerSpec::Hpa(c) | AutoscalerSpec::ExternalTarget(c) => {
                (c.min_replicas, c.max_replicas)
            }
            _ => unreachable!(),
        };
        let mut a = spec.build().unwrap();
        let mut b = spec.build().unwrap();
        let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ i as u64);
        let mut spec_replicas = 3;
        for k in 0..2000 {
            let v = random_view(&mut r, 15.0 * f64::from(k), spec_replicas);
            let out = a.decide(&v);
            assert_eq!(out, b.decide(&v), "same inputs, same answer");
            assert!(
                (min..=max).contains(&out),
                "spec {i} step {k}: {out} outside [{min}, {max}]"
            );
            // Sometimes the cluster lags or someone scales by hand.
            spec_replicas = if r.below(10) == 0 {
                r.below(15) + 1
            } else {
                out
            };
        }
    }
}

#[test]
fn keda_stays_within_bounds() {
    let cfg = KedaConfig {
        metric: "m".into(),
        threshold: 4.0,
        activation_threshold: 1.0,
        max_replica_count: 9,
        ..KedaConfig::default()
    };
    let mut a = AutoscalerSpec::Keda(cfg).build().unwrap();
    let mut r = Rng(7);
    let mut spec_replicas = 0;
    let mut saw_zero = false;
    let mut saw_many = false;
    for k in 0..4000 {
        let mut v = random_view(&mut r, 15.0 * f64::from(k), spec_replicas);
        // Alternate 25-minute busy and quiet phases so both the cooldown and activation happen.
        if (k / 100) % 2 == 1 {
            v.external.insert("m".into(), Some(0.0));
        }
        spec_replicas = a.decide(&v);
        assert!(spec_replicas <= 9);
        saw_zero |= spec_replicas == 0;
        saw_many |= spec_replicas > 1;
    }
    assert!(saw_zero && saw_many, "the run exercised both regimes");
}

#[test]
fn kpa_never_scales_down_while_panicking() {
    let mut k = Kpa::new(
        "k",
        &KpaConfig {
            target_concurrency: 5.0,
            ..KpaConfig::default()
        },
    );
    let mut r = Rng(11);
    let mut spec = 1u32;
    let mut panicked = 0;
    for i in 0..5000 {
        let now = 2.0 * f64::from(i);
        // Bursty load: mostly calm, sometimes a surge.
        let c = if r.below(20) == 0 {
            200.0 * r.unit()
        } else {
            10.0 * r.unit()
        };
        let mut v = PoolView::empty(Pool::Cpu, now, spec);
        let ready = spec.min(r.below(spec + 1) + spec / 2);
        v.pods = (0..ready).map(|_| PodView::ready(0.0, 1.0, None)).collect();
        v.concurrency = c;
        let was_panicking = k.panicking();
        let out = k.decide(&v);
        if was_panicking && k.panicking() {
            assert!(
                out >= spec,
                "scaled down from {spec} to {out} while panicking at {now}"
            );
            panicked += 1;
        }
        spec = out;
    }
    assert!(
        panicked > 50,
        "the run spent time in panic mode ({panicked} ticks)"
    );
}
