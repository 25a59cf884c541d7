//! What `/readyz` means, and the background tasks behind it.
//!
//! [`Health`] is ready only while the port is listening, the configuration is loaded, no
//! supervised task has ended, and no ConfigMap watch has been failing for longer than its budget.
//! [`Tasks`] runs the background tasks (accept loop, file reloader, watches, state writer): one
//! that returns or panics while the adapter is not stopping marks it not ready for good and logs
//! one error line, so the Deployment's readiness probe takes the replica out of the Service
//! instead of it serving with a dead reloader (old token valid, rotated certificates ignored).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;

/// Resolves once the stop flag is set (the watch guard is dropped inside, so callers stay `Send`).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Readiness conditions.
#[derive(Debug)]
pub struct Health {
    listening: AtomicBool,
    config_loaded: AtomicBool,
    stopping: AtomicBool,
    /// Task name → why it ended.
    dead: Mutex<BTreeMap<String, String>>,
    /// Watch name → failing since (none: healthy).
    watches: Mutex<BTreeMap<String, Option<Instant>>>,
    watch_budget: Duration,
}

impl Health {
    /// Not ready yet; a watch may fail for `watch_budget` before readiness is lost.
    pub fn new(watch_budget: Duration) -> Self {
        Self {
            listening: AtomicBool::new(false),
            config_loaded: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            dead: Mutex::new(BTreeMap::new()),
            watches: Mutex::new(BTreeMap::new()),
            watch_budget,
        }
    }

    /// Ready from the start (embedding and router tests without a server).
    pub fn ready_now() -> Self {
        let h = Self::new(Duration::from_secs(120));
        h.set_listening(true);
        h.set_config_loaded(true);
        h
    }

    /// The HTTPS port accepts connections (or stopped accepting).
    pub fn set_listening(&self, v: bool) {
        self.listening.store(v, Ordering::Relaxed);
    }

    /// Every start-up input is loaded.
    pub fn set_config_loaded(&self, v: bool) {
        self.config_loaded.store(v, Ordering::Relaxed);
    }

    /// Shutting down: not ready (drains the Service), and tasks ending now are expected.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Records that task `name` ended for `why`; logged once per task.
    pub fn task_ended(&self, name: &str, why: &str) {
        let mut d = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if !d.contains_key(name) {
            tracing::error!(
                task = name,
                reason = why,
                "background task ended unexpectedly; readiness now fails"
            );
            d.insert(name.to_string(), why.to_string());
        }
    }

    /// A watch of `name` failed (the first failure of a streak starts its clock).
    pub fn watch_failed(&self, name: &str) {
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let since = w.entry(name.to_string()).or_insert(None);
        if since.is_none() {
            *since = Some(Instant::now());
        }
    }

    /// A watch of `name` delivered a version (healthy again).
    pub fn watch_ok(&self, name: &str) {
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        w.insert(name.to_string(), None);
    }

    /// Why the adapter is not ready; empty when ready.
    pub fn not_ready(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.stopping() {
            why.push("shutting down".to_string());
        }
        if !self.listening.load(Ordering::Relaxed) {
            why.push("not listening".to_string());
        }
        if !self.config_loaded.load(Ordering::Relaxed) {
            why.push("configuration not loaded".to_string());
        }
        for (t, r) in self.dead.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            why.push(format!("task {t} ended: {r}"));
        }
        let now = Instant::now();
        for (w, since) in self
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(s) = since
                && now.duration_since(*s) > self.watch_budget
            {
                why.push(format!(
                    "{w} watch failing for {:.0}s (budget {:?})",
                    now.duration_since(*s).as_secs_f64(),
                    self.watch_budget
                ));
            }
        }
        why
    }
}

/// Named background tasks under supervision.
#[derive(Debug, Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
    aborts: BTreeMap<&'static str, AbortHandle>,
}

impl Tasks {
    /// Spawns `fut` as task `name`.
    pub fn spawn(&mut self, name: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
        let h = self.set.spawn(fut);
        self.names.insert(h.id(), name);
        self.aborts.insert(name, h);
    }

    /// Starts the supervisor: it waits for every task and reports any that ends while
    /// `health` is not stopping. Returns the supervisor (it ends when every task has) and the
    /// tasks' abort handles by name.
    pub fn supervise(
        self,
        health: Arc<Health>,
    ) -> (JoinHandle<()>, BTreeMap<&'static str, AbortHandle>) {
        let Tasks {
            mut set,
            names,
            aborts,
        } = self;
        let sup = tokio::spawn(async move {
            while let Some(r) = set.join_next_with_id().await {
                let (id, why) = match r {
                    Ok((id, ())) => (id, "returned".to_string()),
                    Err(e) if e.is_panic() => {
                        let id = e.id();
                        let p = e.into_panic();
                        let msg = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".into());
                        (id, format!("panicked: {msg}"))
                    }
                    Err(e) => (e.id(), "was cancelled".to_string()),
                };
                if !health.stopping() {
                    health.task_ended(names.get(&id).copied().unwrap_or("unnamed"), &why);
                }
            }
        });
        (sup, aborts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_or_panics_makes_the_adapter_not_ready() {
        let h = Arc::new(Health::ready_now());
        assert!(h.not_ready().is_empty());
        let mut t = Tasks::default();
        t.spawn("panics", async { panic!("period must be non-zero") });
        t.spawn("forever", std::future::pending());
        let (sup, aborts) = t.supervise(h.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.not_ready().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            h.not_ready(),
            ["task panics ended: panicked: period must be non-zero"]
        );
        aborts["forever"].abort();
        sup.await.unwrap();
        assert_eq!(h.not_ready().len(), 2, "{:?}", h.not_ready());
    }

    #[tokio::test]
    async fn tasks_ending_during_shutdown_are_expected() {
        let h = Arc::new(Health::ready_now());
        h.set_stopping();
        let mut t = Tasks::default();
        t.spawn("ends", async {});
        let (sup, _) = t.supervise(h.clone());
        sup.await.unwrap();
        assert_eq!(h.not_ready(), ["shutting down"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_failing_past_its_budget_is_not_ready_until_it_recovers() {
        let h = Health::new(Duration::from_secs(60));
        h.set_listening(true);
        h.set_config_loaded(true);
        h.watch_failed("targets");
        tokio::time::advance(Duration::from_secs(30)).await;
        h.watch_failed("targets");
        assert!(h.not_ready().is_empty(), "within budget");
        tokio::time::advance(Duration::from_secs(31)).await;
        let why = h.not_ready();
        assert!(
            why[0].starts_with("targets watch failing for 61s"),
            "{why:?}"
        );
        h.watch_ok("targets");
        assert!(h.not_ready().is_empty());
    }
}
