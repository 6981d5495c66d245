#![deny(clippy::all)]

pub mod core;
mod handles;
#[cfg_attr(test, allow(dead_code))]
mod binding;
#[cfg_attr(test, allow(dead_code))]
mod nats;
