//! Event ids other runtimes issued (`<their prefix>-<seq>`, see `ids`), held as two numbers.
//!
//! An event served for another process keeps the id it has there: traces show it and find the
//! event by it, and mostly it is the event's correlation too (a root event there). Held as text,
//! every served event allocated that id and a side record for it, both freed cache-cold when
//! the history overwrote the event thousands of sends later. A `ForeignId` (the prefix interned
//! once per peer runtime, and the seq) sits inline in the event's record instead.
//!
//! The same id may still be held as text: one named before its runtime's prefix was interned
//! (an id passed on by a third runtime). So a `ForeignId` is compared with text through its
//! formatted form (`Correlation::same_id`, `Alias::is`), never assumed to differ.

use std::sync::Arc;

use super::ids::EventSeq;
use super::names::{Interner, NameId};

/// `<prefix>-<seq>` of another runtime, its prefix a handle in `ForeignPrefixes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignId {
    pub prefix: NameId,
    pub seq: EventSeq,
}

/// The id prefixes of the runtimes events came from: one per peer runtime heard from (a few
/// dozen bytes each), kept for the life of the core.
#[derive(Debug, Default)]
pub struct ForeignPrefixes {
    prefixes: Interner,
}

impl ForeignPrefixes {
    pub fn intern(&mut self, prefix: &str) -> NameId {
        self.prefixes.intern(prefix)
    }

    pub fn knows(&self, prefix: NameId) -> bool {
        self.prefixes.lookup(prefix).is_some()
    }

    pub fn format(&self, id: ForeignId) -> String {
        format!(
            "{}-{}",
            self.prefixes.lookup(id.prefix).unwrap_or("?"),
            id.seq
        )
    }

    /// The `ForeignId` of `id` when its prefix is interned and its seq is written as `format`
    /// writes it (so the id formats back to the same text); None for any other string.
    pub fn parse(&self, id: &str) -> Option<ForeignId> {
        let (prefix, seq) = id.rsplit_once('-')?;
        let canonical = !seq.is_empty()
            && seq.bytes().all(|b| b.is_ascii_digit())
            && (seq == "0" || !seq.starts_with('0'));
        if !canonical {
            return None;
        }
        Some(ForeignId {
            prefix: self.prefixes.get(prefix)?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The id an event from another process has there, as its record holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Alias {
    Foreign(ForeignId),
    Text(Arc<str>),
}

impl Alias {
    /// Whether the alias is the id `text` (`parsed`: `text` as `ForeignPrefixes::parse` reads it).
    pub fn is(&self, text: &str, parsed: Option<ForeignId>) -> bool {
        match self {
            Alias::Foreign(id) => parsed == Some(*id),
            Alias::Text(alias) => **alias == *text,
        }
    }

    pub fn format(&self, prefixes: &ForeignPrefixes) -> String {
        match self {
            Alias::Foreign(id) => prefixes.format(*id),
            Alias::Text(alias) => alias.to_string(),
        }
    }
}

/// An event id as a send names it: text, or another runtime's id as numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IdRef<'a> {
    Text(&'a str),
    Foreign(ForeignId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_of_interned_prefixes_written_canonically_parse() {
        let mut prefixes = ForeignPrefixes::default();
        let far = prefixes.intern("far");
        let id = ForeignId {
            prefix: far,
            seq: 42,
        };
        assert_eq!(prefixes.format(id), "far-42");
        assert_eq!(prefixes.parse("far-42"), Some(id));
        assert_eq!(prefixes.intern("far"), far, "one handle per prefix");
        for other in ["near-42", "far-042", "far-+42", "far-", "far42", "far-4x"] {
            assert_eq!(prefixes.parse(other), None, "{other}");
        }
        assert!(prefixes.knows(far));
        assert!(!prefixes.knows(far + 1));
    }

    #[test]
    fn an_alias_is_its_id_in_either_form() {
        let mut prefixes = ForeignPrefixes::default();
        let far = prefixes.intern("far");
        let parsed = prefixes.parse("far-7");
        assert!(Alias::Foreign(ForeignId {
            prefix: far,
            seq: 7
        })
        .is("far-7", parsed));
        assert!(Alias::Text("far-7".into()).is("far-7", parsed));
        assert!(!Alias::Foreign(ForeignId {
            prefix: far,
            seq: 8
        })
        .is("far-7", parsed));
    }
}
