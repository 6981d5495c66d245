//! Objects the JS side holds by a small integer (cores, NATS connections): one table per
//! thread, since every JS thread (main or worker) loads its own copy of the addon.

/// A slab of `T` addressed by handle; freed handles are reused.
pub struct Handles<T>(Vec<Option<T>>);

impl<T> Handles<T> {
    pub const fn new() -> Self {
        Handles(Vec::new())
    }

    pub fn insert(&mut self, value: T) -> u32 {
        match self.0.iter().position(Option::is_none) {
            Some(free) => {
                self.0[free] = Some(value);
                free as u32
            }
            None => {
                self.0.push(Some(value));
                (self.0.len() - 1) as u32
            }
        }
    }

    pub fn get_mut(&mut self, handle: u32) -> Option<&mut T> {
        self.0.get_mut(handle as usize).and_then(Option::as_mut)
    }

    pub fn remove(&mut self, handle: u32) -> Option<T> {
        self.0.get_mut(handle as usize).and_then(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_reused_after_removal() {
        let mut h = Handles::new();
        let a = h.insert("a");
        let b = h.insert("b");
        assert_eq!(h.remove(a), Some("a"));
        assert_eq!(h.remove(a), None);
        assert_eq!(h.insert("c"), a);
        assert_eq!(h.get_mut(b), Some(&mut "b"));
        assert_eq!(h.get_mut(99), None);
    }
}
