//! Where each flag acts. A flag written on the command line must act somewhere in what
//! that command line chose: one that acts in none of its modes or engines is refused
//! with the flag that would (`--rate` with only mode stall → `--stall-load rate:N`),
//! never silently ignored. Flags left at their defaults are not checked.

use super::{cli, ConfigError, Mode};
use crate::engine::EngineKind;

/// Where one flag acts: in these modes (empty: every mode) and for these engines
/// (empty: every engine), and what to write instead where it does not.
pub(super) struct Scope {
    /// The long flag name.
    pub flag: &'static str,
    /// The modes it acts in; empty: all.
    pub modes: &'static [Mode],
    /// The engines it acts for; empty: all.
    pub engines: &'static [EngineKind],
    /// The fix, said after "…, and --modes is X: ".
    pub fix: &'static str,
}

const fn all(flag: &'static str) -> Scope {
    Scope {
        flag,
        modes: &[],
        engines: &[],
        fix: "",
    }
}

const fn modes(flag: &'static str, modes: &'static [Mode], fix: &'static str) -> Scope {
    Scope {
        flag,
        modes,
        engines: &[],
        fix,
    }
}

const fn engines(flag: &'static str, engines: &'static [EngineKind], fix: &'static str) -> Scope {
    Scope {
        flag,
        modes: &[],
        engines,
        fix,
    }
}

use EngineKind::{Multishot, Uring, UringLinked};
use Mode::{Burst, Closed, Drain, Overload, Rate, Stall};

const OVERFLOW: &[Mode] = &[Burst, Overload, Stall];
const RINGS: &[EngineKind] = &[Uring, Multishot, UringLinked];

/// Every `sweep` flag (a test checks that none is missing).
pub(super) const SWEEP: &[Scope] = &[
    all("engines"),
    all("backlogs"),
    all("modes"),
    all("repeat"),
    all("out"),
    all("threads"),
    all("server-cpu"),
    all("server-cpus"),
    all("acceptors"),
    all("sharing"),
    all("client-cpus"),
    all("no-plots"),
    // --trace off,kernel runs every engine both ways (a plan dimension, like --inflight
    // for uring): it acts in every mode and for every engine, ours and external.
    all("trace"),
    all("quiet"),
    all("json"),
    all("count-syscalls"),
    // --server and --server-request name servers in --engines; config::external
    // refuses a server not named there and a request without its server.
    all("server"),
    // --attach too; the modes it cannot run without pid= are refused in config.
    all("attach"),
    all("server-request"),
    // --client-hosts refuses the modes it cannot run itself, and the ssh flags are
    // refused without ssh:// hosts (config::client_hosts): both name their own fix.
    all("client-hosts"),
    all("server-addr"),
    all("client-binary"),
    all("ssh-config"),
    all("ssh-option"),
    modes("duration", &[Closed, Rate, Drain, Overload], "a burst lasts until its --burst-size connections are made, and a stall run's length is --stall-at + --stall + --stall-after; add closed, rate, drain or overload to --modes, or drop --duration"),
    modes("warmup", &[Closed, Rate], "only closed and rate runs warm up; add closed or rate to --modes, or drop --warmup"),
    modes("rate", &[Rate, Overload], "in mode stall the clients' rate is --stall-load rate:N (e.g. --stall-load rate:2000); add rate or overload to --modes, or drop --rate"),
    modes("concurrency", &[Closed], "in mode stall a closed loop's connects in flight are --stall-load closed:C (e.g. --stall-load closed:16); add closed to --modes, or drop --concurrency"),
    modes("burst-size", &[Burst], "add burst to --modes, or drop --burst-size"),
    modes("pause", &[Burst], "add burst to --modes, or drop --pause"),
    modes("connect-timeout", OVERFLOW, "closed, rate and drain runs use loadgen's own; add burst, overload or stall to --modes, or drop --connect-timeout"),
    modes("accept-delay", &[Overload, Stall], "add overload or stall to --modes, or drop --accept-delay"),
    modes("slow-acceptor", &[Burst, Overload], "add burst or overload to --modes, or drop --slow-acceptor"),
    modes("abort-on-overflow", OVERFLOW, "the private network namespace with these settings is made for burst, overload and stall runs; add one to --modes, or drop the flag"),
    modes("syncookies", OVERFLOW, "the private network namespace with these settings is made for burst, overload and stall runs; add one to --modes, or drop the flag"),
    modes("somaxconn", OVERFLOW, "the private network namespace with these settings is made for burst, overload and stall runs; add one to --modes, or drop the flag"),
    modes("stall", &[Stall], "add stall to --modes (e.g. --modes stall), or drop --stall"),
    modes("stall-load", &[Stall], "add stall to --modes (e.g. --modes stall), or drop --stall-load"),
    modes("stall-at", &[Stall], "add stall to --modes (e.g. --modes stall), or drop --stall-at"),
    modes("stall-after", &[Stall], "add stall to --modes (e.g. --modes stall), or drop --stall-after"),
    // config::external also refuses a --stall-mu whose NAME is no --server.
    modes("stall-mu", &[Stall], "it is the stall model's μ for an external server; add stall to --modes (e.g. --modes drain,stall), or drop --stall-mu"),
    engines("inflight", &[Uring], "add uring to --engines, or drop --inflight"),
    engines("accept-flags", &[Uring], "add uring to --engines, or drop --accept-flags"),
    engines("ring-setup", RINGS, "add a ring engine (uring, multishot, uring-linked) to --engines, or drop --ring-setup"),
    engines("direct", &[UringLinked], "add uring-linked to --engines, or drop --direct"),
    engines("peer-op", &[UringLinked], "add uring-linked to --engines, or drop --peer-op"),
];

/// Every `listen` flag (a test checks that none is missing).
pub(super) const LISTEN: &[Scope] = &[
    all("engine"),
    all("addr"),
    all("backlog"),
    all("count"),
    all("duration"),
    all("print-peers"),
    all("json"),
    all("accept-delay"),
    all("reuse-port"),
    all("cpu"),
    all("cpus"),
    all("records"),
    all("acceptors"),
    all("sharing"),
    all("slow-acceptor"),
    // --run-id and --dual-stack depend on other values, checked in check_listen.
    all("run-id"),
    all("dual-stack"),
    // --trace-required and --trace-out act with --trace only, checked in check_listen.
    all("trace"),
    all("trace-required"),
    all("trace-out"),
    engines(
        "inflight",
        &[Uring],
        "give --engine uring, or drop --inflight",
    ),
    engines(
        "accept-flags",
        &[Uring],
        "give --engine uring, or drop --accept-flags",
    ),
    engines(
        "ring-setup",
        RINGS,
        "give a ring engine (--engine uring, multishot or uring-linked), or drop --ring-setup",
    ),
    engines(
        "direct",
        &[UringLinked],
        "give --engine uring-linked, or drop --direct",
    ),
    engines(
        "peer-op",
        &[UringLinked],
        "give --engine uring-linked, or drop --peer-op",
    ),
];

fn names<T: Copy>(list: &[T], name: impl Fn(T) -> &'static str) -> String {
    list.iter().map(|&x| name(x)).collect::<Vec<_>>().join(",")
}

/// The first flag in `given` that acts in none of `modes` and `engines`, as an error.
fn check(
    table: &[Scope],
    given: &[String],
    modes: &[Mode],
    engines: &[EngineKind],
    engine_flag: &str,
) -> Result<(), ConfigError> {
    for s in table.iter().filter(|s| given.iter().any(|g| g == s.flag)) {
        let in_mode = s.modes.is_empty() || s.modes.iter().any(|m| modes.contains(m));
        let for_engine = s.engines.is_empty() || s.engines.iter().any(|e| engines.contains(e));
        if in_mode && for_engine {
            continue;
        }
        let (acts, chosen) = if !in_mode {
            (
                format!(
                    "acts in mode{} {} only",
                    plural(s.modes.len()),
                    names(s.modes, Mode::name)
                ),
                format!("--modes is {}", names(modes, Mode::name)),
            )
        } else {
            (
                format!(
                    "acts for engine{} {} only",
                    plural(s.engines.len()),
                    names(s.engines, EngineKind::name)
                ),
                format!("{engine_flag} is {}", names(engines, EngineKind::name)),
            )
        };
        return Err(ConfigError::FlagWithoutEffect {
            flag: s.flag,
            acts,
            chosen,
            fix: s.fix.to_string(),
        });
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Refuses a `sweep` flag that acts in none of the chosen modes and engines.
pub(super) fn check_sweep(given: &[String], a: &cli::SweepArgs) -> Result<(), ConfigError> {
    // Built-in engines by name; external servers (`--server`) are none of them, so an
    // engine flag acts on no server.
    let engines: Vec<EngineKind> = match &a.engines {
        None => EngineKind::ALL.to_vec(),
        Some(names) => EngineKind::ALL
            .into_iter()
            .filter(|e| names.iter().any(|n| n == e.name()))
            .collect(),
    };
    check(SWEEP, given, &a.modes, &engines, "--engines")
}

/// Refuses a `listen` flag that does nothing with the chosen engine and address.
pub(super) fn check_listen(given: &[String], a: &cli::ListenArgs) -> Result<(), ConfigError> {
    check(LISTEN, given, &[], &[a.engine], "--engine")?;
    let has = |f: &str| given.iter().any(|g| g == f);
    if has("run-id") && a.records.is_none() {
        return Err(ConfigError::FlagWithoutEffect {
            flag: "run-id",
            acts: "names the records of --records".into(),
            chosen: "there is no --records".into(),
            fix: "add --records FILE, or drop --run-id".into(),
        });
    }
    for flag in ["trace-required", "trace-out"] {
        if has(flag) && a.trace.is_none() {
            return Err(ConfigError::FlagWithoutEffect {
                flag,
                acts: "acts on the kernel's account of --trace kernel".into(),
                chosen: "there is no --trace".into(),
                fix: format!("add --trace kernel, or drop --{flag}"),
            });
        }
    }
    if has("dual-stack") && !a.addr.is_ipv6() {
        return Err(ConfigError::FlagWithoutEffect {
            flag: "dual-stack",
            acts: "lets an IPv6 listener take IPv4 clients too".into(),
            chosen: format!("--addr {} is IPv4", a.addr),
            fix: "give an IPv6 --addr such as [::]:8080, or drop --dual-stack".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn flags(sub: &str) -> Vec<String> {
        let c = cli::Cli::command();
        let s = c.find_subcommand(sub).expect("subcommand");
        s.get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| *l != "help")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_flag_has_a_scope() {
        for (sub, table) in [("sweep", SWEEP), ("listen", LISTEN)] {
            let flags = flags(sub);
            for f in &flags {
                assert!(
                    table.iter().any(|s| s.flag == f),
                    "{sub} --{f} has no row in config/scope.rs: say where it acts"
                );
            }
            for s in table {
                assert!(
                    flags.iter().any(|f| f == s.flag),
                    "{sub}: scope row --{} names no flag",
                    s.flag
                );
                assert!(
                    s.modes.is_empty() && s.engines.is_empty() || !s.fix.is_empty(),
                    "--{} has no fix",
                    s.flag
                );
            }
        }
    }

    /// A value each flag accepts (None: a switch).
    fn sample(flag: &str) -> Option<&'static str> {
        Some(match flag {
            "no-plots" | "quiet" | "json" | "count-syscalls" | "direct" | "abort-on-overflow"
            | "print-peers" | "reuse-port" | "dual-stack" | "trace-required" => return None,
            "trace-out" => "/tmp/acceptbench-scope-test.csv",
            "engines" | "engine" => "std",
            "duration" | "warmup" | "pause" | "connect-timeout" | "accept-delay" | "stall"
            | "stall-at" => "1s",
            "stall-after" => "2s",
            "stall-load" => "rate:100",
            "trace" => "kernel",
            "out" => "/tmp/acceptbench-scope-test",
            "sharing" => "shared",
            "slow-acceptor" => "0:1ms",
            "client-hosts" => "2",
            "server" => "s1=true",
            "server-request" => "s1=GET",
            "stall-mu" => "s1=9000",
            "attach" => "s1=127.0.0.1:9",
            "server-addr" => "10.1.2.3",
            "client-binary" | "ssh-config" | "records" => "/etc/hostname",
            "ssh-option" => "BatchMode=yes",
            "ring-setup" => "default",
            "accept-flags" => "poll-first",
            "peer-op" => "getsockopt",
            "server-cpu" | "server-cpus" | "client-cpus" | "cpu" | "cpus" => "0",
            "addr" => "127.0.0.1:0",
            "run-id" => "r1",
            _ => "1",
        })
    }

    fn refused_for(args: &[&str], flag: &str) -> bool {
        let mut argv = vec!["acceptbench"];
        argv.extend_from_slice(args);
        let (c, given) = cli::parse(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        match super::super::Command::from_cli(c, &[], &given) {
            Err(ConfigError::FlagWithoutEffect { flag: f, .. }) => {
                assert_eq!(f, flag, "{argv:?} refused another flag");
                true
            }
            // Other refusals (no root, a CPU not here) are not about where the flag acts.
            _ => false,
        }
    }

    /// Every sweep flag in every mode and with every engine: refused exactly where its
    /// row says it does nothing.
    #[test]
    fn each_sweep_flag_is_refused_exactly_where_it_does_nothing() {
        let modes = <Mode as clap::ValueEnum>::value_variants();
        for s in SWEEP
            .iter()
            .filter(|s| s.flag != "modes" && s.flag != "engines")
        {
            let value = sample(s.flag);
            let mut flag_args = vec![format!("--{}", s.flag)];
            flag_args.extend(value.map(str::to_owned));
            for &m in modes {
                let mut args = vec!["sweep".to_string(), "--modes".into(), m.name().into()];
                args.extend(flag_args.iter().cloned());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let expect = !s.modes.is_empty() && !s.modes.contains(&m);
                assert_eq!(refused_for(&args, s.flag), expect, "{args:?}");
            }
            for &e in &EngineKind::ALL {
                let mut args = vec![
                    "sweep".to_string(),
                    "--modes".into(),
                    s.modes.first().unwrap_or(&Closed).name().into(),
                    "--engines".into(),
                    e.name().into(),
                ];
                args.extend(flag_args.iter().cloned());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let expect = !s.engines.is_empty() && !s.engines.contains(&e);
                assert_eq!(refused_for(&args, s.flag), expect, "{args:?}");
            }
        }
    }

    #[test]
    fn each_listen_flag_is_refused_exactly_where_it_does_nothing() {
        for s in LISTEN {
            let mut flag_args = vec![format!("--{}", s.flag)];
            flag_args.extend(sample(s.flag).map(str::to_owned));
            for &e in &EngineKind::ALL {
                let mut args = vec!["listen".to_string()];
                if s.flag != "engine" {
                    args.extend(["--engine".to_string(), e.name().into()]);
                }
                args.extend(flag_args.iter().cloned());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut expect = !s.engines.is_empty() && !s.engines.contains(&e);
                // They depend on another flag: without records / with an IPv4 address /
                // without --trace.
                expect |= matches!(
                    s.flag,
                    "run-id" | "dual-stack" | "trace-required" | "trace-out"
                );
                assert_eq!(refused_for(&args, s.flag), expect, "{args:?}");
            }
        }
        assert!(!refused_for(
            &["listen", "--records", "/tmp/r", "--run-id", "x"],
            "run-id"
        ));
        assert!(!refused_for(
            &["listen", "--addr", "[::1]:0", "--dual-stack"],
            "dual-stack"
        ));
        for flag in [
            &["--trace-required"][..],
            &["--trace-out", "/tmp/t.csv"][..],
        ] {
            let mut args = vec!["listen", "--trace", "kernel"];
            args.extend_from_slice(flag);
            assert!(!refused_for(&args, &flag[0][2..]), "{args:?}");
        }
    }

    #[test]
    fn the_stall_load_replaces_rate_in_mode_stall() {
        let (c, given) =
            cli::parse(["acceptbench", "sweep", "--modes", "stall", "--rate", "2000"]).unwrap();
        let e = super::super::Command::from_cli(c, &[], &given)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--rate has no effect here: it acts in modes rate,overload only, and --modes is stall: in mode stall the clients' rate is --stall-load rate:N (e.g. --stall-load rate:2000); add rate or overload to --modes, or drop --rate");
    }
}
