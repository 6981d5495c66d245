//! The happen core: nodes, patterns, dispatch, event ids, causal history and traces, in plain
//! Rust. The N-API layer in `crate::binding` is a thin adapter over `Core`; a transport for
//! nodes in other threads or processes drives the same `Core::dispatch`.

pub mod causal;
pub mod clock;
pub mod dispatch;
pub mod foreign;
pub mod ids;
pub mod names;
pub mod pattern;
pub mod places;
pub mod registry;
pub mod slab;
pub mod trace;

pub use causal::{BranchId, CausalStore, Cause, Correlation, Outcome};
pub use foreign::{ForeignId, IdRef};
pub use ids::EventSeq;
pub use names::NameId;
pub use pattern::{Pattern, PatternError};
pub use places::{PlaceId, HOME};
pub use registry::{HandlerId, Matcher, NodeIndex, RegistryError, HOST_DECIDES};

use causal::{Branch, NewDelivery};
use clock::SendClock;
use dispatch::Dispatcher;
use foreign::{Alias, ForeignPrefixes};
use ids::EventIds;
use names::{Interner, SharedNames};
use places::Places;
use registry::NodeRegistry;

/// The longest flow a node may run: a step beyond it fails the flow.
pub const MAX_FLOW_STEPS: usize = 10_000;

pub const DEFAULT_HISTORY_SIZE: usize = 10_000;

/// Who receives a send.
pub enum Targets<'a> {
    Nodes(&'a [NodeIndex]),
    Everyone,
}

/// One send: an event or a batch, to one or more nodes.
pub struct SendRequest<'a> {
    pub sender: Option<NodeIndex>,
    /// The event being handled by the flow that sends, and that flow's branch.
    pub cause: Option<(EventSeq, Option<BranchId>)>,
    /// The correlation the causing flow carries, when the history may no longer hold its event.
    pub inherited_correlation: Option<Correlation>,
    /// Ids the caller set on the event itself; they win over the automatic ones.
    pub explicit_causation: Option<&'a str>,
    pub explicit_correlation: Option<IdRef<'a>>,
    /// The id the event has in the process that sent it (an event that came over the wire):
    /// traces show that id and find the event by it.
    pub alias: Option<IdRef<'a>>,
    pub targets: Targets<'a>,
    /// One type per event, or a single type shared by every event of the batch.
    pub types: &'a [NameId],
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    pub first_seq: EventSeq,
    pub first_branch: BranchId,
    pub correlation: Correlation,
    pub timestamp: f64,
    /// The send's start on the monotonic clock (`clock::monotonic_ms`), for flow durations.
    pub started_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    Registry(RegistryError),
    Pattern(PatternError),
    /// A node was to be created for a place that is not (or no longer) open.
    ClosedPlace(PlaceId),
}

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreError::Registry(e) => e.fmt(f),
            CoreError::Pattern(e) => write!(f, "pattern {e}"),
            CoreError::ClosedPlace(p) => write!(f, "thread place {p} has left this runtime"),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<RegistryError> for CoreError {
    fn from(e: RegistryError) -> Self {
        CoreError::Registry(e)
    }
}

pub struct Core {
    nodes: NodeRegistry,
    node_names: SharedNames,
    types: Interner,
    steps: Interner,
    ids: EventIds,
    foreign: ForeignPrefixes,
    next_branch: BranchId,
    dispatcher: Dispatcher,
    history: CausalStore,
    targets_scratch: Vec<NodeIndex>,
    pending_steps: Vec<(BranchId, NameId)>,
    branch_scratch: Vec<Branch>,
    places: Places,
    clock: SendClock,
}

impl Core {
    pub fn new(history_size: usize) -> Self {
        Core {
            nodes: NodeRegistry::default(),
            node_names: SharedNames::default(),
            types: Interner::default(),
            steps: Interner::default(),
            ids: EventIds::new(),
            foreign: ForeignPrefixes::default(),
            next_branch: 1,
            dispatcher: Dispatcher::default(),
            history: CausalStore::new(history_size),
            targets_scratch: Vec::new(),
            pending_steps: Vec::new(),
            branch_scratch: Vec::new(),
            places: Places::default(),
            clock: SendClock::default(),
        }
    }

    pub fn id_prefix(&self) -> &str {
        self.ids.prefix()
    }

    pub fn history(&self) -> &CausalStore {
        &self.history
    }

    pub fn create_node(&mut self, name: &str) -> Result<NodeIndex, CoreError> {
        Ok(self.nodes.create(name, &mut self.node_names)?)
    }

    /// Registers a node that lives in another process (NATS transport). A send plans it as a
    /// target without handlers whose branch stays `Running` until the transport finishes it.
    pub fn create_remote_node(&mut self, name: &str) -> Result<NodeIndex, CoreError> {
        Ok(self.nodes.create_remote(name, &mut self.node_names)?)
    }

    pub fn is_remote(&self, node: NodeIndex) -> bool {
        self.nodes.get(node).is_some_and(|n| n.remote)
    }

    pub fn dispose_node(&mut self, node: NodeIndex) -> Result<Vec<HandlerId>, CoreError> {
        let released = self.nodes.dispose(node, &mut self.node_names)?;
        self.places.release(node);
        Ok(released)
    }

    /// Opens a place for another thread runtime joining this core.
    pub fn join_place(&mut self) -> PlaceId {
        self.places.join()
    }

    /// Creates a node whose handlers run on `place` (an open one).
    pub fn create_node_in(&mut self, name: &str, place: PlaceId) -> Result<NodeIndex, CoreError> {
        if !self.places.is_open(place) {
            return Err(CoreError::ClosedPlace(place));
        }
        let node = self.nodes.create(name, &mut self.node_names)?;
        self.places.assign(node, place);
        Ok(node)
    }

    /// The place that runs a live node's handlers.
    pub fn node_place(&self, node: NodeIndex) -> Option<PlaceId> {
        self.nodes.get(node).map(|_| self.places.owner(node))
    }

    /// Every open place of this core.
    pub fn open_places(&self) -> Vec<PlaceId> {
        self.places.open().collect()
    }

    /// The live nodes whose handlers run anywhere but `place`, with the place of each.
    pub fn nodes_elsewhere(&self, place: PlaceId) -> Vec<(NodeIndex, PlaceId)> {
        self.nodes
            .live_nodes()
            .map(|node| (node, self.places.owner(node)))
            .filter(|&(_, owner)| owner != place)
            .collect()
    }

    /// Closes a place and disposes every node it owned; returns those nodes' indices.
    pub fn leave_place(&mut self, place: PlaceId) -> Vec<NodeIndex> {
        let lost = self.places.leave(place, self.nodes.live_nodes());
        for &node in &lost {
            let _ = self.dispose_node(node);
        }
        lost
    }

    pub fn find_node(&self, name: &str) -> Option<NodeIndex> {
        self.nodes.find(name)
    }

    pub fn node_name(&self, node: NodeIndex) -> Option<&str> {
        self.nodes.get(node).map(|n| &*n.name)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Registers a handler; `pattern` None means a host-side predicate decides.
    pub fn add_handler(
        &mut self,
        node: NodeIndex,
        pattern: Option<&str>,
        step_name: &str,
    ) -> Result<HandlerId, CoreError> {
        let matcher = match pattern {
            Some(p) => Matcher::Pattern(Pattern::compile(p).map_err(CoreError::Pattern)?),
            None => Matcher::Host,
        };
        let name = self.steps.intern(step_name);
        Ok(self.nodes.add_handler(node, matcher, name)?)
    }

    pub fn remove_handler(&mut self, handler: HandlerId) -> Result<(), CoreError> {
        Ok(self.nodes.remove_handler(handler)?)
    }

    pub fn intern_type(&mut self, event_type: &str) -> NameId {
        self.types.intern(event_type)
    }

    pub fn intern_step(&mut self, step_name: &str) -> NameId {
        self.steps.intern(step_name)
    }

    /// Assigns ids and causality to a send, records it in the history, and calls `on_target`
    /// once per target, in order, with the handlers that run there (empty: none matched).
    pub fn dispatch(
        &mut self,
        request: &SendRequest,
        mut on_target: impl FnMut(NodeIndex, &[(HandlerId, NameId)]),
    ) -> Dispatched {
        let count = request.count;
        let first_seq = self.ids.allocate(count as u64);
        let alias = request.alias.map(|id| self.alias_of(id));
        let stamp = self.clock.now();
        let timestamp = stamp.wall_ms;
        // Explicit ids are the first event's own. A batch's record keeps the automatic
        // causality that its other members share; the first event's ids become its override.
        let first_only = count > 1;
        let (explicit_causation, explicit_correlation) = if first_only {
            (None, None)
        } else {
            (request.explicit_causation, request.explicit_correlation)
        };
        let cause = match (explicit_causation, request.cause) {
            (Some(id), _) => self.cause_of(id),
            (None, Some((seq, branch))) => Cause::Event { seq, branch },
            (None, None) => Cause::Root,
        };
        let correlation = match explicit_correlation {
            // An event from elsewhere mostly carries its own id as its correlation: one string
            // kept for both when it is held as text.
            Some(id) => match (&alias, id) {
                (Some(Alias::Text(shared)), IdRef::Text(text)) if **shared == *text => {
                    Correlation::External(shared.clone())
                }
                _ => self.correlation_of(id),
            },
            None => self
                .inherited_correlation(request, &cause)
                .unwrap_or(Correlation::Event(first_seq)),
        };

        let mut targets = std::mem::take(&mut self.targets_scratch);
        targets.clear();
        match request.targets {
            Targets::Nodes(nodes) => targets.extend_from_slice(nodes),
            Targets::Everyone => targets.extend(self.nodes.live_nodes()),
        }
        let first_branch = self.next_branch;
        self.next_branch += targets.len() as u64;
        let types: &[NameId] = if request.types.len() == 1 && count > 1 {
            &request.types[..1]
        } else {
            request.types
        };
        let mut branches = std::mem::take(&mut self.branch_scratch);
        for &node in &targets {
            let plan = self.dispatcher.plan(&self.nodes, &self.types, node, types);
            // A target disposed meanwhile has no plan and no name: it is recorded unmatched.
            let (name, remote) = match self.nodes.get(node) {
                Some(n) => {
                    self.node_names.retain(n.name_id);
                    (n.name_id, n.remote)
                }
                None => (self.node_names.acquire("?"), false),
            };
            let branch_id = first_branch + branches.len() as u64;
            let mut steps = plan
                .iter()
                .map(|(_, step)| *step)
                .filter(|s| *s != HOST_DECIDES);
            let mut branch = Branch::new(name, steps.next());
            // Remote: its flow runs in another process until the transport reports back.
            // Handlers a host predicate decides on: running until the host says.
            if remote || !plan.is_empty() {
                branch.outcome = Outcome::Running;
            }
            branches.push(branch);
            self.pending_steps
                .extend(steps.map(|step| (branch_id, step)));
            on_target(node, plan);
        }
        self.targets_scratch = targets;

        let sender = request
            .sender
            .and_then(|s| self.nodes.get(s))
            .map(|n| n.name_id);
        if let Some(name) = sender {
            self.node_names.retain(name);
        }
        self.history.record(
            NewDelivery {
                first_seq,
                count,
                first_branch,
                types: request.types,
                sender,
                cause,
                correlation: correlation.clone(),
                alias,
                timestamp,
                branches: &mut branches,
            },
            &mut self.node_names,
        );
        self.branch_scratch = branches;
        // Several handlers on one node: each is a step of the branch.
        for (branch, step) in self.pending_steps.drain(..) {
            self.history.add_step(branch, step);
        }
        if first_only
            && (request.explicit_causation.is_some() || request.explicit_correlation.is_some())
        {
            self.set_event_ids(
                first_seq,
                request.explicit_causation,
                request.explicit_correlation,
            );
        }
        Dispatched {
            first_seq,
            first_branch,
            correlation,
            timestamp,
            started_ms: stamp.monotonic_ms,
        }
    }

    fn cause_of(&self, id: &str) -> Cause {
        match self.ids.parse(id) {
            Some(seq) => Cause::Event { seq, branch: None },
            None => Cause::External(id.into()),
        }
    }

    /// A foreign id whose prefix is interned is always held as numbers (see `foreign`).
    fn correlation_of(&self, id: IdRef) -> Correlation {
        let text = match id {
            IdRef::Foreign(id) => return Correlation::Foreign(id),
            IdRef::Text(text) => text,
        };
        if let Some(seq) = self.ids.parse(text) {
            return Correlation::Event(seq);
        }
        match self.foreign.parse(text) {
            Some(id) => Correlation::Foreign(id),
            None => Correlation::External(text.into()),
        }
    }

    fn alias_of(&self, id: IdRef) -> Alias {
        match id {
            IdRef::Foreign(id) => Alias::Foreign(id),
            IdRef::Text(text) => match self.foreign.parse(text) {
                Some(id) => Alias::Foreign(id),
                None => Alias::Text(text.into()),
            },
        }
    }

    /// The handle of another runtime's id prefix, for `IdRef::Foreign`.
    pub fn intern_foreign_prefix(&mut self, prefix: &str) -> NameId {
        self.foreign.intern(prefix)
    }

    pub fn knows_foreign_prefix(&self, prefix: NameId) -> bool {
        self.foreign.knows(prefix)
    }

    /// Gives one event of a dispatched batch the ids its caller set on it. Ids left out are
    /// what the batch's first event has.
    pub fn set_event_ids(
        &mut self,
        seq: EventSeq,
        causation: Option<&str>,
        correlation: Option<IdRef>,
    ) {
        let Some(d) = self.history.find_event(seq) else {
            return;
        };
        let (cause, shared) = d.causality((seq - d.first_seq) as u32);
        let (cause, inherited) = match causation {
            // An event that names its cause joins that cause's correlation, or starts its own.
            Some(id) => {
                let cause = self.cause_of(id);
                let inherited = match &cause {
                    Cause::Event { seq: cause_seq, .. } => self.event_correlation(*cause_seq),
                    _ => None,
                };
                (cause, inherited.unwrap_or(Correlation::Event(seq)))
            }
            None => (cause, shared),
        };
        let correlation = correlation.map_or(inherited, |id| self.correlation_of(id));
        self.history.override_event(seq, cause, correlation);
    }

    fn inherited_correlation(&self, request: &SendRequest, cause: &Cause) -> Option<Correlation> {
        let Cause::Event { seq, .. } = cause else {
            return None;
        };
        self.event_correlation(*seq)
            .or_else(|| request.inherited_correlation.clone())
    }

    /// The correlation of one held event (a batch member may have its own).
    fn event_correlation(&self, seq: EventSeq) -> Option<Correlation> {
        let d = self.history.find_event(seq)?;
        Some(d.causality((seq - d.first_seq) as u32).1)
    }

    /// The correlation id of a held event, as the causal context shows it.
    pub fn event_correlation_id(&self, seq: EventSeq) -> Option<String> {
        self.event_correlation(seq).map(|c| match c {
            Correlation::Event(s) => self.ids.format(s),
            Correlation::Foreign(id) => self.foreign.format(id),
            Correlation::External(id) => id.to_string(),
        })
    }

    /// Records one more step of a running flow (the caller enforces `MAX_FLOW_STEPS`).
    pub fn add_step(&mut self, branch: BranchId, step: NameId) {
        self.history.add_step(branch, step);
    }

    /// The step names a branch has recorded so far (the flow's functions, in order).
    pub fn branch_steps(&self, branch: BranchId) -> Vec<String> {
        self.step_names(&self.branch_step_ids(branch))
    }

    /// The interned names of the steps a branch has recorded so far.
    pub fn branch_step_ids(&self, branch: BranchId) -> Vec<NameId> {
        self.history.steps(branch)
    }

    pub fn step_names(&self, steps: &[NameId]) -> Vec<String> {
        steps
            .iter()
            .map(|&s| self.steps.lookup(s).unwrap_or("?").to_string())
            .collect()
    }

    /// Records on a remote node's branch the steps its flow ran in the other process.
    pub fn add_remote_steps(&mut self, branch: BranchId, names: &[String]) {
        let steps: Vec<NameId> = names.iter().map(|name| self.steps.intern(name)).collect();
        self.history.add_steps(branch, &steps);
    }

    pub fn finish_branch(
        &mut self,
        branch: BranchId,
        outcome: Outcome,
        duration_ms: f64,
        error: Option<&str>,
    ) {
        self.history.finish(branch, outcome, duration_ms, error);
    }

    pub fn format_id(&self, seq: EventSeq) -> String {
        self.ids.format(seq)
    }

    pub fn parse_id(&self, id: &str) -> Option<EventSeq> {
        self.ids.parse(id)
    }

    /// The causal tree for an event id or correlation id, or None.
    pub fn trace(&self, id: &str) -> Option<trace::Trace> {
        let local;
        let foreign = if self.ids.parse(id).is_none() {
            self.history.find_alias(id, &self.foreign)
        } else {
            None
        };
        let id = match foreign {
            Some(seq) => {
                local = self.ids.format(seq);
                &local
            }
            None => id,
        };
        trace::TraceBuilder {
            store: &self.history,
            ids: &self.ids,
            foreign: &self.foreign,
            types: &self.types,
            steps: &self.steps,
            nodes: &self.node_names,
        }
        .build(id)
    }
}

#[cfg(test)]
mod tests;
