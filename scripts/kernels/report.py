#!/usr/bin/env python3
"""Capability matrix, behaviour table and speed ratios per kernel, in Markdown.

Reads run directories written by `acceptbench sweep` (as scripts/kernels/run.sh
collects them): meta.json, summary.csv, cells.csv, and probe.json (`acceptbench
probe --json`, put beside each run by run.sh and the guest's init). Runs are
grouped by kernel release; within a kernel, a run whose rows are burst runs is a
behaviour run (with tcp_abort_on_overflow=1 or not), any other run a speed run.
Standard library only.

    python3 scripts/kernels/report.py RUN_DIR...
"""
import csv
import json
import os
import re
import sys

ENGINES = ["std", "uring", "multishot", "uring-linked", "tokio-uring", "tokio"]
# (probe.json field, column title, the Linux version the code/README say it needs)
# — the versions as src/kernel/probe.rs states them (UringProbe::features).
FEATURES = [
    ("accept", "accept", "5.5"),
    ("accept_multishot", "multishot accept", "5.19"),
    ("ext_arg", "EXT_ARG", "5.11"),
    ("uring_cmd_sockopt", "uring_cmd sockopt", "6.7"),
    ("direct_descriptors", "direct descriptors", "5.19"),
    ("coop_taskrun", "COOP_TASKRUN", "5.19"),
    ("defer_taskrun", "DEFER_TASKRUN", "6.1"),
    ("socket_op", "OP_SOCKET", "5.19"),
    ("uring_cmd_getsockname", "in-ring getsockname", "6.19"),
]


def cell_series(c):
    """A cells.csv row's engine as the run labels it: uring-linked with the in-ring
    getsockname (peer_op getsockname) is uring-linked.gsn, beside plain uring-linked."""
    return c["engine"] + (".gsn" if c.get("peer_op") == "getsockname" else "")


def version_tuple(release):
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_csv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


class Run:
    def __init__(self, path):
        self.path = path.rstrip("/")
        self.name = os.path.basename(self.path)
        self.meta = read_json(os.path.join(self.path, "meta.json")) or {}
        self.probe = read_json(os.path.join(self.path, "probe.json"))
        self.rows = read_csv(os.path.join(self.path, "summary.csv"))
        self.cells = read_csv(os.path.join(self.path, "cells.csv"))
        pkg = os.path.join(self.path, "kernel-package")
        self.package = open(pkg).read().strip() if os.path.exists(pkg) else ""
        self.release = self.meta.get("kernel_release", "?")
        self.virtualised = self.meta.get("virtualised") or "no"
        modes = {r.get("mode") for r in self.rows}
        self.burst = bool(modes) and modes <= {"burst", "overload"}
        self.stall_run = bool(modes) and modes <= {"stall"}
        self.stall = read_csv(os.path.join(self.path, "stall.csv"))
        command = " ".join(self.meta.get("command") or []) if isinstance(
            self.meta.get("command"), list) else str(self.meta.get("command", ""))
        self.abort = "--abort-on-overflow" in command or any(
            r.get("tcp_abort_on_overflow") == "1" for r in self.rows)
        self.nocookies = any(r.get("tcp_syncookies") == "0" for r in self.rows) or bool(
            re.search(r"--syncookies[ =]0\b", command))


def group(runs):
    kernels = {}
    for r in runs:
        kernels.setdefault(r.release, []).append(r)
    return sorted(kernels.items(), key=lambda kv: version_tuple(kv[0]))


def probe_of(runs):
    for r in runs:
        if r.probe:
            return r.probe
    return None


def label(release, runs):
    emu = any(r.virtualised == "tcg" for r in runs)
    return f"{release}" + (" (TCG)" if emu else " (host)")


def kernels_section(kernels):
    out = ["### Kernels and runs", ""]
    out.append("| kernel | Debian package | virtualised | runs |")
    out.append("|---|---|---|---|")
    for rel, runs in kernels:
        pkg = next((f"`{r.package}`" for r in runs if r.package), "— (the host's own)")
        names = ", ".join(f"[{r.name}](../{r.name}/README.md)" for r in runs)
        out.append(f"| {rel} | {pkg} | {runs[0].virtualised} | {names} |")
    return out


def capability_section(kernels):
    out = ["### What each kernel can do (`acceptbench probe --json`, probe.json beside each run)", ""]
    head = ["kernel"] + ENGINES + [f"{t} ({v})" for _, t, v in FEATURES]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---" * len(head) + "|")
    reasons = {}
    for rel, runs in kernels:
        p = probe_of(runs)
        if not p:
            out.append(f"| {rel} | " + " | ".join(["?"] * (len(head) - 1)) + " |")
            continue
        engines = {e["name"]: e for e in p.get("engines", [])}
        cells = []
        for name in ENGINES:
            e = engines.get(name)
            if e is None:
                cells.append("—")
            elif e.get("supported"):
                cells.append("yes")
            else:
                reason = re.sub(r"; this kernel is [\d.]+$", "", e.get("reason", ""))
                reasons.setdefault(reason, len(reasons) + 1)
                cells.append(f"no [{reasons[reason]}]")
        u = p.get("io_uring", {})
        for field, _, _ in FEATURES:
            cells.append("yes" if u.get(field) else "no")
        out.append(f"| {label(rel, runs)} | " + " | ".join(cells) + " |")
    out.append("")
    for reason, n in reasons.items():
        out.append(f"[{n}] {reason}  ")
    out += ["", "Versions in the headers are what src/kernel/probe.rs says each feature needs."]
    out += checks(kernels)
    return out


def checks(kernels):
    """Each "needs Linux X" statement against what the kernels did."""
    out = ["", "Each \"needs Linux X\" statement against these kernels:", ""]
    for field, title, need in FEATURES:
        need_t = version_tuple(need)
        early, late = [], []
        for rel, runs in kernels:
            p = probe_of(runs)
            if not p:
                continue
            has = bool(p.get("io_uring", {}).get(field))
            v = version_tuple(rel)
            if has and v < need_t:
                early.append(rel)
            if not has and v >= need_t:
                late.append(rel)
        verdict = "holds"
        if early:
            verdict = f"**present before {need}** on {', '.join(early)} (a backport)"
        if late:
            verdict += f"; **missing** on {', '.join(late)} although ≥ {need}"
        out.append(f"- {title} (needs {need}): {verdict}")
    return out


def modes_of(rows):
    return "<br>".join(r.get("syn_retry_modes") or "none" for r in rows) or "—"


def int_or(v, d=0):
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return d


def ok_rows(runs):
    return [x for r in runs for x in r.rows if x.get("status") == "ok"]


def counts(a):
    return (f"{a.get('accepted')}/{a.get('unmatched_client')}/{a.get('reset')}/"
            f"{int_or(a.get('pending')) + int_or(a.get('timeout'))}")


def outcome(a):
    return f"{a.get('overflow_outcome') or '—'} ({counts(a)})"


def behaviour_section(kernels):
    if not any(r.burst for _, runs in kernels for r in runs):
        return []
    out = ["### How each kernel behaves (bursts against a paused acceptor, private network namespace)", ""]
    out.append("| kernel | somaxconn (default) | tcp_max_syn_backlog | B | queue max / B+1 | attempted | ListenOverflows while paused | client-only (syncookies default) | SYN retry modes, syncookies default | SYN retry modes, syncookies=0 (a/c/r/p) | syncookies=0, tcp_abort_on_overflow=1: retry modes; outcome (a/c/r/p) |")
    out.append("|---|---:|---:|---:|---|---:|---|---|---|---|---|")
    for rel, runs in kernels:
        sysctls = runs[0].meta.get("sysctls", {})
        rows = ok_rows(r for r in runs if r.burst and not r.abort and not r.nocookies)
        nc = ok_rows(r for r in runs if r.burst and r.nocookies and not r.abort)
        ab = ok_rows(r for r in runs if r.burst and r.abort)
        first = (rows or nc or ab or [{}])[0]
        b = int_or(first.get("backlog"), -1)
        allr = rows + nc + ab
        qmax = "/".join(sorted({x.get("queue_max", "?") for x in allr})) or "—"
        att = "/".join(sorted({x.get("attempted", "?") for x in allr})) or "—"
        vals = [x.get("listen_overflows_paused", "?") for x in allr]
        paused = (f"{vals[0]} in all {len(vals)} runs" if len(set(vals)) == 1
                  else ", ".join(vals)) if vals else "—"
        expect = int_or(first.get("attempted")) - (b + 1)
        co = ", ".join(x.get("unmatched_client", "?") for x in rows) or "—"
        out.append(
            f"| {label(rel, runs)} | {sysctls.get('net.core.somaxconn', '?')} | {sysctls.get('net.ipv4.tcp_max_syn_backlog', '?')} "
            f"| {b if b >= 0 else '—'} | {qmax} / {b + 1 if b >= 0 else '—'} | {att} | {paused} (expected {expect}) | {co} "
            f"| {modes_of(rows)} | {modes_of(nc)}<br>({', '.join(counts(x) for x in nc) or '—'}) "
            f"| {modes_of(ab)}<br>{', '.join(outcome(a) for a in ab) or '—'} |")
    out += ["", "*queue max*: the deepest accept queue seen (sock_diag) — the kernel holds B+1. "
            "*ListenOverflows while paused*: SYNs turned away while the acceptor was paused, one value per run "
            "(expected: attempted − (B+1)). *client-only*: established by the client, never accepted "
            "(a SYN cookie completed the handshake, the final ACK met a full queue), one value per round. "
            "*SYN retry modes*: where the clients' connect latencies cluster (time:count), a line per round; the retries a run "
            "can show are bounded by its connect timeout (9 s here: three retries on either schedule). "
            "With syncookies=0 a SYN that finds the SYN queue full is dropped and retried, so the schedule "
            "shows; with the default (1) the retried SYNs mostly get cookies at the first retry. "
            "*a/c/r/p*: accepted / client-only / reset seen by `connect()` / still unanswered when the "
            "connect timeout ended (pending or timed out), one group per round. "
            "tcp_abort_on_overflow=1 answers a final ACK that meets a full accept queue with a reset "
            "instead of dropping it; *outcome* is what the run measured (syn-dropped, ack-dropped, reset)."]
    return out


def schedule_of(sysctls, release):
    """The SYN retransmit times (s after the first SYN) from a run's recorded sysctls:
    the first `linear` timeouts stay 1 s (6.5+), then they double."""
    retries = int_or(sysctls.get("net.ipv4.tcp_syn_retries"), -1)
    if retries < 0:
        return "?"
    if "net.ipv4.tcp_syn_linear_timeouts" not in sysctls and version_tuple(release) >= (6, 5):
        return "? (tcp_syn_linear_timeouts not recorded)"
    linear = int_or(sysctls.get("net.ipv4.tcp_syn_linear_timeouts"), 0)
    t, times = 0, []
    for i in range(retries):
        t += 1 << max(0, i - linear)
        times.append(str(t))
    return ", ".join(times) + " s"


def stall_section(kernels):
    out = ["### How each kernel recovers from a stall (mode stall, private network namespace)", ""]
    out.append("| kernel | SYN retransmits at | engine | B | load | stall ms | dropped m / p | retry waves m \\| p | client-only m / p | recovered m \\| p | lag p99 ms m / p | verdict |")
    out.append("|---|---|---|---:|---|---:|---:|---|---:|---|---:|---|")
    any_rows = False
    for rel, runs in kernels:
        sysctls = runs[0].meta.get("sysctls", {})
        for r in runs:
            for x in r.stall:
                if x.get("status") != "ok":
                    continue
                any_rows = True
                rec = lambda ms: f"{float(ms):.0f} ms" if ms else "not within the run"
                out.append(
                    f"| {label(rel, runs)} | {schedule_of(sysctls, rel)} | {x.get('series')} | {x.get('backlog')} | {x.get('load')} "
                    f"| {float(x.get('stall_actual_ms') or 0):.0f} | {x.get('dropped')} / {x.get('dropped_pred')} "
                    f"| {x.get('waves') or '—'} \\| {x.get('waves_pred') or '—'} | {x.get('client_only')} / {x.get('client_only_pred')} "
                    f"| {rec(x.get('recover_ms'))} \\| {rec(x.get('recover_ms_pred'))} "
                    f"| {float(x.get('lag_p99_ms') or 0):.0f} / {float(x.get('lag_p99_ms_pred') or 0):.0f} | {x.get('verdict')} |")
    if not any_rows:
        return []
    out += ["", "*m / p*: measured / predicted by the model (src/stall/model.rs) from the kernel's own schedule "
            "and timer wheel. *retry waves*: connections established by each retransmit (its time after the first SYN): "
            "since 6.5 the first retransmits come 1 s apart (tcp_syn_linear_timeouts), before they double (1, 3, 7 s). "
            "*recovered*: from the resume until new connections are held on time again and the queue is down, held 1 s. "
            "*emulated* guests (TCG) run every instruction in software: what they measure is the kernel's behaviour, "
            "not its speed."]
    return out


def fmt_ratio(c, key):
    v = c.get(key)
    if not v:
        return "—"
    lo, hi = c.get(key + "_lo"), c.get(key + "_hi")
    s = f"{float(v):.2f}"
    if lo and hi:
        s += f" [{float(lo):.2f}–{float(hi):.2f}]"
    return s


def speed_section(kernels):
    out = ["### Speed, only as ratios to std within each kernel (cells.csv: median of per-round ratios [interval])", ""]
    modes = []
    for _, runs in kernels:
        for r in runs:
            if not r.burst and not r.stall_run:
                for c in r.cells:
                    if c.get("mode") not in modes:
                        modes.append(c.get("mode"))
    if not modes:
        return []
    levels, rounds = set(), set()
    for mode in modes:
        out.append(f"**{mode}**, accepts/s ÷ std's (acceptor CPU per accept ÷ std's below):")
        out.append("")
        seen = {cell_series(c) for _, runs in kernels for r in runs for c in r.cells}
        extra = [e for e in sorted(seen) if e not in ENGINES]
        head = ["kernel"] + [e for e in ENGINES if e != "std"] + extra
        out.append("| " + " | ".join(head) + " |")
        out.append("|---" + "|---:" * (len(head) - 1) + "|")
        cpu_lines = []
        for rel, runs in kernels:
            cells = {cell_series(c): c for r in runs if not r.burst for c in r.cells if c.get("mode") == mode}
            if not cells:
                continue
            row, cpu = [], []
            for e in head[1:]:
                c = cells.get(e)
                if c is None:
                    row.append("—"); cpu.append("—")
                elif int_or(c.get("n_ok")) == 0:
                    row.append("skipped"); cpu.append("skipped")
                elif not c.get("ratio_accepts_vs_std"):
                    # Rounds where this engine or std waited for a SYN retransmit give no ratio.
                    why = f"no ratio: SYN stalls ({c.get('syn_retry_stalls')} connects)"
                    row.append(why); cpu.append(why)
                else:
                    few = int_or(c.get("ratio_n")) < int_or(c.get("n_ok"))
                    note = f" ({c.get('ratio_n')} of {c.get('n_ok')} rounds)" if few else ""
                    row.append(fmt_ratio(c, "ratio_accepts_vs_std") + note)
                    cpu.append(fmt_ratio(c, "ratio_cpu_vs_std") + note)
                    if c.get("ratio_ci_level") and int_or(c.get("ratio_n")) > 1:
                        levels.add(c["ratio_ci_level"])
                    rounds.add(int_or(c.get("n")))
            emu = " emulated" if any(r.virtualised == "tcg" for r in runs) else ""
            out.append(f"| {rel}{emu} | " + " | ".join(row) + " |")
            cpu_lines.append(f"| {rel}{emu} | " + " | ".join(cpu) + " |")
        out += ["", "| kernel (CPU ratio) | " + " | ".join(head[1:]) + " |",
                "|---" + "|---:" * (len(head) - 1) + "|"] + cpu_lines + [""]
    lv = ", ".join(sorted(f"{float(x) * 100:.0f}%" for x in levels)) or "none"
    rn = "/".join(str(x) for x in sorted(rounds)) or "?"
    # A distribution-free 95% interval of the median needs at least 6 rounds (cells.csv
    # writes its level; below that it says `n too small`).
    few = sorted(x for x in rounds if 0 < x < 6)
    if few:
        cover = (f"With {'/'.join(map(str, few))} rounds no 95% interval exists (cells.csv says `n too small`): "
                 "the intervals are close to the range of the rounds, and wide; ")
    else:
        cover = f"With {rn} rounds each interval covers the median at the level given; "
    out.append(f"Interval coverage: {lv}. " + cover +
               "a ratio whose interval includes 1 is no difference. Rounds in which std or the engine waited "
               "for a SYN retransmit (closed loop, small machine) give no ratio. "
               "*emulated* rows ran under QEMU TCG, where every instruction is emulated: "
               "compare them only with std on the same kernel, never across kernels or with the host.")
    return out


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = [Run(p) for p in argv if os.path.isdir(p)]
    kernels = group(runs)
    lines = []
    for section in (kernels_section, capability_section, behaviour_section, stall_section, speed_section):
        lines += section(kernels) + [""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
