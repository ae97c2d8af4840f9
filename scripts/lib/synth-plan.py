#!/usr/bin/env python3
"""Build a large synthetic plan by replicating real ones (for benchmarks only; never committed).

usage: synth-plan.py OUT.json TARGET_MB BASE.json [BASE.json ...]

Each copy k of a base plan puts every resource under `module.rep<k>` (addresses, module
addresses, previous addresses), in resource_changes, resource_drift, planned_values and
prior_state, so the result is a valid plan with unique addresses. Output is compact JSON, as
`terraform show -json` writes it. Prints the expected counts (the oracle) as JSON on stdout.
"""
import copy
import json
import sys


def prefix_addr(a, k):
    return f"module.rep{k}.{a}" if a else a


def rename_rc(rc, k):
    rc = dict(rc)
    rc["address"] = prefix_addr(rc.get("address", ""), k)
    rc["module_address"] = prefix_addr(rc.get("module_address") or "", k) or f"module.rep{k}"
    if rc.get("previous_address"):
        rc["previous_address"] = prefix_addr(rc["previous_address"], k)
    return rc


def rename_module(m, k):
    m = dict(m)
    m["resources"] = [dict(r, address=prefix_addr(r.get("address", ""), k)) for r in m.get("resources") or []]
    m["child_modules"] = [rename_module(c, k) for c in m.get("child_modules") or []]
    if "address" in m:
        m["address"] = prefix_addr(m["address"], k)
    return m


def main():
    out, target_mb, bases = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    docs = [json.load(open(b, encoding="utf-8")) for b in bases]
    target = int(target_mb * 1024 * 1024)
    rcs, drift, pv_children, ps_children = [], [], [], []
    size = 0
    k = 0
    while size < target:
        d = docs[k % len(docs)]
        part_rc = [rename_rc(rc, k) for rc in d.get("resource_changes") or []]
        part_drift = [rename_rc(rc, k) for rc in d.get("resource_drift") or []]
        pv = (d.get("planned_values") or {}).get("root_module") or {}
        ps = ((d.get("prior_state") or {}).get("values") or {}).get("root_module") or {}
        pvm = rename_module(dict(pv, address=f"module.rep{k}"), k)
        psm = rename_module(dict(ps, address=f"module.rep{k}"), k)
        pvm["address"] = psm["address"] = f"module.rep{k}"
        for part in (part_rc, part_drift):
            size += len(json.dumps(part, separators=(",", ":")))
        size += len(json.dumps(pvm, separators=(",", ":"))) + len(json.dumps(psm, separators=(",", ":")))
        rcs += part_rc
        drift += part_drift
        pv_children.append(pvm)
        ps_children.append(psm)
        k += 1
    base = docs[0]
    doc = {
        "format_version": base.get("format_version", "1.2"),
        "terraform_version": base.get("terraform_version", "1.11.0"),
        "variables": base.get("variables", {}),
        "planned_values": {"root_module": {"child_modules": pv_children}},
        "resource_drift": drift,
        "resource_changes": rcs,
        "output_changes": base.get("output_changes", {}),
        "prior_state": {"format_version": "1.0", "values": {"root_module": {"child_modules": ps_children}}},
        "configuration": base.get("configuration", {}),
        "timestamp": "2026-11-26T00:00:00Z",
        "applyable": True,
        "complete": True,
        "errored": False,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(json.dumps({"copies": k, "resource_changes": len(rcs)}))


if __name__ == "__main__":
    main()
