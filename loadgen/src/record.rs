//! Per-connection records and their file format, for joining with the server's records.
//!
//! File layout (all little-endian): a 24-byte header — magic `b"LGRECORD"`, `u32` version
//! (1), `u32` record size (56), `u64` record count — then fixed-size records:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | family: 4 or 6 |
//! | 1 | 1 | outcome code (see `Outcome::code`) |
//! | 2 | 1 | flags: bit 0 = warm-up connection |
//! | 3 | 1 | reserved (0) |
//! | 4 | 2 | local port |
//! | 6 | 2 | reserved (0) |
//! | 8 | 4 | errno for `Other` (i32), else 0 |
//! | 12 | 4 | burst round (0-based; 0 outside burst mode) |
//! | 16 | 16 | local IP (IPv4 in the first 4 bytes, network order) |
//! | 32 | 8 | intended start, CLOCK_MONOTONIC ns |
//! | 40 | 8 | connect() called, CLOCK_MONOTONIC ns |
//! | 48 | 8 | outcome known, CLOCK_MONOTONIC ns |

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// File magic.
pub const MAGIC: [u8; 8] = *b"LGRECORD";
/// File format version.
pub const VERSION: u32 = 1;
/// Size of one record in bytes.
pub const RECORD_SIZE: usize = 56;
const HEADER_SIZE: usize = 24;

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
}

impl ConnRecord {
    fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        out.fill(0);
        let (family, ip): (u8, [u8; 16]) = match self.local.ip() {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (4, b)
            }
            IpAddr::V6(a) => (6, a.octets()),
        };
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
    }

    fn decode(b: &[u8; RECORD_SIZE]) -> io::Result<ConnRecord> {
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
        let ip = match b[0] {
            4 => IpAddr::V4(Ipv4Addr::new(ip16[0], ip16[1], ip16[2], ip16[3])),
            6 => IpAddr::V6(Ipv6Addr::from(ip16)),
            f => {
                return Err(invalid(format!(
                    "record has address family {f}, expected 4 or 6"
                )))
            }
        };
        let outcome = Outcome::from_code(b[1], u32_at(8) as i32)
            .ok_or_else(|| invalid(format!("record has unknown outcome code {}", b[1])))?;
        Ok(ConnRecord {
            local: SocketAddr::new(ip, port),
            intended_ns: u64_at(32),
            connect_start_ns: u64_at(40),
            done_ns: u64_at(48),
            outcome,
            warmup: b[2] & 1 != 0,
            round: u32_at(12),
        })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Writes records to `path` in the format described in the module docs.
pub fn write_records(path: impl AsRef<Path>, records: &[ConnRecord]) -> io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    w.write_all(&MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(RECORD_SIZE as u32).to_le_bytes())?;
    w.write_all(&(records.len() as u64).to_le_bytes())?;
    let mut buf = [0u8; RECORD_SIZE];
    for r in records {
        r.encode(&mut buf);
        w.write_all(&buf)?;
    }
    w.flush()
}

/// Reads a file written by `write_records`; errors name the file, and the record
/// where there is one.
pub fn read_records(path: impl AsRef<Path>) -> io::Result<Vec<ConnRecord>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let f = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    let len = f
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?
        .len();
    read_records_from(BufReader::new(f), &name, Some(len))
}

/// Reads records in the `write_records` format from `r`; `name` is used in errors.
/// With `len` (the file size) a header whose record count disagrees with the size is
/// refused before anything is allocated for it.
pub fn read_records_from(
    mut r: impl Read,
    name: &str,
    len: Option<u64>,
) -> io::Result<Vec<ConnRecord>> {
    let bad = |msg: String| invalid(format!("{name}: {msg}"));
    let mut header = [0u8; HEADER_SIZE];
    r.read_exact(&mut header).map_err(|e| {
        bad(format!(
            "cannot read the {HEADER_SIZE}-byte header ({e}): not a loadgen records file, or truncated"
        ))
    })?;
    if header[..8] != MAGIC {
        return Err(bad("not a loadgen records file (bad magic)".into()));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let size = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if version != VERSION || size as usize != RECORD_SIZE {
        return Err(bad(format!("records file version {version} / record size {size}; this loadgen reads version {VERSION} / {RECORD_SIZE}")));
    }
    let mut count_b = [0u8; 8];
    count_b.copy_from_slice(&header[16..24]);
    let count = u64::from_le_bytes(count_b);
    if let Some(len) = len {
        let want = count
            .checked_mul(RECORD_SIZE as u64)
            .and_then(|b| b.checked_add(HEADER_SIZE as u64));
        if want != Some(len) {
            return Err(bad(format!(
                "the header says {count} records of {RECORD_SIZE} bytes but the file has {len} bytes: it is truncated or corrupt"
            )));
        }
    }
    // Grow as records arrive: the count comes from the file and may be corrupt.
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut buf = [0u8; RECORD_SIZE];
    for i in 0..count {
        r.read_exact(&mut buf).map_err(|e| {
            bad(format!(
                "record {i} of {count}: {e} (the file is truncated)"
            ))
        })?;
        out.push(ConnRecord::decode(&buf).map_err(|e| bad(format!("record {i}: {e}")))?);
    }
    Ok(out)
}
