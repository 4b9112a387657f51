//! The kernel's own account of connections, from its stable TCP tracepoints: tracefs
//! (mounted if absent, unmounted by its last user), the tracepoints' records decoded by
//! field name from their `format` files, per-CPU perf rings that record them, and the
//! join of client sockets and server children into one account per connection; the
//! per-connection timeline as CSV, and one command's recording and view of it.
//!
//! Here rather than in acceptbench so that `acceptbench listen`, the sweep and the
//! `loadgen` binary record and account the same way.

pub mod account;
pub mod decode;
pub mod timeline;
pub mod trace;
pub mod tracefs;
pub mod view;
