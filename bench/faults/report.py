"""Per-phase figures from the results, and the table (Markdown)."""

from collections import Counter

from load import percentile


class PhaseRecord:
    def __init__(self, name, expectation):
        self.name = name
        self.expectation = expectation
        self.t_start = self.t_lifted = self.t_end = None
        self.notes = []
        self.window = None  # (t0, t1): a restart window, counted apart
        self.extra_failures = []  # expectations of this phase not met, besides the counts


def summarize(phase, results, readyz, rss):
    rs = [r for r in results if phase.t_start <= r.t0 < phase.t_end]
    in_window = (lambda r: phase.window[0] <= r.t0 < phase.window[1]) if phase.window else (lambda r: False)
    s = {
        "requests": len(rs),
        "false_allow": 0,
        "false_deny": 0,
        "errors": 0,
        "expected_deny": 0,
        "window_requests": 0,
        "window_failed": 0,
        "false_deny_reasons": Counter(),
        "error_kinds": Counter(),
        "window_kinds": Counter(),
        "latency": [],
        "latency_by_target": {},
    }
    last_bad = None
    for r in rs:
        if r.verdict == "false_allow":
            s["false_allow"] += 1  # counted in the window too: never excused
        if in_window(r) and r.verdict != "false_deny":
            # Only failures to be asked are excused in a restart window (nothing
            # listens for a moment); a wrong decision never is.
            s["window_requests"] += 1
            if r.verdict not in ("ok", "false_allow"):
                s["window_failed"] += 1
                s["window_kinds"][f"{r.target}:{r.error or r.status}:{r.reason or '-'}"] += 1
            continue
        if r.verdict == "false_deny":
            s["false_deny"] += 1
            s["false_deny_reasons"][f"{r.target}:{r.kind}:{r.reason}"] += 1
        elif r.verdict == "error":
            s["errors"] += 1
            s["error_kinds"][f"{r.target}:{r.kind}:{r.error or r.status}:{r.reason or '-'}"] += 1
        if r.verdict in ("false_deny", "error") and r.t0 >= (phase.t_lifted or phase.t_start):
            last_bad = r.t1
        if r.verdict == "ok" and r.expected == "deny" and r.kind.startswith("valid"):
            s["expected_deny"] += 1
        if r.verdict == "ok" and r.status == 200:
            ms = (r.t1 - r.t0) * 1000.0
            s["latency"].append(ms)
            s["latency_by_target"].setdefault(r.target, []).append(ms)
    for k, v in getattr(phase, "extra", {}).items():
        s[k] += v  # a phase's own clients (the Redis phase's session cookies)
    bad_any = s["false_deny"] + s["errors"] > 0
    ref = phase.window[1] if phase.window else (phase.t_lifted or phase.t_start)
    if last_bad is not None:
        s["recovery"] = max(0.0, last_bad - ref)
    else:
        s["recovery"] = None if not bad_any else 0.0
    if getattr(phase, "recovery", None) is not None:
        s["recovery"] = phase.recovery
    samples = [st for (t, st) in readyz if phase.t_start <= t < phase.t_end]
    s["readyz_samples"] = len(samples)
    s["readyz_not_ready"] = sum(1 for st in samples if st != 200)
    s["readyz_flips"] = sum(1 for a, b in zip(samples, samples[1:]) if a != b)
    mem = [kib for (t, kib) in rss if phase.t_start <= t < phase.t_end and kib]
    s["rss_max_mib"] = max(mem) / 1024.0 if mem else None
    s["rss"] = mem
    s["p50"] = percentile(s["latency"], 50)
    s["p99"] = percentile(s["latency"], 99)
    return s


def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def table(rows):
    out = [
        "| fault | duration s | requests checked | false allows | false denies | errors | expected denies | restart window (requests / failed) | recovery s | RSS max MiB | valid p50 / p99 ms | /readyz not ready / flips | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for phase, s, ok in rows:
        win = f"{s['window_requests']} / {s['window_failed']}" if phase.window else "-"
        out.append(
            f"| {phase.name} | {phase.t_end - phase.t_start:.1f} | {s['requests']} | {s['false_allow']} "
            f"| {s['false_deny']} | {s['errors']} | {s['expected_deny']} | {win} | {fmt(s['recovery'])} "
            f"| {fmt(s['rss_max_mib'])} | {fmt(s['p50'])} / {fmt(s['p99'])} "
            f"| {s['readyz_not_ready']} / {s['readyz_flips']} | {'pass' if ok else '**FAIL**'} |"
        )
    return "\n".join(out)


def details(rows):
    out = []
    for phase, s, ok in rows:
        lines = [f"- **{phase.name}** — expected: {phase.expectation}"]
        for n in phase.notes:
            lines.append(f"  - {n}")
        if s["false_deny_reasons"]:
            lines.append("  - false denies (target:token:reason): " + counter_text(s["false_deny_reasons"]))
        if s["error_kinds"]:
            lines.append("  - errors (target:token:error-or-status:reason): " + counter_text(s["error_kinds"]))
        if s["window_kinds"]:
            lines.append("  - restart window, failed (target:error-or-status:reason): " + counter_text(s["window_kinds"]))
        by_t = s["latency_by_target"]
        if by_t:
            lines.append(
                "  - valid p50/p99 ms by target: "
                + ", ".join(
                    f"{t} {fmt(percentile(v, 50))}/{fmt(percentile(v, 99))}" for t, v in sorted(by_t.items())
                )
            )
        for f in phase.extra_failures:
            lines.append(f"  - NOT MET: {f}")
        out.append("\n".join(lines))
    return "\n".join(out)


def counter_text(c, n=8):
    return ", ".join(f"{k} ×{v}" for k, v in c.most_common(n))
