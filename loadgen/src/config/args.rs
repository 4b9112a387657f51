//! [`Config::to_args`]: the command line that turns back into a config, so that a
//! caller starting loadgen as a child process (acceptbench's sweep) passes a typed
//! config across the process boundary; round-trip tested against the parser.

use std::time::Duration;

use super::{CloseMode, Config, MethodChoice, Mode, RingSetup, SocketOps};

impl Config {
    /// The command line that [`Config::from_args`] turns back into this config
    /// (program name not included). This is how a caller that starts loadgen as a
    /// child process (acceptbench's sweep) passes a typed config across the seam.
    pub fn to_args(&self) -> Vec<String> {
        let ms = |d: Duration| humantime::format_duration(d).to_string().replace(' ', "");
        let mut a: Vec<String> = vec!["--target".into(), self.target.to_string()];
        let mut push = |flag: &str, value: String| {
            a.push(flag.into());
            a.push(value);
        };
        push("--mode", self.mode.name().into());
        match self.mode {
            Mode::Rate { rate_per_s } => push("--rate", rate_per_s.to_string()),
            Mode::Burst { rounds } => push("--rounds", rounds.to_string()),
            Mode::Closed => {}
        }
        if !matches!(self.mode, Mode::Burst { .. }) {
            push("--concurrency", self.concurrency.to_string());
        }
        if let Some(n) = self.connections {
            push("--connections", n.to_string());
        }
        if let Some(d) = self.duration {
            push("--duration", ms(d));
        }
        if !self.warmup.is_zero() {
            push("--warmup", ms(self.warmup));
        }
        push("--threads", self.threads.to_string());
        if !self.cpus.is_empty() {
            let cpus: Vec<String> = self.cpus.iter().map(usize::to_string).collect();
            push("--cpus", cpus.join(","));
        }
        if let Some(src) = &self.sources {
            push("--sources", src.to_arg());
        }
        push("--connect-timeout", ms(self.connect_timeout));
        if let Some(r) = &self.server_request {
            push("--server-request", super::request::escape(r));
        }
        if let Some(d) = self.serve_timeout {
            push("--serve-timeout", ms(d));
        }
        let method = match self.method {
            MethodChoice::Auto => "auto",
            MethodChoice::Uring => "uring",
            MethodChoice::Std => "std",
            MethodChoice::Epoll => "epoll",
            MethodChoice::Blocking => "blocking",
        };
        push("--method", method.into());
        if self.ring_setup != RingSetup::Defer {
            push("--ring-setup", self.ring_setup.name().into());
        }
        if self.socket_ops != SocketOps::Auto {
            push("--socket-ops", self.socket_ops.name().into());
        }
        let o = &self.output;
        for (path, flag) in [
            (&o.hgrm, "--hgrm"),
            (&o.served_hgrm, "--served-hgrm"),
            (&o.hlog, "--hlog"),
            (&o.records, "--records"),
            (&o.trace_out, "--trace-out"),
        ] {
            if let Some(p) = path {
                push(flag, p.display().to_string());
            }
        }
        if let Some(id) = &o.run_id {
            push("--run-id", id.clone());
        }
        if o.trace_kernel {
            push("--trace", "kernel".into());
        }
        let switches = [
            (self.close == CloseMode::Graceful, "--graceful-close"),
            (self.wait_close, "--wait-close"),
            (self.close_early, "--close-early"),
            (o.sync_stdio, "--sync-stdio"),
            (o.remote, "--remote"),
            (o.json, "--json"),
            (o.quiet, "--quiet"),
            (o.trace_required, "--trace-required"),
        ];
        a.extend(switches.iter().filter(|s| s.0).map(|s| s.1.to_string()));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::cfg;
    use super::*;

    #[test]
    fn to_args_round_trips_through_the_parser() {
        let cases: &[&[&str]] = &[
            &["--target", "127.0.0.1:9"],
            &[
                "--target",
                "127.0.0.1:9",
                "--mode",
                "rate",
                "--rate",
                "2500.5",
                "--duration",
                "1s",
                "--warmup",
                "250ms",
            ],
            &[
                "--target",
                "127.0.0.1:9",
                "--mode",
                "closed",
                "--concurrency",
                "32",
                "--threads",
                "2",
                "--cpus",
                "0",
                "--sources",
                "127.0.0.2-127.0.0.9",
                "--json",
                "--quiet",
                "--records",
                "/tmp/r.bin",
                "--remote",
                "--trace",
                "kernel",
                "--trace-required",
                "--trace-out",
                "/tmp/t.csv",
            ],
            &[
                "--target",
                "[::1]:9",
                "--sources",
                "::1",
                "--mode",
                "burst",
                "--connections",
                "17",
                "--rounds",
                "1000",
                "--sync-stdio",
                "--close-early",
                "--connect-timeout",
                "2s",
                "--method",
                "epoll",
            ],
            &[
                "--target",
                "127.0.0.1:9",
                "--method",
                "uring",
                "--ring-setup",
                "coop",
                "--socket-ops",
                "ring",
            ],
            &["--target", "127.0.0.1:9", "--socket-ops", "syscall"],
            &[
                "--target",
                "127.0.0.1:9",
                "--server-request",
                "\\x40x GET / HTTP/1.0\\r\\n\\r\\n\\x00",
                "--serve-timeout",
                "5s",
                "--served-hgrm",
                "/tmp/s.hgrm",
            ],
            &[
                "--target",
                "127.0.0.1:9",
                "--graceful-close",
                "--wait-close",
                "--hgrm",
                "/tmp/h.hgrm",
                "--hlog",
                "/tmp/h.hlog",
                "--connections",
                "10",
            ],
            &[
                "--target",
                "127.0.0.1:9",
                "--mode",
                "rate",
                "--rate",
                "100",
                "--concurrency",
                "1",
                "--method",
                "blocking",
                "--duration",
                "1m 2s 3ms",
            ],
        ];
        for args in cases {
            let a = cfg(args).unwrap();
            let mut back = vec!["loadgen".to_string()];
            back.extend(a.to_args());
            let b = Config::from_args(back.clone())
                .expect("clap accepts")
                .unwrap();
            assert_eq!(a, b, "{args:?} → {back:?}");
        }
    }
}
