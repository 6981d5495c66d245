#![deny(clippy::all)]

pub mod core;
mod binding;
mod nats;
