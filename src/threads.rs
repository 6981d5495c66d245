//! Worker-thread places: thread runtimes of one process sharing one core.
//!
//! Guarantees:
//! - A thread that joins a core gets a place of its own (`join_core`); nodes it creates with
//!   `create_node_in` run their handlers there, and every thread sees them in dispatch plans.
//! - `post(core, place, bytes)` from any thread hands `bytes` to that place's thread, in the
//!   order posted; the place's `deliver` function gets every message queued since it last ran
//!   as one array of Buffers. It returns false, delivering nothing, when the place has no open
//!   inbox (it left, or its thread is gone).
//! - An inbox never keeps its thread's event loop alive (its thread-safe function is weak), and
//!   leaving (or the thread's environment ending) releases it.
//!
//! How: per place, a queue behind a mutex and a weak thread-safe function. The first post into
//! an empty queue calls the function; its callback, on the place's own thread, takes the whole
//! queue, so a burst of posts costs one wake-up. Bytes are opaque here: the JS transport
//! (lib/transports/workers/) writes and reads them with `v8.serialize`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use napi::bindgen_prelude::{Buffer, BufferSlice, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Result, Status};
use napi_derive::napi;

use crate::binding::{core_error, with_core};
use crate::core::{NodeIndex, PlaceId};

/// Called on the place's thread with the messages queued for it.
type Deliver = ThreadsafeFunction<(), (), Vec<Buffer>, Status, false, true>;

#[derive(Default)]
struct Queue {
    messages: Mutex<Vec<Vec<u8>>>,
    /// Set while a call of `deliver` is on its way; cleared by the callback before it takes the queue.
    scheduled: AtomicBool,
}

impl Queue {
    fn take(&self) -> Vec<Vec<u8>> {
        self.scheduled.store(false, Ordering::Release);
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Inbox {
    queue: Arc<Queue>,
    deliver: Deliver,
}

/// Open inboxes, by (core handle, place).
type Inboxes = HashMap<(u32, PlaceId), Arc<Inbox>>;

/// The open inboxes. Posting takes an inbox out (an `Arc`) and calls its
/// function after the table's lock is released: the woken thread may post back at once.
fn inboxes() -> MutexGuard<'static, Inboxes> {
    static INBOXES: LazyLock<Mutex<Inboxes>> = LazyLock::new(Default::default);
    INBOXES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new place in `core` for the calling thread's runtime.
#[napi(catch_unwind)]
pub fn join_core(core: u32) -> Result<u32> {
    with_core(core, |s| Ok(s.core.join_place()))
}

/// Opens the inbox of `place`, on the thread that runs it: `deliver(buffers)` is called there
/// with the messages posted to it.
#[napi(catch_unwind)]
pub fn open_place(core: u32, place: u32, deliver: Function<Vec<Buffer>, ()>) -> Result<()> {
    let queue = Arc::new(Queue::default());
    let taken = queue.clone();
    let deliver: Deliver = deliver
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .build_callback(move |_| Ok(taken.take().into_iter().map(Buffer::from).collect()))?;
    // Replacing an inbox releases the old one's function.
    inboxes().insert((core, place), Arc::new(Inbox { queue, deliver }));
    Ok(())
}

/// Closes `place`: its inbox is released and (unless it is the core's home place) the core
/// disposes its nodes. Returns the indices of the nodes that went.
#[napi(catch_unwind)]
pub fn leave_place(core: u32, place: u32) -> Result<Vec<u32>> {
    let inbox = inboxes().remove(&(core, place));
    drop(inbox);
    with_core(core, |s| Ok(s.core.leave_place(place)))
}

/// Closes the inbox of `place` (nothing more reaches it), leaving its nodes in the core.
#[napi(catch_unwind)]
pub fn close_inbox(core: u32, place: u32) {
    let inbox = inboxes().remove(&(core, place));
    drop(inbox);
}

/// Queues `bytes` for `place`'s thread; false when that place has no open inbox.
#[napi(catch_unwind)]
pub fn post(core: u32, place: u32, bytes: BufferSlice) -> bool {
    let Some(inbox) = inboxes().get(&(core, place)).cloned() else {
        return false;
    };
    inbox
        .queue
        .messages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(bytes.to_vec());
    if !inbox.queue.scheduled.swap(true, Ordering::AcqRel) {
        let status = inbox
            .deliver
            .call((), ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            // The place's thread is gone (its environment closed the function).
            inbox.queue.scheduled.store(false, Ordering::Release);
            return false;
        }
    }
    true
}

/// Creates a node whose handlers run on `place`.
#[napi(catch_unwind)]
pub fn create_node_in(core: u32, name: String, place: u32) -> Result<u32> {
    with_core(core, |s| {
        s.core.create_node_in(&name, place).map_err(core_error)
    })
}

/// The place running the live node at `index`, or -1.
#[napi(catch_unwind)]
pub fn node_place(core: u32, index: u32) -> Result<i32> {
    with_core(core, |s| {
        Ok(s.core
            .node_place(index as NodeIndex)
            .map_or(-1, |p| p as i32))
    })
}

/// Where the node with id `name` lives: `[index, place]`, or null.
#[napi(catch_unwind)]
pub fn locate_node(core: u32, name: String) -> Result<Option<Vec<u32>>> {
    with_core(core, |s| {
        Ok(s.core
            .find_node(&name)
            .and_then(|index| s.core.node_place(index).map(|place| vec![index, place])))
    })
}

/// The id of the live node at `index`, or null.
#[napi(catch_unwind)]
pub fn node_name(core: u32, index: u32) -> Result<Option<String>> {
    with_core(core, |s| Ok(s.core.node_name(index).map(str::to_string)))
}

/// The nodes whose handlers run anywhere but `place`: `[index, place, index, place, …]`.
#[napi(catch_unwind)]
pub fn nodes_elsewhere(core: u32, place: u32) -> Result<Vec<u32>> {
    with_core(core, |s| {
        Ok(s.core
            .nodes_elsewhere(place)
            .into_iter()
            .flat_map(|(node, owner)| [node, owner])
            .collect())
    })
}

/// Every open place of `core`.
#[napi(catch_unwind)]
pub fn open_places(core: u32) -> Result<Vec<u32>> {
    with_core(core, |s| Ok(s.core.open_places()))
}
