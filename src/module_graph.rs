//! A check on the library's shape (issue #13): its modules import each other without a cycle,
//! and the plan-gate report sits above `plan` and `policy`.
//!
//! The rule: between siblings — the crate's top-level modules, or the children of one module —
//! imports form a DAG. An import from anywhere inside sibling `a` of anything inside sibling
//! `b` is an arrow `a -> b`. A module and its own descendants are not siblings: a child using
//! its parent's vocabulary, and a parent re-exporting or calling its children, is containment.
//!
//! Imports are read from the source (`src/`, tests included; not the binaries, nor this file,
//! whose test sources are string literals): every `use` item, expanded (`crate::`, `super::`,
//! `self::`, and names of child modules), and every `crate::` / `super::` / `self::` path in
//! code. Comment lines are skipped; inline modules (`mod tests { ... }`) are followed by their
//! rustfmt indentation. Run `cargo test --lib module_graph -- --nocapture` to see every arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type ModPath = Vec<String>;

/// One source file: its module and its text.
struct Source {
    module: ModPath,
    text: String,
}

/// Every library source file under `src/` (not `src/bin/`).
fn library_sources() -> Vec<Source> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<Source>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap();
            if p.is_dir() {
                if rel != Path::new("bin") {
                    walk(&p, root, out);
                }
            } else if p.extension().is_some_and(|e| e == "rs")
                && rel != Path::new("module_graph.rs")
            {
                let rel = rel.to_str().unwrap().replace('\\', "/");
                out.push(Source {
                    module: module_of(&rel),
                    text: std::fs::read_to_string(&p).unwrap(),
                });
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

/// `lib.rs` -> the crate root, `a/mod.rs` and `a.rs` -> `a`, `a/b.rs` -> `a::b`.
fn module_of(rel: &str) -> ModPath {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut segs: ModPath = rel.split('/').map(str::to_string).collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs
}

/// The name of an inline module opened on this line (`mod tests {`, `pub(crate) mod st {`).
fn inline_mod(trimmed: &str) -> Option<&str> {
    let rest = trimmed.strip_suffix('{')?.trim_end();
    let rest = match rest.strip_prefix("pub") {
        Some(r) if r.starts_with('(') => r.split_once(") ")?.1,
        Some(r) => r.trim_start(),
        None => rest,
    };
    let name = rest.strip_prefix("mod ")?.trim();
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then_some(name)
}

/// Each line of a file with the module it is in (inline modules included).
fn lines_by_module(src: &Source) -> Vec<(ModPath, &str)> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for line in src.text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed == "}" && stack.last().is_some_and(|(i, _)| *i == indent) {
            stack.pop();
            continue;
        }
        let mut module = src.module.clone();
        module.extend(stack.iter().map(|(_, n)| n.clone()));
        if let Some(name) = inline_mod(trimmed) {
            stack.push((indent, name.to_string()));
        }
        out.push((module, line));
    }
    out
}

/// The paths a use tree names (`a::{b, c::{self, d as e}}` -> `a::b`, `a::c`, `a::c::d`).
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("").trim();
        let segs: Vec<String> = path
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "*")
            .map(str::to_string)
            .collect();
        return vec![segs];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut out = Vec::new();
    for item in items.into_iter().filter(|i| !i.trim().is_empty()) {
        for tail in expand_use(item) {
            let tail = if tail.first().map(String::as_str) == Some("self") {
                tail[1..].to_vec()
            } else {
                tail
            };
            out.push(prefix.iter().cloned().chain(tail).collect());
        }
    }
    out
}

/// The module a path from `from` points into (`None`: another crate).
fn resolve(from: &[String], segs: &[String], known: &BTreeSet<ModPath>) -> Option<ModPath> {
    let first = segs.first()?;
    let (mut base, mut rest): (ModPath, &[String]) = match first.as_str() {
        "crate" => (Vec::new(), &segs[1..]),
        "self" => (from.to_vec(), &segs[1..]),
        "super" => (from.to_vec(), segs),
        _ => {
            let mut child = from.to_vec();
            child.push(first.clone());
            if !known.contains(&child) {
                return None;
            }
            (from.to_vec(), segs)
        }
    };
    while rest.first().map(String::as_str) == Some("super") {
        base.pop()?;
        rest = &rest[1..];
    }
    let mut target = base;
    for seg in rest {
        let mut next = target.clone();
        next.push(seg.clone());
        if !known.contains(&next) {
            break;
        }
        target = next;
    }
    Some(target)
}

/// The use tree of a line that starts a `use` item (`use a::b;`, `pub(crate) use a::{`).
fn use_tree(trimmed: &str) -> Option<&str> {
    let rest = match trimmed.strip_prefix("pub") {
        Some(r) if r.starts_with('(') => r.split_once(") ")?.1,
        Some(r) => r.trim_start(),
        None => trimmed,
    };
    rest.strip_prefix("use ")
}

/// `crate::`, `super::` and `self::` paths written in a line of code.
fn code_paths(line: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = line[from..].find(start).map(|i| i + from) {
            from = at + start.len();
            if line[..at].chars().next_back().is_some_and(ident) {
                continue;
            }
            let tail = &line[at..];
            let end = tail
                .char_indices()
                .find(|&(_, c)| !(ident(c) || c == ':'))
                .map_or(tail.len(), |(i, _)| i);
            let segs: Vec<String> = tail[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push(segs);
        }
    }
    out
}

/// Every import: (importing module, imported module, the line), other crates left out.
fn imports(sources: &[Source]) -> Vec<(ModPath, ModPath, String)> {
    let by_module: Vec<Vec<(ModPath, &str)>> = sources.iter().map(lines_by_module).collect();
    let known: BTreeSet<ModPath> = (by_module.iter().flatten().map(|(m, _)| m.clone()))
        .chain(sources.iter().map(|s| s.module.clone()))
        .collect();
    let mut out = Vec::new();
    for lines in &by_module {
        let mut pending: Option<(ModPath, String)> = None;
        for (module, line) in lines {
            let trimmed = line.trim();
            if trimmed.starts_with("//") {
                continue;
            }
            if pending.is_none() {
                if let Some(tree) = use_tree(trimmed) {
                    pending = Some((module.clone(), String::new()));
                    pending.as_mut().unwrap().1.push_str(tree);
                } else {
                    for segs in code_paths(trimmed) {
                        if let Some(to) = resolve(module, &segs, &known) {
                            out.push((module.clone(), to, trimmed.to_string()));
                        }
                    }
                    continue;
                }
            } else if let Some((_, text)) = pending.as_mut() {
                text.push(' ');
                text.push_str(trimmed);
            }
            let done = pending.as_ref().is_some_and(|(_, t)| t.contains(';'));
            if done {
                let (from, text) = pending.take().unwrap();
                let tree = text.split(';').next().unwrap_or("");
                for segs in expand_use(tree) {
                    if let Some(to) = resolve(&from, &segs, &known) {
                        out.push((from.clone(), to, format!("use {}", tree.trim())));
                    }
                }
            }
        }
    }
    out.retain(|(a, b, _)| a != b);
    out
}

/// The arrows between siblings, by parent: (parent, [(from, to)]), each with an import that
/// makes it.
type Arrows = BTreeMap<ModPath, BTreeMap<(String, String), String>>;

fn sibling_arrows(imports: &[(ModPath, ModPath, String)]) -> Arrows {
    let mut out = Arrows::new();
    for (a, b, why) in imports {
        if a.starts_with(b) || b.starts_with(a) {
            continue; // containment
        }
        let c = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        out.entry(a[..c].to_vec())
            .or_default()
            .entry((a[c].clone(), b[c].clone()))
            .or_insert_with(|| format!("{}: {why}", a.join("::")));
    }
    out
}

/// A cycle among these arrows, as the modules on it (the first repeated at the end).
fn find_cycle(arrows: &BTreeMap<(String, String), String>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in arrows.keys() {
        next.entry(a).or_default().push(b);
    }
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, bool>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(true) => return None,
            Some(false) => {
                let at = path.iter().position(|p| *p == n)?;
                let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(n, false);
        path.push(n);
        for m in next.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, next, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n, true);
        None
    }
    let mut state = BTreeMap::new();
    for n in next.keys() {
        if let Some(c) = visit(n, &next, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// Every cycle found, one per parent, described with the imports that make it.
fn cycles(arrows: &Arrows) -> Vec<String> {
    let mut out = Vec::new();
    for (parent, group) in arrows {
        if let Some(cycle) = find_cycle(group) {
            let why: Vec<&str> = cycle
                .windows(2)
                .filter_map(|w| group.get(&(w[0].clone(), w[1].clone())))
                .map(String::as_str)
                .collect();
            out.push(format!(
                "in `{}`: {} ({})",
                if parent.is_empty() {
                    "crate".to_string()
                } else {
                    parent.join("::")
                },
                cycle.join(" -> "),
                why.join("; ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> ModPath {
        s.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn sibling_modules_import_each_other_without_a_cycle() {
        let arrows = sibling_arrows(&imports(&library_sources()));
        for (parent, group) in &arrows {
            for ((a, b), why) in group {
                eprintln!("[{}] {a} -> {b}   ({why})", parent.join("::"));
            }
        }
        let found = cycles(&arrows);
        assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    }

    /// The report reads `plan` and `policy`; neither of them imports it, and the plan reader's
    /// pieces and the digest share the raw types without importing each other.
    #[test]
    fn the_report_sits_above_plan_and_policy() {
        let all = imports(&library_sources());
        let arrows = sibling_arrows(&all);
        let top = &arrows[&Vec::new()];
        for (a, b) in [
            ("plan_report", "plan"),
            ("plan_report", "policy"),
            ("policy", "plan"),
        ] {
            assert!(
                top.contains_key(&(a.into(), b.into())),
                "{a} -> {b} expected"
            );
        }
        let back: Vec<_> = all
            .iter()
            .filter(|(a, b, _)| {
                (a.starts_with(&path("plan")) || a.starts_with(&path("policy")))
                    && b.starts_with(&path("plan_report"))
            })
            .collect();
        assert!(back.is_empty(), "arrows back up: {back:?}");
        let plan = &arrows[&path("plan")];
        for (a, b) in [("load", "raw"), ("digest", "raw"), ("load", "digest")] {
            assert!(plan.contains_key(&(a.into(), b.into())), "{a} -> {b}");
        }
        assert!(!plan.contains_key(&("digest".into(), "load".into())));
    }

    /// The check is not vacuous: the old layout (the digest and the loader importing each
    /// other, the renderer inside `plan` importing `policy`) is reported; containment (a child
    /// using its parent, the parent re-exporting the child) is not.
    #[test]
    fn the_check_finds_the_old_cycles_and_allows_containment() {
        let src = |file: &str, text: &str| Source {
            module: module_of(file),
            text: text.to_string(),
        };
        let old = [
            src("lib.rs", "pub mod plan;\npub mod policy;\n"),
            src(
                "plan/mod.rs",
                "pub mod digest;\npub mod load;\npub mod render;\n\
                 pub use load::{load, Limits};\npub struct Summary;\n",
            ),
            src(
                "plan/load.rs",
                "use super::digest::Leaves;\nuse super::{\n    Action, Summary,\n};\n\
                 fn f() { super::scan::value_end(); }\n",
            ),
            src(
                "plan/digest.rs",
                "use super::load::ChangeRaw;\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            ),
            src(
                "plan/render.rs",
                "use crate::policy::Violation;\nuse crate::runner::markdown::{self as md, Doc};\n",
            ),
            src(
                "policy/mod.rs",
                "// crate::plan_report is not an import\nuse crate::plan::Summary;\n",
            ),
        ];
        let found = cycles(&sibling_arrows(&imports(&old)));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("in `crate`: plan -> policy -> plan"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("in `plan`: digest -> load -> digest"),
            "{found:?}"
        );

        let fixed = [
            src("lib.rs", "pub mod plan;\npub mod plan_report;\npub mod policy;\n"),
            src("plan/mod.rs", "pub mod load;\nmod raw;\npub use load::load;\n"),
            src(
                "plan/load/mod.rs",
                "mod fast;\nuse super::raw::RcRaw;\nuse fast::{fast, DigestTo};\nuse super::Summary;\n",
            ),
            src("plan/load/fast.rs", "use super::{finish, Builder};\n"),
            src("plan/raw.rs", ""),
            src("plan_report.rs", "use crate::plan::{Action, Summary};\nuse crate::policy::Violation;\n"),
            src("policy/mod.rs", "use crate::plan::Summary;\n"),
        ];
        let all = imports(&fixed);
        assert!(cycles(&sibling_arrows(&all)).is_empty());
        assert!(all
            .iter()
            .any(|(a, b, _)| *a == path("plan::load") && *b == path("plan::raw")));
        assert!(all
            .iter()
            .any(|(a, b, _)| *a == path("plan::load") && *b == path("plan::load::fast")));
    }

    #[test]
    fn use_trees_expand_to_every_path() {
        let got: Vec<String> = expand_use("a::{b, c::{self, d as e}, f::*}")
            .into_iter()
            .map(|p| p.join("::"))
            .collect();
        assert_eq!(got, ["a::b", "a::c", "a::c::d", "a::f"]);
        assert_eq!(inline_mod("pub(crate) mod st {"), Some("st"));
        assert_eq!(inline_mod("mod tests {"), Some("tests"));
        assert_eq!(inline_mod("impl Module for X {"), None);
    }
}
