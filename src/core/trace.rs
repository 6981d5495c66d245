//! The causal tree of an event or a correlation, built from the causal store on demand.
//!
//! The tree holds every event of the chain the store still holds, however deep: a ping-pong
//! of 10,000 hops is a tree 10,000 events deep. Nothing here recurses over the tree, so no
//! depth can overflow a stack: the tree is built breadth-first into a flat list of events,
//! each naming its parent, and travels to the JS layer in that flat form (`Trace::to_wire`),
//! where it is linked up with a loop. The indented text (`Trace::text`) is written with an
//! explicit stack; past `MAX_INDENT` columns its lines stop moving right and say their depth
//! instead, so its size grows with the number of events, not with depth squared.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::causal::{CausalStore, Cause, Correlation, Delivery, Outcome};
use super::foreign::ForeignPrefixes;
use super::ids::{EventIds, EventSeq};
use super::names::{Interner, SharedNames};

/// Which deliveries each event and each flow caused, indexed once per trace.
struct Children<'a> {
    of_branch: HashMap<u64, Vec<&'a Delivery>>,
    of_event: HashMap<EventSeq, Vec<&'a Delivery>>,
}

impl<'a> Children<'a> {
    fn index(store: &'a CausalStore) -> Self {
        let mut of_branch: HashMap<u64, Vec<&Delivery>> = HashMap::new();
        let mut of_event: HashMap<EventSeq, Vec<&Delivery>> = HashMap::new();
        for d in store.deliveries() {
            match placement(d) {
                Cause::Event {
                    branch: Some(b), ..
                } => of_branch.entry(b).or_default().push(d),
                Cause::Event { seq, branch: None } => of_event.entry(seq).or_default().push(d),
                _ => {}
            }
        }
        Children {
            of_branch,
            of_event,
        }
    }
}

/// What a delivery sits under in a tree: the flow or event that sent it, or, for a batch
/// sent from outside any flow, the cause its first event names.
fn placement(d: &Delivery) -> Cause {
    match d.cause() {
        Cause::Root => d.causality(0).0,
        cause => cause,
    }
}

/// Where the text's lines stop moving right (columns).
pub const MAX_INDENT: usize = 64;

/// Where an event hangs in the tree: under its parent event itself, or under one of the
/// parent's branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub parent: usize,
    pub branch: Option<usize>,
}

/// One event of a tree: its fields and branches as flat JSON (no `children`), and the
/// indices of the events it caused.
#[derive(Debug)]
pub struct TraceEvent {
    pub fields: Map<String, Value>,
    pub link: Option<Link>,
    /// Per branch, the events that branch's flow sent, in order.
    pub branch_children: Vec<Vec<usize>>,
    /// The events caused by this event outside any flow (their caller named it as cause).
    pub children: Vec<usize>,
}

/// A causal tree: one root event, or several under a correlation id.
#[derive(Debug)]
pub struct Trace {
    /// Breadth-first: every event comes after its parent.
    pub events: Vec<TraceEvent>,
    pub roots: Vec<usize>,
    /// The id asked for, which names the correlation when there are several roots.
    pub correlation_id: String,
}

pub struct TraceBuilder<'a> {
    pub store: &'a CausalStore,
    pub ids: &'a EventIds,
    pub foreign: &'a ForeignPrefixes,
    pub types: &'a Interner,
    pub steps: &'a Interner,
    pub nodes: &'a SharedNames,
}

impl TraceBuilder<'_> {
    /// The tree under an event id or a correlation id; None when the history holds neither.
    pub fn build(&self, id: &str) -> Option<Trace> {
        let children = Children::index(self.store);
        let roots: Vec<&Delivery> = match self
            .ids
            .parse(id)
            .and_then(|seq| self.store.find_event(seq))
        {
            Some(d) => vec![d],
            None => {
                let wanted = match self.ids.parse(id) {
                    Some(seq) => Correlation::Event(seq),
                    None => Correlation::External(id.into()),
                };
                let correlated: Vec<&Delivery> = self
                    .store
                    .deliveries()
                    .filter(|d| d.correlates(&wanted, self.foreign))
                    .collect();
                correlated
                    .iter()
                    .copied()
                    .filter(|d| match placement(d) {
                        Cause::Event { seq, .. } => !correlated.iter().any(|c| c.contains_seq(seq)),
                        _ => true,
                    })
                    .collect()
            }
        };
        if roots.is_empty() {
            return None;
        }
        let mut trace = Trace {
            events: Vec::new(),
            roots: Vec::new(),
            correlation_id: id.to_string(),
        };
        let mut queue: VecDeque<(&Delivery, Option<Link>)> =
            roots.into_iter().map(|d| (d, None)).collect();
        while let Some((d, link)) = queue.pop_front() {
            let index = trace.events.len();
            match link {
                None => trace.roots.push(index),
                Some(Link { parent, branch }) => {
                    let parent = &mut trace.events[parent];
                    match branch {
                        Some(b) => parent.branch_children[b].push(index),
                        None => parent.children.push(index),
                    }
                }
            }
            let mut branch_count = 0;
            for (b, (branch_id, _)) in self.store.branches_of(d).enumerate() {
                branch_count += 1;
                for c in children.of_branch.get(&branch_id).into_iter().flatten() {
                    let link = Link {
                        parent: index,
                        branch: Some(b),
                    };
                    queue.push_back((c, Some(link)));
                }
            }
            for seq in d.first_seq..d.first_seq + d.count.max(1) as u64 {
                for c in children.of_event.get(&seq).into_iter().flatten() {
                    let link = Link {
                        parent: index,
                        branch: None,
                    };
                    queue.push_back((c, Some(link)));
                }
            }
            trace.events.push(TraceEvent {
                fields: self.event_fields(d),
                link,
                branch_children: vec![Vec::new(); branch_count],
                children: Vec::new(),
            });
        }
        Some(trace)
    }

    /// An event's id: the one it was given in the process that sent it, when it came from another.
    fn event_id(&self, seq: EventSeq) -> String {
        match self
            .store
            .find_event(seq)
            .and_then(|d| d.alias().filter(|_| d.first_seq == seq))
        {
            Some(alias) => alias.format(self.foreign),
            None => self.ids.format(seq),
        }
    }

    fn correlation_id(&self, c: &Correlation) -> String {
        match c {
            Correlation::Event(seq) => self.event_id(*seq),
            Correlation::Foreign(id) => self.foreign.format(*id),
            Correlation::External(s) => s.to_string(),
        }
    }

    fn event_fields(&self, d: &Delivery) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("id".into(), self.event_id(d.first_seq).into());
        event.insert(
            "type".into(),
            self.types.lookup(d.event_type(0)).unwrap_or("?").into(),
        );
        let sender = d.sender().and_then(|n| self.nodes.lookup(n));
        event.insert("sender".into(), sender.map_or(Value::Null, Value::from));
        // The first event's own ids (a batch member may name its own).
        let (cause, correlation) = d.causality(0);
        let causation = match &cause {
            Cause::Root => Value::Null,
            Cause::Event { seq, .. } => self.event_id(*seq).into(),
            Cause::External(s) => Value::from(&**s),
        };
        event.insert("causationId".into(), causation);
        event.insert(
            "correlationId".into(),
            self.correlation_id(&correlation).into(),
        );
        event.insert("timestamp".into(), d.timestamp.into());
        if d.is_batch() {
            let ids: Vec<Value> = (0..d.count as u64)
                .map(|i| self.event_id(d.first_seq + i).into())
                .collect();
            event.insert("batch".into(), json!({ "size": d.count, "ids": ids }));
        }
        let branches: Vec<Value> = self
            .store
            .branches_of(d)
            .map(|(id, b)| {
                let steps: Vec<Value> = self
                    .store
                    .steps(id)
                    .into_iter()
                    .map(|s| json!({ "name": self.steps.lookup(s).unwrap_or("?") }))
                    .collect();
                let mut branch = Map::new();
                branch.insert(
                    "node".into(),
                    self.nodes.lookup(b.node).unwrap_or("?").into(),
                );
                branch.insert("steps".into(), steps.into());
                branch.insert("outcome".into(), b.outcome.as_str().into());
                let duration = if b.outcome == Outcome::Running {
                    Value::Null
                } else {
                    round_ms(b.duration_ms).into()
                };
                branch.insert("duration".into(), duration);
                if let Some(error) = self.store.detail(id).and_then(|d| d.error.as_deref()) {
                    branch.insert("error".into(), error.into());
                }
                Value::Object(branch)
            })
            .collect();
        event.insert("branches".into(), branches.into());
        event
    }
}

fn round_ms(ms: f32) -> f64 {
    (ms as f64 * 1000.0).round() / 1000.0
}

fn str_of<'v>(v: &'v Map<String, Value>, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// What the text writer has left to write.
enum Line {
    Event {
        index: usize,
        column: usize,
        depth: usize,
    },
    /// `column`: the column of the branch's event; the branch line sits 2 further right.
    Branch {
        index: usize,
        branch: usize,
        column: usize,
        depth: usize,
    },
}

impl Trace {
    /// `{"events":[…],"links":[parent, branch, …],"correlationId":…,"text":…}`: every event
    /// flat (no `children`), `links` giving each event's parent index and branch index (-1:
    /// a root, or a child of the event itself). Events come after their parents.
    pub fn to_wire(&self) -> String {
        let mut links = Vec::with_capacity(self.events.len() * 2);
        for e in &self.events {
            match e.link {
                None => links.extend([-1i64, -1]),
                Some(Link { parent, branch }) => {
                    links.push(parent as i64);
                    links.push(branch.map_or(-1, |b| b as i64));
                }
            }
        }
        let events: Vec<&Map<String, Value>> = self.events.iter().map(|e| &e.fields).collect();
        json!({
            "events": events,
            "links": links,
            "correlationId": self.correlation_id,
            "text": self.text(),
        })
        .to_string()
    }

    /// The tree as indented text, one line per event and per branch.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut stack: Vec<Line> = Vec::new();
        let column = if self.roots.len() == 1 {
            0
        } else {
            let _ = writeln!(out, "correlation {}", self.correlation_id);
            2
        };
        for &index in self.roots.iter().rev() {
            stack.push(Line::Event {
                index,
                column,
                depth: 0,
            });
        }
        while let Some(line) = stack.pop() {
            match line {
                Line::Event {
                    index,
                    column,
                    depth,
                } => {
                    let event = &self.events[index];
                    let fields = &event.fields;
                    let batch = fields
                        .get("batch")
                        .and_then(|b| b.get("size"))
                        .map(|n| format!(" [batch of {n}]"))
                        .unwrap_or_default();
                    indent(&mut out, column, 0, depth);
                    let _ = writeln!(
                        out,
                        "{} {}{batch} (sender: {})",
                        str_of(fields, "type"),
                        str_of(fields, "id"),
                        str_of(fields, "sender"),
                    );
                    for &child in event.children.iter().rev() {
                        stack.push(Line::Event {
                            index: child,
                            column: column + 2,
                            depth: depth + 1,
                        });
                    }
                    for branch in (0..event.branch_children.len()).rev() {
                        stack.push(Line::Branch {
                            index,
                            branch,
                            column,
                            depth,
                        });
                    }
                }
                Line::Branch {
                    index,
                    branch,
                    column,
                    depth,
                } => {
                    let event = &self.events[index];
                    let Some(b) = event
                        .fields
                        .get("branches")
                        .and_then(|b| b.get(branch))
                        .and_then(Value::as_object)
                    else {
                        continue;
                    };
                    let steps: Vec<&str> = b
                        .get("steps")
                        .and_then(Value::as_array)
                        .map_or(&[][..], Vec::as_slice)
                        .iter()
                        .map(|s| s.get("name").and_then(Value::as_str).unwrap_or("-"))
                        .collect();
                    let duration = b
                        .get("duration")
                        .and_then(Value::as_f64)
                        .map(|d| format!(" {d}ms"))
                        .unwrap_or_default();
                    let error = b
                        .get("error")
                        .and_then(Value::as_str)
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    indent(&mut out, column, 2, depth);
                    let _ = writeln!(
                        out,
                        "-> {} [{}] {}{duration}{error}",
                        str_of(b, "node"),
                        steps.join(" > "),
                        str_of(b, "outcome"),
                    );
                    for &child in event.branch_children[branch].iter().rev() {
                        stack.push(Line::Event {
                            index: child,
                            column: column + 7,
                            depth: depth + 1,
                        });
                    }
                }
            }
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// The tree as nested JSON (recursive: for tests over small trees).
    #[cfg(test)]
    pub fn nested(&self) -> Value {
        fn event(t: &Trace, i: usize) -> Value {
            let e = &t.events[i];
            let mut fields = e.fields.clone();
            if let Some(Value::Array(branches)) = fields.get_mut("branches") {
                for (b, branch) in branches.iter_mut().enumerate() {
                    let kids = e.branch_children[b].iter().map(|&c| event(t, c)).collect();
                    branch["children"] = Value::Array(kids);
                }
            }
            let kids = e.children.iter().map(|&c| event(t, c)).collect();
            fields.insert("children".into(), Value::Array(kids));
            Value::Object(fields)
        }
        match self.roots[..] {
            [root] => event(self, root),
            _ => json!({
                "correlationId": self.correlation_id,
                "children": self.roots.iter().map(|&r| event(self, r)).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Writes the indent of a line `offset` columns right of its event's `column`; past
/// `MAX_INDENT` the event's column is capped and the line names the event's depth.
fn indent(out: &mut String, column: usize, offset: usize, depth: usize) {
    if column <= MAX_INDENT {
        out.extend(std::iter::repeat_n(' ', column + offset));
    } else {
        out.extend(std::iter::repeat_n(' ', MAX_INDENT + offset));
        let _ = write!(out, "[depth {depth}] ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_text_lines_stop_moving_right_and_say_their_depth() {
        let mut out = String::new();
        indent(&mut out, MAX_INDENT + 500, 2, 71);
        assert_eq!(out, format!("{}[depth 71] ", " ".repeat(MAX_INDENT + 2)));
    }
}
