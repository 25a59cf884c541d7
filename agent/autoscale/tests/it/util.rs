use kis_autoscale::{Autoscaler, PodView, Pool, PoolView};

/// `n` pods created at 0 s and Ready since 10 s, each at CPU utilisation `cpu`.
pub fn ready_pods(n: usize, cpu: Option<f64>) -> Vec<PodView> {
    (0..n).map(|_| PodView::ready(0.0, 10.0, cpu)).collect()
}

/// A view at `now` with `spec` replicas and `spec` Ready pods (no CPU samples).
pub fn view(now: f64, spec: u32) -> PoolView {
    let mut v = PoolView::empty(Pool::Gpu, now, spec);
    v.pods = ready_pods(spec as usize, None);
    v
}

/// A view whose External metric `name` is `value`.
pub fn view_ext(now: f64, spec: u32, name: &str, value: Option<f64>) -> PoolView {
    let mut v = view(now, spec);
    v.external.insert(name.into(), value);
    v
}

/// Runs `a` at `times`, with pods that appear (Ready) the moment replicas change, feeding the
/// External metric `name` from `value(t)`. Returns the replica count after each call.
pub fn drive_ext(
    a: &mut dyn Autoscaler,
    start: u32,
    times: impl IntoIterator<Item = f64>,
    name: &str,
    value: impl Fn(f64) -> Option<f64>,
) -> Vec<(f64, u32)> {
    let mut spec = start;
    let mut out = Vec::new();
    for t in times {
        spec = a.decide(&view_ext(t, spec, name, value(t)));
        out.push((t, spec));
    }
    out
}

/// 0, step, 2·step, ... up to and including `end`.
pub fn ticks(step: f64, end: f64) -> Vec<f64> {
    let n = (end / step).round() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}
