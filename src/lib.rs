#![deny(clippy::all)]

#[cfg_attr(test, allow(dead_code))]
mod binding;
pub mod core;
mod handles;
#[cfg_attr(test, allow(dead_code))]
mod nats;
