#!/usr/bin/env python3
"""Renders bench/run's results (a TSV of measured rows plus key=value facts) as Markdown.

    report.py RESULTS.tsv FACTS.env

Rows (tab-separated): scenario, role, label, rps, p50_ms, p99_ms, rss_kb, cpu_us_per_req,
requests, non2xx, errors, loadgen_cpu_pct, expect (2xx|non2xx), cpu split by process,
server busy % (server CPU time / wall time), user share of that CPU time %.
`role` is one of: portcullis, envoy, ceiling, ceiling-hyper, ceiling-floor, paced-portcullis,
paced-ceiling, variant, floor-verify, floor-grpc, floor-grpc-metadata, floor-http, setting:SETTINGS, and in
scenario 9r (interleaved rounds) rN:pg, rN:pn, rN:fg, rN:fm, rN:ph, rN:fh, and in scenario ur
rN:pr, rN:fr, rN:pe, rN:fe (Portcullis and bench-floor http-verify, RS256 and ES256). Ratios are Portcullis / Envoy
for each scenario (req/s; for CPU and RSS the ratio is also Portcullis / Envoy, so lower is
better there). Scenario 8's rows are 8.Nc (cached) and 8.Nu (uncached) for N issuers.
"""

import sys

SCENARIOS = [
    ("1", "RS256, one token repeated"),
    ("2a", "RS256, 10,000 distinct tokens, caches on (warm)"),
    ("2b", "RS256, 10,000 distinct tokens, caches off (every request verifies)"),
    ("3a", "ES256, one token repeated"),
    ("3b", "ES256, 10,000 distinct tokens, caches off"),
    ("4", "RS256 expired token (both answer 401)"),
    ("5", "end to end: Envoy ext_authz gRPC -> Portcullis vs Envoy jwt_authn; -> upstream"),
    ("6", "NGINX auth_request -> Portcullis -> upstream (vs Envoy jwt_authn -> upstream)"),
    ("7", "proxy mode: Portcullis proxy -> upstream vs Envoy jwt_authn -> upstream"),
    ("8.1c", "1 issuer, 10,000 tokens, caches on (warm)"),
    ("8.50c", "50 issuers (provider, key, rule each), 10,000 tokens, caches on (warm)"),
    ("8.500c", "500 issuers, 10,000 tokens, caches on (warm)"),
    ("8.1u", "1 issuer, 10,000 tokens, caches off"),
    ("8.50u", "50 issuers, 10,000 tokens, caches off"),
    ("8.500u", "500 issuers, 10,000 tokens, caches off"),
    ("10", "two workers each (not pinned), wrk -t2, one RS256 token repeated"),
]


def split_of(r):
    """'envoy 12.3 + bench-floor 4.5' -> {'envoy': 12.3, 'bench-floor': 4.5}"""
    out = {}
    for part in r["split"].split(" + "):
        name, _, v = part.rpartition(" ")
        if name:
            try:
                out[name] = float(v)
            except ValueError:
                pass
    return out


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            rows.append(
                {
                    "scenario": c[0],
                    "role": c[1],
                    "label": c[2],
                    "rps": float(c[3]),
                    "p50": float(c[4]),
                    "p99": float(c[5]),
                    "rss": int(c[6]),
                    "cpu": float(c[7]),
                    "requests": int(c[8]),
                    "non2xx": int(c[9]),
                    "errors": int(c[10]),
                    "lg": float(c[11]),
                    "expect": c[12],
                    "split": c[13] if len(c) > 13 else "",
                    "busy": float(c[14]) if len(c) > 14 and c[14] else 0.0,
                    "user": float(c[15]) if len(c) > 15 and c[15] else 0.0,
                }
            )
    return rows


def facts(path):
    out = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                out[k] = v
    return out


def ms(v):
    if v < 1:
        return f"{v * 1000:.0f} µs"
    return f"{v:.2f} ms"


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "n/a"


def flags(r):
    out = []
    if r["split"]:
        out.append(f"CPU µs/req: {r['split']}")
    if r["expect"] == "2xx" and r["non2xx"]:
        out.append(f"{r['non2xx']} non-2xx!")
    if r["expect"] == "non2xx" and r["non2xx"] != r["requests"]:
        out.append(f"only {r['non2xx']}/{r['requests']} denied!")
    if r["errors"]:
        out.append(f"{r['errors']} socket errors")
    if r["lg"] >= 90:
        out.append(f"load generator at {r['lg']:.0f}% CPU: may be load-bound")
    return "; ".join(out)


def median(vs):
    vs = sorted(vs)
    n = len(vs)
    return vs[n // 2] if n % 2 else (vs[n // 2 - 1] + vs[n // 2]) / 2


def rounds_of(rows, scenario):
    """{round number: {kind: row}} from an interleaved scenario's rows (roles rN:KIND)."""
    rounds = {}
    for r in rows:
        if r["scenario"] == scenario and ":" in r["role"]:
            n, _, kind = r["role"].partition(":")
            rounds.setdefault(int(n[1:]), {})[kind] = r
    return rounds


def rounds_table(rows):
    """Scenario 9r: Portcullis and the ext_authz floors measured in interleaved rounds."""
    rounds = rounds_of(rows, "9r")
    if not rounds:
        return
    print()
    print("Scenario 9r, the ext_authz floor in interleaved rounds (each round's rows seconds apart; "
          "ratio = Portcullis / floor, by req/s and by the floor's CPU/req over Portcullis's):")
    print()
    print("| round | gRPC: Portcullis / floor / floor with metadata req/s | **gRPC / floor** (CPU) "
          "| gRPC / floor with metadata (CPU) | gRPC, `dynamic_metadata: false`: req/s, **/ floor** (CPU) "
          "| Envoy µs/req: Portcullis / floor / with metadata / without "
          "| authz server µs/req: Portcullis / floor / with metadata / without "
          "| HTTP: Portcullis / floor req/s | **HTTP / floor** (CPU) | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    series = {"g": [], "gc": [], "m": [], "mc": [], "n": [], "nc": [], "h": [], "hc": []}
    def versus(key, this, floor):
        """The ratio this / floor by req/s (and floor / this by CPU/req), noted in series."""
        if not (this and floor):
            return None
        series[key].append(this["rps"] / floor["rps"])
        series[key + "c"].append(floor["cpu"] / this["cpu"])
        return f"{ratio(this['rps'], floor['rps'])} ({ratio(floor['cpu'], this['cpu'])})"

    for n in sorted(rounds):
        k = rounds[n]
        pg, pn, fg, fm, ph, fh = (k.get(x) for x in ("pg", "pn", "fg", "fm", "ph", "fh"))
        notes = "; ".join(f"{r['label']}: {flags(r)}" for r in (pg, pn, fg, fm, ph, fh)
                          if r and flags(r) and not flags(r).startswith("CPU"))
        cells = [
            " / ".join(f"{r['rps']:,.0f}" if r else "–" for r in (pg, fg, fm)),
            f"**{versus('g', pg, fg) or '–'}**",
            versus("m", pg, fm) or "–",
            f"{pn['rps']:,.0f}, **{versus('n', pn, fg)}**" if pn and fg else "–",
        ]
        envoy = [split_of(r).get("envoy") if r else None for r in (pg, fg, fm, pn)]
        cells.append(" / ".join(f"{v:.1f}" if v else "–" for v in envoy))
        server = [next((v for name, v in split_of(r).items() if name != "envoy"), None) if r else None
                  for r in (pg, fg, fm, pn)]
        cells.append(" / ".join(f"{v:.1f}" if v else "–" for v in server))
        cells.append(" / ".join(f"{r['rps']:,.0f}" if r else "–" for r in (ph, fh)))
        cells.append(f"**{versus('h', ph, fh) or '–'}**")
        print(f"| {n} | " + " | ".join(cells) + f" | {notes} |")

    def summary(key):
        vs = series[key]
        if not vs:
            return "–"
        return f"{median(vs):.2f}× ({min(vs):.2f}–{max(vs):.2f})"

    print(f"| median (min–max) | | **{summary('g')}** (CPU {summary('gc')}) | {summary('m')} (CPU {summary('mc')}) "
          f"| **{summary('n')}** (CPU {summary('nc')}) | | | | **{summary('h')}** (CPU {summary('hc')}) | |")


def uncached_rounds_table(rows):
    """Scenario ur: Portcullis uncached and bench-floor http-verify in interleaved rounds."""
    rounds = rounds_of(rows, "ur")
    if not rounds:
        return
    print()
    print("Scenario ur, target 5 in interleaved rounds (each round's rows seconds apart; ratio = "
          "Portcullis's CPU per uncached request / bench-floor http-verify's, hyper's floor plus "
          "one raw verify; target ≤ 1.15×):")
    print()
    print("| round | RS256: Portcullis / floor req/s | RS256 CPU µs/req P / F | **RS256 P/F CPU** "
          "| ES256: Portcullis / floor req/s | ES256 CPU µs/req P / F | **ES256 P/F CPU** | notes |")
    print("|---|---|---|---|---|---|---|---|")
    series = {"r": [], "e": []}
    for n in sorted(rounds):
        k = rounds[n]
        cells = []
        for key, p, f in (("r", k.get("pr"), k.get("fr")), ("e", k.get("pe"), k.get("fe"))):
            if p and f:
                series[key].append(p["cpu"] / f["cpu"])
                cells += [f"{p['rps']:,.0f} / {f['rps']:,.0f}", f"{p['cpu']:.1f} / {f['cpu']:.1f}",
                          f"**{ratio(p['cpu'], f['cpu'])}**"]
            else:
                cells += ["–", "–", "–"]
        notes = "; ".join(f"{r['label']}: {flags(r)}" for r in k.values() if flags(r))
        print(f"| {n} | " + " | ".join(cells) + f" | {notes} |")

    def summary(key):
        vs = series[key]
        return f"{median(vs):.2f}× ({min(vs):.2f}–{max(vs):.2f})" if vs else "–"

    print(f"| median (min–max) | | | **{summary('r')}** | | | **{summary('e')}** | |")


def main():
    rows = load(sys.argv[1])
    f = facts(sys.argv[2])
    by = {}
    for r in rows:
        by.setdefault((r["scenario"], r["role"]), r)

    print("| # | scenario | Portcullis req/s | Envoy req/s | **P/E req/s** | CPU µs/req P / E (user %) | **E/P CPU** "
          "| p50 P / E | p99 P / E | peak RSS P / E | server busy P / E | notes |")
    print("|---|---|---:|---:|---:|---|---:|---|---|---|---|---|")
    for sid, title in SCENARIOS:
        p = by.get((sid, "portcullis"))
        e = by.get((sid, "envoy"))
        if not p and not e:
            continue
        notes = []
        for r in (p, e):
            if r and flags(r):
                notes.append(f"{r['label']}: {flags(r)}")
        if p and e:
            print(
                f"| {sid} | {title} | {p['rps']:,.0f} | {e['rps']:,.0f} | **{ratio(p['rps'], e['rps'])}** "
                f"| {p['cpu']:.1f} / {e['cpu']:.1f} ({p['user']:.0f}% / {e['user']:.0f}%) | **{ratio(e['cpu'], p['cpu'])}** "
                f"| {ms(p['p50'])} / {ms(e['p50'])} | {ms(p['p99'])} / {ms(e['p99'])} "
                f"| {mb(p['rss'])} / {mb(e['rss'])} | {p['busy']:.0f}% / {e['busy']:.0f}% | {'; '.join(notes)} |"
            )
        else:
            r = p or e
            print(f"| {sid} | {title} | {r['rps']:,.0f} | | | {r['cpu']:.1f} | | {ms(r['p50'])} | {ms(r['p99'])} "
                  f"| {mb(r['rss'])} | {r['busy']:.0f}% | {'; '.join(notes)} |")

    extra = [r for r in rows if r["role"] not in ("portcullis", "envoy") and r["scenario"] not in ("9r", "ur")]
    if extra:
        print()
        print("| # | measurement | req/s | p50 | p99 | peak RSS | CPU µs/req (user %) | server busy | vs Portcullis (same scenario) | notes |")
        print("|---|---|---:|---|---|---|---|---|---|---|")
        for r in extra:
            p = by.get((r["scenario"], "portcullis"))
            p5g = by.get(("5", "portcullis"))
            p5h = by.get(("5", "variant"))
            base9 = by.get(("9", "floor-grpc"))
            if r["role"] == "floor-grpc":
                vs = (f"Portcullis over gRPC (row 5) / this = **{ratio(p5g['rps'], r['rps'])}** req/s, "
                      f"this / Portcullis by CPU/req = **{ratio(r['cpu'], p5g['cpu'])}**" if p5g
                      else "the ratio needs scenario 5's gRPC row")
            elif r["role"] == "floor-grpc-metadata":
                vs = (f"Portcullis over gRPC (row 5) / this = **{ratio(p5g['rps'], r['rps'])}** req/s, "
                      f"this / Portcullis by CPU/req = **{ratio(r['cpu'], p5g['cpu'])}**" if p5g
                      else "the ratio needs scenario 5's gRPC row")
                eb = split_of(base9).get("envoy") if base9 else None
                er = split_of(r).get("envoy")
                if eb and er:
                    vs += f"; Envoy CPU {er:.1f} vs {eb:.1f} µs/req without metadata ({(er - eb) / eb * 100:+.0f}%)"
            elif r["role"] == "floor-http":
                vs = (f"Portcullis over HTTP (row 5) / this = **{ratio(p5h['rps'], r['rps'])}** req/s, "
                      f"this / Portcullis by CPU/req = **{ratio(r['cpu'], p5h['cpu'])}**" if p5h
                      else "the ratio needs scenario 5's HTTP row")
            elif r["role"].startswith("setting:") and base9:
                eb = split_of(base9).get("envoy")
                er = split_of(r).get("envoy")
                vs = f"this / scenario 5's settings = {ratio(r['rps'], base9['rps'])} req/s"
                if eb and er:
                    vs += f"; Envoy CPU {er:.1f} vs {eb:.1f} µs/req ({(er - eb) / eb * 100:+.0f}%)"
            elif r["role"].startswith("ceiling") and p:
                vs = f"Portcullis / this = **{ratio(p['rps'], r['rps'])}**"
            elif r["role"].startswith("paced") and p:
                vs = f"{r['rps'] / p['rps'] * 100:.0f}% of Portcullis's peak"
            elif r["role"] == "floor-verify" and p:
                vs = (f"Portcullis / this = {ratio(p['rps'], r['rps'])} req/s, "
                      f"Portcullis / this by CPU/req = **{ratio(p['cpu'], r['cpu'])}** (target 5: ≤ 1.15×)")
            elif r["role"] == "variant" and p:
                vs = f"this / Portcullis default = {ratio(r['rps'], p['rps'])}"
                e = by.get((r["scenario"], "envoy"))
                if e:
                    vs += (f"; this / Envoy = **{ratio(r['rps'], e['rps'])}** req/s, "
                           f"**{ratio(e['cpu'], r['cpu'])}** by CPU")
            else:
                vs = ""
            if r["role"].startswith("ceiling") and p:
                vs += f"; by CPU/req: this / Portcullis = **{ratio(r['cpu'], p['cpu'])}**"
            print(f"| {r['scenario']} | {r['label']} | {r['rps']:,.0f} | {ms(r['p50'])} | {ms(r['p99'])} "
                  f"| {mb(r['rss'])} | {r['cpu']:.1f} ({r['user']:.0f}%) | {r['busy']:.0f}% | {vs} | {flags(r)} |")

    rounds_table(rows)
    uncached_rounds_table(rows)

    many = []
    for kind, name in (("c", "cached"), ("u", "uncached")):
        for role, who in (("portcullis", "Portcullis"), ("envoy", "Envoy jwt_authn")):
            one = by.get((f"8.1{kind}", role))
            far = by.get((f"8.500{kind}", role))
            mid = by.get((f"8.50{kind}", role))
            if one and far:
                many.append(
                    f"| {who}, {name} | {one['rps']:,.0f} | {mid['rps']:,.0f} | {far['rps']:,.0f} "
                    f"| **{ratio(far['rps'], one['rps'])}** | {one['cpu']:.1f} / {far['cpu']:.1f} |"
                    if mid else
                    f"| {who}, {name} | {one['rps']:,.0f} | | {far['rps']:,.0f} "
                    f"| **{ratio(far['rps'], one['rps'])}** | {one['cpu']:.1f} / {far['cpu']:.1f} |"
                )
    if many:
        print()
        print("Scenario 8, many issuers (target: N = 500 within 10 % of N = 1):")
        print()
        print("| server | N = 1 req/s | N = 50 req/s | N = 500 req/s | **500 / 1** | CPU µs/req N = 1 / 500 |")
        print("|---|---:|---:|---:|---:|---|")
        print("\n".join(many))

    lines = []
    if "rss100k_after_kb" in f:
        base = int(f["rss100k_base_kb"])
        after = int(f["rss100k_after_kb"])
        hwm = int(f["rss100k_hwm_kb"])
        n = int(f["rss100k_tokens"])
        kept = f.get("rss100k_retained", "?")
        mem = f.get("rss100k_cache_memory", "")
        lines.append(
            f"- **RSS with {n:,} RS256 tokens** (one pass of {n:,} distinct tokens, "
            f"`token_cache_entries: 100000`{', token_cache_memory: ' + mem if mem else ''}): "
            f"VmRSS {mb(after)} (peak {mb(hwm)}); {mb(base)} before traffic; "
            f"a second pass found {kept} of them still cached (cache hits)."
        )
        if "rss100k_nocache_kb" in f:
            ctl = int(f["rss100k_nocache_kb"])
            per = f"{(after - ctl) * 1024 / int(kept):,.0f}" if str(kept).isdigit() and int(kept) > 0 else "?"
            lines.append(
                f"- Control: the same {n:,} requests with `token_cache_entries: 0` leave VmRSS at {mb(ctl)}, "
                f"so the cache itself holds ≈ {mb(after - ctl)} ≈ {per} bytes per cached token "
                f"(each RS256 token here is {f.get('rs256_token_bytes', '?')} bytes; the cache keys on a 16-byte keyed digest of it)."
            )
        if "rss100k_parsed_kb" in f:
            parsed = int(f["rss100k_parsed_kb"])
            lines.append(
                f"- With a rule that reads claims on every request (`scopes: [orders:read]`), so that "
                f"claims are kept parsed: VmRSS {mb(parsed)} after the same pass"
                + (f", ≈ {(parsed - ctl) * 1024 / n:,.0f} bytes per token." if "rss100k_nocache_kb" in f else ".")
            )
    if "primitive_rs256_us" in f:
        lines.append(
            f"- **Raw aws-lc-rs verify** (criterion, `crates/jose/benches/verify.rs`, same core): "
            f"RS256 {float(f['primitive_rs256_us']):.1f} µs, ES256 {float(f['primitive_es256_us']):.1f} µs; "
            f"`verify_jwt` RS256 {float(f['full_rs256_us']):.1f} µs, ES256 {float(f['full_es256_us']):.1f} µs."
        )
        p2 = by.get(("2b", "portcullis"))
        p3 = by.get(("3b", "portcullis"))
        for name, r, prim in (("RS256", p2, "primitive_rs256_us"), ("ES256", p3, "primitive_es256_us")):
            if r:
                lines.append(
                    f"- CPU per uncached {name} decision (Portcullis process CPU / requests, caches off): "
                    f"{r['cpu']:.1f} µs = **{r['cpu'] / float(f[prim]):.2f}×** the raw verify "
                    f"(target ≤ 1.3×)."
                )
        # Issue 17, target 5: the raw verify plus what a do-nothing request costs the
        # same core (NGINX `return 200`, scenario 1's ceiling, same run).
        floor = by.get(("1", "ceiling"))
        for name, r, prim in (("RS256", p2, "primitive_rs256_us"), ("ES256", p3, "primitive_es256_us")):
            if r and floor:
                bound = float(f[prim]) + floor["cpu"]
                lines.append(
                    f"- Uncached {name} decision vs (raw verify + a do-nothing request): {r['cpu']:.1f} µs / "
                    f"({float(f[prim]):.1f} + {floor['cpu']:.1f} µs NGINX `return 200`) = "
                    f"**{r['cpu'] / bound:.2f}×** (target ≤ 1.15×)."
                )
    # Target 5 with both terms as one server under the same load (bench-floor http-verify:
    # hyper's floor plus the raw verify of the same tokens), so that neither term is
    # measured on a quieter machine than the other.
    for sid, name in (("2b", "RS256"), ("3b", "ES256")):
        r, fv = by.get((sid, "portcullis")), by.get((sid, "floor-verify"))
        if r and fv:
            lines.append(
                f"- Uncached {name} decision vs hyper's floor + one raw verify per request, one server "
                f"(bench-floor http-verify, same scenario): {r['cpu']:.1f} / {fv['cpu']:.1f} µs = "
                f"**{r['cpu'] / fv['cpu']:.2f}×** by CPU/req, {ratio(r['rps'], fv['rps'])} by req/s (target ≤ 1.15×)."
            )
    if lines:
        print()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
