//! The pieces both sides of a measurement share, so that they exist once and agree:
//! the acceptor (`acceptbench`) and the connecting side (`loadgen`, possibly another
//! process) stamp events with the same clock, pin threads and read thread CPU time the
//! same way, decode socket addresses identically (the sweep's join compares a peer
//! the acceptor decoded with a local address loadgen decoded), and build histograms
//! with the same bounds and read the same percentiles, and set io_uring rings up
//! with the same flags and build the same socket-command SQEs, and write the same
//! records-file header.
//!
//! Nothing here measures, formats or knows about engines or load patterns.

pub mod affinity;
pub mod clock;
pub mod hist;
pub mod ktrace;
pub mod record_header;
pub mod ring;
pub mod sockaddr;
pub mod sockcmd;
pub mod testskip;
