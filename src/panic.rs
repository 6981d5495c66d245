//! Panics on the JavaScript threads are quiet: every N-API function catches them (its
//! `catch_unwind` attribute) and the JS layer raises a `HappenError` `INTERNAL` carrying the
//! panic's message, so Rust's default report on stderr (message and backtrace note) would only
//! be noise around an error the user already gets. The hook keeps the message and where the
//! panic happened for that error (`take_last`). Threads of happen's own (the NATS runtime,
//! named `happen-…`) catch nothing, so there the default report still shows.

use std::cell::RefCell;
use std::sync::Once;

#[cfg(not(test))]
use napi_derive::module_init;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook once per process (the addon's load runs it).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let own_thread = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("happen-"));
            if own_thread {
                return default(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic with a non-string payload");
            let at = info
                .location()
                .map(|l| format!(" (at {}:{}:{})", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            // The hook must not panic itself: a thread being torn down may have no locals.
            let _ = LAST.try_with(|last| *last.borrow_mut() = Some(format!("{message}{at}")));
        }));
    });
}

/// The last panic caught on this thread, message and location; taken, so it is told once.
pub fn take_last() -> Option<String> {
    LAST.try_with(|last| last.borrow_mut().take())
        .ok()
        .flatten()
}

#[cfg(not(test))]
#[module_init]
fn quiet_panics_on_load() {
    install();
}
