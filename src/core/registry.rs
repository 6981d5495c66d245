//! Nodes and their handlers.
//!
//! Slots of disposed nodes and removed handlers are reused, so a process that creates and
//! disposes nodes forever holds memory for the live ones only.

use std::collections::HashMap;
use std::sync::Arc;

use super::names::NameId;
use super::pattern::Pattern;

pub type NodeIndex = u32;
pub type HandlerId = u32;

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
            RegistryError::DuplicateNode(id) => write!(f, "a node with id '{id}' already exists in this runtime"),
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
    pub fn create(&mut self, name: &str) -> Result<NodeIndex, RegistryError> {
        self.create_at(name, false)
    }

    /// Registers a node of another process under its id (see `Node::remote`).
    pub fn create_remote(&mut self, name: &str) -> Result<NodeIndex, RegistryError> {
        self.create_at(name, true)
    }

    fn create_at(&mut self, name: &str, remote: bool) -> Result<NodeIndex, RegistryError> {
        if self.by_name.contains_key(name) {
            return Err(RegistryError::DuplicateNode(name.to_string()));
        }
        let name: Arc<str> = name.into();
        let node = Node { name: name.clone(), handlers: Vec::new(), version: 0, remote };
        let index = match self.free_slots.pop() {
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
    pub fn dispose(&mut self, index: NodeIndex) -> Result<Vec<HandlerId>, RegistryError> {
        let node = self
            .slots
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or(RegistryError::UnknownNode(index))?;
        self.by_name.remove(&node.name);
        self.free_slots.push(index);
        let released: Vec<HandlerId> = node.handlers.iter().map(|h| h.id).collect();
        for &id in &released {
            self.release_handler(id);
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
        let id = match self.free_handlers.pop() {
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
        self.handler_owner[id as usize] = None;
        self.free_handlers.push(id);
    }

    /// The handlers of `index` whose matcher accepts every type in `types`, in registration
    /// order, with their step names.
    pub fn matching(
        &self,
        index: NodeIndex,
        types: &[&str],
        out: &mut Vec<(HandlerId, NameId)>,
    ) {
        out.clear();
        if let Some(node) = self.get(index) {
            out.extend(
                node.handlers
                    .iter()
                    .filter(|h| types.iter().all(|t| h.matcher.may_match(t)))
                    .map(|h| (h.id, h.name)),
            );
        }
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
        let mut r = NodeRegistry::default();
        let a = r.create("a").unwrap();
        assert_eq!(r.create("a"), Err(RegistryError::DuplicateNode("a".into())));
        r.dispose(a).unwrap();
        assert_eq!(r.find("a"), None);
        let b = r.create("b").unwrap();
        assert_eq!(a, b, "the freed slot is reused");
        assert_eq!(r.dispose(99), Err(RegistryError::UnknownNode(99)));
    }

    #[test]
    fn matching_keeps_registration_order_and_requires_every_type() {
        let mut r = NodeRegistry::default();
        let n = r.create("n").unwrap();
        let h1 = r.add_handler(n, pattern("order.*"), 0).unwrap();
        let h2 = r.add_handler(n, Matcher::Host, 1).unwrap();
        let h3 = r.add_handler(n, pattern("order.created"), 2).unwrap();
        let mut out = Vec::new();
        r.matching(n, &["order.created"], &mut out);
        assert_eq!(out, vec![(h1, 0), (h2, 1), (h3, 2)]);
        r.matching(n, &["order.created", "order.paid"], &mut out);
        assert_eq!(out, vec![(h1, 0), (h2, 1)]);
        r.remove_handler(h1).unwrap();
        r.matching(n, &["order.created"], &mut out);
        assert_eq!(out, vec![(h2, 1), (h3, 2)]);
        assert_eq!(r.remove_handler(h1), Err(RegistryError::UnknownHandler(h1)));
    }

    #[test]
    fn disposing_a_node_releases_its_handlers() {
        let mut r = NodeRegistry::default();
        let n = r.create("n").unwrap();
        let h = r.add_handler(n, pattern("x"), 0).unwrap();
        assert_eq!(r.dispose(n).unwrap(), vec![h]);
        let m = r.create("m").unwrap();
        assert_eq!(r.add_handler(m, pattern("x"), 0).unwrap(), h, "handler id reused");
    }
}
