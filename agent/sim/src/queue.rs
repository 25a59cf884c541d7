//! The event queue: a binary min-heap on (time, sequence number), so simultaneous events run in the order
//! they were scheduled and a seed always gives the same run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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
/// and the sequence number: one integer comparison per heap step.
#[derive(Debug)]
struct Entry {
    key: (u64, u64),
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed so that BinaryHeap (a max-heap) pops the earliest event first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key)
    }
}

/// Pending events in time order.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    pub(crate) fn push(&mut self, t: f64, ev: Ev) {
        debug_assert!(t >= 0.0, "event time {t}");
        self.seq += 1;
        // +0.0 normalises a -0.0 so that its bits sort first.
        let bits = (t + 0.0).to_bits();
        self.heap.push(Entry {
            key: (bits, self.seq),
            ev,
        });
    }

    /// Time of the next event, +inf when empty.
    #[inline]
    pub(crate) fn next_time(&self) -> f64 {
        self.heap
            .peek()
            .map_or(f64::INFINITY, |e| f64::from_bits(e.key.0))
    }

    pub(crate) fn pop(&mut self) -> Option<(f64, Ev)> {
        self.heap.pop().map(|e| (f64::from_bits(e.key.0), e.ev))
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
}
