//! The plain names a user picks from on the command line — sweep modes and compare
//! output formats — as data, free of clap: `cli` lists them for `--help`, `config`
//! and the rest use them. (They sit apart so that `cli` and `config` need not import
//! each other.)

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A sweep mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// loadgen closed loop at maximum rate.
    Closed,
    /// loadgen open loop at a fixed rate.
    Rate,
    /// Acceptor paused while loadgen fills the queue, then it drains back to back.
    Drain,
    /// A burst of connects against a paused acceptor, then the acceptor drains (overflow study).
    Burst,
    /// Open-loop rate above a deliberately slowed acceptor's capacity (overflow study).
    Overload,
    /// Clients keep arriving while the acceptor stops for a while, then resumes: what
    /// they see, and how long until the server is back to normal.
    Stall,
}

impl Mode {
    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::Rate => "rate",
            Mode::Drain => "drain",
            Mode::Burst => "burst",
            Mode::Overload => "overload",
            Mode::Stall => "stall",
        }
    }

    /// Overflow modes sample the accept queue and the TcpExt counters, in a private
    /// network namespace when running as root.
    pub fn is_overflow(self) -> bool {
        matches!(self, Mode::Burst | Mode::Overload | Mode::Stall)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "closed" => Ok(Mode::Closed),
            "rate" => Ok(Mode::Rate),
            "drain" => Ok(Mode::Drain),
            "burst" => Ok(Mode::Burst),
            "overload" => Ok(Mode::Overload),
            "stall" => Ok(Mode::Stall),
            _ => Err("use closed, rate, drain, burst, overload or stall".into()),
        }
    }
}

/// The clients of a stall run (`--stall-load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StallLoad {
    /// Open loop at this many connections per second (no coordinated omission).
    Rate(u64),
    /// Closed loop with this many connects in flight.
    Closed(u32),
}

impl fmt::Display for StallLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StallLoad::Rate(n) => write!(f, "rate:{n}"),
            StallLoad::Closed(c) => write!(f, "closed:{c}"),
        }
    }
}

impl FromStr for StallLoad {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "use rate:N (open loop, N connections per second, 1 to 1000000) or closed:C (closed loop, C connects in flight, 1 to 4096), e.g. rate:1000";
        let (kind, n) = s.split_once(':').unwrap_or(("rate", s));
        let n: u64 = n.trim().parse().map_err(|_| usage.to_string())?;
        match kind.trim() {
            "rate" if (1..=1_000_000).contains(&n) => Ok(StallLoad::Rate(n)),
            "closed" if (1..=4096).contains(&n) => Ok(StallLoad::Closed(n as u32)),
            _ => Err(usage.into()),
        }
    }
}

/// How `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    /// Aligned text for a terminal.
    Text,
    /// A Markdown table (for a run's README).
    Markdown,
    /// CSV for scripts.
    Csv,
}
