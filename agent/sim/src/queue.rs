//! The event queue: a binary min-heap on (time, sequence number), so simultaneous events run in the order
//! they were scheduled and a seed always gives the same run.

/// What happens at an event time. `epoch` fields guard against events of a pod slot that was reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    /// An instance of a pod finished its batch.
    Done { pod: u32, inst: u32, epoch: u32 },
    /// A pod's dynamic-batching delay expired.
    Timer { pod: u32, epoch: u32 },
    /// A starting pod passed its readiness probe.
    Ready { pod: u32, epoch: u32 },
    /// A terminating pod's grace period ended.
    Deadline { pod: u32, epoch: u32 },
    /// Prometheus scrapes every target.
    Scrape,
    /// A pool's autoscaler runs (0 = GPU, 1 = CPU).
    Control(u8),
    /// A provisioned node joins the cluster.
    NodeUp,
}

/// `key` packs the event time's bits (times are >= 0, so their IEEE bits order like the numbers)
/// above the sequence number: one integer comparison per heap step.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u128,
    ev: Ev,
}

/// Pending events in time order: a binary min-heap of its own rather than std's `BinaryHeap`,
/// whose sifts write an entry field by field and read it back whole (a store-forwarding stall on
/// every push, measured at a quarter of `dispatch`'s time). The order is the same total order on
/// (time, sequence), so the events come out exactly as before.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: Vec<Entry>,
    seq: u64,
}

impl EventQueue {
    #[inline]
    pub(crate) fn push(&mut self, t: f64, ev: Ev) {
        debug_assert!(t >= 0.0, "event time {t}");
        self.seq += 1;
        // +0.0 normalises a -0.0 so that its bits sort first.
        let bits = (t + 0.0).to_bits();
        let e = Entry {
            key: ((bits as u128) << 64) | self.seq as u128,
            ev,
        };
        // Sift up with a hole: parents move down until `e`'s place is found, `e` is written once.
        let h = &mut self.heap;
        let mut i = h.len();
        h.push(e);
        while i > 0 {
            let p = (i - 1) / 2;
            if h[p].key <= e.key {
                break;
            }
            h[i] = h[p];
            i = p;
        }
        h[i] = e;
    }

    /// Time of the next event, +inf when empty.
    #[inline]
    pub(crate) fn next_time(&self) -> f64 {
        self.heap
            .first()
            .map_or(f64::INFINITY, |e| f64::from_bits((e.key >> 64) as u64))
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(f64, Ev)> {
        let h = &mut self.heap;
        let last = h.pop()?;
        let Some(&top) = h.first() else {
            return Some((f64::from_bits((last.key >> 64) as u64), last.ev));
        };
        // Floyd's pop: move the hole at the root down along the smaller children to a leaf, then
        // sift `last` up from there (it usually belongs near the bottom).
        let n = h.len();
        let mut i = 0;
        loop {
            let c = 2 * i + 1;
            if c >= n {
                break;
            }
            let c = if c + 1 < n && h[c + 1].key < h[c].key {
                c + 1
            } else {
                c
            };
            h[i] = h[c];
            i = c;
        }
        while i > 0 {
            let p = (i - 1) / 2;
            if h[p].key <= last.key {
                break;
            }
            h[i] = h[p];
            i = p;
        }
        h[i] = last;
        Some((f64::from_bits((top.key >> 64) as u64), top.ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(2.0, Ev::Scrape);
        q.push(1.0, Ev::Control(1));
        q.push(1.0, Ev::Control(0));
        q.push(0.5, Ev::NodeUp);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (0.5, Ev::NodeUp),
                (1.0, Ev::Control(1)),
                (1.0, Ev::Control(0)),
                (2.0, Ev::Scrape)
            ]
        );
        assert_eq!(q.next_time(), f64::INFINITY);
    }

    #[test]
    fn interleaved_pushes_and_pops_match_a_sorted_reference() {
        // Reference: the pending (time, sequence) pairs, the smallest popped each time.
        let mut q = EventQueue::default();
        let mut reference: Vec<(f64, u64)> = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut seq = 0;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 < 3 || reference.is_empty() {
                // Coarse times: many ties, which must leave in insertion order.
                let t = (x >> 40) as f64 % 64.0 * 0.25 + step as f64 * 0.01;
                seq += 1;
                q.push(t, Ev::Control((seq % 200) as u8));
                reference.push((t, seq));
                assert_eq!(q.heap.len(), reference.len());
            } else {
                let k = (0..reference.len())
                    .min_by(|&a, &b| {
                        reference[a]
                            .0
                            .total_cmp(&reference[b].0)
                            .then(reference[a].1.cmp(&reference[b].1))
                    })
                    .unwrap();
                let (t, sq) = reference.swap_remove(k);
                assert_eq!(q.pop(), Some((t, Ev::Control((sq % 200) as u8))));
                let next = reference.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
                assert_eq!(q.next_time(), next);
            }
        }
    }
}
