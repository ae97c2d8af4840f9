//! `plan-gate`: Terraform plan summary, policy gate, step summary and one upserted PR comment.
//!
//! `plan-gate [gate] --plan plan.json ...` (the default command) reads `terraform show -json`
//! output, counts it as Terraform does, applies the policy, writes outputs, the step summary and
//! the PR comment, and exits 0 (pass), 1 (gate failed) or 2 (not a plan we can trust).
//! `plan-gate verify --plan plan.json --digest sha256:...` recomputes `plan_digest` and exits 1
//! when it differs (apply what was reviewed, nothing else); with `--reviewed-changes` (the plan
//! job's `changes` manifest) it prints what differs, by address and action.
//! `plan-gate record --record DIR` (the recorder, `workflow_run` of a pull request's plan, never
//! that pull request's code) posts the plan records a pull request's plan job left
//! (`--record-file`) as the commit status `gitops/plan/<env>[/<stack>]` on the pull request's
//! head, the commit and pull request taken from the event (`plan::record`).
//! `plan-gate drift --plan refresh-only.json [--normal-plan plan.json] --environment prod`
//! classifies what changed outside Terraform (`plan::drift`), writes the drift report (the `json`
//! output), the step summary, and opens, updates or closes the environment's one drift issue.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use super::{BinaryDoc, OutputDoc};
use crate::cli::inputs::GithubTarget;
use crate::envs::Model;
use crate::exit::{Failure, Result};
use crate::plan::manifest::{self, Manifest};
use crate::plan::review;
use crate::plan::{comment, Limits, PlanError};
use crate::plan_report::{self as render, Report, Verdict};
use crate::policy::rego::RegoPolicies;
use crate::policy::{self, Context, Policy};
use crate::runner::{single_line, Level, Runner};

/// How the report is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// The Markdown report (as in the step summary).
    Markdown,
    /// One JSON object with every figure, the verdict and the violations.
    Json,
}

/// Whether to write the PR comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CommentMode {
    /// Create or update the one comment for this PR and environment/stack.
    #[default]
    Upsert,
    /// Do not comment.
    Off,
}

/// Terraform plan summary, policy gate and PR comment.
#[derive(Debug, Parser)]
#[command(
    name = "plan-gate",
    version,
    about = "Terraform plan summary, policy gate and PR comment"
)]
pub struct Args {
    /// `gate` (the default when none is given), `verify` or `drift`.
    #[command(subcommand)]
    pub command: Option<Verb>,
}

/// The verbs. The first is the default (see [`crate::cli::default_verb`]).
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Summarise, apply the policy, write summary/comment/outputs (default).
    Gate(Box<GateArgs>),
    /// Recompute the plan digest and compare it with `--digest`.
    Verify(Box<VerifyArgs>),
    /// Drift: classify a refresh-only plan (and a normal plan), report, sync the drift issue.
    Drift(Box<DriftArgs>),
    /// Post a pull request plan's record as the commit status on its head (the recorder).
    Record(Box<RecordArgs>),
}

/// The plan file, the limits it is read with and the report format (both verbs).
#[derive(Debug, Clone, clap::Args)]
pub struct PlanFile {
    /// The plan as JSON: `terraform show -json tfplan > plan.json`.
    #[arg(long, env = "GITOPS_PLAN")]
    pub plan: PathBuf,
    /// Largest plan file accepted, in bytes (checked before reading).
    #[arg(long, env = "GITOPS_MAX_PLAN_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_plan_bytes: u64,
    /// Deepest JSON nesting accepted (at most 128).
    #[arg(long, env = "GITOPS_MAX_DEPTH", default_value_t = 100)]
    pub max_depth: usize,
    /// Report format on stdout. `json`: stdout is exactly one line of JSON, in Actions too; masks,
    /// annotations and log lines go to stderr (the object is also the `json` output).
    #[arg(long, value_enum, env = "GITOPS_FORMAT", default_value_t = Format::Text)]
    pub format: Format,
}

impl PlanFile {
    fn limits(&self) -> Result<Limits> {
        if self.max_depth == 0 || self.max_depth > 128 {
            return Err(Failure::usage("max-depth", "must be between 1 and 128"));
        }
        if self.max_plan_bytes == 0 {
            return Err(Failure::usage("max-plan-bytes", "must be positive"));
        }
        Ok(Limits {
            max_bytes: self.max_plan_bytes,
            max_depth: self.max_depth,
        })
    }
}

/// The environment (and stack) a plan is for (`gate` and `drift`).
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Target environment (validated against the environments model).
    #[arg(long, env = "GITOPS_ENVIRONMENT")]
    pub environment: Option<String>,
    /// Environments model file (default `.github/gitops.yml` if present, else dev/staging/prod).
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Stack name, when one environment has several Terraform roots (one PR comment or drift
    /// issue per stack).
    #[arg(long, env = "GITOPS_STACK")]
    pub stack: Option<String>,
}

impl Target {
    /// The environment's entry in the model (`None` when not given); the stack name checked.
    fn resolve(&self) -> Result<Option<crate::envs::Environment>> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let model = Model::load(&cwd, self.config.as_deref())?;
        let env = match self.environment.as_deref() {
            Some(e) => Some(model.get("environment", e)?.clone()),
            None => None,
        };
        if let Some(s) = &self.stack {
            name_like("stack", s)?;
        }
        Ok(env)
    }

    /// The environment (`None` when not given) and whether it is production; the stack checked.
    fn check(&self) -> Result<(Option<String>, bool)> {
        Ok(match self.resolve()? {
            Some(env) => (Some(env.name), env.production),
            None => (None, false),
        })
    }
}

/// `gate`: summary, policy, outputs, step summary and PR comment.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    #[command(flatten)]
    pub plan: PlanFile,
    /// Policy file (YAML); without it only the default rules apply (`protect-production`).
    #[arg(long, env = "GITOPS_POLICY")]
    pub policy: Option<PathBuf>,
    /// Rego policies, conftest style (`package main`; `deny`, `violation`, `warn` rules): `.rego`
    /// files or directories, comma-separated. Evaluated in-process; see docs/plan-gate.md.
    #[arg(long, env = "GITOPS_POLICY_REGO", value_delimiter = ',')]
    pub policy_rego: Vec<PathBuf>,
    /// Time limit for evaluating the Rego policies, in seconds (exceeding it is exit 2).
    #[arg(long, env = "GITOPS_POLICY_REGO_TIMEOUT", default_value_t = 60)]
    pub policy_rego_timeout: u64,
    /// The environment and stack.
    #[command(flatten)]
    pub target: Target,
    /// Override a policy rule by id (repeatable or comma-separated); needs `--allow-reason`.
    #[arg(long, env = "GITOPS_ALLOW", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Why the override is needed (logged, shown in the summary and comment).
    #[arg(long, env = "GITOPS_ALLOW_REASON")]
    pub allow_reason: Option<String>,
    /// The plan is a rollback's: `protect-stateful` applies whatever the environment.
    #[arg(long, env = "GITOPS_ROLLBACK")]
    pub rollback: bool,
    /// Allow destroying or replacing stateful resources (overrides `protect-stateful`); needs
    /// `--data-loss-reason`, which is logged, shown in the summary and set as an output for the
    /// deploy tag's `Data-Loss-Allowed` trailer.
    #[arg(long, env = "GITOPS_ALLOW_DATA_LOSS")]
    pub allow_data_loss: bool,
    /// Why data may be lost (one line, at most 200 characters; kept in the deploy tag).
    #[arg(long, env = "GITOPS_DATA_LOSS_REASON")]
    pub data_loss_reason: Option<String>,
    /// `upsert` the PR comment (default) or `off`.
    #[arg(long, value_enum, env = "GITOPS_COMMENT", default_value_t = CommentMode::Upsert)]
    pub comment: CommentMode,
    /// Where the PR comment goes: token, repository, API URL.
    #[command(flatten)]
    pub github: GithubTarget,
    /// The login whose plan comment may be edited: a GitHub App's `<slug>[bot]` when the token
    /// is an App's (default: the token's user from `GET /user`, else `github-actions[bot]`).
    /// Comments by anyone else are never edited.
    #[arg(long, env = "GITOPS_COMMENT_AUTHOR")]
    pub comment_author: Option<String>,
    /// Pull request number (default: the preview's (`workspace` `pr-<n>`), else from the
    /// triggering event).
    #[arg(long, env = "GITOPS_PR_NUMBER")]
    pub pr_number: Option<u64>,
    /// Record the plan on this commit (full SHA): a commit status `gitops/plan/<env>[/<stack>]`
    /// with the digest (needs `environment`, a token with `statuses: write` and the repository).
    #[arg(long, env = "GITOPS_STATUS_SHA")]
    pub status_sha: Option<String>,
    /// The Terraform workspace the plan is for: `default`, or a preview's `pr-<n>` (only for an
    /// environment that allows previews; the report and comment say it is a preview).
    #[arg(long, env = "GITOPS_WORKSPACE", default_value = "default")]
    pub workspace: String,
    /// Write the plan's value-free record (digest, change manifest, environment, stack,
    /// `base-sha`) to this file, for the recorder (plan-record.yml) to post on the pull
    /// request's head: a pull request's plan job holds no `statuses: write`. Needs `environment`
    /// and `base-sha`.
    #[arg(long, env = "GITOPS_RECORD_FILE")]
    pub record_file: Option<PathBuf>,
    /// With `record-file`: the target's current deploy the plan is made against (tag-deploy
    /// list's `sha`, a 40-hex-digit commit id), or `none` when nothing is deployed yet.
    #[arg(long, env = "GITOPS_BASE_SHA")]
    pub base_sha: Option<String>,
}

/// Whether `verify` requires the plan recorded on the promotion pull request's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Requirement {
    /// Required for production environments (environments model) promoted into through pull
    /// requests (`promotion-mode: pull-request`), else not.
    #[default]
    Auto,
    /// Required.
    True,
    /// Not required.
    False,
}

/// `verify`: the plan's digest against the reviewed one.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub plan: PlanFile,
    /// The digest that was reviewed (`sha256:<64 hex>`).
    #[arg(long, env = "GITOPS_DIGEST")]
    pub digest: Option<String>,
    /// Instead of `digest`: read the reviewed digest from the commit status
    /// `gitops/plan/<env>/<stack>` that THIS run's plan job recorded on `sha` (its target is this
    /// run): how a matrix apply job gets its stack's digest (matrix jobs pass no per-entry
    /// outputs). Needs `environment`, `stack`, a token with `statuses: read` and the run's URL.
    #[arg(long, env = "GITOPS_DIGEST_FROM_STATUS")]
    pub digest_from_status: bool,
    /// The reviewed plan's change manifest (the plan job's `changes` output): on a mismatch,
    /// what differs is printed by address and action (it holds no values).
    #[arg(long, env = "GITOPS_REVIEWED_CHANGES")]
    pub reviewed_changes: Option<String>,
    /// `auto` (on for a production environment with `promotion-mode: pull-request`), `true` or
    /// `false`: the plan must also be the one the promotion pull request's plan recorded on
    /// `sha`, made against the target's current deploy (`deployed-sha`); a record made against
    /// another deploy is not trusted (exit 1: a new pull-request plan is needed).
    #[arg(long, value_enum, env = "GITOPS_REQUIRE_REVIEWED_PLAN", default_value_t = Requirement::Auto)]
    pub require_reviewed_plan: Requirement,
    /// How the environment is promoted into (promote's `mode`, e.g. `vars.PROMOTE_MODE`): with
    /// `fast-forward` there is no promotion pull request, so `auto` does not require one.
    #[arg(long, value_enum, env = "GITOPS_PROMOTION_MODE", default_value_t = super::promote::Mode::FastForward)]
    pub promotion_mode: super::promote::Mode,
    /// Target environment (validated against the environments model; names the status context).
    #[arg(long, env = "GITOPS_ENVIRONMENT")]
    pub environment: Option<String>,
    /// Environments model file (default `.github/gitops.yml` if present, else dev/staging/prod).
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Stack name (the status context `gitops/plan/<env>/<stack>`).
    #[arg(long, env = "GITOPS_STACK")]
    pub stack: Option<String>,
    /// The commit being applied (full SHA; default `GITHUB_SHA`): where the reviewed plan is recorded.
    #[arg(long, env = "GITOPS_SHA")]
    pub sha: Option<String>,
    /// The environment's deployed commit (`deploy/<env>/current`: tag-deploy list's `sha`).
    /// `verify`: the target's current deploy, 40 hex digits or `none` when nothing is deployed
    /// (required when `require-reviewed-plan` applies). `drift`: the deployed commit that was
    /// planned (full SHA), named in the report and the issue.
    #[arg(long, env = "GITOPS_DEPLOYED_SHA")]
    pub deployed_sha: Option<String>,
    /// Where the commit statuses are read: token, repository, API URL.
    #[command(flatten)]
    pub github: GithubTarget,
}

/// `record`: the recorder. Posts the records a pull request's plan run left as commit statuses
/// on that pull request's head; the commit, the pull request and its base come from the
/// `workflow_run` event (`GITHUB_EVENT_PATH`), never from the records.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The plan run's record file, or a directory of them (the downloaded artifacts: at most 64
    /// `.json` files, at most one directory level down; links are refused).
    #[arg(long, env = "GITOPS_RECORD")]
    pub record: PathBuf,
    /// Environments model file (default `.github/gitops.yml` if present, else dev/staging/prod):
    /// the default branch's, which maps each environment to the branch its pull requests target.
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the statuses go: token (`statuses: write`), repository, API URL.
    #[command(flatten)]
    pub github: GithubTarget,
}

/// Whether to sync the drift issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum IssueMode {
    /// Open, update in place or close the environment's one drift issue.
    #[default]
    Sync,
    /// Do not touch issues.
    Off,
}

/// `drift`: what changed outside Terraform in one environment (and stack).
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    /// `plan` is the refresh-only plan: `terraform plan -refresh-only -out=tfplan` and
    /// `terraform show -json tfplan`.
    #[command(flatten)]
    pub plan: PlanFile,
    /// A normal plan of the same commit (tells "code not yet deployed" from "reality changed").
    #[arg(long, env = "GITOPS_NORMAL_PLAN")]
    pub normal_plan: Option<PathBuf>,
    /// The environment (required) and stack.
    #[command(flatten)]
    pub target: Target,
    /// The environment's deployed commit (`deploy/<env>/current`: tag-deploy list's `sha`).
    /// `verify`: the target's current deploy, 40 hex digits or `none` when nothing is deployed
    /// (required when `require-reviewed-plan` applies). `drift`: the deployed commit that was
    /// planned (full SHA), named in the report and the issue.
    #[arg(long, env = "GITOPS_DEPLOYED_SHA")]
    pub deployed_sha: Option<String>,
    /// `sync` the environment's drift issue (default) or `off`.
    #[arg(long, value_enum, env = "GITOPS_ISSUE", default_value_t = IssueMode::Sync)]
    pub issue: IssueMode,
    /// Where the issue goes: token (`issues: write`), repository, API URL.
    #[command(flatten)]
    pub github: GithubTarget,
    /// The login whose drift issue may be edited: a GitHub App's `<slug>[bot]` when the token
    /// is an App's (default: the token's user from `GET /user`, else `github-actions[bot]`).
    #[arg(long, env = "GITOPS_ISSUE_AUTHOR")]
    pub issue_author: Option<String>,
}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "verdict",
        description: "`pass` or `fail`",
    },
    OutputDoc {
        name: "add",
        description: "Managed resources to create (replacements included)",
    },
    OutputDoc {
        name: "change",
        description: "Managed resources to update in place",
    },
    OutputDoc {
        name: "destroy",
        description: "Managed resources to destroy (replacements included)",
    },
    OutputDoc {
        name: "replace",
        description: "Managed resources to replace",
    },
    OutputDoc {
        name: "import",
        description: "Resources to import",
    },
    OutputDoc {
        name: "move",
        description: "Resources moved by `moved` blocks",
    },
    OutputDoc {
        name: "forget",
        description: "Resources removed from state without being destroyed",
    },
    OutputDoc {
        name: "read",
        description: "Data sources read during apply",
    },
    OutputDoc {
        name: "no-op",
        description: "Entries without change",
    },
    OutputDoc {
        name: "drift",
        description: "Resources changed outside Terraform",
    },
    OutputDoc {
        name: "output-changes",
        description: "Root outputs that change",
    },
    OutputDoc {
        name: "has-changes",
        description: "`true` when applying would change anything",
    },
    OutputDoc {
        name: "errored",
        description: "`true` when Terraform reported errors while planning",
    },
    OutputDoc {
        name: "applyable",
        description: "Terraform's `applyable` flag (empty when absent)",
    },
    OutputDoc {
        name: "violations",
        description: "Policy violations as a JSON array",
    },
    OutputDoc {
        name: "plan-digest",
        description: "Canonical digest of the plan's changes (`sha256:...`)",
    },
    OutputDoc {
        name: "data-loss-reason",
        description: "The `data-loss-reason` when `allow-data-loss` was given (for tag-deploy's `data-loss-reason`), else empty",
    },
    OutputDoc {
        name: "changes",
        description: "Change manifest: one line of JSON, per entry its address, actions and a short salted hash, no values (for `verify --reviewed-changes`)",
    },
    OutputDoc {
        name: "differences",
        description: "`verify`: what differs from the reviewed plan, one line per entry (empty when it verified)",
    },
    OutputDoc {
        name: "reviewed-plan",
        description: "`verify`: `matches` (the promotion pull request's recorded plan, made against the current deploy) or `not-required`",
    },
    OutputDoc {
        name: "recorded",
        description: "`record`: the status contexts posted on the pull request's head, comma-separated",
    },
    OutputDoc {
        name: "json",
        description: "The report as one line of JSON (what `--format json` prints on stdout)",
    },
    OutputDoc {
        name: "comment-url",
        description: "URL of the upserted PR comment (empty when skipped)",
    },
    OutputDoc {
        name: "drift-status",
        description: "`drift`: `drifted` when anything changed outside Terraform, else `clean`",
    },
    OutputDoc {
        name: "reality-changed",
        description: "`drift`: resources changed outside Terraform",
    },
    OutputDoc {
        name: "code-not-deployed",
        description: "`drift`: resources the deployed code would change (empty without `normal-plan`)",
    },
    OutputDoc {
        name: "drift-issue-url",
        description: "`drift`: URL of the environment's drift issue (opened, updated or closed; empty when none)",
    },
];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "plan-gate",
        description: "Terraform plan summary, policy gate and PR comment",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

struct Checked {
    limits: Limits,
    policy: Policy,
    rego: Option<RegoPolicies>,
    environment: Option<String>,
    production: bool,
    stack: Option<String>,
    allow: Vec<String>,
    allow_reason: Option<String>,
    rollback: bool,
    data_loss_reason: Option<String>,
    comment: Option<CommentTarget>,
    comment_skip: Option<String>,
    status: Option<StatusTarget>,
    /// Where the plan record goes, and the deploy it is made against.
    record: Option<(PathBuf, review::Base)>,
    /// The preview workspace, if the plan is a preview's.
    workspace: Option<String>,
}

/// Where the plan's commit status goes (validated by `check`).
struct StatusTarget {
    api: crate::github::Config,
    sha: String,
    context: String,
}

/// This run's URL on GitHub, when the runner says which run this is.
fn run_url(runner: &Runner) -> Option<String> {
    match (
        runner.var("GITHUB_SERVER_URL"),
        runner.var("GITHUB_REPOSITORY"),
        runner.var("GITHUB_RUN_ID"),
    ) {
        (Some(s), Some(r), Some(id)) if id.bytes().all(|b| b.is_ascii_digit()) => {
            url::Url::parse(&format!("{s}/{r}/actions/runs/{id}"))
                .ok()
                .map(|u| u.to_string())
        }
        _ => None,
    }
}

/// The API a command that must reach GitHub talks to; exit 2 naming what is missing.
fn github_api(runner: &Runner, g: &GithubTarget, why: &str) -> Result<crate::github::Config> {
    let github = g.resolve(runner)?;
    if github.token.is_none() {
        return Err(Failure::usage(
            "github-token",
            format!("{why} needs a token"),
        ));
    }
    let api = github.api.ok_or_else(|| {
        Failure::usage(
            "repository",
            format!("{why} needs the repository (`GITHUB_REPOSITORY`)"),
        )
    })?;
    crate::github::validate_repository("repository", &api.repository)?;
    Ok(api)
}

/// Where the PR comment goes (gathered and validated by `check`, before any network call).
#[derive(Debug, Clone)]
struct CommentTarget {
    /// The API, repository and token (`pull-requests: write` or `issues: write`).
    api: crate::github::Config,
    /// Pull request number.
    pr: u64,
    /// Environment/stack key: one comment per key.
    key: String,
    /// The login whose comments may be edited (`comment-author`); `None`: ask the API.
    author: Option<String>,
}

fn name_like(field: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !v.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            field,
            format!(
                "`{}` must be 1-64 of letters, digits, `-_./`",
                single_line(v)
            ),
        ))
    }
}

/// A GitHub login (1-39 letters, digits and inner single hyphens), or an App's `<slug>[bot]`.
/// (Shared with tag-deploy's preview comment.)
pub(crate) fn comment_author(v: &str) -> Result<String> {
    login("comment-author", v)
}

/// A GitHub login (1-39 letters, digits and inner single hyphens), or an App's `<slug>[bot]`.
fn login(field: &str, v: &str) -> Result<String> {
    let name = v.strip_suffix("[bot]").unwrap_or(v);
    let ok = !name.is_empty()
        && name.len() <= 39
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(v.to_string())
    } else {
        Err(Failure::usage(
            field,
            format!(
                "`{}` is not a GitHub login (1-39 letters, digits, single inner `-`) or an App's `<slug>[bot]`",
                single_line(v)
            ),
        ))
    }
}

/// Validate every input of `gate` before reading the plan or touching the network.
fn check(runner: &Runner, a: &GateArgs) -> Result<Checked> {
    let limits = a.plan.limits()?;
    let (environment, production, workspace) = match a.target.resolve()? {
        Some(env) => {
            let ws = crate::envs::check_workspace(&env, "workspace", &a.workspace)?;
            (Some(env.name), env.production, ws)
        }
        None => match crate::envs::Workspace::parse("workspace", &a.workspace)? {
            crate::envs::Workspace::Default => (None, false, crate::envs::Workspace::Default),
            _ => {
                return Err(Failure::usage(
                    "workspace",
                    "a preview workspace needs `environment` (the environment it previews; the rule of which allow previews is checked against it)",
                ))
            }
        },
    };
    let preview_pr = workspace.pr();
    if let (Some(n), Some(given)) = (preview_pr, a.pr_number) {
        if n != given {
            return Err(Failure::usage(
                "pr-number",
                format!(
                    "is {given}, but workspace `{}` is the preview of pull request {n}",
                    workspace.name()
                ),
            ));
        }
    }
    let policy = match &a.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default_policy(),
    };
    let rego_paths: Vec<PathBuf> = a
        .policy_rego
        .iter()
        .filter(|p| !p.as_os_str().is_empty())
        .cloned()
        .collect();
    if !(1..=3600).contains(&a.policy_rego_timeout) {
        return Err(Failure::usage(
            "policy-rego-timeout",
            "must be between 1 and 3600 seconds",
        ));
    }
    let rego = match rego_paths.is_empty() {
        true => None,
        false => Some(RegoPolicies::load(
            &rego_paths,
            std::time::Duration::from_secs(a.policy_rego_timeout),
        )?),
    };
    let mut known: Vec<String> = policy::rule_ids().iter().map(|s| s.to_string()).collect();
    if let Some(r) = &rego {
        known.extend(r.rule_ids());
    }
    for id in &a.allow {
        if id == render::DATA_LOSS_RULE {
            return Err(Failure::usage(
                "allow",
                format!(
                    "`{id}` is overridden only with `allow-data-loss` and a `data-loss-reason` (it is kept in the deploy tag)"
                ),
            ));
        }
        if !known.iter().any(|k| k == id) {
            return Err(Failure::usage(
                "allow",
                format!(
                    "`{}` is not a rule id; known: {}",
                    single_line(id),
                    known.join(", ")
                ),
            ));
        }
    }
    let allow_reason = a
        .allow_reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if !a.allow.is_empty() && allow_reason.is_none() {
        return Err(Failure::usage(
            "allow-reason",
            "an override (`allow`) needs a reason; it is logged and shown in the summary",
        ));
    }
    if allow_reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(Failure::usage("allow-reason", "at most 500 characters"));
    }
    let data_loss_reason =
        crate::deploy::check_data_loss_reason("data-loss-reason", a.data_loss_reason.as_deref())?;
    if a.allow_data_loss && data_loss_reason.is_none() {
        return Err(Failure::usage(
            "data-loss-reason",
            "`allow-data-loss` needs a reason: it is logged, shown in the summary and kept in the deploy tag",
        ));
    }
    if !a.allow_data_loss && data_loss_reason.is_some() {
        return Err(Failure::usage(
            "data-loss-reason",
            "a reason without `allow-data-loss: true` allows nothing: give both, or neither",
        ));
    }
    // The PR comment: everything it needs is checked here, before any network call.
    let mut comment_skip = None;
    let mut target = None;
    let author = a
        .comment_author
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(comment_author)
        .transpose()?;
    if a.comment == CommentMode::Upsert {
        let github = a.github.resolve(runner)?;
        let pr = match a.pr_number.or(preview_pr) {
            Some(0) => return Err(Failure::usage("pr-number", "must be a positive number")),
            Some(n) => Some(n),
            None => runner
                .var("GITHUB_EVENT_PATH")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| comment::pr_from_event(&t)),
        };
        match (github.token, pr) {
            (None, _) => comment_skip = Some("no GitHub token was given".to_string()),
            (_, None) => comment_skip = Some("this run is not for a pull request".to_string()),
            (Some(_), Some(pr)) => match github.api {
                None => {
                    comment_skip = Some("no repository (`GITHUB_REPOSITORY`) is known".to_string())
                }
                Some(api) => {
                    crate::github::validate_repository("repository", &api.repository)?;
                    let mut key = match (&environment, &a.target.stack) {
                        (Some(e), Some(s)) => format!("{e}/{s}"),
                        (Some(e), None) => e.clone(),
                        (None, Some(s)) => format!("-/{s}"),
                        (None, None) => "default".to_string(),
                    };
                    // A preview's plans get their own comment, never the environment's.
                    if let Some(n) = preview_pr {
                        key.push_str(&format!("/preview/pr-{n}"));
                    }
                    target = Some(CommentTarget {
                        api,
                        pr,
                        key,
                        author,
                    });
                }
            },
        }
    }
    let status = match a.status_sha.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(sha) => {
            crate::validate::full_sha("status-sha", sha)?;
            let env = environment.as_deref().ok_or_else(|| {
                Failure::usage(
                    "environment",
                    "`status-sha` records the plan of an environment: give `environment`",
                )
            })?;
            Some(StatusTarget {
                api: github_api(runner, &a.github, "the commit status (`status-sha`)")?,
                sha: sha.to_string(),
                context: review::context(env, a.target.stack.as_deref()),
            })
        }
    };
    let record = match a.record_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        None => None,
        Some(path) => {
            if environment.is_none() {
                return Err(Failure::usage(
                    "environment",
                    "`record-file` records the plan of an environment: give `environment`",
                ));
            }
            let given = a.base_sha.as_deref().map(str::trim).unwrap_or("");
            let base = review::Base::parse(given).ok_or_else(|| {
                Failure::usage(
                    "base-sha",
                    "with `record-file`, give the target's current deploy the plan is made against: a 40-hex-digit commit id (tag-deploy list's `sha`), or `none` when nothing is deployed",
                )
            })?;
            Some((path.clone(), base))
        }
    };
    Ok(Checked {
        status,
        record,
        limits,
        policy,
        rego,
        environment,
        production,
        stack: a.target.stack.clone(),
        allow: a.allow.clone(),
        allow_reason,
        rollback: a.rollback,
        data_loss_reason,
        comment: target,
        comment_skip,
        workspace: preview_pr.map(|_| workspace.name()),
    })
}

/// What `drift` needs, validated before any plan is read or any call is made.
struct DriftChecked {
    limits: Limits,
    place: crate::plan::drift::Place,
    issue: Option<crate::github::Config>,
    author: Option<String>,
}

fn check_drift(runner: &Runner, a: &DriftArgs) -> Result<DriftChecked> {
    let limits = a.plan.limits()?;
    let (environment, _) = a.target.check()?;
    let environment = environment.ok_or_else(|| {
        Failure::usage(
            "environment",
            "`drift` needs the environment whose deployed commit was planned",
        )
    })?;
    if let Some(p) = &a.normal_plan {
        if !p.is_file() {
            return Err(Failure::usage(
                "normal-plan",
                format!("`{}` is not a file", single_line(&p.display().to_string())),
            ));
        }
    }
    let sha = a.deployed_sha.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = sha {
        crate::validate::full_sha("deployed-sha", s)?;
    }
    let author = a
        .issue_author
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| login("issue-author", v))
        .transpose()?;
    let issue = match a.issue {
        IssueMode::Off => None,
        IssueMode::Sync => {
            let github = a.github.resolve(runner)?;
            let why = "`issue: sync` needs the GitHub API: give `github-token` and `repository` (or run in Actions), or set `issue: off`";
            if github.token.is_none() {
                return Err(Failure::usage(github.token_source, why));
            }
            let api = github
                .api
                .ok_or_else(|| Failure::usage("repository", why))?;
            crate::github::validate_repository("repository", &api.repository)?;
            Some(api)
        }
    };
    Ok(DriftChecked {
        limits,
        place: crate::plan::drift::Place {
            environment,
            stack: a.target.stack.clone(),
            sha: sha.map(str::to_string),
            run_url: run_url(runner),
        },
        issue,
        author,
    })
}

/// The record files under `path` (a file, or a directory with files at most one level down),
/// in path order; exit 2 for a link, another kind of file, too many or too large files.
fn record_files(path: &std::path::Path) -> Result<Vec<PathBuf>> {
    let bad = |why: String| Failure::usage("record", why);
    let meta = std::fs::symlink_metadata(path).map_err(|_| {
        bad(format!(
            "`{}` does not exist",
            single_line(&path.display().to_string())
        ))
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(bad("is a link or not a regular file or directory".into()));
    }
    let mut files = Vec::new();
    let mut dirs = vec![(path.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Failure::runtime(format!("reading the plan records: {e}")))?;
        for e in entries {
            let e = e.map_err(|e| Failure::runtime(format!("reading the plan records: {e}")))?;
            let p = e.path();
            let name = single_line(&e.file_name().to_string_lossy());
            let t = e
                .file_type()
                .map_err(|e| Failure::runtime(format!("reading the plan records: {e}")))?;
            if t.is_dir() && depth == 0 {
                dirs.push((p, 1));
            } else if t.is_file() && p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            } else {
                return Err(bad(format!(
                    "holds `{name}`, which is not a `.json` record file (or is a link, or too deep): a plan run leaves nothing else"
                )));
            }
            if files.len() > crate::plan::record::MAX_FILES {
                return Err(bad(format!(
                    "holds more than {} record files",
                    crate::plan::record::MAX_FILES
                )));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `record`: post the records of a pull request's plan run on its head. Everything is checked
/// (inputs, the event, every record) before the first call; then all records are posted.
fn record(runner: &Runner, a: &RecordArgs) -> Result<()> {
    use crate::plan::record::{self as rec, PlanRun, Record};
    let event = runner.var("GITHUB_EVENT_NAME").unwrap_or_default();
    if event != "workflow_run" {
        return Err(Failure::usage_general(format!(
            "`record` runs on `workflow_run` (the completed plan run), not on `{}`: the commit and pull request come from that event",
            single_line(event)
        )));
    }
    let payload = runner
        .var("GITHUB_EVENT_PATH")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .ok_or_else(|| {
            Failure::usage_general("the event payload (`GITHUB_EVENT_PATH`) cannot be read")
        })?;
    let run = PlanRun::from_event(&payload)
        .map_err(|e| Failure::usage_general(format!("the `workflow_run` event {e}")))?;
    let api = github_api(runner, &a.github, "`record`")?;
    runner.mask(&api.token);
    // The run first: a fork's (or any other run's that is not recorded) records are not read.
    if let Err(why) = rec::check_run(&run, &api.repository) {
        runner.set_output("recorded", "")?;
        return Err(Failure::refused(why.to_string()));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let model = Model::load(&cwd, a.config.as_deref())?;
    let mut records = Vec::new();
    for f in record_files(&a.record)? {
        let shown = single_line(
            &f.strip_prefix(&a.record)
                .unwrap_or(&f)
                .display()
                .to_string(),
        );
        let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(u64::MAX);
        if len > rec::MAX_BYTES {
            return Err(Failure::usage(
                "record",
                format!("`{shown}` is larger than {} bytes", rec::MAX_BYTES),
            ));
        }
        let text = std::fs::read_to_string(&f)
            .map_err(|_| Failure::usage("record", format!("`{shown}` is not UTF-8 text")))?;
        let r = Record::parse(&text)
            .map_err(|e| Failure::usage("record", format!("the plan record `{shown}` {e}")))?;
        records.push(r);
    }
    let branch_of = |env: &str| {
        model
            .environments()
            .iter()
            .find(|e| e.name == env)
            .map(|e| e.branch.clone())
    };
    let posts = match rec::decide(&run, &api.repository, &records, branch_of) {
        Ok(p) => p,
        Err(why) => {
            runner.set_output("recorded", "")?;
            return Err(Failure::refused(why.to_string()));
        }
    };
    let server = runner
        .var("GITHUB_SERVER_URL")
        .unwrap_or("https://github.com");
    let plan_run = url::Url::parse(&format!(
        "{server}/{}/actions/runs/{}",
        api.repository, run.id
    ))
    .ok()
    .map(|u| u.to_string());
    let gh = crate::github::Blocking::open(&api, runner)?;
    let mut done = Vec::new();
    for p in &posts {
        gh.block(gh.client.create_commit_status(
            &p.sha,
            "success",
            &p.context,
            &p.description,
            plan_run.as_deref(),
        ))
        .map_err(Failure::from)?;
        runner.info(&format!(
            "recorded on {} (pull request #{}): commit status {} = {}",
            p.sha, p.pr, p.context, p.description
        ));
        done.push(p.context.clone());
    }
    runner.set_output("recorded", &done.join(","))?;
    if runner.has_step_summary() {
        let mut md = String::from("### The pull request's plan, recorded on its head\n\n");
        for p in &posts {
            md.push_str(&format!(
                "- {} on {} (pull request #{}): {}\n",
                crate::runner::markdown::code(&p.context),
                crate::runner::markdown::code(&p.sha),
                p.pr,
                crate::runner::markdown::code(&p.description)
            ));
        }
        runner.summary(&md)?;
    }
    Ok(())
}

/// `drift`: classify, report (outputs, stdout, step summary), sync the drift issue. Exit 0 with
/// the report whether or not there is drift; 3 when the issue could not be synced (promotion
/// may read it).
fn drift(runner: &Runner, a: &DriftArgs) -> Result<()> {
    use crate::plan::drift as d;
    if a.plan.format == Format::Json {
        runner.machine_output();
    }
    let c = check_drift(runner, a)?;
    if let Some(api) = &c.issue {
        runner.mask(&api.token);
    }
    let refresh = load_plan(runner, &a.plan.plan, &c.limits)?;
    let normal = match &a.normal_plan {
        Some(p) => Some(load_plan(runner, p, &c.limits).map_err(|mut f| {
            if f.field.as_deref() == Some("plan") {
                f.field = Some("normal-plan".into());
            }
            f
        })?),
        None => None,
    };
    let report = d::classify(&refresh, normal.as_deref()).map_err(PlanError::into_failure)?;
    let mut plans: Vec<&crate::plan::Summary> = vec![&refresh];
    plans.extend(normal.as_deref());
    let sc = d::scrubber(&plans);
    let mut j = d::json(&report, &c.place);
    scrub_json(&sc, &mut j);
    runner.set_output("drift-status", report.status())?;
    runner.set_output("reality-changed", &report.reality_changed().to_string())?;
    runner.set_output(
        "code-not-deployed",
        &if report.with_plan {
            report.code_not_deployed().to_string()
        } else {
            String::new()
        },
    )?;
    runner.set_output("json", &j.to_string())?;
    let md = d::markdown(&report, &c.place, &sc);
    match a.plan.format {
        Format::Json => runner.document(&j)?,
        Format::Markdown => runner.untrusted_block(&md),
        Format::Text => runner.info(&format!(
            "drift in `{}`: {} ({} changed outside Terraform{})",
            single_line(&c.place.key()),
            report.status(),
            report.reality_changed(),
            if report.with_plan {
                format!(", {} code not yet deployed", report.code_not_deployed())
            } else {
                String::new()
            }
        )),
    }
    runner.summary(&md)?;
    let mut url = String::new();
    if let Some(api) = &c.issue {
        let body = d::issue_body(&report, &c.place, &sc);
        let gh = crate::github::Blocking::open(api, runner)?;
        let drifted = report.reality_changed() > 0;
        let (outcome, notes) =
            gh.block(
                gh.client
                    .sync_drift_issue(&c.place, drifted, &body, c.author.as_deref()),
            )?;
        for n in &notes {
            runner.warning(n);
        }
        match outcome {
            d::IssueOutcome::Opened(n, u) => {
                runner.info(&format!("drift issue #{n} opened: {}", single_line(&u)));
                url = u;
            }
            d::IssueOutcome::Updated(n, u) => {
                runner.info(&format!(
                    "drift issue #{n} updated in place: {}",
                    single_line(&u)
                ));
                url = u;
            }
            d::IssueOutcome::Closed(n, u) => {
                runner.info(&format!(
                    "drift issue #{n} closed: the drift is gone: {}",
                    single_line(&u)
                ));
                url = u;
            }
            d::IssueOutcome::Nothing => runner.info("no drift and no open drift issue"),
        }
    }
    runner.set_output("drift-issue-url", &url)?;
    Ok(())
}

/// Scrub sensitive strings inside every string of a JSON value (never across its structure).
fn scrub_json(sc: &crate::plan::Scrubber, v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = sc.scrub(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| scrub_json(sc, x)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| scrub_json(sc, x)),
        _ => {}
    }
}

/// At most this many policy warnings become annotations (all are in the report).
const WARNINGS_ANNOTATED: usize = 20;

/// At most this many sensitive strings are registered with the runner's masks.
const MASKS_MAX: usize = 500;

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    match args.command {
        Some(Verb::Gate(a)) => gate(runner, &a),
        Some(Verb::Verify(a)) => verify(runner, &a),
        Some(Verb::Drift(a)) => drift(runner, &a),
        Some(Verb::Record(a)) => record(runner, &a),
        None => Err(Failure::usage(
            "command",
            "give `gate`, `verify` or `drift`",
        )),
    }
}

/// Read the plan and, in Actions, register its sensitive strings with the runner's masks.
// Not dropped: freeing tens of thousands of small allocations just before the process exits
// took longer than some of the reading (the kernel takes the memory back at exit anyway).
fn load_plan(
    runner: &Runner,
    path: &std::path::Path,
    limits: &Limits,
) -> Result<std::mem::ManuallyDrop<crate::plan::Summary>> {
    let plan =
        std::mem::ManuallyDrop::new(crate::plan::load(path, limits).map_err(|e| e.into_failure())?);
    if runner.in_actions() {
        // Belt and braces: the runner also hides every sensitive string from later steps' logs.
        // Short values (ports, `true`) would mangle unrelated text, so only longer ones.
        let maskable: Vec<&String> = plan
            .sensitive_strings
            .iter()
            .filter(|s| s.chars().count() >= 8 && !s.contains(['\n', '\r']))
            .collect();
        for s in maskable.iter().take(MASKS_MAX) {
            runner.mask_str(s);
        }
        if maskable.len() > MASKS_MAX {
            // A cap hit is said out loud: plan-gate's own output is scrubbed of all of them.
            runner.warning(&format!(
                "{} sensitive values were not registered with the runner's masks (at most {MASKS_MAX} are): plan-gate's own output is scrubbed of every one, but later steps' logs are not",
                maskable.len() - MASKS_MAX
            ));
        }
    }
    Ok(plan)
}

/// `verify`: recompute the digest; exit 1 when it is not the reviewed one.
fn verify(runner: &Runner, a: &VerifyArgs) -> Result<()> {
    if a.plan.format == Format::Json {
        runner.machine_output();
    }
    let limits = a.plan.limits()?;
    let given = a.digest.as_deref().filter(|d| !d.is_empty());
    let from_status = match (given, a.digest_from_status) {
        (Some(_), true) => {
            return Err(Failure::usage(
                "digest-from-status",
                "give the reviewed `digest` or `digest-from-status`, not both",
            ))
        }
        (None, true) => Some(status_source(runner, a)?),
        (Some(d), false) => {
            crate::validate::sha256_digest("digest", d)?;
            None
        }
        (None, false) => return Err(Failure::usage(
            "digest",
            "`verify` needs the reviewed digest (`--digest sha256:...`, or `digest-from-status`)",
        )),
    };
    let rule = reviewed_plan_rule(runner, a)?;
    let fetched;
    let want = match &from_status {
        None => given.expect("checked above"),
        Some(src) => {
            fetched = reviewed_digest_from_status(runner, src)?;
            fetched.as_str()
        }
    };
    let reviewed = match a
        .reviewed_changes
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        None => None,
        Some(t) => {
            let m = Manifest::parse(t)
                .map_err(|e| Failure::usage("reviewed-changes", format!("the manifest {e}")))?;
            if m.digest != want {
                return Err(Failure::usage(
                    "reviewed-changes",
                    format!(
                        "the manifest describes the plan {}, not the reviewed {}: pass the same plan job's `plan-digest` and `changes`",
                        m.digest,
                        single_line(want)
                    ),
                ));
            }
            Some(m)
        }
    };
    let plan = load_plan(runner, &a.plan.plan, &limits)?;
    runner.set_output("plan-digest", &plan.digest)?;
    if plan.digest == want {
        runner.set_output("differences", "")?;
        runner.info(&format!("plan digest verified: {}", plan.digest));
        return check_reviewed_plan(runner, rule.as_ref(), &plan.digest);
    }
    let lines = match &reviewed {
        Some(m) => {
            let d = manifest::compare(m, &Manifest::build(&plan, want, None));
            d.iter().map(ToString::to_string).collect::<Vec<_>>()
        }
        None => vec![
            "(no `reviewed-changes` given: pass the plan job's `changes` output to see what differs)"
                .to_string(),
        ],
    };
    // Addresses are plan text: scrubbed of this plan's sensitive strings, then neutralised.
    let scrubber = plan.scrubber();
    let text = scrubber.scrub(&lines.join("\n"));
    runner.set_output("differences", &text)?;
    runner.error(&format!(
        "the plan is not the one that was reviewed ({} difference(s)); nothing may be applied",
        lines.len()
    ));
    runner.untrusted_block(&format!(
        "What differs between the reviewed plan and this one:\n{text}"
    ));
    if runner.has_step_summary() {
        let mut md = String::from(
            "### The plan is not the one that was reviewed\n\nNothing was applied. What differs (reviewed -> now):\n\n",
        );
        for l in text.lines() {
            md.push_str(&format!("- {}\n", crate::runner::markdown::code(l)));
        }
        md.push_str(&format!(
            "\nReviewed digest {}, this plan {}. Plan again and have it reviewed.\n",
            crate::runner::markdown::code(&single_line(want)),
            crate::runner::markdown::code(&plan.digest)
        ));
        runner.summary(&md)?;
    }
    Err(Failure::refused(format!(
        "the plan is not the one that was reviewed: its digest is {} but {} was approved; re-run the plan and review it again",
        plan.digest,
        single_line(want)
    )))
}

/// Where `digest-from-status` reads the reviewed digest, validated before any network call.
struct StatusSource {
    api: crate::github::Config,
    sha: String,
    context: String,
    this_run: String,
}

fn status_source(runner: &Runner, a: &VerifyArgs) -> Result<StatusSource> {
    let env = a
        .environment
        .as_deref()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            Failure::usage(
                "environment",
                "`digest-from-status` reads the status `gitops/plan/<env>/<stack>`: give `environment`",
            )
        })?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let model = Model::load(&cwd, a.config.as_deref())?;
    let env = model.get("environment", env)?.name.clone();
    let stack = a
        .stack
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::usage(
                "stack",
                "`digest-from-status` reads one stack's plan status: give `stack`",
            )
        })?;
    name_like("stack", stack)?;
    let sha = applied_sha(a.sha.as_deref(), runner)?;
    let this_run = run_url(runner).ok_or_else(|| {
        Failure::usage(
            "digest-from-status",
            "reads the status this run's plan job recorded, but the run is unknown (GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID)",
        )
    })?;
    Ok(StatusSource {
        api: github_api(runner, &a.github, "`digest-from-status`")?,
        context: review::context(&env, Some(stack)),
        sha,
        this_run,
    })
}

/// The commit being applied: `sha`, else `GITHUB_SHA`; 40 lowercase hex digits (exit 2).
fn applied_sha<'a>(given: Option<&'a str>, runner: &'a Runner) -> Result<String> {
    let sha = given
        .filter(|s| !s.is_empty())
        .or_else(|| runner.var("GITHUB_SHA"))
        .ok_or_else(|| {
            Failure::usage(
                "sha",
                "give the commit being applied (default `GITHUB_SHA`)",
            )
        })?
        .to_string();
    crate::validate::full_sha("sha", &sha)?;
    Ok(sha)
}

/// The digest this run's plan job recorded for the stack (exit 1 when it recorded none).
fn reviewed_digest_from_status(runner: &Runner, src: &StatusSource) -> Result<String> {
    let gh = crate::github::Blocking::open(&src.api, runner)?;
    let statuses = gh
        .block(gh.client.commit_statuses(&src.sha))
        .map_err(Failure::from)?;
    match review::from_this_run(&statuses, &src.context, &src.this_run) {
        Some((r, false)) => Err(Failure::refused(format!(
            "this run's plan of {} (commit status `{}`, {}) was refused by plan-gate: nothing may be applied",
            src.sha, src.context, r.digest
        ))),
        Some((r, true)) => {
            runner.info(&format!(
                "the reviewed digest of this run's plan job: {} (commit status `{}` on {})",
                r.digest, src.context, src.sha
            ));
            Ok(r.digest)
        }
        None => Err(Failure::refused(format!(
            "no plan of this run is recorded on {} (commit status `{}` with this run as its target): the plan job of this run records it before the apply; nothing was applied",
            src.sha, src.context
        ))),
    }
}

/// What `require-reviewed-plan` needs, validated before any network call.
struct ReviewedPlanRule {
    api: crate::github::Config,
    sha: String,
    context: String,
    current: review::Base,
    this_run: Option<String>,
}

fn reviewed_plan_rule(runner: &Runner, a: &VerifyArgs) -> Result<Option<ReviewedPlanRule>> {
    let env = match a.environment.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let model = Model::load(&cwd, a.config.as_deref())?;
            Some(model.get("environment", e)?.clone())
        }
    };
    if let Some(s) = &a.stack {
        name_like("stack", s)?;
    }
    let explicit = match a.require_reviewed_plan {
        Requirement::False => Some(false),
        Requirement::True => Some(true),
        Requirement::Auto => None,
    };
    let required = review::required(
        explicit,
        env.as_ref().is_some_and(|e| e.production),
        a.promotion_mode == super::promote::Mode::PullRequest,
    );
    if !required {
        return Ok(None);
    }
    let env = env.ok_or_else(|| {
        Failure::usage(
            "environment",
            "`require-reviewed-plan` looks for the plan recorded for an environment: give `environment`",
        )
    })?;
    let sha = applied_sha(a.sha.as_deref(), runner)?;
    let given = a.deployed_sha.as_deref().map(str::trim).unwrap_or("");
    let current = review::Base::parse(given).ok_or_else(|| {
        Failure::usage(
            "deployed-sha",
            "`require-reviewed-plan` compares the deploy the pull request's plan was made against with the target's current one: give it (tag-deploy list's `sha`, a 40-hex-digit commit id, or `none` when nothing is deployed)",
        )
    })?;
    Ok(Some(ReviewedPlanRule {
        api: github_api(runner, &a.github, "`require-reviewed-plan`")?,
        context: review::context(&env.name, a.stack.as_deref()),
        sha,
        current,
        this_run: run_url(runner),
    }))
}

/// `require-reviewed-plan`, once the plan verified against the digest this run reviewed.
fn check_reviewed_plan(
    runner: &Runner,
    rule: Option<&ReviewedPlanRule>,
    digest: &str,
) -> Result<()> {
    let Some(r) = rule else {
        runner.set_output("reviewed-plan", "not-required")?;
        return Ok(());
    };
    let gh = crate::github::Blocking::open(&r.api, runner)?;
    let statuses = gh
        .block(gh.client.commit_statuses(&r.sha))
        .map_err(Failure::from)?;
    let recorded = review::recorded(&statuses, &r.context, r.this_run.as_deref());
    match review::decide(
        true,
        digest,
        &r.context,
        &r.sha,
        recorded.as_ref(),
        &r.current,
    ) {
        Ok(review::Passed::Matches) => {
            runner.set_output("reviewed-plan", "matches")?;
            runner.info(&format!(
                "require-reviewed-plan: the plan is the one the promotion pull request's plan recorded on {} ({}), made against {}",
                r.sha, r.context, r.current
            ));
            Ok(())
        }
        Ok(review::Passed::NotRequired) => {
            runner.set_output("reviewed-plan", "not-required")?;
            Ok(())
        }
        Err(refusal) => Err(Failure::refused(refusal.to_string())),
    }
}

/// `gate`: summary, policy, outputs, step summary, PR comment.
fn gate(runner: &Runner, args: &GateArgs) -> Result<()> {
    if args.plan.format == Format::Json {
        runner.machine_output();
    }
    let c = check(runner, args)?;
    if let Some(t) = &c.comment {
        runner.mask(&t.api.token);
    }
    let plan = load_plan(runner, &args.plan.plan, &c.limits)?;

    // Policy, overrides, built-in gates.
    let cx = Context {
        plan: &plan,
        environment: c.environment.as_deref(),
        production: c.production,
        rollback: c.rollback,
    };
    let scrubber = plan.scrubber();
    let mut found = c.policy.check(&cx);
    let mut warnings = Vec::new();
    if let Some(r) = &c.rego {
        if !r.sees_sensitive.is_empty() {
            runner.notice(&format!(
                "Rego policies that see sensitive values as they are (`{}`): {}",
                crate::policy::rego::SEES_SENSITIVE,
                single_line(&r.sees_sensitive.join(", "))
            ));
        }
        let f = r.check_plan(&args.plan.plan, &scrubber)?;
        runner.info(&format!(
            "Rego policies: {} file(s), {} denial(s), {} warning(s)",
            r.files.len(),
            f.deny.len(),
            f.warn.len()
        ));
        found.extend(f.deny);
        warnings = f.warn;
    }
    for w in warnings.iter().take(WARNINGS_ANNOTATED) {
        runner.warning(&format!(
            "policy warning [{}]: {}",
            single_line(&w.rule),
            single_line(&scrubber.scrub(&w.message))
        ));
    }
    let (allowed, violations): (Vec<_>, Vec<_>) = found.into_iter().partition(|v| {
        c.allow.iter().any(|a| a == &v.rule)
            || (v.rule == render::DATA_LOSS_RULE && c.data_loss_reason.is_some())
    });
    if plan.sensitive_overflow {
        runner.warning(&format!(
            "{} (more than {} distinct sensitive values)",
            render::WITHHELD_NOTE,
            crate::plan::load::SENSITIVE_MAX
        ));
    }
    for v in &allowed {
        let reason = if v.rule == render::DATA_LOSS_RULE {
            c.data_loss_reason.as_deref()
        } else {
            c.allow_reason.as_deref()
        };
        // Plan text is scrubbed before it is cut or escaped for the annotation.
        runner.warning(&format!(
            "policy override: rule {} allowed for {} ({}); reason: {}",
            v.rule,
            single_line(&scrubber.scrub(v.address.as_deref().unwrap_or("the plan"))),
            single_line(&scrubber.scrub(&v.message)),
            single_line(reason.unwrap_or(""))
        ));
    }
    if let Some(r) = &c.data_loss_reason {
        runner.warning(&format!(
            "allow-data-loss given: stateful resources may be destroyed or replaced; reason: {}",
            single_line(r)
        ));
    }
    let mut gate = Vec::new();
    if plan.errored {
        gate.push("Terraform reported errors while planning (`errored: true`): this plan must not be applied".to_string());
    }
    if plan.applyable == Some(false) && plan.counts.has_changes() {
        gate.push("Terraform marked this plan as not applyable (`applyable: false`)".to_string());
    }
    let verdict = if gate.is_empty() && violations.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let report = Report {
        plan: &plan,
        verdict,
        gate,
        violations,
        allowed,
        warnings,
        allow_reason: c.allow_reason.clone(),
        data_loss_reason: c.data_loss_reason.clone(),
        environment: c.environment.clone(),
        stack: c.stack.clone(),
        workspace: c.workspace.clone(),
    };

    // Outputs.
    let n = &plan.counts;
    for (k, v) in [
        ("add", n.add),
        ("change", n.change),
        ("destroy", n.destroy),
        ("replace", n.replace),
        ("import", n.import),
        ("move", n.moves),
        ("forget", n.forget),
        ("read", n.read),
        ("no-op", n.no_op),
        ("drift", n.drift),
        ("output-changes", n.output_changes),
    ] {
        runner.set_output(k, &v.to_string())?;
    }
    runner.set_output("has-changes", &n.has_changes().to_string())?;
    runner.set_output("errored", &plan.errored.to_string())?;
    runner.set_output(
        "applyable",
        &plan.applyable.map(|b| b.to_string()).unwrap_or_default(),
    )?;
    runner.set_output("verdict", verdict.as_str())?;
    let mut vj = serde_json::to_value(&report.violations).unwrap_or_default();
    scrub_json(&scrubber, &mut vj);
    runner.set_output("violations", &vj.to_string())?;
    runner.set_output("plan-digest", &plan.digest)?;
    runner.set_output(
        "data-loss-reason",
        c.data_loss_reason.as_deref().unwrap_or_default(),
    )?;
    runner.set_output(
        "changes",
        &Manifest::build(&plan, &plan.digest, Some(manifest::MAX_BYTES)).to_text(),
    )?;
    let mut report_json = render::json(&report);
    scrub_json(&scrubber, &mut report_json);
    runner.set_output("json", &report_json.to_string())?;

    // Report on stdout, the step summary, the comment. The Markdown report is rendered only when
    // something reads it (on a big plan it takes longer than counting).
    let doc =
        (args.plan.format == Format::Markdown || runner.has_step_summary() || c.comment.is_some())
            .then(|| render::markdown(&report));
    let md_full = doc.as_ref().map(|d| scrubber.scrub(&d.render()));
    match args.plan.format {
        Format::Text => runner.untrusted_block(&render::text(&report)),
        Format::Markdown => runner.untrusted_block(md_full.as_deref().unwrap_or_default()),
        Format::Json => runner.document(&report_json)?,
    }
    if let Some(md) = &md_full {
        runner.summary(md)?;
    }
    let mut comment_url = String::new();
    if let Some(why) = &c.comment_skip {
        runner.notice(&format!("PR comment skipped: {why}"));
    }
    if let (Some(t), Some(doc)) = (&c.comment, &doc) {
        let summary_url = run_url(runner);
        let body = comment::body(doc, &t.key, summary_url.as_deref(), |s| scrubber.scrub(s));
        let upsert = crate::github::Blocking::open(&t.api, runner).and_then(|gh| {
            let author = t.author.as_deref();
            gh.block(gh.client.upsert_comment(t.pr, &t.key, author, &body))
                .map_err(Failure::from)
        });
        match upsert {
            Ok(comment::Outcome::Created { url, notes, .. }) => {
                for n in &notes {
                    runner.warning(n);
                }
                runner.info(&format!("PR comment created: {}", single_line(&url)));
                comment_url = url;
            }
            Ok(comment::Outcome::Updated { url, notes, .. }) => {
                for n in &notes {
                    runner.warning(n);
                }
                runner.info(&format!(
                    "PR comment updated in place: {}",
                    single_line(&url)
                ));
                comment_url = url;
            }
            Err(e) => runner.annotate(
                Level::Warning,
                &format!("PR comment not written: {}", e.message),
                &Default::default(),
            ),
        }
    }
    runner.set_output("comment-url", &comment_url)?;
    if let (Some((path, base)), Some(env)) = (&c.record, &c.environment) {
        // Value-free: the digest, the manifest (addresses scrubbed, actions, salted hashes),
        // names and a commit id. The recorder checks it again and trusts none of it for *where*.
        let rec = crate::plan::record::Record {
            environment: env.clone(),
            stack: c.stack.clone(),
            digest: plan.digest.clone(),
            base: base.clone(),
            changes: Manifest::build(&plan, &plan.digest, Some(manifest::MAX_BYTES)).to_text(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::runtime(format!("the plan record's directory: {e}")))?;
        }
        std::fs::write(path, rec.to_text() + "\n")
            .map_err(|e| Failure::runtime(format!("the plan record could not be written: {e}")))?;
        runner.info(&format!(
            "plan record written for the recorder: {} ({}, planned against {})",
            review::context(env, c.stack.as_deref()),
            plan.digest,
            base
        ));
    }
    if let Some(st) = &c.status {
        // The record the promotion's apply job compares with: failing to write it is a failure
        // of this job (exit 3), never a silent skip.
        let state = match verdict {
            Verdict::Pass => "success",
            Verdict::Fail => "failure",
        };
        let url = run_url(runner);
        let gh = crate::github::Blocking::open(&st.api, runner)?;
        gh.block(gh.client.create_commit_status(
            &st.sha,
            state,
            &st.context,
            &review::description(&plan.digest),
            url.as_deref(),
        ))
        .map_err(Failure::from)?;
        runner.info(&format!(
            "plan recorded on {}: commit status {} ({state}, {})",
            st.sha, st.context, plan.digest
        ));
    }
    match verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail => {
            let mut why: Vec<String> = report.gate.clone();
            if !report.violations.is_empty() {
                let rules: std::collections::BTreeSet<&str> =
                    report.violations.iter().map(|v| v.rule.as_str()).collect();
                why.push(format!(
                    "{} policy violation(s) ({})",
                    report.violations.len(),
                    rules.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            Err(Failure::refused(format!(
                "plan gate failed: {}",
                why.join("; ")
            )))
        }
    }
}
