//! Sampling the TCP tracepoints of [`super::decode::Tp`] on every CPU into perf ring
//! buffers (`PERF_SAMPLE_RAW | PERF_SAMPLE_TIME`, clock `CLOCK_MONOTONIC`), with
//! in-kernel filters so only one port's records are written, and a reader thread that
//! drains the rings while the run goes on. Lost records (`PERF_RECORD_LOST`) are
//! counted and handed back with the records: an account that missed some says so.
//!
//! Opens the events and reads them; what they mean is [`super::account`]'s.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perf_event::events::Tracepoint;
use perf_event::{Builder, Clock, SampleFlag, Sampler};

use super::decode::{Layout, Sample, Tp};
use super::tracefs::{Tracefs, TracefsError};

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSpec {
    /// The run's port: records with it at either end are kept.
    pub port: u16,
    /// Ring size per CPU of `inet_sock_set_state` (most records), in bytes (rounded up
    /// to a power of two pages); the other events' rings are a quarter of it.
    pub ring_bytes: usize,
    /// The reader stops by itself after this long (the account is then marked cut
    /// short), so a caller that never finishes cannot leave it running.
    pub max_duration: Duration,
    /// CPUs the reader thread runs on (empty: wherever the scheduler puts it). A sweep
    /// keeps it off the acceptor's CPU, so decoding records is not charged to accepts.
    pub reader_cpus: Vec<usize>,
}

impl TraceSpec {
    /// `port` with 2 MiB rings (~20 000 records: a drain round of 1025 connections
    /// makes ~6 000 on one CPU within milliseconds) and a one-hour limit.
    pub fn port(port: u16) -> TraceSpec {
        TraceSpec {
            port,
            ring_bytes: 2 << 20,
            max_duration: Duration::from_secs(3600),
            reader_cpus: Vec::new(),
        }
    }

    /// The same, its reader on `cpus`.
    pub fn reader_on(mut self, cpus: &[usize]) -> TraceSpec {
        self.reader_cpus = cpus.to_vec();
        self
    }
}

/// Why the kernel's account cannot be recorded here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// No tracefs (not root, a container, a kernel without tracing).
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// perf_event_open refused (not root with a restrictive perf_event_paranoid, a
    /// container's seccomp profile).
    #[error("perf_event_open on {event} (CPU {cpu}) failed: {err} (kernel.perf_event_paranoid = {paranoid}); run as root, or set kernel.perf_event_paranoid to -1")]
    Open {
        /// The tracepoint.
        event: String,
        /// The CPU.
        cpu: usize,
        /// The error.
        err: String,
        /// `/proc/sys/kernel/perf_event_paranoid`, or "unknown".
        paranoid: String,
    },
    /// The kernel refused the filter (PERF_EVENT_IOC_SET_FILTER).
    #[error("the kernel refused the filter {filter:?} on {event}: {err}")]
    Filter {
        /// The tracepoint.
        event: String,
        /// The filter.
        filter: String,
        /// The error.
        err: String,
    },
    /// The event the account cannot do without is unusable.
    #[error("{0}")]
    Required(String),
    /// Which CPUs are online could not be read.
    #[error("cannot read the online CPUs from /sys/devices/system/cpu/online: {0}")]
    Cpus(String),
}

/// A tracepoint this kernel lacks or that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    /// `system:name`.
    pub event: String,
    /// Why.
    pub why: String,
}

/// What a recording gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The records for the port, in time order.
    pub samples: Vec<Sample>,
    /// Records the kernel dropped because a ring of a port-filtered event was full
    /// (`PERF_RECORD_LOST` and `PERF_RECORD_LOST_SAMPLES`). Non-zero: the account is
    /// incomplete.
    pub lost: u64,
    /// Records lost from the rings of events the kernel cannot filter by port
    /// (`tcp_send_reset`, `kfree_skb`: the whole host's): the reset and overflow-drop
    /// counts may be short, the connections' account is not.
    pub lost_host_wide: u64,
    /// Records that did not parse or decode (also an incomplete account).
    pub undecoded: u64,
    /// Records of port-filtered events that the kernel counted (the event's count,
    /// read when recording stops) but neither wrote to the ring nor reported lost:
    /// Linux 6.18 was seen doing so for a whole timer batch of SYN retransmits and the
    /// handshakes they caused (4 runs in 60 of a 500 ms stall, no `PERF_RECORD_LOST`).
    /// Non-zero: the account is incomplete.
    pub undelivered: u64,
    /// Tracepoints not recorded, with the reason.
    pub absent: Vec<Absent>,
    /// The reader reached [`TraceSpec::max_duration`] before the caller finished.
    pub cut_short: bool,
    /// CPUs recorded.
    pub cpus: usize,
}

/// A recording under way; [`Recorder::finish`] stops it and returns the [`Trace`].
pub struct Recorder {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Drained>>,
    absent: Vec<Absent>,
    cpus: usize,
    // Held for the recording's length; unmounts tracefs after if we mounted it.
    _tracefs: Tracefs,
}

struct Ring {
    sampler: Sampler,
    layout: Arc<Layout>,
    cpu: u32,
    /// Samples taken from the ring, and records it reported lost: with the event's
    /// count they tell what the kernel counted but never delivered.
    delivered: u64,
    reported_lost: u64,
}

#[derive(Default)]
struct Drained {
    samples: Vec<Sample>,
    lost: u64,
    lost_host_wide: u64,
    undecoded: u64,
    undelivered: u64,
    cut_short: bool,
}

/// The online CPUs, from a list such as `0-3,6,8-9`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

fn online_cpus() -> Result<Vec<usize>, TraceError> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| TraceError::Cpus(e.to_string()))?;
    parse_cpu_list(&text).ok_or_else(|| TraceError::Cpus(format!("unreadable list {text:?}")))
}

fn paranoid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Opens `id` on `cpu` for every process, sampling each record with its raw data
/// and CLOCK_MONOTONIC time, with `filter` set in the kernel; left disabled.
fn open_one(
    tp: Tp,
    id: u64,
    cpu: usize,
    filter: Option<&str>,
    spec: &TraceSpec,
) -> Result<Sampler, TraceError> {
    let ring = match tp {
        Tp::SetState => spec.ring_bytes,
        _ => spec.ring_bytes / 4,
    };
    let mut b = Builder::new(Tracepoint::with_id(id));
    b.any_pid()
        .one_cpu(cpu)
        .include_kernel()
        .sample_period(1)
        .sample(SampleFlag::RAW | SampleFlag::TIME)
        .clockid(Clock::MONOTONIC)
        // Wake the reader when an eighth is full, well before the ring is.
        .wakeup_watermark(ring / 8)
        .enabled(false);
    let counter = b.build().map_err(|e| TraceError::Open {
        event: tp.name().into(),
        cpu,
        err: e.to_string(),
        paranoid: paranoid(),
    })?;
    if let Some(filter) = filter {
        let c = std::ffi::CString::new(filter).map_err(|e| TraceError::Filter {
            event: tp.name().into(),
            filter: filter.into(),
            err: e.to_string(),
        })?;
        // SAFETY: a perf event descriptor we hold and a NUL-terminated string that
        // lives across the call; the kernel copies it.
        let rc = unsafe {
            perf_event_open_sys::ioctls::SET_FILTER(counter.as_raw_fd(), c.as_ptr() as *mut _)
        };
        if rc != 0 {
            return Err(TraceError::Filter {
                event: tp.name().into(),
                filter: filter.into(),
                err: std::io::Error::last_os_error().to_string(),
            });
        }
    }
    counter.sampled(ring).map_err(|e| TraceError::Open {
        event: tp.name().into(),
        cpu,
        err: format!("mapping its ring: {e}"),
        paranoid: paranoid(),
    })
}

/// The layout and filter of `tp` on this kernel, or why it cannot be recorded.
fn prepare(tracefs: &Tracefs, tp: Tp, port: u16) -> Result<(u64, Layout, Option<String>), String> {
    let id = tracefs.id(tp.name()).map_err(|e| e.to_string())?;
    let fields = tracefs.fields(tp.name()).map_err(|e| e.to_string())?;
    let layout = Layout::new(tp, fields)?;
    let reason = match tp {
        Tp::OverflowDrop => Some(
            tracefs
                .symbol(tp.name(), "TCP_LISTEN_OVERFLOW")
                .map_err(|e| e.to_string())?
                .ok_or("this kernel's skb drop reasons have no TCP_LISTEN_OVERFLOW")?,
        ),
        _ => None,
    };
    Ok((id, layout, tp.filter(port, reason)))
}

impl Recorder {
    /// Opens every tracepoint on every online CPU and starts the reader. Fails (with
    /// the reason) when tracefs or perf is unavailable or `inet_sock_set_state` is
    /// unusable; any other tracepoint this kernel lacks is listed in
    /// [`Trace::absent`].
    pub fn start(spec: &TraceSpec) -> Result<Recorder, TraceError> {
        let tracefs = Tracefs::open()?;
        let cpus = online_cpus()?;
        let mut rings = Vec::new();
        let mut absent = Vec::new();
        for tp in Tp::ALL {
            let (id, layout, filter) = match prepare(&tracefs, tp, spec.port) {
                Ok(p) => p,
                Err(why) if tp == Tp::SetState => return Err(TraceError::Required(why)),
                Err(why) => {
                    absent.push(Absent {
                        event: tp.name().into(),
                        why,
                    });
                    continue;
                }
            };
            let layout = Arc::new(layout);
            for &cpu in &cpus {
                let sampler = open_one(tp, id, cpu, filter.as_deref(), spec)?;
                rings.push(Ring {
                    sampler,
                    layout: layout.clone(),
                    cpu: cpu as u32,
                    delivered: 0,
                    reported_lost: 0,
                });
            }
        }
        for r in &mut rings {
            r.sampler.enable().map_err(|e| TraceError::Open {
                event: r.layout.tp().name().into(),
                cpu: r.cpu as usize,
                err: format!("enabling: {e}"),
                paranoid: paranoid(),
            })?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (stop, port, limit) = (stop.clone(), spec.port, spec.max_duration);
            let cpus = spec.reader_cpus.clone();
            std::thread::Builder::new()
                .name("kernel-trace".into())
                .spawn(move || {
                    if !cpus.is_empty() {
                        // Unpinned is still a correct reader, only a noisier one.
                        let _ = crate::affinity::pin_current_thread_to(&cpus);
                    }
                    read_until_stopped(rings, &stop, port, limit)
                })
                .map_err(|e| TraceError::Required(format!("cannot start the trace reader: {e}")))?
        };
        Ok(Recorder {
            stop,
            reader: Some(reader),
            absent,
            cpus: cpus.len(),
            _tracefs: tracefs,
        })
    }

    /// Stops recording, drains what is left and returns everything, in time order.
    pub fn finish(mut self) -> Trace {
        self.stop.store(true, Ordering::Release);
        let drained = self
            .reader
            .take()
            .and_then(|r| r.join().ok())
            .unwrap_or_else(|| Drained {
                // The reader panicked: say the account is incomplete.
                undecoded: 1,
                ..Drained::default()
            });
        let mut samples = drained.samples;
        samples.sort_by_key(|s| s.time_ns);
        Trace {
            samples,
            lost: drained.lost,
            lost_host_wide: drained.lost_host_wide,
            undecoded: drained.undecoded,
            undelivered: drained.undelivered,
            absent: std::mem::take(&mut self.absent),
            cut_short: drained.cut_short,
            cpus: self.cpus,
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The reader thread: drains every ring, then waits (poll, ≤ 10 ms) for more, until
/// stopped or `limit` passes; then disables the events and drains a last time.
fn read_until_stopped(
    mut rings: Vec<Ring>,
    stop: &AtomicBool,
    port: u16,
    limit: Duration,
) -> Drained {
    let mut out = Drained::default();
    let start = Instant::now();
    loop {
        for r in &mut rings {
            drain(r, port, &mut out);
        }
        if stop.load(Ordering::Acquire) {
            break;
        }
        if start.elapsed() > limit {
            out.cut_short = true;
            break;
        }
        let mut fds: Vec<libc::pollfd> = rings
            .iter()
            .map(|r| libc::pollfd {
                fd: r.sampler.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfds of the given length, alive across the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
    }
    for r in &mut rings {
        let _ = r.sampler.disable();
    }
    for r in &mut rings {
        drain(r, port, &mut out);
    }
    for r in &mut rings {
        let missing = undelivered(r);
        if r.layout.tp().port_filtered() {
            out.undelivered += missing;
        } else {
            out.lost_host_wide += missing;
        }
    }
    out
}

/// What the kernel counted for `ring`'s event (every hit that passed its filter) but
/// neither delivered nor reported lost, once the event is disabled and the ring
/// drained. A count that cannot be read is taken as nothing missing: the check
/// only adds to what the records themselves report.
fn undelivered(ring: &mut Ring) -> u64 {
    ring.sampler.read().map_or(0, |count| {
        count.saturating_sub(ring.delivered + ring.reported_lost)
    })
}

/// Takes every record now in one ring (at most 1 << 20 per call: the loop is bounded
/// even if the kernel writes as fast as it is read).
fn drain(ring: &mut Ring, port: u16, out: &mut Drained) {
    use perf_event::data::Record as R;
    let (layout, cpu) = (ring.layout.clone(), ring.cpu);
    let mut lost_here = 0;
    let mut delivered = 0;
    for _ in 0..(1u32 << 20) {
        let Some(record) = ring.sampler.next_record() else {
            break;
        };
        let parsed = record.parse_record();
        match parsed {
            Ok(R::Sample(s)) => {
                delivered += 1;
                let decoded = s.raw().and_then(|raw| layout.decode(raw)).zip(s.time());
                match decoded {
                    Some((event, time_ns)) if event.involves(port) => out.samples.push(Sample {
                        time_ns,
                        cpu,
                        event,
                    }),
                    // The kernel filters these by port: one that is not the port's
                    // decoded wrong.
                    Some(_) if layout.tp().port_filtered() => out.undecoded += 1,
                    Some(_) => {}
                    None => out.undecoded += 1,
                }
            }
            Ok(R::Lost(l)) => lost_here += l.lost,
            Ok(R::LostSamples(l)) => lost_here += l.lost,
            Ok(_) => {}
            Err(_) => out.undecoded += 1,
        };
    }
    ring.delivered += delivered;
    ring.reported_lost += lost_here;
    if layout.tp().port_filtered() {
        out.lost += lost_here;
    } else {
        out.lost_host_wide += lost_here;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    /// One connection on loopback: the recorder sees the client's SYN_SENT and
    /// ESTABLISHED, the server child's SYN_RECV and ESTABLISHED, stamped on the
    /// clock `mono_ns` reads, and nothing of another port.
    #[test]
    fn records_one_handshake_on_loopback() {
        use super::super::decode::{state, Event};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rec = match Recorder::start(&TraceSpec::port(port)) {
            Ok(r) => r,
            Err(e) => {
                crate::testskip::skip(crate::testskip::Lack::Root, &e.to_string());
                return;
            }
        };
        let before = crate::clock::mono_ns();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _noise = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let after = crate::clock::mono_ns();
        drop((client, server));
        let trace = rec.finish();
        // Every record the kernel counted was delivered (the event's count, read at
        // the end, equals the samples taken).
        assert_eq!(
            (
                trace.lost,
                trace.undecoded,
                trace.undelivered,
                trace.cut_short
            ),
            (0, 0, 0, false)
        );
        let states: Vec<(i32, i32, u16, u16)> = trace
            .samples
            .iter()
            .filter_map(|s| match s.event {
                Event::State {
                    old, new, src, dst, ..
                } => Some((old, new, src.port(), dst.port())),
                _ => None,
            })
            .collect();
        for want in [
            (state::CLOSE, state::SYN_SENT, 0, port),
            (state::SYN_SENT, state::ESTABLISHED, peer.port(), port),
            (state::LISTEN, state::SYN_RECV, port, peer.port()),
            (state::SYN_RECV, state::ESTABLISHED, port, peer.port()),
        ] {
            assert!(states.contains(&want), "{want:?} not in {states:?}");
        }
        assert!(trace.samples.iter().all(|s| s.event.involves(port)));
        let first = trace.samples.first().unwrap().time_ns;
        assert!(
            before <= first && first <= after,
            "{before} {first} {after}"
        );
    }
}
