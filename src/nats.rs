//! The NATS transport's wire side: one async-nats connection per runtime on a small tokio
//! runtime shared by the process, driven from JS through a handful of free functions.
//!
//! JS -> Rust: every call pushes a `Command` on an unbounded channel that one task per
//! connection (the pump) executes in order, so a subscription is always sent to the server
//! before a later publish, and JS never blocks.
//!
//! Rust -> JS: every inbound message (requests for local nodes, replies for this runtime's
//! remote branches, connection events) is appended to one queue as five strings
//! (`kind, subject, reply, header, body`). The first push into an empty queue wakes JS with a
//! weak (unref'd) threadsafe function; JS then takes the whole queue with `nats_drain`, so many
//! deliveries cross per call when they queue up, and an idle connection never keeps the Node
//! event loop alive.
//!
//! The headers hold happen's causal context (`happen-causal`, JSON); bodies are JSON text made
//! by the JS layer. Nothing here interprets either: the JS transport (lib/transports/nats/) does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::core::slab::Slab;
use async_nats::{Client, ConnectOptions, Event, HeaderMap, PublishErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Error, Result, Status};
use napi_derive::napi;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

/// The header that carries an event's causal context across the wire.
const CAUSAL_HEADER: &str = "happen-causal";

/// Fields per queued inbound entry: kind, subject, reply, header, body.
pub const ENTRY_FIELDS: usize = 5;

fn coded(code: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {message}"))
}

/// One tokio runtime for every connection of the process, on one thread of its own: socket
/// I/O needs no more, and the JS thread keeps the other core. A current-thread scheduler, as
/// a multi-thread one with a single worker spends more per wake-up (its injection queue and
/// upkeep) for stealing that one worker never does.
fn runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the NATS transport could not start its tokio runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("happen-nats".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("the NATS transport could not start its thread");
        handle
    })
}

/// Calls the JS `wake` function with no arguments; weak, so it never holds the event loop.
type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

/// What the connection's tasks hand to JS.
struct Inbound {
    queue: Mutex<Vec<String>>,
    /// Set while a wake-up is on its way to JS; cleared by `nats_drain` before it takes the queue.
    scheduled: AtomicBool,
    wake: Wake,
}

impl Inbound {
    fn push(&self, kind: &str, subject: String, reply: String, header: String, body: String) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.reserve(ENTRY_FIELDS);
            queue.push(kind.to_string());
            queue.push(subject);
            queue.push(reply);
            queue.push(header);
            queue.push(body);
        }
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn status(&self, event: &str, detail: String) {
        self.push("s", event.to_string(), String::new(), String::new(), detail);
    }
}

enum Command {
    Subscribe {
        sid: u32,
        subject: String,
        kind: &'static str,
    },
    Unsubscribe {
        sid: u32,
    },
    /// Messages, four strings each (see `nats_send`).
    Send(Vec<String>),
    /// Reports `("s", "flushed", token)` once everything before it reached the server.
    Flush {
        token: String,
    },
    Close,
}

struct Connection {
    commands: UnboundedSender<Command>,
    inbound: Arc<Inbound>,
    next_sid: u32,
}

thread_local! {
    static CONNECTIONS: RefCell<Slab<Connection>> = const { RefCell::new(Slab::new()) };
}

fn with_connection<T>(handle: u32, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
    CONNECTIONS.with_borrow_mut(|all| match all.get_mut(handle) {
        Some(c) => f(c),
        None => Err(coded("SHUTDOWN", "this NATS connection has been closed")),
    })
}

fn send(handle: u32, command: Command) -> Result<()> {
    with_connection(handle, |c| {
        c.commands
            .send(command)
            .map_err(|_| coded("TRANSPORT_CLOSED", "the NATS connection has ended"))
    })
}

/// Connection settings, as `initializeHappen({ transport: { type: 'nats', … } })` gives them.
#[napi(object)]
pub struct NatsConnectOptions {
    pub servers: Vec<String>,
    /// Client name shown by the server's monitoring.
    pub name: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
    /// An nkey seed.
    pub nkey: Option<String>,
    /// A `.creds` file (JWT + nkey seed).
    pub credentials_file: Option<String>,
    /// Require TLS even when the server does not ask for it.
    pub tls: Option<bool>,
    /// PEM file of the CA that signed the server's certificate.
    pub tls_ca_file: Option<String>,
    /// PEM client certificate and key, for servers that verify clients.
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// How long the first connection may take, in ms (default 2000).
    pub connect_timeout: Option<u32>,
    /// Reconnect attempts after a lost connection; none given: forever.
    pub max_reconnects: Option<u32>,
}

/// Opens a connection in the background and returns its handle at once. `wake` is called
/// (with no arguments) whenever `nats_drain` has something; the connection's outcome arrives
/// that way as `s connected` or `s failed <message>`.
#[napi(catch_unwind)]
pub fn nats_connect(options: NatsConnectOptions, wake: Function<(), ()>) -> Result<u32> {
    let wake: Wake = wake
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .build()?;
    let inbound = Arc::new(Inbound {
        queue: Mutex::new(Vec::new()),
        scheduled: AtomicBool::new(false),
        wake,
    });
    let (commands, receiver) = unbounded_channel();
    runtime().spawn(pump(options, receiver, inbound.clone()));
    let connection = Connection {
        commands,
        inbound,
        next_sid: 1,
    };
    Ok(CONNECTIONS.with_borrow_mut(|all| all.insert(connection)))
}

async fn connect(
    options: &NatsConnectOptions,
    inbound: &Arc<Inbound>,
) -> std::result::Result<Client, String> {
    let mut connect = ConnectOptions::new();
    if let Some(path) = &options.credentials_file {
        connect = connect
            .credentials_file(path)
            .await
            .map_err(|e| format!("cannot read the credentials file '{path}': {e}"))?;
    }
    if let (Some(user), Some(pass)) = (&options.user, &options.pass) {
        connect = connect.user_and_password(user.clone(), pass.clone());
    }
    if let Some(token) = &options.token {
        connect = connect.token(token.clone());
    }
    if let Some(seed) = &options.nkey {
        connect = connect.nkey(seed.clone());
    }
    if options.tls == Some(true) {
        connect = connect.require_tls(true);
    }
    if let Some(ca) = &options.tls_ca_file {
        connect = connect.add_root_certificates(PathBuf::from(ca));
    }
    if let (Some(cert), Some(key)) = (&options.tls_cert_file, &options.tls_key_file) {
        connect = connect.add_client_certificate(PathBuf::from(cert), PathBuf::from(key));
    }
    if let Some(name) = &options.name {
        connect = connect.name(name);
    }
    if let Some(n) = options.max_reconnects {
        connect = connect.max_reconnects(n as usize);
    } else {
        connect = connect.max_reconnects(None);
    }
    // Reconnect quickly: a restarted server is back within a second or two.
    connect = connect.reconnect_delay_callback(|attempts| {
        Duration::from_millis((attempts as u64 * 100).min(1_000))
    });
    let timeout = Duration::from_millis(options.connect_timeout.unwrap_or(2_000).max(1) as u64);
    connect = connect.connection_timeout(timeout);
    let events = inbound.clone();
    connect = connect.event_callback(move |event| {
        let events = events.clone();
        async move {
            match event {
                Event::Connected => events.status("reconnected", String::new()),
                Event::Disconnected => events.status("disconnected", String::new()),
                Event::Closed => events.status("closed", String::new()),
                Event::ServerError(async_nats::ServerError::Other(text)) => match denial(&text) {
                    Some(denied) => events.status("denied", denied),
                    None => events.status("event", format!("nats: {text}")),
                },
                other => events.status("event", other.to_string()),
            }
        }
    });
    let servers = options.servers.join(", ");
    // The client's own timeout covers each attempt; this bounds the whole first connection.
    match tokio::time::timeout(
        timeout + Duration::from_millis(500),
        connect.connect(options.servers.clone()),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("cannot connect to NATS at {servers}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to NATS at {servers}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// A permission the server refused (`-ERR 'Permissions Violation for Publish to "a.b"'`, or
/// `for Subscription to "a.b"`, maybe followed by ` using queue "q"`), as `publish a.b` or
/// `subscribe a.b`; None for any other server error.
fn denial(text: &str) -> Option<String> {
    let rest = text.strip_prefix("Permissions Violation for ")?;
    let (operation, rest) = if let Some(rest) = rest.strip_prefix("Publish to \"") {
        ("publish", rest)
    } else {
        ("subscribe", rest.strip_prefix("Subscription to \"")?)
    };
    let subject = &rest[..rest.find('"')?];
    Some(format!("{operation} {subject}"))
}

/// Runs one connection: connects, then executes commands in order until `Close`.
async fn pump(
    options: NatsConnectOptions,
    mut commands: UnboundedReceiver<Command>,
    inbound: Arc<Inbound>,
) {
    let client = match connect(&options, &inbound).await {
        Ok(client) => client,
        Err(message) => {
            inbound.status("failed", message);
            return;
        }
    };
    // The detail is the server's largest message, so JS can refuse bigger sends up front.
    inbound.status("connected", client.server_info().max_payload.to_string());
    let mut subscriptions: HashMap<u32, JoinHandle<()>> = HashMap::new();
    while let Some(command) = commands.recv().await {
        match command {
            Command::Subscribe { sid, subject, kind } => match client
                .subscribe(subject.clone())
                .await
            {
                Ok(mut subscriber) => {
                    let inbound = inbound.clone();
                    let task = tokio::spawn(async move {
                        while let Some(m) = subscriber.next().await {
                            let header = match (&m.status, &m.headers) {
                                // No subscriber for a request's subject: the server answers 503.
                                (Some(status), _) if status.as_u16() >= 300 => {
                                    format!("status:{}", status.as_u16())
                                }
                                (_, Some(headers)) => headers
                                    .get(CAUSAL_HEADER)
                                    .map(|v| v.as_str().to_string())
                                    .unwrap_or_default(),
                                _ => String::new(),
                            };
                            let reply = m.reply.map(|r| r.to_string()).unwrap_or_default();
                            let body = String::from_utf8(m.payload.to_vec()).unwrap_or_else(|e| {
                                String::from_utf8_lossy(e.as_bytes()).into_owned()
                            });
                            inbound.push(kind, m.subject.to_string(), reply, header, body);
                        }
                    });
                    subscriptions.insert(sid, task);
                }
                Err(e) => inbound.status("error", format!("cannot subscribe to '{subject}': {e}")),
            },
            Command::Unsubscribe { sid } => {
                if let Some(task) = subscriptions.remove(&sid) {
                    // Dropping the subscriber (with its task) unsubscribes at the server.
                    task.abort();
                }
            }
            Command::Send(entries) => {
                let mut body = Bytes::new();
                for m in entries.chunks_exact(4) {
                    // "\0": the body of the message before (a fan-out sends one body to many).
                    if m[3] != "\0" {
                        body = Bytes::copy_from_slice(m[3].as_bytes());
                    }
                    let headers = (!m[2].is_empty()).then(|| {
                        let mut h = HeaderMap::new();
                        h.insert(CAUSAL_HEADER, m[2].as_str());
                        h
                    });
                    let subject = m[0].clone();
                    let sent = match (m[1].is_empty(), headers) {
                        (true, None) => client.publish(subject, body.clone()).await,
                        (true, Some(h)) => {
                            client.publish_with_headers(subject, h, body.clone()).await
                        }
                        (false, None) => {
                            client
                                .publish_with_reply(subject, m[1].clone(), body.clone())
                                .await
                        }
                        (false, Some(h)) => {
                            client
                                .publish_with_reply_and_headers(
                                    subject,
                                    m[1].clone(),
                                    h,
                                    body.clone(),
                                )
                                .await
                        }
                    };
                    if let Err(e) = sent {
                        // Handed back whole, so JS can resend it or fail the entries it carried.
                        let code = match e.kind() {
                            PublishErrorKind::MaxPayloadExceeded => "PAYLOAD_TOO_LARGE",
                            PublishErrorKind::InvalidSubject => "INTERNAL",
                            PublishErrorKind::Send => "CONNECTION_FAILED",
                        };
                        inbound.push(
                            "e",
                            m[0].clone(),
                            m[1].clone(),
                            format!("{code} {e}"),
                            String::from_utf8_lossy(&body).into_owned(),
                        );
                    }
                }
            }
            Command::Flush { token } => {
                // Flushing waits for the server, so it runs beside the pump, not in its way.
                let client = client.clone();
                let inbound = inbound.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), client.flush()).await {
                        Ok(Ok(())) => {
                            // What the server refused before its answer to the flush (a
                            // subscription's denial) reaches JS first: the connection hands
                            // server errors to the event task, which runs in these turns.
                            for _ in 0..4 {
                                tokio::task::yield_now().await;
                            }
                            inbound.status("flushed", token)
                        }
                        Ok(Err(e)) => inbound.status("flush-failed", format!("{token} {e}")),
                        Err(_) => inbound.status(
                            "flush-failed",
                            format!("{token} no answer from the server within 10 s"),
                        ),
                    }
                });
            }
            Command::Close => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
    for (_, task) in subscriptions.drain() {
        task.abort();
    }
    // Dropping the last client ends the connection.
    drop(client);
}

/// Subscribes to `subject`; its messages are queued with `kind` as their first field.
#[napi(catch_unwind)]
pub fn nats_subscribe(handle: u32, subject: String, kind: String) -> Result<u32> {
    let kind: &'static str = match kind.as_str() {
        "q" => "q",
        "r" => "r",
        "p" => "p",
        "f" => "f",
        _ => "m",
    };
    let sid = with_connection(handle, |c| {
        c.next_sid += 1;
        Ok(c.next_sid)
    })?;
    send(handle, Command::Subscribe { sid, subject, kind })?;
    Ok(sid)
}

#[napi(catch_unwind)]
pub fn nats_unsubscribe(handle: u32, sid: u32) -> Result<()> {
    send(handle, Command::Unsubscribe { sid })
}

/// Publishes messages, four strings each: subject, reply subject (empty: none), causal header
/// (empty: none), body (`"\0"`: the previous message's body again). The JS layer gathers
/// what one turn of its event loop sends into one call: one crossing, one wake-up of the pump.
#[napi(catch_unwind)]
pub fn nats_send(handle: u32, entries: Vec<String>) -> Result<()> {
    if !entries.len().is_multiple_of(4) {
        return Err(coded(
            "INTERNAL",
            "nats_send takes four strings per message",
        ));
    }
    send(handle, Command::Send(entries))
}

/// Asks for `s flushed <token>` once everything sent so far has reached the server.
#[napi(catch_unwind)]
pub fn nats_flush(handle: u32, token: String) -> Result<()> {
    send(handle, Command::Flush { token })
}

/// Everything queued since the last call, five strings per entry:
/// `kind` (`q` request, `f` frame of requests, `r` reply, `p` presence, `s` status, `e` a message
/// that could not be published), subject, reply subject, header (causal JSON, `status:<code>`,
/// or for `e` the happen error code and the reason, space-separated), body.
#[napi(catch_unwind)]
pub fn nats_drain(handle: u32) -> Result<Vec<String>> {
    with_connection(handle, |c| {
        c.inbound.scheduled.store(false, Ordering::Release);
        let mut queue = c.inbound.queue.lock().unwrap_or_else(|e| e.into_inner());
        Ok(std::mem::take(&mut *queue))
    })
}

/// Flushes and closes the connection; its handle is free afterwards.
#[napi(catch_unwind)]
pub fn nats_close(handle: u32) -> Result<()> {
    let connection = CONNECTIONS.with_borrow_mut(|all| all.remove(handle));
    if let Some(c) = connection {
        let _ = c.commands.send(Command::Close);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::denial;

    #[test]
    fn a_permission_violation_names_the_operation_and_subject() {
        assert_eq!(
            denial(r#"Permissions Violation for Publish to "happen.rt.a.b""#).as_deref(),
            Some("publish happen.rt.a.b")
        );
        assert_eq!(
            denial(r#"Permissions Violation for Subscription to "happen.node.x" using queue "q""#)
                .as_deref(),
            Some("subscribe happen.node.x")
        );
        assert_eq!(denial("Maximum Connections Exceeded"), None);
        assert_eq!(
            denial(r#"Permissions Violation for Publish to "unterminated"#),
            None
        );
    }
}
