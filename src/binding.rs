//! The N-API face of `crate::core::Core`.
//!
//! Calls carry plain numbers and two `Float64Array`s bound to the core once (`bind_buffers`):
//! `io`, where the JS layer writes a send's targets (and per-event types) and `dispatch`
//! overwrites them with the plan, and the flow `journal` of finished flows and steps, which
//! `dispatch` records first (the JS layer says how much of it is new). That
//! keeps a fan-out to a single boundary crossing with no objects built on the Rust side, and
//! no typed array to unwrap on each call (that costs more than the rest of a call's glue).
//!
//! The functions are free functions over one process-wide table of cores addressed by a small
//! integer: a napi-rs class method costs about 250 ns a call on this machine (it unwraps and
//! checks `this`), a free function about 35 ns. The table is behind a mutex, so a core handle
//! is valid on every thread of the process (worker threads join their parent's core, see
//! `crate::threads`); uncontended, the lock costs a few ns a call. What a thread binds (its
//! typed arrays, its pending plan) stays that thread's own.
//!
//! Every function is `catch_unwind`: a panic becomes a JS exception, never an abort. Errors
//! carry their happen code as a `[CODE] ` prefix that the JS layer turns into a `HappenError`.

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard};

use crate::core::slab::Slab;

use napi::bindgen_prelude::Float64Array;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::core::{
    BranchId, Core, CoreError, Correlation, EventSeq, ForeignId, IdRef, NameId, NodeIndex, Outcome,
    SendRequest, Targets,
};

pub(crate) fn coded(code: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {message}"))
}

pub(crate) fn core_error(e: CoreError) -> Error {
    use crate::core::RegistryError::*;
    let code = match &e {
        CoreError::Registry(DuplicateNode(_)) => "DUPLICATE_NODE",
        CoreError::Registry(UnknownNode(_)) => "UNKNOWN_NODE",
        CoreError::Registry(UnknownHandler(_)) => "UNKNOWN_HANDLER",
        CoreError::Pattern(_) => "INVALID_PATTERN",
        CoreError::ClosedPlace(_) => "NODE_LOST",
    };
    coded(code, e)
}

/// Where the header of a dispatch plan ends in `io`: first event seq, first branch id,
/// timestamp, correlation seq (-1: external), target count.
const PLAN_HEADER: usize = 6;

/// One core and the scratch buffers its dispatches reuse (within one call, under the lock).
pub(crate) struct Slot {
    pub(crate) core: Core,
    targets: Vec<NodeIndex>,
    types: Vec<NameId>,
}

/// What one thread's runtime binds to a core: its own typed arrays (a JS thread's, usable on
/// that thread only), and the plan of its last send, which waits there for `take_plan` without
/// another thread's send replacing it. One per core handle, per thread.
#[derive(Default)]
struct Bound {
    io: Option<Float64Array>,
    journal: Option<Float64Array>,
    /// A plan too large for `io`, kept until the JS layer fetches it with a larger array.
    plan: Vec<f64>,
}

static CORES: Mutex<Slab<Slot>> = Mutex::new(Slab::new());

/// The table; a panic while it was held (caught at the boundary) leaves it usable.
fn cores() -> MutexGuard<'static, Slab<Slot>> {
    CORES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    static BOUND: RefCell<Vec<Bound>> = const { RefCell::new(Vec::new()) };
    /// The thread's argument buffer (`bind_args`): the hot calls take no arguments and read
    /// their core handle here, since napi-rs sets up a borrow scope (a lock and an
    /// allocation) for every call that has arguments and none for one that has none.
    static ARGS: RefCell<Option<Float64Array>> = const { RefCell::new(None) };
}

/// Binds the thread's argument buffer (see `ARGS`).
#[napi(catch_unwind)]
pub fn bind_args(args: Float64Array) {
    ARGS.set(Some(args));
}

/// The core handle a zero-argument call was given in the argument buffer.
fn core_arg() -> Result<u32> {
    Ok(args::<1>()?[0] as u32)
}

/// The first `N` values of the argument buffer.
fn args<const N: usize>() -> Result<[f64; N]> {
    ARGS.with_borrow(|args| {
        args.as_deref()
            .and_then(|a| a.get(..N))
            .and_then(|a| a.try_into().ok())
            .ok_or_else(|| coded("INTERNAL", "no argument buffer bound"))
    })
}

fn with_bound<T>(core: u32, f: impl FnOnce(&mut Bound) -> Result<T>) -> Result<T> {
    BOUND.with_borrow_mut(|all| {
        let at = core as usize;
        if all.len() <= at {
            all.resize_with(at + 1, Bound::default);
        }
        f(&mut all[at])
    })
}

pub(crate) fn with_core<T>(handle: u32, f: impl FnOnce(&mut Slot) -> Result<T>) -> Result<T> {
    match cores().get_mut(handle) {
        Some(slot) => f(slot),
        None => Err(coded("SHUTDOWN", "this happen runtime has been shut down")),
    }
}

/// Creates a core; returns its handle.
#[napi(catch_unwind)]
pub fn create_core(history_size: u32) -> u32 {
    let slot = Slot {
        core: Core::new(history_size as usize),
        targets: Vec::new(),
        types: Vec::new(),
    };
    cores().insert(slot)
}

/// Milliseconds on a monotonic clock since the addon's first use; the JS layer calibrates it
/// once against performance.now().
#[napi(catch_unwind)]
pub fn monotonic_ms() -> f64 {
    crate::core::clock::monotonic_ms()
}

/// Binds the buffers later calls read and write: `io` (send inputs and plans) and `journal`
/// (finished flows). Binding again replaces them (a larger `io` for a large send).
#[napi(catch_unwind)]
pub fn bind_buffers(core: u32, io: Float64Array, journal: Float64Array) -> Result<()> {
    with_core(core, |_| Ok(()))?;
    with_bound(core, |b| {
        b.io = Some(io);
        b.journal = Some(journal);
        Ok(())
    })
}

/// Runs `f` over the core, this thread's bound `io`, its pending plan, and its journal.
fn with_io<T>(
    core: u32,
    f: impl FnOnce(&mut Slot, &mut Vec<f64>, &mut [f64], &[f64]) -> Result<T>,
) -> Result<T> {
    with_bound(core, |b| {
        let io =
            b.io.as_mut()
                .ok_or_else(|| coded("INTERNAL", "no io buffer bound to the core"))?;
        // SAFETY: the JS layer does not touch `io` while a call into the core runs, and this
        // thread holds the array (its reference) for as long as the slice is used here.
        let io = unsafe { io.as_mut() };
        let journal = b.journal.as_deref().unwrap_or(&[]);
        with_core(core, |s| f(s, &mut b.plan, io, journal))
    })
}

/// Frees a core and everything it holds (nodes, handlers, history).
#[napi(catch_unwind)]
pub fn drop_core(handle: u32) {
    let dropped = cores().remove(handle);
    let _ = with_bound(handle, |b| {
        *b = Bound::default();
        Ok(())
    });
    // Dropped outside the lock: freeing a large history takes a while.
    drop(dropped);
}

#[napi(catch_unwind)]
pub fn id_prefix(core: u32) -> Result<String> {
    with_core(core, |s| Ok(s.core.id_prefix().to_string()))
}

#[napi(catch_unwind)]
pub fn create_node(core: u32, name: String) -> Result<u32> {
    with_core(core, |s| s.core.create_node(&name).map_err(core_error))
}

// --- NATS transport hooks: remote nodes and their steps. Everything else of the
// --- transport lives in src/nats.rs and lib/transports/nats/.

/// Registers a node of another process by id; a send plans it as a target without handlers
/// (its branch stays running until the transport finishes it through `finish_branches`).
#[napi(catch_unwind)]
pub fn create_remote_node(core: u32, name: String) -> Result<u32> {
    with_core(core, |s| {
        s.core.create_remote_node(&name).map_err(core_error)
    })
}

/// The step names `count` consecutive branches recorded (sent back with remote flows'
/// outcomes): one line per branch, the JSON array of its steps, or an empty line when they are
/// the branch before's. Consecutive flows usually ran the same handlers, so a run of them
/// crosses as one string with its steps serialised once.
#[napi(catch_unwind)]
pub fn branch_steps_json(core: u32, first_branch: f64, count: u32) -> Result<String> {
    with_core(core, |s| {
        let mut text = String::new();
        let mut before: Option<Vec<_>> = None;
        for i in 0..count as u64 {
            let branch = first_branch as BranchId + i;
            let steps = s.core.branch_step_ids(branch);
            if i > 0 {
                text.push('\n');
            }
            if before.as_ref() != Some(&steps) {
                let names = s.core.step_names(&steps);
                text.push_str(&serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()));
                before = Some(steps);
            }
        }
        Ok(text)
    })
}

/// `dispatch_with_ids` for an event that came from another process, which keeps `alias`, the
/// id it has there. `correlation_is_alias`: its correlation id is that id (a root event there),
/// which then crosses once.
#[napi(catch_unwind)]
pub fn dispatch_inbound(
    core: u32,
    alias: String,
    correlation_is_alias: bool,
    causation_id: Option<String>,
    correlation_id: Option<String>,
) -> Result<i32> {
    let correlation = if correlation_is_alias {
        Some(alias.as_str())
    } else {
        correlation_id.as_deref()
    };
    plan_send(
        core,
        causation_id.as_deref(),
        correlation.map(IdRef::Text),
        Some(IdRef::Text(&alias)),
    )
}

/// The handle of another runtime's id prefix in this core, for `dispatch_inbound_seq`.
#[napi(catch_unwind)]
pub fn intern_alias_prefix(core: u32, prefix: String) -> Result<u32> {
    with_core(core, |s| Ok(s.core.intern_foreign_prefix(&prefix)))
}

/// `dispatch_inbound` without arguments, for the usual event from elsewhere (the hot path of
/// served events): one whose correlation id is its own id there and whose causation, if any,
/// is one of this runtime's events (in the buffer's cause fields). The argument buffer holds
/// the core, the handle of the id's prefix and its seq: no strings cross, and the core keeps
/// the id as those two numbers.
#[napi(catch_unwind)]
pub fn dispatch_inbound_seq() -> Result<i32> {
    let [core, prefix, seq] = args::<3>()?;
    if prefix < 0.0 || seq < 0.0 {
        return Err(coded("INTERNAL", "unknown alias prefix"));
    }
    let id = IdRef::Foreign(ForeignId {
        prefix: prefix as NameId,
        seq: seq as EventSeq,
    });
    plan_send(core as u32, None, Some(id), Some(id))
}

/// Records on remote nodes' branches the steps their flows ran in other processes: JSON text
/// `[branch, [step names], branch, [step names], …]`, many replies in one call.
#[napi(catch_unwind)]
pub fn add_remote_steps(core: u32, json: String) -> Result<()> {
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json)
        .map_err(|e| coded("INTERNAL", format!("bad remote steps: {e}")))?;
    with_core(core, |s| {
        for pair in entries.chunks_exact(2) {
            let (Some(branch), Some(names)) = (pair[0].as_f64(), pair[1].as_array()) else {
                continue;
            };
            let names: Vec<String> = names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            s.core.add_remote_steps(branch as BranchId, &names);
        }
        Ok(())
    })
}

/// Returns the ids of the handlers that went with the node.
#[napi(catch_unwind)]
pub fn dispose_node(core: u32, node: u32) -> Result<Vec<u32>> {
    with_core(core, |s| s.core.dispose_node(node).map_err(core_error))
}

/// `pattern` null: a JS predicate decides, so the core offers the handler every event.
#[napi(catch_unwind)]
pub fn add_handler(
    core: u32,
    node: u32,
    pattern: Option<String>,
    step_name: String,
) -> Result<u32> {
    with_core(core, |s| {
        s.core
            .add_handler(node, pattern.as_deref(), &step_name)
            .map_err(core_error)
    })
}

#[napi(catch_unwind)]
pub fn remove_handler(core: u32, handler: u32) -> Result<()> {
    with_core(core, |s| s.core.remove_handler(handler).map_err(core_error))
}

#[napi(catch_unwind)]
pub fn intern_type(core: u32, event_type: String) -> Result<u32> {
    with_core(core, |s| Ok(s.core.intern_type(&event_type)))
}

#[napi(catch_unwind)]
pub fn intern_step(core: u32, step_name: String) -> Result<u32> {
    with_core(core, |s| Ok(s.core.intern_step(&step_name)))
}

/// Where the inputs of `dispatch` sit at the start of `io`.
mod input {
    pub const SENDER: usize = 0;
    pub const CAUSE_SEQ: usize = 1;
    pub const CAUSE_BRANCH: usize = 2;
    pub const INHERITED_CORRELATION: usize = 3;
    pub const TARGET_COUNT: usize = 4;
    pub const TYPE_ID: usize = 5;
    pub const COUNT: usize = 6;
    /// How many journal triples the send carries (read from the journal, not `io`).
    pub const OUTCOMES: usize = 7;
    pub const LEN: usize = 8;
}

/// Plans one send. Reads from `io`: the `input` header (numbers; -1 for none), then
/// `target count` node indices (none when it is -1: every node), then, when the type id is -1,
/// `count` type ids; and from the journal its first `outcomes` triples of finished flows (see
/// `finish_branches`), which are recorded first. Writes to `io`: the plan header, then per target
/// `node, handler count, handler ids…`. Returns the plan's length, or its negative when `io` is
/// too small (fetch it with `take_plan`). The core is the one named in the argument buffer.
#[napi(catch_unwind)]
pub fn dispatch() -> Result<i32> {
    plan_send(core_arg()?, None, None, None)
}

/// `dispatch` for an event whose caller set its own causation or correlation id.
#[napi(catch_unwind)]
pub fn dispatch_with_ids(
    core: u32,
    causation_id: Option<String>,
    correlation_id: Option<String>,
) -> Result<i32> {
    plan_send(
        core,
        causation_id.as_deref(),
        correlation_id.as_deref().map(IdRef::Text),
        None,
    )
}

fn plan_send(
    core: u32,
    causation: Option<&str>,
    correlation: Option<IdRef>,
    alias: Option<IdRef>,
) -> Result<i32> {
    with_io(core, |slot, plan, io, journal| {
        let header = io
            .get(..input::LEN)
            .ok_or_else(|| coded("INTERNAL", "io array too small for the send"))?;
        let number = |at: usize| header[at];
        let target_count = number(input::TARGET_COUNT);
        let type_id = number(input::TYPE_ID);
        let count = number(input::COUNT) as u32;
        let targets_len = target_count.max(0.0) as usize;
        let types_len = if type_id >= 0.0 { 0 } else { count as usize };
        let read = |n: usize, at: usize| {
            io.get(input::LEN + at..input::LEN + at + n)
                .ok_or_else(|| coded("INTERNAL", "io array too small for the send"))
        };
        let outcomes = journal
            .get(..number(input::OUTCOMES) as usize * 3)
            .ok_or_else(|| coded("INTERNAL", "journal too small for the send's outcomes"))?;
        finish(&mut slot.core, outcomes);
        slot.targets.clear();
        slot.targets
            .extend(read(targets_len, 0)?.iter().map(|&n| n as NodeIndex));
        slot.types.clear();
        if type_id >= 0.0 {
            slot.types.push(type_id as NameId);
        } else {
            slot.types
                .extend(read(types_len, targets_len)?.iter().map(|&t| t as NameId));
        }
        let (sender, cause_seq, cause_branch, inherited) = (
            number(input::SENDER),
            number(input::CAUSE_SEQ),
            number(input::CAUSE_BRANCH),
            number(input::INHERITED_CORRELATION),
        );
        let request = SendRequest {
            sender: (sender >= 0.0).then_some(sender as NodeIndex),
            cause: (cause_seq > 0.0).then(|| {
                (
                    cause_seq as EventSeq,
                    (cause_branch > 0.0).then_some(cause_branch as BranchId),
                )
            }),
            inherited_correlation: (inherited > 0.0)
                .then_some(Correlation::Event(inherited as EventSeq)),
            explicit_causation: causation,
            explicit_correlation: correlation,
            alias,
            targets: if target_count >= 0.0 {
                Targets::Nodes(&slot.targets)
            } else {
                Targets::Everyone
            },
            types: &slot.types,
            count,
        };
        if let Some(IdRef::Foreign(id)) = alias {
            if !slot.core.knows_foreign_prefix(id.prefix) {
                return Err(coded("INTERNAL", "unknown alias prefix"));
            }
        }
        plan.clear();
        plan.resize(PLAN_HEADER, 0.0);
        let mut targets = 0;
        let dispatched = slot.core.dispatch(&request, |node, handlers| {
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
            Correlation::Foreign(_) | Correlation::External(_) => -1.0,
        };
        plan[4] = targets as f64;
        // The send's start on the monotonic clock, for flow durations: read with the timestamp
        // (core::clock), for far less than performance.now() in JS.
        plan[5] = dispatched.started_ms;
        let len = plan.len();
        if len > io.len() {
            return Ok(-(len as i32));
        }
        io[..len].copy_from_slice(plan);
        Ok(len as i32)
    })
}

/// Copies a plan that did not fit into the `io` given to `dispatch`.
#[napi(catch_unwind)]
pub fn take_plan(core: u32) -> Result<()> {
    with_io(core, |_, plan, io, _| {
        let plan = std::mem::take(plan);
        let target = io
            .get_mut(..plan.len())
            .ok_or_else(|| coded("INTERNAL", "io array too small for the plan"))?;
        target.copy_from_slice(&plan);
        Ok(())
    })
}

/// Sets the ids a caller gave one event of a batch (the batch's first event's go with `dispatch`).
#[napi(catch_unwind)]
pub fn set_event_ids(
    core: u32,
    seq: f64,
    causation_id: Option<String>,
    correlation_id: Option<String>,
) -> Result<()> {
    with_core(core, |s| {
        s.core.set_event_ids(
            seq as EventSeq,
            causation_id.as_deref(),
            correlation_id.as_deref().map(IdRef::Text),
        );
        Ok(())
    })
}

/// The correlation id of a held event: how the JS layer learns a correlation the core
/// inherited from a stored cause that is not one of this runtime's ids (rare).
#[napi(catch_unwind)]
pub fn event_correlation_id(core: u32, seq: f64) -> Result<Option<String>> {
    with_core(core, |s| Ok(s.core.event_correlation_id(seq as EventSeq)))
}

/// The longest flow a node may run (the JS layer counts steps and enforces it).
#[napi(catch_unwind)]
pub fn max_flow_steps() -> u32 {
    crate::core::MAX_FLOW_STEPS as u32
}

/// Records the flow journal from `io`: `count` triples of branch id, code and value. Codes 1
/// fulfilled, 2 rejected, 3 unmatched carry the duration in ms; code 4 a further step's name
/// id. Errors go one by one through `fail_branch`, so this path carries numbers only.
#[napi(catch_unwind)]
pub fn finish_branches(core: u32, count: u32) -> Result<()> {
    with_bound(core, |b| {
        let journal = b
            .journal
            .as_deref()
            .ok_or_else(|| coded("INTERNAL", "no journal bound to the core"))?;
        let entries = journal
            .get(..count as usize * 3)
            .ok_or_else(|| coded("INTERNAL", "journal too small"))?;
        with_core(core, |s| {
            finish(&mut s.core, entries);
            Ok(())
        })
    })
}

fn finish(core: &mut Core, entries: &[f64]) {
    for entry in entries.chunks_exact(3) {
        let branch = entry[0] as BranchId;
        match entry[1] as u8 {
            STEP => core.add_step(branch, entry[2] as NameId),
            code => core.finish_branch(branch, outcome(code), entry[2], None),
        }
    }
}

/// The journal code of a further flow step.
const STEP: u8 = 4;

#[napi(catch_unwind)]
pub fn fail_branch(core: u32, branch: f64, duration_ms: f64, message: String) -> Result<()> {
    with_core(core, |s| {
        s.core.finish_branch(
            branch as BranchId,
            Outcome::Rejected,
            duration_ms,
            Some(&message),
        );
        Ok(())
    })
}

/// The causal tree in its flat wire form (`Trace::to_wire`), or null.
#[napi(catch_unwind)]
pub fn trace(core: u32, id: String) -> Result<Option<String>> {
    with_core(core, |s| Ok(s.core.trace(&id).map(|tree| tree.to_wire())))
}

/// The message and place of the last panic caught on this thread (taken: told once), for
/// the `INTERNAL` error the JS layer raises.
#[napi(catch_unwind)]
pub fn last_panic() -> Option<String> {
    crate::panic::take_last()
}

/// Test hook: proves that a Rust panic reaches JS as an exception.
#[napi(catch_unwind)]
pub fn panic_for_test() {
    panic!("deliberate panic for the test suite");
}

fn outcome(code: u8) -> Outcome {
    match code {
        1 => Outcome::Fulfilled,
        2 => Outcome::Rejected,
        3 => Outcome::Unmatched,
        _ => Outcome::Running,
    }
}
