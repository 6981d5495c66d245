#![deny(clippy::all)]

#[cfg_attr(test, allow(dead_code))]
mod binding;
pub mod core;
#[cfg_attr(test, allow(dead_code))]
mod nats;
#[cfg_attr(test, allow(dead_code))]
mod panic;
#[cfg_attr(test, allow(dead_code))]
mod threads;
