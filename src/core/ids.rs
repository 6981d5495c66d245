//! Event ids: `<runtime prefix>-<sequence>`.
//!
//! The prefix is random per runtime, so ids stay unique across processes without coordination;
//! the sequence makes them cheap to allocate in bulk (a batch takes a contiguous range) and lets
//! the causal store find an event by binary search.

use uuid::Uuid;

pub type EventSeq = u64;

#[derive(Debug)]
pub struct EventIds {
    prefix: String,
    next_seq: EventSeq,
}

impl EventIds {
    pub fn new() -> Self {
        let uuid = Uuid::new_v4().simple().to_string();
        EventIds {
            prefix: uuid[..12].to_string(),
            next_seq: 1,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Reserves `count` consecutive sequence numbers and returns the first.
    pub fn allocate(&mut self, count: u64) -> EventSeq {
        let first = self.next_seq;
        self.next_seq += count.max(1);
        first
    }

    pub fn format(&self, seq: EventSeq) -> String {
        format!("{}-{}", self.prefix, seq)
    }

    /// The sequence number of an id this runtime issued, or None for any other string.
    pub fn parse(&self, id: &str) -> Option<EventSeq> {
        let (prefix, seq) = id.rsplit_once('-')?;
        if prefix != self.prefix || seq.starts_with('+') {
            return None;
        }
        seq.parse().ok().filter(|s| *s > 0 && *s < self.next_seq)
    }
}

impl Default for EventIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_are_refused() {
        let mut ids = EventIds::new();
        let first = ids.allocate(3);
        assert_eq!(ids.allocate(1), first + 3);
        let text = ids.format(first + 1);
        assert_eq!(ids.parse(&text), Some(first + 1));
        assert_eq!(ids.parse("order-1"), None);
        assert_eq!(
            ids.parse(&format!("{}-999", ids.prefix())),
            None,
            "not issued yet"
        );
        assert_ne!(EventIds::new().prefix(), ids.prefix());
    }
}
