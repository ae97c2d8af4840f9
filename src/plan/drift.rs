//! Drift: what changed outside Terraform, from a `terraform plan -refresh-only` (its
//! `resource_drift`) and, optionally, a normal plan of the same deployed commit.
//!
//! The rules ([`classify`], pure):
//! - **Reality changed**: a managed resource in the refresh-only plan's `resource_drift` with at
//!   least one top-level attribute that differs. A difference between `null` and an empty
//!   collection (`{}`, `[]`) is a provider normalising what it read, not a change: an entry with
//!   nothing else is listed as normalisation only, never as drift.
//! - **Data sources are never drift**: `data` entries in `resource_drift` (Terraform 1.0 wrote
//!   them) and `read` actions in either plan are counted as ignored and nothing else.
//! - **Code not yet deployed**: a managed resource the normal plan would change although nothing
//!   changed it outside Terraform: the deployed commit's code and the state disagree (an apply
//!   that did not finish, or state written by another commit).
//! - A drifted resource the normal plan changes too is marked `apply-reverts`: applying the
//!   deployed code again would undo the change made outside Terraform.
//!
//! The issue rules are here too: one issue per environment (and stack), found by [`LABEL`] and
//! the hidden marker [`issue_marker`], opened on first detection, updated in place and closed
//! with a comment when the drift is gone ([`next_step`]); its body is [`issue_body`].
//! Everything rendered is scrubbed of both plans' sensitive strings before it is escaped or cut.

use std::collections::BTreeMap;

use super::{Action, AttrDiff, PlanError, Shown, Summary};
use crate::runner::markdown as md;
use crate::secret::Scrubber;

/// What kind of finding a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Changed outside Terraform (the refresh-only plan's `resource_drift`).
    RealityChanged,
    /// The deployed code would change it although nothing changed it outside Terraform.
    CodeNotDeployed,
}

impl Kind {
    /// The name in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RealityChanged => "reality-changed",
            Kind::CodeNotDeployed => "code-not-deployed",
        }
    }
}

/// One resource with a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Full address.
    pub address: String,
    /// Reality changed, or code not yet deployed.
    pub kind: Kind,
    /// The action: `update`, `delete` (gone outside Terraform) for drift; the plan's for code.
    pub action: Action,
    /// The attributes that differ (drift: before = as deployed, after = as found now).
    pub attrs: Vec<AttrDiff>,
    /// Attribute details were dropped to bound memory.
    pub attrs_omitted: bool,
    /// Drift only: the normal plan changes this resource too (a re-apply would undo the change).
    pub apply_reverts: bool,
}

/// The classification of one environment (and stack).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Every finding, reality changed first, by address.
    pub findings: Vec<Finding>,
    /// Drift entries whose only differences were `null` against an empty collection.
    pub normalisation_only: Vec<String>,
    /// Data-source entries and reads that were ignored.
    pub data_ignored: usize,
    /// The engine and version that wrote the refresh-only plan (`Terraform 1.11.4`).
    pub engine: String,
    /// A normal plan was given (without it, "code not yet deployed" is not known).
    pub with_plan: bool,
}

impl Drift {
    /// Resources changed outside Terraform.
    pub fn reality_changed(&self) -> usize {
        self.count(Kind::RealityChanged)
    }
    /// Resources the deployed code would change.
    pub fn code_not_deployed(&self) -> usize {
        self.count(Kind::CodeNotDeployed)
    }
    fn count(&self, k: Kind) -> usize {
        self.findings.iter().filter(|f| f.kind == k).count()
    }
    /// `drifted` when anything changed outside Terraform, else `clean`.
    pub fn status(&self) -> &'static str {
        if self.reality_changed() > 0 {
            "drifted"
        } else {
            "clean"
        }
    }
}

/// Why the inputs cannot be classified (exit 2).
fn refuse(why: String) -> PlanError {
    PlanError::Syntax(why)
}

/// Is this attribute difference only `null` against an empty collection?
fn normalisation(a: &AttrDiff) -> bool {
    let empty = |s: &Shown| match s {
        Shown::Null => true,
        Shown::Value(v) => matches!(v.as_str(), "{}" | "[]"),
        _ => false,
    };
    empty(&a.before) && empty(&a.after)
}

/// Classify the refresh-only plan `refresh` and the normal plan `plan` (both of the deployed
/// commit). Refused: a refresh-only plan that would change managed resources (it is a normal
/// plan), or a plan Terraform reported errors for.
pub fn classify(refresh: &Summary, plan: Option<&Summary>) -> Result<Drift, PlanError> {
    if let Some(rc) = refresh
        .changes
        .iter()
        .find(|c| c.managed() && c.action != Action::NoOp)
    {
        return Err(refuse(format!(
            "the refresh-only plan would {} `{}`: give `terraform plan -refresh-only` output as `plan` (the normal plan goes to `normal-plan`)",
            rc.action.word(),
            crate::runner::single_line(&rc.address)
        )));
    }
    for (name, p) in [("plan", Some(refresh)), ("normal-plan", plan)] {
        if p.is_some_and(|p| p.errored) {
            return Err(refuse(format!(
                "`{name}`: Terraform reported errors while planning (`errored: true`); a drift report from it would be a guess"
            )));
        }
    }
    let mut out = Drift {
        engine: engine_line(refresh),
        with_plan: plan.is_some(),
        ..Drift::default()
    };
    let planned: BTreeMap<&str, &super::ResourceChange> = plan
        .map(|p| {
            p.changes
                .iter()
                .filter(|c| c.deposed.is_none())
                .map(|c| (c.address.as_str(), c))
                .collect()
        })
        .unwrap_or_default();
    let mut drifted = std::collections::BTreeSet::new();
    for d in &refresh.drift {
        if !d.managed() || d.action == Action::Read {
            out.data_ignored += 1;
            continue;
        }
        if d.deposed.is_some() || d.action == Action::NoOp {
            continue;
        }
        let attrs: Vec<AttrDiff> = d
            .attrs
            .iter()
            .filter(|a| !normalisation(a))
            .cloned()
            .collect();
        if attrs.is_empty() && !d.attrs_omitted && d.action == Action::Update {
            out.normalisation_only.push(d.address.clone());
            continue;
        }
        drifted.insert(d.address.as_str());
        out.findings.push(Finding {
            address: d.address.clone(),
            kind: Kind::RealityChanged,
            action: d.action,
            attrs,
            attrs_omitted: d.attrs_omitted,
            apply_reverts: planned
                .get(d.address.as_str())
                .is_some_and(|c| c.action != Action::NoOp),
        });
    }
    if let Some(p) = plan {
        out.data_ignored += p
            .changes
            .iter()
            .filter(|c| !c.managed() || c.action == Action::Read)
            .count();
        for c in &p.changes {
            if !c.managed() || c.action == Action::Read || c.action == Action::NoOp {
                continue;
            }
            if drifted.contains(c.address.as_str()) && c.deposed.is_none() {
                continue;
            }
            out.findings.push(Finding {
                address: c.address.clone(),
                kind: Kind::CodeNotDeployed,
                action: c.action,
                attrs: c.attrs.clone(),
                attrs_omitted: c.attrs_omitted,
                apply_reverts: false,
            });
        }
    }
    out.findings
        .sort_by(|a, b| (a.kind, &a.address).cmp(&(b.kind, &b.address)));
    Ok(out)
}

/// `Terraform 1.11.4` / `OpenTofu 1.8.2`: the plan's engine and the version it wrote.
pub fn engine_line(s: &Summary) -> String {
    let v = crate::runner::single_line(&s.terraform_version);
    let v: String = v.chars().take(40).collect();
    format!("{} {v}", s.engine.name()).trim().to_string()
}

/// One scrubber for every plan's sensitive strings (as written and JSON-escaped).
pub fn scrubber(plans: &[&Summary]) -> Scrubber {
    let mut all: Vec<String> = plans
        .iter()
        .flat_map(|p| p.sensitive_strings.iter().cloned())
        .collect();
    let forms = super::json_forms(&all);
    all.extend(forms);
    all.sort_unstable();
    all.dedup();
    Scrubber::new(&all, "(sensitive)")
}

fn shown_json(s: &Shown) -> serde_json::Value {
    match s {
        Shown::Null => serde_json::Value::Null,
        Shown::Sensitive => "(sensitive)".into(),
        Shown::Unknown => "(known after apply)".into(),
        Shown::Withheld => "(not shown)".into(),
        Shown::Value(v) => v.as_str().into(),
    }
}

fn shown_md(s: &Shown) -> String {
    match s {
        Shown::Null => "_null_".into(),
        Shown::Sensitive => "_(sensitive)_".into(),
        Shown::Unknown => "_(known after apply)_".into(),
        Shown::Withheld => "_(not shown)_".into(),
        Shown::Value(v) => md::code(v).replace('|', "\\|"),
    }
}

/// Where the report is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// Environment.
    pub environment: String,
    /// Stack, when the environment has several roots.
    pub stack: Option<String>,
    /// The deployed commit that was checked.
    pub sha: Option<String>,
    /// The run's URL.
    pub run_url: Option<String>,
}

impl Place {
    /// `prod` or `prod/network`: one issue per key.
    pub fn key(&self) -> String {
        match &self.stack {
            Some(s) => format!("{}/{s}", self.environment),
            None => self.environment.clone(),
        }
    }
}

/// The machine-readable report (scrub it with [`scrubber`] before printing).
pub fn json(d: &Drift, place: &Place) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = d
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "address": f.address,
                "kind": f.kind.as_str(),
                "action": f.action.as_strs(),
                "attributes": f.attrs.iter().map(|a| serde_json::json!({
                    "name": a.name,
                    "before": shown_json(&a.before),
                    "after": shown_json(&a.after),
                })).collect::<Vec<_>>(),
                "attributes-omitted": f.attrs_omitted,
                "apply-reverts": f.apply_reverts,
            })
        })
        .collect();
    serde_json::json!({
        "environment": place.environment,
        "stack": place.stack,
        "sha": place.sha,
        "status": d.status(),
        "engine": d.engine,
        "reality-changed": d.reality_changed(),
        "code-not-deployed": if d.with_plan { Some(d.code_not_deployed()) } else { None },
        "normalisation-only": d.normalisation_only,
        "data-sources-ignored": d.data_ignored,
        "resources": resources,
    })
}

/// At most this many findings are listed in a summary or issue (the JSON report has them all).
pub const LISTED_MAX: usize = 100;

/// The Markdown section of one environment: a headline and the table of findings, every plan
/// text scrubbed first, then escaped.
pub fn markdown(d: &Drift, place: &Place, sc: &Scrubber) -> String {
    let esc = |s: &str| md::escape_max(&sc.scrub(s), 200);
    let mut o = String::new();
    o.push_str(&format!(
        "### Drift: `{}` — {}\n\n",
        esc(&place.key()).replace('`', ""),
        match d.status() {
            "drifted" => format!(
                "**{} resource(s) changed outside Terraform**",
                d.reality_changed()
            ),
            _ => "no drift".to_string(),
        }
    ));
    if let Some(s) = &place.sha {
        o.push_str(&format!("Deployed commit: `{}`", esc(s)));
        if !d.engine.is_empty() {
            o.push_str(&format!(" · {}", esc(&d.engine)));
        }
        o.push_str("\n\n");
    }
    if !d.findings.is_empty() {
        o.push_str(
            "| resource | finding | attribute | as deployed | now |\n|---|---|---|---|---|\n",
        );
        for f in d.findings.iter().take(LISTED_MAX) {
            let what = match (f.kind, f.apply_reverts) {
                (Kind::RealityChanged, true) => "changed outside Terraform (a re-apply reverts it)",
                (Kind::RealityChanged, false) => "changed outside Terraform",
                (Kind::CodeNotDeployed, _) => "code not yet deployed",
            };
            let what = if f.action == Action::Delete && f.kind == Kind::RealityChanged {
                "deleted outside Terraform"
            } else {
                what
            };
            let addr = md::code(&sc.scrub(&f.address)).replace('|', "\\|");
            if f.attrs.is_empty() {
                o.push_str(&format!("| {addr} | {what} | | | |\n"));
            }
            for a in &f.attrs {
                o.push_str(&format!(
                    "| {addr} | {what} | `{}` | {} | {} |\n",
                    esc(&a.name).replace('`', ""),
                    shown_md(&a.before),
                    shown_md(&a.after)
                ));
            }
        }
        if d.findings.len() > LISTED_MAX {
            o.push_str(&format!(
                "\n… and {} more (see the `json` output)\n",
                d.findings.len() - LISTED_MAX
            ));
        }
        o.push('\n');
    }
    if !d.with_plan {
        o.push_str("_No normal plan was given: code not yet deployed is not known._\n\n");
    }
    if !d.normalisation_only.is_empty() || d.data_ignored > 0 {
        o.push_str(&format!(
            "_Not drift: {} data source read(s); {} resource(s) whose provider only normalised empty values._\n",
            d.data_ignored,
            d.normalisation_only.len()
        ));
    }
    sc.scrub(&o)
}

/// The label every drift issue carries (the issues are listed by it).
pub const LABEL: &str = "gitops-drift";

/// The text our issue markers start with.
const MARKER_WORD: &str = "gitops-actions:drift";

/// The hidden marker of the issue of `key` (reduced to a safe alphabet, as the comment's).
pub fn issue_marker(key: &str) -> String {
    format!(
        "<!-- {MARKER_WORD} key={} -->",
        super::comment::marker_key(key)
    )
}

/// The issue's title.
pub fn issue_title(place: &Place) -> String {
    format!("Drift in {}: changed outside Terraform", place.key())
}

/// GitHub's limit on an issue body, with room for the marker.
const ISSUE_BODY_MAX: usize = 60_000;

/// The issue body: the environment's section, the run link, then the marker. Any marker text in
/// the report is broken up so nothing in it reads as ours.
pub fn issue_body(d: &Drift, place: &Place, sc: &Scrubber) -> String {
    let mut text = markdown(d, place, sc);
    if let Some(u) = &place.run_url {
        text.push_str(&format!(
            "\nFound by [this drift run]({}). The issue is updated by every run and closed by the first run that finds no drift.\n",
            u.replace(['(', ')', ' '], "")
        ));
    }
    let mut text = text.replace(MARKER_WORD, "gitops-actions:\u{200b}drift");
    if text.len() > ISSUE_BODY_MAX {
        let mut cut = ISSUE_BODY_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n\n> ✂️ Cut to fit: the full report is in the run's step summary.\n");
    }
    format!("{text}\n{}\n", issue_marker(&place.key()))
}

/// The comment a closed issue gets.
pub fn close_comment(place: &Place) -> String {
    let mut s = format!("No drift any more in `{}`", place.key().replace('`', ""));
    if let Some(sha) = &place.sha {
        s.push_str(&format!(" (deployed commit `{}`)", sha.replace('`', "")));
    }
    s.push('.');
    if let Some(u) = &place.run_url {
        s.push_str(&format!(
            " Checked by [this drift run]({}).",
            u.replace(['(', ')', ' '], "")
        ));
    }
    s
}

/// What to do with the environment's issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Drift and no open issue: open one.
    Open,
    /// Drift and our open issue: update it in place.
    Update(u64),
    /// No drift and our open issue: comment and close it.
    Close(u64),
    /// No drift and no open issue.
    Nothing,
}

/// What was done with the environment's issue: (number, URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// A new issue was opened.
    Opened(u64, String),
    /// Our open issue was updated in place.
    Updated(u64, String),
    /// Our open issue was commented on and closed.
    Closed(u64, String),
    /// No drift, no open issue.
    Nothing,
}

/// Does an issue body carry the marker of `env` or of one of its stacks (`env/<stack>`)?
pub fn marks_environment(body: &str, env: &str) -> bool {
    let b = body.trim_end();
    let Some(rest) = b
        .strip_suffix(" -->")
        .and_then(|b| b.rsplit_once(&format!("<!-- {MARKER_WORD} key=")))
        .map(|(_, k)| k)
    else {
        return false;
    };
    let env = super::comment::marker_key(env);
    rest == env || rest.strip_prefix(&env).is_some_and(|s| s.starts_with('/'))
}

/// The issue lifecycle, from whether there is drift and our open issue (if any).
pub fn next_step(drifted: bool, open: Option<u64>) -> Step {
    match (drifted, open) {
        (true, None) => Step::Open,
        (true, Some(n)) => Step::Update(n),
        (false, Some(n)) => Step::Close(n),
        (false, None) => Step::Nothing,
    }
}

#[cfg(test)]
mod tests;
