#!/usr/bin/env python3
"""Summarizes a callgrind.out file per function *symbol*.

    cgsum.py CALLGRIND_OUT REQUESTS [--top N] [--children REGEX ...]

callgrind_annotate splits one function into many "file:function" rows when code
from other files (generics, inlined std) is inlined into it; Rust code is mostly
that. Here costs are merged by symbol: self cost, inclusive cost (self + the
inclusive cost of every call it makes to another symbol), and for the symbols
matched by --children, what they spend in each callee. Costs are printed per
request (total / REQUESTS). Recursion is not untangled (a recursive symbol's
inclusive cost is counted once per level), which is fine for a summary.
"""

import argparse
import re
from collections import defaultdict


def parse(path):
    names = {"fn": {}, "fl": {}, "ob": {}}
    self_cost = defaultdict(int)
    calls = defaultdict(int)  # (caller, callee) -> inclusive cost of those calls
    ncalls = defaultdict(int)
    total = 0
    fn = None
    cfn = None
    pending_call = None
    positions = 1

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", rest)
        if not m:
            return rest
        ident, text = m.group(1), m.group(2)
        if text is not None:
            names[kind][ident] = text
            return text
        return names[kind].get(ident, f"?{ident}")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                costs = parts[positions:]
                ir = int(costs[0]) if costs else 0
                if pending_call is not None:
                    calls[(fn, pending_call)] += ir
                    pending_call = None
                else:
                    self_cost[fn] += ir
                    total += ir
                continue
            key, _, rest = line.partition("=")
            if key == "fn":
                fn = name("fn", rest)
            elif key == "cfn":
                cfn = name("fn", rest)
            elif key == "calls":
                pending_call = cfn
                ncalls[(fn, cfn)] += int(rest.split()[0])
            elif key in ("fl", "fi", "fe", "cfl", "cfi"):
                name("fl", rest)
            elif key in ("ob", "cob"):
                name("ob", rest)
            elif key == "positions":
                positions = len(rest.split())
    return total, self_cost, calls, ncalls


def short(fn, width=120):
    fn = re.sub(r"::h[0-9a-f]{16}$", "", fn)
    fn = fn.replace("{{closure}}", "{closure}")
    fn = re.sub(r"/root/\.cargo/registry/src/[^/]+/", "", fn)
    return fn if len(fn) <= width else fn[: width - 1] + "…"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("requests", type=int)
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--children", action="append", default=[])
    ap.add_argument("--groups", action="append", default=[], help="LABEL=REGEX (inclusive, max over symbols)")
    a = ap.parse_args()
    total, self_cost, calls, ncalls = parse(a.file)
    n = a.requests
    inclusive = defaultdict(int)
    for f, v in self_cost.items():
        inclusive[f] += v
    for (caller, callee), v in calls.items():
        if caller != callee:
            inclusive[caller] += v
    print(f"{total:,} instructions over {n:,} requests: **{total / n:,.0f} instructions per request** "
          f"(user space only: callgrind does not see the kernel's TCP and epoll work)\n")

    if a.groups:
        print("| part | instructions / request | share |")
        print("|---|---:|---:|")
        for g in a.groups:
            label, _, pattern = g.partition("=")
            rx = re.compile(pattern)
            v = max((inclusive[f] for f in inclusive if rx.search(f)), default=0)
            if label.endswith("(self, summed)"):
                v = sum(self_cost[f] for f in self_cost if rx.search(f))
            if v:
                print(f"| {label} | {v / n:,.0f} | {v / total * 100:.1f}% |")
        print()

    print("Top symbols by inclusive cost (runtime frames that wrap every request left out):\n")
    print("| incl. instr/req | self instr/req | % | symbol |")
    print("|---:|---:|---:|---|")
    shown = 0
    for f, v in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        if v / total > 0.9:
            continue
        print(f"| {v / n:,.0f} | {self_cost[f] / n:,.0f} | {v / total * 100:.1f}% | `{short(f)}` |")
        shown += 1
        if shown >= a.top:
            break
    print()
    print("Top symbols by self cost:\n")
    print("| self instr/req | % | symbol |")
    print("|---:|---:|---|")
    for f, v in sorted(self_cost.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"| {v / n:,.0f} | {v / total * 100:.1f}% | `{short(f)}` |")
    print()
    for pattern in a.children:
        rx = re.compile(pattern)
        parents = [f for f in inclusive if rx.search(f)]
        if not parents:
            continue
        parent = max(parents, key=lambda f: inclusive[f])
        print(f"Inside `{short(parent)}` ({inclusive[parent] / n:,.0f} instr/req; self {self_cost[parent] / n:,.0f}):\n")
        print("| instr/req | calls/req | callee |")
        print("|---:|---:|---|")
        kids = [(callee, v) for (caller, callee), v in calls.items() if caller == parent and callee != parent]
        for callee, v in sorted(kids, key=lambda kv: -kv[1])[:15]:
            if v / n < 20:
                continue
            print(f"| {v / n:,.0f} | {ncalls[(parent, callee)] / n:.1f} | `{short(callee)}` |")
        print()


if __name__ == "__main__":
    main()
