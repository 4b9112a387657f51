//! The header of per-connection records files, shared by loadgen's records (magic
//! `b"LGRECORD"`) and the acceptor's (`acceptbench listen --records`, magic
//! `b"ABSERVER"`): who wrote the file, where, when, and how its clock converts to
//! wall-clock time. Each side owns its own record layout after the header.
//!
//! File layout (all little-endian), version 2: a 192-byte header, then fixed-size records.
//!
//! | offset | size | header field |
//! |---|---|---|
//! | 0 | 8 | magic `b"LGRECORD"` (loadgen) or `b"ABSERVER"` (acceptbench listen) |
//! | 8 | 4 | version (2) |
//! | 12 | 4 | record size (56 here) |
//! | 16 | 8 | record count |
//! | 24 | 8 | anchor: CLOCK_MONOTONIC ns, taken when the run started |
//! | 32 | 8 | anchor: CLOCK_REALTIME ns since the epoch, taken at the same instant |
//! | 40 | 16 | boot id (`/proc/sys/kernel/random/boot_id`), zero if unknown |
//! | 56 | 1 | address family 4 or 6, 0 for none |
//! | 57 | 1 | reserved (0) |
//! | 58 | 2 | port |
//! | 60 | 16 | IP: loadgen's target; the acceptor's listening address |
//! | 76 | 4 | reserved (0) |
//! | 80 | 64 | host name, UTF-8, NUL-padded |
//! | 144 | 48 | run id (`--run-id`), UTF-8, NUL-padded, may be empty |
//!
//! Every CLOCK_MONOTONIC stamp `m` converts to wall-clock time as
//! `anchor_realtime + (m - anchor_mono)`: that is how records from different hosts
//! are compared (as exactly as the hosts' clocks agree). Two files with the same host
//! name and boot id share one CLOCK_MONOTONIC and are compared on it directly.
//!
//! Version 1 (still read; its header stops after the record count, 24 bytes) has no
//! anchors, host or target: such files serve a same-host join only.
//!
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// File magic of loadgen's records.
pub const MAGIC: [u8; 8] = *b"LGRECORD";
/// File magic of the acceptor's records (`acceptbench listen --records`).
pub const SERVER_MAGIC: [u8; 8] = *b"ABSERVER";
/// File format version written.
pub const VERSION: u32 = 2;
/// Oldest version read (no clock anchors, host or target).
pub const OLDEST_VERSION: u32 = 1;
/// Header size of version 1.
const HEADER_V1_SIZE: usize = 24;
/// Header size of version 2.
pub const HEADER_SIZE: usize = 192;
const HOST_LEN: usize = 64;
const RUN_ID_LEN: usize = 48;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Who wrote a records file, where and when: the version-2 header after the counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordMeta {
    /// CLOCK_MONOTONIC ns at the anchor instant (the run's start).
    pub anchor_mono_ns: u64,
    /// CLOCK_REALTIME ns since the epoch at the same instant.
    pub anchor_realtime_ns: u64,
    /// The kernel's boot id (zero if unknown): with the host name, tells whether two
    /// files share one CLOCK_MONOTONIC.
    pub boot_id: [u8; 16],
    /// loadgen: the target; acceptor: the listening address.
    pub addr: Option<SocketAddr>,
    /// Host name (at most 64 bytes are kept).
    pub host: String,
    /// Run id given by the user (at most 48 bytes are kept), may be empty.
    pub run_id: String,
}

impl RecordMeta {
    /// This host now: host name, boot id, and a (CLOCK_MONOTONIC, CLOCK_REALTIME) pair
    /// read back to back (the monotonic stamp is the mean of one read before and one after).
    pub fn here(addr: Option<SocketAddr>, run_id: &str) -> RecordMeta {
        let m0 = crate::clock::mono_ns();
        let real = realtime_ns();
        let m1 = crate::clock::mono_ns();
        RecordMeta {
            anchor_mono_ns: m0 + (m1 - m0) / 2,
            anchor_realtime_ns: real,
            boot_id: boot_id(),
            addr,
            host: host_name(),
            run_id: clip(run_id, RUN_ID_LEN),
        }
    }

    /// `mono_ns` (CLOCK_MONOTONIC of this file's host) as CLOCK_REALTIME ns since the epoch.
    pub fn to_realtime_ns(&self, mono_ns: u64) -> i128 {
        self.anchor_realtime_ns as i128 + (mono_ns as i128 - self.anchor_mono_ns as i128)
    }

    /// True when `other` was written on the same host during the same boot, so both
    /// files' CLOCK_MONOTONIC stamps are one clock.
    pub fn same_clock(&self, other: &RecordMeta) -> bool {
        self.boot_id != [0; 16] && self.boot_id == other.boot_id && self.host == other.host
    }

    fn encode(&self, h: &mut [u8; HEADER_SIZE]) {
        h[24..32].copy_from_slice(&self.anchor_mono_ns.to_le_bytes());
        h[32..40].copy_from_slice(&self.anchor_realtime_ns.to_le_bytes());
        h[40..56].copy_from_slice(&self.boot_id);
        if let Some(a) = self.addr {
            let (family, ip) = ip_bytes(a.ip());
            h[56] = family;
            h[58..60].copy_from_slice(&a.port().to_le_bytes());
            h[60..76].copy_from_slice(&ip);
        }
        let host = clip(&self.host, HOST_LEN);
        h[80..80 + host.len()].copy_from_slice(host.as_bytes());
        let run = clip(&self.run_id, RUN_ID_LEN);
        h[144..144 + run.len()].copy_from_slice(run.as_bytes());
    }

    fn decode(h: &[u8; HEADER_SIZE]) -> io::Result<RecordMeta> {
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&h[40..56]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&h[60..76]);
        let port = u16::from_le_bytes([h[58], h[59]]);
        let addr = match h[56] {
            0 => None,
            f => Some(SocketAddr::new(ip_from(f, ip)?, port)),
        };
        let text = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        Ok(RecordMeta {
            anchor_mono_ns: u64_at(24),
            anchor_realtime_ns: u64_at(32),
            boot_id,
            addr,
            host: text(&h[80..144]),
            run_id: text(&h[144..192]),
        })
    }
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// An address as records store it: family (4 or 6) and 16 bytes (IPv4 in the first
/// four). Shared by loadgen's records and the acceptor's (same file family).
pub fn ip_bytes(ip: IpAddr) -> (u8, [u8; 16]) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (4, b)
        }
        IpAddr::V6(a) => (6, a.octets()),
    }
}

/// The address [`ip_bytes`] stored; an unknown family is an error.
pub fn ip_from(family: u8, b: [u8; 16]) -> io::Result<IpAddr> {
    match family {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        6 => Ok(IpAddr::V6(Ipv6Addr::from(b))),
        f => Err(invalid(format!("address family {f}, expected 4 or 6"))),
    }
}

/// CLOCK_REALTIME in ns since the epoch (0 before 1970).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The kernel's boot id, zero when it cannot be read.
fn boot_id() -> [u8; 16] {
    let mut out = [0u8; 16];
    let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return out;
    };
    let hex: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
        .collect();
    if hex.len() == 32 {
        for (i, pair) in hex.chunks(2).enumerate() {
            out[i] = pair[0] << 4 | pair[1];
        }
    }
    out
}

/// This host's name (uname nodename), empty if unknown.
fn host_name() -> String {
    // SAFETY: utsname is plain old data; uname(2) fills it and cannot fail with a valid pointer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = u
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A records file's header as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version (1 or 2).
    pub version: u32,
    /// Records that follow.
    pub count: u64,
    /// Version 2's host, clock anchors and address; `None` for version 1.
    pub meta: Option<RecordMeta>,
}

/// Writes a version-2 header: `magic`, records of `record_size` bytes, `count` of them.
pub fn write_header(
    mut w: impl Write,
    magic: &[u8; 8],
    record_size: usize,
    count: u64,
    meta: &RecordMeta,
) -> io::Result<()> {
    let mut h = [0u8; HEADER_SIZE];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(record_size as u32).to_le_bytes());
    h[16..24].copy_from_slice(&count.to_le_bytes());
    meta.encode(&mut h);
    w.write_all(&h)
}

/// Reads a header of either version and checks it: `magic` (`what` names the kind of
/// file in errors), the record size, and with `len` (the file size) that the record
/// count matches the size. Errors name `name`, the file.
pub fn read_header(
    r: impl Read,
    name: &str,
    magic: &[u8; 8],
    what: &str,
    record_size: usize,
    len: Option<u64>,
) -> io::Result<Header> {
    read_header_sized(r, name, magic, what, &[record_size], len).map(|(h, _)| h)
}

/// As [`read_header`] for a kind of file whose records come in several layouts, each
/// of its own size (the header says which): returns the header and the record size.
pub fn read_header_sized(
    mut r: impl Read,
    name: &str,
    magic: &[u8; 8],
    what: &str,
    sizes: &[usize],
    len: Option<u64>,
) -> io::Result<(Header, usize)> {
    let bad = |msg: String| invalid(format!("{name}: {msg}"));
    let mut h = [0u8; HEADER_SIZE];
    r.read_exact(&mut h[..HEADER_V1_SIZE]).map_err(|e| {
        bad(format!(
            "cannot read the header ({e}): not {what} records file, or truncated"
        ))
    })?;
    if h[..8] != *magic {
        let other = if h[..8] == MAGIC {
            " (it is loadgen's records file)"
        } else if h[..8] == SERVER_MAGIC {
            " (it is the acceptor's records file, from acceptbench listen --records)"
        } else {
            ""
        };
        return Err(bad(format!("not {what} records file (bad magic){other}")));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let size = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(bad(format!(
            "records file version {version}: this build reads versions {OLDEST_VERSION} to {VERSION}; read it with the build that wrote it, or record again with this one"
        )));
    }
    let record_size = size as usize;
    if !sizes.contains(&record_size) {
        let expected: Vec<String> = sizes.iter().map(usize::to_string).collect();
        return Err(bad(format!(
            "records of {size} bytes, expected {} for version {version}: the file is corrupt, or written by a newer build",
            expected.join(" or ")
        )));
    }
    let header_size = if version == 1 {
        HEADER_V1_SIZE
    } else {
        HEADER_SIZE
    };
    if version > 1 {
        r.read_exact(&mut h[HEADER_V1_SIZE..]).map_err(|e| {
            bad(format!(
                "cannot read the {HEADER_SIZE}-byte version-{version} header ({e}): the file is truncated"
            ))
        })?;
    }
    let mut count_b = [0u8; 8];
    count_b.copy_from_slice(&h[16..24]);
    let count = u64::from_le_bytes(count_b);
    if let Some(len) = len {
        let want = count
            .checked_mul(record_size as u64)
            .and_then(|b| b.checked_add(header_size as u64));
        if want != Some(len) {
            return Err(bad(format!(
                "the header says {count} records of {record_size} bytes but the file has {len} bytes: it is truncated or corrupt"
            )));
        }
    }
    let meta = if version > 1 {
        Some(RecordMeta::decode(&h).map_err(|e| bad(format!("header: {e}")))?)
    } else {
        None
    };
    Ok((
        Header {
            version,
            count,
            meta,
        },
        record_size,
    ))
}

/// Opens `path` for reading records: the reader, the file's name for errors, its size.
pub fn open_records(path: &Path) -> io::Result<(BufReader<File>, String, u64)> {
    let name = path.display().to_string();
    let f = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
    let len = f
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?
        .len();
    Ok((BufReader::new(f), name, len))
}
