//! Per-connection records and their file format, for joining with the server's records.
//!
//! The same file family carries the acceptor's records (`acceptbench listen --records`,
//! magic `b"ABSERVER"`, its own record layout); the header below is shared.
//!
//! The file header (magic, version, clock anchors, host, run id) is
//! [`common::record_header`]'s, shared with the acceptor's records.
//!
//! Record layout (loadgen, 56 bytes, both versions; 64 bytes when the run waited for
//! the server's action, `--wait-close`, the header's record size says which):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | family: 4 or 6 |
//! | 1 | 1 | outcome code (see `Outcome::code`) |
//! | 2 | 1 | flags: bit 0 = warm-up connection |
//! | 3 | 1 | what the server did (see `Serve::code`; 0 in 56-byte records) |
//! | 4 | 2 | local port |
//! | 6 | 2 | reserved (0) |
//! | 8 | 4 | errno for `Other` (i32), else 0 |
//! | 12 | 4 | burst round (0-based; 0 outside burst mode) |
//! | 16 | 16 | local IP (IPv4 in the first 4 bytes, network order) |
//! | 32 | 8 | intended start, CLOCK_MONOTONIC ns |
//! | 40 | 8 | connect() called, CLOCK_MONOTONIC ns |
//! | 48 | 8 | outcome known, CLOCK_MONOTONIC ns |
//! | 56 | 8 | 64-byte records: served (the server's first byte or close), CLOCK_MONOTONIC ns, 0 if not served |

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::Path;

pub use common::record_header::{
    ip_bytes, ip_from, open_records, read_header, read_header_sized, realtime_ns, write_header,
    Header, RecordMeta, HEADER_SIZE, MAGIC, OLDEST_VERSION, SERVER_MAGIC, VERSION,
};

/// Size of one loadgen record in bytes.
pub const RECORD_SIZE: usize = 56;
/// Size of one record of a run that waited for the server's action (`--wait-close`).
pub const SERVE_RECORD_SIZE: usize = 64;

/// What the server did with an established connection, as the client saw it
/// (`--wait-close`). The client cannot see the accept itself: a server that accepts and
/// then does nothing by the deadline looks the same as one that never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Serve {
    /// Not waited for: no `--wait-close`, or the connect did not establish.
    #[default]
    NotWaited,
    /// Served: the server's first byte (answer) or its close arrived at this
    /// CLOCK_MONOTONIC ns.
    Served(u64),
    /// Client-only: established, and neither answer nor close nor reset by the deadline.
    ClientOnly,
    /// Reset (or another socket error) before any answer or close.
    Reset,
    /// The run was stopped before the answer and before the deadline.
    Unresolved,
}

impl Serve {
    /// Code stored in the record file (byte 3).
    pub fn code(&self) -> u8 {
        match self {
            Serve::NotWaited => 0,
            Serve::Served(_) => 1,
            Serve::ClientOnly => 2,
            Serve::Reset => 3,
            Serve::Unresolved => 4,
        }
    }

    fn from_code(code: u8, served_ns: u64) -> Option<Serve> {
        Some(match code {
            0 => Serve::NotWaited,
            1 => Serve::Served(served_ns),
            2 => Serve::ClientOnly,
            3 => Serve::Reset,
            4 => Serve::Unresolved,
            _ => return None,
        })
    }
}

/// How a connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// connect() succeeded.
    Established,
    /// ECONNREFUSED: nothing listens (or the listener refused).
    Refused,
    /// ECONNRESET: the server reset the connection during the handshake.
    Reset,
    /// No outcome within --connect-timeout (or ETIMEDOUT from the kernel).
    Timeout,
    /// EADDRNOTAVAIL/EADDRINUSE: no local port or address left.
    AddrUnavailable,
    /// Any other errno.
    Other(i32),
    /// Burst mode: still unresolved (SYN_SENT) when the round's wait ended.
    Pending,
}

impl Outcome {
    /// Classifies a positive errno from socket()/bind()/connect().
    pub fn from_errno(errno: i32) -> Outcome {
        match errno {
            libc::ECONNREFUSED => Outcome::Refused,
            libc::ECONNRESET => Outcome::Reset,
            libc::ETIMEDOUT => Outcome::Timeout,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => Outcome::AddrUnavailable,
            e => Outcome::Other(e),
        }
    }

    /// Code stored in the record file.
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Established => 0,
            Outcome::Refused => 1,
            Outcome::Reset => 2,
            Outcome::Timeout => 3,
            Outcome::AddrUnavailable => 4,
            Outcome::Other(_) => 5,
            Outcome::Pending => 6,
        }
    }

    fn from_code(code: u8, errno: i32) -> Option<Outcome> {
        Some(match code {
            0 => Outcome::Established,
            1 => Outcome::Refused,
            2 => Outcome::Reset,
            3 => Outcome::Timeout,
            4 => Outcome::AddrUnavailable,
            5 => Outcome::Other(errno),
            6 => Outcome::Pending,
            _ => return None,
        })
    }
}

/// What the client saw of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord {
    /// Local address (IP and port) of the connection; unspecified:0 if the socket never got one.
    pub local: SocketAddr,
    /// When the pacer meant the connect to start (closed/burst: equals `connect_start_ns`), ns.
    pub intended_ns: u64,
    /// When connect() was issued, CLOCK_MONOTONIC ns.
    pub connect_start_ns: u64,
    /// When the outcome was known, CLOCK_MONOTONIC ns.
    pub done_ns: u64,
    /// How the attempt ended.
    pub outcome: Outcome,
    /// Made during --warmup (not counted in the report).
    pub warmup: bool,
    /// Burst round (0-based); 0 outside burst mode.
    pub round: u32,
    /// What the server did with it (`--wait-close`).
    pub serve: Serve,
}

impl ConnRecord {
    /// Encodes into `out`: 56 bytes, or 64 with the served stamp.
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        let (family, ip) = ip_bytes(self.local.ip());
        out[0] = family;
        out[1] = self.outcome.code();
        out[2] = u8::from(self.warmup);
        out[4..6].copy_from_slice(&self.local.port().to_le_bytes());
        let errno = if let Outcome::Other(e) = self.outcome {
            e
        } else {
            0
        };
        out[8..12].copy_from_slice(&errno.to_le_bytes());
        out[12..16].copy_from_slice(&self.round.to_le_bytes());
        out[16..32].copy_from_slice(&ip);
        out[32..40].copy_from_slice(&self.intended_ns.to_le_bytes());
        out[40..48].copy_from_slice(&self.connect_start_ns.to_le_bytes());
        out[48..56].copy_from_slice(&self.done_ns.to_le_bytes());
        if out.len() >= SERVE_RECORD_SIZE {
            out[3] = self.serve.code();
            if let Serve::Served(t) = self.serve {
                out[56..64].copy_from_slice(&t.to_le_bytes());
            }
        }
    }

    /// Decodes a 56- or 64-byte record.
    fn decode(b: &[u8]) -> io::Result<ConnRecord> {
        let u64_at = |o: usize| {
            u64::from_le_bytes([
                b[o],
                b[o + 1],
                b[o + 2],
                b[o + 3],
                b[o + 4],
                b[o + 5],
                b[o + 6],
                b[o + 7],
            ])
        };
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let port = u16::from_le_bytes([b[4], b[5]]);
        let mut ip16 = [0u8; 16];
        ip16.copy_from_slice(&b[16..32]);
        let ip = ip_from(b[0], ip16)?;
        let outcome = Outcome::from_code(b[1], u32_at(8) as i32)
            .ok_or_else(|| invalid(format!("record has unknown outcome code {}", b[1])))?;
        let serve = if b.len() >= SERVE_RECORD_SIZE {
            Serve::from_code(b[3], u64_at(56))
                .ok_or_else(|| invalid(format!("record has unknown serve code {}", b[3])))?
        } else {
            Serve::NotWaited
        };
        Ok(ConnRecord {
            local: SocketAddr::new(ip, port),
            intended_ns: u64_at(32),
            connect_start_ns: u64_at(40),
            done_ns: u64_at(48),
            outcome,
            warmup: b[2] & 1 != 0,
            round: u32_at(12),
            serve,
        })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Writes records to `path` in the format described in the module docs: 64-byte
/// records if any says what the server did, else 56-byte ones.
pub fn write_records(
    path: impl AsRef<Path>,
    meta: &RecordMeta,
    records: &[ConnRecord],
) -> io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    let size = if records.iter().any(|r| r.serve != Serve::NotWaited) {
        SERVE_RECORD_SIZE
    } else {
        RECORD_SIZE
    };
    write_header(&mut w, &MAGIC, size, records.len() as u64, meta)?;
    let mut buf = [0u8; SERVE_RECORD_SIZE];
    for r in records {
        r.encode(&mut buf[..size]);
        w.write_all(&buf[..size])?;
    }
    w.flush()
}

/// A loadgen records file as read.
#[derive(Debug, Clone)]
pub struct RecordsFile {
    /// Its header.
    pub header: Header,
    /// Its records, in file order.
    pub records: Vec<ConnRecord>,
}

/// Reads a file written by `write_records` (version 1 or 2); errors name the file,
/// and the record where there is one.
pub fn read_records(path: impl AsRef<Path>) -> io::Result<Vec<ConnRecord>> {
    read_records_file(path).map(|f| f.records)
}

/// Reads a file written by `write_records`, header included.
pub fn read_records_file(path: impl AsRef<Path>) -> io::Result<RecordsFile> {
    let (r, name, len) = open_records(path.as_ref())?;
    read_records_file_from(r, &name, Some(len))
}

/// Reads records in the `write_records` format from `r`; `name` is used in errors.
/// With `len` (the file size) a header whose record count disagrees with the size is
/// refused before anything is allocated for it.
pub fn read_records_from(
    r: impl Read,
    name: &str,
    len: Option<u64>,
) -> io::Result<Vec<ConnRecord>> {
    read_records_file_from(r, name, len).map(|f| f.records)
}

/// As [`read_records_from`], header included.
pub fn read_records_file_from(
    mut r: impl Read,
    name: &str,
    len: Option<u64>,
) -> io::Result<RecordsFile> {
    let bad = |msg: String| invalid(format!("{name}: {msg}"));
    let (header, size) = read_header_sized(
        &mut r,
        name,
        &MAGIC,
        "a loadgen",
        &[RECORD_SIZE, SERVE_RECORD_SIZE],
        len,
    )?;
    let count = header.count;
    // Grow as records arrive: the count comes from the file and may be corrupt.
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut whole = [0u8; SERVE_RECORD_SIZE];
    let buf = &mut whole[..size];
    for i in 0..count {
        r.read_exact(buf).map_err(|e| {
            bad(format!(
                "record {i} of {count}: {e} (the file is truncated)"
            ))
        })?;
        out.push(ConnRecord::decode(buf).map_err(|e| bad(format!("record {i}: {e}")))?);
    }
    Ok(RecordsFile {
        header,
        records: out,
    })
}
