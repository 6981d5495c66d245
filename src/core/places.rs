//! Places: which thread runtime of a process runs a node's handlers.
//!
//! Guarantees: every live node has exactly one owner place; place `HOME` (the thread that made
//! the core) is always open; a place that joined stays open until it leaves, and a closed place
//! owns no node (leaving hands back the nodes it owned, for the caller to dispose). Place ids
//! are never reused within a core, so a message addressed to a place that left can never reach
//! a newcomer.
//!
//! How: a table of owners indexed by node index (the registry's slot numbers) beside a set of
//! open places. The registry itself knows nothing of threads.

use std::collections::BTreeSet;

use super::registry::NodeIndex;

pub type PlaceId = u32;

/// The place of the thread that created the core.
pub const HOME: PlaceId = 0;

#[derive(Debug)]
pub struct Places {
    owners: Vec<PlaceId>,
    open: BTreeSet<PlaceId>,
    next: PlaceId,
}

impl Default for Places {
    fn default() -> Self {
        Places {
            owners: Vec::new(),
            open: BTreeSet::from([HOME]),
            next: HOME + 1,
        }
    }
}

impl Places {
    /// Opens a new place (a thread joining the core).
    pub fn join(&mut self) -> PlaceId {
        let place = self.next;
        self.next += 1;
        self.open.insert(place);
        place
    }

    pub fn is_open(&self, place: PlaceId) -> bool {
        self.open.contains(&place)
    }

    /// Closes `place`; returns the nodes it owned among `live` (the caller disposes them).
    /// `HOME` never closes: its runtime owns the core.
    pub fn leave(
        &mut self,
        place: PlaceId,
        live: impl Iterator<Item = NodeIndex>,
    ) -> Vec<NodeIndex> {
        if place == HOME || !self.open.remove(&place) {
            return Vec::new();
        }
        live.filter(|&node| self.owner(node) == place).collect()
    }

    /// Every open place, in order.
    pub fn open(&self) -> impl Iterator<Item = PlaceId> + '_ {
        self.open.iter().copied()
    }

    /// Records that `node` (just created) runs on `place`.
    pub fn assign(&mut self, node: NodeIndex, place: PlaceId) {
        let at = node as usize;
        if self.owners.len() <= at {
            self.owners.resize(at + 1, HOME);
        }
        self.owners[at] = place;
    }

    /// Forgets a disposed node; its slot's owner reads `HOME` until it is assigned again.
    pub fn release(&mut self, node: NodeIndex) {
        if let Some(owner) = self.owners.get_mut(node as usize) {
            *owner = HOME;
        }
        while self.owners.last() == Some(&HOME) {
            self.owners.pop();
        }
    }

    /// The place that runs `node`'s handlers (`HOME` for a node no other place claimed).
    pub fn owner(&self, node: NodeIndex) -> PlaceId {
        self.owners.get(node as usize).copied().unwrap_or(HOME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_belong_to_home_until_a_place_claims_them() {
        let mut places = Places::default();
        assert!(places.is_open(HOME));
        let worker = places.join();
        assert_ne!(worker, HOME);
        places.assign(3, worker);
        assert_eq!(places.owner(3), worker);
        assert_eq!(places.owner(2), HOME);
        assert_eq!(places.owner(99), HOME);
        places.release(3);
        assert_eq!(places.owner(3), HOME);
        assert!(places.owners.is_empty(), "the table shrinks back");
    }

    #[test]
    fn leaving_hands_back_exactly_the_nodes_of_that_place() {
        let mut places = Places::default();
        let (a, b) = (places.join(), places.join());
        places.assign(0, a);
        places.assign(1, b);
        places.assign(2, a);
        let lost = places.leave(a, [0, 1, 2, 4].into_iter());
        assert_eq!(lost, vec![0, 2]);
        assert!(!places.is_open(a) && places.is_open(b));
        assert!(
            places.leave(a, [0, 2].into_iter()).is_empty(),
            "leaving twice hands back nothing"
        );
        assert!(
            places.leave(HOME, [1].into_iter()).is_empty(),
            "home never closes"
        );
        assert!(places.is_open(HOME));
    }

    #[test]
    fn place_ids_are_never_reused() {
        let mut places = Places::default();
        let a = places.join();
        places.leave(a, std::iter::empty());
        let b = places.join();
        assert_ne!(a, b);
    }
}

#[cfg(test)]
mod core_tests {
    use crate::core::{Core, CoreError, SendRequest, Targets, HOME};

    #[test]
    fn a_core_shared_by_places_dispatches_to_every_place_and_drops_a_departed_ones_nodes() {
        let mut core = Core::new(100);
        let main = core.create_node("main").unwrap();
        let worker = core.join_place();
        let far = core.create_node_in("far", worker).unwrap();
        let handler = core.add_handler(far, Some("job"), "work").unwrap();
        assert_eq!(core.node_place(main), Some(HOME));
        assert_eq!(core.node_place(far), Some(worker));

        let ty = core.intern_type("job");
        let mut planned = Vec::new();
        core.dispatch(
            &SendRequest {
                sender: None,
                cause: None,
                inherited_correlation: None,
                explicit_causation: None,
                explicit_correlation: None,
                alias: None,
                targets: Targets::Everyone,
                types: &[ty],
                count: 1,
            },
            |node, handlers| planned.push((node, handlers.iter().map(|h| h.0).collect::<Vec<_>>())),
        );
        assert_eq!(planned, vec![(main, vec![]), (far, vec![handler])]);

        assert_eq!(core.nodes_elsewhere(HOME), vec![(far, worker)]);
        assert_eq!(core.nodes_elsewhere(worker), vec![(main, HOME)]);
        assert_eq!(core.open_places(), vec![HOME, worker]);
        assert_eq!(core.leave_place(worker), vec![far]);
        assert_eq!(core.open_places(), vec![HOME]);
        assert_eq!(core.find_node("far"), None);
        assert_eq!(core.node_place(far), None);
        assert_eq!(core.node_place(main), Some(HOME));
        assert_eq!(
            core.create_node_in("again", worker),
            Err(CoreError::ClosedPlace(worker)),
            "a departed place gets no new nodes"
        );
        assert!(core.leave_place(HOME).is_empty());
        assert_eq!(core.node_place(main), Some(HOME));
    }
}
