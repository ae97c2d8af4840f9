//! Rego policies in plan-gate, in-process (`--policy-rego`): conftest-style `package main`
//! files whose `deny`/`violation` rules (and `deny_*`/`violation_*`) fail the gate and whose
//! `warn` (and `warn_*`) rules only warn, evaluated by regorus (a Rust Rego engine: no OPA
//! binary, no process per policy) against the plan JSON.
//!
//! What this module owns:
//! - [`RegoPolicies::load`]: every `.rego` file of the given directories and files (sorted,
//!   `*_test.rego` left out), each parsed as Rego v1 and else as v0 (classic syntax), then
//!   checked *before any evaluation* ([`check_modules`]): a call to a function that is neither
//!   defined by the policies nor a built-in of this engine is refused naming it; a `data.*`
//!   reference or import that no policy defines is refused as undefined; `deny`/`warn` rules
//!   outside `package main` (which conftest's default namespace would never run) are refused.
//! - [`input`]: the plan JSON as the policies see it. Every value a sensitivity mask marks (and
//!   every string that holds a sensitive string) is replaced by [`SENSITIVE`], unless the file
//!   opts in with the line [`SEES_SENSITIVE`] before its `package`. Only the top-level keys the
//!   policies reference are converted (all of them when a policy uses `input` as a whole).
//! - [`RegoPolicies::evaluate`]: each rule definition on its own, so every finding is named by
//!   its file and rule; messages are scrubbed of the plan's sensitive strings.
//!
//! Every failure (unreadable file, parse error, missing built-in, undefined reference, an
//! evaluation error, the time limit) is exit 2 with the file and line: never a silent pass.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regorus::unstable::{Expr, Literal, Module, Query, Ref, Rule, RuleHead, BUILTINS};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::value::Object;
use regorus::{Engine, Rc, Value};

use super::Violation;
use crate::exit::{Failure, Result};
use crate::plan::Scrubber;
use crate::runner::single_line;

/// What a policy sees in place of a sensitive value.
pub const SENSITIVE: &str = "(sensitive value)";
/// The line (before `package`) by which a file opts in to see sensitive values as they are.
pub const SEES_SENSITIVE: &str = "# plan-gate: sees-sensitive-values";
/// The flag errors are reported under.
const FLAG: &str = "policy-rego";
/// The package conftest evaluates by default.
const MAIN: &str = "data.main";
/// Most `.rego` files accepted under the given paths (a cap that refuses, never skips).
const FILES_MAX: usize = 2000;
/// Longest message kept from a policy (the report cuts further).
const MESSAGE_MAX: usize = 2000;

/// Whether a rule's findings fail the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `deny`, `violation` (and `deny_*`, `violation_*`): fail the gate.
    Deny,
    /// `warn` (and `warn_*`): shown, never fail the gate.
    Warn,
}

/// The kind of a rule named `name` (conftest's naming), `None` for helper rules.
pub fn rule_kind(name: &str) -> Option<Kind> {
    let suffix_ok = |rest: &str| {
        rest.is_empty()
            || (rest.starts_with('_')
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    };
    for (prefix, kind) in [
        ("deny", Kind::Deny),
        ("violation", Kind::Deny),
        ("warn", Kind::Warn),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if suffix_ok(rest) {
                return Some(kind);
            }
        }
    }
    None
}

/// One rule definition to evaluate.
struct Entry {
    module: usize,
    rule: Ref<Rule>,
    /// The rule's name (`deny`, `warn_public`).
    name: String,
    /// Where it is defined (`policies/s3.rego:12`).
    place: String,
    kind: Kind,
}

impl Entry {
    fn id(&self) -> String {
        let file = self
            .place
            .rsplit_once(':')
            .map(|x| x.0)
            .unwrap_or(&self.place);
        format!("{file}:{}", self.name)
    }
}

/// Which top-level keys of the plan the policies read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    /// `input` is used as a whole (or by a computed key).
    pub all: bool,
    /// The keys used (`resource_changes`, ...).
    pub keys: BTreeSet<String>,
}

impl Uses {
    fn wants(&self, key: &str) -> bool {
        self.all || self.keys.contains(key)
    }
}

/// Loaded and checked Rego policies.
pub struct RegoPolicies {
    /// Every file, as shown in reports.
    pub files: Vec<String>,
    /// Files that opted in to see sensitive values ([`SEES_SENSITIVE`]).
    pub sees_sensitive: Vec<String>,
    /// Which parts of the plan they read.
    pub uses: Uses,
    engine: Engine,
    entries: Vec<Entry>,
    /// Per module: opted in.
    opted: Vec<bool>,
    /// Every rule in one evaluation (`None`: rule by rule, see [`Combined`]).
    combined: Option<Combined>,
}

/// The engine that evaluates every `deny`/`violation`/`warn` rule in one query, so helper rules
/// are computed once and the input is walked once per rule body, not once per evaluation.
///
/// Each file's finding rules are renamed in its own copy of the text (`deny` in file 3 becomes
/// `deny__plan_gate_3`, at the rule head's exact span, definitions and defaults alike): the
/// rules of different files then stay apart and every finding is still named by its file and
/// rule. Not used when a policy reads the finding rules themselves (the renaming would change
/// what it reads) or a rule already has such a name; evaluation is then rule by rule.
struct Combined {
    engine: Engine,
    /// The queries for the files that see masked input and for those that opted in: the
    /// rules split into parts evaluated on threads of their own (see [`PARTS`]), each part
    /// with its own copy of the engine over the same input.
    queries: [Vec<String>; 2],
    /// One per (file, rule name): the query binding, the entry that names it.
    groups: Vec<Group>,
    /// Renamed rule names and the names they stand for (for error texts).
    renamed: Vec<(String, String)>,
}

/// An error of the combined query: pointing into a rule's text, or not (the time limit).
enum CombinedError {
    Located(Failure),
    Unlocated(Failure),
}
use CombinedError::{Located, Unlocated};

struct Group {
    binding: String,
    entry: usize,
    opted: bool,
}

/// A fresh engine with plan-gate's settings.
fn new_engine(timeout: Duration) -> Engine {
    let mut engine = Engine::new();
    // A built-in's error (`object.keys(null)`) stops the run (exit 2) instead of making the
    // expression undefined as OPA does by default: a rule that silently stops firing on some
    // resources would be a silent pass.
    engine.set_strict_builtin_errors(true);
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: timeout,
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    });
    engine
}

/// The variable at the root of a rule head's reference (`deny` of `deny[msg]`).
fn head_root(e: &Expr) -> Option<&regorus::unstable::Span> {
    match e {
        Expr::Var { span, .. } => Some(span),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => head_root(refr),
        _ => None,
    }
}

const RENAMED: &str = "__plan_gate_";

/// How many threads evaluate the rules (at most; one per core, and never more parts than
/// rules). Each evaluates its share of the rules against the one input tree (regorus's values
/// are shared across threads, its `arc` feature); helper rules are computed once per thread.
fn parts() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Combined {
    /// `None` when the renaming cannot be done safely (evaluation is then rule by rule).
    fn build(
        modules: &[Ref<Module>],
        sources: &[(String, bool)],
        entries: &[Entry],
        opted: &[bool],
        timeout: Duration,
        parts: usize,
    ) -> Option<Combined> {
        let mut engine = new_engine(timeout);
        let mut renamed = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            let (text, v0) = sources.get(i)?;
            let in_main = package_path(m).ok()? == MAIN;
            let mut edits = Vec::new();
            for rule in &m.policy {
                let refr = match rule.as_ref() {
                    Rule::Spec { head, .. } => match head {
                        RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                        RuleHead::Func { refr, .. } => {
                            if head_root(refr).is_some_and(|s| s.text().contains(RENAMED)) {
                                return None;
                            }
                            continue;
                        }
                    },
                    Rule::Default { refr, .. } => refr,
                };
                let span = head_root(refr)?;
                let name = span.text();
                if name.contains(RENAMED) {
                    return None;
                }
                if !in_main || rule_kind(name).is_none() {
                    continue;
                }
                let (start, end) = (span.start as usize, span.end as usize);
                if text.get(start..end) != Some(name) {
                    return None;
                }
                edits.push((start, end, name.to_string(), format!("{name}{RENAMED}{i}")));
            }
            let mut t = text.clone();
            edits.sort_by_key(|e| std::cmp::Reverse(e.0));
            for (start, end, old, new) in edits {
                t.replace_range(start..end, &new);
                renamed.push((new, old));
            }
            engine.set_rego_v0(*v0);
            let file = m.package.span.source.file().clone();
            engine.add_policy(file, t).ok()?;
        }
        renamed.sort();
        renamed.dedup();
        let mut groups: Vec<Group> = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, e) in entries.iter().enumerate() {
            if !seen.insert((e.module, e.name.clone())) {
                continue;
            }
            groups.push(Group {
                binding: format!("f{}", groups.len()),
                entry: i,
                opted: opted[e.module],
            });
        }
        // The rules of a slot dealt round-robin into at most `parts` queries.
        let query = |want: bool| -> Vec<String> {
            let lines: Vec<String> = groups
                .iter()
                .filter(|g| g.opted == want)
                .map(|g| {
                    let e = &entries[g.entry];
                    // An array comprehension is always defined: a rule that does not hold
                    // gives `[]` instead of making the whole query undefined.
                    format!(
                        "{} := [v | v := data.main.{}{RENAMED}{}]",
                        g.binding, e.name, e.module
                    )
                })
                .collect();
            let n = parts.clamp(1, lines.len().max(1));
            let mut out = vec![Vec::new(); n];
            for (k, line) in lines.into_iter().enumerate() {
                out[k % n].push(line);
            }
            out.into_iter()
                .filter(|q| !q.is_empty())
                .map(|q| q.join("\n"))
                .collect()
        };
        let queries = [query(false), query(true)];
        Some(Combined {
            engine,
            queries,
            groups,
            renamed,
        })
    }
}

/// What the policies found.
#[derive(Debug, Default)]
pub struct Findings {
    /// From `deny`/`violation` rules: they fail the gate.
    pub deny: Vec<Violation>,
    /// From `warn` rules: shown only.
    pub warn: Vec<Violation>,
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::usage(FLAG, msg.into())
}

/// The `.rego` files under `paths` (a directory: recursively, sorted; `*_test.rego` left out).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| {
            usage(format!(
                "cannot read {}: {}",
                single_line(&p.display().to_string()),
                e.kind()
            ))
        })?;
        if meta.is_dir() {
            let before = out.len();
            walk_dir(p, &mut out)?;
            if out.len() == before {
                return Err(usage(format!(
                    "{} holds no `.rego` file (an empty policy directory would pass every plan)",
                    single_line(&p.display().to_string())
                )));
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(usage("no policy file given"));
    }
    Ok(out)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let cannot = |e: std::io::Error| {
        usage(format!(
            "cannot read {}: {}",
            single_line(&dir.display().to_string()),
            e.kind()
        ))
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(cannot)?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(cannot)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = std::fs::metadata(&path).map_err(cannot)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            if !name.starts_with('.') {
                walk_dir(&path, out)?;
            }
        } else if name.ends_with(".rego") && !name.ends_with("_test.rego") {
            if out.len() >= FILES_MAX {
                return Err(usage(format!(
                    "more than {FILES_MAX} `.rego` files under the given paths"
                )));
            }
            out.push(path);
        }
    }
    Ok(())
}

/// `file:line:col: message` from one of regorus's errors (they span several lines and quote the
/// source line); scrubbed when a plan is known (an evaluation error may quote input values).
fn engine_error(e: &anyhow::Error, fallback_place: &str, sc: Option<&Scrubber>) -> String {
    let text = format!("{e:#}");
    let mut place = None;
    let mut message = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(p) = l.strip_prefix("--> ") {
            place.get_or_insert_with(|| p.to_string());
        } else if let Some(m) = l.strip_prefix("error: ") {
            message = Some(m.to_string());
        }
    }
    let message = message.unwrap_or_else(|| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains('|') && !l.starts_with("-->"))
            .collect::<Vec<_>>()
            .join("; ")
    });
    let out = format!(
        "{}: {}",
        place.as_deref().unwrap_or(fallback_place),
        message
    );
    let out = match sc {
        Some(sc) => sc.scrub(&out),
        None => out,
    };
    single_line(&out)
}

/// The line number of a regorus error's `--> file:line:col`, 0 when it has none.
fn error_line(e: &anyhow::Error) -> u64 {
    format!("{e:#}")
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|p| p.rsplit(':').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whether the file opts in to sensitive values: the marker line before `package`.
fn opts_in(text: &str) -> bool {
    for line in text.lines() {
        let l = line.trim();
        if l == SEES_SENSITIVE {
            return true;
        }
        if l.starts_with("package ") || l == "package" {
            return false;
        }
    }
    false
}

impl RegoPolicies {
    /// Read, parse and check every policy under `paths`; nothing is evaluated yet.
    pub fn load(paths: &[PathBuf], timeout: Duration) -> Result<RegoPolicies> {
        Self::load_in_parts(paths, timeout, parts())
    }

    /// As [`RegoPolicies::load`], the rules evaluated in at most `parts` parts on threads.
    fn load_in_parts(paths: &[PathBuf], timeout: Duration, parts: usize) -> Result<RegoPolicies> {
        let files = collect(paths)?;
        let mut engine = new_engine(timeout);
        let mut shown = Vec::new();
        let mut opted = Vec::new();
        let mut sources = Vec::new();
        for f in &files {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(f)
                .map_err(|e| usage(format!("cannot read {}: {}", single_line(&name), e.kind())))?;
            opted.push(opts_in(&text));
            // Rego v1 first (OPA 1.0's and conftest's default), then v0 (classic `deny[msg] {`).
            // A file that is neither is refused with the error of the reading that got furthest.
            engine.set_rego_v0(false);
            let mut v0_syntax = false;
            if let Err(v1) = engine.add_policy(name.clone(), text.clone()) {
                engine.set_rego_v0(true);
                v0_syntax = true;
                if let Err(v0) = engine.add_policy(name.clone(), text.clone()) {
                    let e = if error_line(&v0) > error_line(&v1) {
                        v0
                    } else {
                        v1
                    };
                    return Err(usage(format!(
                        "cannot parse the policy: {}",
                        engine_error(&e, &name, None)
                    )));
                }
            }
            shown.push(name);
            sources.push((text, v0_syntax));
        }
        let modules = engine.get_modules().clone();
        let (uses, reads_findings) = check_modules(&modules)?;
        let mut entries = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            let package = package_path(m)?;
            for rule in &m.policy {
                let Rule::Spec { head, span, .. } = rule.as_ref() else {
                    continue;
                };
                let refr = match head {
                    RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                    RuleHead::Func { .. } => continue,
                };
                let name = regorus::utils::get_path_string(refr, None)
                    .map_err(|e| usage(engine_error(&e, &shown[i], None)))?;
                let first = name.split('.').next().unwrap_or_default().to_string();
                let Some(kind) = rule_kind(&first) else {
                    continue;
                };
                let place = format!("{}:{}", shown[i], span.line);
                if package != MAIN {
                    return Err(usage(format!(
                        "{place}: rule `{first}` is in package `{}`: only `package main` is evaluated (conftest's default namespace), so it would never run; move it to `package main`",
                        package.trim_start_matches("data.")
                    )));
                }
                if first != name {
                    return Err(usage(format!(
                        "{place}: rule `{name}`: a `{first}` rule must be a set (`{first} contains msg if`) or a single value, not a nested reference"
                    )));
                }
                entries.push(Entry {
                    module: i,
                    rule: rule.clone(),
                    name,
                    place,
                    kind,
                });
            }
        }
        if entries.is_empty() {
            return Err(usage(format!(
                "none of the {} policy file(s) has a `deny`, `violation` or `warn` rule in `package main`: nothing would be checked",
                shown.len()
            )));
        }
        let sees_sensitive = shown
            .iter()
            .zip(&opted)
            .filter(|(_, o)| **o)
            .map(|(s, _)| s.clone())
            .collect();
        // One evaluation for all rules (helpers computed once), unless a policy reads the
        // findings themselves (`count(deny)`, `data.main`), which the renaming would change.
        let combined = match reads_findings {
            true => None,
            false => Combined::build(&modules, &sources, &entries, &opted, timeout, parts),
        };
        Ok(RegoPolicies {
            files: shown,
            sees_sensitive,
            uses,
            engine,
            entries,
            opted,
            combined,
        })
    }

    /// The ids of the rules findings are named by (`policies/s3.rego:deny`), for `--allow`.
    pub fn rule_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.entries.iter().map(Entry::id).collect();
        ids.dedup();
        ids
    }

    /// Read the plan JSON at `path` again (it was checked by `plan::load`), build the inputs the
    /// files need (masked, and unmasked only when a file opted in) and evaluate.
    pub fn check_plan(&self, path: &Path, sc: &Scrubber) -> Result<Findings> {
        let text = std::fs::read(path).map_err(|e| {
            Failure::usage(
                "plan",
                format!(
                    "cannot read {} again for the Rego policies: {}",
                    single_line(&path.display().to_string()),
                    e.kind()
                ),
            )
        })?;
        let wants = |opted: bool| self.entries.iter().any(|e| self.opted[e.module] == opted);
        let masked = match wants(false) {
            true => input(&text, &self.uses, sc, true)?,
            false => Value::Undefined,
        };
        let raw = match wants(true) {
            true => Some(input(&text, &self.uses, sc, false)?),
            false => None,
        };
        let found = self.evaluate(&masked, raw.as_ref(), sc);
        // Not dropped: freeing the input's hundreds of thousands of small allocations took
        // longer than evaluating some policies, just before the process exits anyway.
        std::mem::forget(masked);
        std::mem::forget(raw);
        found
    }

    /// Evaluate every `deny`/`violation`/`warn` rule: against `masked` for files that did not
    /// opt in, against `raw` for those that did (`raw` must be given when any did).
    pub fn evaluate(&self, masked: &Value, raw: Option<&Value>, sc: &Scrubber) -> Result<Findings> {
        let mut out = match &self.combined {
            Some(c) => match self.evaluate_combined(c, masked, raw, sc) {
                Ok(f) => f,
                // An error that points into no rule (the time limit): rule by rule, the first
                // that fails is named with its file and line; if none fails alone, the
                // combined error stands.
                Err(Unlocated(e)) => match self.evaluate_each(masked, raw, sc) {
                    Err(each) => return Err(each),
                    Ok(_) => return Err(e),
                },
                Err(Located(e)) => return Err(e),
            },
            None => self.evaluate_each(masked, raw, sc)?,
        };
        for list in [&mut out.deny, &mut out.warn] {
            list.sort_by(|a, b| (&a.rule, &a.message).cmp(&(&b.rule, &b.message)));
            list.dedup();
        }
        Ok(out)
    }

    /// One query per input for every rule (see [`Combined`]).
    fn evaluate_combined(
        &self,
        c: &Combined,
        masked: &Value,
        raw: Option<&Value>,
        sc: &Scrubber,
    ) -> std::result::Result<Findings, CombinedError> {
        let mut out = Findings::default();
        for (slot, queries) in c.queries.iter().enumerate() {
            if queries.is_empty() {
                continue;
            }
            let input = match slot {
                1 => raw.ok_or_else(|| {
                    Located(Failure::runtime(
                        "internal: the unmasked input was not built",
                    ))
                })?,
                _ => masked,
            };
            // One thread per part, each with its own engine over the same input; the results
            // are taken in part order, so the first failing part's error is the one reported.
            let eval = |query: &String| -> anyhow::Result<Value> {
                let mut engine = c.engine.clone();
                engine.set_input(input.clone());
                let results = engine.eval_query(query.clone(), false)?;
                // The engine holds the input too (see `check_plan`).
                std::mem::forget(engine);
                match results.result.as_slice() {
                    [one] => Ok(one.bindings.clone()),
                    _ => Err(anyhow::anyhow!(
                        "internal: the policy query gave {} results instead of one",
                        results.result.len()
                    )),
                }
            };
            let results: Vec<anyhow::Result<Value>> = match queries.as_slice() {
                [one] => vec![eval(one)],
                many => std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        many.iter().map(|q| scope.spawn(move || eval(q))).collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                        .collect()
                }),
            };
            let mut parts = Vec::with_capacity(results.len());
            for r in results {
                parts.push(r.map_err(|err| self.evaluation_error(c, &err, sc))?);
            }
            for g in c.groups.iter().filter(|g| usize::from(g.opted) == slot) {
                let e = &self.entries[g.entry];
                let key = Value::from(g.binding.as_str());
                let found = parts.iter().find_map(|b| match b {
                    Value::Object(o) => o.get(&key),
                    _ => None,
                });
                let value = match found {
                    Some(Value::Array(a)) => a.first().cloned().unwrap_or(Value::Undefined),
                    _ => {
                        return Err(Located(Failure::runtime(format!(
                            "internal: no value for rule `{}` ({})",
                            e.name, e.place
                        ))))
                    }
                };
                self.collect(e, &value, sc, &mut out).map_err(Located)?;
            }
        }
        Ok(out)
    }

    /// An evaluation error of the combined query, named by the rule whose text it points into
    /// (with the rule names as the policy wrote them).
    fn evaluation_error(&self, c: &Combined, err: &anyhow::Error, sc: &Scrubber) -> CombinedError {
        let mut text = engine_error(err, "policy", Some(sc));
        for (new, old) in &c.renamed {
            text = text.replace(new.as_str(), old);
        }
        let place = format!("{err:#}")
            .lines()
            .find_map(|l| l.trim().strip_prefix("--> ").map(str::to_string));
        let rule = place.as_deref().and_then(|p| self.rule_at(p));
        match rule {
            Some((name, place)) => Located(usage(format!(
                "policy evaluation failed in rule `{name}` ({place}): {text}"
            ))),
            None => Unlocated(usage(format!("policy evaluation failed: {text}"))),
        }
    }

    /// The rule (name, `file:line`) whose text holds `file:line:col`.
    fn rule_at(&self, place: &str) -> Option<(String, String)> {
        let mut it = place.rsplitn(3, ':');
        let (_col, line, file) = (it.next()?, it.next()?, it.next()?);
        let line: u32 = line.parse().ok()?;
        let modules = self.engine.clone().get_modules().clone();
        for m in modules.iter() {
            if m.package.span.source.file() != file {
                continue;
            }
            for rule in &m.policy {
                let (span, refr) = match rule.as_ref() {
                    Rule::Spec { span, head, .. } => match head {
                        RuleHead::Compr { refr, .. }
                        | RuleHead::Set { refr, .. }
                        | RuleHead::Func { refr, .. } => (span, refr),
                    },
                    Rule::Default { span, refr, .. } => (span, refr),
                };
                let last = span.line + span.text().matches('\n').count() as u32;
                if (span.line..=last).contains(&line) {
                    let name = head_root(refr).map(|s| s.text().to_string())?;
                    return Some((name, format!("{file}:{}", span.line)));
                }
            }
        }
        None
    }

    /// The findings of one rule's value.
    fn collect(&self, e: &Entry, value: &Value, sc: &Scrubber, out: &mut Findings) -> Result<()> {
        let id = e.id();
        for msg in messages(value).map_err(|why| {
            usage(format!(
                "{}: rule `{}` {why} (conftest expects strings, or objects with a string `msg`)",
                e.place, e.name
            ))
        })? {
            // Scrubbed before the cut, and the cut end scrubbed of a cut-off secret.
            let message = sc.scrub_cut(&crate::runner::cut(&sc.scrub(&msg), MESSAGE_MAX));
            let v = Violation {
                rule: id.clone(),
                address: None,
                message,
            };
            match e.kind {
                Kind::Deny => out.deny.push(v),
                Kind::Warn => out.warn.push(v),
            }
        }
        Ok(())
    }

    /// Each rule definition on its own (when a policy reads the finding rules themselves).
    fn evaluate_each(
        &self,
        masked: &Value,
        raw: Option<&Value>,
        sc: &Scrubber,
    ) -> Result<Findings> {
        let mut out = Findings::default();
        let mut engines: [Option<Engine>; 2] = [None, None];
        for e in &self.entries {
            let opted = self.opted[e.module];
            let slot = usize::from(opted);
            if engines[slot].is_none() {
                let input = if opted {
                    raw.ok_or_else(|| {
                        Failure::runtime("internal: the unmasked input was not built")
                    })?
                } else {
                    masked
                };
                let mut engine = self.engine.clone();
                engine.set_input(input.clone());
                engines[slot] = Some(engine);
            }
            let Some(engine) = engines[slot].as_mut() else {
                continue;
            };
            let module = engine.get_modules()[e.module].clone();
            let data = engine
                .eval_rule_in_module(&module, &e.rule, false)
                .map_err(|err| {
                    usage(format!(
                        "policy evaluation failed in rule `{}` ({}): {}",
                        e.name,
                        e.place,
                        engine_error(&err, &e.place, Some(sc))
                    ))
                })?;
            self.collect(e, &data["main"][e.name.as_str()], sc, &mut out)?;
        }
        // The engines hold the input too (see `check_plan`).
        std::mem::forget(engines);
        Ok(out)
    }
}

/// The messages of one rule's value: a set or array of strings or `{"msg": ...}` objects, one
/// string, or a boolean (`true`: one finding without a message of its own).
fn messages(v: &Value) -> std::result::Result<Vec<String>, String> {
    fn one(v: &Value) -> std::result::Result<String, String> {
        match v {
            Value::String(s) => Ok(s.to_string()),
            Value::Object(o) => match o.get(&Value::from("msg")) {
                Some(Value::String(s)) => Ok(s.to_string()),
                Some(_) => Err("gave an object whose `msg` is not a string".into()),
                None => Err("gave an object without `msg`".into()),
            },
            _ => Err("gave a value that is neither a string nor an object".into()),
        }
    }
    match v {
        Value::Undefined | Value::Bool(false) | Value::Null => Ok(vec![]),
        Value::Bool(true) => Ok(vec!["(the rule holds; it gives no message)".into()]),
        Value::Set(s) => s.iter().map(one).collect(),
        Value::Array(a) => a.iter().map(one).collect(),
        Value::String(_) => Ok(vec![one(v)?]),
        Value::Object(o) if o.contains_key(&Value::from("msg")) => Ok(vec![one(v)?]),
        Value::Object(_) => Err(
            "is an object: in Rego v1 `deny[msg] if` defines an object; write `deny contains msg if`"
                .into(),
        ),
        Value::Number(_) => Err("gave a number".into()),
    }
}

fn package_path(m: &Module) -> Result<String> {
    regorus::utils::get_path_string(&m.package.refr, Some("data"))
        .map_err(|e| usage(engine_error(&e, "policy", None)))
}

/// The static components of a reference (`data.lib.x[_]` -> `data`, `lib`, `x`), its root
/// variable, and the dynamic index expressions in it.
fn ref_parts(e: &Expr) -> Option<(Vec<String>, Vec<&Ref<Expr>>)> {
    match e {
        Expr::Var { span, .. } => Some((vec![span.text().to_string()], vec![])),
        Expr::RefDot { refr, field, .. } => {
            let (mut p, d) = ref_parts(refr)?;
            if d.is_empty() {
                p.push(field.0.text().to_string());
            }
            Some((p, d))
        }
        Expr::RefBrack { refr, index, .. } => {
            let (mut p, mut d) = ref_parts(refr)?;
            match index.as_ref() {
                Expr::String { value, .. } | Expr::RawString { value, .. } if d.is_empty() => {
                    p.push(value.as_string().map(|s| s.to_string()).unwrap_or_default());
                }
                _ => d.push(index),
            }
            Some((p, d))
        }
        _ => None,
    }
}

/// What the walk over one module finds.
struct Walk<'a> {
    file: String,
    package: String,
    /// Import aliases: `x` -> `data.lib.x` (or `input.foo`).
    aliases: BTreeMap<String, Vec<String>>,
    functions: &'a regorus::utils::FunctionTable,
    /// Package path -> the first components of the rules it defines.
    packages: &'a BTreeMap<Vec<String>, BTreeSet<String>>,
    uses: &'a mut Uses,
    /// The finding rules of `package main` (`deny`, `warn_x`, ...).
    findings: &'a BTreeSet<String>,
    /// Whether a policy reads them (`count(deny)`, `data.main.warn`, `data.main`, `data`).
    reads_findings: bool,
    problem: Option<String>,
}

impl Walk<'_> {
    fn fail(&mut self, line: u32, msg: String) {
        if self.problem.is_none() {
            self.problem = Some(format!("{}:{line}: {msg}", self.file));
        }
    }

    /// Expand an import alias at the root of `parts`.
    fn resolve(&self, parts: &[String]) -> Vec<String> {
        match parts.first().and_then(|r| self.aliases.get(r)) {
            Some(full) => full.iter().chain(&parts[1..]).cloned().collect(),
            None => parts.to_vec(),
        }
    }

    fn reference(&mut self, line: u32, parts: &[String]) {
        let parts = self.resolve(parts);
        let reads = match parts.first().map(String::as_str) {
            Some("data") => match (parts.get(1).map(String::as_str), parts.get(2)) {
                (None, _) | (Some("main"), None) => true,
                (Some("main"), Some(r)) => self.findings.contains(r),
                _ => false,
            },
            Some(root) => self.package == MAIN && self.findings.contains(root),
            None => false,
        };
        self.reads_findings |= reads;
        match parts.first().map(String::as_str) {
            Some("input") => match parts.get(1) {
                Some(k) => {
                    self.uses.keys.insert(k.clone());
                }
                None => self.uses.all = true,
            },
            Some("data") => {
                if let Err(m) = self.data_ref(&parts) {
                    self.fail(line, m);
                }
            }
            _ => {}
        }
    }

    /// A `data.*` reference must lead into a package the policies define (no data documents
    /// are loaded): a package, a prefix of one, or a rule of one.
    fn data_ref(&self, parts: &[String]) -> std::result::Result<(), String> {
        if parts.len() == 1 {
            return Ok(());
        }
        for (pkg, rules) in self.packages {
            let n = pkg.len().min(parts.len());
            if pkg[..n] != parts[..n] {
                continue;
            }
            if parts.len() <= pkg.len() {
                return Ok(()); // the package or a prefix of it
            }
            if rules.contains(&parts[pkg.len()]) {
                return Ok(());
            }
        }
        let shown = parts.join(".");
        Err(format!(
            "undefined reference `{}`: no policy defines it (plan-gate loads no data documents: every `data.*` must be a package or rule of the policies)",
            single_line(&shown)
        ))
    }

    fn call(&mut self, line: u32, fcn: &Expr) {
        let Some((parts, dynamic)) = ref_parts(fcn) else {
            self.fail(line, "a call to a computed function".into());
            return;
        };
        if !dynamic.is_empty() {
            self.fail(line, "a call to a computed function".into());
            return;
        }
        let path = parts.join(".");
        if path == "print" || BUILTINS.contains_key(path.as_str()) {
            return;
        }
        let resolved = self.resolve(&parts).join(".");
        let candidates = [
            format!("{}.{path}", self.package),
            path.clone(),
            resolved.clone(),
        ];
        if candidates.iter().any(|c| self.functions.contains_key(c)) {
            return;
        }
        // A rule called like a function with an extra output argument is a Rego error the engine
        // reports itself; a name the policies do not define and the engine does not have is ours.
        self.fail(
            line,
            format!(
                "calls `{}`, which is neither a function these policies define nor a built-in of plan-gate's Rego engine (regorus {}): this policy cannot be evaluated here",
                single_line(&path),
                REGORUS_VERSION
            ),
        );
    }

    fn expr(&mut self, e: &Expr) {
        let line = e.span().line;
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                match ref_parts(e) {
                    Some((parts, dynamic)) => {
                        self.reference(line, &parts);
                        for d in dynamic {
                            self.expr(d);
                        }
                    }
                    None => {
                        // A reference into a computed value (`f(x).y`, `[1][0]`).
                        if let Expr::RefDot { refr, .. } = e {
                            self.expr(refr);
                        }
                        if let Expr::RefBrack { refr, index, .. } = e {
                            self.expr(refr);
                            self.expr(index);
                        }
                    }
                }
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| self.expr(i))
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k);
                    self.expr(v);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { fcn, params, .. } => {
                self.call(line, fcn);
                params.iter().for_each(|p| self.expr(p));
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => self.membership(key.as_ref(), value, collection),
        }
    }

    /// `key, value in collection` (an expression, or `some ... in`).
    fn membership(&mut self, key: Option<&Ref<Expr>>, value: &Expr, collection: &Expr) {
        if let Some(k) = key {
            self.expr(k);
        }
        self.expr(value);
        self.expr(collection);
    }

    fn query(&mut self, q: &Query) {
        for s in &q.stmts {
            match &s.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => self.membership(key.as_ref(), value, collection),
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
                Literal::Every { domain, query, .. } => {
                    self.expr(domain);
                    self.query(query);
                }
            }
            for w in &s.with_mods {
                // `with input.x as v` replaces what the policy reads; `with f as g` may name a
                // built-in: only the value side is walked.
                self.expr(&w.r#as);
            }
        }
    }

    fn rule(&mut self, r: &Rule) {
        match r {
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { assign, .. } => {
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { key, refr, .. } => {
                        self.head_ref(refr);
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func { assign, args, .. } => {
                        // Arguments are patterns; they may still hold references.
                        for a in args {
                            if !matches!(a.as_ref(), Expr::Var { .. }) {
                                self.expr(a);
                            }
                        }
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                }
                for b in bodies {
                    if let Some(a) = &b.assign {
                        self.expr(&a.value);
                    }
                    self.query(&b.query);
                }
            }
            Rule::Default { value, .. } => self.expr(value),
        }
    }

    /// A rule head's dynamic indexes (`deny[msg]` has none worth walking; `p[x.y]` has).
    fn head_ref(&mut self, refr: &Expr) {
        if let Some((_, dynamic)) = ref_parts(refr) {
            for d in dynamic {
                if !matches!(d.as_ref(), Expr::Var { .. }) {
                    self.expr(d);
                }
            }
        }
    }
}

/// The regorus version the built-in list comes from (shown in refusals).
pub const REGORUS_VERSION: &str = "0.14";

/// Check every module before evaluation: functions, `data.*` references, imports. Returns the
/// top-level input keys the policies read, and whether a policy reads the finding rules.
pub fn check_modules(modules: &[Ref<Module>]) -> Result<(Uses, bool)> {
    let functions = regorus::utils::gather_functions(modules)
        .map_err(|e| usage(engine_error(&e, "policy", None)))?;
    let mut packages: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for m in modules {
        let pkg: Vec<String> = package_path(m)?.split('.').map(str::to_string).collect();
        let rules = packages.entry(pkg).or_default();
        for r in &m.policy {
            let refr = match r.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => refr,
                },
                Rule::Default { refr, .. } => refr,
            };
            if let Some((parts, _)) = ref_parts(refr) {
                if let Some(first) = parts.first() {
                    rules.insert(first.clone());
                }
            }
        }
    }
    let findings: BTreeSet<String> = packages
        .get(&MAIN.split('.').map(str::to_string).collect::<Vec<_>>())
        .map(|rules| {
            rules
                .iter()
                .filter(|r| rule_kind(r).is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut uses = Uses::default();
    let mut reads_findings = false;
    for m in modules {
        let file = m.package.span.source.file().clone();
        let package = package_path(m)?;
        let mut aliases = BTreeMap::new();
        let mut walk = Walk {
            file,
            package,
            aliases: BTreeMap::new(),
            functions: &functions,
            packages: &packages,
            uses: &mut uses,
            findings: &findings,
            reads_findings: false,
            problem: None,
        };
        for imp in &m.imports {
            let Some((parts, _)) = ref_parts(&imp.refr) else {
                continue;
            };
            let line = imp.span.line;
            match parts.first().map(String::as_str) {
                Some("future") | Some("rego") => continue,
                Some("input") | Some("data") => {
                    walk.reference(line, &parts);
                    let alias = imp
                        .r#as
                        .as_ref()
                        .map(|s| s.text().to_string())
                        .or_else(|| parts.last().cloned())
                        .unwrap_or_default();
                    aliases.insert(alias, parts);
                }
                _ => {}
            }
        }
        walk.aliases = aliases;
        for r in &m.policy {
            walk.rule(r);
        }
        if let Some(p) = walk.problem {
            return Err(usage(p));
        }
        reads_findings |= walk.reads_findings;
    }
    Ok((uses, reads_findings))
}

/// The plan JSON as the policies see it: only the keys in `uses`; with `masked`, every value a
/// sensitivity mask marks, every sensitive variable and output, and every string holding a
/// sensitive string is replaced by [`SENSITIVE`].
///
/// Each top-level key is parsed once, straight into regorus's value (object keys interned), and
/// masked in place: no intermediate JSON tree, no second conversion.
pub fn input(text: &[u8], uses: &Uses, sc: &Scrubber, masked: bool) -> Result<Value> {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let bad = |e: String| {
        Failure::usage(
            "plan",
            format!("the plan could not be read for the Rego policies: {e}"),
        )
    };
    let top: BTreeMap<&str, &serde_json::value::RawValue> =
        serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
    let mut doc = Object::new();
    for (k, raw) in &top {
        if uses.wants(k) {
            let v = Value::from_json_str(raw.get()).map_err(|e| bad(format!("{e:#}")))?;
            doc.insert(Value::from(*k), v);
        }
    }
    let mut doc = Value::from(doc);
    if masked {
        let wants_vars = uses.wants("variables") || uses.wants("configuration");
        let sensitive_vars: BTreeSet<String> = match top.get("configuration") {
            Some(raw) if wants_vars => sensitive_variables(raw.get()).map_err(bad)?,
            _ => BTreeSet::new(),
        };
        let k = Keys::new();
        mask_plan(&mut doc, &sensitive_vars, &k);
        scrub_strings(sc, &mut doc);
    }
    Ok(doc)
}

/// The names of the variables `configuration.root_module.variables` declares sensitive.
fn sensitive_variables(configuration: &str) -> std::result::Result<BTreeSet<String>, String> {
    let c: serde_json::Value = serde_json::from_str(configuration).map_err(|e| e.to_string())?;
    Ok(c.pointer("/root_module/variables")
        .and_then(|v| v.as_object())
        .map(|vars| {
            vars.iter()
                .filter(|(_, v)| v.get("sensitive") == Some(&serde_json::Value::Bool(true)))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default())
}

/// The object keys the mask walk looks up, made once (a regorus key is a reference-counted
/// string: building one per lookup would allocate per resource).
struct Keys {
    before: Value,
    after: Value,
    before_sensitive: Value,
    after_sensitive: Value,
    change: Value,
    resource_change: Value,
    resources: Value,
    sensitive_values: Value,
    values: Value,
    child_modules: Value,
    root_module: Value,
    outputs: Value,
    sensitive: Value,
    value: Value,
    default: Value,
    variables: Value,
}

impl Keys {
    fn new() -> Keys {
        let k = |s: &str| Value::from(s);
        Keys {
            before: k("before"),
            after: k("after"),
            before_sensitive: k("before_sensitive"),
            after_sensitive: k("after_sensitive"),
            change: k("change"),
            resource_change: k("resource_change"),
            resources: k("resources"),
            sensitive_values: k("sensitive_values"),
            values: k("values"),
            child_modules: k("child_modules"),
            root_module: k("root_module"),
            outputs: k("outputs"),
            sensitive: k("sensitive"),
            value: k("value"),
            default: k("default"),
            variables: k("variables"),
        }
    }
}

fn marker() -> Value {
    Value::from(SENSITIVE)
}

/// Whether a mask marks anything (`false`, `{}`, `[]` and nested empties mark nothing).
fn marks_something(mask: &Value) -> bool {
    match mask {
        Value::Bool(b) => *b,
        Value::Object(m) => m.values().any(marks_something),
        Value::Array(m) => m.iter().any(marks_something),
        _ => false,
    }
}

/// Replace what `mask` marks in `v` (`true`: the whole value; objects and arrays: member-wise).
/// Only the parts the mask marks are touched (a fresh tree is never shared, so nothing is copied).
pub fn apply_mask(v: &mut Value, mask: &Value) {
    match mask {
        Value::Bool(true) => *v = marker(),
        Value::Object(m) if matches!(v, Value::Object(_)) => {
            let marked: Vec<(&Value, &Value)> =
                m.iter().filter(|(_, mk)| marks_something(mk)).collect();
            if marked.is_empty() {
                return;
            }
            if let Ok(o) = v.as_object_mut() {
                for (k, mk) in marked {
                    if let Some(x) = o.get_mut(k) {
                        apply_mask(x, mk);
                    }
                }
            }
        }
        Value::Array(m) if matches!(v, Value::Array(_)) => {
            if !m.iter().any(marks_something) {
                return;
            }
            if let Ok(a) = v.as_array_mut() {
                for (x, mk) in a.iter_mut().zip(m.iter()) {
                    apply_mask(x, mk);
                }
            }
        }
        _ => {}
    }
}

/// `v[key]`, mutable, when `v` is an object that has it.
fn member<'a>(v: &'a mut Value, key: &Value) -> Option<&'a mut Value> {
    match v {
        Value::Object(o) if o.contains_key(key) => v.as_object_mut().ok()?.get_mut(key),
        _ => None,
    }
}

/// Every element of an array, mutable.
fn elements(v: &mut Value) -> impl Iterator<Item = &mut Value> {
    v.as_array_mut().ok().into_iter().flat_map(|a| a.iter_mut())
}

/// Mask `o[value_key]` with `o[mask_key]`.
fn mask_member(o: &mut Value, value_key: &Value, mask_key: &Value) {
    let Some(mask) = (match &*o {
        Value::Object(m) => m.get(mask_key).filter(|m| marks_something(m)).cloned(),
        _ => None,
    }) else {
        return;
    };
    if let Some(x) = member(o, value_key) {
        apply_mask(x, &mask);
    }
}

/// Every place of a plan document that carries values and a mask for them.
fn mask_plan(doc: &mut Value, sensitive_vars: &BTreeSet<String>, k: &Keys) {
    fn change(c: &mut Value, k: &Keys) {
        mask_member(c, &k.before, &k.before_sensitive);
        mask_member(c, &k.after, &k.after_sensitive);
    }
    fn module(m: &mut Value, k: &Keys) {
        if let Some(rs) = member(m, &k.resources) {
            for r in elements(rs) {
                mask_member(r, &k.values, &k.sensitive_values);
            }
        }
        if let Some(cs) = member(m, &k.child_modules) {
            for c in elements(cs) {
                module(c, k);
            }
        }
    }
    fn outputs(o: &mut Value, k: &Keys) {
        let Value::Object(map) = &*o else { return };
        let sensitive: Vec<Value> = map
            .iter()
            .filter(|(_, out)| match out {
                Value::Object(x) => x.get(&k.sensitive) == Some(&Value::Bool(true)),
                _ => false,
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in sensitive {
            if let Some(x) = member(o, &name).and_then(|out| member(out, &k.value)) {
                *x = marker();
            }
        }
    }
    fn values(v: &mut Value, k: &Keys) {
        if let Some(root) = member(v, &k.root_module) {
            module(root, k);
        }
        if let Some(o) = member(v, &k.outputs) {
            outputs(o, k);
        }
    }
    for key in ["resource_changes", "resource_drift"] {
        if let Some(list) = member(doc, &Value::from(key)) {
            for e in elements(list) {
                if let Some(c) = member(e, &k.change) {
                    change(c, k);
                }
            }
        }
    }
    // Terraform 1.9+: changes deferred to a later plan carry the same change objects.
    if let Some(list) = member(doc, &Value::from("deferred_changes")) {
        for e in elements(list) {
            if let Some(c) = member(e, &k.resource_change).and_then(|rc| member(rc, &k.change)) {
                change(c, k);
            }
        }
    }
    if let Some(oc) = member(doc, &Value::from("output_changes")) {
        if let Ok(o) = oc.as_object_mut() {
            for (_, c) in o.iter_mut() {
                change(c, k);
            }
        }
    }
    if let Some(p) = member(doc, &Value::from("planned_values")) {
        values(p, k);
    }
    if let Some(p) = member(doc, &Value::from("prior_state")).and_then(|p| member(p, &k.values)) {
        values(p, k);
    }
    if sensitive_vars.is_empty() {
        return;
    }
    if let Some(vars) = member(doc, &k.variables) {
        for name in sensitive_vars {
            if let Some(x) =
                member(vars, &Value::from(name.as_str())).and_then(|v| member(v, &k.value))
            {
                *x = marker();
            }
        }
    }
    if let Some(vars) = member(doc, &Value::from("configuration"))
        .and_then(|c| member(c, &k.root_module))
        .and_then(|r| member(r, &k.variables))
    {
        for name in sensitive_vars {
            if let Some(x) =
                member(vars, &Value::from(name.as_str())).and_then(|v| member(v, &k.default))
            {
                *x = marker();
            }
        }
    }
}

/// Whether any string of `v` (object keys included) holds one of the plan's sensitive strings.
fn holds_sensitive(sc: &Scrubber, v: &Value) -> bool {
    match v {
        Value::String(s) => sc.matches(s),
        Value::Array(a) => a.iter().any(|x| holds_sensitive(sc, x)),
        Value::Set(s) => s.iter().any(|x| holds_sensitive(sc, x)),
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| holds_sensitive(sc, k) || holds_sensitive(sc, x)),
        _ => false,
    }
}

/// Scrub every string (object keys included) of the plan's sensitive strings; only the parts
/// that hold one are rebuilt.
fn scrub_strings(sc: &Scrubber, v: &mut Value) {
    if !holds_sensitive(sc, v) {
        return;
    }
    match v {
        Value::String(s) => *v = Value::from(sc.scrub(s)),
        Value::Array(_) => elements(v).for_each(|x| scrub_strings(sc, x)),
        Value::Object(o) => {
            if o.keys().any(|k| holds_sensitive(sc, k)) {
                let old = std::mem::replace(o, Rc::new(Object::new()));
                let mut new = Object::new();
                for (k, x) in old.iter() {
                    let (mut k, mut x) = (k.clone(), x.clone());
                    scrub_strings(sc, &mut k);
                    scrub_strings(sc, &mut x);
                    new.insert(k, x);
                }
                *v = Value::from(new);
            } else if let Ok(o) = v.as_object_mut() {
                for (_, x) in o.iter_mut() {
                    scrub_strings(sc, x);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
