//! `sweep --server NAME=COMMAND`, `sweep --attach NAME=ADDR:PORT[,pid=PID]` and the
//! engine names beside them: which names in `--engines` are built-in engines and which
//! are the user's servers.

use std::str::FromStr;

use super::ConfigError;
use crate::engine::EngineKind;
use crate::external::Template;

/// An external server of a sweep, run as an engine named `name`.
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    /// Its name in `--engines`, rows and file names. Leaked once per name so that a
    /// planned run (a `Copy` value) can carry it.
    pub name: &'static str,
    /// The command as given (`--attach`: its ADDR:PORT[,pid=PID]).
    pub command: String,
    /// Started per run, or already running.
    pub origin: Origin,
    /// What loadgen sends it once connected (`--server-request NAME=…`).
    pub request: Option<Vec<u8>>,
    /// The stall model's μ when the sweep has no drain rate of it (`--stall-mu
    /// NAME=RATE`), connections per second.
    pub stall_mu: Option<f64>,
    /// `--attach`: the backlog its listener has, read with sock_diag before the sweep
    /// (its runs are in that `--backlogs` cell only).
    pub listen_backlog: Option<u32>,
}

/// Where a server comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// `--server`: the command with its placeholders checked, started for each run.
    Command(Template),
    /// `--attach`: a server already running, left running.
    Attach(Attach),
}

/// A server already running (`--attach NAME=ADDR:PORT[,pid=PID]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attach {
    /// Where it listens (on this host, in its network namespace).
    pub addr: std::net::SocketAddr,
    /// Its PID, for the pauses (SIGSTOP/SIGCONT) and its CPU; none: neither.
    pub pid: Option<i32>,
}

impl ExternalConfig {
    /// Its `--attach` address and PID, if it is attached.
    pub fn attached(&self) -> Option<&Attach> {
        match &self.origin {
            Origin::Attach(a) => Some(a),
            Origin::Command(_) => None,
        }
    }
}

/// Parses every `--server NAME=COMMAND`, `--attach NAME=ADDR:PORT[,pid=PID]`,
/// `--server-request NAME=BYTES` and `--stall-mu NAME=RATE`.
pub fn servers(
    args: &[String],
    attaches: &[String],
    requests: &[String],
    stall_mus: &[String],
) -> Result<Vec<ExternalConfig>, ConfigError> {
    let mut out = commands(args)?;
    for arg in attaches {
        let s = attach(arg, &out)?;
        out.push(s);
    }
    for arg in stall_mus {
        let (server, rate) = per_server(
            &mut out,
            "stall-mu",
            arg,
            "give NAME=RATE, the server's connections per second once resumed, e.g. --stall-mu seed=9000",
            " (the built-in engines' μ is their own speed, or --accept-delay)",
        )?;
        let name = server.name;
        let rate: f64 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r > 0.0)
            .ok_or_else(|| ConfigError::BadItem {
                flag: "stall-mu",
                item: arg.clone(),
                why: format!(
                    "the rate {rate:?} must be a positive number of connections per second, e.g. {name}=9000"
                ),
            })?;
        if server.stall_mu.replace(rate).is_some() {
            return Err(ConfigError::Duplicate {
                flag: "stall-mu",
                item: name.to_string(),
            });
        }
    }
    for arg in requests {
        let (server, bytes) = per_server(
            &mut out,
            "server-request",
            arg,
            r"give NAME=BYTES, e.g. --server-request nginx='GET / HTTP/1.0\r\n\r\n'",
            "",
        )?;
        if server.request.is_some() {
            return Err(ConfigError::Duplicate {
                flag: "server-request",
                item: server.name.to_string(),
            });
        }
        server.request =
            Some(
                loadgen::config::request::parse(bytes).map_err(|e| ConfigError::BadItem {
                    flag: "server-request",
                    item: arg.clone(),
                    why: e.to_string(),
                })?,
            );
    }
    Ok(out)
}

/// A per-server flag's `NAME=VALUE`: the server named (one of `out`) and the value.
/// `form` is the fix for a missing `=`; `hint` follows "name one of the servers".
fn per_server<'a, 'v>(
    out: &'a mut [ExternalConfig],
    flag: &'static str,
    arg: &'v str,
    form: &str,
    hint: &str,
) -> Result<(&'a mut ExternalConfig, &'v str), ConfigError> {
    let bad = |why: String| ConfigError::BadItem {
        flag,
        item: arg.to_string(),
        why,
    };
    let (name, value) = arg.split_once('=').ok_or_else(|| bad(form.into()))?;
    let server = out
        .iter_mut()
        .find(|s| s.name == name.trim())
        .ok_or_else(|| {
            bad(format!(
                "there is no --server {name}=…; name one of the servers{hint}"
            ))
        })?;
    Ok((server, value))
}

/// Parses every `--server NAME=COMMAND`.
fn commands(args: &[String]) -> Result<Vec<ExternalConfig>, ConfigError> {
    let mut out: Vec<ExternalConfig> = Vec::new();
    for arg in args {
        let bad = |why: String| ConfigError::BadItem {
            flag: "server",
            item: arg.clone(),
            why,
        };
        let (name, command) = arg.split_once('=').ok_or_else(|| {
            bad("give NAME=COMMAND, e.g. --server seed='python3 examples/seed_server.py {port} {backlog}'".into())
        })?;
        let name = check_name("server", arg, name, &out)?;
        let template = Template::parse(command).map_err(|e| bad(e.to_string()))?;
        out.push(ExternalConfig {
            name,
            command: command.to_string(),
            origin: Origin::Command(template),
            request: None,
            stall_mu: None,
            listen_backlog: None,
        });
    }
    Ok(out)
}

/// A server's name, checked: the pattern, not a built-in engine, not taken.
fn check_name(
    flag: &'static str,
    arg: &str,
    name: &str,
    taken: &[ExternalConfig],
) -> Result<&'static str, ConfigError> {
    let bad = |why: String| ConfigError::BadItem {
        flag,
        item: arg.to_string(),
        why,
    };
    let name = name.trim();
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(bad(format!(
            "the name {name:?} must be 1 to 32 of a-z, 0-9, '-' and '_' (it names files and rows)"
        )));
    }
    if EngineKind::from_str(name).is_ok() {
        return Err(bad(format!(
            "{name} is a built-in engine; give your server another name, e.g. --{flag} my-{name}=…"
        )));
    }
    if taken.iter().any(|s| s.name == name) {
        return Err(ConfigError::Duplicate {
            flag,
            item: name.to_string(),
        });
    }
    Ok(Box::leak(name.to_string().into_boxed_str()))
}

/// Parses one `--attach NAME=ADDR:PORT[,pid=PID]`.
fn attach(arg: &str, taken: &[ExternalConfig]) -> Result<ExternalConfig, ConfigError> {
    let bad = |why: String| ConfigError::BadItem {
        flag: "attach",
        item: arg.to_string(),
        why,
    };
    let (name, rest) = arg.split_once('=').ok_or_else(|| {
        bad("give NAME=ADDR:PORT[,pid=PID], e.g. --attach web=127.0.0.1:8080,pid=1234".into())
    })?;
    let name = check_name("attach", arg, name, taken)?;
    let mut parts = rest.split(',');
    let addr_text = parts.next().unwrap_or("").trim();
    let addr: std::net::SocketAddr = addr_text.parse().map_err(|_| {
        bad(format!(
            "{addr_text:?} is not ADDR:PORT (an IP address and port, [v6]:port for IPv6), e.g. 127.0.0.1:8080"
        ))
    })?;
    if addr.ip().is_unspecified() {
        return Err(bad(format!(
            "{} is not an address to connect to; give one it listens on, e.g. 127.0.0.1:{}",
            addr.ip(),
            addr.port()
        )));
    }
    if addr.port() == 0 {
        return Err(bad(
            "port 0 is no listener's port; give the port it listens on".into(),
        ));
    }
    let mut pid = None;
    for part in parts {
        let value = part
            .trim()
            .strip_prefix("pid=")
            .ok_or_else(|| bad(format!("unknown option {part:?}: the only one is pid=PID")))?;
        let n: i32 = value
            .parse()
            .ok()
            .filter(|&n| n > 1)
            .ok_or_else(|| bad(format!("pid={value} is not a process id above 1")))?;
        if pid.replace(n).is_some() {
            return Err(bad("pid= is given twice; give it once".into()));
        }
    }
    Ok(ExternalConfig {
        name,
        command: rest.to_string(),
        origin: Origin::Attach(Attach { addr, pid }),
        request: None,
        stall_mu: None,
        listen_backlog: None,
    })
}

/// Splits `--engines` into built-in engines and servers (in the order given), checking
/// that every name is one or the other and every server is named. `None` (no
/// `--engines`) is every built-in engine.
pub fn split_engines(
    names: Option<Vec<String>>,
    servers: &[ExternalConfig],
) -> Result<(Vec<EngineKind>, Vec<ExternalConfig>), ConfigError> {
    let Some(names) = names else {
        if let Some(s) = servers.first() {
            return Err(ConfigError::BadItem {
                flag: "server",
                item: s.name.to_string(),
                why: format!(
                    "it is not in --engines; name it there beside the engines to compare it with, e.g. --engines std,{}",
                    s.name
                ),
            });
        }
        return Ok((EngineKind::ALL.to_vec(), Vec::new()));
    };
    let mut ours = Vec::new();
    let mut theirs: Vec<ExternalConfig> = Vec::new();
    for n in &names {
        if let Ok(k) = EngineKind::from_str(n) {
            ours.push(k);
        } else if let Some(s) = servers.iter().find(|s| s.name == n) {
            theirs.push(s.clone());
        } else {
            return Err(ConfigError::BadItem {
                flag: "engines",
                item: n.clone(),
                why: format!(
                    "neither a built-in engine ({}) nor a server given with --server {n}='COMMAND'",
                    EngineKind::ALL.map(EngineKind::name).join(", ")
                ),
            });
        }
    }
    if let Some(s) = servers.iter().find(|s| !names.iter().any(|n| n == s.name)) {
        return Err(ConfigError::BadItem {
            flag: "server",
            item: s.name.to_string(),
            why: format!(
                "it is not in --engines; add it there (e.g. --engines {},{})",
                names.join(","),
                s.name
            ),
        });
    }
    Ok((ours, theirs))
}
