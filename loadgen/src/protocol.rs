//! The line protocols between loadgen and whoever drives it (acceptbench's sweep):
//! both ends use this module, so the words exist once.
//!
//! Drain rounds (`--mode burst --sync-stdio`): after each burst round loadgen writes
//! one [`RoundLine`] on stdout, then waits for a [`Reply`] line on stdin: `next` runs
//! another round, `stop` ends the run (and so does end of input). Other stdout lines
//! (the final JSON report) are not round lines.
//!
//! A remote start (`--remote`, loadgen on another host over ssh): loadgen writes a
//! [`Ready`] line (`ready pid <PID>`) once it is set up and waits for [`GO`]; while it
//! runs, a [`Reply::Stop`] line or the end of stdin (the ssh session is gone) stops it,
//! and it reports as usual.

use std::fmt;

/// `round <i> established <n> pending <p>`: one finished burst round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundLine {
    /// Round index, from 0.
    pub round: u32,
    /// Connections established this round (they sit in the accept queue).
    pub established: u64,
    /// Connects still unresolved when the round's wait ended.
    pub pending: u64,
}

impl RoundLine {
    /// Parses a round line; `None` for any other line.
    pub fn parse(line: &str) -> Option<RoundLine> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["round", round, "established", established, "pending", pending] = words[..] else {
            return None;
        };
        Some(RoundLine {
            round: round.parse().ok()?,
            established: established.parse().ok()?,
            pending: pending.parse().ok()?,
        })
    }
}

impl fmt::Display for RoundLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round {} established {} pending {}",
            self.round, self.established, self.pending
        )
    }
}

/// The driver's answer to a round line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Run another round.
    Next,
    /// End the run (loadgen reports and exits).
    Stop,
}

impl Reply {
    /// The word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            Reply::Next => "next",
            Reply::Stop => "stop",
        }
    }

    /// Parses a reply line (surrounding white space ignored); `None` for anything else.
    pub fn parse(line: &str) -> Option<Reply> {
        match line.trim() {
            "next" => Some(Reply::Next),
            "stop" => Some(Reply::Stop),
            _ => None,
        }
    }
}

/// The word that starts a remote loadgen.
pub const GO: &str = "go";

/// `ready pid <PID>`: a remote loadgen is set up and waits for [`GO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The loadgen process's id on its host (to check, over ssh, that it is gone).
    pub pid: u32,
}

impl Ready {
    /// Parses a ready line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Ready> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["ready", "pid", pid] = words[..] else {
            return None;
        };
        Some(Ready {
            pid: pid.parse().ok()?,
        })
    }
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ready pid {}", self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_round_trip() {
        let r = Ready { pid: 4242 };
        assert_eq!(Ready::parse(&r.to_string()), Some(r));
        assert_eq!(Ready::parse("ready pid x"), None);
        assert_eq!(Ready::parse("round 1 established 2 pending 3"), None);
    }

    #[test]
    fn round_lines_round_trip() {
        let r = RoundLine {
            round: 3,
            established: 17,
            pending: 2,
        };
        assert_eq!(r.to_string(), "round 3 established 17 pending 2");
        assert_eq!(RoundLine::parse(&r.to_string()), Some(r));
    }

    #[test]
    fn other_lines_are_not_round_lines() {
        for line in [
            "{\"mode\":\"burst\"}",
            "round x",
            "round 1 established 2",
            "round 1 established 2 pending 3 extra",
            "round -1 established 2 pending 3",
            "",
        ] {
            assert_eq!(RoundLine::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn replies() {
        for r in [Reply::Next, Reply::Stop] {
            assert_eq!(Reply::parse(&format!(" {}\n", r.word())), Some(r));
        }
        assert_eq!(Reply::parse("again"), None);
    }

    #[test]
    fn a_hundred_thousand_mangled_lines_parse_or_are_refused_without_panicking() {
        let words = [
            "round",
            "established",
            "pending",
            "next",
            "stop",
            "0",
            "1",
            "-1",
            "18446744073709551616",
            "4294967295",
            "4294967296",
            "x",
            "",
            "\u{ff}",
            "\n",
            "\t",
            "{",
            "}",
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..100_000 {
            // A valid line, then up to two words replaced and maybe cut short.
            let mut line = vec!["round", "3", "established", "17", "pending", "0"];
            for _ in 0..rand() % 3 {
                let at = (rand() % 6) as usize;
                line[at] = words[(rand() % words.len() as u64) as usize];
            }
            line.truncate(6 - (rand() % 4 / 3) as usize);
            let sep = if rand() % 2 == 0 { " " } else { "  " };
            let line = line.join(sep);
            if let Some(r) = RoundLine::parse(&line) {
                parsed += 1;
                assert_eq!(RoundLine::parse(&r.to_string()), Some(r));
            }
            let _ = Reply::parse(&line);
        }
        assert!(parsed > 0, "the generator never made a valid line");
    }
}
