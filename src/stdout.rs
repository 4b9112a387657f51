//! Writing results to standard output without panicking when the reader went away.
//!
//! `println!` panics when stdout is a closed pipe (`acceptbench compare A B | head -1`):
//! Rust ignores SIGPIPE, so the write fails with EPIPE instead of ending the process.
//! Commands print through [`print`], which returns that error; `main` recognises it
//! with [`is_broken_pipe`] and exits quietly with status 0, as `head` expects. SIGPIPE
//! stays ignored on purpose: a sweep's sockets and children must not die of it.

use std::fmt;
use std::io::{self, Write};

/// Writes `text` to stdout and flushes it; fails with `BrokenPipe` when the reader
/// closed the pipe.
pub fn print(text: impl fmt::Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    write!(out, "{text}")?;
    out.flush()
}

/// [`print`] followed by a newline.
pub fn println(text: impl fmt::Display) -> io::Result<()> {
    print(format_args!("{text}\n"))
}

/// True when `err` (or anything in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
