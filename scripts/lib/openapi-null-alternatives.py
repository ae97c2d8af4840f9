#!/usr/bin/env python3
"""Rewrite OpenAPI 3.0 `nullable: true` next to `oneOf`/`anyOf` (and no `type`) into an
explicit null alternative, in place, for Prism.

Why: Prism 5 (the GitHub API stand-in of our tests and demo) turns `nullable` into a JSON
Schema type; on a schema that has no `type` of its own (`{"nullable": true, "oneOf": [...]}`,
e.g. the `milestone` of POST /repos/{owner}/{repo}/issues) that fails, and Prism then lets the
WHOLE request body through unchecked: a POST /issues without its required `title` was answered
201 with "The request passed the validation rules". `{"oneOf": [A, B, {"enum": [null]}]}` means
the same thing (null matches only the new alternative while A and B are not nullable; with
`anyOf` any overlap is allowed) and Prism checks it. Used by scripts/cut-openapi-subset on its
output; run alone on a committed subset: scripts/lib/openapi-null-alternatives.py FILE.
"""
import json
import sys


def rewrite(node):
    """Rewrites every such schema under `node`; returns how many."""
    n = 0
    if isinstance(node, dict):
        for key in ("oneOf", "anyOf"):
            alts = node.get(key)
            if node.get("nullable") is True and "type" not in node and isinstance(alts, list):
                if key == "oneOf" and any(isinstance(a, dict) and a.get("nullable") for a in alts):
                    sys.exit(f"a oneOf with a nullable alternative cannot take a null one: {json.dumps(node)[:200]}")
                del node["nullable"]
                alts.append({"enum": [None]})
                n += 1
                break
        for v in node.values():
            n += rewrite(v)
    elif isinstance(node, list):
        for v in node:
            n += rewrite(v)
    return n


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path) as f:
        doc = json.load(f)
    count = rewrite(doc)
    with open(path, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"{path}: {count} nullable oneOf/anyOf schema(s) given an explicit null alternative")
