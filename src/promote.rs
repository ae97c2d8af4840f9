//! Promotion, decided without a remote: which promotions the environments model allows
//! ([`resolve_pair`]), the input parsers, the names of promotion branches, the changelog, and
//! **the decision table**: [`decide`] turns the gathered [`Facts`] and the [`Rules`] of one run
//! into a [`Decision`]. Each rule is one small function below `decide`, called in the order the
//! rules apply (the first that fails wins); each [`Refusal`] carries what its message needs,
//! renders it (`Display`) and knows its exit class. A rule that needs a fact not gathered yet
//! answers [`Decision::Gather`] with the [`Need`]: the command gathers it and asks again, so a
//! fact that costs a call is only gathered when every earlier rule passed.
//!
//! The deploy-tag names and trailers come from [`crate::deploy`]; the I/O (git session, GitHub
//! API, runner) lives in `cmd::promote`.

use std::ops::ControlFlow;
use std::time::Duration;

use git2::Oid;

use crate::deploy::{self, Record};
use crate::envs::{Environment, Model};
use crate::exit::{ExitClass, Failure, Result};
use crate::git::CommitInfo;
use crate::github::{Approval, Checks};
use crate::runner::{markdown, single_line};
use crate::windows::{self, Gate, Shut, Windows};

/// The promotion pull request's head branch: `promote/<to>/<sha7>`.
pub fn pr_branch(to: &str, sha: &str) -> String {
    format!("promote/{to}/{}", &sha[..sha.len().min(7)])
}

/// Resolve and check `--from`/`--to` against the model (exit 2 on any violation): unknown
/// names, same environment, backwards, skipping a stage, or nothing after `from`.
pub fn resolve_pair<'m>(
    model: &'m Model,
    from: &str,
    to: Option<&str>,
) -> Result<(&'m Environment, &'m Environment)> {
    let f = model.get("from", from)?;
    let t = match to {
        Some(t) => model.get("to", t)?,
        None => model.next(from).ok_or_else(|| {
            Failure::usage(
                "to",
                format!(
                    "`{}` is the last environment (from {}); there is nothing to promote to",
                    f.name, model.source
                ),
            )
        })?,
    };
    let fi = model.index(&f.name).unwrap_or(0);
    let ti = model.index(&t.name).unwrap_or(0);
    if fi == ti {
        return Err(Failure::usage(
            "to",
            format!("`{}` is the same environment as `from`", t.name),
        ));
    }
    if ti < fi {
        return Err(Failure::usage(
            "to",
            format!(
                "promoting backwards from `{}` to `{}` is not allowed (to undo a deploy, roll back with tag-deploy resolve)",
                f.name, t.name
            ),
        ));
    }
    if ti > fi + 1 {
        let next = &model.environments()[fi + 1].name;
        return Err(Failure::usage(
            "to",
            format!(
                "promoting from `{}` to `{}` skips `{next}`; promote to `{next}` first",
                f.name, t.name
            ),
        ));
    }
    Ok((f, t))
}

/// The rule of the `min-soak` input: `90`, `90s`, `30m`, `2h`, `1d`, at most 30 days.
pub const SOAK: crate::validate::DurationRule = crate::validate::DurationRule {
    min_secs: 0,
    max_secs: 30 * 86400,
    days: true,
    rule: "like `90s`, `30m`, `2h` or `1d` (at most 30 days)",
};

/// Parse a soak time (see [`SOAK`]) with the one duration parser.
/// The rule that keeps previews out of promotions: promote reads `deploy/<from>/current`,
/// which no preview moves, and takes only the `default` workspace. A preview workspace is
/// exit 1 (refused; after the workspace rule of [`crate::envs::check_workspace`], so a bad
/// name is still exit 2 and a preview of an environment without previews names that rule).
pub fn never_a_preview(from: &crate::envs::Environment, workspace: &str) -> Result<()> {
    match crate::envs::check_workspace(from, "workspace", workspace)? {
        crate::envs::Workspace::Default => Ok(()),
        ws => Err(Failure::refused(format!(
            "workspace `{}` refused: promote never promotes a preview; it promotes {} (the deploy of `{}`, which no preview moves)",
            ws.name(),
            crate::deploy::current_tag(&from.name),
            from.name
        ))),
    }
}

pub fn parse_soak(v: &str) -> Result<Duration> {
    crate::validate::duration("min-soak", v, &SOAK)
}

/// A workflow file name for `dispatch-workflow`: `deploy.yml` (a file under
/// `.github/workflows/`, no path) or a numeric workflow id.
pub fn validate_workflow(v: &str) -> Result<()> {
    let ok = (v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() && v.len() <= 20)
        || ((v.ends_with(".yml") || v.ends_with(".yaml"))
            && v.len() <= 100
            && !v.starts_with('.')
            && !v.starts_with('-')
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            "dispatch-workflow",
            format!(
                "`{}` is not a workflow file name like `deploy.yml` (no directories) or a workflow id",
                single_line(v)
            ),
        ))
    }
}

/// What the changelog shows.
#[derive(Debug, Clone)]
pub struct Changelog<'a> {
    /// Source environment.
    pub from: &'a str,
    /// Target environment.
    pub to: &'a str,
    /// Target branch.
    pub to_branch: &'a str,
    /// Candidate commit.
    pub sha: &'a str,
    /// Commits going out, newest first.
    pub commits: &'a [CommitInfo],
    /// More commits than listed.
    pub truncated: bool,
    /// The source deploy's metadata (the trailers of `deploy/<from>/current`).
    pub deploy: &'a Record,
}

impl Changelog<'_> {
    /// Markdown (every untrusted field escaped and truncated): used as the PR body, the step
    /// summary and the `changelog` output file.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## Promote `{}` to `{}`\n\nFast-forwards `{}` to {} — the commit deployed in `{}` now.\n\n",
            self.from,
            self.to,
            self.to_branch,
            markdown::code(self.sha),
            self.from
        );
        if let Some(i) = &self.deploy.image {
            s.push_str(&format!("- Image: {}\n", markdown::code(i)));
        }
        if let Some(p) = &self.deploy.plan_digest {
            s.push_str(&format!("- Plan digest: {}\n", markdown::code(p)));
        }
        if let Some(u) = &self.deploy.run_url {
            s.push_str(&format!(
                "- Deployed by: {}\n",
                markdown::escape_max(u, 200)
            ));
        }
        s.push_str(&format!("\n### Commits ({})\n\n", self.commits.len()));
        s.push_str("| commit | author | summary |\n|---|---|---|\n");
        for c in self.commits {
            let id = c.id.to_string();
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                markdown::code(&id[..7]),
                markdown::escape_max(&c.author, 60),
                markdown::escape_max(&c.summary, 120)
            ));
        }
        if self.truncated {
            s.push_str("\n(older commits left out)\n");
        }
        s.push_str("\n<!-- gitops-actions:promote -->\n");
        s
    }
}

// ------------------------------------------------------------------ the decision table

/// How the target branch moves once every rule passed (the `mode` input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Push the target branch (compare-and-swap fast-forward).
    FastForward,
    /// Through a promotion pull request.
    PullRequest,
}

/// The rules of one promotion, from validated inputs.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Source environment.
    pub from: &'a Environment,
    /// Target environment.
    pub to: &'a Environment,
    /// `min-soak`: how long the candidate must have been deployed in the source.
    pub min_soak: Option<Duration>,
    /// `require-deployment-status`: the source's GitHub Deployment must be `success`.
    pub require_deployment_status: bool,
    /// `require-verification`: the source deploy must carry `Verification: passed` (default on
    /// when the source environment declares `verify:` checks).
    pub require_verification: bool,
    /// `dry-run`: decide, write the changelog, change nothing.
    pub dry_run: bool,
    /// `mode`.
    pub via: Via,
    /// The target's deploy windows and freezes (`windows:` in the model), if configured.
    pub windows: Option<&'a Windows>,
    /// `override-window-reason`: promote outside the target's windows (logged, recorded).
    pub override_window: Option<&'a str>,
    /// The target's `require-no-drift` (environments model): refuse while it has drift.
    pub require_no_drift: bool,
}

/// The target's open drift issues (`plan-gate drift`: the `gitops-drift` label and the
/// target's marker, by anyone: a forged one blocks, which fails closed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenDrift {
    /// Open drift issues of the target (and its stacks), by number.
    pub issues: Vec<u64>,
    /// The search could not finish (too many pages, a pagination link to another origin).
    pub incomplete: bool,
}

/// The commits on the target branch that the candidate lacks (newest first, at most 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacking {
    /// The commits listed.
    pub commits: Vec<CommitInfo>,
    /// More than listed.
    pub more: bool,
}

/// The deploy tag's time and the clock, for the soak rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployAge {
    /// Tagger time of `deploy/<from>/current` (Unix seconds); `None`: not an annotated tag
    /// with a time.
    pub deployed_at: Option<i64>,
    /// Now (Unix seconds).
    pub now: i64,
}

/// What is known about the remote. The first five fields come from one `ls-remote`; the others
/// are `None` until a rule asks for them ([`Need`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `deploy/<from>/hold` exists.
    pub from_held: bool,
    /// `deploy/<to>/hold` exists.
    pub to_held: bool,
    /// The object `deploy/<from>/current` points at (a tag object), if the tag exists.
    pub current: Option<Oid>,
    /// The source branch's tip, if the branch exists.
    pub source_tip: Option<Oid>,
    /// The target branch's tip, if the branch exists.
    pub target_tip: Option<Oid>,
    /// The commit `current` peels to (the candidate), once the history is fetched.
    pub candidate: Option<Oid>,
    /// Whether the candidate is on the source branch.
    pub on_source: Option<bool>,
    /// Whether the target branch already contains the candidate.
    pub in_target: Option<bool>,
    /// Whether the target tip is an ancestor of the candidate (a fast-forward is possible).
    pub target_behind: Option<bool>,
    /// The commits on the target that the candidate lacks.
    pub lacking: Option<Lacking>,
    /// The deploy tag's age.
    pub age: Option<DeployAge>,
    /// The latest status of the source's GitHub Deployment of the candidate (`Some(None)`: no
    /// deployment or no status).
    pub deployment_status: Option<Option<String>>,
    /// The clock, for the window rule (read once per evaluation).
    pub now: Option<jiff::Timestamp>,
    /// The source deploy's verification trailers and time (`require-verification`).
    pub verification: Option<Verified>,
    /// The target's open drift issues (asked only with `require-no-drift`).
    pub drift: Option<OpenDrift>,
}

/// What the source deploy (`deploy/<from>/current`) says about its verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Its `Verification` trailer (`passed`, `failed`), if any.
    pub outcome: Option<String>,
    /// The failing check, from `Verification-Checks`, when it failed.
    pub failed: Option<String>,
    /// Tagger time of the deploy tag (Unix seconds), if it is an annotated tag.
    pub since: Option<i64>,
}

impl Verified {
    /// From the deploy tag's trailers and time.
    pub fn from_record(r: &Record, since: Option<i64>) -> Verified {
        Verified {
            outcome: r.verification.clone(),
            failed: r.failed_check(),
            since,
        }
    }
}

/// A fact a rule needs that is not gathered yet, with what is needed to gather it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Fetch the history of the deploy tag and both tips, peel the tag: [`Facts::candidate`].
    Candidate {
        /// The deploy tag object.
        current: Oid,
        /// Source tip.
        source_tip: Oid,
        /// Target tip.
        target_tip: Oid,
    },
    /// Is `candidate` an ancestor of `source_tip`? [`Facts::on_source`].
    OnSource {
        /// The candidate.
        candidate: Oid,
        /// Source tip.
        source_tip: Oid,
    },
    /// Is `candidate` an ancestor of `target_tip`? [`Facts::in_target`].
    InTarget {
        /// The candidate.
        candidate: Oid,
        /// Target tip.
        target_tip: Oid,
    },
    /// Is `target_tip` an ancestor of `candidate`? [`Facts::target_behind`].
    TargetBehind {
        /// The candidate.
        candidate: Oid,
        /// Target tip.
        target_tip: Oid,
    },
    /// The commits `candidate..target_tip` (at most 20): [`Facts::lacking`].
    Lacking {
        /// The candidate.
        candidate: Oid,
        /// Target tip.
        target_tip: Oid,
    },
    /// The tagger time of the deploy tag, and the clock: [`Facts::age`].
    Age {
        /// The deploy tag object.
        current: Oid,
    },
    /// The clock: [`Facts::now`] (asked only when the target has deploy windows).
    Clock,
    /// The trailers and time of the deploy tag: [`Facts::verification`].
    Verification {
        /// The deploy tag object.
        current: Oid,
    },
    /// GitHub's latest status of the source's deployment of the candidate:
    /// [`Facts::deployment_status`]. Asked only when every git rule passed and this is no dry
    /// run, for the promotion that waits on it.
    DeploymentStatus(Promotion),
    /// The target's open drift issues: [`Facts::drift`] (asked only with `require-no-drift`,
    /// once every git rule and the window passed).
    DriftIssues,
}

/// Why a promotion does not happen. Each variant renders its one-line message (`Display`) and
/// maps to its exit class ([`Refusal::class`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The environment is on hold (a rollback happened there).
    Held {
        /// The environment on hold.
        env: String,
    },
    /// `deploy/<from>/current` does not exist.
    NothingDeployed {
        /// Source environment.
        env: String,
    },
    /// The source branch does not exist (runtime: the remote is not what the model says).
    NoSourceBranch {
        /// Source branch.
        branch: String,
    },
    /// The target branch does not exist (runtime).
    NoTargetBranch {
        /// Target branch.
        branch: String,
        /// Target environment.
        env: String,
    },
    /// The deployed commit is not on the source branch.
    NotOnSourceBranch {
        /// Source environment.
        env: String,
        /// Source branch.
        branch: String,
        /// The candidate.
        candidate: Oid,
    },
    /// The target has commits the candidate lacks: a fast-forward is impossible.
    Diverged {
        /// Source environment.
        from: String,
        /// Source branch.
        from_branch: String,
        /// Target branch.
        to_branch: String,
        /// The candidate.
        candidate: Oid,
        /// What the target has that the candidate lacks.
        lacking: Lacking,
    },
    /// `min-soak` is set, but the deploy tag carries no time.
    NoDeployTime {
        /// Source environment.
        env: String,
    },
    /// The candidate has not been deployed in the source for `min-soak` yet.
    NotSoaked {
        /// Source environment.
        env: String,
        /// The candidate.
        candidate: Oid,
        /// Seconds deployed.
        age: u64,
        /// Seconds asked for.
        min: u64,
    },
    /// `require-deployment-status`: the source's GitHub Deployment is not `success`.
    DeploymentNotSuccessful {
        /// Source environment.
        env: String,
        /// The candidate.
        candidate: Oid,
        /// The latest status (`None`: no deployment or no status).
        status: Option<String>,
    },
    /// `require-verification`: the source deploy did not pass `tag-deploy verify`.
    NotVerified {
        /// Source environment.
        env: String,
        /// The candidate.
        candidate: Oid,
        /// What the deploy says.
        seen: Verified,
    },
    /// The target is outside its deploy windows or frozen, and no override was given.
    OutsideWindow {
        /// Target environment.
        env: String,
        /// Why, since when, when it opens.
        shut: Box<Shut>,
    },
    /// `require-no-drift`: the target has open drift issues (or the search did not finish).
    Drifted {
        /// Target environment.
        env: String,
        /// What was found.
        drift: OpenDrift,
    },
    /// The promotion pull request's head branch exists on another commit.
    HeadBranchTaken {
        /// The head branch.
        head: String,
        /// Where it points.
        at: Oid,
        /// The candidate.
        candidate: Oid,
    },
}

impl Refusal {
    /// The exit class: 1 for a rule's refusal, 3 when the remote lacks a branch the model names.
    pub fn class(&self) -> ExitClass {
        match self {
            Refusal::NoSourceBranch { .. } | Refusal::NoTargetBranch { .. } => ExitClass::Runtime,
            _ => ExitClass::Refused,
        }
    }

    /// Untrusted multi-line details to show before the message (the divergent commits).
    pub fn details(&self) -> Option<String> {
        let Refusal::Diverged {
            from,
            to_branch,
            lacking,
            ..
        } = self
        else {
            return None;
        };
        let list: Vec<String> = lacking
            .commits
            .iter()
            .map(|ci| {
                format!(
                    "{} {} ({})",
                    short(ci.id),
                    single_line(&ci.summary),
                    single_line(&ci.author)
                )
            })
            .collect();
        Some(format!(
            "commits on `{to_branch}` that `{from}` lacks:\n{}{}",
            list.join("\n"),
            if lacking.more {
                "\n(more left out)"
            } else {
                ""
            }
        ))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Held { env } => write!(
                f,
                "`{env}` is on hold ({}); release it with `tag-deploy release --environment {env}` before promoting",
                deploy::hold_tag(env)
            ),
            Refusal::NothingDeployed { env } => write!(
                f,
                "nothing is deployed in `{env}`: {} does not exist (tag-deploy record creates it after a successful deploy)",
                deploy::current_tag(env)
            ),
            Refusal::NoSourceBranch { branch } => {
                write!(f, "the source branch `{branch}` does not exist on the remote")
            }
            Refusal::NoTargetBranch { branch, env } => write!(
                f,
                "the target branch `{branch}` does not exist on the remote (create it once from the first commit you want in `{env}`)"
            ),
            Refusal::NotOnSourceBranch {
                env,
                branch,
                candidate,
            } => write!(
                f,
                "the commit deployed in `{env}` ({}) is not on its branch `{branch}`; redeploy `{env}` from its branch first",
                short(*candidate)
            ),
            Refusal::Diverged {
                from_branch,
                to_branch,
                candidate,
                lacking,
                ..
            } => write!(
                f,
                "`{to_branch}` has {}{} commit(s) that the candidate {} lacks (first: {}); a fast-forward is impossible. Bring them into `{from_branch}` (merge or revert there), deploy, then promote",
                lacking.commits.len(),
                if lacking.more { "+" } else { "" },
                short(*candidate),
                lacking.commits.first().map(|c| short(c.id)).unwrap_or_default()
            ),
            Refusal::NoDeployTime { env } => write!(
                f,
                "`min-soak` is set but {} is not an annotated tag with a time",
                deploy::current_tag(env)
            ),
            Refusal::NotSoaked {
                env,
                candidate,
                age,
                min,
            } => write!(
                f,
                "{} has been deployed in `{env}` for {age} s; `min-soak` asks for {min} s (try again in {} s)",
                short(*candidate),
                min - age
            ),
            Refusal::DeploymentNotSuccessful {
                env,
                candidate,
                status,
            } => write!(
                f,
                "the GitHub Deployment of {} in `{env}` is {} (must be `success`)",
                short(*candidate),
                status
                    .as_ref()
                    .map(|s| format!("`{}`", single_line(s)))
                    .unwrap_or_else(|| "missing".into())
            ),
            Refusal::NotVerified {
                env,
                candidate,
                seen,
            } => {
                let since = seen
                    .since
                    .and_then(|t| jiff::Timestamp::from_second(t).ok())
                    .map(|t| format!(" since {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")))
                    .unwrap_or_default();
                let state = match (seen.outcome.as_deref(), &seen.failed) {
                    (Some(deploy::VERIFICATION_FAILED), Some(c)) => {
                        format!("failed its verification ({})", single_line(c))
                    }
                    (Some(o), _) => format!("has verification `{}`", single_line(o)),
                    (None, _) => "was not verified (no `Verification` trailer)".into(),
                };
                write!(
                    f,
                    "gate require-verification: the deploy of {} in `{env}`{since} {state}; satisfied by a deploy of `{env}` whose `tag-deploy verify` passes (or `require-verification: false`)",
                    short(*candidate)
                )
            }
            Refusal::OutsideWindow { env, shut } => write!(
                f,
                "`{env}` {shut}; to promote anyway, give {}",
                windows::OVERRIDE_INPUT
            ),
            Refusal::Drifted { env, drift } if drift.issues.is_empty() => write!(
                f,
                "`{env}` requires no drift (`require-no-drift`) and its drift issues could not all be searched (a pagination link to another origin or too many pages); refusing rather than guessing"
            ),
            Refusal::Drifted { env, drift } => write!(
                f,
                "`{env}` has changed outside Terraform (open drift issue {}) and requires no drift (`require-no-drift`): re-apply or reconcile the code, let the next drift run close the issue, then promote",
                drift
                    .issues
                    .iter()
                    .map(|n| format!("#{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refusal::HeadBranchTaken {
                head,
                at,
                candidate,
            } => write!(
                f,
                "branch `{head}` exists at {} instead of {}; delete it or let it be",
                short(*at),
                short(*candidate)
            ),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        let message = r.to_string();
        match r.class() {
            ExitClass::Runtime => Failure::runtime(message),
            _ => Failure::refused(message),
        }
    }
}

/// The commit to promote and the target tip it fast-forwards (the lease of the push).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// The deploy tag object (`deploy/<from>/current`) that names the candidate.
    pub deploy_tag: Oid,
    /// The candidate.
    pub candidate: Oid,
    /// The target tip now.
    pub target_tip: Oid,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A rule needs a fact not gathered yet: gather it and decide again.
    Gather(Need),
    /// Refuse, with the reason.
    Refuse(Refusal),
    /// The target already contains the candidate: nothing to do.
    UpToDate {
        /// The candidate.
        candidate: Oid,
        /// The target tip.
        target_tip: Oid,
    },
    /// Dry run: every rule passed; change nothing.
    WouldPromote(Promotion),
    /// Fast-forward the target branch.
    FastForward(Promotion),
    /// Open, update or complete the promotion pull request.
    PullRequest(Promotion),
}

/// The decision table: the rules in the order they apply; the first that does not pass decides.
pub fn decide(facts: &Facts, rules: &Rules) -> Decision {
    match decide_in_order(facts, rules) {
        ControlFlow::Continue(d) | ControlFlow::Break(d) => d,
    }
}

fn decide_in_order(f: &Facts, r: &Rules) -> Step<Decision> {
    not_held(f, r)?;
    let current = deployed(f, r)?;
    let (source_tip, target_tip) = branches_exist(f, r)?;
    let candidate = known(
        f.candidate,
        Need::Candidate {
            current,
            source_tip,
            target_tip,
        },
    )?;
    on_source_branch(f, r, candidate, source_tip)?;
    not_up_to_date(f, candidate, target_tip)?;
    no_divergence(f, r, candidate, target_tip)?;
    soaked(f, r, current, candidate)?;
    verified(f, r, current, candidate)?;
    within_window(f, r)?;
    no_drift(f, r)?;
    let p = Promotion {
        deploy_tag: current,
        candidate,
        target_tip,
    };
    if r.dry_run {
        return ControlFlow::Continue(Decision::WouldPromote(p));
    }
    deployment_succeeded(f, r, p)?;
    ControlFlow::Continue(match r.via {
        Via::FastForward => Decision::FastForward(p),
        Via::PullRequest => Decision::PullRequest(p),
    })
}

/// `Continue` with what a rule found, or `Break` with the decision it made.
type Step<T> = ControlFlow<Decision, T>;

fn known<T: Clone>(fact: Option<T>, need: Need) -> Step<T> {
    match fact {
        Some(v) => ControlFlow::Continue(v),
        None => ControlFlow::Break(Decision::Gather(need)),
    }
}

fn refuse<T>(r: Refusal) -> Step<T> {
    ControlFlow::Break(Decision::Refuse(r))
}

/// 1. A hold (set by a rollback) stops promotions out of and into an environment.
fn not_held(f: &Facts, r: &Rules) -> Step<()> {
    for (env, held) in [(r.from, f.from_held), (r.to, f.to_held)] {
        if held {
            return refuse(Refusal::Held {
                env: env.name.clone(),
            });
        }
    }
    ControlFlow::Continue(())
}

/// 2. The candidate is what the source environment runs now: `deploy/<from>/current` exists.
fn deployed(f: &Facts, r: &Rules) -> Step<Oid> {
    match f.current {
        Some(c) => ControlFlow::Continue(c),
        None => refuse(Refusal::NothingDeployed {
            env: r.from.name.clone(),
        }),
    }
}

/// Both branches exist on the remote (else a runtime failure: the model names a missing branch).
fn branches_exist(f: &Facts, r: &Rules) -> Step<(Oid, Oid)> {
    let Some(src) = f.source_tip else {
        return refuse(Refusal::NoSourceBranch {
            branch: r.from.branch.clone(),
        });
    };
    let Some(dst) = f.target_tip else {
        return refuse(Refusal::NoTargetBranch {
            branch: r.to.branch.clone(),
            env: r.to.name.clone(),
        });
    };
    ControlFlow::Continue((src, dst))
}

/// 3. The candidate must be on the source branch.
fn on_source_branch(f: &Facts, r: &Rules, candidate: Oid, source_tip: Oid) -> Step<()> {
    if known(
        f.on_source,
        Need::OnSource {
            candidate,
            source_tip,
        },
    )? {
        return ControlFlow::Continue(());
    }
    refuse(Refusal::NotOnSourceBranch {
        env: r.from.name.clone(),
        branch: r.from.branch.clone(),
        candidate,
    })
}

/// 4. Nothing to do when the target already contains the candidate.
fn not_up_to_date(f: &Facts, candidate: Oid, target_tip: Oid) -> Step<()> {
    if known(
        f.in_target,
        Need::InTarget {
            candidate,
            target_tip,
        },
    )? {
        return ControlFlow::Break(Decision::UpToDate {
            candidate,
            target_tip,
        });
    }
    ControlFlow::Continue(())
}

/// 5. Promotion refuses a target with commits the candidate lacks (only fast-forwards).
fn no_divergence(f: &Facts, r: &Rules, candidate: Oid, target_tip: Oid) -> Step<()> {
    if known(
        f.target_behind,
        Need::TargetBehind {
            candidate,
            target_tip,
        },
    )? {
        return ControlFlow::Continue(());
    }
    let lacking = known(
        f.lacking.clone(),
        Need::Lacking {
            candidate,
            target_tip,
        },
    )?;
    refuse(Refusal::Diverged {
        from: r.from.name.clone(),
        from_branch: r.from.branch.clone(),
        to_branch: r.to.branch.clone(),
        candidate,
        lacking,
    })
}

/// 6. `min-soak`: the candidate has been deployed in the source long enough (deploy tag time).
fn soaked(f: &Facts, r: &Rules, current: Oid, candidate: Oid) -> Step<()> {
    let Some(min) = r.min_soak else {
        return ControlFlow::Continue(());
    };
    let age = known(f.age, Need::Age { current })?;
    let Some(at) = age.deployed_at else {
        return refuse(Refusal::NoDeployTime {
            env: r.from.name.clone(),
        });
    };
    let secs = age.now.saturating_sub(at).max(0) as u64;
    if secs < min.as_secs() {
        return refuse(Refusal::NotSoaked {
            env: r.from.name.clone(),
            candidate,
            age: secs,
            min: min.as_secs(),
        });
    }
    ControlFlow::Continue(())
}

/// 7. `require-verification`: the source deploy passed its verification checks (its
///    `Verification: passed` trailer, written by `tag-deploy record` from `tag-deploy verify`).
fn verified(f: &Facts, r: &Rules, current: Oid, candidate: Oid) -> Step<()> {
    if !r.require_verification {
        return ControlFlow::Continue(());
    }
    let seen = known(f.verification.clone(), Need::Verification { current })?;
    if seen.outcome.as_deref() == Some(deploy::VERIFICATION_PASSED) {
        return ControlFlow::Continue(());
    }
    refuse(Refusal::NotVerified {
        env: r.from.name.clone(),
        candidate,
        seen,
    })
}

/// 8. Deploy windows: the target may change now (inside a window, outside every freeze),
///    unless `override-window-reason` is given (the command logs it: [`window_overridden`]).
fn within_window(f: &Facts, r: &Rules) -> Step<()> {
    let Some(w) = r.windows else {
        return ControlFlow::Continue(());
    };
    let now = known(f.now, Need::Clock)?;
    match windows::gate(Some(w), now, r.override_window) {
        Gate::Shut(shut) => refuse(Refusal::OutsideWindow {
            env: r.to.name.clone(),
            shut: Box::new(shut),
        }),
        Gate::Open | Gate::Overridden(..) => ControlFlow::Continue(()),
    }
}

/// `require-no-drift`: the target has no open drift issue (a search that did not finish
/// refuses too). Asked before the dry-run answer: a dry run says what a promotion would do.
fn no_drift(f: &Facts, r: &Rules) -> Step<()> {
    if !r.require_no_drift {
        return ControlFlow::Continue(());
    }
    let drift = known(f.drift.clone(), Need::DriftIssues)?;
    if drift.issues.is_empty() && !drift.incomplete {
        return ControlFlow::Continue(());
    }
    refuse(Refusal::Drifted {
        env: r.to.name.clone(),
        drift,
    })
}

/// The window an `override-window-reason` overrode, with the reason: what the command logs
/// when the decision went ahead outside the target's windows.
pub fn window_overridden<'a>(f: &Facts, r: &Rules<'a>) -> Option<(Shut, &'a str)> {
    match windows::gate(r.windows, f.now?, r.override_window) {
        Gate::Overridden(shut, reason) => Some((shut, reason)),
        _ => None,
    }
}

/// 9. `require-deployment-status`: GitHub's own record of the source deploy is `success`.
fn deployment_succeeded(f: &Facts, r: &Rules, p: Promotion) -> Step<()> {
    if !r.require_deployment_status {
        return ControlFlow::Continue(());
    }
    let candidate = p.candidate;
    let status = known(f.deployment_status.clone(), Need::DeploymentStatus(p))?;
    if status.as_deref() == Some("success") {
        return ControlFlow::Continue(());
    }
    refuse(Refusal::DeploymentNotSuccessful {
        env: r.from.name.clone(),
        candidate,
        status,
    })
}

/// What to do with the promotion pull request's head branch before opening the pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadBranch {
    /// It does not exist: push it (must not exist).
    Push,
    /// It already holds the candidate.
    Present,
}

/// Pull-request mode, no open pull request yet: the head branch must not exist, or already hold
/// the candidate (`seen`: where the remote has it).
pub fn head_branch(
    head: &str,
    seen: Option<Oid>,
    candidate: Oid,
) -> std::result::Result<HeadBranch, Refusal> {
    match seen {
        None => Ok(HeadBranch::Push),
        Some(at) if at == candidate => Ok(HeadBranch::Present),
        Some(at) => Err(Refusal::HeadBranchTaken {
            head: head.to_string(),
            at,
            candidate,
        }),
    }
}

/// Pull-request mode, open pull request: `None` when it may be completed (approved on the head
/// commit, checks passed, not a draft), else why it waits.
pub fn pull_request_waits(approval: &Approval, checks: &Checks, draft: bool) -> Option<String> {
    let ready = matches!(approval, Approval::Approved(_))
        && matches!(checks, Checks::Passed { .. })
        && !draft;
    if ready {
        return None;
    }
    Some(match (approval, checks) {
        (Approval::ChangesRequested(u), _) => {
            format!("changes requested by {}", single_line(&u.join(", ")))
        }
        (Approval::Pending, _) => "waiting for an approval on the head commit".into(),
        (_, Checks::Failed(n)) => format!("checks failed: {}", single_line(&n.join(", "))),
        (_, Checks::Pending(n)) => format!("checks running: {}", single_line(&n.join(", "))),
        _ => "the pull request is a draft".into(),
    })
}

/// The abbreviated commit messages show.
pub fn short(o: Oid) -> String {
    o.to_string()[..7].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::from_str(&c.to_string().repeat(40)).unwrap()
    }

    fn commit(c: char) -> CommitInfo {
        CommitInfo {
            id: oid(c),
            summary: "fix".into(),
            author: "a".into(),
            time: 0,
        }
    }

    /// Every fact gathered, every rule passes: deploy tag `a` names candidate `c` on source tip
    /// `s`; target tip `d` is behind it; deployed two hours ago; GitHub says `success`.
    fn ready() -> Facts {
        Facts {
            from_held: false,
            to_held: false,
            current: Some(oid('a')),
            source_tip: Some(oid('5')),
            target_tip: Some(oid('d')),
            candidate: Some(oid('c')),
            on_source: Some(true),
            in_target: Some(false),
            target_behind: Some(true),
            lacking: None,
            age: Some(DeployAge {
                deployed_at: Some(1_000_000),
                now: 1_007_200,
            }),
            deployment_status: Some(Some("success".into())),
            now: Some(at("2027-01-04T10:00:00+01:00")),
            verification: Some(Verified {
                outcome: Some("passed".into()),
                failed: None,
                since: Some(1_000_000),
            }),
            drift: Some(OpenDrift::default()),
        }
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// Europe/Berlin office hours, frozen over the year end.
    static YEAR_END: std::sync::LazyLock<Windows> = std::sync::LazyLock::new(|| {
        Windows::new(&windows::Config {
            time_zone: "Europe/Berlin".into(),
            allow: Some(vec!["Mon-Thu 09:00-16:00".into()]),
            freeze: vec![windows::FreezeConfig {
                from: "2026-12-20T00:00".into(),
                to: "2027-01-04T00:00".into(),
                reason: "year-end freeze".into(),
            }],
        })
        .unwrap()
    });

    fn promotion() -> Promotion {
        Promotion {
            deploy_tag: oid('a'),
            candidate: oid('c'),
            target_tip: oid('d'),
        }
    }

    enum Want {
        Is(Decision),
        Refused(ExitClass, &'static str),
    }

    // Every refusal and every outcome of the decision alone (no git, no network).
    #[test]
    fn a_preview_is_never_promoted() {
        use crate::exit::ExitClass::{Refused, Usage};
        let m = Model::default();
        for (env, ws, want) in [
            ("dev", "default", None),
            ("staging", "default", None),
            (
                "dev",
                "pr-3",
                Some((Refused, "promote never promotes a preview")),
            ),
            (
                "staging",
                "pr-3",
                Some((Refused, "`staging` is not marked `previews: true`")),
            ),
            ("dev", "pr-03", Some((Usage, "is not a workspace name"))),
        ] {
            let e = m.get("from", env).unwrap();
            match (never_a_preview(e, ws), want) {
                (Ok(()), None) => {}
                (Err(f), Some((class, needle))) => {
                    assert_eq!(f.class, class, "{f}");
                    assert!(f.message.contains(needle), "{f}");
                }
                (got, want) => panic!("{env} {ws}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn the_decision_table() {
        let m = Model::default();
        let (from, to) = resolve_pair(&m, "dev", None).unwrap();
        let base = Rules {
            from,
            to,
            min_soak: Some(Duration::from_secs(3600)),
            require_deployment_status: true,
            dry_run: false,
            via: Via::FastForward,
            windows: None,
            require_verification: false,
            override_window: None,
            require_no_drift: false,
        };
        type Case = (&'static str, fn(&mut Facts), fn(&mut Rules), Want);
        use ExitClass::{Refused, Runtime};
        let cases: Vec<Case> = vec![
            ("ready", |_| {}, |_| {}, Want::Is(Decision::FastForward(promotion()))),
            (
                "pull request",
                |_| {},
                |r| r.via = Via::PullRequest,
                Want::Is(Decision::PullRequest(promotion())),
            ),
            (
                "dry run asks GitHub nothing",
                |f| f.deployment_status = None,
                |r| r.dry_run = true,
                Want::Is(Decision::WouldPromote(promotion())),
            ),
            (
                "source on hold",
                |f| f.from_held = true,
                |_| {},
                Want::Refused(Refused, "`dev` is on hold (deploy/dev/hold); release it with `tag-deploy release --environment dev` before promoting"),
            ),
            (
                "target on hold",
                |f| f.to_held = true,
                |_| {},
                Want::Refused(Refused, "`staging` is on hold (deploy/staging/hold)"),
            ),
            (
                "the source's hold is named first",
                |f| (f.from_held, f.to_held, f.current) = (true, true, None),
                |_| {},
                Want::Refused(Refused, "`dev` is on hold"),
            ),
            (
                "nothing deployed",
                |f| f.current = None,
                |_| {},
                Want::Refused(Refused, "nothing is deployed in `dev`: deploy/dev/current does not exist (tag-deploy record creates it after a successful deploy)"),
            ),
            (
                "no source branch",
                |f| f.source_tip = None,
                |_| {},
                Want::Refused(Runtime, "the source branch `dev` does not exist on the remote"),
            ),
            (
                "no target branch",
                |f| f.target_tip = None,
                |_| {},
                Want::Refused(Runtime, "the target branch `main` does not exist on the remote (create it once from the first commit you want in `staging`)"),
            ),
            (
                "not on the source branch",
                |f| f.on_source = Some(false),
                |_| {},
                Want::Refused(Refused, "the commit deployed in `dev` (ccccccc) is not on its branch `dev`; redeploy `dev` from its branch first"),
            ),
            (
                "already there",
                |f| f.in_target = Some(true),
                |_| {},
                Want::Is(Decision::UpToDate {
                    candidate: oid('c'),
                    target_tip: oid('d'),
                }),
            ),
            (
                "already there wins over a failing soak",
                |f| (f.in_target, f.age) = (Some(true), None),
                |_| {},
                Want::Is(Decision::UpToDate {
                    candidate: oid('c'),
                    target_tip: oid('d'),
                }),
            ),
            (
                "the target has commits the candidate lacks",
                |f| {
                    f.target_behind = Some(false);
                    f.lacking = Some(Lacking {
                        commits: vec![commit('e'), commit('f')],
                        more: true,
                    });
                },
                |_| {},
                Want::Refused(Refused, "`main` has 2+ commit(s) that the candidate ccccccc lacks (first: eeeeeee); a fast-forward is impossible. Bring them into `dev` (merge or revert there), deploy, then promote"),
            ),
            (
                "min-soak without a tag time",
                |f| f.age = Some(DeployAge { deployed_at: None, now: 5 }),
                |_| {},
                Want::Refused(Refused, "`min-soak` is set but deploy/dev/current is not an annotated tag with a time"),
            ),
            (
                "not soaked",
                |f| f.age = Some(DeployAge { deployed_at: Some(100), now: 160 }),
                |_| {},
                Want::Refused(Refused, "ccccccc has been deployed in `dev` for 60 s; `min-soak` asks for 3600 s (try again in 3540 s)"),
            ),
            (
                "a tag time in the future counts as 0 s",
                |f| f.age = Some(DeployAge { deployed_at: Some(200), now: 100 }),
                |_| {},
                Want::Refused(Refused, "for 0 s; `min-soak` asks for 3600 s"),
            ),
            (
                "no min-soak: the tag time is not asked",
                |f| f.age = None,
                |r| r.min_soak = None,
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "no GitHub Deployment",
                |f| f.deployment_status = Some(None),
                |_| {},
                Want::Refused(Refused, "the GitHub Deployment of ccccccc in `dev` is missing (must be `success`)"),
            ),
            (
                "a failed GitHub Deployment (untrusted status neutralised)",
                |f| f.deployment_status = Some(Some("failure\n::error::x".into())),
                |_| {},
                Want::Refused(Refused, "is `failure\\n::error::x` (must be `success`)"),
            ),
            (
                "the target is frozen: which gate, since when, when it opens, how to override",
                |f| f.now = Some(at("2026-12-31T10:00:00+01:00")),
                |r| r.windows = Some(&YEAR_END),
                Want::Refused(Refused, "`staging` is frozen since 2026-12-20 00:00 Europe/Berlin (year-end freeze); next window opens Mon 2027-01-04 09:00 Europe/Berlin; to promote anyway, give override-window-reason"),
            ),
            (
                "the target is outside its windows",
                |f| f.now = Some(at("2027-01-08T10:00:00+01:00")),
                |r| r.windows = Some(&YEAR_END),
                Want::Refused(Refused, "`staging` is outside its deploy windows (Mon-Thu 09:00-16:00, Europe/Berlin) since Thu 2027-01-07 16:00 Europe/Berlin; next window opens Mon 2027-01-11 09:00 Europe/Berlin; to promote anyway"),
            ),
            (
                "a dry run outside the windows is refused as the real run would be",
                |f| (f.now, f.deployment_status) = (Some(at("2026-12-31T10:00:00+01:00")), None),
                |r| (r.windows, r.dry_run) = (Some(&*YEAR_END), true),
                Want::Refused(Refused, "`staging` is frozen since 2026-12-20 00:00"),
            ),
            (
                "an override reason promotes during a freeze",
                |f| f.now = Some(at("2026-12-31T10:00:00+01:00")),
                |r| (r.windows, r.override_window) = (Some(&*YEAR_END), Some("INC-42 hotfix")),
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "inside the window",
                |_| {},
                |r| r.windows = Some(&YEAR_END),
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "a failing soak is named before the window",
                |f| {
                    f.now = Some(at("2026-12-31T10:00:00+01:00"));
                    f.age = Some(DeployAge { deployed_at: Some(100), now: 160 });
                },
                |r| r.windows = Some(&YEAR_END),
                Want::Refused(Refused, "has been deployed in `dev` for 60 s"),
            ),
            (
                "no windows: the clock is not asked",
                |f| f.now = None,
                |_| {},
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "deployment status not required: not asked",
                |f| f.deployment_status = None,
                |r| r.require_deployment_status = false,
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "verification failed",
                |f| {
                    f.verification = Some(Verified {
                        outcome: Some("failed".into()),
                        failed: Some("http health: failed (status 500)".into()),
                        since: Some(1_000_000),
                    })
                },
                |r| r.require_verification = true,
                Want::Refused(Refused, "gate require-verification: the deploy of ccccccc in `dev` since 1970-01-12T13:46:40Z failed its verification (http health: failed (status 500)); satisfied by a deploy of `dev` whose `tag-deploy verify` passes (or `require-verification: false`)"),
            ),
            (
                "never verified",
                |f| f.verification = Some(Verified::default()),
                |r| r.require_verification = true,
                Want::Refused(Refused, "gate require-verification: the deploy of ccccccc in `dev` was not verified (no `Verification` trailer); satisfied by"),
            ),
            (
                "verification refused before the windows are asked",
                |f| {
                    f.verification = Some(Verified::default());
                    f.now = None;
                },
                |r| {
                    r.require_verification = true;
                    r.windows = Some(&YEAR_END);
                },
                Want::Refused(Refused, "gate require-verification"),
            ),
            (
                "verification passed",
                |_| {},
                |r| r.require_verification = true,
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "verification not required: not asked",
                |f| f.verification = None,
                |r| r.require_verification = false,
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "drift not required: not asked",
                |f| f.drift = None,
                |_| {},
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "require-no-drift: the open drift issues are asked for",
                |f| f.drift = None,
                |r| r.require_no_drift = true,
                Want::Is(Decision::Gather(Need::DriftIssues)),
            ),
            (
                "require-no-drift and no drift",
                |_| {},
                |r| r.require_no_drift = true,
                Want::Is(Decision::FastForward(promotion())),
            ),
            (
                "require-no-drift and an open drift issue",
                |f| {
                    f.drift = Some(OpenDrift {
                        issues: vec![12],
                        incomplete: false,
                    })
                },
                |r| r.require_no_drift = true,
                Want::Refused(Refused, "`staging` has changed outside Terraform (open drift issue #12)"),
            ),
            (
                "require-no-drift: a dry run says it too",
                |f| {
                    f.drift = Some(OpenDrift {
                        issues: vec![12, 14],
                        incomplete: false,
                    })
                },
                |r| {
                    r.require_no_drift = true;
                    r.dry_run = true
                },
                Want::Refused(Refused, "open drift issue #12, #14"),
            ),
            (
                "require-no-drift and a search that did not finish: fail closed",
                |f| {
                    f.drift = Some(OpenDrift {
                        issues: vec![],
                        incomplete: true,
                    })
                },
                |r| r.require_no_drift = true,
                Want::Refused(Refused, "could not all be searched"),
            ),
            (
                "require-no-drift is not asked before a failing window",
                |f| {
                    f.drift = None;
                    f.now = Some(at("2027-01-03T10:00:00+01:00"))
                },
                |r| {
                    r.require_no_drift = true;
                    r.windows = Some(&YEAR_END);
                    r.override_window = None;
                },
                Want::Refused(Refused, "to promote anyway"),
            ),
        ];
        for (what, facts, rules, want) in cases {
            let mut f = ready();
            facts(&mut f);
            let mut r = base;
            rules(&mut r);
            let got = decide(&f, &r);
            match (want, got) {
                (Want::Is(w), g) => assert_eq!(g, w, "{what}"),
                (Want::Refused(class, needle), Decision::Refuse(refusal)) => {
                    assert_eq!(refusal.class(), class, "{what}");
                    let failure = Failure::from(refusal.clone());
                    assert_eq!(failure.class, class, "{what}");
                    assert!(failure.message.contains(needle), "{what}: {failure}");
                }
                (_, g) => panic!("{what}: got {g:?}"),
            }
        }
    }

    // The divergent commits are listed (untrusted text neutralised) before the refusal.
    #[test]
    fn divergence_lists_the_commits() {
        let mut c = commit('e');
        c.summary = "evil\n::error::x".into();
        let r = Refusal::Diverged {
            from: "dev".into(),
            from_branch: "dev".into(),
            to_branch: "main".into(),
            candidate: oid('c'),
            lacking: Lacking {
                commits: vec![c],
                more: false,
            },
        };
        assert_eq!(
            r.details().unwrap(),
            "commits on `main` that `dev` lacks:\neeeeeee evil\\n::error::x (a)"
        );
        assert!(Refusal::NoDeployTime { env: "dev".into() }
            .details()
            .is_none());
    }

    // Each fact is asked only when every earlier rule passed, in the order the rules apply.
    #[test]
    fn facts_are_asked_for_in_rule_order() {
        let m = Model::default();
        let (from, to) = resolve_pair(&m, "dev", None).unwrap();
        let rules = Rules {
            from,
            to,
            min_soak: Some(Duration::from_secs(60)),
            require_deployment_status: true,
            require_verification: true,
            dry_run: false,
            via: Via::FastForward,
            windows: Some(&YEAR_END),
            override_window: None,
            require_no_drift: true,
        };
        let full = ready();
        let mut f = Facts {
            candidate: None,
            on_source: None,
            in_target: None,
            target_behind: None,
            age: None,
            deployment_status: None,
            now: None,
            verification: None,
            drift: None,
            ..full.clone()
        };
        let (t, s, d, c) = (oid('a'), oid('5'), oid('d'), oid('c'));
        let mut asked = Vec::new();
        loop {
            match decide(&f, &rules) {
                Decision::Gather(need) => {
                    asked.push(need);
                    match need {
                        Need::Candidate { .. } => f.candidate = full.candidate,
                        Need::OnSource { .. } => f.on_source = full.on_source,
                        Need::InTarget { .. } => f.in_target = full.in_target,
                        Need::TargetBehind { .. } => f.target_behind = full.target_behind,
                        Need::Lacking { .. } => panic!("not diverged"),
                        Need::Age { .. } => f.age = full.age,
                        Need::Clock => f.now = full.now,
                        Need::Verification { .. } => f.verification = full.verification.clone(),
                        Need::DeploymentStatus(_) => {
                            f.deployment_status = full.deployment_status.clone()
                        }
                        Need::DriftIssues => f.drift = full.drift.clone(),
                    }
                }
                d => {
                    assert_eq!(d, Decision::FastForward(promotion()));
                    break;
                }
            }
        }
        assert_eq!(
            asked,
            vec![
                Need::Candidate {
                    current: t,
                    source_tip: s,
                    target_tip: d
                },
                Need::OnSource {
                    candidate: c,
                    source_tip: s
                },
                Need::InTarget {
                    candidate: c,
                    target_tip: d
                },
                Need::TargetBehind {
                    candidate: c,
                    target_tip: d
                },
                Need::Age { current: t },
                Need::Verification { current: t },
                Need::Clock,
                Need::DriftIssues,
                Need::DeploymentStatus(promotion()),
            ]
        );
        // The commits the candidate lacks are asked only for a divergence.
        let mut diverged = full.clone();
        diverged.target_behind = Some(false);
        assert_eq!(
            decide(&diverged, &rules),
            Decision::Gather(Need::Lacking {
                candidate: c,
                target_tip: d
            })
        );
        // A refusal from ls-remote alone asks for nothing.
        let bare = Facts {
            from_held: true,
            ..Facts::default()
        };
        assert!(matches!(
            decide(&bare, &rules),
            Decision::Refuse(Refusal::Held { .. })
        ));
    }

    // The command logs the window an override overrode, and nothing when none was shut.
    #[test]
    fn an_override_is_reported_only_when_it_overrode() {
        let m = Model::default();
        let (from, to) = resolve_pair(&m, "dev", None).unwrap();
        let rules = Rules {
            from,
            to,
            min_soak: None,
            require_deployment_status: false,
            require_verification: false,
            dry_run: false,
            via: Via::FastForward,
            windows: Some(&YEAR_END),
            override_window: Some("INC-42"),
            require_no_drift: false,
        };
        let mut f = ready();
        assert_eq!(window_overridden(&f, &rules), None);
        f.now = Some(at("2026-12-31T10:00:00+01:00"));
        let (shut, reason) = window_overridden(&f, &rules).unwrap();
        assert_eq!(reason, "INC-42");
        assert!(shut
            .to_string()
            .starts_with("is frozen since 2026-12-20 00:00"));
        let none = Rules {
            override_window: None,
            ..rules
        };
        assert_eq!(window_overridden(&f, &none), None);
    }

    #[test]
    fn pull_request_rules() {
        let (c, x) = (oid('c'), oid('b'));
        assert_eq!(head_branch("h", None, c), Ok(HeadBranch::Push));
        assert_eq!(head_branch("h", Some(c), c), Ok(HeadBranch::Present));
        let e = head_branch("promote/staging/ccccccc", Some(x), c).unwrap_err();
        assert_eq!(
            Failure::from(e).to_string(),
            "branch `promote/staging/ccccccc` exists at bbbbbbb instead of ccccccc; delete it or let it be"
        );
        let ok = Approval::Approved(vec!["a".into()]);
        let green = Checks::Passed { none: false };
        let cases: Vec<(Approval, Checks, bool, Option<&str>)> = vec![
            (ok.clone(), green.clone(), false, None),
            (ok.clone(), Checks::Passed { none: true }, false, None),
            (
                ok.clone(),
                green.clone(),
                true,
                Some("the pull request is a draft"),
            ),
            (
                Approval::Pending,
                green.clone(),
                false,
                Some("waiting for an approval on the head commit"),
            ),
            (
                Approval::ChangesRequested(vec!["b".into(), "c\nd".into()]),
                Checks::Failed(vec!["x".into()]),
                false,
                Some("changes requested by b, c\\nd"),
            ),
            (
                ok.clone(),
                Checks::Failed(vec!["lint".into(), "test".into()]),
                false,
                Some("checks failed: lint, test"),
            ),
            (
                ok.clone(),
                Checks::Pending(vec!["build".into()]),
                false,
                Some("checks running: build"),
            ),
        ];
        for (a, ch, draft, want) in cases {
            assert_eq!(
                pull_request_waits(&a, &ch, draft).as_deref(),
                want,
                "{a:?} {ch:?} {draft}"
            );
        }
    }

    #[test]
    fn pairs_follow_the_model() {
        let m = Model::default();
        let (f, t) = resolve_pair(&m, "dev", None).unwrap();
        assert_eq!((f.name.as_str(), t.name.as_str()), ("dev", "staging"));
        let (_, t) = resolve_pair(&m, "staging", Some("prod")).unwrap();
        assert_eq!(t.branch, "prod");
        for (from, to, needle) in [
            ("staging", Some("dev"), "backwards"),
            ("dev", Some("prod"), "skips `staging`"),
            ("dev", Some("dev"), "same environment"),
            ("prod", None, "last environment"),
            ("Prod", None, "did you mean"),
            ("dev", Some("../prod"), "not a configured environment"),
            ("", None, "empty"),
        ] {
            let e = resolve_pair(&m, from, to).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{from} {to:?}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn soak_and_workflow_inputs() {
        assert_eq!(parse_soak("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_soak("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_soak("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_soak("1d").unwrap(), Duration::from_secs(86400));
        for bad in ["", "m", "1w", "-1", "1.5h", "31d", "1 h", "99999999"] {
            assert!(parse_soak(bad).is_err(), "{bad}");
        }
        validate_workflow("deploy.yml").unwrap();
        validate_workflow("123456").unwrap();
        for bad in [
            "../deploy.yml",
            ".github/workflows/deploy.yml",
            "deploy",
            "-x.yml",
            "",
        ] {
            assert!(validate_workflow(bad).is_err(), "{bad}");
        }
        assert_eq!(pr_branch("prod", &"ab".repeat(20)), "promote/prod/abababa");
    }

    #[test]
    fn deploy_trailers_are_read() {
        let d = Record::parse(
            "deploy dev: 0123456\n\nRecorded by gitops-actions tag-deploy.\n\nEnvironment: dev\nImage: r/app@sha256:00\nPlan-Digest: sha256:11\n",
        );
        assert_eq!(d.image.as_deref(), Some("r/app@sha256:00"));
        assert_eq!(d.plan_digest.as_deref(), Some("sha256:11"));
    }
}
