//! Nodes and their handlers.
//!
//! Slots of disposed nodes and removed handlers are reused, so a process that creates and
//! disposes nodes forever holds memory for the live ones only. Free slots at the end of the
//! tables are dropped and the tables shrink, so a burst of 100,000 nodes that are all disposed
//! again does not leave tables sized for 100,000 behind. Free lists may then name slots past
//! the end: those are skipped when popped.

use std::collections::HashMap;
use std::sync::Arc;

use super::names::{NameId, SharedNames};
use super::pattern::Pattern;

pub type NodeIndex = u32;
pub type HandlerId = u32;

/// The step name `matching` gives a predicate handler: whether it runs is the host's call, so
/// the host records its step when it does.
pub const HOST_DECIDES: NameId = NameId::MAX;

/// How a handler decides whether an event type is for it.
#[derive(Debug, Clone)]
pub enum Matcher {
    Pattern(Pattern),
    /// A predicate the host evaluates (a JS function): the core offers every event to it.
    Host,
}

impl Matcher {
    pub fn may_match(&self, event_type: &str) -> bool {
        match self {
            Matcher::Pattern(p) => p.matches(event_type),
            Matcher::Host => true,
        }
    }
}

#[derive(Debug)]
struct Handler {
    id: HandlerId,
    matcher: Matcher,
    name: NameId,
}

#[derive(Debug)]
pub struct Node {
    pub name: Arc<str>,
    /// The same name in `SharedNames`, which the history references.
    pub name_id: NameId,
    handlers: Vec<Handler>,
    /// Bumped on every handler change; dispatch caches are keyed by it.
    pub version: u64,
    /// A node that lives in another process (NATS transport): it has no handlers here, and a
    /// send to it is handed to the transport, its outcome recorded when the reply comes.
    pub remote: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    DuplicateNode(String),
    UnknownNode(NodeIndex),
    UnknownHandler(HandlerId),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::DuplicateNode(id) => {
                write!(f, "a node with id '{id}' already exists in this runtime")
            }
            RegistryError::UnknownNode(i) => write!(f, "no live node at index {i}"),
            RegistryError::UnknownHandler(h) => write!(f, "no handler with id {h}"),
        }
    }
}

impl std::error::Error for RegistryError {}

#[derive(Debug, Default)]
pub struct NodeRegistry {
    slots: Vec<Option<Node>>,
    free_slots: Vec<NodeIndex>,
    by_name: HashMap<Arc<str>, NodeIndex>,
    handler_owner: Vec<Option<NodeIndex>>,
    free_handlers: Vec<HandlerId>,
}

impl NodeRegistry {
    pub fn create(
        &mut self,
        name: &str,
        names: &mut SharedNames,
    ) -> Result<NodeIndex, RegistryError> {
        self.create_at(name, false, names)
    }

    /// Registers a node of another process under its id (see `Node::remote`).
    pub fn create_remote(
        &mut self,
        name: &str,
        names: &mut SharedNames,
    ) -> Result<NodeIndex, RegistryError> {
        self.create_at(name, true, names)
    }

    fn create_at(
        &mut self,
        name: &str,
        remote: bool,
        names: &mut SharedNames,
    ) -> Result<NodeIndex, RegistryError> {
        if self.by_name.contains_key(name) {
            return Err(RegistryError::DuplicateNode(name.to_string()));
        }
        let name_id = names.acquire(name);
        let name: Arc<str> = name.into();
        let node = Node {
            name: name.clone(),
            name_id,
            handlers: Vec::new(),
            version: 0,
            remote,
        };
        let index = match pop_free(&mut self.free_slots, &self.slots) {
            Some(i) => {
                self.slots[i as usize] = Some(node);
                i
            }
            None => {
                self.slots.push(Some(node));
                (self.slots.len() - 1) as NodeIndex
            }
        };
        self.by_name.insert(name, index);
        Ok(index)
    }

    /// Removes the node and all its handlers; returns the handler ids that were released.
    pub fn dispose(
        &mut self,
        index: NodeIndex,
        names: &mut SharedNames,
    ) -> Result<Vec<HandlerId>, RegistryError> {
        let node = self
            .slots
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or(RegistryError::UnknownNode(index))?;
        self.by_name.remove(&node.name);
        names.release(node.name_id);
        self.free_slots.push(index);
        let released: Vec<HandlerId> = node.handlers.iter().map(|h| h.id).collect();
        for &id in &released {
            self.release_handler(id);
        }
        trim_tail(&mut self.slots, &mut self.free_slots, Option::is_none);
        if self.by_name.capacity() > 64 && self.by_name.len() * 4 < self.by_name.capacity() {
            self.by_name.shrink_to(self.by_name.len() * 2);
        }
        Ok(released)
    }

    pub fn get(&self, index: NodeIndex) -> Option<&Node> {
        self.slots.get(index as usize).and_then(Option::as_ref)
    }

    pub fn find(&self, name: &str) -> Option<NodeIndex> {
        self.by_name.get(name).copied()
    }

    pub fn live_nodes(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as NodeIndex)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn add_handler(
        &mut self,
        index: NodeIndex,
        matcher: Matcher,
        name: NameId,
    ) -> Result<HandlerId, RegistryError> {
        if self.get(index).is_none_or(|n| n.remote) {
            return Err(RegistryError::UnknownNode(index));
        }
        let id = match pop_free(&mut self.free_handlers, &self.handler_owner) {
            Some(id) => {
                self.handler_owner[id as usize] = Some(index);
                id
            }
            None => {
                self.handler_owner.push(Some(index));
                (self.handler_owner.len() - 1) as HandlerId
            }
        };
        let node = self.slots[index as usize].as_mut().expect("checked above");
        node.handlers.push(Handler { id, matcher, name });
        node.version += 1;
        Ok(id)
    }

    pub fn remove_handler(&mut self, id: HandlerId) -> Result<(), RegistryError> {
        let owner = self
            .handler_owner
            .get(id as usize)
            .copied()
            .flatten()
            .ok_or(RegistryError::UnknownHandler(id))?;
        if let Some(node) = self.slots.get_mut(owner as usize).and_then(Option::as_mut) {
            node.handlers.retain(|h| h.id != id);
            node.version += 1;
        }
        self.release_handler(id);
        Ok(())
    }

    fn release_handler(&mut self, id: HandlerId) {
        if let Some(owner) = self.handler_owner.get_mut(id as usize) {
            *owner = None;
            self.free_handlers.push(id);
        }
        trim_tail(
            &mut self.handler_owner,
            &mut self.free_handlers,
            Option::is_none,
        );
    }

    /// Table sizes, for tests that check that disposal gives memory back.
    pub fn table_sizes(&self) -> (usize, usize) {
        (self.slots.len(), self.handler_owner.len())
    }

    /// The handlers of `index` whose matcher accepts every type in `types`, in registration
    /// order, with their step names.
    pub fn matching(&self, index: NodeIndex, types: &[&str], out: &mut Vec<(HandlerId, NameId)>) {
        out.clear();
        if let Some(node) = self.get(index) {
            out.extend(
                node.handlers
                    .iter()
                    .filter(|h| types.iter().all(|t| h.matcher.may_match(t)))
                    .map(|h| match h.matcher {
                        // Recorded as a step only once the host's predicate lets it run.
                        Matcher::Host => (h.id, HOST_DECIDES),
                        Matcher::Pattern(_) => (h.id, h.name),
                    }),
            );
        }
    }
}

/// Pops free indices until one names a free entry of the table; the others are stale (past a
/// trimmed end). Checking the entry itself, not just the length, means a live slot can never
/// be handed out twice whatever the order of creates and disposals.
fn pop_free<T>(free: &mut Vec<u32>, table: &[Option<T>]) -> Option<u32> {
    while let Some(i) = free.pop() {
        if table.get(i as usize).is_some_and(Option::is_none) {
            return Some(i);
        }
    }
    None
}

/// Drops the free entries at the end of `table`, then shrinks the table and its free list
/// when they hold much more than they need. Amortised: each entry is dropped once.
fn trim_tail<T>(table: &mut Vec<T>, free: &mut Vec<u32>, is_free: impl Fn(&T) -> bool) {
    let before = table.len();
    while table.last().is_some_and(&is_free) {
        table.pop();
    }
    if table.len() == before {
        return;
    }
    let len = table.len();
    if free.len() > 2 * len + 64 {
        free.retain(|&i| (i as usize) < len);
    }
    if table.capacity() > 64 && len * 4 < table.capacity() {
        table.shrink_to(len * 2);
    }
    if free.capacity() > 64 && free.len() * 4 < free.capacity() {
        free.shrink_to(free.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> Matcher {
        Matcher::Pattern(Pattern::compile(p).unwrap())
    }

    #[test]
    fn duplicate_names_are_refused_and_slots_are_reused() {
        let (mut r, mut names) = (NodeRegistry::default(), SharedNames::default());
        let a = r.create("a", &mut names).unwrap();
        assert_eq!(
            r.create("a", &mut names),
            Err(RegistryError::DuplicateNode("a".into()))
        );
        r.dispose(a, &mut names).unwrap();
        assert_eq!(r.find("a"), None);
        assert!(names.is_empty());
        let b = r.create("b", &mut names).unwrap();
        assert_eq!(a, b, "the freed slot is reused");
        assert_eq!(
            r.dispose(99, &mut names),
            Err(RegistryError::UnknownNode(99))
        );
    }

    #[test]
    fn matching_keeps_registration_order_and_requires_every_type() {
        let (mut r, mut names) = (NodeRegistry::default(), SharedNames::default());
        let n = r.create("n", &mut names).unwrap();
        let h1 = r.add_handler(n, pattern("order.*"), 0).unwrap();
        let h2 = r.add_handler(n, Matcher::Host, 1).unwrap();
        let h3 = r.add_handler(n, pattern("order.created"), 2).unwrap();
        let mut out = Vec::new();
        r.matching(n, &["order.created"], &mut out);
        assert_eq!(out, vec![(h1, 0), (h2, HOST_DECIDES), (h3, 2)]);
        r.matching(n, &["order.created", "order.paid"], &mut out);
        assert_eq!(out, vec![(h1, 0), (h2, HOST_DECIDES)]);
        r.remove_handler(h1).unwrap();
        r.matching(n, &["order.created"], &mut out);
        assert_eq!(out, vec![(h2, HOST_DECIDES), (h3, 2)]);
        assert_eq!(r.remove_handler(h1), Err(RegistryError::UnknownHandler(h1)));
    }

    #[test]
    fn disposing_a_node_releases_its_handlers() {
        let (mut r, mut names) = (NodeRegistry::default(), SharedNames::default());
        let n = r.create("n", &mut names).unwrap();
        let h = r.add_handler(n, pattern("x"), 0).unwrap();
        assert_eq!(r.dispose(n, &mut names).unwrap(), vec![h]);
        let m = r.create("m", &mut names).unwrap();
        assert_eq!(
            r.add_handler(m, pattern("x"), 0).unwrap(),
            h,
            "handler id reused"
        );
    }

    #[test]
    fn disposing_a_burst_of_nodes_shrinks_the_tables_back() {
        let (mut r, mut names) = (NodeRegistry::default(), SharedNames::default());
        let keeper = r.create("keeper", &mut names).unwrap();
        r.add_handler(keeper, pattern("x"), 0).unwrap();
        let burst: Vec<NodeIndex> = (0..10_000)
            .map(|i| r.create(&format!("n{i}"), &mut names).unwrap())
            .collect();
        for &n in &burst {
            r.add_handler(n, pattern("x"), 0).unwrap();
            r.add_handler(n, Matcher::Host, 1).unwrap();
        }
        assert_eq!(r.table_sizes(), (10_001, 20_001));
        // Disposed in an order that leaves holes in the middle first.
        for &n in burst.iter().rev().step_by(2).chain(burst.iter().step_by(2)) {
            r.dispose(n, &mut names).unwrap();
        }
        assert_eq!(r.table_sizes(), (1, 1));
        assert!(
            r.slots.capacity() <= 64
                && r.handler_owner.capacity() <= 64
                && r.by_name.capacity() <= 128
        );
        assert!(r.free_slots.len() <= 64 + 2 && r.free_handlers.len() <= 64 + 2);
        // Stale free entries are skipped: new nodes and handlers get in-range, distinct slots.
        let a = r.create("a", &mut names).unwrap();
        let b = r.create("b", &mut names).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(r.add_handler(a, pattern("x"), 0).unwrap(), 1);
        let mut out = Vec::new();
        r.matching(keeper, &["x"], &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn stale_free_entries_never_hand_out_a_live_slot_twice() {
        let (mut r, mut names) = (NodeRegistry::default(), SharedNames::default());
        let nodes: Vec<NodeIndex> = (0..8)
            .map(|i| r.create(&format!("n{i}"), &mut names).unwrap())
            .collect();
        // Free 3 (a hole), then 7..4 (the tail): 3 stays listed while the table is trimmed to 3.
        r.dispose(nodes[3], &mut names).unwrap();
        for &n in nodes[4..].iter().rev() {
            r.dispose(n, &mut names).unwrap();
        }
        let mut live = std::collections::HashSet::new();
        for i in 0..20 {
            let n = r.create(&format!("m{i}"), &mut names).unwrap();
            assert!(live.insert(n), "slot {n} handed out twice");
        }
        assert_eq!(r.len(), 3 + 20);
    }
}
