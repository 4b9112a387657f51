use super::*;
use loadgen::record::Header;

const S_ADDR: &str = "10.77.0.1:9000";

fn meta(host: &str, boot: u8, mono: u64, real: u64, addr: &str) -> RecordMeta {
    RecordMeta {
        anchor_mono_ns: mono,
        anchor_realtime_ns: real,
        boot_id: [boot; 16],
        addr: Some(addr.parse().unwrap()),
        host: host.into(),
        run_id: "r1".into(),
    }
}

fn server(m: RecordMeta, recs: &[(&str, u64)]) -> ServerRecords {
    ServerRecords {
        header: Header {
            version: 2,
            count: recs.len() as u64,
            meta: Some(m),
        },
        records: recs
            .iter()
            .map(|&(a, t)| PeerRecord {
                peer: a.parse().unwrap(),
                accepted_ns: t,
                decoded_ns: t + 5,
            })
            .collect(),
    }
}

fn client(name: &str, m: RecordMeta, recs: &[(&str, u64)]) -> ClientFile {
    ClientFile {
        path: name.into(),
        meta: m,
        records: recs
            .iter()
            .map(|&(a, t)| ConnRecord {
                local: a.parse().unwrap(),
                intended_ns: t,
                connect_start_ns: t,
                done_ns: t + 100,
                outcome: Outcome::Established,
                warmup: false,
                round: 0,
                serve: Default::default(),
            })
            .collect(),
    }
}

#[test]
fn same_host_clients_join_on_the_monotonic_clock() {
    let sm = meta("box", 1, 1_000, 5_000_000, "0.0.0.0:9000");
    // Same host and boot; a wildly different wall clock must not matter.
    let cm = meta("box", 1, 1_000, 99_000_000, S_ADDR);
    let s = server(
        sm,
        &[
            ("10.77.0.2:1", 1_200),
            ("10.77.0.3:1", 1_300),
            ("10.77.0.2:2", 1_400),
        ],
    );
    let a = client(
        "a.rec",
        cm.clone(),
        &[("10.77.0.2:1", 1_000), ("10.77.0.2:2", 1_250)],
    );
    let b = client("b.rec", cm, &[("10.77.0.3:1", 1_100)]);
    let j = join_files(&s, &[a, b], Duration::from_secs(1)).unwrap();
    assert_eq!((j.matched(), j.unmatched()), (3, 0));
    assert_eq!(j.hosts[0].label, "box/10.77.0.2");
    assert_eq!(j.hosts[1].label, "box/10.77.0.3");
    assert_eq!((j.hosts[0].established, j.hosts[0].accepted), (2, 2));
    assert_eq!(j.hosts[0].clock, "monotonic");
    assert_eq!(j.hosts[1].peer_e2e_ns.max(), 205);
    let off = j.hosts[1].offset.unwrap();
    // accepted 1300 − connect() 1100 = 200, less 1.5 round trips of 100 ns = 50.
    assert_eq!(
        (off.upper_bound_ns, off.estimate_ns, off.pairs),
        (200, 50, 1)
    );
}

#[test]
fn other_hosts_join_through_the_realtime_anchor() {
    // Server: mono 1_000 ↔ real 10_000_000. Client: mono 500 ↔ real 10_000_300, so
    // client mono m is server mono m + 800.
    let sm = meta("srv", 1, 1_000, 10_000_000, S_ADDR);
    let cm = meta("cli", 2, 500, 10_000_300, S_ADDR);
    let s = server(sm, &[("10.77.0.2:1", 2_000)]);
    let c = client("c.rec", cm, &[("10.77.0.2:1", 1_000)]);
    let j = join_files(&s, &[c], Duration::from_secs(1)).unwrap();
    assert_eq!((j.matched(), j.unmatched()), (1, 0));
    assert_eq!(j.hosts[0].clock, "realtime");
    assert_eq!(j.hosts[0].label, "cli");
    // decoded 2_005 − (1_000 + 800) = 205.
    assert_eq!(j.hosts[0].peer_e2e_ns.max(), 205);
    assert!(j.uses_realtime());
}

#[test]
fn a_client_of_another_server_is_refused() {
    let sm = meta("srv", 1, 0, 1_000_000_000, S_ADDR);
    let s = server(sm.clone(), &[("10.77.0.2:1", 100)]);
    let c = client(
        "other.rec",
        meta("cli", 2, 0, 1_000_000_000, "10.77.0.1:9001"),
        &[("10.77.0.2:1", 50)],
    );
    let e = join_files(&s, &[c], Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("other.rec") && e.contains("10.77.0.1:9001") && e.contains("another server"),
        "{e}"
    );
    let mut m = meta("cli", 2, 0, 1_000_000_000, S_ADDR);
    m.run_id = "r2".into();
    let e = join_files(&s, &[client("run.rec", m, &[])], Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("run id \"r2\"") && e.contains("another run"),
        "{e}"
    );
}

#[test]
fn a_client_from_another_time_is_refused() {
    let s = server(
        meta("srv", 1, 0, 1_000_000_000_000, S_ADDR),
        &[("10.77.0.2:1", 100)],
    );
    // One hour later on the wall clock.
    let c = client(
        "late.rec",
        meta("cli", 2, 0, 1_000_000_000_000 + 3_600_000_000_000, S_ADDR),
        &[("10.77.0.2:1", 50)],
    );
    let e = join_files(&s, &[c], Duration::from_secs(2))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("late.rec") && e.contains("do not overlap") && e.contains("2000 ms"),
        "{e}"
    );
}

#[test]
fn version_1_client_files_are_refused_by_join() {
    let dir = std::env::temp_dir().join(format!("ab-hostjoin-v1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("v1.rec");
    // A version-1 file: 24-byte header, no records.
    let mut b = Vec::new();
    b.extend_from_slice(&loadgen::record::MAGIC);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(loadgen::record::RECORD_SIZE as u32).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(&path, &b).unwrap();
    // loadgen (and the sweep) still read it …
    assert!(loadgen::read_records(&path).unwrap().is_empty());
    // … but join needs the header's host and clocks.
    let e = read_client(&path).err().unwrap().to_string();
    assert!(e.contains("v1.rec") && e.contains("version 1"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
