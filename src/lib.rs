#![deny(clippy::all)]

pub mod core;
#[cfg_attr(test, allow(dead_code))]
mod binding;
mod nats;
