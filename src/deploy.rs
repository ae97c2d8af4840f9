//! The deploy-tag model: what the tags under `refs/tags/deploy/<env>/` mean.
//!
//! - `deploy/<env>/current`: an annotated tag on the commit deployed now. Moved only by a
//!   compare-and-swap on its tag object id, in the same atomic push as a new history entry.
//! - `deploy/<env>/history/<UTC yyyymmddThhmmssZ>-<run id>-<sha7>`: one immutable annotated tag
//!   per deploy; names sort by time; the message carries the metadata as trailers
//!   ([`Record`]).
//! - `deploy/<env>/hold`: an annotated tag whose presence puts the environment on hold (after a
//!   rollback): automatic deploys and `promote` refuse until it is released. Its message carries
//!   the reason and the actor ([`Hold`]).
//! - `deploy/<env>/preview/pr-<n>`: the record of pull request `n`'s preview (Terraform
//!   workspace `pr-<n>` of `<env>`), on the PR's head commit; its message carries the PR, the
//!   time it was opened and its URL ([`Preview`]). Created or moved by `tag-deploy
//!   preview-open`, deleted by `preview-close`. A preview never moves `deploy/<env>/current`,
//!   never enters `history/` (so it is never a rollback target, never promoted): the rule is
//!   [`workspace_scope`], and [`EnvState::from_refs`] reads only `current`, `history/` and `hold`.
//!
//! - `deploy/<env>/stacks/<stack>/current`: with stacks, each stack's record (the commit its
//!   apply job applied, with the plan digest); `current` then moves only when every changed stack
//!   of the commit has one ([`stacks`], the rule `stacks::every_stack_applied`).
//!
//! This module is the one owner of that vocabulary: the names ([`current_tag`], [`hold_tag`],
//! [`history_name`], [`tag_ref`] / [`short_tag`], the `*_ref` and `*_prefix` forms), the
//! messages and trailers ([`Record`], [`Hold`]) and their parsing. Nobody else formats or parses
//! them.
//!
//! Everything here is pure: it reads [`RemoteRefs`] (state always comes from the remote), tag
//! messages and gathered facts, and decides; each decision has table-driven tests beside it:
//! - [`decide_record`]: what `tag-deploy record` does (unchanged, hold, branch, on the branch,
//!   backwards without `--rollback` (F13), rollback target (F16)), over [`DeployFacts`]; one
//!   function per rule, in order, each refusal a [`RecordRefusal`]. A rule that needs a fact
//!   not gathered yet asks for it ([`RecordNeed`]).
//! - [`check_record`]: whether a history entry is a real record; [`resolve`]: a rollback target.
//!
//! The commands in `cmd::tag_deploy` and `cmd::promote` gather the facts and do the I/O.

use std::ops::ControlFlow;

use git2::Oid;
use time::OffsetDateTime;

use crate::exit::{Failure, Result};
use crate::git::{RemoteRef, RemoteRefs};
use crate::runner::single_line;
use crate::validate;

use crate::envs::Workspace;

pub mod stacks;
pub use stacks::{stack_ref, stack_tag, stacks_prefix, StackOutcome};

/// Where tags live: a short tag name `deploy/...` is the ref `refs/tags/deploy/...`.
const TAGS: &str = "refs/tags/";

/// The full ref of a short tag name: `deploy/dev/current` -> `refs/tags/deploy/dev/current`.
pub fn tag_ref(short: &str) -> String {
    format!("{TAGS}{short}")
}

/// The short tag name of a full tag ref (the ref itself when it is not under `refs/tags/`).
pub fn short_tag(full: &str) -> &str {
    full.strip_prefix(TAGS).unwrap_or(full)
}

/// `deploy/<env>/current` (short tag name: what messages and outputs show).
pub fn current_tag(env: &str) -> String {
    format!("deploy/{env}/current")
}

/// `refs/tags/deploy/<env>/current`.
pub fn current_ref(env: &str) -> String {
    tag_ref(&current_tag(env))
}

/// `deploy/<env>/hold` (short tag name).
pub fn hold_tag(env: &str) -> String {
    format!("deploy/{env}/hold")
}

/// `refs/tags/deploy/<env>/hold`.
pub fn hold_ref(env: &str) -> String {
    tag_ref(&hold_tag(env))
}

/// `deploy/<env>/history/` (short prefix of every history tag).
fn history_dir(env: &str) -> String {
    format!("deploy/{env}/history/")
}

/// `refs/tags/deploy/<env>/history/` (prefix of every history tag).
pub fn history_prefix(env: &str) -> String {
    tag_ref(&history_dir(env))
}

/// `refs/tags/deploy/<env>/` (everything this model owns for one environment).
pub fn env_prefix(env: &str) -> String {
    tag_ref(&format!("deploy/{env}/"))
}

/// The UTC stamp used in history names: `20261126T120000Z`.
pub fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A run id for history names: digits (GitHub's `run_id`) or `local` outside Actions.
pub fn validate_run_id(v: &str) -> Result<()> {
    let ok =
        v == "local" || (!v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            "run-id",
            format!("`{}` is not a GitHub run id (digits)", single_line(v)),
        ))
    }
}

/// The short name (without `refs/tags/`) of a new history tag.
pub fn history_name(env: &str, at: OffsetDateTime, run_id: &str, sha: Oid) -> String {
    let sha7 = &sha.to_string()[..7];
    format!("{}{}-{run_id}-{sha7}", history_dir(env), stamp(at))
}

/// The parts of a history tag name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryName {
    /// `20261126T120000Z`.
    pub stamp: String,
    /// The run id part.
    pub run_id: String,
    /// The abbreviated commit in the name.
    pub sha7: String,
}

impl HistoryName {
    /// Parse the last component of a history ref. `None` for names we did not write.
    pub fn parse(leaf: &str) -> Option<HistoryName> {
        let mut parts = leaf.splitn(3, '-');
        let (stamp, run_id, sha7) = (parts.next()?, parts.next()?, parts.next()?);
        let stamp_ok = stamp.len() == 16
            && stamp.as_bytes()[8] == b'T'
            && stamp.ends_with('Z')
            && stamp[..8].bytes().all(|b| b.is_ascii_digit())
            && stamp[9..15].bytes().all(|b| b.is_ascii_digit());
        let run_ok =
            run_id == "local" || (!run_id.is_empty() && run_id.bytes().all(|b| b.is_ascii_digit()));
        let sha_ok = sha7.len() >= 7 && sha7.bytes().all(|b| b.is_ascii_hexdigit());
        (stamp_ok && run_ok && sha_ok).then(|| HistoryName {
            stamp: stamp.to_string(),
            run_id: run_id.to_string(),
            sha7: sha7.to_string(),
        })
    }

    /// `2026-11-26T12:00:00Z`.
    pub fn iso_time(&self) -> String {
        let s = &self.stamp;
        format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        )
    }

    fn sort_key(&self) -> (String, u64, String) {
        (
            self.stamp.clone(),
            self.run_id.parse().unwrap_or(0),
            self.sha7.clone(),
        )
    }
}

/// One history entry as seen on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Short tag name (`deploy/dev/history/...`).
    pub tag: String,
    /// Tag object id.
    pub tag_oid: Oid,
    /// The deployed commit.
    pub commit: Oid,
    /// Parsed name.
    pub name: HistoryName,
}

/// A hold, as the remote has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRef {
    /// Tag object id (the lease for `release`).
    pub tag_oid: Oid,
    /// The commit it points at.
    pub commit: Oid,
}

/// Everything the remote says about one environment's deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvState {
    /// Environment name.
    pub env: String,
    /// `deploy/<env>/current`, if any.
    pub current: Option<RemoteRef>,
    /// History, newest first.
    pub history: Vec<HistoryEntry>,
    /// The hold, if any.
    pub hold: Option<HoldRef>,
    /// Refs under the history prefix we could not parse (shown as warnings, never used).
    pub foreign: Vec<String>,
    /// Each stack's record `deploy/<env>/stacks/<stack>/current`, by stack name
    /// ([`stacks`]: what each stack's apply job recorded).
    pub stacks: std::collections::BTreeMap<String, RemoteRef>,
}

impl EnvState {
    /// Build from an ls-remote of `refs/tags/deploy/<env>/`.
    pub fn from_refs(env: &str, refs: &RemoteRefs) -> EnvState {
        let hp = history_prefix(env);
        let mut history = Vec::new();
        let mut foreign = Vec::new();
        for (name, r) in refs.under(&hp) {
            let leaf = &name[hp.len()..];
            match HistoryName::parse(leaf) {
                Some(n) if !leaf.contains('/') => history.push(HistoryEntry {
                    tag: short_tag(name).to_string(),
                    tag_oid: r.oid,
                    commit: r.peeled,
                    name: n,
                }),
                _ => foreign.push(name.to_string()),
            }
        }
        history.sort_by_key(|h| std::cmp::Reverse(h.name.sort_key()));
        let (stack_records, odd) = stacks::from_refs(env, refs);
        foreign.extend(odd);
        EnvState {
            stacks: stack_records,
            env: env.to_string(),
            current: refs.get(&current_ref(env)),
            history,
            hold: refs.get(&hold_ref(env)).map(|r| HoldRef {
                tag_oid: r.oid,
                commit: r.peeled,
            }),
            foreign,
        }
    }

    /// The commit deployed now.
    pub fn current_commit(&self) -> Option<Oid> {
        self.current.map(|c| c.peeled)
    }

    /// The newest history entry for `commit`, if it was ever deployed here.
    pub fn last_deploy_of(&self, commit: Oid) -> Option<&HistoryEntry> {
        self.history.iter().find(|h| h.commit == commit)
    }

    /// The newest deploy whose commit differs from the current one.
    pub fn previous(&self) -> Option<&HistoryEntry> {
        let cur = self.current_commit()?;
        self.history.iter().find(|h| h.commit != cur)
    }
}

/// A rollback target as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The deploy before the current one.
    Previous,
    /// A history tag, short (`deploy/<env>/history/...`) name.
    HistoryTag(String),
    /// A full commit id.
    Sha(Oid),
}

/// Parse `--to`: `previous`, a history tag (`deploy/<env>/history/...`, optionally with
/// `refs/tags/`), or a full commit SHA. The tag must belong to `env`.
pub fn parse_target(field: &str, env: &str, v: &str) -> Result<Target> {
    if v == "previous" {
        return Ok(Target::Previous);
    }
    if (v.len() == 40 || v.len() == 64) && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        validate::full_sha(field, v)?;
        return Oid::from_str(v)
            .map(Target::Sha)
            .map_err(|_| Failure::usage(field, "not an object id"));
    }
    let short = short_tag(v);
    if short.starts_with("deploy/") {
        crate::git::validate_full_ref(field, &tag_ref(short))?;
        let hp = &history_dir(env);
        let Some(leaf) = short.strip_prefix(hp) else {
            return Err(Failure::usage(
                field,
                format!(
                    "`{}` is not a history tag of environment `{env}` (expected `{hp}<time>-<run>-<sha7>`)",
                    single_line(v)
                ),
            ));
        };
        if HistoryName::parse(leaf).is_none() || leaf.contains('/') {
            return Err(Failure::usage(
                field,
                format!(
                    "`{}` is not a history tag name (`<yyyymmddThhmmssZ>-<run id>-<sha7>`)",
                    single_line(v)
                ),
            ));
        }
        return Ok(Target::HistoryTag(short.to_string()));
    }
    Err(Failure::usage(
        field,
        format!(
            "`{}` is not `previous`, a history tag (`{}...`) or a full lowercase commit SHA",
            single_line(v),
            history_dir(env)
        ),
    ))
}

/// What a rollback target resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit to deploy.
    pub commit: Oid,
    /// The history entry that proves it was deployed here (newest real record of that commit).
    pub entry: HistoryEntry,
    /// Entries passed over because no real record made them (newest first, with the reason).
    pub skipped: Vec<(String, NotARecord)>,
}

/// What was gathered about one history entry to decide whether `tag-deploy record` made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFacts {
    /// The annotated tag's message; `None` when the ref is a lightweight tag or its tag object
    /// could not be read.
    pub message: Option<String>,
    /// Whether the tag's commit is reachable from the tip of the environment's branch
    /// (`false` as well when the branch or the commit is missing).
    pub on_branch: bool,
}

/// Why a well-named history tag is not a record of a deploy (trusting a name is the class
/// `hardening.md` warns about: anyone who may push tags can create one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotARecord {
    /// A lightweight tag, or a tag object we could not read.
    NotAnnotated,
    /// The `Environment:` trailer is missing or names another environment.
    Environment(String),
    /// The `Commit:` trailer is missing or is not the commit the tag points at.
    Commit(String),
    /// The name's run id or abbreviated commit disagrees with the trailers / the target.
    Name(String),
    /// The commit is not on the environment's branch.
    NotOnBranch(String),
}

impl std::fmt::Display for NotARecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &str| {
            if v.is_empty() {
                "missing".to_string()
            } else {
                format!("`{}`", single_line(&v.chars().take(80).collect::<String>()))
            }
        };
        match self {
            NotARecord::NotAnnotated => {
                write!(f, "not an annotated tag with a readable message")
            }
            NotARecord::Environment(v) => {
                write!(f, "its Environment trailer is {}", shown(v))
            }
            NotARecord::Commit(v) => write!(
                f,
                "its Commit trailer is {}, not the commit the tag points at",
                shown(v)
            ),
            NotARecord::Name(why) => write!(f, "its name disagrees with its content: {why}"),
            NotARecord::NotOnBranch(b) => {
                write!(f, "its commit is not on the environment's branch `{b}`")
            }
        }
    }
}

/// Decide whether `entry` is a record `tag-deploy record` made for `env` (whose branch is
/// `branch`): an annotated tag whose trailers name this environment and exactly the commit the
/// tag points at, whose name agrees with them (run id, abbreviated commit), on a commit
/// reachable from the environment's branch. Only such entries may be rolled back to (F16).
pub fn check_record(
    env: &str,
    branch: &str,
    entry: &HistoryEntry,
    facts: &RecordFacts,
) -> std::result::Result<Record, NotARecord> {
    let Some(message) = &facts.message else {
        return Err(NotARecord::NotAnnotated);
    };
    let rec = Record::parse(message);
    if rec.environment != env {
        return Err(NotARecord::Environment(rec.environment));
    }
    let commit = entry.commit.to_string();
    if rec.commit != commit {
        return Err(NotARecord::Commit(rec.commit));
    }
    if !commit.starts_with(&entry.name.sha7) {
        return Err(NotARecord::Name(format!(
            "`{}` is not an abbreviation of {commit}",
            entry.name.sha7
        )));
    }
    if rec.run_id != entry.name.run_id {
        return Err(NotARecord::Name(format!(
            "run `{}` in the name, Run-ID trailer {}",
            entry.name.run_id,
            if rec.run_id.is_empty() {
                "missing".to_string()
            } else {
                format!("`{}`", single_line(&rec.run_id))
            }
        )));
    }
    if !facts.on_branch {
        return Err(NotARecord::NotOnBranch(branch.to_string()));
    }
    Ok(rec)
}

/// The verdict of [`check_record`] for every history entry, by short tag name. An entry without
/// a verdict counts as not a record (fail closed).
pub type Verdicts = std::collections::BTreeMap<String, std::result::Result<Record, NotARecord>>;

fn verdict_of<'v>(
    verdicts: &'v Verdicts,
    e: &HistoryEntry,
) -> std::result::Result<&'v Record, NotARecord> {
    match verdicts.get(&e.tag) {
        Some(Ok(r)) => Ok(r),
        Some(Err(n)) => Err(n.clone()),
        None => Err(NotARecord::NotAnnotated),
    }
}

/// Resolve a rollback target against the remote state and the verdicts on its history. Refuses
/// (exit 1) a target no real record of this environment made (F16), however it is named: a
/// history tag that is not a record, a sha only such tags point at, and a `previous` when there
/// is none. `previous` passes over entries that are not records (listed in `skipped`).
pub fn resolve(state: &EnvState, target: &Target, verdicts: &Verdicts) -> Result<Resolved> {
    let env = &state.env;
    let mut skipped = Vec::new();
    let mut first_real = |cands: &mut dyn Iterator<Item = &HistoryEntry>| {
        for e in cands {
            match verdict_of(verdicts, e) {
                Ok(_) => return Some(e.clone()),
                Err(n) => skipped.push((e.tag.clone(), n)),
            }
        }
        None
    };
    let entry = match target {
        Target::Previous => {
            let Some(cur) = state.current_commit() else {
                return Err(Failure::refused(format!(
                    "environment `{env}` has no current deploy (`deploy/{env}/current` does not exist), so there is no previous one"
                )));
            };
            first_real(&mut state.history.iter().filter(|h| h.commit != cur)).ok_or_else(|| {
                Failure::refused(format!(
                    "environment `{env}` has no deploy before the current one to roll back to{}",
                    passed_over(&skipped)
                ))
            })?
        }
        Target::HistoryTag(tag) => {
            let e = state
                .history
                .iter()
                .find(|h| &h.tag == tag)
                .ok_or_else(|| {
                    Failure::refused(format!(
                        "history tag `{}` does not exist on the remote",
                        single_line(tag)
                    ))
                })?;
            if let Err(n) = verdict_of(verdicts, e) {
                return Err(Failure::refused(format!(
                    "`{}` is not a record of a deploy to `{env}`: {n}; refusing to roll back to it",
                    single_line(tag)
                )));
            }
            e.clone()
        }
        Target::Sha(sha) => first_real(&mut state.history.iter().filter(|h| h.commit == *sha))
            .ok_or_else(|| {
                Failure::refused(format!(
                    "commit {sha} was never deployed to `{env}` (no record under deploy/{env}/history/ points at it{}); refusing to roll back to it",
                    passed_over(&skipped)
                ))
            })?,
    };
    Ok(Resolved {
        commit: entry.commit,
        entry,
        skipped,
    })
}

fn passed_over(skipped: &[(String, NotARecord)]) -> String {
    match skipped {
        [] => String::new(),
        [(t, n), ..] => format!(
            "; {} tag(s) that are not records were passed over, e.g. `{}`: {n}",
            skipped.len(),
            single_line(t)
        ),
    }
}

/// The metadata a deploy's tags carry, as git trailers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// Environment name.
    pub environment: String,
    /// Full commit id.
    pub commit: String,
    /// The run's URL, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// The run id (or `local`).
    pub run_id: String,
    /// Who triggered the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Image reference deployed (e.g. with digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Digest of the applied plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// The commit that was current before, when this deploy is a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// The reason given to deploy outside the environment's deploy windows
    /// (`override-window-reason`), when the override was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_override: Option<String>,
    /// The outcome of `tag-deploy verify` after the apply: `passed` or `failed`
    /// ([`VERIFICATION_PASSED`], [`VERIFICATION_FAILED`]); absent: not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    /// How long the verification ran (`42s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_duration: Option<String>,
    /// Each check and its state, one line (`http health: passed (3 in a row); alarms: ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_checks: Option<String>,
    /// The reason given to plan-gate's `allow-data-loss` (stateful resources destroyed or
    /// replaced), when it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_loss: Option<String>,
    /// A stack's record (`deploy/<env>/stacks/<stack>/current`): the stack applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The environment's record with stacks: each changed stack of the commit, its outcome and
    /// plan digest (`Stack-Applied` trailers, one per stack).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<StackOutcome>,
}

/// The `Verification` trailer of a deploy that passed its checks.
pub const VERIFICATION_PASSED: &str = "passed";
/// The `Verification` trailer of a deploy that failed its checks.
pub const VERIFICATION_FAILED: &str = "failed";

/// A `data-loss-reason` (plan-gate's `allow-data-loss`, tag-deploy's `Data-Loss-Allowed`
/// trailer): one line of at most 200 characters; empty = none.
pub fn check_data_loss_reason(field: &str, v: Option<&str>) -> Result<Option<String>> {
    validate::recorded_reason(field, v)
}

const TRAILERS: [&str; 14] = [
    "Environment",
    "Commit",
    "Run-ID",
    "Run-URL",
    "Actor",
    "Image",
    "Plan-Digest",
    "Rollback-Of",
    "Window-Override",
    "Verification",
    "Verification-Duration",
    "Verification-Checks",
    "Data-Loss-Allowed",
    "Stack",
];

impl Record {
    /// The tag message: a subject line, a blank line, a sentence, and the trailers.
    pub fn message(&self) -> String {
        let sha7 = &self.commit[..self.commit.len().min(7)];
        let what = match &self.stack {
            Some(s) => format!("{} stack {s}", self.environment),
            None => self.environment.clone(),
        };
        let subject = if self.rollback_of.is_some() {
            format!("rollback {what}: {sha7}")
        } else {
            format!("deploy {what}: {sha7}")
        };
        let mut m = format!("{subject}\n\nRecorded by gitops-actions tag-deploy.\n\n");
        let fields: [Option<&str>; 14] = [
            Some(&self.environment),
            Some(&self.commit),
            Some(&self.run_id),
            self.run_url.as_deref(),
            self.actor.as_deref(),
            self.image.as_deref(),
            self.plan_digest.as_deref(),
            self.rollback_of.as_deref(),
            self.window_override.as_deref(),
            self.verification.as_deref(),
            self.verification_duration.as_deref(),
            self.verification_checks.as_deref(),
            self.data_loss.as_deref(),
            self.stack.as_deref(),
        ];
        for (k, v) in TRAILERS.iter().zip(fields) {
            if let Some(v) = v {
                m.push_str(&format!("{k}: {}\n", one_line(v)));
            }
        }
        for o in &self.stacks {
            m.push_str(&format!(
                "{}: {}\n",
                stacks::APPLIED_TRAILER,
                one_line(&o.trailer())
            ));
        }
        m
    }

    /// Parse a tag message we wrote (unknown trailers are ignored; missing ones stay empty).
    pub fn parse(message: &str) -> Record {
        let mut r = Record::default();
        for (k, v) in trailers(message) {
            let v = v.to_string();
            match k {
                "Environment" => r.environment = v,
                "Commit" => r.commit = v,
                "Run-ID" => r.run_id = v,
                "Run-URL" => r.run_url = Some(v),
                "Actor" => r.actor = Some(v),
                "Image" => r.image = Some(v),
                "Plan-Digest" => r.plan_digest = Some(v),
                "Rollback-Of" => r.rollback_of = Some(v),
                "Window-Override" => r.window_override = Some(v),
                "Verification" => r.verification = Some(v),
                "Verification-Duration" => r.verification_duration = Some(v),
                "Verification-Checks" => r.verification_checks = Some(v),
                "Data-Loss-Allowed" => r.data_loss = Some(v),
                "Stack" => r.stack = Some(v),
                stacks::APPLIED_TRAILER => r.stacks.extend(StackOutcome::parse(&v)),
                _ => {}
            }
        }
        r
    }
}

impl Record {
    /// The first failing check named in `Verification-Checks` (`http health: failed (...)`),
    /// for messages; the whole line when none is marked failed.
    pub fn failed_check(&self) -> Option<String> {
        let checks = self.verification_checks.as_deref()?;
        Some(
            checks
                .split("; ")
                .find(|c| c.contains(": failed"))
                .unwrap_or(checks)
                .to_string(),
        )
    }
}

// ------------------------------------------------------------------ automatic rollback

/// What happens after the verification of the current deploy, decided from its trailers
/// alone ([`after_verification`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterVerification {
    /// Nothing to do: the deploy passed (or was not verified), with why.
    Nothing(String),
    /// The deploy failed verification and the environment opts in: hold, then roll back to
    /// `previous`.
    RollBack {
        /// The failing check, for the hold's reason and the dispatch.
        failed: String,
    },
    /// The deploy failed verification, but rolling back is not this tool's to do: hold and
    /// alert. Either the environment did not opt in (`manual`), or the failed deploy is itself
    /// a rollback (rolling back again would loop between two bad deploys).
    Stop {
        /// Why no rollback is dispatched.
        why: String,
    },
}

/// The no-loop rule: a failed verification dispatches a rollback only when the environment
/// opts in (`auto_rollback`) and the failed deploy is not itself a rollback (`Rollback-Of`).
/// A rollback that fails its verification stops and alerts: its `previous` is the deploy that
/// just failed, so another rollback would loop.
pub fn after_verification(current: &Record, auto_rollback: bool) -> AfterVerification {
    let failed = match current.verification.as_deref() {
        Some(VERIFICATION_FAILED) => current
            .failed_check()
            .unwrap_or_else(|| "a verification check".into()),
        Some(v) => {
            return AfterVerification::Nothing(format!(
                "the current deploy's verification is `{}`",
                single_line(v)
            ))
        }
        None => {
            return AfterVerification::Nothing(
                "the current deploy carries no verification outcome".into(),
            )
        }
    };
    let sha7 = &current.commit[..current.commit.len().min(7)];
    if let Some(of) = &current.rollback_of {
        return AfterVerification::Stop {
            why: format!(
                "the rollback to {sha7} (from {}) failed its verification ({}); rolling back again would loop, so nothing more is rolled back: a person must look",
                &of[..of.len().min(7)],
                single_line(&failed)
            ),
        };
    }
    if !auto_rollback {
        return AfterVerification::Stop {
            why: format!(
                "{sha7} failed its verification ({}); `auto-rollback` is off for `{}`: roll back by hand (rollback.yml)",
                single_line(&failed),
                current.environment
            ),
        };
    }
    AfterVerification::RollBack { failed }
}

/// A hold's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    /// Why.
    pub reason: String,
    /// Who.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The run that set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// When (ISO 8601 UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

impl Hold {
    /// The hold tag's message.
    pub fn message(&self, env: &str) -> String {
        let mut m = format!(
            "hold {env}\n\nDeploys and promotions of `{env}` are on hold until `tag-deploy release`.\n\n"
        );
        m.push_str(&format!("Reason: {}\n", one_line(&self.reason)));
        for (k, v) in [
            ("Actor", &self.actor),
            ("Run-URL", &self.run_url),
            ("Since", &self.since),
        ] {
            if let Some(v) = v {
                m.push_str(&format!("{k}: {}\n", one_line(v)));
            }
        }
        m
    }

    /// Parse a hold message.
    pub fn parse(message: &str) -> Hold {
        let mut h = Hold::default();
        for (k, v) in trailers(message) {
            match k {
                "Reason" => h.reason = v.to_string(),
                "Actor" => h.actor = Some(v.to_string()),
                "Run-URL" => h.run_url = Some(v.to_string()),
                "Since" => h.since = Some(v.to_string()),
                _ => {}
            }
        }
        h
    }
}

/// One line about a hold for messages: its reason, actor and time (`reason unavailable` when
/// its message could not be read).
pub fn describe_hold(h: Option<&Hold>) -> String {
    match h {
        Some(h) => format!(
            "reason: {}{}{}",
            single_line(&h.reason),
            h.actor
                .as_deref()
                .map(|a| format!("; by {}", single_line(a)))
                .unwrap_or_default(),
            h.since
                .as_deref()
                .map(|s| format!("; since {}", single_line(s)))
                .unwrap_or_default()
        ),
        None => "reason unavailable".into(),
    }
}

// ------------------------------------------------------------------ recording a deploy

/// The rules of one `tag-deploy record`, from validated inputs.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules<'a> {
    /// The environment.
    pub env: &'a str,
    /// Its branch.
    pub branch: &'a str,
    /// `--rollback`: a deliberate return to a commit deployed here before.
    pub rollback: bool,
    /// `--stack`: record this stack's apply (`deploy/<env>/stacks/<stack>/current`) instead
    /// of the environment's deploy.
    pub stack: Option<&'a str>,
    /// `--stacks`: the stacks this commit changed (`stacks changed`); the environment's record
    /// moves only when every one of them applied at the commit. `None`: one stack.
    pub stacks: Option<&'a [String]>,
}

/// What is known when recording `sha`. `state` and `branch_tip` come from one `ls-remote`; the
/// other facts are `None` until a rule asks for them ([`RecordNeed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployFacts {
    /// The environment's deploy tags.
    pub state: EnvState,
    /// The tip of the environment's branch, if it exists.
    pub branch_tip: Option<Oid>,
    /// The commit to record.
    pub sha: Oid,
    /// The hold's metadata (`Some(None)`: its message could not be read).
    pub hold: Option<Option<Hold>>,
    /// Whether `sha` is on the environment's branch.
    pub on_branch: Option<bool>,
    /// Whether `sha` is an ancestor of the current deploy.
    pub behind_current: Option<bool>,
    /// The [`check_record`] verdicts on the history entries of `sha`.
    pub verdicts: Option<Verdicts>,
    /// The stack records at `sha` of the changed stacks, by name (`None` inside: the tag's
    /// message could not be read).
    pub stack_records: Option<std::collections::BTreeMap<String, Option<Record>>>,
}

/// A fact a `record` rule needs that is not gathered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordNeed {
    /// The hold's message, for the refusal: [`DeployFacts::hold`].
    Hold,
    /// Fetch the history of the branch tip and the current deploy, then: is `sha` an ancestor
    /// of `tip`? [`DeployFacts::on_branch`].
    OnBranch {
        /// The commit to record.
        sha: Oid,
        /// The branch tip.
        tip: Oid,
    },
    /// Is `sha` an ancestor of `current`? [`DeployFacts::behind_current`].
    BehindCurrent {
        /// The commit to record.
        sha: Oid,
        /// The current deploy's commit.
        current: Oid,
    },
    /// Judge these history entries (every record of `sha`): [`DeployFacts::verdicts`].
    Verdicts(Vec<HistoryEntry>),
    /// Read the messages of these stack records (name, tag object): [`DeployFacts::stack_records`].
    StackRecords(Vec<(String, Oid)>),
}

/// Why `record` records nothing. Every variant exits 1 (refused) and leaves the remote as it
/// was; `Display` renders the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordRefusal {
    /// The environment is on hold and this is no rollback.
    Held {
        /// The environment.
        env: String,
        /// The hold's metadata, if readable.
        hold: Option<Hold>,
    },
    /// The environment's branch does not exist.
    NoBranch {
        /// The environment.
        env: String,
        /// Its branch.
        branch: String,
        /// The commit to record.
        sha: Oid,
    },
    /// `sha` is not on the environment's branch.
    NotOnBranch {
        /// The environment.
        env: String,
        /// Its branch.
        branch: String,
        /// The commit to record.
        sha: Oid,
        /// The branch tip.
        tip: Oid,
    },
    /// `sha` is older than the current deploy and this is no rollback (F13).
    Backwards {
        /// The environment.
        env: String,
        /// The commit to record.
        sha: Oid,
        /// The current deploy's commit.
        current: Oid,
        /// The history tag of the current deploy, if any.
        by: Option<String>,
        /// The stack, when this is a stack's record.
        stack: Option<String>,
    },
    /// A rollback to a commit no real record of this environment made (F16); the reason is
    /// [`resolve`]'s.
    NotARollbackTarget {
        /// Why, from [`resolve`].
        reason: String,
    },
    /// `deploy/<env>/current` changed between the read and the fetch (F12).
    MovedDuringRead {
        /// The environment.
        env: String,
        /// The tag object read first.
        was: Option<Oid>,
        /// The tag object the remote has now.
        is: Option<Oid>,
    },
    /// Not every changed stack of the commit applied: `deploy/<env>/current` stays.
    StacksNotApplied(stacks::NotApplied),
    /// The compare-and-swap push lost to another deploy (F10).
    LostRace {
        /// The environment.
        env: String,
        /// The git layer's account of the lease.
        detail: String,
    },
}

impl std::fmt::Display for RecordRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordRefusal::Held { env, hold } => write!(
                f,
                "environment `{env}` is on hold ({}); only a `--rollback` deploy may be recorded until `tag-deploy release --environment {env}`",
                describe_hold(hold.as_ref())
            ),
            RecordRefusal::NoBranch { env, branch, sha } => write!(
                f,
                "branch `{branch}` of environment `{env}` does not exist on the remote, so {sha} cannot be on it"
            ),
            RecordRefusal::NotOnBranch {
                env,
                branch,
                sha,
                tip,
            } => write!(
                f,
                "{sha} is not on branch `{branch}` (environment `{env}`, tip {tip}); only commits of the environment's branch can be recorded as its deploys"
            ),
            RecordRefusal::Backwards {
                env,
                sha,
                current,
                by,
                stack,
            } => {
                let what = match stack {
                    Some(s) => format!("`{env}` stack `{s}`"),
                    None => format!("`{env}`"),
                };
                write!(
                    f,
                    "{sha} is an ancestor of the current deploy {current} of {what}{}: recording it would roll {what} back. A re-run of an old deploy job must not roll back by accident; if this is a deliberate rollback, pass `--rollback`",
                    by.as_ref()
                        .map(|t| format!(" (history tag {t})"))
                        .unwrap_or_default()
                )
            }
            RecordRefusal::NotARollbackTarget { reason } => write!(
                f,
                "{reason}: a rollback may only return to a commit deployed there before; nothing was changed"
            ),
            RecordRefusal::MovedDuringRead { env, was, is } => {
                let show = |o: &Option<Oid>| o.map_or("<none>".to_string(), |o| o.to_string());
                write!(
                    f,
                    "lost the race to record a deploy of `{env}`: {} changed on the remote: expected {}, found {}; nothing was changed",
                    current_ref(env),
                    show(was),
                    show(is)
                )
            }
            RecordRefusal::StacksNotApplied(n) => write!(f, "{n}"),
            RecordRefusal::LostRace { env, detail } => write!(
                f,
                "lost the race to record a deploy of `{env}`: {detail}. Another deploy was recorded in between; re-run `tag-deploy list --environment {env}` to see it"
            ),
        }
    }
}

impl From<RecordRefusal> for Failure {
    fn from(r: RecordRefusal) -> Failure {
        Failure::refused(r.to_string())
    }
}

/// What `record` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordDecision {
    /// A rule needs a fact not gathered yet: gather it and decide again.
    Gather(RecordNeed),
    /// Refuse, with the reason.
    Refuse(RecordRefusal),
    /// `sha` is the current deploy already: nothing to record (idempotent re-run).
    Unchanged {
        /// Its newest history tag (empty when there is none).
        history_tag: String,
    },
    /// Create the history tag and move `current` (lease: the current tag object).
    Record {
        /// The commit current before (empty for the first deploy).
        previous: Option<Oid>,
        /// A rollback (marked in the trailers).
        rollback: bool,
        /// The environment's record with stacks: every changed stack applied, with its plan
        /// digest (the `Stack-Applied` trailers). Empty for one stack and for a stack's record.
        stacks: Vec<StackOutcome>,
    },
}

/// The decision table of `record`: the rules in the order they apply; the first that does not
/// pass decides.
pub fn decide_record(facts: &DeployFacts, rules: &RecordRules) -> RecordDecision {
    match record_in_order(facts, rules) {
        ControlFlow::Continue(d) | ControlFlow::Break(d) => d,
    }
}

/// `Continue` with what a rule found, or `Break` with the decision it made.
type RecordStep<T> = ControlFlow<RecordDecision, T>;

fn record_in_order(f: &DeployFacts, r: &RecordRules) -> RecordStep<RecordDecision> {
    not_current_already(f, r)?;
    not_held(f, r)?;
    let tip = branch_exists(f, r)?;
    on_branch(f, r, tip)?;
    not_backwards(f, r)?;
    rollback_to_a_record(f, r)?;
    let stacks = stacks::every_stack_applied(f, r)?;
    ControlFlow::Continue(RecordDecision::Record {
        previous: recorded_commit(f, r),
        rollback: r.rollback,
        stacks,
    })
}

/// The commit the record being written holds now: the stack's (`--stack`) or the
/// environment's current deploy.
fn recorded_commit(f: &DeployFacts, r: &RecordRules) -> Option<Oid> {
    match r.stack {
        Some(s) => f.state.stacks.get(s).map(|c| c.peeled),
        None => f.state.current_commit(),
    }
}

fn asked<T: Clone>(fact: &Option<T>, need: RecordNeed) -> RecordStep<T> {
    match fact {
        Some(v) => ControlFlow::Continue(v.clone()),
        None => ControlFlow::Break(RecordDecision::Gather(need)),
    }
}

fn refuse_record<T>(r: RecordRefusal) -> RecordStep<T> {
    ControlFlow::Break(RecordDecision::Refuse(r))
}

/// 1. Recording the current deploy again changes nothing (a re-run of the same job).
fn not_current_already(f: &DeployFacts, r: &RecordRules) -> RecordStep<()> {
    if recorded_commit(f, r) != Some(f.sha) {
        return ControlFlow::Continue(());
    }
    let history_tag = match r.stack {
        Some(_) => String::new(),
        None => f
            .state
            .last_deploy_of(f.sha)
            .map(|e| e.tag.clone())
            .unwrap_or_default(),
    };
    ControlFlow::Break(RecordDecision::Unchanged { history_tag })
}

/// 2. On hold, only a rollback may be recorded.
fn not_held(f: &DeployFacts, r: &RecordRules) -> RecordStep<()> {
    if f.state.hold.is_none() || r.rollback {
        return ControlFlow::Continue(());
    }
    let hold = asked(&f.hold, RecordNeed::Hold)?;
    refuse_record(RecordRefusal::Held {
        env: r.env.to_string(),
        hold,
    })
}

/// 3. The environment's branch exists.
fn branch_exists(f: &DeployFacts, r: &RecordRules) -> RecordStep<Oid> {
    match f.branch_tip {
        Some(t) => ControlFlow::Continue(t),
        None => refuse_record(RecordRefusal::NoBranch {
            env: r.env.to_string(),
            branch: r.branch.to_string(),
            sha: f.sha,
        }),
    }
}

/// 4. Only commits of the environment's branch are its deploys.
fn on_branch(f: &DeployFacts, r: &RecordRules, tip: Oid) -> RecordStep<()> {
    let sha = f.sha;
    if asked(&f.on_branch, RecordNeed::OnBranch { sha, tip })? {
        return ControlFlow::Continue(());
    }
    refuse_record(RecordRefusal::NotOnBranch {
        env: r.env.to_string(),
        branch: r.branch.to_string(),
        sha,
        tip,
    })
}

/// 5. An ancestor of the current deploy is a rollback, and must say so (F13).
fn not_backwards(f: &DeployFacts, r: &RecordRules) -> RecordStep<()> {
    let Some(current) = recorded_commit(f, r) else {
        return ControlFlow::Continue(());
    };
    let sha = f.sha;
    let behind = asked(
        &f.behind_current,
        RecordNeed::BehindCurrent { sha, current },
    )?;
    if !behind || r.rollback {
        return ControlFlow::Continue(());
    }
    refuse_record(RecordRefusal::Backwards {
        env: r.env.to_string(),
        sha,
        current,
        by: match r.stack {
            Some(s) => Some(stack_tag(r.env, s)),
            None => f.state.last_deploy_of(current).map(|e| e.tag.clone()),
        },
        stack: r.stack.map(str::to_string),
    })
}

/// 6. A rollback returns only to a commit a real record of this environment made (F16), the
///    same rule as `resolve`.
fn rollback_to_a_record(f: &DeployFacts, r: &RecordRules) -> RecordStep<()> {
    if !r.rollback {
        return ControlFlow::Continue(());
    }
    let of_sha: Vec<HistoryEntry> = f
        .state
        .history
        .iter()
        .filter(|h| h.commit == f.sha)
        .cloned()
        .collect();
    let verdicts = asked(&f.verdicts, RecordNeed::Verdicts(of_sha))?;
    match resolve(&f.state, &Target::Sha(f.sha), &verdicts) {
        Ok(_) => ControlFlow::Continue(()),
        Err(e) => refuse_record(RecordRefusal::NotARollbackTarget { reason: e.message }),
    }
}

/// After a failed fetch: when `deploy/<env>/current` moved since it was read (`was` -> `is`),
/// the failure is the lost race it is (F12), not a runtime error.
pub fn moved_during_read(env: &str, was: Option<Oid>, is: Option<Oid>) -> Option<RecordRefusal> {
    (was != is).then(|| RecordRefusal::MovedDuringRead {
        env: env.to_string(),
        was,
        is,
    })
}

// ------------------------------------------------------------------ previews

/// `deploy/<env>/preview/` (short prefix of every preview record).
fn preview_dir(env: &str) -> String {
    format!("deploy/{env}/preview/")
}

/// `refs/tags/deploy/<env>/preview/` (prefix of every preview record).
pub fn preview_prefix(env: &str) -> String {
    tag_ref(&preview_dir(env))
}

/// `deploy/<env>/preview/pr-<n>` (short tag name) of a preview workspace.
pub fn preview_tag(env: &str, pr: u64) -> String {
    format!("{}pr-{pr}", preview_dir(env))
}

/// `refs/tags/deploy/<env>/preview/pr-<n>`.
pub fn preview_ref(env: &str, pr: u64) -> String {
    tag_ref(&preview_tag(env, pr))
}

/// The GitHub environment of a preview's Deployment: `<env>/pr-<n>` (transient).
pub fn preview_environment(env: &str, pr: u64) -> String {
    format!("{env}/pr-{pr}")
}

/// The PR comment key of a preview (one upserted comment per environment and PR).
pub fn preview_comment_key(env: &str, pr: u64) -> String {
    format!("preview/{env}/pr-{pr}")
}

/// Whether a verb records the environment itself (`start`, `record`, `fail`, `list`,
/// `resolve`, `hold`, `release`, `window`) or a preview (`preview-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The environment: `deploy/<env>/current`, its history, its hold.
    Environment,
    /// One preview: `deploy/<env>/preview/pr-<n>`.
    Preview,
    /// Every preview of the environment (the sweep).
    AllPreviews,
}

/// The rule that keeps previews out of the environment's own record: a verb that moves or
/// reads `deploy/<env>/current`, its history or its hold takes only the `default` workspace
/// (exit 1: a preview never moves `current`, never enters history, is never a rollback target);
/// a preview verb needs a preview workspace (exit 2); the sweep covers every preview and takes
/// no single one (exit 2). Returns the PR of a preview.
pub fn workspace_scope(env: &str, scope: Scope, ws: &Workspace) -> Result<Option<u64>> {
    match (scope, ws) {
        (Scope::Environment, Workspace::Default) | (Scope::AllPreviews, Workspace::Default) => {
            Ok(None)
        }
        (Scope::Environment, Workspace::Preview(_)) => Err(Failure::refused(format!(
            "workspace `{}` refused: a preview never moves {} and never enters `{}` (its deploy history and rollback targets); record a preview with `preview-open`",
            ws.name(),
            current_tag(env),
            history_dir(env)
        ))),
        (Scope::Preview, Workspace::Preview(n)) => Ok(Some(*n)),
        (Scope::Preview, Workspace::Default) => Err(Failure::usage(
            "workspace",
            "a preview verb needs the preview's workspace (`pr-<pull request number>`), not `default`",
        )),
        (Scope::AllPreviews, Workspace::Preview(_)) => Err(Failure::usage(
            "workspace",
            "`preview-sweep` looks at every preview of the environment: give no workspace (or `default`)",
        )),
    }
}

/// A preview record on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewEntry {
    /// Short tag name (`deploy/dev/preview/pr-12`).
    pub tag: String,
    /// The pull request.
    pub pr: u64,
    /// Tag object id (the lease for moving or deleting it).
    pub tag_oid: Oid,
    /// The previewed commit.
    pub commit: Oid,
}

/// The preview records of `env` in an ls-remote of `refs/tags/deploy/<env>/preview/`, by PR
/// number; refs there that are not `pr-<n>` are returned as foreign (never acted on).
pub fn previews_from_refs(env: &str, refs: &RemoteRefs) -> (Vec<PreviewEntry>, Vec<String>) {
    let pp = preview_prefix(env);
    let (mut out, mut foreign) = (Vec::new(), Vec::new());
    for (name, r) in refs.under(&pp) {
        let leaf = &name[pp.len()..];
        match Workspace::parse("tag", leaf) {
            Ok(Workspace::Preview(pr)) => out.push(PreviewEntry {
                tag: short_tag(name).to_string(),
                pr,
                tag_oid: r.oid,
                commit: r.peeled,
            }),
            _ => foreign.push(name.to_string()),
        }
    }
    out.sort_by_key(|p| p.pr);
    (out, foreign)
}

/// The metadata of a preview record, as git trailers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Preview {
    /// Environment name.
    pub environment: String,
    /// The workspace (`pr-<n>`).
    pub workspace: String,
    /// The pull request number.
    pub pull_request: u64,
    /// The previewed commit (the PR's head).
    pub commit: String,
    /// When the preview was first opened (RFC 3339 UTC); kept by every update.
    pub opened: String,
    /// When it was last updated (RFC 3339 UTC).
    pub updated: String,
    /// The preview's URL, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The run id (or `local`).
    pub run_id: String,
    /// The run's URL, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// The image deployed into the preview.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Preview {
    /// The tag message: subject, sentence, trailers.
    pub fn message(&self) -> String {
        let sha7 = &self.commit[..self.commit.len().min(7)];
        let mut m = format!(
            "preview {}/{}: {sha7}\n\nPreview of pull request #{} recorded by gitops-actions tag-deploy; never a deploy of `{}`.\n\n",
            self.environment, self.workspace, self.pull_request, self.environment
        );
        let pr = self.pull_request.to_string();
        for (k, v) in [
            ("Environment", Some(self.environment.as_str())),
            ("Workspace", Some(self.workspace.as_str())),
            ("Pull-Request", Some(pr.as_str())),
            ("Commit", Some(self.commit.as_str())),
            ("Opened", Some(self.opened.as_str())),
            ("Updated", Some(self.updated.as_str())),
            ("Url", self.url.as_deref()),
            ("Run-ID", Some(self.run_id.as_str())),
            ("Run-URL", self.run_url.as_deref()),
            ("Image", self.image.as_deref()),
        ] {
            if let Some(v) = v {
                m.push_str(&format!("{k}: {}\n", one_line(v)));
            }
        }
        m
    }

    /// Parse a preview record's message (unknown trailers ignored, missing ones empty).
    pub fn parse(message: &str) -> Preview {
        let mut p = Preview::default();
        for (k, v) in trailers(message) {
            let v = v.to_string();
            match k {
                "Environment" => p.environment = v,
                "Workspace" => p.workspace = v,
                "Pull-Request" => p.pull_request = v.parse().unwrap_or(0),
                "Commit" => p.commit = v,
                "Opened" => p.opened = v,
                "Updated" => p.updated = v,
                "Url" => p.url = Some(v),
                "Run-ID" => p.run_id = v,
                "Run-URL" => p.run_url = Some(v),
                "Image" => p.image = Some(v),
                _ => {}
            }
        }
        p
    }

    /// When it was opened, if the trailer is a time.
    pub fn opened_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.opened, &time::format_description::well_known::Rfc3339).ok()
    }
}

/// What the sweep learned about one preview's pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    /// Open.
    Open,
    /// Closed (merged or not).
    Closed,
    /// GitHub does not know it (deleted, or a number that never was a PR).
    Missing,
}

/// Why the sweep destroys a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepReason {
    /// Its pull request is closed (the close event was missed).
    Closed,
    /// Its pull request does not exist.
    Missing,
    /// Older than the maximum age.
    TooOld {
        /// How old, in whole hours.
        age_hours: u64,
        /// The maximum, in whole hours.
        max_hours: u64,
    },
}

impl std::fmt::Display for SweepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SweepReason::Closed => write!(f, "its pull request is closed"),
            SweepReason::Missing => write!(f, "its pull request does not exist"),
            SweepReason::TooOld {
                age_hours,
                max_hours,
            } => write!(
                f,
                "it is {age_hours} h old, older than the maximum age of {max_hours} h"
            ),
        }
    }
}

/// The sweep's decision for one preview: destroy it when its PR is closed or missing, or when
/// it was opened longer ago than `max_age`; keep it otherwise. A record whose opening time
/// cannot be read is judged by its PR alone (never destroyed for an age it does not have, and
/// said so by the caller).
pub fn sweep_verdict(
    pr: PrState,
    opened: Option<OffsetDateTime>,
    now: OffsetDateTime,
    max_age: std::time::Duration,
) -> Option<SweepReason> {
    match pr {
        PrState::Closed => return Some(SweepReason::Closed),
        PrState::Missing => return Some(SweepReason::Missing),
        PrState::Open => {}
    }
    let age = now - opened?;
    let max = time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX);
    (age > max).then(|| SweepReason::TooOld {
        age_hours: u64::try_from(age.whole_hours()).unwrap_or(0),
        max_hours: u64::try_from(max.whole_hours()).unwrap_or(u64::MAX),
    })
}

fn one_line(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `Key: value` lines of the last paragraph.
fn trailers(message: &str) -> Vec<(&str, &str)> {
    let para = message.trim_end().rsplit("\n\n").next().unwrap_or_default();
    para.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .collect()
}

/// Validate a free-text metadata value (image, reason, ...): non-empty, at most `max` chars, no
/// control characters (they would break the trailer format and the runner's log).
pub fn validate_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() {
        return Err(Failure::usage(field, "is empty"));
    }
    if v.chars().count() > max {
        return Err(Failure::usage(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(Failure::usage(
            field,
            format!(
                "`{}` contains a control character (newline, tab, ...)",
                single_line(v)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `dev` at commit `3` (history `1`, `2`, `3`), branch tip `b`, recording the new `4`;
    /// every fact gathered, every rule passes.
    fn recording(sha: char) -> DeployFacts {
        let state = EnvState::from_refs("dev", &three_deploys(&[]));
        let verdicts = all_real(&state);
        DeployFacts {
            state,
            branch_tip: Some(oid('b')),
            sha: oid(sha),
            hold: None,
            on_branch: Some(true),
            behind_current: Some(false),
            verdicts: Some(verdicts),
            stack_records: None,
        }
    }

    fn held(f: &mut DeployFacts, hold: Option<Hold>) {
        f.state.hold = Some(HoldRef {
            tag_oid: oid('a'),
            commit: oid('3'),
        });
        f.hold = Some(hold);
    }

    // Every refusal and outcome of `record`'s decision alone (no git, no network).
    #[test]
    fn the_record_decision_table() {
        enum Want {
            Is(RecordDecision),
            Refused(&'static str),
        }
        let record = |previous: Option<char>, rollback| {
            Want::Is(RecordDecision::Record {
                previous: previous.map(oid),
                rollback,
                stacks: Vec::new(),
            })
        };
        let hold = Hold {
            reason: "bad\nrelease".into(),
            actor: Some("octocat".into()),
            run_url: None,
            since: None,
        };
        let tag3 = "deploy/dev/history/20261126T120000Z-3-3333333";
        type Case = (
            &'static str,
            char,
            bool,
            Box<dyn Fn(&mut DeployFacts)>,
            Want,
        );
        let cases: Vec<Case> = vec![
            ("a new deploy", '4', false, Box::new(|_| {}), record(Some('3'), false)),
            (
                "the first deploy",
                '4',
                false,
                Box::new(|f| {
                    f.state.current = None;
                    f.behind_current = None;
                }),
                record(None, false),
            ),
            (
                "the current deploy again",
                '3',
                false,
                Box::new(|f| held(f, None)),
                Want::Is(RecordDecision::Unchanged {
                    history_tag: tag3.into(),
                }),
            ),
            (
                "on hold",
                '4',
                false,
                Box::new(move |f| held(f, Some(hold.clone()))),
                Want::Refused("environment `dev` is on hold (reason: bad\\nrelease; by octocat); only a `--rollback` deploy may be recorded until `tag-deploy release --environment dev`"),
            ),
            (
                "on hold, the hold unreadable",
                '4',
                false,
                Box::new(|f| held(f, None)),
                Want::Refused("is on hold (reason unavailable)"),
            ),
            (
                "on hold, a rollback",
                '2',
                true,
                Box::new(|f| {
                    held(f, None);
                    f.behind_current = Some(true);
                }),
                record(Some('3'), true),
            ),
            (
                "no branch",
                '4',
                false,
                Box::new(|f| f.branch_tip = None),
                Want::Refused("branch `dev` of environment `dev` does not exist on the remote, so 4444444444444444444444444444444444444444 cannot be on it"),
            ),
            (
                "not on the branch",
                '4',
                false,
                Box::new(|f| f.on_branch = Some(false)),
                Want::Refused("4444444444444444444444444444444444444444 is not on branch `dev` (environment `dev`, tip bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb); only commits of the environment's branch can be recorded as its deploys"),
            ),
            (
                "backwards without --rollback (F13)",
                '2',
                false,
                Box::new(|f| f.behind_current = Some(true)),
                Want::Refused("2222222222222222222222222222222222222222 is an ancestor of the current deploy 3333333333333333333333333333333333333333 of `dev` (history tag deploy/dev/history/20261126T120000Z-3-3333333): recording it would roll `dev` back."),
            ),
            (
                "a rollback to a commit deployed here",
                '1',
                true,
                Box::new(|f| f.behind_current = Some(true)),
                record(Some('3'), true),
            ),
            (
                "a rollback to a commit never deployed here (F16)",
                '9',
                true,
                Box::new(|f| f.behind_current = Some(true)),
                Want::Refused("commit 9999999999999999999999999999999999999999 was never deployed to `dev` (no record under deploy/dev/history/ points at it); refusing to roll back to it: a rollback may only return to a commit deployed there before; nothing was changed"),
            ),
            (
                "a rollback to a commit only a forged tag names (F16)",
                '2',
                true,
                Box::new(|f| {
                    f.behind_current = Some(true);
                    let forged = "deploy/dev/history/20261126T110000Z-2-2222222";
                    f.verdicts
                        .as_mut()
                        .unwrap()
                        .insert(forged.into(), Err(NotARecord::NotAnnotated));
                }),
                Want::Refused("was never deployed to `dev` (no record under deploy/dev/history/ points at it; 1 tag(s) that are not records were passed over"),
            ),
        ];
        for (what, sha, rollback, facts, want) in cases {
            let mut f = recording(sha);
            facts(&mut f);
            let rules = RecordRules {
                env: "dev",
                branch: "dev",
                rollback,
                stack: None,
                stacks: None,
            };
            match (want, decide_record(&f, &rules)) {
                (Want::Is(w), g) => assert_eq!(g, w, "{what}"),
                (Want::Refused(needle), RecordDecision::Refuse(r)) => {
                    let failure = Failure::from(r);
                    assert_eq!(failure.class, crate::exit::ExitClass::Refused, "{what}");
                    assert!(failure.message.contains(needle), "{what}: {failure}");
                }
                (_, g) => panic!("{what}: got {g:?}"),
            }
        }
    }

    // Facts that cost a call are asked for only when every earlier rule passed, in rule order.
    #[test]
    fn record_facts_are_asked_for_in_rule_order() {
        let full = recording('2');
        let mut f = DeployFacts {
            on_branch: None,
            behind_current: None,
            verdicts: None,
            ..full.clone()
        };
        let rules = RecordRules {
            env: "dev",
            branch: "dev",
            rollback: true,
            stack: None,
            stacks: None,
        };
        let mut asked = Vec::new();
        let got = loop {
            match decide_record(&f, &rules) {
                RecordDecision::Gather(need) => {
                    match &need {
                        RecordNeed::Hold => panic!("a rollback never reads the hold"),
                        RecordNeed::OnBranch { .. } => f.on_branch = Some(true),
                        RecordNeed::BehindCurrent { .. } => f.behind_current = Some(true),
                        RecordNeed::Verdicts(_) => f.verdicts = full.verdicts.clone(),
                        RecordNeed::StackRecords(_) => panic!("one stack: no stack records"),
                    }
                    asked.push(need);
                }
                d => break d,
            }
        };
        assert_eq!(
            got,
            RecordDecision::Record {
                previous: Some(oid('3')),
                rollback: true,
                stacks: Vec::new(),
            }
        );
        let of_2 = f.state.last_deploy_of(oid('2')).unwrap().clone();
        assert_eq!(
            asked,
            vec![
                RecordNeed::OnBranch {
                    sha: oid('2'),
                    tip: oid('b')
                },
                RecordNeed::BehindCurrent {
                    sha: oid('2'),
                    current: oid('3')
                },
                RecordNeed::Verdicts(vec![of_2]),
            ]
        );
        // On hold without --rollback: the hold's message is the only fact asked for.
        let mut h = DeployFacts {
            on_branch: None,
            behind_current: None,
            verdicts: None,
            ..full.clone()
        };
        held(&mut h, None);
        h.hold = None;
        let no_rollback = RecordRules {
            rollback: false,
            ..rules
        };
        assert_eq!(
            decide_record(&h, &no_rollback),
            RecordDecision::Gather(RecordNeed::Hold)
        );
        // Not on the branch: nothing more is asked.
        let mut off = h.clone();
        off.state.hold = None;
        off.on_branch = Some(false);
        assert!(matches!(
            decide_record(&off, &no_rollback),
            RecordDecision::Refuse(RecordRefusal::NotOnBranch { .. })
        ));
    }

    #[test]
    fn a_current_tag_that_moved_during_the_read_is_a_lost_race() {
        assert_eq!(
            moved_during_read("dev", Some(oid('a')), Some(oid('a'))),
            None
        );
        let r = moved_during_read("dev", Some(oid('a')), None).unwrap();
        assert_eq!(
            r.to_string(),
            format!("lost the race to record a deploy of `dev`: refs/tags/deploy/dev/current changed on the remote: expected {}, found <none>; nothing was changed", oid('a'))
        );
        let lost = RecordRefusal::LostRace {
            env: "dev".into(),
            detail: "lease".into(),
        };
        assert_eq!(Failure::from(lost).class, crate::exit::ExitClass::Refused);
    }

    #[test]
    fn one_owner_of_the_names() {
        assert_eq!(current_tag("dev"), "deploy/dev/current");
        assert_eq!(current_ref("dev"), "refs/tags/deploy/dev/current");
        assert_eq!(hold_tag("prod"), "deploy/prod/hold");
        assert_eq!(hold_ref("prod"), "refs/tags/deploy/prod/hold");
        assert_eq!(history_prefix("dev"), "refs/tags/deploy/dev/history/");
        assert_eq!(env_prefix("dev"), "refs/tags/deploy/dev/");
        assert_eq!(short_tag(&tag_ref("deploy/dev/hold")), "deploy/dev/hold");
        assert_eq!(short_tag("refs/heads/dev"), "refs/heads/dev");
    }

    fn oid(c: char) -> Oid {
        Oid::from_str(&c.to_string().repeat(40)).unwrap()
    }

    fn refs(list: &[(&str, char, char)]) -> RemoteRefs {
        let mut m = BTreeMap::new();
        for (n, o, p) in list {
            m.insert(
                n.to_string(),
                RemoteRef {
                    oid: oid(*o),
                    peeled: oid(*p),
                },
            );
        }
        RemoteRefs { refs: m }
    }

    /// `dev` deployed three times (commits `1`, `2`, `3`; `3` current), plus `extra` refs.
    fn three_deploys(extra: &[(&str, char, char)]) -> RemoteRefs {
        let mut all = vec![
            ("refs/tags/deploy/dev/current", 'c', '3'),
            (
                "refs/tags/deploy/dev/history/20261126T100000Z-1-1111111",
                'd',
                '1',
            ),
            (
                "refs/tags/deploy/dev/history/20261126T110000Z-2-2222222",
                'e',
                '2',
            ),
            (
                "refs/tags/deploy/dev/history/20261126T120000Z-3-3333333",
                'f',
                '3',
            ),
        ];
        all.extend_from_slice(extra);
        refs(&all)
    }

    #[test]
    fn names_and_stamps() {
        let t = time::macros::datetime!(2026-11-26 12:03:04 UTC);
        assert_eq!(stamp(t), "20261126T120304Z");
        let n = history_name("prod", t, "42", oid('a'));
        assert_eq!(n, "deploy/prod/history/20261126T120304Z-42-aaaaaaa");
        crate::validate::git_ref_format("t", &n).unwrap();
        let p = HistoryName::parse("20261126T120304Z-42-aaaaaaa").unwrap();
        assert_eq!(p.iso_time(), "2026-11-26T12:03:04Z");
        for bad in [
            "x",
            "20261126T120304Z-42",
            "20261126-42-aaaaaaa",
            "20261126T120304Z-4x-aaaaaaa",
            "20261126T120304Z-42-zzzzzzz",
        ] {
            assert!(HistoryName::parse(bad).is_none(), "{bad}");
        }
        validate_run_id("123").unwrap();
        validate_run_id("local").unwrap();
        for bad in ["", "12a", "-1", "1 "] {
            assert!(validate_run_id(bad).is_err());
        }
    }

    #[test]
    fn state_previous_and_resolution() {
        let r = three_deploys(&[
            ("refs/tags/deploy/dev/history/junk", 'f', '3'),
            ("refs/tags/deploy/dev2/current", 'a', 'a'),
        ]);
        let s = EnvState::from_refs("dev", &r);
        assert_eq!(s.history.len(), 3);
        assert_eq!(s.history[0].commit, oid('3'));
        assert_eq!(
            s.foreign,
            vec!["refs/tags/deploy/dev/history/junk".to_string()]
        );
        assert_eq!(s.previous().unwrap().commit, oid('2'));
        let all = all_real(&s);
        assert_eq!(
            resolve(&s, &Target::Previous, &all).unwrap().commit,
            oid('2')
        );
        assert_eq!(
            resolve(&s, &Target::Sha(oid('1')), &all).unwrap().commit,
            oid('1')
        );
        let e = resolve(&s, &Target::Sha(oid('9')), &all).unwrap_err();
        assert_eq!(e.class, crate::exit::ExitClass::Refused);
        assert!(e.message.contains("never deployed"), "{e}");
        let t = parse_target("to", "dev", "deploy/dev/history/20261126T100000Z-1-1111111").unwrap();
        assert_eq!(resolve(&s, &t, &all).unwrap().commit, oid('1'));
        let t = parse_target(
            "to",
            "dev",
            "refs/tags/deploy/dev/history/20261126T090000Z-1-1111111",
        )
        .unwrap();
        assert!(resolve(&s, &t, &all).is_err());
        let empty = EnvState::from_refs("prod", &r);
        assert!(resolve(&empty, &Target::Previous, &Verdicts::new()).is_err());
    }

    /// Verdicts that accept every entry (what `check_record` says of tags `record` wrote).
    fn all_real(s: &EnvState) -> Verdicts {
        s.history
            .iter()
            .map(|e| {
                let rec = Record {
                    environment: s.env.clone(),
                    commit: e.commit.to_string(),
                    run_id: e.name.run_id.clone(),
                    ..Record::default()
                };
                (e.tag.clone(), Ok(rec))
            })
            .collect()
    }

    fn entry(leaf: &str, commit: char) -> HistoryEntry {
        HistoryEntry {
            tag: format!("deploy/dev/history/{leaf}"),
            tag_oid: oid('f'),
            commit: oid(commit),
            name: HistoryName::parse(leaf).unwrap(),
        }
    }

    fn message(env: &str, commit: &str, run: &str) -> String {
        Record {
            environment: env.into(),
            commit: commit.into(),
            run_id: run.into(),
            ..Record::default()
        }
        .message()
    }

    // F16: a well-named history tag is a record only when its trailers agree with it and its
    // commit is on the environment's branch.
    #[test]
    fn only_consistent_tags_on_the_branch_are_records() {
        let e = entry("20261126T100000Z-7-1111111", '1');
        let c = "1".repeat(40);
        let fact = |m: Option<String>, on_branch| RecordFacts {
            message: m,
            on_branch,
        };
        let cases: Vec<(&str, RecordFacts, std::result::Result<(), &str>)> = vec![
            ("real", fact(Some(message("dev", &c, "7")), true), Ok(())),
            ("lightweight", fact(None, true), Err("not an annotated tag")),
            (
                "no trailers",
                fact(Some("deploy dev: 1111111\n".into()), true),
                Err("Environment trailer is missing"),
            ),
            (
                "other env",
                fact(Some(message("prod", &c, "7")), true),
                Err("Environment trailer is `prod`"),
            ),
            (
                "other commit",
                fact(Some(message("dev", &"2".repeat(40), "7")), true),
                Err("Commit trailer is `2222"),
            ),
            (
                "short commit",
                fact(Some(message("dev", "1111111", "7")), true),
                Err("Commit trailer is `1111111`"),
            ),
            (
                "run id",
                fact(Some(message("dev", &c, "8")), true),
                Err("run `7` in the name, Run-ID trailer `8`"),
            ),
            (
                "no run id",
                fact(Some(message("dev", &c, "")), true),
                Err("Run-ID trailer missing"),
            ),
            (
                "off branch",
                fact(Some(message("dev", &c, "7")), false),
                Err("not on the environment's branch `dev`"),
            ),
        ];
        for (what, facts, want) in cases {
            let got = check_record("dev", "dev", &e, &facts);
            match (want, got) {
                (Ok(()), Ok(r)) => assert_eq!(r.commit, c, "{what}"),
                (Err(needle), Err(n)) => {
                    assert!(n.to_string().contains(needle), "{what}: {n}")
                }
                (w, g) => panic!("{what}: want {w:?}, got {g:?}"),
            }
        }
        // The abbreviated commit in the name must abbreviate the target.
        let wrong = entry("20261126T100000Z-7-2222222", '1');
        let n = check_record(
            "dev",
            "dev",
            &wrong,
            &fact(Some(message("dev", &c, "7")), true),
        )
        .unwrap_err();
        assert!(n.to_string().contains("is not an abbreviation"), "{n}");
    }

    // Every way of naming a rollback target refuses an entry that is not a record; `previous`
    // passes over such entries to the newest real one.
    #[test]
    fn forged_entries_are_never_rollback_targets() {
        let r = three_deploys(&[
            // forged: newer than the current deploy, on a commit never on the branch
            (
                "refs/tags/deploy/dev/history/20261126T130000Z-4-9999999",
                'a',
                '9',
            ),
        ]);
        let s = EnvState::from_refs("dev", &r);
        let mut v = all_real(&s);
        let forged = "deploy/dev/history/20261126T130000Z-4-9999999";
        let fake2 = "deploy/dev/history/20261126T110000Z-2-2222222";
        v.insert(forged.into(), Err(NotARecord::NotOnBranch("dev".into())));
        v.insert(fake2.into(), Err(NotARecord::Environment(String::new())));
        // previous skips both the forged newest entry and the forged `2`, lands on `1`
        let got = resolve(&s, &Target::Previous, &v).unwrap();
        assert_eq!(got.commit, oid('1'));
        assert_eq!(
            got.skipped
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>(),
            vec![forged, fake2]
        );
        let cases: Vec<(Target, &str)> = vec![
            (Target::HistoryTag(forged.into()), "is not a record"),
            (Target::HistoryTag(fake2.into()), "Environment trailer"),
            (Target::Sha(oid('9')), "never deployed"),
            (Target::Sha(oid('2')), "passed over"),
        ];
        for (t, needle) in cases {
            let e = resolve(&s, &t, &v).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Refused, "{t:?}");
            assert!(e.message.contains(needle), "{t:?}: {e}");
        }
        // no verdict at all: fail closed
        for t in [Target::Previous, Target::Sha(oid('1'))] {
            assert!(resolve(&s, &t, &Verdicts::new()).is_err(), "{t:?}");
        }
        // nothing real before the current deploy
        let mut none = v.clone();
        for e in &s.history {
            none.insert(e.tag.clone(), Err(NotARecord::NotAnnotated));
        }
        let e = resolve(&s, &Target::Previous, &none).unwrap_err();
        assert!(e.message.contains("passed over"), "{e}");
    }

    #[test]
    fn targets_are_validated() {
        assert_eq!(
            parse_target("to", "dev", "previous").unwrap(),
            Target::Previous
        );
        assert_eq!(
            parse_target("to", "dev", &"a".repeat(40)).unwrap(),
            Target::Sha(oid('a'))
        );
        for bad in [
            "",
            "Previous",
            "abc1234",
            &"A".repeat(40),
            "deploy/prod/history/20261126T100000Z-1-1111111",
            "deploy/dev/history/../current",
            "deploy/dev/current",
            "deploy/dev/history/20261126T100000Z-1-1111111 ",
            "deploy/dev/history/x:y",
            "HEAD~1",
        ] {
            let e = parse_target("to", "dev", bad).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{bad:?}");
            assert_eq!(e.field.as_deref(), Some("to"));
        }
    }

    #[test]
    fn messages_round_trip() {
        let r = Record {
            environment: "prod".into(),
            commit: "a".repeat(40),
            run_url: Some("https://github.com/o/r/actions/runs/1".into()),
            run_id: "1".into(),
            actor: Some("octocat".into()),
            image: Some("123.dkr.ecr.us-east-1.amazonaws.com/app@sha256:abc".into()),
            plan_digest: Some("sha256:def".into()),
            rollback_of: Some("b".repeat(40)),
            window_override: Some("INC-42: the year-end freeze, a broken login".into()),
            verification: Some("failed".into()),
            verification_duration: Some("31s".into()),
            verification_checks: Some("http health: failed (status 500); alarms: passed (1 alarm(s) out of ALARM for 30s)".into()),
            data_loss: Some("INC-43: the cache is rebuilt from the database".into()),
            stack: None,
            stacks: Vec::new(),
        };
        let m = r.message();
        assert!(m.contains("\nVerification: failed\nVerification-Duration: 31s\nVerification-Checks: http health: failed (status 500); alarms: passed"));
        assert!(m.contains("\nWindow-Override: INC-42: the year-end freeze, a broken login\n"));
        assert!(
            m.ends_with("\nData-Loss-Allowed: INC-43: the cache is rebuilt from the database\n")
        );
        assert!(m.starts_with("rollback prod: aaaaaaa\n\n"));
        assert_eq!(Record::parse(&m), r);
        let h = Hold {
            reason: "rolled back: bad release".into(),
            actor: Some("octocat".into()),
            run_url: None,
            since: Some("2026-11-26T12:00:00Z".into()),
        };
        assert_eq!(Hold::parse(&h.message("prod")), h);
        assert!(validate_text("reason", "a\nb", 10).is_err());
        assert!(validate_text("reason", " ", 10).is_err());
        assert!(validate_text("reason", "abcdefghijk", 10).is_err());
    }

    #[test]
    fn the_no_loop_rule() {
        let rec = |verification: Option<&str>, rollback_of: Option<char>| Record {
            environment: "prod".into(),
            commit: "c".repeat(40),
            run_id: "7".into(),
            rollback_of: rollback_of.map(|c| c.to_string().repeat(40)),
            verification: verification.map(str::to_string),
            verification_checks: Some(
                "http health: failed (status 500); github: passed (1 green)".into(),
            ),
            ..Record::default()
        };
        use AfterVerification::*;
        let rows: [(&str, Record, bool, AfterVerification); 6] = [
            ("passed", rec(Some("passed"), None), true, Nothing("the current deploy's verification is `passed`".into())),
            ("not verified", rec(None, None), true, Nothing("the current deploy carries no verification outcome".into())),
            ("failed, opted in", rec(Some("failed"), None), true, RollBack { failed: "http health: failed (status 500)".into() }),
            ("failed, not opted in", rec(Some("failed"), None), false, Stop { why: "ccccccc failed its verification (http health: failed (status 500)); `auto-rollback` is off for `prod`: roll back by hand (rollback.yml)".into() }),
            ("a failed rollback never rolls back again", rec(Some("failed"), Some('b')), true, Stop { why: "the rollback to ccccccc (from bbbbbbb) failed its verification (http health: failed (status 500)); rolling back again would loop, so nothing more is rolled back: a person must look".into() }),
            ("a passed rollback", rec(Some("passed"), Some('b')), true, Nothing("the current deploy's verification is `passed`".into())),
        ];
        for (name, r, auto, want) in rows {
            assert_eq!(after_verification(&r, auto), want, "{name}");
            // Decided from the trailers alone: the same through a tag message.
            assert_eq!(
                after_verification(&Record::parse(&r.message()), auto),
                want,
                "{name} (parsed)"
            );
        }
    }

    #[test]
    fn data_loss_reasons_are_one_recordable_line() {
        let ok = |v: &str| check_data_loss_reason("data-loss-reason", Some(v));
        assert_eq!(ok("  INC-7 ").unwrap().as_deref(), Some("INC-7"));
        assert_eq!(ok("   ").unwrap(), None);
        assert_eq!(
            check_data_loss_reason("data-loss-reason", None).unwrap(),
            None
        );
        for bad in ["a\nb", "a\rb", &"x".repeat(201)] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{bad:?}");
            assert_eq!(e.field.as_deref(), Some("data-loss-reason"));
        }
    }

    // A preview's records live under their own prefix: they never become the current deploy,
    // a history entry (so never a rollback target, never what promote reads), nor foreign
    // history warnings.
    #[test]
    fn previews_never_enter_the_environments_state() {
        let r = three_deploys(&[
            ("refs/tags/deploy/dev/preview/pr-12", 'f', '7'),
            ("refs/tags/deploy/dev/preview/pr-3", 'a', '8'),
            ("refs/tags/deploy/dev/preview/feature", 'b', '9'),
            ("refs/tags/deploy/dev/preview/pr-1/x", 'b', '9'),
        ]);
        let st = EnvState::from_refs("dev", &r);
        let plain = EnvState::from_refs("dev", &three_deploys(&[]));
        assert_eq!(
            st, plain,
            "preview refs change nothing in the environment's state"
        );
        assert_eq!(st.current_commit(), Some(oid('3')));
        assert!(st.last_deploy_of(oid('7')).is_none());
        let v = Verdicts::new();
        assert!(resolve(&st, &Target::Sha(oid('7')), &v).is_err());
        let (previews, foreign) = previews_from_refs("dev", &r);
        assert_eq!(
            previews
                .iter()
                .map(|p| (p.pr, p.tag.as_str(), p.commit))
                .collect::<Vec<_>>(),
            vec![
                (3, "deploy/dev/preview/pr-3", oid('8')),
                (12, "deploy/dev/preview/pr-12", oid('7')),
            ]
        );
        assert_eq!(
            foreign,
            vec![
                "refs/tags/deploy/dev/preview/feature".to_string(),
                "refs/tags/deploy/dev/preview/pr-1/x".to_string()
            ]
        );
        assert_eq!(preview_tag("dev", 12), "deploy/dev/preview/pr-12");
        assert_eq!(preview_ref("dev", 12), "refs/tags/deploy/dev/preview/pr-12");
        assert_eq!(preview_environment("dev", 12), "dev/pr-12");
        // A history-looking name under the preview prefix is no history entry either.
        assert!(parse_target("to", "dev", "deploy/dev/preview/pr-12").is_err());
    }

    #[test]
    fn the_workspace_scope_table() {
        use crate::exit::ExitClass::{self, Refused, Usage};
        let p = Workspace::Preview(12);
        let d = Workspace::Default;
        type Want = std::result::Result<Option<u64>, (ExitClass, &'static str)>;
        let cases: Vec<(Scope, &Workspace, Want)> = vec![
            (Scope::Environment, &d, Ok(None)),
            (Scope::AllPreviews, &d, Ok(None)),
            (Scope::Preview, &p, Ok(Some(12))),
            (
                Scope::Environment,
                &p,
                Err((Refused, "workspace `pr-12` refused: a preview never moves deploy/dev/current and never enters `deploy/dev/history/`")),
            ),
            (Scope::Preview, &d, Err((Usage, "needs the preview's workspace"))),
            (Scope::AllPreviews, &p, Err((Usage, "give no workspace"))),
        ];
        for (scope, ws, want) in cases {
            match (workspace_scope("dev", scope, ws), want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w),
                (Err(f), Err((c, needle))) => {
                    assert_eq!(f.class, c, "{f}");
                    assert!(f.message.contains(needle), "{f}");
                }
                (g, w) => panic!("{scope:?} {ws:?}: {g:?} vs {w:?}"),
            }
        }
    }

    #[test]
    fn preview_records_round_trip_and_neutralise_text() {
        let p = Preview {
            environment: "dev".into(),
            workspace: "pr-12".into(),
            pull_request: 12,
            commit: "7".repeat(40),
            opened: "2026-12-01T10:00:00Z".into(),
            updated: "2026-12-01T11:00:00Z".into(),
            url: Some("https://pr-12.dev.example.com\nActor: evil".into()),
            run_id: "42".into(),
            run_url: None,
            image: Some("r/app:7777777".into()),
        };
        let m = p.message();
        assert!(m.starts_with("preview dev/pr-12: 7777777\n"), "{m}");
        let back = Preview::parse(&m);
        assert_eq!(
            back.url.as_deref(),
            Some("https://pr-12.dev.example.com Actor: evil")
        );
        assert_eq!(
            Preview {
                url: p.url.clone(),
                ..back.clone()
            },
            p
        );
        assert_eq!(
            back.opened_at(),
            Some(time::macros::datetime!(2026-12-01 10:00 UTC))
        );
        assert_eq!(Preview::parse("junk").opened_at(), None);
    }

    #[test]
    fn the_sweep_table() {
        use time::macros::datetime;
        let now = datetime!(2026-12-08 12:00 UTC);
        let week = std::time::Duration::from_secs(7 * 86400);
        let fresh = Some(datetime!(2026-12-07 12:00 UTC));
        let old = Some(datetime!(2026-11-30 11:00 UTC));
        let cases = [
            (PrState::Open, fresh, None),
            (PrState::Open, None, None),
            (PrState::Open, Some(datetime!(2026-12-01 12:00 UTC)), None),
            (
                PrState::Open,
                old,
                Some(SweepReason::TooOld {
                    age_hours: 193,
                    max_hours: 168,
                }),
            ),
            (PrState::Closed, fresh, Some(SweepReason::Closed)),
            (PrState::Closed, None, Some(SweepReason::Closed)),
            (PrState::Missing, fresh, Some(SweepReason::Missing)),
        ];
        for (pr, opened, want) in cases {
            assert_eq!(
                sweep_verdict(pr, opened, now, week),
                want,
                "{pr:?} {opened:?}"
            );
        }
        assert_eq!(
            SweepReason::TooOld {
                age_hours: 193,
                max_hours: 168
            }
            .to_string(),
            "it is 193 h old, older than the maximum age of 168 h"
        );
    }
}
