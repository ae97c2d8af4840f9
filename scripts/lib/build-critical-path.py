#!/usr/bin/env python3
"""The critical path of a `cargo build --timings` run, read from its HTML report.

    scripts/lib/build-critical-path.py [REPORT.html]   # default: the newest report in
                                                       # $CARGO_TARGET_DIR/cargo-timings (./target)

Prints the total, the slowest units, and the chain of units that ended last: each unit's
predecessor is the one that unblocked it (cargo records who unblocked whom) and finished latest.
Durations depend on the machine's load; the chain (which crates, in which order) much less.
"""
import glob
import json
import os
import re
import sys


def main():
    if len(sys.argv) > 1:
        report = sys.argv[1]
    else:
        target = os.environ.get("CARGO_TARGET_DIR", "target")
        found = sorted(glob.glob(os.path.join(target, "cargo-timings", "cargo-timing-2*.html")))
        if not found:
            sys.exit("no cargo-timing report: run `cargo build --timings` first")
        report = found[-1]
    text = open(report, encoding="utf-8").read()
    m = re.search(r"const UNIT_DATA = (\[.*?\]);\n", text, re.S)
    if not m:
        sys.exit(f"{report}: no UNIT_DATA in this report")
    units = json.loads(m.group(1))

    def label(u):
        what = u["target"].strip() or "lib"
        return f'{u["name"]} {u["version"]} ({what})'

    end = lambda u: u["start"] + u["duration"]
    print(f"report: {report}")
    print(f"units: {len(units)}, wall: {max(map(end, units)):.1f} s")
    print("slowest units:")
    for u in sorted(units, key=lambda u: -u["duration"])[:12]:
        print(f"  {u['duration']:6.1f} s  {label(u)}")
    unblockers = {}
    for u in units:
        for i in u.get("unblocked_units", []) + u.get("unblocked_rmeta_units", []):
            unblockers.setdefault(i, []).append(u)
    cur = max(units, key=end)
    chain = [cur]
    while cur["i"] in unblockers:
        cur = max(unblockers[cur["i"]], key=end)
        chain.append(cur)
    print("critical path (first to last):")
    for u in reversed(chain):
        print(f"  {u['start']:6.1f} s +{u['duration']:6.1f} s  {label(u)}")


if __name__ == "__main__":
    main()
