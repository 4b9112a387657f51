//! loadgen: drives TCP connections at any listener and measures what the client sees.
//!
//! Owns client-side measurement (connect latency, outcomes by kind, per-connection
//! records) and its report type. Knows nothing about acceptbench's engines.
//!
//! Layout: `cli` (clap flags) → `config` (validated `Config`) → `run` (threads, rounds,
//! merge) → `worker` (the one loop) with `pacer` (closed/rate/burst) and `driver`
//! (io_uring/epoll/blocking); `stats` per thread; `report`, `output` and `record` turn
//! the data into JSON, text, histogram files and per-connection records; `app` is the
//! command-line edge.

mod app;
pub mod cli;
pub mod config;
mod counters;
mod driver;
pub mod error;
pub mod output;
mod pacer;
pub mod protocol;
pub mod record;
pub mod report;
pub mod run;
mod sock;
pub mod sources;
mod worker;

/// CPU pinning and thread CPU time, shared with the acceptor (the `acceptbench-common` crate).
pub use common::affinity;
/// The monotonic clock both sides stamp with (the `acceptbench-common` crate).
pub use common::clock;

pub use app::{cli_main, EXIT_DRIVER_GONE};
pub use config::{CloseMode, Config, MethodChoice, Mode, Output, RingSetup, SocketOps};
pub use driver::Method;
pub use error::LoadgenError;
pub use record::{
    read_records, read_records_file, read_records_from, write_records, ConnRecord, Outcome,
    RecordMeta, RecordsFile, Serve,
};
pub use report::{ErrorCounts, Percentiles, Report, RoundSummary, ServeCounts};
pub use run::{run, run_with, Observer, Progress, Quiet, RunOutput};
pub use worker::RoundCmd;
