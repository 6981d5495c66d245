//! The bounded causal history: what was sent, by whom, because of what, and how each
//! receiving node's flow ended.
//!
//! One `Delivery` records one send: a contiguous range of event ids (one event, or a batch)
//! and a contiguous range of branch ids, one `Branch` per target node. Ids are allocated in
//! increasing order, so deliveries sit in a deque ordered by event id (found by binary search)
//! and branches in a second deque indexed by branch id (found directly), with no allocation
//! per send. The store holds at most `capacity` events; the oldest deliveries go first.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::foreign::{Alias, ForeignId, ForeignPrefixes};
use super::ids::EventSeq;
use super::names::{NameId, SharedNames};

pub type BranchId = u64;

/// What caused an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    Root,
    /// An event this runtime issued; `branch` is the flow that sent it, when sent from a flow.
    Event {
        seq: EventSeq,
        branch: Option<BranchId>,
    },
    /// An id given by the caller that this runtime did not issue.
    External(Arc<str>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Correlation {
    Event(EventSeq),
    /// Another runtime's event id (see `foreign`).
    Foreign(ForeignId),
    External(Arc<str>),
}

impl Correlation {
    /// Whether both name the same id: a foreign id may be held as text too (see `foreign`).
    pub fn same_id(&self, other: &Correlation, prefixes: &ForeignPrefixes) -> bool {
        match (self, other) {
            (Correlation::Foreign(id), Correlation::External(text))
            | (Correlation::External(text), Correlation::Foreign(id)) => {
                prefixes.format(*id) == **text
            }
            _ => self == other,
        }
    }
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

/// Steps beyond the first, and the error of a failed flow: rare, so kept beside the branches
/// (keyed by branch id) rather than in every `Branch`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BranchDetail {
    /// Inline up to four (the size of a Vec): most flows of several steps are short, and then
    /// recording a step allocates nothing.
    pub more_steps: SmallVec<[NameId; 4]>,
    pub error: Option<Box<str>>,
}

const NO_STEP: NameId = NameId::MAX;

/// One target node's flow for a delivery: 16 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// The node's name in `SharedNames`.
    pub node: NameId,
    first_step: NameId,
    pub duration_ms: f32,
    pub outcome: Outcome,
}

impl Branch {
    pub fn new(node: NameId, first_step: Option<NameId>) -> Self {
        let outcome = if first_step.is_some() {
            Outcome::Running
        } else {
            Outcome::Unmatched
        };
        Branch {
            node,
            first_step: first_step.unwrap_or(NO_STEP),
            duration_ms: 0.0,
            outcome,
        }
    }

    /// The handler that started the flow; None when no handler matched.
    pub fn first_step(&self) -> Option<NameId> {
        (self.first_step != NO_STEP).then_some(self.first_step)
    }
}

/// What a delivery records beyond the common case: per-event types, ids the caller chose.
#[derive(Debug, Default, Clone, PartialEq)]
struct DeliveryExtra {
    types: Option<Box<[NameId]>>,
    external_cause: Option<Arc<str>>,
    external_correlation: Option<Arc<str>>,
    /// Events of a batch whose caller set their own causation or correlation id.
    overrides: Vec<(u32, Cause, Correlation)>,
    /// The id the (first) event has in the runtime that sent it, when it came from another
    /// process (NATS transport) and is not its correlation: traces show it and find the event
    /// by it.
    alias: Option<Alias>,
}

const NONE: u64 = 0;
const NO_PREFIX: NameId = NameId::MAX;

/// One send: compact, since the history holds thousands (80 bytes, plus 16 per target in the
/// branch deque).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub first_seq: EventSeq,
    pub first_branch: BranchId,
    cause_seq: EventSeq,
    cause_branch: BranchId,
    correlation_seq: EventSeq,
    pub timestamp: f64,
    pub count: u32,
    event_type: NameId,
    sender: NameId,
    branch_count: u32,
    /// Not NO_PREFIX: the correlation is the foreign id of this prefix and `correlation_seq`.
    /// An event served for another runtime mostly is, and the events its flows send inherit it.
    correlation_prefix: NameId,
    /// The alias is that foreign correlation (a root event in the runtime that sent it): the
    /// usual served event keeps its alias with no `extra`.
    alias_is_correlation: bool,
    extra: Option<Box<DeliveryExtra>>,
}

/// What `CausalStore::record` takes to make a `Delivery`.
pub struct NewDelivery<'a> {
    pub first_seq: EventSeq,
    pub count: u32,
    pub first_branch: BranchId,
    /// One type per event, or one for all.
    pub types: &'a [NameId],
    pub sender: Option<NameId>,
    pub cause: Cause,
    pub correlation: Correlation,
    /// The id the event has in the process that sent it, if it came from elsewhere.
    pub alias: Option<Alias>,
    pub timestamp: f64,
    /// Taken into the store.
    pub branches: &'a mut Vec<Branch>,
}

impl Delivery {
    fn new(d: NewDelivery, branch_count: u32) -> Self {
        // Most sends need no extra: it is made only for one that does.
        let mut extra: Option<Box<DeliveryExtra>> = None;
        if d.types.len() > 1 {
            extra.get_or_insert_with(Default::default).types = Some(d.types.into());
        }
        let (cause_seq, cause_branch) = match d.cause {
            Cause::Root => (NONE, NONE),
            Cause::Event { seq, branch } => (seq, branch.unwrap_or(NONE)),
            Cause::External(id) => {
                extra.get_or_insert_with(Default::default).external_cause = Some(id);
                (NONE, NONE)
            }
        };
        let (correlation_seq, correlation_prefix) = match d.correlation {
            Correlation::Event(seq) => (seq, NO_PREFIX),
            Correlation::Foreign(id) => (id.seq, id.prefix),
            Correlation::External(id) => {
                extra
                    .get_or_insert_with(Default::default)
                    .external_correlation = Some(id);
                (NONE, NO_PREFIX)
            }
        };
        let alias_is_correlation = match d.alias {
            Some(Alias::Foreign(id))
                if id.prefix == correlation_prefix && id.seq == correlation_seq =>
            {
                true
            }
            Some(alias) => {
                extra.get_or_insert_with(Default::default).alias = Some(alias);
                false
            }
            None => false,
        };
        Delivery {
            first_seq: d.first_seq,
            first_branch: d.first_branch,
            cause_seq,
            cause_branch,
            correlation_seq,
            timestamp: d.timestamp,
            count: d.count,
            event_type: d.types.first().copied().unwrap_or(NO_STEP),
            sender: d.sender.unwrap_or(NO_STEP),
            branch_count,
            correlation_prefix,
            alias_is_correlation,
            extra,
        }
    }

    pub fn contains_seq(&self, seq: EventSeq) -> bool {
        seq >= self.first_seq && seq < self.first_seq + self.count as u64
    }

    pub fn is_batch(&self) -> bool {
        self.count != 1
    }

    /// The type of event `index` (never a panic on an index past the end).
    pub fn event_type(&self, index: usize) -> NameId {
        match self.extra.as_ref().and_then(|e| e.types.as_ref()) {
            Some(types) => types.get(index).copied().unwrap_or(self.event_type),
            None => self.event_type,
        }
    }

    /// The sender's name id in `SharedNames`.
    pub fn sender(&self) -> Option<NameId> {
        (self.sender != NO_STEP).then_some(self.sender)
    }

    /// What caused the delivery's first event.
    pub fn cause(&self) -> Cause {
        if let Some(id) = self.extra.as_ref().and_then(|e| e.external_cause.clone()) {
            return Cause::External(id);
        }
        match (self.cause_seq, self.cause_branch) {
            (NONE, _) => Cause::Root,
            (seq, NONE) => Cause::Event { seq, branch: None },
            (seq, branch) => Cause::Event {
                seq,
                branch: Some(branch),
            },
        }
    }

    pub fn correlation(&self) -> Correlation {
        match self
            .extra
            .as_ref()
            .and_then(|e| e.external_correlation.clone())
        {
            Some(id) => Correlation::External(id),
            None if self.correlation_prefix != NO_PREFIX => Correlation::Foreign(self.foreign()),
            None => Correlation::Event(self.correlation_seq),
        }
    }

    fn foreign(&self) -> ForeignId {
        ForeignId {
            prefix: self.correlation_prefix,
            seq: self.correlation_seq,
        }
    }

    /// The cause and correlation of one event of the delivery. The batch's record describes
    /// its first event; the others share it, except in a root batch, where each event is its
    /// own root, and where the caller set ids on an event.
    pub fn causality(&self, index: u32) -> (Cause, Correlation) {
        if let Some((_, cause, correlation)) = self
            .extra
            .as_ref()
            .and_then(|e| e.overrides.iter().find(|(i, _, _)| *i == index))
        {
            return (cause.clone(), correlation.clone());
        }
        if index > 0 && self.is_root_batch() {
            return (
                Cause::Root,
                Correlation::Event(self.first_seq + index as u64),
            );
        }
        (self.cause(), self.correlation())
    }

    fn is_root_batch(&self) -> bool {
        self.cause() == Cause::Root && self.correlation() == Correlation::Event(self.first_seq)
    }

    /// Whether any event of the delivery belongs to `correlation`.
    pub fn correlates(&self, correlation: &Correlation, prefixes: &ForeignPrefixes) -> bool {
        if self.correlation().same_id(correlation, prefixes) {
            return true;
        }
        if let Correlation::Event(seq) = correlation {
            if self.is_root_batch() && self.contains_seq(*seq) {
                return true;
            }
        }
        self.extra.as_ref().is_some_and(|e| {
            e.overrides
                .iter()
                .any(|(_, _, c)| c.same_id(correlation, prefixes))
        })
    }

    fn set_override(&mut self, index: u32, cause: Cause, correlation: Correlation) {
        let extra = self.extra.get_or_insert_with(Default::default);
        extra.overrides.retain(|(i, _, _)| *i != index);
        extra.overrides.push((index, cause, correlation));
    }

    /// The id the event has in the process that sent it, for an event from another process.
    pub fn alias(&self) -> Option<Alias> {
        if self.alias_is_correlation {
            return Some(Alias::Foreign(self.foreign()));
        }
        self.extra.as_ref().and_then(|e| e.alias.clone())
    }

    /// The ids of the delivery's branches, in target order.
    pub fn branch_ids(&self) -> std::ops::Range<BranchId> {
        self.first_branch..self.first_branch + self.branch_count as u64
    }
}

#[derive(Debug)]
pub struct CausalStore {
    capacity: usize,
    events_held: usize,
    deliveries: VecDeque<Delivery>,
    branches: VecDeque<Branch>,
    /// The id of `branches[0]`.
    oldest_branch: BranchId,
    details: FxHashMap<BranchId, BranchDetail>,
}

impl CausalStore {
    pub fn new(capacity: usize) -> Self {
        // Sized once: a deque that doubles as it fills would hold up to twice the memory. The
        // pages of slots never used are never touched, so a large history costs nothing upfront.
        let capacity = capacity.max(1);
        CausalStore {
            capacity,
            events_held: 0,
            deliveries: VecDeque::with_capacity(capacity.min(1 << 22)),
            branches: VecDeque::new(),
            oldest_branch: 1,
            details: FxHashMap::default(),
        }
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

    /// Records a send, dropping the oldest ones beyond capacity and releasing their names.
    /// The new record's names must already be acquired for it, and its branch ids must follow
    /// the previous record's.
    pub fn record(&mut self, delivery: NewDelivery, names: &mut SharedNames) {
        let incoming = delivery.count.max(1) as usize;
        while self.events_held + incoming > self.capacity {
            let Some(old) = self.deliveries.pop_front() else {
                break;
            };
            self.events_held -= old.count.max(1) as usize;
            if let Some(sender) = old.sender() {
                names.release(sender);
            }
            for id in old.branch_ids() {
                if let Some(branch) = self.branches.pop_front() {
                    names.release(branch.node);
                }
                if !self.details.is_empty() {
                    self.details.remove(&id);
                }
            }
            self.oldest_branch = old.branch_ids().end;
        }
        if self.deliveries.is_empty() {
            self.oldest_branch = delivery.first_branch;
        }
        debug_assert_eq!(
            delivery.first_branch,
            self.oldest_branch + self.branches.len() as u64
        );
        self.events_held += incoming;
        let branch_count = delivery.branches.len() as u32;
        self.branches.extend(delivery.branches.drain(..));
        self.deliveries
            .push_back(Delivery::new(delivery, branch_count));
    }

    /// The first seq of the delivery whose event came from another process under `alias`.
    pub fn find_alias(&self, alias: &str, prefixes: &ForeignPrefixes) -> Option<EventSeq> {
        let parsed = prefixes.parse(alias);
        self.deliveries
            .iter()
            .rev()
            .find(|d| d.alias().is_some_and(|a| a.is(alias, parsed)))
            .map(|d| d.first_seq)
    }

    pub fn find_event(&self, seq: EventSeq) -> Option<&Delivery> {
        let i = self
            .deliveries
            .partition_point(|d| d.first_seq + (d.count.max(1) as u64) <= seq);
        self.deliveries.get(i).filter(|d| d.contains_seq(seq))
    }

    pub fn branch(&self, id: BranchId) -> Option<&Branch> {
        self.branches
            .get(id.checked_sub(self.oldest_branch)? as usize)
    }

    /// The branch, if the history still holds it (a long flow may outlive its record).
    fn branch_mut(&mut self, id: BranchId) -> Option<&mut Branch> {
        self.branches
            .get_mut(id.checked_sub(self.oldest_branch)? as usize)
    }

    /// The delivery's branches, in target order.
    pub fn branches_of<'s>(
        &'s self,
        d: &Delivery,
    ) -> impl Iterator<Item = (BranchId, &'s Branch)> + 's {
        d.branch_ids()
            .filter_map(move |id| self.branch(id).map(|b| (id, b)))
    }

    pub fn detail(&self, id: BranchId) -> Option<&BranchDetail> {
        self.details.get(&id)
    }

    /// The flow's steps, by name id, in order.
    pub fn steps(&self, id: BranchId) -> Vec<NameId> {
        let first = self.branch(id).and_then(Branch::first_step);
        let more = self.detail(id).map_or(&[][..], |d| &d.more_steps[..]);
        first.into_iter().chain(more.iter().copied()).collect()
    }

    /// Records steps on a branch: the first becomes its first step when it has none (a remote
    /// node's branch), the others follow.
    pub fn add_steps(&mut self, id: BranchId, steps: &[NameId]) {
        let Some(branch) = self.branch_mut(id) else {
            return;
        };
        let mut rest = steps;
        if branch.first_step == NO_STEP {
            if let Some((first, more)) = rest.split_first() {
                branch.first_step = *first;
                rest = more;
            }
        }
        if !rest.is_empty() {
            self.details
                .entry(id)
                .or_default()
                .more_steps
                .extend_from_slice(rest);
        }
    }

    pub fn add_step(&mut self, id: BranchId, step: NameId) {
        if self.branch(id).is_some() {
            self.details.entry(id).or_default().more_steps.push(step);
        }
    }

    /// Sets the caller's own ids on one event of a held batch.
    pub fn override_event(&mut self, seq: EventSeq, cause: Cause, correlation: Correlation) {
        let i = self
            .deliveries
            .partition_point(|d| d.first_seq + (d.count.max(1) as u64) <= seq);
        if let Some(d) = self.deliveries.get_mut(i).filter(|d| d.contains_seq(seq)) {
            let index = (seq - d.first_seq) as u32;
            d.set_override(index, cause, correlation);
        }
    }

    pub fn finish(
        &mut self,
        id: BranchId,
        outcome: Outcome,
        duration_ms: f64,
        error: Option<&str>,
    ) {
        let Some(branch) = self.branch_mut(id) else {
            return;
        };
        branch.outcome = outcome;
        branch.duration_ms = duration_ms as f32;
        if let Some(message) = error {
            self.details.entry(id).or_default().error = Some(message.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        store: &mut CausalStore,
        names: &mut SharedNames,
        first_seq: EventSeq,
        count: u32,
        first_branch: BranchId,
        nodes: &[&str],
    ) {
        let mut branches = nodes
            .iter()
            .map(|n| Branch::new(names.acquire(n), Some(0)))
            .collect();
        store.record(
            NewDelivery {
                first_seq,
                count,
                first_branch,
                types: &[0],
                sender: None,
                cause: Cause::Root,
                correlation: Correlation::Event(first_seq),
                alias: None,
                timestamp: 0.0,
                branches: &mut branches,
            },
            names,
        );
    }

    #[test]
    fn records_stay_compact() {
        assert_eq!(std::mem::size_of::<Branch>(), 16);
        assert_eq!(std::mem::size_of::<Delivery>(), 80);
        assert_eq!(std::mem::size_of::<BranchDetail>(), 40);
    }

    #[test]
    fn events_and_branches_are_found_by_id() {
        let (mut store, mut names) = (CausalStore::new(100), SharedNames::default());
        record(&mut store, &mut names, 1, 1, 1, &["a", "b"]);
        record(&mut store, &mut names, 2, 10, 3, &["c"]);
        assert_eq!(store.find_event(1).unwrap().first_seq, 1);
        assert_eq!(store.find_event(7).unwrap().first_seq, 2);
        assert!(store.find_event(12).is_none());
        assert_eq!(names.lookup(store.branch(2).unwrap().node), Some("b"));
        assert_eq!(names.lookup(store.branch(3).unwrap().node), Some("c"));
        assert!(store.branch(4).is_none());
    }

    #[test]
    fn the_oldest_deliveries_are_dropped_first_and_release_their_names() {
        let (mut store, mut names) = (CausalStore::new(5), SharedNames::default());
        record(&mut store, &mut names, 1, 1, 1, &["gone"]);
        record(&mut store, &mut names, 2, 3, 2, &["a"]);
        record(&mut store, &mut names, 5, 2, 3, &["a"]);
        assert_eq!(store.events_held(), 5);
        assert!(store.find_event(1).is_none());
        assert!(store.find_event(2).is_some());
        assert_eq!(names.len(), 1, "'gone' was released with its record");
        record(&mut store, &mut names, 7, 1, 4, &["a"]);
        assert!(store.find_event(4).is_none());
        assert_eq!(store.events_held(), 3);
    }

    #[test]
    fn each_event_of_a_root_batch_is_its_own_root_unless_the_caller_says_otherwise() {
        let (mut store, mut names) = (CausalStore::new(100), SharedNames::default());
        record(&mut store, &mut names, 10, 3, 1, &["a"]);
        store.override_event(
            12,
            Cause::External("up".into()),
            Correlation::External("corr".into()),
        );
        let d = store.find_event(11).unwrap();
        assert_eq!(d.causality(0), (Cause::Root, Correlation::Event(10)));
        assert_eq!(d.causality(1), (Cause::Root, Correlation::Event(11)));
        assert_eq!(
            d.causality(2),
            (
                Cause::External("up".into()),
                Correlation::External("corr".into())
            )
        );
        let prefixes = ForeignPrefixes::default();
        assert!(d.correlates(&Correlation::Event(11), &prefixes));
        assert!(d.correlates(&Correlation::External("corr".into()), &prefixes));
        assert!(!d.correlates(&Correlation::Event(13), &prefixes));
    }

    #[test]
    fn outcomes_and_steps_are_recorded_on_held_branches_only() {
        let (mut store, mut names) = (CausalStore::new(1), SharedNames::default());
        record(&mut store, &mut names, 1, 1, 1, &["a"]);
        store.add_step(1, 7);
        store.finish(1, Outcome::Rejected, 2.5, Some("boom"));
        assert_eq!(store.steps(1), vec![0, 7]);
        assert_eq!(store.branch(1).unwrap().outcome, Outcome::Rejected);
        assert_eq!(store.detail(1).unwrap().error.as_deref(), Some("boom"));
        record(&mut store, &mut names, 2, 1, 2, &["a"]);
        store.finish(1, Outcome::Fulfilled, 1.0, None);
        assert!(store.branch(1).is_none());
        assert!(store.detail(1).is_none(), "details go with their record");
    }
}
