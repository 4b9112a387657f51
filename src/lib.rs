//! acceptbench: measures how Linux accepts TCP connections.

pub mod engine;
pub mod kernel;
pub mod listener;
pub mod record;
