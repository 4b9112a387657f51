//! loadgen: drives TCP connections at any listener and measures what the client sees.
//!
//! Owns client-side measurement (connect latency, outcomes by kind, per-connection
//! records) and its report type. Knows nothing about acceptbench's engines.

pub mod affinity;
pub mod clock;
