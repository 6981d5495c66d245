//! The bounded causal history: what was sent, by whom, because of what, and how each
//! receiving node's flow ended.
//!
//! One `Delivery` records one send: a contiguous range of event ids (one event, or a batch)
//! and one `Branch` per target node. Ids are allocated in increasing order, so deliveries sit
//! in a deque ordered by both event and branch id, and lookups are binary searches. The store
//! holds at most `capacity` events; the oldest deliveries are dropped first.

use std::collections::VecDeque;
use std::sync::Arc;

use super::ids::EventSeq;
use super::names::NameId;

pub type BranchId = u64;

#[derive(Debug, Clone, PartialEq)]
pub enum EventTypes {
    Uniform(NameId),
    PerEvent(Box<[NameId]>),
}

impl EventTypes {
    pub fn get(&self, index: usize) -> NameId {
        match self {
            EventTypes::Uniform(t) => *t,
            EventTypes::PerEvent(ts) => ts[index],
        }
    }
}

/// What caused an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    Root,
    /// An event this runtime issued; `branch` is the flow that sent it, when sent from a flow.
    Event { seq: EventSeq, branch: Option<BranchId> },
    /// An id given by the caller that this runtime did not issue.
    External(Arc<str>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Correlation {
    Event(EventSeq),
    External(Arc<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Fulfilled,
    Rejected,
    Unmatched,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Fulfilled => "fulfilled",
            Outcome::Rejected => "rejected",
            Outcome::Unmatched => "unmatched",
        }
    }
}

/// Rarely present, so kept behind one pointer to keep `Branch` small.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BranchDetail {
    pub more_steps: Vec<NameId>,
    pub error: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub node: Arc<str>,
    /// The handler that started the flow; None when no handler matched.
    pub first_step: Option<NameId>,
    pub outcome: Outcome,
    pub duration_ms: f32,
    pub detail: Option<Box<BranchDetail>>,
}

impl Branch {
    pub fn new(node: Arc<str>, first_step: Option<NameId>) -> Self {
        let outcome = if first_step.is_some() { Outcome::Running } else { Outcome::Unmatched };
        Branch { node, first_step, outcome, duration_ms: 0.0, detail: None }
    }

    pub fn steps(&self) -> impl Iterator<Item = NameId> + '_ {
        self.first_step
            .into_iter()
            .chain(self.detail.iter().flat_map(|d| d.more_steps.iter().copied()))
    }

    pub fn step_count(&self) -> usize {
        self.first_step.is_some() as usize + self.detail.as_ref().map_or(0, |d| d.more_steps.len())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub first_seq: EventSeq,
    pub count: u32,
    pub first_branch: BranchId,
    pub types: EventTypes,
    pub sender: Option<Arc<str>>,
    pub cause: Cause,
    pub correlation: Correlation,
    pub timestamp: f64,
    pub branches: Box<[Branch]>,
    /// Events of a batch whose caller set their own causation or correlation id.
    pub overrides: Option<Box<Vec<(u32, Cause, Correlation)>>>,
    /// The id the (first) event has in the runtime that sent it, when it came from another
    /// process (NATS transport): traces show it and find the event by it.
    pub alias: Option<Arc<str>>,
}

impl Delivery {
    /// The cause and correlation of one event of the delivery. The batch's record describes
    /// its first event; the others share it, except in a root batch, where each event is its
    /// own root, and where the caller set ids on an event.
    pub fn causality(&self, index: u32) -> (Cause, Correlation) {
        if let Some((_, cause, correlation)) =
            self.overrides.as_ref().and_then(|o| o.iter().find(|(i, _, _)| *i == index))
        {
            return (cause.clone(), correlation.clone());
        }
        if index > 0 && self.is_root_batch() {
            return (Cause::Root, Correlation::Event(self.first_seq + index as u64));
        }
        (self.cause.clone(), self.correlation.clone())
    }

    fn is_root_batch(&self) -> bool {
        self.cause == Cause::Root && self.correlation == Correlation::Event(self.first_seq)
    }

    /// Whether any event of the delivery belongs to `correlation`.
    pub fn correlates(&self, correlation: &Correlation) -> bool {
        if self.correlation == *correlation {
            return true;
        }
        if let Correlation::Event(seq) = correlation {
            if self.is_root_batch() && self.contains_seq(*seq) {
                return true;
            }
        }
        self.overrides.as_ref().is_some_and(|o| o.iter().any(|(_, _, c)| c == correlation))
    }

    pub fn contains_seq(&self, seq: EventSeq) -> bool {
        seq >= self.first_seq && seq < self.first_seq + self.count as u64
    }

    pub fn is_batch(&self) -> bool {
        self.count != 1
    }
}

#[derive(Debug)]
pub struct CausalStore {
    capacity: usize,
    events_held: usize,
    deliveries: VecDeque<Delivery>,
}

impl CausalStore {
    pub fn new(capacity: usize) -> Self {
        CausalStore { capacity: capacity.max(1), events_held: 0, deliveries: VecDeque::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn events_held(&self) -> usize {
        self.events_held
    }

    pub fn deliveries(&self) -> impl DoubleEndedIterator<Item = &Delivery> + ExactSizeIterator {
        self.deliveries.iter()
    }

    pub fn record(&mut self, delivery: Delivery) {
        let incoming = delivery.count.max(1) as usize;
        while self.events_held + incoming > self.capacity {
            match self.deliveries.pop_front() {
                Some(old) => self.events_held -= old.count.max(1) as usize,
                None => break,
            }
        }
        self.events_held += incoming;
        self.deliveries.push_back(delivery);
    }

    /// Sets the alias of the delivery that starts at `seq` (the latest one, normally).
    pub fn set_alias(&mut self, seq: EventSeq, alias: Arc<str>) {
        let d = match self.deliveries.back_mut() {
            Some(d) if d.first_seq == seq => Some(d),
            _ => {
                let i = self.deliveries.partition_point(|d| d.first_seq < seq);
                self.deliveries.get_mut(i).filter(|d| d.first_seq == seq)
            }
        };
        if let Some(d) = d {
            d.alias = Some(alias);
        }
    }

    /// The first seq of the delivery whose event came from another process under `alias`.
    pub fn find_alias(&self, alias: &str) -> Option<EventSeq> {
        self.deliveries.iter().rev().find(|d| d.alias.as_deref() == Some(alias)).map(|d| d.first_seq)
    }

    pub fn find_event(&self, seq: EventSeq) -> Option<&Delivery> {
        let i = self.deliveries.partition_point(|d| d.first_seq + (d.count.max(1) as u64) <= seq);
        self.deliveries.get(i).filter(|d| d.contains_seq(seq))
    }

    fn branch_position(&self, id: BranchId) -> Option<(usize, usize)> {
        // Outcomes mostly arrive for the latest sends: look there before searching.
        let latest = self.deliveries.len().saturating_sub(4);
        for i in (latest..self.deliveries.len()).rev() {
            let d = &self.deliveries[i];
            if id >= d.first_branch {
                let offset = (id - d.first_branch) as usize;
                return (offset < d.branches.len()).then_some((i, offset));
            }
        }
        let i = self
            .deliveries
            .partition_point(|d| d.first_branch + d.branches.len() as u64 <= id);
        let d = self.deliveries.get(i)?;
        let offset = id.checked_sub(d.first_branch)? as usize;
        (offset < d.branches.len()).then_some((i, offset))
    }

    pub fn branch(&self, id: BranchId) -> Option<&Branch> {
        self.branch_position(id).map(|(i, o)| &self.deliveries[i].branches[o])
    }

    /// The branch, if the history still holds it (a long flow may outlive its record).
    pub fn branch_mut(&mut self, id: BranchId) -> Option<&mut Branch> {
        self.branch_position(id).map(move |(i, o)| &mut self.deliveries[i].branches[o])
    }

    pub fn add_step(&mut self, id: BranchId, step: NameId) {
        if let Some(branch) = self.branch_mut(id) {
            branch.detail.get_or_insert_with(Default::default).more_steps.push(step);
        }
    }

    /// Sets the caller's own ids on one event of a held batch.
    pub fn override_event(&mut self, seq: EventSeq, cause: Cause, correlation: Correlation) {
        let i = self.deliveries.partition_point(|d| d.first_seq + (d.count.max(1) as u64) <= seq);
        if let Some(d) = self.deliveries.get_mut(i).filter(|d| d.contains_seq(seq)) {
            let index = (seq - d.first_seq) as u32;
            let overrides = d.overrides.get_or_insert_with(Default::default);
            overrides.retain(|(i, _, _)| *i != index);
            overrides.push((index, cause, correlation));
        }
    }

    pub fn finish(&mut self, id: BranchId, outcome: Outcome, duration_ms: f64, error: Option<&str>) {
        if let Some(branch) = self.branch_mut(id) {
            branch.outcome = outcome;
            branch.duration_ms = duration_ms as f32;
            if let Some(message) = error {
                branch.detail.get_or_insert_with(Default::default).error = Some(message.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(first_seq: EventSeq, count: u32, first_branch: BranchId, nodes: &[&str]) -> Delivery {
        Delivery {
            first_seq,
            count,
            first_branch,
            types: EventTypes::Uniform(0),
            sender: None,
            cause: Cause::Root,
            correlation: Correlation::Event(first_seq),
            timestamp: 0.0,
            branches: nodes.iter().map(|n| Branch::new((*n).into(), Some(0))).collect(),
            overrides: None,
            alias: None,
        }
    }

    #[test]
    fn events_and_branches_are_found_by_id() {
        let mut store = CausalStore::new(100);
        store.record(delivery(1, 1, 1, &["a", "b"]));
        store.record(delivery(2, 10, 3, &["c"]));
        assert_eq!(store.find_event(1).unwrap().first_seq, 1);
        assert_eq!(store.find_event(7).unwrap().first_seq, 2);
        assert!(store.find_event(12).is_none());
        assert_eq!(&*store.branch(2).unwrap().node, "b");
        assert_eq!(&*store.branch(3).unwrap().node, "c");
        assert!(store.branch(4).is_none());
    }

    #[test]
    fn the_oldest_deliveries_are_dropped_first() {
        let mut store = CausalStore::new(5);
        store.record(delivery(1, 1, 1, &["a"]));
        store.record(delivery(2, 3, 2, &["a"]));
        store.record(delivery(5, 2, 3, &["a"]));
        assert_eq!(store.events_held(), 5);
        assert!(store.find_event(1).is_none());
        assert!(store.find_event(2).is_some());
        store.record(delivery(7, 1, 4, &["a"]));
        assert!(store.find_event(4).is_none());
        assert_eq!(store.events_held(), 3);
    }

    #[test]
    fn each_event_of_a_root_batch_is_its_own_root_unless_the_caller_says_otherwise() {
        let mut store = CausalStore::new(100);
        store.record(delivery(10, 3, 1, &["a"]));
        store.override_event(12, Cause::External("up".into()), Correlation::External("corr".into()));
        let d = store.find_event(11).unwrap();
        assert_eq!(d.causality(0), (Cause::Root, Correlation::Event(10)));
        assert_eq!(d.causality(1), (Cause::Root, Correlation::Event(11)));
        assert_eq!(d.causality(2), (Cause::External("up".into()), Correlation::External("corr".into())));
        assert!(d.correlates(&Correlation::Event(11)));
        assert!(d.correlates(&Correlation::External("corr".into())));
        assert!(!d.correlates(&Correlation::Event(13)));
    }

    #[test]
    fn outcomes_and_steps_are_recorded_on_held_branches_only() {
        let mut store = CausalStore::new(1);
        store.record(delivery(1, 1, 1, &["a"]));
        store.add_step(1, 7);
        store.finish(1, Outcome::Rejected, 2.5, Some("boom"));
        let b = store.branch(1).unwrap();
        assert_eq!(b.steps().collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!(b.outcome, Outcome::Rejected);
        assert_eq!(b.detail.as_ref().unwrap().error.as_deref(), Some("boom"));
        store.record(delivery(2, 1, 2, &["a"]));
        store.finish(1, Outcome::Fulfilled, 1.0, None);
        assert!(store.branch(1).is_none());
    }
}
