//! What /proc says about an external server's process group: its live members, their
//! CPU time (every thread of every member), and the sockets they hold. Reads only.

use std::path::Path;

/// Processes scanned at most in /proc (bounds the scan on any host).
const MAX_PROCS: usize = 1 << 16;

/// Fields of /proc/PID/stat after the command name: state, ppid, pgrp, …, utime, stime.
struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
    utime: u64,
    stime: u64,
}

/// Parses a stat line; the command name (field 2) may hold spaces and parentheses, so
/// the fields are counted from its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is f[n - 3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// Every live (not zombie) process: (pid, its stat).
fn live() -> Vec<(i32, Stat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.take(MAX_PROCS)
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let s = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            (s.state != 'Z' && s.state != 'X').then_some((pid, s))
        })
        .collect()
}

/// PIDs of the live (not zombie) processes in process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    live()
        .into_iter()
        .filter(|(_, s)| s.pgrp == pgid)
        .map(|(pid, _)| pid)
        .collect()
}

/// `pid` and its live descendants (an attached server's processes), `pid` first; empty
/// when `pid` is not running.
pub fn tree_members(pid: i32) -> Vec<i32> {
    let all = live();
    if !all.iter().any(|(p, _)| *p == pid) {
        return Vec::new();
    }
    let mut out = vec![pid];
    // Each pass adds the children of what is in; the depth is bounded by the count.
    let mut i = 0;
    while i < out.len() && out.len() < MAX_PROCS {
        let parent = out[i];
        out.extend(
            all.iter()
                .filter(|(_, s)| s.ppid == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// Whether `pid` leads a process group (its group id is its own PID).
pub fn leads_group(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| parse_stat(&t))
        .is_some_and(|s| s.pgrp == pid)
}

/// CPU seconds used so far by every thread of every live process in group `pgid`:
/// each thread's time on a CPU from `/proc/…/task/TID/schedstat` (ns), or where that
/// is absent (no CONFIG_SCHED_INFO) its user + system time from `stat` (clock ticks,
/// 10 ms each at the usual USER_HZ: coarse over short windows). A member that exited
/// takes its time with it, so a difference over a window counts the processes alive
/// at both ends.
pub fn group_cpu_s(pgid: i32) -> f64 {
    pids_cpu_s(&group_members(pgid))
}

/// CPU seconds used so far by every thread of `pids`, as [`group_cpu_s`].
pub fn pids_cpu_s(pids: &[i32]) -> f64 {
    // SAFETY: sysconf with a valid name has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total_s = 0.0;
    for &pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.take(MAX_PROCS).flatten() {
            let on_cpu_ns = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = on_cpu_ns {
                total_s += ns as f64 * 1e-9;
            } else if let Some(s) = std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|t| parse_stat(&t))
            {
                total_s += (s.utime + s.stime) as f64 / hz;
            }
        }
    }
    total_s
}

/// Inodes of the sockets the processes of group `pgid` hold open.
pub fn group_socket_inodes(pgid: i32) -> Vec<u32> {
    pids_socket_inodes(&group_members(pgid))
}

/// Inodes of the sockets `pids` hold open.
pub fn pids_socket_inodes(pids: &[i32]) -> Vec<u32> {
    let mut out = Vec::new();
    for &pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.take(MAX_PROCS).flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
            {
                out.push(inode);
            }
        }
    }
    out
}

/// The last `n` non-empty lines of `path` (at most its last 64 KiB), oldest first.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(64 * 1024).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "42 (a (b) c) S 1 40 40 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.state, s.pgrp, s.utime, s.stime), ('S', 40, 7, 3));
    }

    #[test]
    fn this_process_is_in_its_group_and_uses_cpu() {
        // SAFETY: getpgrp has no failure mode and no memory effects.
        let pgid = unsafe { libc::getpgrp() };
        assert!(group_members(pgid).contains(&(std::process::id() as i32)));
        // No spinning here (it would take CPU from the timing tests running beside):
        // a test process has used some CPU by now.
        assert!(group_cpu_s(pgid) > 0.0);
    }

    #[test]
    fn a_process_tree_holds_its_children() {
        let me = std::process::id() as i32;
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = tree_members(me);
        let pid = child.id() as i32;
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree.first(), Some(&me));
        assert!(tree.contains(&pid), "{tree:?} lacks {pid}");
        assert!(tree_members(pid).is_empty(), "a reaped child has no tree");
    }
}
