//! loadgen's records reader on files it did not just write: arbitrary bytes
//! (proptest) and 100 000 mutations of a valid file (deterministic xorshift) give
//! records or an error naming the file, never a panic or a huge allocation.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use loadgen::{read_records, read_records_from, write_records, ConnRecord, Outcome};
use proptest::prelude::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn record(local: &str, outcome: Outcome) -> ConnRecord {
    ConnRecord {
        local: local.parse::<SocketAddr>().unwrap(),
        intended_ns: 1,
        connect_start_ns: 2,
        done_ns: 3,
        outcome,
        warmup: false,
        round: 0,
        serve: Default::default(),
    }
}

fn seed(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("seed.rec");
    write_records(
        &path,
        &loadgen::RecordMeta::here(Some("127.0.0.1:8080".parse().unwrap()), "fuzz"),
        &[
            record("127.0.0.1:40000", Outcome::Established),
            record("[::1]:40001", Outcome::Other(99)),
            record("127.0.0.2:40002", Outcome::Pending),
        ],
    )
    .unwrap();
    std::fs::read(&path).unwrap()
}

fn read(bytes: &[u8], with_len: bool) -> Option<String> {
    let len = with_len.then_some(bytes.len() as u64);
    read_records_from(bytes, "fuzz.rec", len)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn mutated_records_files_give_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("loadgen-rec-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = seed(&dir);
    assert_eq!(read(&seed, true), None);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for i in 0..100_000 {
        let mut b = seed.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(b.len());
            match rng.below(4) {
                0 if at < b.len() => b[at] ^= 1 << rng.below(8),
                1 if at < b.len() => b[at] = rng.next() as u8,
                2 => b.truncate(at),
                // A plausible but wrong count (or a huge one) in the header.
                _ if b.len() >= 24 => {
                    let count = [rng.next() % 8, rng.next(), u64::MAX][rng.below(3)];
                    b[16..24].copy_from_slice(&count.to_le_bytes());
                }
                _ => {}
            }
        }
        for with_len in [true, false] {
            match catch_unwind(AssertUnwindSafe(|| read(&b, with_len))) {
                Ok(Some(e)) => assert!(e.contains("fuzz.rec"), "{e}"),
                Ok(None) => {}
                Err(_) => panic!("mutation {i} panicked: {b:?}"),
            }
        }
    }
    // Through the file path: a truncated file is named, with what is wrong.
    let path = dir.join("cut.rec");
    std::fs::write(&path, &seed[..seed.len() - 10]).unwrap();
    let e = read_records(&path).unwrap_err().to_string();
    assert!(e.contains("cut.rec") && e.contains("truncated"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        if magic && bytes.len() >= 16 {
            // Past the magic/version/size checks, so the count and records get parsed.
            bytes[..8].copy_from_slice(b"LGRECORD");
            bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
            bytes[12..16].copy_from_slice(&56u32.to_le_bytes());
        }
        for with_len in [true, false] {
            if let Some(e) = read(&bytes, with_len) {
                prop_assert!(e.contains("fuzz.rec"), "{e}");
            }
        }
    }
}
