//! Which engines can run on this kernel: the verdict per engine from the kernel's
//! io_uring facts ([`crate::kernel::probe`]), with what is missing and the Linux
//! version that has it. The kernel module knows nothing of engines; this does.

use serde::{Deserialize, Serialize};

use super::EngineKind;
use crate::kernel::probe::{release, UringProbe};

/// Whether an engine can run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSupport {
    /// Engine name (`std`, `uring`, `multishot`, `uring-linked`, `tokio-uring`, `tokio`).
    pub name: String,
    /// True when it can run.
    pub supported: bool,
    /// Empty when supported; otherwise what is missing and the Linux version that has it.
    pub reason: String,
}

/// Support for one engine given a probe.
pub fn engine_support(kind: EngineKind, probe: &UringProbe) -> EngineSupport {
    let reason = unsupported_reason(kind, probe, release());
    EngineSupport {
        name: kind.name().into(),
        supported: reason.is_none(),
        reason: reason.unwrap_or_default(),
    }
}

/// Why `kind` cannot run given `probe` and the kernel's (major, minor), or `None`.
pub fn unsupported_reason(
    kind: EngineKind,
    probe: &UringProbe,
    release: Option<(u32, u32)>,
) -> Option<String> {
    let kernel = release.map_or_else(|| "unknown".to_string(), |(a, b)| format!("{a}.{b}"));
    let needs = |version: &str, what: &str| {
        Some(format!(
            "needs Linux {version} ({what}); this kernel is {kernel}"
        ))
    };
    match kind {
        EngineKind::Std | EngineKind::Tokio => return None,
        EngineKind::Uring
        | EngineKind::Multishot
        | EngineKind::UringLinked
        | EngineKind::TokioUring
        | EngineKind::Compio => {}
    }
    if !probe.setup_ok {
        return Some(setup_failure(probe));
    }
    if !probe.accept {
        return needs("5.5", "IORING_OP_ACCEPT");
    }
    if !probe.async_cancel {
        return needs("5.5", "IORING_OP_ASYNC_CANCEL");
    }
    match kind {
        EngineKind::Uring if !probe.ext_arg => needs(
            "5.11",
            "IORING_FEAT_EXT_ARG, to wait with a timeout; in 5.10-stable from 5.10.162 on",
        ),
        EngineKind::Multishot if !probe.accept_multishot => needs("5.19", "multishot accept"),
        EngineKind::Multishot | EngineKind::UringLinked if !probe.ext_arg => needs(
            "5.11",
            "IORING_FEAT_EXT_ARG, to wait with a timeout; in 5.10-stable from 5.10.162 on",
        ),
        EngineKind::UringLinked if !probe.accept_multishot => needs("5.19", "multishot accept"),
        EngineKind::UringLinked if !probe.close => needs("5.6", "IORING_OP_CLOSE"),
        EngineKind::UringLinked if !probe.uring_cmd_sockopt => needs(
            "6.7",
            "IORING_OP_URING_CMD SOCKET_URING_OP_GETSOCKOPT, to read the peer in the ring",
        ),
        EngineKind::Compio if !probe.ext_arg => needs(
            "5.11",
            "IORING_FEAT_EXT_ARG, which compio's driver waits with; in 5.10-stable from 5.10.162 on",
        ),
        EngineKind::TokioUring if release.is_some_and(|r| r < (5, 10)) => {
            needs("5.10", "the io_uring features tokio-uring 0.5 uses")
        }
        _ => None,
    }
}

/// Why the 6.10 accept flags (`uring --accept-flags` other than none) cannot be used
/// given `probe`, or `None`.
pub fn accept_flags_unsupported(probe: &UringProbe) -> Option<String> {
    (!probe.accept_flags).then(|| {
        let kernel = release().map_or_else(|| "unknown".to_string(), |(a, b)| format!("{a}.{b}"));
        format!(
            "needs Linux 6.10 (IORING_ACCEPT_POLL_FIRST, IORING_ACCEPT_DONTWAIT and IORING_CQE_F_SOCK_NONEMPTY on accepts); this kernel is {kernel}"
        )
    })
}

/// Why the in-ring getsockname with the peer flag (`uring-linked --peer-op
/// getsockname`) cannot be used given `probe`, or `None`.
pub fn getsockname_unsupported(probe: &UringProbe) -> Option<String> {
    (!probe.uring_cmd_getsockname).then(|| {
        let kernel = release().map_or_else(|| "unknown".to_string(), |(a, b)| format!("{a}.{b}"));
        format!(
            "needs Linux 6.19 (IORING_OP_URING_CMD SOCKET_URING_OP_GETSOCKNAME with the peer flag); this kernel is {kernel}: use --peer-op getsockopt or auto"
        )
    })
}

fn setup_failure(probe: &UringProbe) -> String {
    let err = probe
        .setup_error
        .clone()
        .unwrap_or_else(|| "io_uring_setup failed".into());
    match probe.io_uring_disabled {
        Some(2) => "io_uring is disabled (kernel.io_uring_disabled=2); enable it with `sysctl -w kernel.io_uring_disabled=0`".into(),
        Some(1) => format!(
            "io_uring is restricted to root and kernel.io_uring_group (kernel.io_uring_disabled=1): {err}"
        ),
        _ => format!("{err} (io_uring needs Linux 5.1 built with CONFIG_IO_URING; in containers a seccomp profile may block it)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::probe::tests::full;

    #[test]
    fn missing_uring_cmd_sockopt_names_the_version() {
        let p = UringProbe {
            uring_cmd_sockopt: false,
            ..full()
        };
        let r = unsupported_reason(EngineKind::UringLinked, &p, Some((6, 1))).unwrap();
        assert_eq!(
            r,
            "needs Linux 6.7 (IORING_OP_URING_CMD SOCKET_URING_OP_GETSOCKOPT, to read the peer in the ring); this kernel is 6.1"
        );
        assert_eq!(
            unsupported_reason(EngineKind::Multishot, &p, Some((6, 1))),
            None
        );
        let p = UringProbe {
            accept_multishot: false,
            ..p
        };
        let r = unsupported_reason(EngineKind::UringLinked, &p, Some((5, 15))).unwrap();
        assert!(r.starts_with("needs Linux 5.19 (multishot accept)"), "{r}");
    }

    #[test]
    fn missing_getsockname_names_linux_6_19_and_the_fallback() {
        let p = UringProbe {
            uring_cmd_getsockname: false,
            ..full()
        };
        let r = getsockname_unsupported(&p).unwrap();
        assert!(r.contains("needs Linux 6.19"), "{r}");
        assert!(r.contains("--peer-op getsockopt"), "{r}");
        assert_eq!(getsockname_unsupported(&full()), None);
    }

    #[test]
    fn missing_accept_flags_name_linux_6_10() {
        let p = UringProbe {
            accept_flags: false,
            ..full()
        };
        let r = accept_flags_unsupported(&p).unwrap();
        assert!(
            r.starts_with("needs Linux 6.10 (IORING_ACCEPT_POLL_FIRST"),
            "{r}"
        );
        assert_eq!(accept_flags_unsupported(&full()), None);
        // The engine itself still runs without them.
        assert_eq!(
            unsupported_reason(EngineKind::Uring, &p, Some((6, 8))),
            None
        );
    }

    #[test]
    fn std_and_tokio_always_run() {
        let nothing = UringProbe::default();
        for kind in [EngineKind::Std, EngineKind::Tokio] {
            assert_eq!(unsupported_reason(kind, &nothing, Some((4, 19))), None);
        }
    }

    #[test]
    fn missing_multishot_names_the_version() {
        let p = UringProbe {
            accept_multishot: false,
            ..full()
        };
        let r = unsupported_reason(EngineKind::Multishot, &p, Some((5, 15))).unwrap();
        assert_eq!(
            r,
            "needs Linux 5.19 (multishot accept); this kernel is 5.15"
        );
        assert_eq!(
            unsupported_reason(EngineKind::Uring, &p, Some((5, 15))),
            None
        );
    }

    #[test]
    fn disabled_io_uring_is_named() {
        let p = UringProbe {
            setup_ok: false,
            setup_error: Some("io_uring_setup failed: Operation not permitted".into()),
            io_uring_disabled: Some(2),
            ..UringProbe::default()
        };
        for kind in [
            EngineKind::Uring,
            EngineKind::Multishot,
            EngineKind::UringLinked,
            EngineKind::TokioUring,
        ] {
            let r = unsupported_reason(kind, &p, Some((6, 8))).unwrap();
            assert!(
                r.starts_with("io_uring is disabled (kernel.io_uring_disabled=2)"),
                "{r}"
            );
        }
    }

    #[test]
    fn every_engine_has_a_consistent_verdict_here() {
        let p = crate::kernel::probe::probe_uring();
        for kind in EngineKind::ALL {
            let s = engine_support(kind, &p);
            assert_eq!(s.supported, s.reason.is_empty(), "{s:?}");
        }
    }
}
