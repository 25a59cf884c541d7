//! One Pod's life on the process kubelet: start its Triton process on the Pod IP, probe it, write
//! its status, restart it per `restartPolicy` (immediately the first time, then after 10 s, 20 s,
//! ... up to 5 min, as a kubelet backs off), and on graceful deletion run `preStop`, SIGTERM the
//! process, SIGKILL it when the grace period is over, and remove the Pod.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::container::{self, Plan};
use super::probe::{self, Prober, Verdict};
use super::status::{self, State, Termination, View};
use crate::proc::{ProcError, StopMode, Supervised, Watchdog};

/// How often the worker looks at its process and probes.
const TICK: Duration = Duration::from_millis(250);
/// First restart delay after the immediate one, and the cap (a kubelet's values).
const BACKOFF: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(300));

/// What every Pod worker shares.
#[derive(Clone)]
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Guards every process the kubelet starts.
    pub watchdog: Watchdog,
    /// The Triton launcher.
    pub launcher: PathBuf,
    /// Extra model repository (the emulated model's).
    pub repository: Option<PathBuf>,
    /// Where container logs go.
    pub log_dir: PathBuf,
    /// Bound on stopping a process when the kubelet itself stops.
    pub shutdown_grace: Duration,
}

/// The running state of a Pod's one container.
struct Run {
    plan: Option<Plan>,
    proc: Option<Supervised>,
    started: Option<(Instant, String)>,
    restarts: u32,
    last: Option<Termination>,
    state: State,
    ready: bool,
    retry_at: Option<Instant>,
    startup: Option<Prober>,
    /// The startup probe passed (or there is none) since the process started.
    started_ok: bool,
    readiness: Option<Prober>,
    liveness: Option<Prober>,
    written: Option<Value>,
    start_time: String,
}

/// Runs the Pod until it is deleted (gracefully or not) or the kubelet stops (sender dropped).
pub async fn run(ctx: Context, ip: Ipv4Addr, mut rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = rx.borrow_and_update().clone() else {
        return;
    };
    let mut run = Run::new(&ctx, &pod, ip);
    loop {
        let latest = rx.borrow_and_update().clone();
        let Some(pod) = latest else {
            // Gone from the API (force-deleted): nothing to report to, stop at once.
            run.stop_process(Duration::ZERO).await;
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            run.terminate(&ctx, &pod, ip).await;
            return;
        }
        run.step(&ctx, &pod, ip).await;
        run.write_status(&ctx, &pod, ip).await;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                // The kubelet is stopping: stop the process, leave the Pod to the apiserver.
                run.stop_process(ctx.shutdown_grace).await;
                return;
            },
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

impl Run {
    fn new(ctx: &Context, pod: &Pod, ip: Ipv4Addr) -> Self {
        let (plan, state) = match container::plan(pod, ip, &ctx.launcher, ctx.repository.as_deref())
        {
            Ok(p) => (
                Some(p),
                State::Waiting("ContainerCreating".into(), String::new()),
            ),
            Err(msg) => {
                tracing::warn!(pod = %pod.name_any(), %msg, "cannot run");
                (None, State::Waiting("CreateContainerError".into(), msg))
            }
        };
        let c = pod.spec.as_ref().and_then(|s| s.containers.first());
        let ports = plan.as_ref().map(|p| p.ports.clone()).unwrap_or_default();
        let prober = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
            p.and_then(|p| {
                Prober::new(p, &ports)
                    .inspect_err(|e| tracing::warn!(pod = %pod.name_any(), "probe ignored: {e}"))
                    .ok()
            })
        };
        Self {
            startup: prober(c.and_then(|c| c.startup_probe.as_ref())),
            started_ok: false,
            readiness: prober(c.and_then(|c| c.readiness_probe.as_ref())),
            liveness: prober(c.and_then(|c| c.liveness_probe.as_ref())),
            plan,
            proc: None,
            started: None,
            restarts: 0,
            last: None,
            state,
            ready: false,
            retry_at: Some(Instant::now()),
            written: None,
            start_time: status::now(),
        }
    }

    /// Starts, watches, probes and restarts the process.
    async fn step(&mut self, ctx: &Context, pod: &Pod, ip: Ipv4Addr) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        if let Some(exit) = self.proc.as_mut().and_then(|p| p.check_running().err()) {
            self.exited(pod, exit);
        }
        if self.proc.is_none() && self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.start(ctx, pod, &plan, ip);
        }
        if self.proc.is_none() {
            return;
        }
        // As a kubelet does: readiness and liveness wait until the startup probe passed; a
        // startup probe that reaches its failure threshold restarts the container.
        if !self.started_ok {
            match self.startup.as_mut() {
                None => self.started_ok = true,
                Some(p) => match p.tick(ip, &plan.env).await {
                    Some(Verdict::Pass) => {
                        tracing::info!(pod = %pod.name_any(), "startup probe passed");
                        self.started_ok = true;
                        for p in [self.readiness.as_mut(), self.liveness.as_mut()]
                            .into_iter()
                            .flatten()
                        {
                            p.reset(Instant::now());
                        }
                    }
                    Some(Verdict::Fail) => {
                        tracing::warn!(pod = %pod.name_any(), "startup probe failed: restarting");
                        self.restart_now(pod, &plan).await;
                        return;
                    }
                    None => return,
                },
            }
        }
        if let Some(p) = self.readiness.as_mut() {
            match p.tick(ip, &plan.env).await {
                Some(Verdict::Pass) => self.ready = true,
                Some(Verdict::Fail) => self.ready = false,
                None => {}
            }
        } else {
            self.ready = true;
        }
        if let Some(p) = self.liveness.as_mut()
            && p.tick(ip, &plan.env).await == Some(Verdict::Fail)
        {
            tracing::warn!(pod = %pod.name_any(), "liveness probe failed: restarting");
            self.restart_now(pod, &plan).await;
        }
    }

    /// Stops the process within the grace period and records the exit (then restarted per
    /// `restartPolicy`), as a failed liveness or startup probe does.
    async fn restart_now(&mut self, pod: &Pod, plan: &Plan) {
        self.stop_process(grace_period(pod)).await;
        self.exited(
            pod,
            ProcError::Exited {
                name: plan.name.clone(),
                status: "signal: 15 (SIGTERM)".into(),
                log_tail: String::new(),
            },
        );
    }

    fn start(&mut self, ctx: &Context, pod: &Pod, plan: &Plan, ip: Ipv4Addr) {
        let log = ctx.log_dir.join(format!(
            "{}_{}_{}.log",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            plan.name
        ));
        let mut cmd = Command::new(&plan.program);
        cmd.args(&plan.args)
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .env("POD_IP", ip.to_string());
        match Supervised::spawn(&plan.name, cmd, &log, &ctx.watchdog) {
            Ok(p) => {
                tracing::info!(pod = %pod.name_any(), %ip, pid = p.pid(), "started");
                self.proc = Some(p.with_stop_mode(StopMode::Leader));
                let at = status::now();
                self.state = State::Running(at.clone());
                self.started = Some((Instant::now(), at));
                self.started_ok = false;
                for p in [
                    self.startup.as_mut(),
                    self.readiness.as_mut(),
                    self.liveness.as_mut(),
                ]
                .into_iter()
                .flatten()
                {
                    p.reset(Instant::now());
                }
            }
            Err(e) => {
                self.state = State::Waiting("RunContainerError".into(), e.to_string());
                self.retry_at = Some(Instant::now() + BACKOFF.0);
            }
        }
    }

    /// Records an exit and decides on the restart.
    fn exited(&mut self, pod: &Pod, exit: ProcError) {
        let status = match &exit {
            ProcError::Exited { status, .. } => status.clone(),
            other => other.to_string(),
        };
        if let Some(mut p) = self.proc.take() {
            // Already exited: this only reaps it and kills helpers left in its group.
            p.stop(Duration::ZERO);
        }
        let code = status::exit_code(&status);
        let term = Termination {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at: self.started.take().map(|s| s.1).unwrap_or_default(),
            finished_at: status::now(),
        };
        tracing::warn!(pod = %pod.name_any(), %status, "container exited");
        self.ready = false;
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let restart = policy == "Always" || (policy == "OnFailure" && code != 0);
        if !restart {
            self.state = State::Terminated(term);
            self.retry_at = None;
            return;
        }
        // The first restart is immediate; later ones back off exponentially.
        let delay = match self.restarts {
            0 => Duration::ZERO,
            n => BACKOFF.0.saturating_mul(1 << (n - 1).min(5)).min(BACKOFF.1),
        };
        self.restarts += 1;
        self.last = Some(term);
        self.retry_at = Some(Instant::now() + delay);
        self.state = State::Waiting(
            "CrashLoopBackOff".into(),
            format!("back-off {}s restarting failed container", delay.as_secs()),
        );
    }

    fn view(&self, pod: &Pod, ip: Ipv4Addr, terminating: bool) -> View {
        let c = pod.spec.as_ref().and_then(|s| s.containers.first());
        View {
            pod_ip: ip.to_string(),
            host_ip: "127.0.0.1".into(),
            start_time: self.start_time.clone(),
            name: c.map(|c| c.name.clone()).unwrap_or_default(),
            image: c.and_then(|c| c.image.clone()).unwrap_or_default(),
            container_id: self
                .proc
                .as_ref()
                .map(|p| format!("kis-process://{}", p.pid())),
            state: self.state.clone(),
            last: self.last.clone(),
            restart_count: self.restarts,
            ready: self.ready && !terminating,
            started: self.started_ok,
        }
    }

    /// Patches the Pod's status when it changed since the last write.
    async fn write_status(&mut self, ctx: &Context, pod: &Pod, ip: Ipv4Addr) {
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let status = status::pod_status(pod, &self.view(pod, ip, terminating), &status::now());
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({ "status": status });
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => self.written = Some(status),
            // Retried on the next tick (the apiserver may be restarting).
            Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "status write failed"),
        }
    }

    /// Graceful deletion: not Ready, preStop, SIGTERM, SIGKILL after the grace period, then the
    /// Pod is removed from the API.
    async fn terminate(&mut self, ctx: &Context, pod: &Pod, ip: Ipv4Addr) {
        let t0 = Instant::now();
        let grace = grace_period(pod);
        tracing::info!(pod = %pod.name_any(), grace_s = grace.as_secs(), "terminating");
        self.ready = false;
        self.write_status(ctx, pod, ip).await;
        if self.proc.is_some() {
            self.pre_stop(pod, ip, grace).await;
            // A kubelet gives the process at least 2 s after preStop, even past the grace period.
            let left = grace
                .saturating_sub(t0.elapsed())
                .max(Duration::from_secs(2));
            self.stop_process(left).await;
        }
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams::default()
            .grace_period(0)
            .preconditions(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            });
        // Bounded retries: the apiserver may be restarting; after that the next sync sees it.
        for _ in 0..30 {
            match api.delete(&pod.name_any(), &dp).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => break,
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), error = %e, "delete failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!(pod = %pod.name_any(), elapsed_ms = t0.elapsed().as_millis() as u64, "removed");
    }

    /// Runs the container's `preStop` hook (exec on the host, or HTTP GET on the Pod IP), bounded
    /// by the grace period.
    async fn pre_stop(&self, pod: &Pod, ip: Ipv4Addr, grace: Duration) {
        let Some(hook) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.lifecycle.as_ref())
            .and_then(|l| l.pre_stop.as_ref())
        else {
            return;
        };
        let env = self
            .plan
            .as_ref()
            .map(|p| p.env.clone())
            .unwrap_or_default();
        let check = if let Some(e) = &hook.exec {
            probe::Check::Exec(e.command.clone().unwrap_or_default())
        } else if let Some(h) = &hook.http_get {
            let ports = self
                .plan
                .as_ref()
                .map(|p| p.ports.clone())
                .unwrap_or_default();
            let port = match &h.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as u16,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                    ports.iter().find(|(n, _)| n == name).map_or(0, |(_, p)| *p)
                }
            };
            probe::Check::Http {
                port,
                path: h.path.clone().unwrap_or_else(|| "/".into()),
            }
        } else {
            return;
        };
        let ok = probe::run(&check, ip, grace, &env).await;
        tracing::info!(pod = %pod.name_any(), ok, "preStop hook ran");
    }

    /// SIGTERM to the process, up to `grace`, then SIGKILL to its group.
    async fn stop_process(&mut self, grace: Duration) {
        if let Some(mut p) = self.proc.take() {
            let _ = tokio::task::spawn_blocking(move || p.stop(grace)).await;
        }
    }
}

/// The grace period of a deletion (`deletionGracePeriodSeconds`, else the spec's, else 30 s).
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}
