//! The plan-gate report: a plan ([`crate::plan::Summary`]) and the gate's [`Verdict`] on it
//! (built-in gate failures, [`crate::policy`] violations, overrides) rendered as Markdown (step
//! summary and PR comment), plain text (the job log) and one JSON object (`--format json`).
//!
//! It reads both `plan` and `policy` and sits above them: neither imports it (a test in
//! `module_graph` checks that the library's modules import each other without a cycle).
//!
//! Rules every renderer follows: counts first; replaces and destroys first and loud; values a
//! sensitive mask marks, sensitive outputs and sensitive variables are never shown (`(sensitive)`);
//! unknown values are `(known after apply)`; every piece of text from the plan is scrubbed of
//! every sensitive string the plan contains *before* it is escaped or cut (values were scrubbed
//! before their cut when the plan was read), and the finished text is scrubbed once more.

use serde_json::json;

use crate::plan::{Action, AttrDiff, ResourceChange, Shown, Summary};
use crate::policy::Violation;
use crate::runner::markdown::{self as md, Doc};
use crate::secret::Scrubber;

/// At most this many resources are listed per section (the rest are counted).
const LIST_MAX: usize = 5000;
/// Resources per `<details>` block (each block is one section, so a comment is cut between them).
const CHUNK: usize = 100;

/// The gate's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exit 0.
    Pass,
    /// Exit 1.
    Fail,
}

impl Verdict {
    /// `pass` / `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

/// The rule `allow-data-loss` overrides.
pub const DATA_LOSS_RULE: &str = crate::policy::rules::protect_stateful::KIND.id;

/// Everything a renderer needs.
pub struct Report<'a> {
    /// The plan.
    pub plan: &'a Summary,
    /// The decision.
    pub verdict: Verdict,
    /// Built-in gate failures (errored plan, not applyable).
    pub gate: Vec<String>,
    /// Policy violations that count.
    pub violations: Vec<Violation>,
    /// Violations overridden by `--allow`.
    pub allowed: Vec<Violation>,
    /// Findings of warning rules (Rego `warn`): shown, never fail the gate.
    pub warnings: Vec<Violation>,
    /// The reason given for `--allow`.
    pub allow_reason: Option<String>,
    /// The reason given for `--allow-data-loss` (overrides `protect-stateful`).
    pub data_loss_reason: Option<String>,
    /// Target environment.
    pub environment: Option<String>,
    /// Stack name (several plans per environment).
    pub stack: Option<String>,
    /// The preview workspace (`pr-<n>`) when the plan is a preview's, else `None`.
    pub workspace: Option<String>,
}

fn shown_md(s: &Shown) -> String {
    match s {
        Shown::Null => "_null_".into(),
        Shown::Sensitive => "_(sensitive)_".into(),
        Shown::Unknown => "_(known after apply)_".into(),
        Shown::Value(v) => md::code(v).replace('|', "\\|"),
        Shown::Withheld => "_(not shown)_".into(),
    }
}

fn shown_text(s: &Shown) -> String {
    match s {
        Shown::Null => "null".into(),
        Shown::Sensitive => "(sensitive)".into(),
        Shown::Unknown => "(known after apply)".into(),
        Shown::Value(v) => v.clone(),
        Shown::Withheld => "(not shown)".into(),
    }
}

fn symbol(a: Action) -> &'static str {
    match a {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
        Action::DeleteThenCreate => "-/+",
        Action::CreateThenDelete => "+/-",
        Action::Read => "<=",
        Action::Forget => ".",
        Action::CreateThenForget => "+/.",
        Action::NoOp => " ",
    }
}

/// Why values are not shown when the plan has too many sensitive strings.
pub const WITHHELD_NOTE: &str = "this plan has more distinct sensitive values than plan-gate can scrub, so no attribute or output value is shown (the counts, addresses and the gate are complete)";

/// Plan text as inline code, scrubbed before it is cut or escaped.
fn code(sc: &Scrubber, s: &str) -> String {
    md::code(&sc.scrub(s))
}

/// Plan text escaped for inline Markdown (cut at `max`), scrubbed before.
fn esc(sc: &Scrubber, s: &str, max: usize) -> String {
    md::escape_max(&sc.scrub(s), max)
}

fn addr_md(sc: &Scrubber, rc: &ResourceChange) -> String {
    let mut s = code(sc, &rc.address).replace('|', "\\|");
    if let Some(d) = &rc.deposed {
        s.push_str(&format!(" (deposed object {})", esc(sc, d, 40)));
    }
    s
}

fn attrs_table(sc: &Scrubber, attrs: &[AttrDiff]) -> String {
    if attrs.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n| attribute | before | after |\n|---|---|---|\n");
    for a in attrs {
        let name = if a.forces_replacement {
            format!("{} **(forces replacement)**", esc(sc, &a.name, 100))
        } else {
            esc(sc, &a.name, 100)
        };
        s.push_str(&format!(
            "| {name} | {} | {} |\n",
            shown_md(&a.before),
            shown_md(&a.after)
        ));
    }
    s
}

/// The title line (also used to find our PR comment again).
pub fn title(r: &Report<'_>) -> String {
    let icon = match r.verdict {
        Verdict::Pass => "✅",
        Verdict::Fail => "❌",
    };
    let mut t = format!("### {icon} Terraform plan");
    if let Some(e) = &r.environment {
        t.push_str(&format!(" · {}", md::code(e)));
    }
    if let Some(s) = &r.stack {
        t.push_str(&format!(" · {}", md::code(s)));
    }
    if let Some(w) = &r.workspace {
        t.push_str(&format!(
            " · **preview** {} (workspace of a pull request, never the environment's deploy)",
            md::code(w)
        ));
    }
    t.push_str(&format!(" · gate **{}**\n", r.verdict.as_str()));
    t
}

/// The Markdown report, section by section (so a PR comment can be cut at a section boundary).
pub fn markdown(r: &Report<'_>) -> Doc {
    let p = r.plan;
    let c = &p.counts;
    let sc = &p.scrubber();
    let mut doc = Doc::new();
    let mut head = title(r);
    if c.has_changes() {
        head.push_str(&format!("\n**{}**\n", md::escape(&c.terraform_line())));
    } else {
        head.push_str("\n**No changes.** Your infrastructure matches the configuration.\n");
    }
    if p.sensitive_overflow {
        head.push_str(&format!("\n> ⚠️ {}.\n", md::escape_max(WITHHELD_NOTE, 500)));
    }
    doc.section(head);
    doc.table(
        &[
            "add", "change", "destroy", "replace", "import", "move", "forget", "read", "drift",
            "outputs",
        ],
        &[vec![
            c.add.to_string(),
            c.change.to_string(),
            c.destroy.to_string(),
            c.replace.to_string(),
            c.import.to_string(),
            c.moves.to_string(),
            c.forget.to_string(),
            c.read.to_string(),
            c.drift.to_string(),
            c.output_changes.to_string(),
        ]],
    );
    if !r.gate.is_empty()
        || !r.violations.is_empty()
        || !r.allowed.is_empty()
        || !r.warnings.is_empty()
    {
        let mut s = String::from("#### Gate\n\n");
        for g in &r.gate {
            s.push_str(&format!("- ❌ {}\n", esc(sc, g, 500)));
        }
        for (lead, list) in [
            ("❌", &r.violations),
            ("⚠️ allowed by override:", &r.allowed),
            ("⚠️ warning:", &r.warnings),
        ] {
            for v in list.iter().take(LIST_MAX) {
                s.push_str(&format!(
                    "- {lead} {} {}{}\n",
                    md::code(&v.rule),
                    v.address
                        .as_deref()
                        .map(|a| format!("{} ", code(sc, a)))
                        .unwrap_or_default(),
                    esc(sc, &v.message, 500)
                ));
            }
        }
        if let Some(reason) = &r.allow_reason {
            if r.allowed.iter().any(|v| v.rule != DATA_LOSS_RULE) {
                s.push_str(&format!("\nOverride reason: {}\n", esc(sc, reason, 500)));
            }
        }
        if let Some(reason) = &r.data_loss_reason {
            s.push_str(&format!(
                "\n**Data loss allowed** (`allow-data-loss`): {}\n",
                esc(sc, reason, 500)
            ));
        }
        doc.section(s);
    }
    // Replaces and destroys first, loud.
    let loud: Vec<&ResourceChange> = p
        .changes
        .iter()
        .filter(|rc| rc.managed() && rc.action.deletes())
        .collect();
    if !loud.is_empty() {
        let mut s = format!(
            "#### ⚠️ {} to destroy ({} of them replaced)\n\n",
            c.destroy, c.replace
        );
        for rc in loud.iter().take(LIST_MAX) {
            let reason = rc
                .action_reason
                .as_deref()
                .map(|x| format!(" — {}", esc(sc, x, 80)))
                .unwrap_or_default();
            s.push_str(&format!(
                "- **{}** {}{reason}\n",
                if rc.action.replaces() {
                    "replace"
                } else {
                    "destroy"
                },
                addr_md(sc, rc)
            ));
        }
        if loud.len() > LIST_MAX {
            s.push_str(&format!("- … and {} more\n", loud.len() - LIST_MAX));
        }
        doc.section(s);
    }
    // Per module.
    let mut listed = 0usize;
    for (module, list) in p.by_module() {
        let list: Vec<&&ResourceChange> =
            list.iter().filter(|rc| rc.action != Action::NoOp).collect();
        if list.is_empty() {
            continue;
        }
        let name = if module.is_empty() {
            "root module".to_string()
        } else {
            format!("module {}", code(sc, module))
        };
        let chunks = list.len().div_ceil(CHUNK);
        for (i, chunk) in list.chunks(CHUNK).enumerate() {
            if listed >= LIST_MAX {
                break;
            }
            let part = if chunks > 1 {
                format!(" (part {} of {chunks})", i + 1)
            } else {
                String::new()
            };
            let mut s = format!(
                "<details><summary>{name}: {} change(s){part}</summary>\n\n",
                list.len()
            );
            for rc in chunk {
                if listed >= LIST_MAX {
                    break;
                }
                listed += 1;
                s.push_str(&format!(
                    "- `{}` {} ({})\n",
                    symbol(rc.action),
                    addr_md(sc, rc),
                    rc.action.word()
                ));
                if !rc.attrs.is_empty() {
                    s.push_str(&attrs_table(sc, &rc.attrs));
                    s.push('\n');
                }
            }
            s.push_str("\n</details>\n");
            doc.section(s);
        }
    }
    let total: usize = p
        .changes
        .iter()
        .filter(|rc| rc.action != Action::NoOp)
        .count();
    if total > listed {
        doc.section(format!(
            "_… {} more changed resources are not listed here._\n",
            total - listed
        ));
    }
    for (heading, pick) in [
        (
            "Moved",
            (|rc: &ResourceChange| rc.moved()) as fn(&ResourceChange) -> bool,
        ),
        ("Imported", |rc: &ResourceChange| rc.importing),
        (
            "Forgotten (removed from state, not destroyed)",
            |rc: &ResourceChange| rc.action.forgets(),
        ),
    ] {
        let items: Vec<&ResourceChange> = p.changes.iter().filter(|rc| pick(rc)).collect();
        if items.is_empty() {
            continue;
        }
        let mut s = format!("#### {heading}\n\n");
        for rc in items.iter().take(LIST_MAX) {
            match (&rc.previous_address, heading == "Moved") {
                (Some(prev), true) => {
                    s.push_str(&format!("- {} → {}\n", code(sc, prev), addr_md(sc, rc)))
                }
                _ => s.push_str(&format!("- {}\n", addr_md(sc, rc))),
            }
        }
        doc.section(s);
    }
    if !p.drift.is_empty() {
        let relevant: Vec<&ResourceChange> = p
            .drift
            .iter()
            .filter(|d| p.relevant.as_ref().is_none_or(|r| r.contains(&d.address)))
            .collect();
        let mut s = format!(
            "#### Drift: {} resource(s) changed outside Terraform\n\n",
            p.drift.len()
        );
        if p.relevant.is_some() && relevant.len() < p.drift.len() {
            s.push_str(&format!(
                "{} of them affect this plan (the others are listed in the job log).\n\n",
                relevant.len()
            ));
        }
        for d in relevant.iter().take(LIST_MAX) {
            s.push_str(&format!("- {} ({})\n", addr_md(sc, d), d.action.word()));
            s.push_str(&attrs_table(sc, &d.attrs));
        }
        doc.section(s);
    }
    let outs: Vec<_> = p
        .outputs
        .iter()
        .filter(|o| o.action != Action::NoOp)
        .collect();
    if !outs.is_empty() {
        let mut s = String::from(
            "#### Outputs\n\n| output | action | before | after |\n|---|---|---|---|\n",
        );
        for o in outs.iter().take(LIST_MAX) {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                esc(sc, &o.name, 100),
                o.action.word(),
                shown_md(&o.before),
                shown_md(&o.after)
            ));
        }
        doc.section(s);
    }
    doc.section(format!(
        "<sub>plan_digest {} · format {} · {} {} · plan-gate {}</sub>\n",
        md::code(&p.digest),
        code(sc, &p.format_version),
        p.engine.name(),
        code(
            sc,
            if p.terraform_version.is_empty() {
                "?"
            } else {
                &p.terraform_version
            }
        ),
        env!("CARGO_PKG_VERSION")
    ));
    doc
}

/// Plain text for the job log (untrusted: print it through `Runner::untrusted_block`).
pub fn text(r: &Report<'_>) -> String {
    let p = r.plan;
    let c = &p.counts;
    let mut s = String::new();
    if p.sensitive_overflow {
        s.push_str(&format!("warning: {WITHHELD_NOTE}\n"));
    }
    if c.has_changes() {
        s.push_str(&c.terraform_line());
    } else {
        s.push_str("No changes.");
    }
    s.push_str(&format!(
        "\n  replace {}  import {}  move {}  forget {}  read {}  drift {}  output changes {}\n",
        c.replace, c.import, c.moves, c.forget, c.read, c.drift, c.output_changes
    ));
    for (n, rc) in p
        .changes
        .iter()
        .filter(|rc| rc.managed() && rc.action.deletes())
        .chain(
            p.changes
                .iter()
                .filter(|rc| !(rc.managed() && rc.action.deletes()) && rc.action != Action::NoOp),
        )
        .enumerate()
    {
        if n >= LIST_MAX {
            s.push_str(&format!("  … {} more\n", p.changes.len() - n));
            break;
        }
        s.push_str(&format!("  {:>3} {}", symbol(rc.action), rc.address));
        if let Some(d) = &rc.deposed {
            s.push_str(&format!(" (deposed {d})"));
        }
        s.push_str(&format!("  [{}]\n", rc.action.word()));
        for a in &rc.attrs {
            s.push_str(&format!(
                "        {}: {} -> {}\n",
                a.name,
                shown_text(&a.before),
                shown_text(&a.after)
            ));
        }
    }
    for o in p.outputs.iter().filter(|o| o.action != Action::NoOp) {
        s.push_str(&format!(
            "  output {}: {} -> {}\n",
            o.name,
            shown_text(&o.before),
            shown_text(&o.after)
        ));
    }
    for g in &r.gate {
        s.push_str(&format!("gate: {g}\n"));
    }
    for (lead, list) in [
        ("violation", &r.violations),
        ("allowed by override", &r.allowed),
        ("warning", &r.warnings),
    ] {
        for v in list {
            s.push_str(&format!(
                "{lead} [{}] {}{}\n",
                v.rule,
                v.address
                    .as_deref()
                    .map(|a| format!("{a}: "))
                    .unwrap_or_default(),
                v.message
            ));
        }
    }
    if let Some(reason) = &r.data_loss_reason {
        s.push_str(&format!("data loss allowed (allow-data-loss): {reason}\n"));
    }
    s.push_str(&format!(
        "verdict: {}\nplan_digest: {}\n",
        r.verdict.as_str(),
        p.digest
    ));
    p.scrub(&s)
}

/// The `--format json` object.
pub fn json(r: &Report<'_>) -> serde_json::Value {
    let p = r.plan;
    let c = &p.counts;
    json!({
        "format_version": p.format_version,
        "terraform_version": p.terraform_version,
        "engine": p.engine.name(),
        "add": c.add,
        "change": c.change,
        "destroy": c.destroy,
        "replace": c.replace,
        "import": c.import,
        "move": c.moves,
        "forget": c.forget,
        "read": c.read,
        "no_op": c.no_op,
        "drift": c.drift,
        "output_changes": c.output_changes,
        "has_changes": c.has_changes(),
        "errored": p.errored,
        "applyable": p.applyable,
        "verdict": r.verdict.as_str(),
        "gate": r.gate,
        "violations": r.violations,
        "allowed": r.allowed,
        "data_loss_reason": r.data_loss_reason,
        "warnings": r.warnings,
        "plan_digest": p.digest,
        "values_withheld": p.sensitive_overflow,
        "bytes": p.bytes,
    })
}
