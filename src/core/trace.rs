//! The causal tree of an event or a correlation: built from the causal store on demand, as
//! JSON for export and as indented text for people.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::causal::{Branch, CausalStore, Cause, Correlation, Delivery};
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

/// How many events deep a tree goes. A longer causal chain (a ping-pong of thousands of hops)
/// is cut there with `"truncated": true`, and `trace()` of the cut event's id continues it:
/// building, serialising and printing the tree recurse, and an unbounded depth would overflow
/// the native stack (a segfault, not a panic), and its indented text grows with depth squared.
pub const MAX_TRACE_DEPTH: usize = 256;

pub struct TraceBuilder<'a> {
    pub store: &'a CausalStore,
    pub ids: &'a EventIds,
    pub types: &'a Interner,
    pub steps: &'a Interner,
    pub nodes: &'a SharedNames,
}

impl TraceBuilder<'_> {
    /// The tree under an event id or a correlation id; None when the history holds neither.
    pub fn build(&self, id: &str) -> Option<Value> {
        let children = Children::index(self.store);
        if let Some(d) = self
            .ids
            .parse(id)
            .and_then(|seq| self.store.find_event(seq))
        {
            return Some(self.delivery(d, &children, 0));
        }
        let wanted = match self.ids.parse(id) {
            Some(seq) => Correlation::Event(seq),
            None => Correlation::External(id.into()),
        };
        let correlated: Vec<&Delivery> = self
            .store
            .deliveries()
            .filter(|d| d.correlates(&wanted))
            .collect();
        let roots: Vec<Value> = correlated
            .iter()
            .filter(|d| match placement(d) {
                Cause::Event { seq, .. } => !correlated.iter().any(|c| c.contains_seq(seq)),
                _ => true,
            })
            .map(|d| self.delivery(d, &children, 0))
            .collect();
        match roots.len() {
            0 => None,
            1 => roots.into_iter().next(),
            _ => Some(json!({ "correlationId": id, "children": roots })),
        }
    }

    /// An event's id: the one it was given in the process that sent it, when it came from another.
    fn event_id(&self, seq: EventSeq) -> String {
        match self
            .store
            .find_event(seq)
            .and_then(|d| d.alias().filter(|_| d.first_seq == seq))
        {
            Some(alias) => alias.to_string(),
            None => self.ids.format(seq),
        }
    }

    fn correlation_id(&self, c: &Correlation) -> String {
        match c {
            Correlation::Event(seq) => self.event_id(*seq),
            Correlation::External(s) => s.to_string(),
        }
    }

    fn delivery(&self, d: &Delivery, children: &Children, depth: usize) -> Value {
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
        if depth >= MAX_TRACE_DEPTH {
            event.insert("truncated".into(), true.into());
            event.insert("branches".into(), Value::Array(Vec::new()));
            event.insert("children".into(), Value::Array(Vec::new()));
            return Value::Object(event);
        }
        if d.is_batch() {
            let ids: Vec<Value> = (0..d.count as u64)
                .map(|i| self.event_id(d.first_seq + i).into())
                .collect();
            event.insert("batch".into(), json!({ "size": d.count, "ids": ids }));
        }
        let branches: Vec<Value> = self
            .store
            .branches_of(d)
            .map(|(id, b)| self.branch(b, id, children, depth))
            .collect();
        event.insert("branches".into(), branches.into());
        let caused: Vec<Value> = (0..d.count.max(1) as u64)
            .flat_map(|i| {
                children
                    .of_event
                    .get(&(d.first_seq + i))
                    .into_iter()
                    .flatten()
            })
            .map(|c| self.delivery(c, children, depth + 1))
            .collect();
        event.insert("children".into(), caused.into());
        Value::Object(event)
    }

    fn branch(&self, b: &Branch, id: u64, children: &Children, depth: usize) -> Value {
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
        let running = b.outcome == super::causal::Outcome::Running;
        branch.insert(
            "duration".into(),
            if running {
                Value::Null
            } else {
                round_ms(b.duration_ms).into()
            },
        );
        if let Some(error) = self.store.detail(id).and_then(|d| d.error.as_deref()) {
            branch.insert("error".into(), error.into());
        }
        let caused: Vec<Value> = children
            .of_branch
            .get(&id)
            .into_iter()
            .flatten()
            .map(|c| self.delivery(c, children, depth + 1))
            .collect();
        branch.insert("children".into(), caused.into());
        Value::Object(branch)
    }
}

fn round_ms(ms: f32) -> f64 {
    (ms as f64 * 1000.0).round() / 1000.0
}

/// Renders a tree from `TraceBuilder::build` as indented text.
pub fn render_text(tree: &Value) -> String {
    let mut out = String::new();
    if tree.get("id").is_none() {
        let _ = writeln!(out, "correlation {}", str_of(tree, "correlationId"));
        for child in list(tree, "children") {
            render_event(child, "  ", &mut out);
        }
    } else {
        render_event(tree, "", &mut out);
    }
    out.truncate(out.trim_end().len());
    out
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn list<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn render_event(event: &Value, indent: &str, out: &mut String) {
    let batch = event
        .get("batch")
        .and_then(|b| b.get("size"))
        .map(|n| format!(" [batch of {n}]"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{indent}{} {}{batch} (sender: {})",
        str_of(event, "type"),
        str_of(event, "id"),
        str_of(event, "sender"),
    );
    let inner = format!("{indent}  ");
    if event.get("truncated").and_then(Value::as_bool) == Some(true) {
        let _ = writeln!(
            out,
            "{inner}... deeper events left out: trace('{}') continues",
            str_of(event, "id")
        );
        return;
    }
    for branch in list(event, "branches") {
        let steps: Vec<&str> = list(branch, "steps")
            .iter()
            .map(|s| str_of(s, "name"))
            .collect();
        let duration = branch
            .get("duration")
            .and_then(Value::as_f64)
            .map(|d| format!(" {d}ms"))
            .unwrap_or_default();
        let error = branch
            .get("error")
            .and_then(Value::as_str)
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{inner}-> {} [{}] {}{duration}{error}",
            str_of(branch, "node"),
            steps.join(" > "),
            str_of(branch, "outcome"),
        );
        for child in list(branch, "children") {
            render_event(child, &format!("{inner}     "), out);
        }
    }
    for child in list(event, "children") {
        render_event(child, &inner, out);
    }
}
