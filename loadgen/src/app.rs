//! The command-line edge: parse, run, print, write files, map errors to exit codes.
//! Shared by loadgen's own `main` and by `acceptbench loadgen …`.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use common::ktrace::view::{KernelView, Session};

use crate::clock::mono_ns;
use crate::config::Config;
use crate::error::LoadgenError;
use crate::output;
use crate::record;
use crate::report::{Report, RoundSummary};
use crate::run::{run_with, Observer, Progress};
use crate::worker::RoundCmd;

/// Raised by SIGINT/SIGTERM; a second signal exits at once.
static STOP: AtomicBool = AtomicBool::new(false);

/// `--remote`: stdin ended without a `stop`: the driver's ssh session is gone and
/// nobody will fetch a report or records.
static DRIVER_GONE: AtomicBool = AtomicBool::new(false);

/// Exit status of a `--remote` run whose driver went away (its records are not
/// written; the sweep's remote script removes their directory on any failure).
pub const EXIT_DRIVER_GONE: u8 = 4;

extern "C" fn on_signal(_sig: libc::c_int) {
    if STOP.swap(true, Ordering::Relaxed) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is plain data; the handler only touches an atomic and calls
        // _exit, both async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Parses loadgen's flags (`args[0]` is the program name), runs, prints, and returns the
/// exit code: 0 success, 1 runtime failure, 2 bad input. Errors go to stderr as one line
/// `loadgen: error: …`.
pub fn cli_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let config = match Config::from_args(args) {
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // The message up to the usage: a missing argument is named on the lines
            // after "the following required arguments were not provided:".
            let text = e.to_string();
            let said: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = match said.join(" ") {
                s if s.is_empty() => "invalid arguments".to_string(),
                s => s.trim_start_matches("error: ").to_string(),
            };
            eprintln!("loadgen: error: {first} (see loadgen --help)");
            return ExitCode::from(2);
        }
        Ok(Err(e)) => {
            eprintln!("loadgen: error: {e:#}");
            return ExitCode::from(2);
        }
        Ok(Ok(c)) => c,
    };
    install_signal_handlers();
    let result = app(&config);
    if DRIVER_GONE.load(Ordering::Relaxed) {
        // stderr is likely gone with the session: a failed write must not panic.
        let _ = writeln!(
            std::io::stderr(),
            "loadgen: the driver's session ended: nothing written"
        );
        return ExitCode::from(EXIT_DRIVER_GONE);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            let usage = e
                .downcast_ref::<LoadgenError>()
                .is_some_and(|e| e.is_usage());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// `--remote`: says it is ready, waits for `go`, then watches stdin for the rest of
/// the run: `stop`, or the end of stdin (the ssh session closed), raises [`STOP`].
fn remote_start() -> anyhow::Result<()> {
    use crate::protocol::{Ready, Reply, GO};
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        Ready {
            pid: std::process::id()
        }
    )
    .and_then(|_| out.flush())
    .context("cannot write to stdout")?;
    drop(out);
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read stdin")?;
    if n == 0 {
        DRIVER_GONE.store(true, Ordering::Relaxed);
    }
    if n == 0 || line.trim() != GO {
        anyhow::bail!(
            "--remote: expected \"{GO}\" on stdin, got {:?}: the sweep ended before the start",
            line.trim()
        );
    }
    std::thread::Builder::new()
        .name("remote-stdin".into())
        .spawn(|| {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        DRIVER_GONE.store(true, Ordering::Relaxed);
                        break;
                    }
                    Ok(_) if Reply::parse(&line) == Some(Reply::Stop) => break,
                    Ok(_) => {}
                }
            }
            STOP.store(true, Ordering::Relaxed);
        })
        .context("cannot start the thread watching stdin")?;
    Ok(())
}

fn app(config: &Config) -> anyhow::Result<()> {
    let out_cfg = &config.output;
    if out_cfg.remote {
        remote_start()?;
    }
    let mut observer = CliObserver {
        progress: !out_cfg.quiet && std::io::stderr().is_terminal(),
        sync_stdio: out_cfg.sync_stdio,
        printed_progress: false,
        last: Progress::default(),
    };
    // The clock anchor of the records file: taken as the run starts.
    let record_meta =
        record::RecordMeta::here(Some(config.target), out_cfg.run_id.as_deref().unwrap_or(""));
    let session = Session::start(
        out_cfg.trace_kernel,
        out_cfg.trace_required,
        config.target.port(),
    )?;
    if let Some(w) = session.warning() {
        eprintln!("loadgen: warning: {w}");
    }
    let run = run_with(config, &STOP, &mut observer);
    // Stopped whatever the run's outcome: the recorder's reader must not outlive it.
    let traced = session.finish(None);
    let mut run = run?;
    if DRIVER_GONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    if let Some(traced) = &traced {
        if let Some(path) = &out_cfg.trace_out {
            traced
                .write_trace_out(path, "loadgen")
                .with_context(|| format!("cannot write --trace-out {}", path.display()))?;
        }
        run.report.kernel = Some(KernelView::of(traced, None));
    }
    if observer.printed_progress {
        eprintln!();
    }
    let report = &run.report;
    // Wall-clock time of the measured window's start, for the interval log header.
    let start_wall =
        SystemTime::now() - Duration::from_nanos(mono_ns().saturating_sub(run.measure_start_ns));
    if let Some(p) = &out_cfg.hgrm {
        output::write_hgrm_file(p, &run.connect_ns)
            .with_context(|| format!("cannot write --hgrm {}", p.display()))?;
    }
    if let Some(p) = &out_cfg.served_hgrm {
        output::write_hgrm_file(p, &run.served_ns)
            .with_context(|| format!("cannot write --served-hgrm {}", p.display()))?;
    }
    if let Some(p) = &out_cfg.hlog {
        output::write_hlog_file(p, &run.intervals, start_wall)
            .with_context(|| format!("cannot write --hlog {}", p.display()))?;
    }
    if let Some(p) = &out_cfg.records {
        record::write_records(p, &record_meta, &run.records)
            .with_context(|| format!("cannot write --records {}", p.display()))?;
    }
    print_report(report, out_cfg.json, out_cfg.quiet)?;
    if report.attempted > 0 && report.established == 0 {
        anyhow::bail!("{}", nothing_established(report));
    }
    Ok(())
}

fn print_report(report: &Report, json: bool, quiet: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        if !quiet {
            eprint!("{}", report.human());
        }
        let line = serde_json::to_string(report).context("cannot serialise the report")?;
        writeln!(stdout, "{line}").context("cannot write to stdout")?;
    } else if !quiet {
        write!(stdout, "{}", report.human()).context("cannot write to stdout")?;
    }
    stdout.flush().context("cannot write to stdout")
}

fn nothing_established(r: &Report) -> String {
    let e = &r.errors;
    let hint = if e.refused > 0 {
        "is anything listening there?"
    } else if e.timeout > 0 || r.pending > 0 {
        "is the address reachable and the listener accepting? (try a longer --connect-timeout)"
    } else {
        "see the errors above"
    };
    format!(
        "no connection to {} was established in {} attempts (refused {}, reset {}, timeout {}, addr_unavailable {}, other {}, pending {}); {hint}",
        r.target, r.attempted, e.refused, e.reset, e.timeout, e.addr_unavailable, e.other, r.pending
    )
}

struct CliObserver {
    progress: bool,
    sync_stdio: bool,
    printed_progress: bool,
    last: Progress,
}

impl Observer for CliObserver {
    fn progress(&mut self, p: &Progress) {
        if !self.progress {
            return;
        }
        let dt = p.elapsed_s - self.last.elapsed_s;
        let rate = if dt > 0.0 {
            (p.established.saturating_sub(self.last.established)) as f64 / dt
        } else {
            0.0
        };
        eprint!(
            "\r[{:>6.1}s] attempted {:>10}  established {:>10}  {:>8.0} conn/s ",
            p.elapsed_s, p.attempted, p.established, rate
        );
        self.printed_progress = true;
        self.last = *p;
    }

    fn round_done(&mut self, r: &RoundSummary) -> RoundCmd {
        if !self.sync_stdio {
            return RoundCmd::Next;
        }
        let mut stdout = std::io::stdout().lock();
        let line = crate::protocol::RoundLine {
            round: r.round,
            established: r.established,
            pending: r.pending,
        };
        if writeln!(stdout, "{line}")
            .and_then(|_| stdout.flush())
            .is_err()
        {
            return RoundCmd::Stop;
        }
        drop(stdout);
        let stdin = std::io::stdin();
        let mut line = String::new();
        // Bounded: unknown words are reported and ignored up to 100 times.
        for _ in 0..100 {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => return RoundCmd::Stop,
                Ok(_) => match crate::protocol::Reply::parse(&line) {
                    Some(crate::protocol::Reply::Next) => return RoundCmd::Next,
                    Some(crate::protocol::Reply::Stop) => return RoundCmd::Stop,
                    None => eprintln!(
                        "loadgen: expected \"next\" or \"stop\" on stdin, got {:?}",
                        line.trim()
                    ),
                },
            }
        }
        RoundCmd::Stop
    }
}
