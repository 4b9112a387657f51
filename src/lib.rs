//! acceptbench: measures how Linux accepts TCP connections.
//!
//! Layers: [`cli`] (clap structs) → [`config`] (validated) → [`app`] (one function
//! per command) → engines, listener, kernel facts, sweep and reporters.

pub mod acceptors;
pub mod app;
pub mod cli;
pub mod compare;
pub mod config;
pub mod engine;
pub mod external;
pub mod hostjoin;
pub mod join;
pub mod kernel;
pub mod kinds;
pub mod listener;
pub mod merge;
pub mod overflow;
pub mod parse;
pub mod peer;
pub mod plot;
pub mod record;
pub mod report;
pub mod serverrec;
pub mod signal;
pub mod sshhost;
pub mod stall;
pub use common::sockcmd;
pub mod stats;
pub mod stdout;
pub mod summary;
pub mod sweep;
pub mod timing;
