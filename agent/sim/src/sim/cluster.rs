//! The cluster: placing Pending pods on nodes with a free GPU / enough CPU, and the node autoscaler.

use super::*;

impl Simulation {
    pub(super) fn fit(&self, gpus: u32, cpus: f64) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.free_gpus >= gpus && n.free_cpus + 1e-9 >= cpus)
    }

    /// Binds Pending pods to nodes in creation order; asks the node autoscaler for more if some still
    /// do not fit. `warm` makes scheduled pods Ready at once (the initial replicas at t = 0).
    pub(super) fn schedule_pending(&mut self, warm: bool) {
        let now = self.now;
        let mut i = 0;
        while i < self.pending.len() {
            let (id, epoch) = self.pending[i];
            let pod = &self.pods[id as usize];
            if pod.epoch != epoch || pod.phase != Phase::Pending {
                self.pending.remove(i);
                continue;
            }
            let pi = pod.pool as usize;
            let (gpus, cpus) = (self.pools[pi].gpus, self.pools[pi].cfg.cpu_request);
            let Some(n) = self.fit(gpus, cpus) else {
                i += 1;
                continue;
            };
            self.pending.remove(i);
            self.nodes[n].free_gpus -= gpus;
            self.nodes[n].free_cpus -= cpus;
            let pool = &mut self.pools[pi];
            pool.touch_pods(now);
            pool.held += 1;
            let pod = &mut self.pods[id as usize];
            pod.node = n as u32;
            if warm {
                pod.phase = Phase::Starting;
                self.on_ready(id, epoch);
            } else {
                pod.phase = Phase::Starting;
                let d: f64 = pool.startup.iter().map(|s| s.sample(&mut self.rng)).sum();
                self.events.push(now + d, Ev::Ready { pod: id, epoch });
            }
        }
        self.autoscale_nodes();
    }

    pub(super) fn autoscale_nodes(&mut self) {
        let Some(na) = self.cfg.cluster.node_autoscaler.clone() else {
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        let (gpn, cpn) = (
            self.cfg.cluster.gpus_per_node,
            self.cfg.cluster.cpus_per_node,
        );
        // Pack the pending pods that fit an empty node onto fresh virtual nodes, first fit.
        let mut fresh: Vec<Node> = Vec::new();
        for &(id, epoch) in &self.pending {
            let pod = &self.pods[id as usize];
            if pod.epoch != epoch || pod.phase != Phase::Pending {
                continue;
            }
            let pool = &self.pools[pod.pool as usize];
            let (g, c) = (pool.gpus, pool.cfg.cpu_request);
            if g > gpn || c > cpn {
                continue; // would never fit: the cluster autoscaler leaves it Pending too
            }
            match fresh
                .iter_mut()
                .find(|n| n.free_gpus >= g && n.free_cpus + 1e-9 >= c)
            {
                Some(n) => {
                    n.free_gpus -= g;
                    n.free_cpus -= c;
                }
                None => fresh.push(Node {
                    free_gpus: gpn - g,
                    free_cpus: cpn - c,
                }),
            }
        }
        let have = self.nodes.len() as u32 + self.provisioning;
        let want = (fresh.len() as u32).saturating_sub(self.provisioning);
        let add = want.min(na.max_nodes.saturating_sub(have));
        let delay = na.provision_delay.sampler();
        for _ in 0..add {
            let d = delay.sample(&mut self.rng);
            self.provisioning += 1;
            self.events.push(self.now + d, Ev::NodeUp);
        }
    }
}
