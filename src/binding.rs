//! The N-API face of `crate::core::Core`.
//!
//! Calls carry plain numbers and one shared `Float64Array` (`io`): the JS layer writes a send's
//! targets (and per-event types) into it, and `dispatch` overwrites it with the plan. That keeps
//! a fan-out to a single boundary crossing with no objects built on the Rust side.
//!
//! Every method is `catch_unwind`: a panic becomes a JS exception, never an abort. Errors carry
//! their happen code as a `[CODE] ` prefix that the JS layer turns into a `HappenError`.

use napi::bindgen_prelude::Float64ArraySlice;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::core::{
    BranchId, Core, CoreError, Correlation, EventSeq, NameId, NodeIndex, Outcome, SendRequest, Targets,
};

fn coded(code: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {message}"))
}

fn core_error(e: CoreError) -> Error {
    use crate::core::RegistryError::*;
    let code = match &e {
        CoreError::Registry(DuplicateNode(_)) => "DUPLICATE_NODE",
        CoreError::Registry(UnknownNode(_)) => "UNKNOWN_NODE",
        CoreError::Registry(UnknownHandler(_)) => "UNKNOWN_HANDLER",
        CoreError::Pattern(_) => "INVALID_PATTERN",
        CoreError::FlowTooLong { .. } => "FLOW_TOO_LONG",
    };
    coded(code, e)
}

/// Where the header of a dispatch plan ends in `io`: first event seq, first branch id,
/// timestamp, correlation seq (-1: external), target count.
const PLAN_HEADER: usize = 5;

#[napi]
pub struct NativeCore {
    core: Core,
    targets: Vec<NodeIndex>,
    types: Vec<NameId>,
    /// A plan too large for `io`, kept until the JS layer fetches it with a larger array.
    plan: Vec<f64>,
}

#[napi]
impl NativeCore {
    #[napi(constructor, catch_unwind)]
    pub fn new(history_size: u32) -> Self {
        NativeCore { core: Core::new(history_size as usize), targets: Vec::new(), types: Vec::new(), plan: Vec::new() }
    }

    #[napi(getter, catch_unwind)]
    pub fn id_prefix(&self) -> String {
        self.core.id_prefix().to_string()
    }

    #[napi(catch_unwind)]
    pub fn create_node(&mut self, name: String) -> Result<u32> {
        self.core.create_node(&name).map_err(core_error)
    }

    /// Returns the ids of the handlers that went with the node.
    #[napi(catch_unwind)]
    pub fn dispose_node(&mut self, node: u32) -> Result<Vec<u32>> {
        self.core.dispose_node(node).map_err(core_error)
    }

    #[napi(catch_unwind)]
    pub fn find_node(&self, name: String) -> Option<u32> {
        self.core.find_node(&name)
    }

    /// `pattern` null: a JS predicate decides, so the core offers the handler every event.
    #[napi(catch_unwind)]
    pub fn add_handler(&mut self, node: u32, pattern: Option<String>, step_name: String) -> Result<u32> {
        self.core.add_handler(node, pattern.as_deref(), &step_name).map_err(core_error)
    }

    #[napi(catch_unwind)]
    pub fn remove_handler(&mut self, handler: u32) -> Result<()> {
        self.core.remove_handler(handler).map_err(core_error)
    }

    #[napi(catch_unwind)]
    pub fn intern_type(&mut self, event_type: String) -> u32 {
        self.core.intern_type(&event_type)
    }

    #[napi(catch_unwind)]
    pub fn intern_step(&mut self, step_name: String) -> u32 {
        self.core.intern_step(&step_name)
    }

    /// Plans one send. Reads from `io`: `target_count` node indices (or none when
    /// `target_count` is -1: every node), then, when `type_id` is -1, `count` type ids.
    /// Writes to `io`: the plan header, then per target `node, handler count, handler ids…`.
    /// Returns the plan's length, or its negative when `io` is too small (fetch it with
    /// `take_plan`).
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &mut self,
        mut io: Float64ArraySlice,
        sender: i32,
        cause_seq: f64,
        cause_branch: f64,
        inherited_correlation: f64,
        target_count: i32,
        type_id: i32,
        count: u32,
        causation_id: Option<String>,
        correlation_id: Option<String>,
    ) -> Result<i32> {
        // SAFETY: the JS layer owns `io` and does not touch it while this call runs.
        let io = unsafe { io.as_mut() };
        let read = |n: usize, at: usize| io.get(at..at + n).ok_or_else(|| coded("INTERNAL", "io array too small for the send"));
        self.targets.clear();
        if target_count >= 0 {
            self.targets.extend(read(target_count as usize, 0)?.iter().map(|&n| n as NodeIndex));
        }
        self.types.clear();
        if type_id >= 0 {
            self.types.push(type_id as NameId);
        } else {
            self.types.extend(read(count as usize, target_count.max(0) as usize)?.iter().map(|&t| t as NameId));
        }
        let request = SendRequest {
            sender: (sender >= 0).then_some(sender as NodeIndex),
            cause: (cause_seq > 0.0).then(|| (cause_seq as EventSeq, (cause_branch > 0.0).then_some(cause_branch as BranchId))),
            inherited_correlation: (inherited_correlation > 0.0).then(|| Correlation::Event(inherited_correlation as EventSeq)),
            explicit_causation: causation_id.as_deref(),
            explicit_correlation: correlation_id.as_deref(),
            targets: if target_count >= 0 { Targets::Nodes(&self.targets) } else { Targets::Everyone },
            types: &self.types,
            count,
        };
        let plan = &mut self.plan;
        plan.clear();
        plan.resize(PLAN_HEADER, 0.0);
        let mut targets = 0;
        let dispatched = self.core.dispatch(&request, |node, handlers| {
            targets += 1;
            plan.push(node as f64);
            plan.push(handlers.len() as f64);
            plan.extend(handlers.iter().map(|(h, _)| *h as f64));
        });
        plan[0] = dispatched.first_seq as f64;
        plan[1] = dispatched.first_branch as f64;
        plan[2] = dispatched.timestamp;
        plan[3] = match dispatched.correlation {
            Correlation::Event(seq) => seq as f64,
            Correlation::External(_) => -1.0,
        };
        plan[4] = targets as f64;
        let len = plan.len();
        if len > io.len() {
            return Ok(-(len as i32));
        }
        io[..len].copy_from_slice(plan);
        Ok(len as i32)
    }

    /// Copies a plan that did not fit into the `io` given to `dispatch`.
    #[napi(catch_unwind)]
    pub fn take_plan(&mut self, mut io: Float64ArraySlice) -> Result<()> {
        // SAFETY: as in `dispatch`.
        let io = unsafe { io.as_mut() };
        let plan = std::mem::take(&mut self.plan);
        let target = io.get_mut(..plan.len()).ok_or_else(|| coded("INTERNAL", "io array too small for the plan"))?;
        target.copy_from_slice(&plan);
        Ok(())
    }

    /// Sets the ids a caller gave one event of a batch (the batch's first event's go with `dispatch`).
    #[napi(catch_unwind)]
    pub fn set_event_ids(&mut self, seq: f64, causation_id: Option<String>, correlation_id: Option<String>) {
        self.core.set_event_ids(seq as EventSeq, causation_id.as_deref(), correlation_id.as_deref());
    }

    /// Records a further step of a flow; fails with FLOW_TOO_LONG past the limit.
    #[napi(catch_unwind)]
    pub fn record_step(&mut self, branch: f64, step: u32, steps_so_far: u32) -> Result<()> {
        self.core.record_step(branch as BranchId, step, steps_so_far as usize).map_err(core_error)
    }

    /// Records finished flows from `io`: `count` triples of branch id, outcome code
    /// (1 fulfilled, 2 rejected, 3 unmatched) and duration in ms. Errors go one by one through
    /// `fail_branch`, so this path carries numbers only.
    #[napi(catch_unwind)]
    pub fn finish_branches(&mut self, io: Float64ArraySlice, count: u32) -> Result<()> {
        let entries = io.get(..count as usize * 3).ok_or_else(|| coded("INTERNAL", "io array too small"))?;
        for entry in entries.chunks_exact(3) {
            self.core.finish_branch(entry[0] as BranchId, outcome(entry[1]), entry[2], None);
        }
        Ok(())
    }

    #[napi(catch_unwind)]
    pub fn fail_branch(&mut self, branch: f64, duration_ms: f64, message: String) {
        self.core.finish_branch(branch as BranchId, Outcome::Rejected, duration_ms, Some(&message));
    }

    /// The causal tree as JSON text `{ "tree": …, "text": … }`, or null.
    #[napi(catch_unwind)]
    pub fn trace(&self, id: String) -> Option<String> {
        let tree = self.core.trace(&id)?;
        let text = crate::core::trace::render_text(&tree);
        Some(serde_json::json!({ "tree": tree, "text": text }).to_string())
    }

    #[napi(catch_unwind)]
    pub fn history_len(&self) -> u32 {
        self.core.history().events_held() as u32
    }

    /// Test hook: proves that a Rust panic reaches JS as an exception.
    #[napi(catch_unwind)]
    pub fn panic_for_test(&self) {
        panic!("deliberate panic for the test suite");
    }
}

fn outcome(code: f64) -> Outcome {
    match code as u8 {
        1 => Outcome::Fulfilled,
        2 => Outcome::Rejected,
        3 => Outcome::Unmatched,
        _ => Outcome::Running,
    }
}
