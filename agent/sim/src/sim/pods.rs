//! The pod lifecycle: the Deployment's `spec.replicas`, creation, Pending -> starting -> Ready,
//! the victim choice on scale-down, termination with its grace deadline and the slot's release.

use super::*;

impl Simulation {
    /// Sets spec.replicas and creates or removes pods to match, as the ReplicaSet controller would.
    pub(super) fn set_spec(&mut self, pi: usize, n: u32, count_action: bool) {
        if n != self.pools[pi].spec && count_action {
            self.pools[pi].actions += 1;
        }
        self.pools[pi].spec = n;
        let live = self.pools[pi].live.len() as u32;
        if n > live {
            for _ in live..n {
                self.create_pod(pi);
            }
            self.schedule_pending(false);
        } else {
            for _ in n..live {
                if let Some(v) = self.pick_victim(pi) {
                    self.terminate(v);
                }
            }
            self.schedule_pending(false);
        }
        let pool = &mut self.pools[pi];
        pool.max_live = pool.max_live.max(pool.live.len() as u32);
    }

    pub(super) fn create_pod(&mut self, pi: usize) {
        let pool = &self.pools[pi];
        let k = pool.cfg.instances;
        let pod = Pod {
            pool: pi as u8,
            phase: Phase::Pending,
            epoch: 0,
            node: NO_NODE,
            created_at: self.now,
            ready_since: None,
            queue: VecDeque::new(),
            free: (0..k).rev().collect(),
            batches: (0..k)
                .map(|_| Vec::with_capacity(pool.cfg.max_batch as usize))
                .collect(),
            executing: 0,
            timer_at: f64::INFINITY,
            busy: 0.0,
            samples: VecDeque::new(),
            rate: 0.0,
            rate_t: self.now,
        };
        let id = match self.free_slots.pop() {
            Some(id) => {
                let epoch = self.pods[id as usize].epoch;
                self.pods[id as usize] = Pod { epoch, ..pod };
                id
            }
            None => {
                self.pods.push(pod);
                (self.pods.len() - 1) as u32
            }
        };
        self.pending.push_back((id, self.pods[id as usize].epoch));
        self.pools[pi].live.push(id);
    }

    /// ReplicaSet deletion order: unscheduled first, then not-ready, then the most recently ready,
    /// then the newest.
    pub(super) fn pick_victim(&self, pi: usize) -> Option<u32> {
        let rank = |p: &Pod| match p.phase {
            Phase::Pending => 0,
            Phase::Starting => 1,
            _ => 2,
        };
        self.pools[pi].live.iter().copied().min_by(|&a, &b| {
            let (pa, pb) = (&self.pods[a as usize], &self.pods[b as usize]);
            rank(pa)
                .cmp(&rank(pb))
                .then(
                    pb.ready_since
                        .unwrap_or(0.0)
                        .total_cmp(&pa.ready_since.unwrap_or(0.0)),
                )
                .then(pb.created_at.total_cmp(&pa.created_at))
                .then(b.cmp(&a))
        })
    }

    pub(super) fn terminate(&mut self, id: u32) {
        let now = self.now;
        let pi = self.pods[id as usize].pool as usize;
        let pool = &mut self.pools[pi];
        pool.live.retain(|&x| x != id);
        let pod = &mut self.pods[id as usize];
        match pod.phase {
            Phase::Pending => self.release(id),
            Phase::Starting => self.release(id),
            Phase::Ready => {
                if let Some(pos) = pool.endpoints.iter().position(|&x| x == id) {
                    pool.endpoints.swap_remove(pos);
                }
                pool.touch_pods(now);
                pool.ready -= 1;
                pod.phase = Phase::Terminating;
                if pod.in_flight() == 0 {
                    self.release(id);
                } else {
                    let deadline = now + pool.cfg.grace_period;
                    self.events.push(
                        deadline,
                        Ev::Deadline {
                            pod: id,
                            epoch: pod.epoch,
                        },
                    );
                }
            }
            Phase::Terminating | Phase::Gone => {}
        }
    }

    pub(super) fn on_deadline(&mut self, id: u32, epoch: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        if pod.epoch != epoch || pod.phase != Phase::Terminating {
            return;
        }
        let killed = pod.in_flight() as u64;
        pod.queue.clear();
        for b in pod.batches.iter_mut() {
            b.clear();
        }
        pod.executing = 0;
        let pool = &mut self.pools[pod.pool as usize];
        pool.killed += killed;
        pool.touch_inflight(now);
        pool.inflight -= killed;
        self.release(id);
        self.schedule_pending(false);
    }

    /// Frees the pod's node resources and its slot; pending events of the slot become stale.
    pub(super) fn release(&mut self, id: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        let pool = &mut self.pools[pod.pool as usize];
        if pod.node != NO_NODE {
            let node = &mut self.nodes[pod.node as usize];
            node.free_gpus += pool.gpus;
            node.free_cpus += pool.cfg.cpu_request;
            pod.node = NO_NODE;
            pool.touch_pods(now);
            pool.held -= 1;
        }
        pod.phase = Phase::Gone;
        pod.epoch = pod.epoch.wrapping_add(1);
        pod.timer_at = f64::INFINITY;
        pod.samples.clear();
        self.free_slots.push(id);
    }

    pub(super) fn on_ready(&mut self, id: u32, epoch: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        if pod.epoch != epoch || pod.phase != Phase::Starting {
            return;
        }
        pod.phase = Phase::Ready;
        pod.ready_since = Some(now);
        let pool = &mut self.pools[pod.pool as usize];
        pool.touch_pods(now);
        pool.ready += 1;
        pool.endpoints.push(id);
    }
}
