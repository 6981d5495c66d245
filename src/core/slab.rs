//! A slab: values addressed by a small integer, freed slots reused. Holds node names here, and
//! the binding's per-thread tables of cores and NATS connections.

pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize] = Some(value);
                key
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        }
    }

    pub fn get(&self, key: u32) -> Option<&T> {
        self.slots.get(key as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, key: u32) -> Option<&mut T> {
        self.slots.get_mut(key as usize).and_then(Option::as_mut)
    }

    pub fn remove(&mut self, key: u32) -> Option<T> {
        let value = self.slots.get_mut(key as usize).and_then(Option::take);
        if value.is_some() {
            self.free.push(key);
        }
        value
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.slots.iter().flatten()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_reused_after_removal() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.remove(a), None, "removing twice frees the key once");
        assert_eq!(slab.insert("c"), a);
        assert_eq!(slab.insert("d"), 2);
        assert_eq!(slab.get_mut(b), Some(&mut "b"));
        assert_eq!(slab.get(99), None);
    }
}
