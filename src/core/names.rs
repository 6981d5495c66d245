//! String interning for event types and flow-step names.
//!
//! The hot path compares and stores small integers; the strings cross the N-API boundary once,
//! when first seen.

use std::collections::HashMap;
use std::sync::Arc;

use super::slab::Slab;

pub type NameId = u32;

#[derive(Debug, Default)]
pub struct Interner {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, NameId>,
}

impl Interner {
    pub fn intern(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as NameId;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn lookup(&self, id: NameId) -> Option<&str> {
        self.names.get(id as usize).map(|s| &**s)
    }

    /// The id of `name` if it is interned.
    pub fn get(&self, name: &str) -> Option<NameId> {
        self.ids.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_reversible() {
        let mut i = Interner::default();
        let a = i.intern("order.created");
        let b = i.intern("payment.created");
        assert_ne!(a, b);
        assert_eq!(i.intern("order.created"), a);
        assert_eq!(i.lookup(b), Some("payment.created"));
        assert_eq!(i.lookup(99), None);
    }
}

/// Node names, shared by the registry and the history and counted: a name lives while a node
/// or a held record uses it, so endless node churn does not grow memory.
#[derive(Debug, Default)]
pub struct SharedNames {
    /// Each name with its reference count.
    entries: Slab<(Arc<str>, u32)>,
    ids: HashMap<Arc<str>, NameId>,
}

impl SharedNames {
    /// The id of `name`, taking one reference to it.
    pub fn acquire(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            self.retain(id);
            return id;
        }
        let name: Arc<str> = name.into();
        let id = self.entries.insert((name.clone(), 1));
        self.ids.insert(name, id);
        id
    }

    pub fn retain(&mut self, id: NameId) {
        if let Some((_, refs)) = self.entries.get_mut(id) {
            *refs += 1;
        }
    }

    pub fn release(&mut self, id: NameId) {
        let Some((_, refs)) = self.entries.get_mut(id) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            if let Some((name, _)) = self.entries.remove(id) {
                self.ids.remove(&*name);
            }
        }
    }

    pub fn lookup(&self, id: NameId) -> Option<&str> {
        self.entries.get(id).map(|(name, _)| &**name)
    }

    /// How many distinct names are held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn a_name_lives_while_it_is_referenced() {
        let mut names = SharedNames::default();
        let a = names.acquire("a");
        assert_eq!(names.acquire("a"), a);
        names.release(a);
        assert_eq!(names.lookup(a), Some("a"));
        names.release(a);
        assert_eq!(names.lookup(a), None);
        assert!(names.is_empty());
        let b = names.acquire("b");
        assert_eq!(b, a, "the slot is reused");
    }
}
