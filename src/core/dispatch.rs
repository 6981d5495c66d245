//! Which handlers of which nodes run for a send, with a per-(node, type) cache so a steady
//! stream of one event type costs a hash lookup per target (FxHash: the keys are small
//! integers we issue ourselves, so a DoS-resistant hash buys nothing here).

use rustc_hash::FxHashMap;

use super::names::{Interner, NameId};
use super::registry::{HandlerId, NodeIndex, NodeRegistry};

/// Beyond this many cached (node, type) pairs the cache starts over, so endless distinct types
/// cannot grow memory without bound.
const CACHE_LIMIT: usize = 1 << 16;

type Plan = Box<[(HandlerId, NameId)]>;

#[derive(Debug, Default)]
pub struct Dispatcher {
    cache: FxHashMap<(NodeIndex, NameId), (u64, Plan)>,
    scratch: Vec<(HandlerId, NameId)>,
    type_names: Vec<NameId>,
}

impl Dispatcher {
    /// Handlers of `node` that accept every type of `types`, in registration order.
    pub fn plan<'s>(
        &'s mut self,
        registry: &NodeRegistry,
        type_names: &Interner,
        node: NodeIndex,
        types: &[NameId],
    ) -> &'s [(HandlerId, NameId)] {
        let Some(entry) = registry.get(node) else {
            return &[];
        };
        let version = entry.version;
        let uniform = types.iter().all(|t| *t == types[0]);
        if uniform && !types.is_empty() {
            let key = (node, types[0]);
            if self.cache.get(&key).is_none_or(|(v, _)| *v != version) {
                if self.cache.len() >= CACHE_LIMIT {
                    self.cache.clear();
                }
                let name = type_names.lookup(types[0]).unwrap_or("");
                registry.matching(node, &[name], &mut self.scratch);
                self.cache
                    .insert(key, (version, self.scratch.as_slice().into()));
            }
            return &self.cache[&key].1;
        }
        self.type_names.clear();
        self.type_names.extend(types.iter().copied());
        self.type_names.sort_unstable();
        self.type_names.dedup();
        let names: Vec<&str> = self
            .type_names
            .iter()
            .map(|t| type_names.lookup(*t).unwrap_or(""))
            .collect();
        registry.matching(node, &names, &mut self.scratch);
        &self.scratch
    }
}
