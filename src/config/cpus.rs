//! Which CPUs the acceptor(s) and loadgen run on, chosen from the CPUs this process
//! may run on (`sched_getaffinity`), with errors that name the allowed ones.

use super::ConfigError;

pub(super) fn check_cpu(flag: &'static str, cpu: usize) -> Result<usize, ConfigError> {
    let allowed = common::affinity::allowed_cpus();
    if !allowed.contains(&cpu) {
        return Err(ConfigError::NoSuchCpu { flag, cpu, allowed });
    }
    Ok(cpu)
}

/// The sweep's CPUs from the allowed set (`sched_getaffinity`, not `0..n`: under
/// `taskset -c 1` CPU 0 is not ours): the server on `server` or the first allowed CPU,
/// the clients on `clients` or every other allowed CPU, or on the server's own CPU
/// when it is the only one.
pub(super) fn choose_cpus(
    server: Option<usize>,
    clients: Option<Vec<usize>>,
    allowed: &[usize],
) -> Result<(usize, Vec<usize>), ConfigError> {
    let check = |flag: &'static str, cpu: usize| {
        if allowed.contains(&cpu) {
            Ok(cpu)
        } else {
            Err(ConfigError::NoSuchCpu {
                flag,
                cpu,
                allowed: allowed.to_vec(),
            })
        }
    };
    let server = match server {
        Some(cpu) => check("server-cpu", cpu)?,
        None => allowed.first().copied().unwrap_or(0),
    };
    let clients = match clients {
        Some(list) => list
            .into_iter()
            .map(|c| check("client-cpus", c))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let others: Vec<usize> = allowed.iter().copied().filter(|&c| c != server).collect();
            if others.is_empty() {
                vec![server]
            } else {
                others
            }
        }
    };
    Ok((server, clients))
}

/// The acceptor CPUs: those given, else every allowed CPU not given to loadgen, else
/// the server CPU (on a 2-core machine: CPU 0 for every acceptor).
pub(super) fn choose_server_cpus(
    given: Option<Vec<usize>>,
    server: usize,
    server_given: bool,
    clients: &[usize],
    allowed: &[usize],
) -> Result<Vec<usize>, ConfigError> {
    if let Some(list) = given {
        return list
            .into_iter()
            .map(|c| {
                if allowed.contains(&c) {
                    Ok(c)
                } else {
                    Err(ConfigError::NoSuchCpu {
                        flag: "server-cpus",
                        cpu: c,
                        allowed: allowed.to_vec(),
                    })
                }
            })
            .collect();
    }
    let mut free: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !clients.contains(c))
        .collect();
    if server_given || free.is_empty() {
        return Ok(vec![server]);
    }
    // The server CPU first, so acceptor 0 sits where a single acceptor would.
    free.retain(|&c| c != server);
    free.insert(0, server);
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_allowed_set() {
        assert_eq!(choose_cpus(None, None, &[1]).unwrap(), (1, vec![1]));
        assert_eq!(
            choose_cpus(None, None, &[2, 5, 7]).unwrap(),
            (2, vec![5, 7])
        );
        assert_eq!(
            choose_cpus(Some(5), None, &[2, 5, 7]).unwrap(),
            (5, vec![2, 7])
        );
        assert_eq!(
            choose_cpus(None, Some(vec![7]), &[2, 5, 7]).unwrap(),
            (2, vec![7])
        );
    }

    #[test]
    fn a_cpu_outside_the_allowed_set_is_named_with_the_allowed_ones() {
        let err = choose_cpus(Some(0), None, &[1]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--server-cpu 0"), "{msg}");
        assert!(msg.contains("CPUs 1 only"), "{msg}");
        let err = choose_cpus(None, Some(vec![1, 4]), &[0, 1, 2, 3]).unwrap_err();
        assert!(err.to_string().contains("--client-cpus 4"), "{err}");
        assert!(err.to_string().contains("CPUs 0-3 only"), "{err}");
    }
}
