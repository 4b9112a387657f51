//! The acceptor's per-connection records file (`acceptbench listen --records FILE`):
//! the records-file header both sides share (version 2, magic `b"ABSERVER"`, see
//! `common::record_header`) — host name, boot id, a (CLOCK_MONOTONIC, CLOCK_REALTIME) anchor
//! taken when listening started, the listening address and the run id — then one
//! 40-byte record per accepted connection (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | family: 4 or 6 |
//! | 1 | 3 | reserved (0) |
//! | 4 | 2 | peer port |
//! | 6 | 2 | reserved (0) |
//! | 8 | 16 | peer IP (IPv4 in the first 4 bytes) |
//! | 24 | 8 | accept completion observed, CLOCK_MONOTONIC ns |
//! | 32 | 8 | peer `SocketAddr` decoded, CLOCK_MONOTONIC ns |
//!
//! Only reads and writes the file; joining is `crate::join`'s.

use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::Path;

use common::record_header::{self as record, Header, RecordMeta, SERVER_MAGIC};

use crate::record::PeerRecord;

/// Size of one acceptor record in bytes.
pub const SERVER_RECORD_SIZE: usize = 40;

/// An acceptor records file as read.
#[derive(Debug, Clone)]
pub struct ServerRecords {
    /// Its header (always version 2: acceptor files started there).
    pub header: Header,
    /// The accepted connections, in file (accept) order.
    pub records: Vec<PeerRecord>,
}

impl ServerRecords {
    /// The header's host, clock anchors and address.
    pub fn meta(&self) -> &RecordMeta {
        // read_from refuses files without one.
        self.header
            .meta
            .as_ref()
            .expect("acceptor records are always version 2")
    }
}

fn encode(r: &PeerRecord, out: &mut [u8; SERVER_RECORD_SIZE]) {
    out.fill(0);
    let (family, ip) = record::ip_bytes(r.peer.ip());
    out[0] = family;
    out[4..6].copy_from_slice(&r.peer.port().to_le_bytes());
    out[8..24].copy_from_slice(&ip);
    out[24..32].copy_from_slice(&r.accepted_ns.to_le_bytes());
    out[32..40].copy_from_slice(&r.decoded_ns.to_le_bytes());
}

fn decode(b: &[u8; SERVER_RECORD_SIZE]) -> Result<PeerRecord, String> {
    let u64_at = |o: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(x)
    };
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[8..24]);
    let ip = record::ip_from(b[0], ip).map_err(|e| e.to_string())?;
    Ok(PeerRecord {
        peer: SocketAddr::new(ip, u16::from_le_bytes([b[4], b[5]])),
        accepted_ns: u64_at(24),
        decoded_ns: u64_at(32),
    })
}

/// Writes `records` to `path` with `meta` in the header.
pub fn write(path: &Path, meta: &RecordMeta, records: &[PeerRecord]) -> io::Result<()> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut w = BufWriter::new(std::fs::File::create(path).map_err(with_path)?);
    record::write_header(
        &mut w,
        &SERVER_MAGIC,
        SERVER_RECORD_SIZE,
        records.len() as u64,
        meta,
    )
    .map_err(with_path)?;
    let mut buf = [0u8; SERVER_RECORD_SIZE];
    for r in records {
        encode(r, &mut buf);
        w.write_all(&buf).map_err(with_path)?;
    }
    w.flush().map_err(with_path)
}

/// Reads an acceptor records file; errors name the file, and the record where there is one.
pub fn read(path: &Path) -> io::Result<ServerRecords> {
    let (r, name, len) = record::open_records(path)?;
    read_from(r, &name, Some(len))
}

/// Reads acceptor records from `r`; `name` is used in errors; `len` is the file size if known.
pub fn read_from(mut r: impl Read, name: &str, len: Option<u64>) -> io::Result<ServerRecords> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {msg}"));
    let header = record::read_header(
        &mut r,
        name,
        &SERVER_MAGIC,
        "an acceptor (acceptbench listen --records)",
        SERVER_RECORD_SIZE,
        len,
    )?;
    if header.meta.is_none() {
        return Err(bad(format!(
            "acceptor records file version {}: acceptor files start at version 2",
            header.version
        )));
    }
    let count = header.count;
    let mut records = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut buf = [0u8; SERVER_RECORD_SIZE];
    for i in 0..count {
        r.read_exact(&mut buf).map_err(|e| {
            bad(format!(
                "record {i} of {count}: {e} (the file is truncated)"
            ))
        })?;
        records.push(decode(&buf).map_err(|e| bad(format!("record {i}: {e}")))?);
    }
    Ok(ServerRecords { header, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<PeerRecord> {
        vec![
            PeerRecord {
                peer: "10.77.0.2:40000".parse().unwrap(),
                accepted_ns: 10,
                decoded_ns: 12,
            },
            PeerRecord {
                peer: "[fd00::2]:40001".parse().unwrap(),
                accepted_ns: 20,
                decoded_ns: 25,
            },
        ]
    }

    #[test]
    fn round_trips_with_its_header() {
        let dir = std::env::temp_dir().join(format!("ab-serverrec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.rec");
        let meta = RecordMeta::here(Some("0.0.0.0:8080".parse().unwrap()), "run-1");
        write(&path, &meta, &sample()).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.records, sample());
        assert_eq!(back.meta(), &meta);
        assert_eq!(back.header.version, record::VERSION);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_and_wrong_files_are_named() {
        let mut bytes = Vec::new();
        record::write_header(
            &mut bytes,
            &SERVER_MAGIC,
            SERVER_RECORD_SIZE,
            2,
            &RecordMeta::default(),
        )
        .unwrap();
        let mut buf = [0u8; SERVER_RECORD_SIZE];
        for r in sample() {
            encode(&r, &mut buf);
            bytes.extend_from_slice(&buf);
        }
        assert!(read_from(&bytes[..], "s.rec", Some(bytes.len() as u64)).is_ok());
        let cut = &bytes[..bytes.len() - 7];
        let e = read_from(cut, "s.rec", Some(cut.len() as u64))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.rec") && e.contains("truncated"), "{e}");
        let e = read_from(cut, "s.rec", None).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut v9 = bytes.clone();
        v9[8..12].copy_from_slice(&9u32.to_le_bytes());
        let e = read_from(&v9[..], "s.rec", None).unwrap_err().to_string();
        assert!(
            e.contains("version 9") && e.contains("reads versions"),
            "{e}"
        );
        let mut client = bytes.clone();
        client[..8].copy_from_slice(&record::MAGIC);
        let e = read_from(&client[..], "s.rec", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("loadgen's records"), "{e}");
    }
}
