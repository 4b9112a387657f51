//! Client hosts reached with the system's OpenSSH: `ssh://[user@]host[:port][/path]`
//! names one (the path is its acceptbench binary, default `acceptbench` on its PATH),
//! a comma-separated list or a hosts file (`@FILE`, one per line, `#` comments) names
//! several; a plain number K is the local test bed of K network namespaces instead.
//! Also what a host says about itself (`acceptbench host-info`) and the quoting of a
//! remote command for the remote shell. Parsing only: nothing here runs ssh.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One client host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// Remote user (ssh's default, or `~/.ssh/config`'s, when absent).
    pub user: Option<String>,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// ssh port (ssh's default, or the config's, when absent).
    pub port: Option<u16>,
    /// The acceptbench binary there; `None`: `acceptbench` on the remote PATH.
    pub binary: Option<String>,
}

impl SshHost {
    /// `[user@]host` as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The binary to run there.
    pub fn binary(&self) -> &str {
        self.binary.as_deref().unwrap_or("acceptbench")
    }

    /// `[user@]host[:port]`: how reports name the host.
    pub fn label(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let host = match &self.user {
            Some(u) => format!("{u}@{host}"),
            None => host,
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

impl fmt::Display for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh://{}", self.label())?;
        if let Some(b) = &self.binary {
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

const URL_USAGE: &str = "write ssh://[user@]host[:port][/path/to/acceptbench], e.g. ssh://bench@client1 or ssh://10.0.0.2:2222/opt/acceptbench/acceptbench";

impl FromStr for SshHost {
    type Err = String;
    fn from_str(s: &str) -> Result<SshHost, String> {
        let rest = s
            .trim()
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("{s:?} is not an ssh:// address: {URL_USAGE}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if !hostport.starts_with('[') && hostport.matches(':').count() > 1 {
            return Err(format!(
                "{s:?}: an IPv6 address goes in brackets, with the port after them: ssh://[fd00::2]:22"
            ));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: an IPv6 address needs its closing ']'"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let name_ok = |t: &str, extra: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(c))
        };
        if host.starts_with('-') || user.is_some_and(|u| u.starts_with('-')) {
            return Err(format!(
                "{s:?}: a host or user may not start with '-' (ssh would read it as an option)"
            ));
        }
        if !name_ok(host, ":%") {
            return Err(format!(
                "{s:?}: the host {host:?} is not a host name or address: {URL_USAGE}"
            ));
        }
        if let Some(u) = user.filter(|u| !name_ok(u, "")) {
            return Err(format!(
                "{s:?}: the user {u:?} has characters a user name cannot have"
            ));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("{s:?}: the port {p:?} is not 1 to 65535"))
            })
            .transpose()?;
        let binary = path.filter(|p| *p != "/").map(str::to_string);
        if let Some(b) = &binary {
            if b.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "{s:?}: the binary path {b:?} has white space or control characters"
                ));
            }
        }
        Ok(SshHost {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            binary,
        })
    }
}

/// `--client-hosts`: the local test bed or real hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHosts {
    /// K client network namespaces on this machine, made per run.
    Namespaces(u32),
    /// Hosts reached over ssh.
    Ssh(Vec<SshHost>),
}

/// Parses `--client-hosts` text: a count, a comma-separated list of ssh:// addresses,
/// or the contents of a hosts file (`file`: its name, for messages).
pub fn parse_client_hosts(text: &str, file: Option<&str>) -> Result<ClientHosts, String> {
    let t = text.trim();
    if file.is_none() && !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return t
            .parse::<u32>()
            .ok()
            .filter(|k| (1..=64).contains(k))
            .map(ClientHosts::Namespaces)
            .ok_or_else(|| format!("{t}: give 1 to 64 client namespaces"));
    }
    let mut hosts = Vec::new();
    let items: Vec<(usize, &str)> = match file {
        Some(_) => text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()))
            .filter(|(_, l)| !l.is_empty())
            .collect(),
        None => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| (0, s))
            .collect(),
    };
    for (line, item) in items {
        let h: SshHost = item.parse().map_err(|e: String| match file {
            Some(f) => format!("{f}:{line}: {e}"),
            None => e,
        })?;
        if hosts.iter().any(|o: &SshHost| o.label() == h.label()) {
            return Err(format!("{} is given twice: give each host once", h.label()));
        }
        hosts.push(h);
    }
    if hosts.is_empty() {
        return Err(match file {
            Some(f) => format!("{f} names no host: one ssh://… address per line"),
            None => format!("no host given: {URL_USAGE}"),
        });
    }
    Ok(ClientHosts::Ssh(hosts))
}

/// How every ssh of a sweep is made, beside the user's own `~/.ssh/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    /// `-F FILE`: an ssh config file instead of `~/.ssh/config`.
    pub config: Option<std::path::PathBuf>,
    /// `-o OPTION`s, in order.
    pub options: Vec<String>,
}

/// `s` as one word for a POSIX shell: single-quoted, quotes inside escaped.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What `acceptbench host-info` says about a host: enough to tell whether its
/// acceptbench can be driven by this one, and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// The package version.
    pub acceptbench_version: String,
    /// The results format it writes (report::meta::FORMAT_VERSION).
    pub format_version: u32,
    /// The records format its loadgen writes.
    pub records_version: u32,
    /// Host name.
    pub host: String,
    /// CLOCK_REALTIME ns since the epoch when it answered.
    pub realtime_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_addresses_parse_with_and_without_their_parts() {
        let h: SshHost = "ssh://bench@client1:2222/opt/ab/acceptbench"
            .parse()
            .unwrap();
        assert_eq!(h.user.as_deref(), Some("bench"));
        assert_eq!((h.host.as_str(), h.port), ("client1", Some(2222)));
        assert_eq!(h.binary(), "/opt/ab/acceptbench");
        assert_eq!(h.destination(), "bench@client1");
        assert_eq!(h.to_string(), "ssh://bench@client1:2222/opt/ab/acceptbench");
        let h: SshHost = "ssh://10.0.0.2".parse().unwrap();
        assert_eq!(
            (h.user.as_deref(), h.port, h.binary()),
            (None, None, "acceptbench")
        );
        let h: SshHost = "ssh://root@[fd00::2]:22/x".parse().unwrap();
        assert_eq!(
            (h.host.as_str(), h.label()),
            ("fd00::2", "root@[fd00::2]:22".to_string())
        );
        for bad in [
            "client1",
            "ssh://",
            "ssh://a b",
            "ssh://host:0",
            "ssh://host:99999",
            "ssh://us;er@host",
            "ssh://host/a b",
            "ssh://[fd00::2",
            "ssh://fd00::2",
            "ssh://-oProxyCommand=x",
            "ssh://-x@host",
        ] {
            assert!(bad.parse::<SshHost>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn client_hosts_are_a_count_a_list_or_a_file() {
        assert_eq!(
            parse_client_hosts("3", None),
            Ok(ClientHosts::Namespaces(3))
        );
        assert!(parse_client_hosts("0", None)
            .unwrap_err()
            .contains("1 to 64"));
        let ClientHosts::Ssh(h) = parse_client_hosts("ssh://a, ssh://b:2", None).unwrap() else {
            panic!("not ssh");
        };
        assert_eq!(h.len(), 2);
        assert!(parse_client_hosts("ssh://a,ssh://a", None)
            .unwrap_err()
            .contains("given twice"));
        let file = "# bench clients\nssh://root@c1\n\nssh://root@c2 # second\n";
        let ClientHosts::Ssh(h) = parse_client_hosts(file, Some("hosts.txt")).unwrap() else {
            panic!("not ssh");
        };
        assert_eq!(h[1].destination(), "root@c2");
        let e = parse_client_hosts("ssh://ok\nnot-a-url\n", Some("hosts.txt")).unwrap_err();
        assert!(e.starts_with("hosts.txt:2: "), "{e}");
        assert!(parse_client_hosts("# nothing\n", Some("h"))
            .unwrap_err()
            .contains("names no host"));
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
