//! Requests: the Service routing each arrival to a Ready pod (weighted round robin across the
//! pools, least-loaded within), the per-pod dynamic-batching queue and its model instances.

use super::*;

impl Simulation {
    pub(super) fn route(&mut self) -> Option<(usize, u32)> {
        let g = self.pools[0].endpoints.len();
        let c = self.pools[1].endpoints.len();
        let pi = match (g, c) {
            (0, 0) => return None,
            (_, 0) => 0,
            (0, _) => 1,
            _ => {
                // Smooth weighted round robin between the pools (nginx's algorithm): with equal pod
                // weights this interleaves exactly like one round robin over every Ready pod.
                let wg = self.pools[0].cfg.weight * g as f64;
                let wc = self.pools[1].cfg.weight * c as f64;
                self.swrr[0] += wg;
                self.swrr[1] += wc;
                let pick = usize::from(self.swrr[1] > self.swrr[0]);
                self.swrr[pick] -= wg + wc;
                pick
            }
        };
        let pool = &mut self.pools[pi];
        let pod = match self.cfg.routing {
            Routing::RoundRobin => {
                pool.rr += 1;
                if pool.rr >= pool.endpoints.len() {
                    pool.rr = 0;
                }
                pool.endpoints[pool.rr]
            }
            Routing::LeastOutstanding => {
                // Start the scan after the last pick so that ties rotate instead of piling on one pod.
                let n = pool.endpoints.len();
                pool.rr = (pool.rr + 1) % n;
                let mut best = pool.endpoints[pool.rr];
                let mut best_n = self.pods[best as usize].in_flight();
                for k in 1..n {
                    let id = pool.endpoints[(pool.rr + k) % n];
                    let f = self.pods[id as usize].in_flight();
                    if f < best_n {
                        best = id;
                        best_n = f;
                    }
                }
                best
            }
        };
        Some((pi, pod))
    }

    pub(super) fn on_arrival(&mut self, t: f64) {
        self.total_arrivals += 1;
        if let Some(c) = self.cohorts.as_mut() {
            c.arrivals.push_back(t);
        }
        let Some((pi, id)) = self.route() else {
            self.no_endpoint += 1;
            return;
        };
        let pool = &mut self.pools[pi];
        pool.arrivals += 1;
        let pod = &mut self.pods[id as usize];
        if let Some(w) = pool.model.rate_window() {
            pod.rate = pod.rate * (-(t - pod.rate_t) / w).exp() + 1.0 / w;
            pod.rate_t = t;
        }
        if let Some(limit) = pool.cfg.queue_limit
            && pod.queue.len() >= limit as usize
        {
            pool.rejected += 1;
            return;
        }
        pool.touch_inflight(t);
        pool.inflight += 1;
        pod.queue.push_back(t);
        self.dispatch(id);
    }

    /// Starts batches on free instances as the dynamic batcher would.
    pub(super) fn dispatch(&mut self, id: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        let pool = &mut self.pools[pod.pool as usize];
        let max_batch = pool.cfg.max_batch as usize;
        let delay = pool.cfg.max_queue_delay;
        while !pod.free.is_empty() && !pod.queue.is_empty() {
            let n = pod.queue.len();
            if n < max_batch && delay > 0.0 {
                let deadline = pod.queue[0] + delay;
                if now < deadline {
                    if pod.timer_at != deadline {
                        pod.timer_at = deadline;
                        self.events.push(
                            deadline,
                            Ev::Timer {
                                pod: id,
                                epoch: pod.epoch,
                            },
                        );
                    }
                    return;
                }
            }
            let b = n.min(max_batch);
            let Some(inst) = pod.free.pop() else { return };
            let batch = &mut pod.batches[inst as usize];
            if b == 1 {
                // Fast path of the common unbatched case.
                if let Some(a) = pod.queue.pop_front() {
                    pool.wait_sum += now - a;
                    batch.push(a);
                }
            } else {
                for a in pod.queue.drain(..b) {
                    pool.wait_sum += now - a;
                    batch.push(a);
                }
            }
            pool.waited += b as u64;
            let st = pool.model.batch_time(b, &mut self.rng);
            pod.busy += st;
            pool.busy += st;
            pod.executing += b as u32;
            self.events.push(
                now + st,
                Ev::Done {
                    pod: id,
                    inst,
                    epoch: pod.epoch,
                },
            );
        }
    }

    pub(super) fn on_done(&mut self, id: u32, inst: u32, epoch: u32) {
        let now = self.now;
        let slo = self.cfg.slo;
        let pod = &mut self.pods[id as usize];
        if pod.epoch != epoch {
            return; // the pod was killed at its grace deadline; those requests are counted there
        }
        let pool = &mut self.pools[pod.pool as usize];
        let batch = &mut pod.batches[inst as usize];
        let b = batch.len();
        // The replica's arrival rate now, when the overhead depends on it (one exp per batch).
        let rate = pool
            .model
            .rate_window()
            .map(|w| pod.rate * (-(now - pod.rate_t) / w).exp());
        for &a in batch.iter() {
            let net = match rate {
                Some(r) => pool.model.network_time_at(r, &mut self.rng),
                None => pool.model.network_time(&mut self.rng),
            };
            let lat = now - a + net;
            let b = crate::histogram::bucket(lat);
            pool.latency.record_at(b, lat);
            pool.interval.record_at(b, lat);
            if let Some(h) = self.step_hist.as_mut() {
                h.record_at(b, lat);
            }
            if lat > slo {
                pool.over_slo += 1;
            } else if let Some(c) = self.cohorts.as_mut() {
                c.met.push(a);
            }
        }
        batch.clear();
        pod.free.push(inst);
        pod.executing -= b as u32;
        pool.completed += b as u64;
        pool.touch_inflight(now);
        pool.inflight -= b as u64;
        if pod.phase == Phase::Terminating && pod.in_flight() == 0 {
            self.release(id);
            self.schedule_pending(false);
        } else {
            self.dispatch(id);
        }
    }
}
