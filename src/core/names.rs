//! String interning for event types and flow-step names.
//!
//! The hot path compares and stores small integers; the strings cross the N-API boundary once,
//! when first seen.

use std::collections::HashMap;

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
