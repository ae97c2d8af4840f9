//! `tag-deploy`: record deploys as atomic git tags, list the history, resolve rollback targets,
//! and put an environment on hold.
//!
//! - `record`: after a successful deploy, ONE atomic push creates the immutable history tag
//!   `deploy/<env>/history/<UTC time>-<run id>-<sha7>` ("must not exist") and moves
//!   `deploy/<env>/current` (lease: the tag object id we read). Idempotent when the sha is already
//!   current; refuses (exit 1) an ancestor of the current deploy without `--rollback` (F13), a
//!   rollback to a commit never deployed here (F16), a sha that is not on the environment's
//!   branch, a non-rollback deploy while the environment is on hold, and a lost race (F10/F12,
//!   both object ids printed, nothing changed).
//! - `list`: the history, newest first, read from the remote (never from local tags).
//! - `resolve`: `--to previous|<history tag>|<sha>` -> the commit to roll back to.
//! - `hold` / `release`: create / delete `deploy/<env>/hold` (with leases).
//! - GitHub Deployments (when a token and the repository are known, unless
//!   `--skip-github-deployment`): `start` creates the run's deployment and posts `in_progress`
//!   at the beginning of a deploy job; `record` posts `success` after the tags are pushed (or
//!   `failure` when it refuses), creating the deployment itself when `start` was not used;
//!   `fail` posts `failure` from a job's failure path. Deployments are created with
//!   `auto_merge: false`, explicit `required_contexts` (default: none — the deploy already
//!   happened, and a rollback must never wait for checks) and explicit
//!   `production_environment`; each carries the run key `<run id>.<attempt>`, so the three
//!   subcommands find the same deployment and a create whose outcome was unknown is never
//!   duplicated (F15). After a production success, older successful deployments of the
//!   environment are marked `inactive`.
//!
//! Every input is validated before the first network call (exit 2).
//!
//! This module holds no rule about deploys: `record` reads the remote into
//! [`deploy::DeployFacts`], asks [`deploy::decide_record`], gathers each fact it asks for (the
//! hold's message, the history for the ancestry questions, the verdicts on history entries),
//! then pushes and renders; `resolve` and `list` ask [`deploy::check_record`] and
//! [`deploy::resolve`]. Tag names and messages come from [`deploy`].

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use git2::Oid;

use super::{BinaryDoc, OutputDoc};
use crate::cli::inputs::{Checkout, Github, GithubTarget, TokenAlias};
use crate::deploy::{
    self, describe_hold, EnvState, Hold, Record, RecordDecision, RecordNeed, RecordRefusal,
};
use crate::envs::Model;
use crate::exit::{Failure, Result};
use crate::git::{self, Expect, GitError, RefUpdate, RemoteSpec, Session, Tagger};
use crate::github;
use crate::runner::{markdown, single_line, OutputFormat, Runner};
use crate::validate;
use crate::verify;
use crate::windows::{self, Gate, Windows};

mod verification;

mod preview;

/// The chosen verb, for the code that branches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Create the run's GitHub Deployment and mark it `in_progress` (start of a deploy job).
    Start,
    /// Record a deploy: history tag + move `deploy/<env>/current`, atomically.
    Record,
    /// Mark the run's GitHub Deployment `failure` (the failure path of a deploy job).
    Fail,
    /// List the deploy history, newest first.
    List,
    /// Resolve a rollback target to a commit.
    Resolve,
    /// Put the environment on hold.
    Hold,
    /// Release a hold.
    Release,
    /// Check the environment's deploy windows and freezes now, changing nothing: exit 0
    /// inside a window, 1 outside (with when the next one opens), 0 with a warning when
    /// `override-window-reason` is given.
    Window,
    /// Run the environment's verification checks after the apply.
    Verify,
    /// After a failed verification: hold, and roll back (or stop and alert).
    AutoRollback,
    /// Decide whether a pull request gets a preview (fork, label), changing nothing.
    PreviewCheck,
    /// Record a preview: `deploy/<env>/preview/pr-<n>`, its transient Deployment, the comment.
    PreviewOpen,
    /// Close a preview: delete its record, mark its Deployment inactive, update the comment.
    PreviewClose,
    /// List the previews to destroy: PR closed or missing, or older than the maximum age.
    PreviewSweep,
}

impl Command {
    /// What the verb records: the environment itself, one preview, or every preview.
    fn scope(self) -> deploy::Scope {
        match self {
            Command::PreviewOpen | Command::PreviewClose | Command::PreviewCheck => {
                deploy::Scope::Preview
            }
            Command::PreviewSweep => deploy::Scope::AllPreviews,
            _ => deploy::Scope::Environment,
        }
    }
}

/// Output format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per deploy.
    Text,
    /// A JSON document.
    Json,
}

/// Record deploys as atomic git tags and GitHub Deployments.
#[derive(Debug, Parser)]
#[command(
    name = "tag-deploy",
    version,
    about = "Record deploys as atomic git tags and GitHub Deployments"
)]
pub struct Args {
    /// What to do: start, record, fail, list, resolve, hold, release, window, verify,
    /// auto-rollback, preview-check, preview-open, preview-close, preview-sweep.
    #[command(subcommand)]
    pub command: Verb,
}

/// The verbs, each with the inputs it takes (an input of another verb is a usage error).
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create the run's GitHub Deployment and mark it `in_progress` (start of a deploy job).
    Start(StartArgs),
    /// Record a deploy: history tag + move `deploy/<env>/current`, atomically.
    Record(RecordArgs),
    /// Mark the run's GitHub Deployment `failure` (the failure path of a deploy job).
    Fail(FailArgs),
    /// List the deploy history, newest first.
    List(ListArgs),
    /// Resolve a rollback target to a commit.
    Resolve(ResolveArgs),
    /// Put the environment on hold.
    Hold(ReasonArgs),
    /// Release a hold.
    Release(ReasonArgs),
    /// Check the environment's deploy windows and freezes now, changing nothing: exit 0
    /// inside a window, 1 outside (with when the next one opens), 0 with a warning when
    /// `override-window-reason` is given.
    Window(WindowArgs),
    /// Run the environment's verification checks (`verify:` in `.github/gitops.yml`) for their
    /// bounded window after the apply: exit 0 when every check passed (or none is declared),
    /// 1 when one failed (outputs name it), before `record` writes the outcome into the tags.
    Verify(VerifyArgs),
    /// After a failed verification of the current deploy (its trailers): put the environment on
    /// hold and dispatch `rollback.yml` to `previous` when the environment opts in
    /// (`auto-rollback: true`); a failed rollback, or no opt-in, stops and alerts (exit 1).
    AutoRollback(AutoRollbackArgs),
    /// Decide whether a pull request gets a preview (never from a fork; only with the
    /// configured label); changes nothing, except a PR comment saying why not.
    PreviewCheck(PreviewCheckArgs),
    /// Record a preview after its apply: `deploy/<env>/preview/pr-<n>` (never
    /// `deploy/<env>/current`), a transient GitHub Deployment `<env>/pr-<n>` with the
    /// preview's URL, and the one PR comment with the URL and the resources created.
    PreviewOpen(PreviewOpenArgs),
    /// Close a preview after its destroy: delete its record, mark its Deployment inactive,
    /// update the PR comment.
    PreviewClose(PreviewCloseArgs),
    /// List the previews to destroy (their PR is closed or gone, or they are older than the
    /// maximum age), as the `workspaces` output (a JSON list); changes nothing.
    PreviewSweep(PreviewSweepArgs),
}

/// What every verb takes: the environment, the model, the output format, the checkout and
/// GitHub.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The environment (a name from the environments model, e.g. `dev`, `staging`, `prod`).
    #[arg(long, env = "GITOPS_ENVIRONMENT")]
    pub environment: String,
    /// The environments model file. Default: `.github/gitops.yml` in the checkout, else the built-in model.
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format. `json`: stdout is exactly one line of JSON, in Actions too (list: the
    /// history; the other commands: their outputs); masks, annotations and logs go to stderr.
    #[arg(long, env = "GITOPS_FORMAT", value_enum, default_value = "text")]
    pub format: Format,
    /// The git checkout and remote.
    #[command(flatten)]
    pub checkout: Checkout,
    /// Token (for the git remote as `x-access-token` and the GitHub API), repository, API URL.
    /// Without a token: `GITHUB_TOKEN` if set, else the credentials `actions/checkout` persisted.
    #[command(flatten)]
    pub github: GithubTarget,
    /// The deprecated `token` spelling of `github-token`.
    #[command(flatten)]
    pub token_alias: TokenAlias,
    /// start/record/fail: record the git tags only, without a GitHub Deployment (e.g. a token
    /// without `deployments: write`). Taken by every verb (a job may set it once for all its
    /// steps); only the deploying verbs use it.
    #[arg(long, env = "GITOPS_SKIP_GITHUB_DEPLOYMENT")]
    pub skip_github_deployment: bool,
    /// The Terraform workspace: `default` (the environment itself; every verb but the
    /// preview ones) or `pr-<number>` (a preview; only where the environment allows previews).
    #[arg(long, env = "GITOPS_WORKSPACE", default_value = "default")]
    pub workspace: String,
}

/// The deploy itself (start, record, fail).
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// The deployed commit (full SHA). Default: `GITHUB_SHA`.
    #[arg(long, env = "GITOPS_SHA")]
    pub sha: Option<String>,
    /// This deploy is a deliberate rollback (allows an older commit that was deployed here before).
    #[arg(long, env = "GITOPS_ROLLBACK")]
    pub rollback: bool,
    /// Where the deployed environment can be seen (an https URL), shown on the GitHub Deployment.
    #[arg(long, env = "GITOPS_ENVIRONMENT_URL")]
    pub environment_url: Option<String>,
    /// Status contexts GitHub must see green before it accepts the deployment (comma- or
    /// newline-separated). Default: none, sent explicitly (GitHub's own default requires every
    /// context, which blocks rollbacks).
    #[arg(long, env = "GITOPS_REQUIRED_CONTEXTS")]
    pub required_contexts: Option<String>,
}

/// What was deployed (start, record).
#[derive(Debug, Clone, clap::Args)]
pub struct Artifact {
    /// The image that was deployed (e.g. `repo@sha256:...`), kept in the tag's trailers and the deployment's payload.
    #[arg(long, env = "GITOPS_IMAGE")]
    pub image: Option<String>,
    /// Digest of the applied plan (`sha256:<64 hex>`), kept in the tag's trailers and the deployment's payload.
    #[arg(long, env = "GITOPS_PLAN_DIGEST")]
    pub plan_digest: Option<String>,
}

/// The deployment `start` created (record, fail).
#[derive(Debug, Clone, clap::Args)]
pub struct DeploymentId {
    /// The deployment `start` created (its `deployment-id` output). Default: the deployment of
    /// this run (found by its run key), else a new one.
    #[arg(long, env = "GITOPS_DEPLOYMENT_ID")]
    pub deployment_id: Option<u64>,
}

/// The deploy-window override (record, window).
#[derive(Debug, Clone, clap::Args)]
pub struct WindowOverride {
    /// window: deploy outside the environment's deploy windows or during a freeze (an
    /// emergency; logged). record: the override that was used, kept in the `Window-Override`
    /// trailer.
    #[arg(long, env = "GITOPS_OVERRIDE_WINDOW_REASON")]
    pub override_window_reason: Option<String>,
}

/// `start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub deploy: DeployArgs,
    #[command(flatten)]
    pub artifact: Artifact,
}

/// `record`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub deploy: DeployArgs,
    #[command(flatten)]
    pub artifact: Artifact,
    #[command(flatten)]
    pub deployment: DeploymentId,
    #[command(flatten)]
    pub window: WindowOverride,
    #[command(flatten)]
    pub verification: VerificationArgs,
    /// The reason plan-gate's `allow-data-loss` was given with (its `data-loss-reason`
    /// output), kept in the `Data-Loss-Allowed` trailer.
    #[arg(long, env = "GITOPS_DATA_LOSS_REASON")]
    pub data_loss_reason: Option<String>,
    /// Record one stack's apply: moves `deploy/<env>/stacks/<stack>/current` to `sha` (with
    /// its `plan-digest`) and nothing else: no history tag, no GitHub Deployment.
    #[arg(long, env = "GITOPS_STACK")]
    pub stack: Option<String>,
    /// The stacks this commit changed (a JSON array of names: `stacks changed`'s `stacks`
    /// output). `deploy/<env>/current` moves only when every one of them recorded its apply at
    /// `sha` (`stack`); the tag's `Stack-Applied` trailers name each with its plan digest.
    #[arg(long, env = "GITOPS_STACKS")]
    pub stacks: Option<String>,
}

/// `fail`.
#[derive(Debug, Clone, clap::Args)]
pub struct FailArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub deploy: DeployArgs,
    #[command(flatten)]
    pub deployment: DeploymentId,
}

/// `list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
    /// How many entries, newest first (0 = all).
    #[arg(long, env = "GITOPS_LIMIT", default_value_t = 20)]
    pub limit: usize,
}

/// `resolve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub common: Common,
    /// `previous`, a history tag (`deploy/<env>/history/...`) or a full commit SHA.
    #[arg(long, env = "GITOPS_TO")]
    pub to: Option<String>,
}

/// `hold` and `release`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReasonArgs {
    #[command(flatten)]
    pub common: Common,
    /// Why (required for `hold`).
    #[arg(long, env = "GITOPS_REASON")]
    pub reason: Option<String>,
}

/// `window`.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub window: WindowOverride,
}

/// The verification outcome `record` writes into the deploy tags (record).
#[derive(Debug, Clone, clap::Args)]
pub struct VerificationArgs {
    /// The `outcome` output of `tag-deploy verify`: `passed`, `failed` or `none` (no checks).
    /// Required when the environment declares `verify:` checks: the GitHub Deployment is
    /// marked `success` only after a passed verification (`failure`, naming the check, after a
    /// failed one).
    #[arg(long, env = "GITOPS_VERIFICATION_OUTCOME")]
    pub verification_outcome: Option<String>,
    /// The `duration` output of `tag-deploy verify` (e.g. `31s`).
    #[arg(long, env = "GITOPS_VERIFICATION_DURATION")]
    pub verification_duration: Option<String>,
    /// The `checks` output of `tag-deploy verify` (each check and its state, one line).
    #[arg(long, env = "GITOPS_VERIFICATION_CHECKS")]
    pub verification_checks: Option<String>,
}

/// `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// The deployed commit (full SHA), whose GitHub statuses and check runs are read. Default:
    /// `GITHUB_SHA`.
    #[arg(long, env = "GITOPS_SHA")]
    pub sha: Option<String>,
    /// A file holding `terraform output -json` of the applied root, for `url-from-output`.
    #[arg(long, env = "GITOPS_TERRAFORM_OUTPUTS")]
    pub terraform_outputs: Option<PathBuf>,
    /// Variables for `url-from-variable`: `NAME=value` lines.
    #[arg(long, env = "GITOPS_VARIABLES")]
    pub variables: Option<String>,
    /// The AWS region of the CloudWatch alarms. Default: the environment's `aws-region`, else
    /// `AWS_REGION`.
    #[arg(long, env = "GITOPS_AWS_REGION")]
    pub aws_region: Option<String>,
}

/// `auto-rollback`.
#[derive(Debug, Clone, clap::Args)]
pub struct AutoRollbackArgs {
    #[command(flatten)]
    pub common: Common,
    /// The rollback workflow to dispatch (a file under `.github/workflows/`).
    #[arg(long, env = "GITOPS_WORKFLOW", default_value = "rollback.yml")]
    pub workflow: String,
    /// The branch to dispatch the rollback workflow on. Default: the environment's branch.
    #[arg(long, env = "GITOPS_REF")]
    pub r#ref: Option<String>,
}

/// The login whose PR comment may be edited (preview verbs).
#[derive(Debug, Clone, clap::Args)]
pub struct CommentAuthor {
    /// preview-*: the login whose preview comment may be edited (a GitHub App's
    /// `<slug>[bot]`; default: the token's user, else `github-actions[bot]`).
    #[arg(long, env = "GITOPS_COMMENT_AUTHOR")]
    pub comment_author: Option<String>,
}

/// The applied plan of a preview (preview-open: what it created; preview-close: what its
/// destroy removed).
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewPlan {
    /// preview-open/close: the applied plan as JSON (`terraform show -json`), for the
    /// resources the comment lists.
    #[arg(long, env = "GITOPS_PLAN")]
    pub plan: Option<PathBuf>,
}

/// `preview-check`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewCheckArgs {
    #[command(flatten)]
    pub common: Common,
    /// The pull request's head repository (`owner/name`, the event's
    /// `pull_request.head.repo.full_name`); another repository than `repository` is a fork.
    #[arg(long, env = "GITOPS_HEAD_REPOSITORY")]
    pub head_repository: Option<String>,
    /// The pull request's labels (comma- or newline-separated).
    #[arg(long, env = "GITOPS_LABELS")]
    pub labels: Option<String>,
    #[command(flatten)]
    pub author: CommentAuthor,
}

/// `preview-open`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewOpenArgs {
    #[command(flatten)]
    pub common: Common,
    /// The previewed commit: the pull request's head (full SHA). Default: `GITHUB_SHA`.
    #[arg(long, env = "GITOPS_SHA")]
    pub sha: Option<String>,
    /// The preview's URL (an http(s) URL, the Terraform output `preview.url-output`).
    #[arg(long, env = "GITOPS_ENVIRONMENT_URL")]
    pub environment_url: Option<String>,
    #[command(flatten)]
    pub artifact: Artifact,
    #[command(flatten)]
    pub plan: PreviewPlan,
    #[command(flatten)]
    pub author: CommentAuthor,
}

/// `preview-close`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewCloseArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub plan: PreviewPlan,
    /// Why (e.g. `pull request closed`, the sweep's reason), shown in the comment.
    #[arg(long, env = "GITOPS_REASON")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub author: CommentAuthor,
}

/// `preview-sweep`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreviewSweepArgs {
    #[command(flatten)]
    pub common: Common,
    /// Destroy previews older than this (`1h`..`90d`, e.g. `7d`). Default: `preview.max-age`
    /// of the configuration, else 7d.
    #[arg(long, env = "GITOPS_MAX_AGE")]
    pub max_age: Option<String>,
}

/// The inputs of the chosen verb in one shape for the subcommands' code: what the verb does
/// not take is absent (clap already refused it).
struct Inputs {
    command: Command,
    common: Common,
    deploy: Option<DeployArgs>,
    image: Option<String>,
    plan_digest: Option<String>,
    deployment_id: Option<u64>,
    override_window_reason: Option<String>,
    data_loss_reason: Option<String>,
    stack: Option<String>,
    stacks: Option<String>,
    limit: usize,
    to: Option<String>,
    reason: Option<String>,
    verification: Option<VerificationArgs>,
    verify: Option<VerifyArgs>,
    auto_rollback: Option<AutoRollbackArgs>,
    /// The preview verbs' own inputs.
    preview: preview::Inputs,
}

impl Inputs {
    fn new(command: Command, common: Common) -> Inputs {
        Inputs {
            command,
            common,
            deploy: None,
            image: None,
            plan_digest: None,
            deployment_id: None,
            override_window_reason: None,
            data_loss_reason: None,
            stack: None,
            stacks: None,
            limit: 0,
            to: None,
            reason: None,
            verification: None,
            verify: None,
            auto_rollback: None,
            preview: preview::Inputs::default(),
        }
    }

    fn from_verb(v: Verb) -> Inputs {
        match v {
            Verb::Start(a) => Inputs {
                deploy: Some(a.deploy),
                image: a.artifact.image,
                plan_digest: a.artifact.plan_digest,
                ..Inputs::new(Command::Start, a.common)
            },
            Verb::Record(a) => Inputs {
                deploy: Some(a.deploy),
                image: a.artifact.image,
                plan_digest: a.artifact.plan_digest,
                deployment_id: a.deployment.deployment_id,
                override_window_reason: a.window.override_window_reason,
                verification: Some(a.verification),
                data_loss_reason: a.data_loss_reason,
                stack: a.stack.filter(|s| !s.is_empty()),
                stacks: a.stacks.filter(|s| !s.trim().is_empty()),
                ..Inputs::new(Command::Record, a.common)
            },
            Verb::Fail(a) => Inputs {
                deploy: Some(a.deploy),
                deployment_id: a.deployment.deployment_id,
                ..Inputs::new(Command::Fail, a.common)
            },
            Verb::List(a) => Inputs {
                limit: a.limit,
                ..Inputs::new(Command::List, a.common)
            },
            Verb::Resolve(a) => Inputs {
                to: a.to,
                ..Inputs::new(Command::Resolve, a.common)
            },
            Verb::Hold(a) => Inputs {
                reason: a.reason,
                ..Inputs::new(Command::Hold, a.common)
            },
            Verb::Release(a) => Inputs {
                reason: a.reason,
                ..Inputs::new(Command::Release, a.common)
            },
            Verb::Window(a) => Inputs {
                override_window_reason: a.window.override_window_reason,
                ..Inputs::new(Command::Window, a.common)
            },
            Verb::Verify(a) => Inputs {
                verify: Some(a.clone()),
                ..Inputs::new(Command::Verify, a.common)
            },
            Verb::AutoRollback(a) => Inputs {
                auto_rollback: Some(a.clone()),
                ..Inputs::new(Command::AutoRollback, a.common)
            },
            Verb::PreviewCheck(a) => Inputs {
                preview: preview::Inputs {
                    head_repository: a.head_repository,
                    labels: a.labels,
                    comment_author: a.author.comment_author,
                    ..Default::default()
                },
                ..Inputs::new(Command::PreviewCheck, a.common)
            },
            Verb::PreviewOpen(a) => Inputs {
                image: a.artifact.image,
                plan_digest: a.artifact.plan_digest,
                preview: preview::Inputs {
                    sha: a.sha,
                    environment_url: a.environment_url,
                    plan: a.plan.plan,
                    comment_author: a.author.comment_author,
                    ..Default::default()
                },
                ..Inputs::new(Command::PreviewOpen, a.common)
            },
            Verb::PreviewClose(a) => Inputs {
                reason: a.reason,
                preview: preview::Inputs {
                    plan: a.plan.plan,
                    comment_author: a.author.comment_author,
                    ..Default::default()
                },
                ..Inputs::new(Command::PreviewClose, a.common)
            },
            Verb::PreviewSweep(a) => Inputs {
                preview: preview::Inputs {
                    max_age: a.max_age,
                    ..Default::default()
                },
                ..Inputs::new(Command::PreviewSweep, a.common)
            },
        }
    }

    /// Whether this is a deliberate rollback (start/record/fail).
    fn rollback(&self) -> bool {
        self.deploy.as_ref().is_some_and(|d| d.rollback)
    }
}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "status",
        description: "start: `started` or `skipped`; record: `recorded`, `rolled-back` or `unchanged`; fail: `failed` or `skipped`; hold: `held` or `already-held`; release: `released` or `not-held`; list/resolve: `ok`; window: `open` or `overridden`; verify: the outcome; auto-rollback: `none`, `dispatched`, `already-held` or `stopped`",
    },
    OutputDoc {
        name: "sha",
        description: "record: the recorded commit (start/fail: the deployment's commit); resolve: the commit to roll back to; list: the current commit",
    },
    OutputDoc {
        name: "tag",
        description: "`deploy/<env>/current` (record), the resolved history tag (resolve), `deploy/<env>/hold` (hold/release)",
    },
    OutputDoc {
        name: "history-tag",
        description: "record: the history tag of this deploy",
    },
    OutputDoc {
        name: "previous-sha",
        description: "record: the commit that was current before (empty for the first deploy)",
    },
    OutputDoc {
        name: "held",
        description: "`true` when the environment is on hold",
    },
    OutputDoc {
        name: "json",
        description: "list: the history as JSON",
    },
    OutputDoc {
        name: "outcome",
        description: "verify: `passed`, `failed`, or `none` (the environment declares no checks)",
    },
    OutputDoc {
        name: "failed-check",
        description: "verify: the failing check and why (empty unless `failed`)",
    },
    OutputDoc {
        name: "duration",
        description: "verify: how long the verification ran (e.g. `31s`)",
    },
    OutputDoc {
        name: "checks",
        description: "verify: each check and its state, one line (what `record` keeps in the `Verification-Checks` trailer)",
    },
    OutputDoc {
        name: "deployed-at",
        description: "list: when the current deploy was recorded (RFC 3339; empty when none)",
    },
    OutputDoc {
        name: "deployment-id",
        description: "start/record/fail/preview-open: the id of the run's GitHub Deployment (empty without one)",
    },
    OutputDoc {
        name: "workspace",
        description: "preview-check/open/close: the preview's Terraform workspace (`pr-<n>`); preview-sweep: the first one to destroy (empty when none)",
    },
    OutputDoc {
        name: "preview",
        description: "preview-check: `true` when the pull request gets a preview, else `false` (`reason` says why)",
    },
    OutputDoc {
        name: "reason",
        description: "preview-check: why there is no preview (empty when there is one)",
    },
    OutputDoc {
        name: "url-output",
        description: "preview-check: the Terraform output holding the preview's URL (`preview.url-output`)",
    },
    OutputDoc {
        name: "workspaces",
        description: "preview-sweep: the preview workspaces to destroy, as a JSON list of names (`[\"pr-3\"]`)",
    },
    OutputDoc {
        name: "comment-url",
        description: "preview-*: the URL of the preview's PR comment (empty when none was written)",
    },
];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "tag-deploy",
        description: "Record deploys as atomic git tags and GitHub Deployments",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// The validated inputs plus the run context.
struct Ctx {
    env: String,
    branch: String,
    spec: RemoteSpec,
    run_id: String,
    run_url: Option<String>,
    actor: Option<String>,
    production: bool,
    deployments: DeploymentsCfg,
    windows: Option<Windows>,
    override_window: Option<String>,
    /// The environment's verification checks (`verify:`), if declared.
    checks: Option<verify::Checks>,
    /// The environment's pinned AWS region, if any.
    aws_region: Option<String>,
    /// The GitHub API, when a token and the repository are known.
    api: Option<github::Config>,
    /// record: the verification outcome to keep in the trailers.
    verification: Option<verification::Outcome>,
    /// record: the reason plan-gate's `allow-data-loss` was given with.
    data_loss: Option<String>,
    /// The preview verbs' validated context (`None` for the environment's own verbs).
    preview: Option<preview::Context>,
    /// `skip-github-deployment`.
    skip_deployment: bool,
    /// record: the one stack whose apply is recorded.
    stack: Option<String>,
    /// record: the stacks the commit changed (the environment's record waits for all).
    stacks: Option<Vec<String>>,
    /// record --stacks without a verification outcome where the environment declares checks:
    /// refused (exit 2) once every changed stack applied.
    stacks_unverified: bool,
}

/// Whether and how the GitHub Deployment of this run is kept.
enum DeploymentsCfg {
    /// Not kept; the reason, for the one notice line (empty: not a deploying subcommand).
    Off(String),
    /// Kept through the API.
    On(Box<DeploymentsOn>),
}

struct DeploymentsOn {
    api: github::Config,
    run_key: String,
    environment_url: Option<String>,
    required_contexts: Vec<String>,
}

/// Validate the Deployments inputs (before any call) and decide whether the API is used.
fn deployments_config(
    runner: &Runner,
    deploy: &DeployArgs,
    skip: bool,
    deployment_id: Option<u64>,
    github: &Github,
    run_id: &str,
) -> Result<DeploymentsCfg> {
    let environment_url = deploy
        .environment_url
        .as_deref()
        .map(validate_environment_url)
        .transpose()?;
    let required_contexts = deploy
        .required_contexts
        .as_deref()
        .map(parse_contexts)
        .transpose()?
        .unwrap_or_default();
    let attempt = runner.var("GITHUB_RUN_ATTEMPT").unwrap_or("1");
    if attempt.len() > 6 || !attempt.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::usage(
            "GITHUB_RUN_ATTEMPT",
            format!("`{}` is not a run attempt number", single_line(attempt)),
        ));
    }
    if skip {
        return Ok(DeploymentsCfg::Off(
            "GitHub Deployment skipped (skip-github-deployment)".into(),
        ));
    }
    let Some(api) = github.api.clone() else {
        if deployment_id.is_some() {
            return Err(Failure::usage(
                "deployment-id",
                format!(
                    "needs the GitHub API: give `{}` and `repository` (or run in Actions)",
                    github.token_source
                ),
            ));
        }
        return Ok(DeploymentsCfg::Off(
            "GitHub Deployment not recorded: no token or no repository (GITHUB_REPOSITORY); the deploy is recorded in git tags only".into(),
        ));
    };
    Ok(DeploymentsCfg::On(Box::new(DeploymentsOn {
        api,
        run_key: format!("{run_id}.{attempt}"),
        environment_url,
        required_contexts,
    })))
}

fn validate_environment_url(v: &str) -> Result<String> {
    let bad =
        |rule: &str| Failure::usage("environment-url", format!("`{}` {rule}", single_line(v)));
    if v.len() > 500 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("is longer than 500 characters or contains whitespace"));
    }
    let u = url::Url::parse(v).map_err(|_| bad("is not a URL"))?;
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
        return Err(bad("is not an http(s) URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(v.to_string())
}

fn parse_contexts(v: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in v
        .split([',', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        deploy::validate_text("required-contexts", c, 255)?;
        if !out.iter().any(|x| x == c) {
            out.push(c.to_string());
        }
    }
    if out.len() > 100 {
        return Err(Failure::usage(
            "required-contexts",
            "lists more than 100 contexts",
        ));
    }
    Ok(out)
}

/// GitHub logins: letters, digits, `-`, optionally a `[bot]` suffix.
fn validate_actor(v: &str) -> Result<()> {
    let base = v.strip_suffix("[bot]").unwrap_or(v);
    let ok = !base.is_empty()
        && base.len() <= 64
        && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            "GITHUB_ACTOR",
            format!("`{}` is not a GitHub login", single_line(v)),
        ))
    }
}

fn validate_image(v: &str) -> Result<()> {
    deploy::validate_text("image", v, 512)?;
    if v.contains(char::is_whitespace) {
        return Err(Failure::usage(
            "image",
            format!("`{}` contains whitespace", single_line(v)),
        ));
    }
    Ok(())
}

fn prepare(runner: &Runner, args: &Inputs) -> Result<Ctx> {
    let cmd = args.command;
    let common = &args.common;
    let override_window = windows::check_override(args.override_window_reason.as_deref())?;
    let data_loss =
        deploy::check_data_loss_reason("data-loss-reason", args.data_loss_reason.as_deref())?;

    let checkout = common.checkout.resolve(runner)?;
    let model = Model::load(&checkout.root, common.config.as_deref())?;
    runner.info(model.log_line());
    let env = model.get("environment", &common.environment)?.clone();
    let windows = env.windows()?;
    let checks = env.checks()?;
    let (stack, stacks) = stack_inputs(args, &env.name)?;
    // With stacks, a deploy whose stacks did not all apply was not verified: the outcome is
    // required once every changed stack applied (checked after the stacks rule).
    let stacks_unverified = stacks.is_some()
        && checks.is_some()
        && args.verification.as_ref().is_some_and(|v| {
            v.verification_outcome
                .as_deref()
                .unwrap_or_default()
                .is_empty()
                && v.verification_duration
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
                && v.verification_checks
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
        });
    let verification = match &args.verification {
        Some(v) if stack.is_some() => {
            verification::none_for_a_stack(v)?;
            None
        }
        Some(_) if stacks_unverified => None,
        Some(v) => verification::outcome_input(v, checks.as_ref(), &env.name)?,
        None => None,
    };
    // The one workspace rule (envs), then what this verb may do with it (deploy).
    let workspace = crate::envs::check_workspace(&env, "workspace", &common.workspace)?;
    let preview_pr = deploy::workspace_scope(&env.name, cmd.scope(), &workspace)?;

    for (field, name) in [
        ("environment", deploy::current_ref(&env.name)),
        ("environment", deploy::hold_ref(&env.name)),
        ("environment", format!("refs/heads/{}", env.branch)),
    ] {
        git::validate_full_ref(field, &name)?;
    }
    if let Some(i) = &args.image {
        validate_image(i)?;
    }
    if let Some(d) = &args.plan_digest {
        validate::sha256_digest("plan-digest", d)?;
    }
    if let Some(r) = &args.reason {
        deploy::validate_text("reason", r, 500)?;
    }
    if cmd == Command::Hold && args.reason.is_none() {
        return Err(Failure::usage("reason", "is required for `hold`"));
    }
    if cmd == Command::Resolve {
        let Some(to) = &args.to else {
            return Err(Failure::usage("to", "is required for `resolve`"));
        };
        deploy::parse_target("to", &env.name, to)?;
    }

    let run_id = runner
        .var("GITHUB_RUN_ID")
        .filter(|v| !v.is_empty())
        .unwrap_or("local")
        .to_string();
    deploy::validate_run_id(&run_id)?;
    let actor = runner
        .var("GITHUB_ACTOR")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    if let Some(a) = &actor {
        validate_actor(a)?;
    }
    let run_url = match (
        runner.var("GITHUB_SERVER_URL"),
        runner.var("GITHUB_REPOSITORY"),
        runner.var("GITHUB_RUN_ID"),
    ) {
        (Some(s), Some(r), Some(id)) if !s.is_empty() && !r.is_empty() => {
            let u = format!("{}/{r}/actions/runs/{id}", s.trim_end_matches('/'));
            deploy::validate_text("GITHUB_REPOSITORY", &u, 400)?;
            Some(u)
        }
        _ => None,
    };

    let github = common
        .github
        .resolve_with(runner, Some(&common.token_alias))?;
    let temp_dir = runner.var("RUNNER_TEMP").map(PathBuf::from);
    let deployments = match &args.deploy {
        Some(d) => deployments_config(
            runner,
            d,
            common.skip_github_deployment,
            args.deployment_id,
            &github,
            &run_id,
        )?,
        None => DeploymentsCfg::Off(String::new()),
    };
    let preview = match cmd.scope() {
        deploy::Scope::Environment => None,
        _ => Some(preview::prepare(
            runner,
            args,
            &env.name,
            preview_pr,
            model.preview(),
            &github,
        )?),
    };
    Ok(Ctx {
        stack,
        stacks,
        stacks_unverified,
        preview,
        skip_deployment: common.skip_github_deployment,
        production: env.production,
        deployments,
        windows,
        override_window,
        checks,
        aws_region: env.aws_region.clone(),
        api: github.api.clone(),
        verification,
        data_loss,
        env: env.name.clone(),
        branch: env.branch.clone(),
        spec: RemoteSpec {
            repo_path: Some(checkout.root),
            remote: checkout.remote,
            token: github.token,
            temp_dir,
        },
        run_id,
        run_url,
        actor,
    })
}

/// The most stacks one record names (far more than one repository's matrix runs).
const MAX_STACKS: usize = 10_000;

/// `stack` and `stacks` (record): valid stack names whose record refs git accepts, not both.
fn stack_inputs(args: &Inputs, env: &str) -> Result<(Option<String>, Option<Vec<String>>)> {
    let check = |field: &str, name: &str| -> Result<()> {
        crate::stacks::validate_name(field, name)?;
        git::validate_full_ref(field, &deploy::stack_ref(env, name))
    };
    if let Some(s) = &args.stack {
        check("stack", s)?;
    }
    let stacks = match args.stacks.as_deref() {
        None => None,
        Some(text) => {
            let names: Vec<String> = serde_json::from_str(text).map_err(|_| {
                Failure::usage(
                    "stacks",
                    "is not a JSON array of stack names (pass `stacks changed`'s `stacks` output)",
                )
            })?;
            if names.len() > MAX_STACKS {
                return Err(Failure::usage(
                    "stacks",
                    format!("names more than {MAX_STACKS} stacks"),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in &names {
                check("stacks", n)?;
                if !seen.insert(n.as_str()) {
                    return Err(Failure::usage(
                        "stacks",
                        format!("names `{}` twice", single_line(n)),
                    ));
                }
            }
            Some(names)
        }
    };
    if args.stack.is_some() && stacks.is_some() {
        return Err(Failure::usage(
            "stacks",
            "is for the environment's record; `stack` records one stack's apply: give one of them",
        ));
    }
    Ok((args.stack.clone(), stacks))
}

/// The `sha` input, else `GITHUB_SHA`: a full commit id (exit 2 otherwise).
fn sha_input(runner: &Runner, given: Option<&str>) -> Result<Oid> {
    let s = given
        .or_else(|| runner.var("GITHUB_SHA"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Failure::usage("sha", "is required (or GITHUB_SHA must be set)"))?;
    git::parse_oid("sha", s)
}

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    let args = Inputs::from_verb(args.command);
    if args.common.format == Format::Json {
        runner.machine_output();
    }
    let ctx = prepare(runner, &args)?;
    // The sha default comes from the run context; validated before any call too.
    let sha = match &args.deploy {
        Some(d) => Some(sha_input(runner, d.sha.as_deref())?),
        None => None,
    };
    let result = match args.command {
        Command::Start => start(runner, &ctx, &args, sha.expect("validated")),
        Command::Fail => fail(runner, &ctx, &args, sha.expect("validated")),
        Command::Window => window(runner, &ctx),
        Command::Verify => verification::verify(runner, &ctx, &args),
        Command::PreviewCheck => preview::check(runner, &ctx),
        cmd => {
            let session = Session::open(&ctx.spec)?;
            if let Some(s) = session.auth().secret() {
                runner.mask(s);
            }
            match cmd {
                // A stack's record is one tag; the environment's record keeps the Deployment.
                Command::Record if ctx.stack.is_some() => {
                    record(runner, &ctx, &session, &args, sha.expect("validated"))
                }
                Command::Record => {
                    record_with_deployment(runner, &ctx, &session, &args, sha.expect("validated"))
                }
                Command::List => list(runner, &ctx, &session, &args),
                Command::Resolve => resolve(runner, &ctx, &session, &args),
                Command::Hold => hold(runner, &ctx, &session, &args),
                Command::AutoRollback => verification::auto_rollback(runner, &ctx, &session, &args),
                Command::PreviewOpen => preview::open(runner, &ctx, &session, &args),
                Command::PreviewClose => preview::close(runner, &ctx, &session),
                Command::PreviewSweep => preview::sweep(runner, &ctx, &session),
                _ => release(runner, &ctx, &session, &args),
            }
        }
    };
    if result.is_ok() && args.command != Command::List {
        match args.common.format {
            Format::Json => runner.finish(OutputFormat::Json),
            Format::Text if !runner.in_actions() => runner.finish(OutputFormat::Text),
            Format::Text => {}
        }
    }
    result
}

// ------------------------------------------------------------------ deploy windows

/// `window`: is the environment inside its deploy windows now? Reads the clock once, changes
/// nothing, calls nothing.
fn window(runner: &Runner, ctx: &Ctx) -> Result<()> {
    let env = &ctx.env;
    let gate = windows::gate(
        ctx.windows.as_ref(),
        windows::now(),
        ctx.override_window.as_deref(),
    );
    match gate {
        Gate::Open => {
            runner.info(&match &ctx.windows {
                None => format!("`{env}` has no deploy windows: a deploy may run at any time"),
                Some(w) => format!(
                    "`{env}` is inside its deploy windows ({}): a deploy may run",
                    w.zone()
                ),
            });
            runner.set_output("status", "open")
        }
        Gate::Overridden(shut, reason) => {
            runner.warning(&format!(
                "`{env}` {shut}; deploying anyway: {}: {}",
                windows::OVERRIDE_INPUT,
                single_line(reason)
            ));
            runner.set_output("status", "overridden")
        }
        Gate::Shut(shut) => Err(Failure::refused(format!(
            "`{env}` {shut}; to deploy anyway, give {}",
            windows::OVERRIDE_INPUT
        ))),
    }
}

// ------------------------------------------------------------------ GitHub Deployments

/// The GitHub API (the one bridge) and the Deployments configuration.
struct Gh<'c> {
    api: github::Blocking<'c>,
    on: &'c DeploymentsOn,
}

impl<'c> Gh<'c> {
    fn open(runner: &'c Runner, on: &'c DeploymentsOn) -> Result<Gh<'c>> {
        let api = github::Blocking::open(&on.api, runner)?;
        Ok(Gh { api, on })
    }

    fn status(
        &self,
        state: github::DeploymentState,
        ctx: &Ctx,
        text: String,
    ) -> github::DeploymentStatus {
        github::DeploymentStatus {
            state,
            log_url: ctx.run_url.clone(),
            environment_url: self.on.environment_url.clone(),
            description: Some(single_line(&text)),
            auto_inactive: None,
        }
    }

    /// The run's deployment: the given id (checked to be for this sha and environment), else
    /// the one carrying our run key, else a new one (with `in_progress` posted). Returns the id
    /// and whether it was created now.
    fn deployment(&self, ctx: &Ctx, args: &Inputs, sha: Oid) -> Result<(u64, bool)> {
        let sha_s = sha.to_string();
        if let Some(id) = args.deployment_id {
            let d = self
                .api
                .block(self.api.client.get_deployment(id))
                .map_err(|e| Failure::from(e).context("GitHub Deployment"))?;
            if d.sha != sha_s || d.environment != ctx.env {
                return Err(Failure::refused(format!(
                    "deployment {id} is for {} in `{}`, not {sha} in `{}`; nothing was changed",
                    single_line(&d.sha),
                    single_line(&d.environment),
                    ctx.env
                )));
            }
            return Ok((id, false));
        }
        let found = self
            .api
            .block(
                self.api
                    .client
                    .find_deployment_by_run(&sha_s, &ctx.env, &self.on.run_key),
            )
            .map_err(|e| Failure::from(e).context("GitHub Deployment"))?;
        if let Some(d) = found {
            return Ok((d.id, false));
        }
        let mut extra = serde_json::Map::new();
        if let Some(u) = &ctx.run_url {
            extra.insert("run_url".into(), serde_json::json!(u));
        }
        if let Some(i) = &args.image {
            extra.insert("image".into(), serde_json::json!(i));
        }
        if let Some(d) = &args.plan_digest {
            extra.insert("plan_digest".into(), serde_json::json!(d));
        }
        extra.insert("rollback".into(), serde_json::json!(args.rollback()));
        let what = if args.rollback() {
            "rollback"
        } else {
            "deploy"
        };
        let new = github::NewDeployment {
            sha: sha_s,
            environment: ctx.env.clone(),
            production: ctx.production,
            required_contexts: self.on.required_contexts.clone(),
            run_key: self.on.run_key.clone(),
            description: format!("{what} of {} by run {}", short(sha), ctx.run_id),
            extra,
            transient: false,
        };
        let d = self
            .api
            .block(self.api.client.create_deployment(&new))
            .map_err(|e| Failure::from(e).context("GitHub Deployment"))?;
        self.api
            .block(self.api.client.set_deployment_status(
                d.id,
                &self.status(
                    github::DeploymentState::InProgress,
                    ctx,
                    format!("{what} of {} in progress", short(sha)),
                ),
            ))
            .map_err(|e| Failure::from(e).context("GitHub Deployment status"))?;
        Ok((d.id, true))
    }
}

/// The Deployments configuration, or `None` after setting an empty `deployment-id` and printing
/// the one notice that says why there is no GitHub Deployment.
fn deployments_on<'c>(runner: &Runner, ctx: &'c Ctx) -> Result<Option<&'c DeploymentsOn>> {
    match &ctx.deployments {
        DeploymentsCfg::On(on) => Ok(Some(on)),
        DeploymentsCfg::Off(why) => {
            runner.set_output("deployment-id", "")?;
            if !why.is_empty() {
                runner.notice(why);
            }
            Ok(None)
        }
    }
}

/// `start`: the run's deployment, `in_progress`. No git.
fn start(runner: &Runner, ctx: &Ctx, args: &Inputs, sha: Oid) -> Result<()> {
    runner.set_output("sha", &sha.to_string())?;
    let Some(on) = deployments_on(runner, ctx)? else {
        return runner.set_output("status", "skipped");
    };
    let gh = Gh::open(runner, on)?;
    let (id, created) = gh.deployment(ctx, args, sha)?;
    runner.set_output("deployment-id", &id.to_string())?;
    runner.set_output("status", "started")?;
    runner.info(&format!(
        "GitHub Deployment {id} of {sha} in `{}`: in_progress{}",
        ctx.env,
        if created {
            ""
        } else {
            " (already created by this run)"
        }
    ));
    Ok(())
}

/// `fail`: the run's deployment (found or created), `failure`. No git.
fn fail(runner: &Runner, ctx: &Ctx, args: &Inputs, sha: Oid) -> Result<()> {
    runner.set_output("sha", &sha.to_string())?;
    let Some(on) = deployments_on(runner, ctx)? else {
        return runner.set_output("status", "skipped");
    };
    let gh = Gh::open(runner, on)?;
    let (id, _) = gh.deployment(ctx, args, sha)?;
    runner.set_output("deployment-id", &id.to_string())?;
    gh.api
        .block(gh.api.client.set_deployment_status(
            id,
            &gh.status(
                github::DeploymentState::Failure,
                ctx,
                format!("deploy of {} failed; see the run", short(sha)),
            ),
        ))
        .map_err(|e| Failure::from(e).context("GitHub Deployment status"))?;
    runner.set_output("status", "failed")?;
    runner.info(&format!(
        "GitHub Deployment {id} of {sha} in `{}`: failure",
        ctx.env
    ));
    Ok(())
}

/// `record` with the run's GitHub Deployment around the git part: the deployment exists (and
/// is `in_progress`) before the tags move; `success` after, `failure` when the git part refuses.
fn record_with_deployment(
    runner: &Runner,
    ctx: &Ctx,
    session: &Session,
    args: &Inputs,
    sha: Oid,
) -> Result<()> {
    let Some(on) = deployments_on(runner, ctx)? else {
        return record(runner, ctx, session, args, sha);
    };
    let gh = Gh::open(runner, on)?;
    let (id, _) = gh.deployment(ctx, args, sha).map_err(|mut f| {
        f.message.push_str("; nothing was recorded (pass `skip-github-deployment` to record the git tags without a GitHub Deployment)");
        f
    })?;
    runner.set_output("deployment-id", &id.to_string())?;
    let what = if args.rollback() {
        "rollback"
    } else {
        "deploy"
    };
    match record(runner, ctx, session, args, sha) {
        Ok(()) if ctx.verification.as_ref().is_some_and(|v| v.failed()) => {
            // Recorded (it is what runs now), but GitHub says `failure`, naming the check.
            let failed = ctx
                .verification
                .as_ref()
                .and_then(|v| v.failed_check())
                .unwrap_or_else(|| "a check".into());
            gh.api
                .block(gh.api.client.set_deployment_status(
                    id,
                    &gh.status(
                        github::DeploymentState::Failure,
                        ctx,
                        format!("{what} of {} failed verification: {failed}", short(sha)),
                    ),
                ))
                .map_err(|e| {
                    Failure::from(e).context(format!(
                        "the deploy is recorded in git, but GitHub Deployment {id} could not be marked failure"
                    ))
                })?;
            runner.info(&format!(
                "GitHub Deployment {id}: failure (verification failed: {})",
                single_line(&failed)
            ));
            Ok(())
        }
        Ok(()) => {
            gh.api.block(gh.api.client.set_deployment_status(
                    id,
                    &gh.status(
                        github::DeploymentState::Success,
                        ctx,
                        format!(
                            "{what} of {} recorded{}",
                            short(sha),
                            if ctx.verification.is_some() { " and verified" } else { "" }
                        ),
                    ),
                ),
            )
            .map_err(|e| {
                Failure::from(e).context(format!(
                    "the deploy is recorded in git, but GitHub Deployment {id} could not be marked success"
                ))
            })?;
            runner.info(&format!("GitHub Deployment {id}: success"));
            if ctx.production {
                let marked = gh
                    .api.block(gh.api.client.mark_older_inactive(&ctx.env, id, 30))
                    .map_err(|e| {
                        Failure::from(e).context(format!(
                            "GitHub Deployment {id} is success, but older ones could not be marked inactive"
                        ))
                    })?;
                if !marked.is_empty() {
                    runner.info(&format!(
                        "marked {} older deployment(s) of `{}` inactive: {}",
                        marked.len(),
                        ctx.env,
                        marked
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Ok(())
        }
        Err(f) => {
            let desc = format!("tag-deploy {what} of {} failed: {}", short(sha), f.message);
            if let Err(e) =
                gh.api.block(gh.api.client.set_deployment_status(
                    id,
                    &gh.status(github::DeploymentState::Failure, ctx, desc),
                ))
            {
                runner.warning(&format!(
                    "GitHub Deployment {id} could not be marked failure: {}",
                    single_line(&Failure::from(e).message)
                ));
            }
            Err(f)
        }
    }
}

fn read_state(session: &Session, env: &str, extra: &[&str]) -> Result<(EnvState, git::RemoteRefs)> {
    let prefix = deploy::env_prefix(env);
    let mut prefixes = vec![prefix.as_str()];
    prefixes.extend_from_slice(extra);
    let refs = session.ls_remote(&prefixes)?;
    Ok((EnvState::from_refs(env, &refs), refs))
}

/// Gather what [`deploy::check_record`] needs about `entries` (their tag messages, and whether
/// each commit is on the environment's branch) and judge them.
fn audit(
    session: &Session,
    ctx: &Ctx,
    refs: &git::RemoteRefs,
    entries: &[deploy::HistoryEntry],
) -> Result<deploy::Verdicts> {
    let mut verdicts = deploy::Verdicts::new();
    if entries.is_empty() {
        return Ok(verdicts);
    }
    let branch_ref = format!("refs/heads/{}", ctx.branch);
    let tip = refs.get(&branch_ref).map(|r| r.oid);
    let mut oids: Vec<Oid> = entries.iter().map(|e| e.tag_oid).collect();
    let mut names: Vec<String> = entries.iter().map(|e| deploy::tag_ref(&e.tag)).collect();
    if let Some(t) = tip {
        oids.push(t);
        names.push(branch_ref);
    }
    let names_s: Vec<&str> = names.iter().map(String::as_str).collect();
    // Full history: the ancestry question needs the branch's commits.
    session.ensure(&oids, &names_s)?;
    for e in entries {
        let message = session.tag_message(e.tag_oid).ok();
        let on_branch = match tip {
            // Local questions only: a commit we cannot walk to (missing, or a tag on a tree)
            // is not on the branch.
            Some(t) => session.is_ancestor(e.commit, t).unwrap_or(false),
            None => false,
        };
        let facts = deploy::RecordFacts { message, on_branch };
        verdicts.insert(
            e.tag.clone(),
            deploy::check_record(&ctx.env, &ctx.branch, e, &facts),
        );
    }
    Ok(verdicts)
}

/// Fetch what the ancestry questions of `record` need, then answer whether `sha` is on the
/// branch at `tip` (a commit we cannot walk to is not). A fetch that fails because
/// `deploy/<env>/current` moved since it was read is the lost race it is (F12).
fn on_branch(session: &Session, ctx: &Ctx, state: &EnvState, sha: Oid, tip: Oid) -> Result<bool> {
    let env = &ctx.env;
    let branch_ref = format!("refs/heads/{}", ctx.branch);
    let cur_ref = deploy::current_ref(env);
    // Full history; nothing is fetched when the checkout has it.
    let mut want = vec![tip];
    let mut want_refs = vec![branch_ref.as_str()];
    if let Some(c) = state.current {
        // The commit, not the tag object: if another deploy moves the tag meanwhile, the old
        // object is no longer advertised, but its commit is still on the branch. The lease on
        // the push catches the race.
        want.push(c.peeled);
        want_refs.push(cur_ref.as_str());
    }
    if let Err(e) = session.ensure(&want, &want_refs) {
        let now = session.ls_remote(&[cur_ref.as_str(), branch_ref.as_str()])?;
        let was = state.current.map(|c| c.oid);
        let is = now.get(&cur_ref).map(|r| r.oid);
        if let Some(r) = deploy::moved_during_read(env, was, is) {
            return Err(r.into());
        }
        return Err(e.into());
    }
    match session.is_ancestor(sha, tip) {
        Ok(b) => Ok(b),
        Err(GitError::Missing(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Push one ref update; a lost lease is a refusal (exit 1) worded by `lost`, nothing changed.
fn push_leased(
    session: &Session,
    update: RefUpdate,
    lost: impl FnOnce(&GitError) -> String,
) -> Result<()> {
    match session.push(&[update]) {
        Ok(()) => Ok(()),
        Err(e @ GitError::Lease { .. }) => Err(Failure::refused(lost(&e))),
        Err(e) => Err(e.into()),
    }
}

fn tagger(ctx: &Ctx) -> Tagger {
    match &ctx.actor {
        Some(a) => Tagger {
            name: a.clone(),
            email: format!("{a}@users.noreply.github.com"),
        },
        None => Tagger {
            name: "gitops-actions".into(),
            email: "gitops-actions@users.noreply.github.com".into(),
        },
    }
}

fn short(o: Oid) -> String {
    o.to_string()[..7].to_string()
}

fn hold_details(session: &Session, state: &EnvState) -> Option<Hold> {
    let h = state.hold.as_ref()?;
    let r = deploy::hold_ref(&state.env);
    let depth = session.is_scratch().then_some(1);
    if session
        .ensure_with_depth(&[h.tag_oid], &[r.as_str()], depth)
        .is_err()
    {
        return None;
    }
    session.tag_message(h.tag_oid).ok().map(|m| Hold::parse(&m))
}

fn record(runner: &Runner, ctx: &Ctx, session: &Session, args: &Inputs, sha: Oid) -> Result<()> {
    let env = &ctx.env;
    let branch_ref = format!("refs/heads/{}", ctx.branch);
    let (state, refs) = read_state(session, env, &[branch_ref.as_str()])?;
    let stack = ctx.stack.as_deref();
    let current_tag = match stack {
        Some(s) => deploy::stack_tag(env, s),
        None => deploy::current_tag(env),
    };
    let what = match stack {
        Some(s) => format!("`{env}` stack `{s}`"),
        None => format!("`{env}`"),
    };
    let seen = match stack {
        Some(s) => state.stacks.get(s).copied(),
        None => state.current,
    };
    runner.set_output("tag", &current_tag)?;
    runner.set_output(
        "held",
        if state.hold.is_some() {
            "true"
        } else {
            "false"
        },
    )?;
    runner.set_output(
        "previous-sha",
        &seen.map(|o| o.peeled.to_string()).unwrap_or_default(),
    )?;
    runner.set_output("sha", &sha.to_string())?;

    let rules = deploy::RecordRules {
        env,
        branch: &ctx.branch,
        rollback: args.rollback(),
        stack,
        stacks: ctx.stacks.as_deref(),
    };
    let mut facts = deploy::DeployFacts {
        state,
        branch_tip: refs.get(&branch_ref).map(|r| r.oid),
        sha,
        hold: None,
        on_branch: None,
        behind_current: None,
        verdicts: None,
        stack_records: None,
    };
    let (previous, rollback, outcomes) = loop {
        match deploy::decide_record(&facts, &rules) {
            RecordDecision::Gather(RecordNeed::Hold) => {
                facts.hold = Some(hold_details(session, &facts.state));
            }
            RecordDecision::Gather(RecordNeed::OnBranch { sha, tip }) => {
                let on = on_branch(session, ctx, &facts.state, sha, tip)?;
                facts.on_branch = Some(on);
            }
            RecordDecision::Gather(RecordNeed::BehindCurrent { sha, current }) => {
                facts.behind_current = Some(session.is_ancestor(sha, current)?);
            }
            RecordDecision::Gather(RecordNeed::Verdicts(entries)) => {
                facts.verdicts = Some(audit(session, ctx, &refs, &entries)?);
            }
            RecordDecision::Gather(RecordNeed::StackRecords(tags)) => {
                facts.stack_records = Some(stack_records(session, env, &tags));
            }
            RecordDecision::Refuse(RecordRefusal::StacksNotApplied(n)) => {
                runner.summary(&stacks_summary(env, sha, &n.applied, Some(&n.missing)))?;
                return Err(RecordRefusal::StacksNotApplied(n).into());
            }
            RecordDecision::Refuse(r) => return Err(r.into()),
            RecordDecision::Unchanged { history_tag } => {
                runner.set_output("history-tag", &history_tag)?;
                runner.set_output("status", "unchanged")?;
                runner.info(&format!(
                    "{sha} is already the current deploy of {what} ({current_tag}); nothing to record"
                ));
                return Ok(());
            }
            RecordDecision::Record {
                previous,
                rollback,
                stacks,
            } => break (previous, rollback, stacks),
        }
    };
    if ctx.stacks_unverified {
        return Err(Failure::usage(
            "verification-outcome",
            format!("is required: every changed stack of {} applied and `{env}` declares verification checks (`verify:`); pass the `outcome` output of `tag-deploy verify`", short(sha)),
        ));
    }
    let state = &facts.state;

    let rec = Record {
        environment: env.clone(),
        commit: sha.to_string(),
        run_url: ctx.run_url.clone(),
        run_id: ctx.run_id.clone(),
        actor: ctx.actor.clone(),
        image: args.image.clone(),
        plan_digest: args.plan_digest.clone(),
        rollback_of: if rollback {
            previous.map(|p| p.to_string())
        } else {
            None
        },
        window_override: ctx.override_window.clone(),
        verification: ctx.verification.as_ref().map(|v| v.outcome.clone()),
        verification_duration: ctx.verification.as_ref().and_then(|v| v.duration.clone()),
        verification_checks: ctx.verification.as_ref().and_then(|v| v.checks.clone()),
        data_loss: ctx.data_loss.clone(),
        stack: stack.map(str::to_string),
        stacks: outcomes.clone(),
    };
    if let Some(s) = stack {
        return record_stack(runner, ctx, session, (s, seen), &rec, previous);
    }
    let now = time::OffsetDateTime::now_utc();
    let history = deploy::history_name(env, now, &ctx.run_id, sha);
    let msg = rec.message();
    let who = tagger(ctx);
    let h_oid = session.create_tag_object(&history, sha, &who, &msg)?;
    let c_oid = session.create_tag_object(&current_tag, sha, &who, &msg)?;
    let updates = [
        RefUpdate {
            name: deploy::tag_ref(&history),
            new: Some(h_oid),
            expect: Expect::Absent,
        },
        RefUpdate {
            name: deploy::current_ref(env),
            new: Some(c_oid),
            expect: Expect::from_seen(state.current),
        },
    ];
    match session.push(&updates) {
        Ok(()) => {}
        Err(e @ GitError::Lease { .. }) => {
            return Err(RecordRefusal::LostRace {
                env: env.clone(),
                detail: e.to_string(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    let status = if rollback { "rolled-back" } else { "recorded" };
    runner.set_output("history-tag", &history)?;
    runner.set_output("status", status)?;
    runner.info(&format!(
        "{status} {sha} as the deploy of `{env}`: {current_tag} -> {}, history {history}{}",
        short(sha),
        previous
            .map(|p| format!(" (was {})", short(p)))
            .unwrap_or_default()
    ));
    let mut md = format!(
        "### tag-deploy: {} {}\n\n| | |\n|---|---|\n| commit | `{sha}` |\n| history tag | {} |\n",
        markdown::code(env),
        if rollback { "rolled back" } else { "deployed" },
        markdown::code(&history)
    );
    if let Some(p) = previous {
        md.push_str(&format!("| previous | `{p}` |\n"));
    }
    if let Some(i) = &args.image {
        md.push_str(&format!("| image | {} |\n", markdown::code(i)));
    }
    if ctx.stacks.is_some() {
        md.push('\n');
        md.push_str(&stacks_summary(env, sha, &outcomes, None));
    }
    runner.summary(&md)?;
    Ok(())
}

/// Read the messages of stack records (name, tag object): `None` for one that cannot be read.
fn stack_records(
    session: &Session,
    env: &str,
    tags: &[(String, Oid)],
) -> std::collections::BTreeMap<String, Option<Record>> {
    let names: Vec<String> = tags
        .iter()
        .map(|(n, _)| deploy::stack_ref(env, n))
        .collect();
    let names_s: Vec<&str> = names.iter().map(String::as_str).collect();
    let oids: Vec<Oid> = tags.iter().map(|(_, o)| *o).collect();
    let depth = session.is_scratch().then_some(1);
    let fetched = session.ensure_with_depth(&oids, &names_s, depth).is_ok();
    tags.iter()
        .map(|(n, o)| {
            let rec = fetched
                .then(|| session.tag_message(*o).ok())
                .flatten()
                .map(|m| Record::parse(&m));
            (n.clone(), rec)
        })
        .collect()
}

/// The step summary of an environment's record with stacks: which applied (with digests), and
/// which did not (a refused record: `missing`).
fn stacks_summary(
    env: &str,
    sha: Oid,
    applied: &[deploy::StackOutcome],
    missing: Option<&[(String, deploy::stacks::Missing)]>,
) -> String {
    let mut md = match missing {
        Some(_) => format!(
            "### tag-deploy: {} not recorded: not every changed stack of `{}` applied\n\n{} stays where it was; the next deploy re-plans every stack changed since it.\n\n",
            markdown::code(env),
            short(sha),
            markdown::code(&deploy::current_tag(env))
        ),
        None => String::new(),
    };
    md.push_str("| stack | outcome | plan digest |\n|---|---|---|\n");
    for o in applied {
        md.push_str(&format!(
            "| {} | applied (run {}) | {} |\n",
            markdown::code(&o.stack),
            markdown::escape(&o.run_id),
            markdown::code(o.plan_digest.as_deref().unwrap_or("-"))
        ));
    }
    for (s, m) in missing.unwrap_or_default() {
        let why = match m {
            deploy::stacks::Missing::NoRecord => "not applied (never applied here)".to_string(),
            deploy::stacks::Missing::At(o) => {
                format!("not applied (last applied at `{}`)", short(*o))
            }
            deploy::stacks::Missing::NotARecord => {
                "not applied (its record is not one of ours)".to_string()
            }
        };
        md.push_str(&format!("| {} | {why} | - |\n", markdown::code(s)));
    }
    md
}

/// `record --stack`: move `deploy/<env>/stacks/<stack>/current` (lease: the tag object read).
fn record_stack(
    runner: &Runner,
    ctx: &Ctx,
    session: &Session,
    (stack, seen): (&str, Option<git::RemoteRef>),
    rec: &Record,
    previous: Option<Oid>,
) -> Result<()> {
    let env = &ctx.env;
    let sha = git::parse_oid("sha", &rec.commit)?;
    let tag = deploy::stack_tag(env, stack);
    let oid = session.create_tag_object(&tag, sha, &tagger(ctx), &rec.message())?;
    let update = RefUpdate {
        name: deploy::stack_ref(env, stack),
        new: Some(oid),
        expect: Expect::from_seen(seen),
    };
    match session.push(&[update]) {
        Ok(()) => {}
        Err(e @ GitError::Lease { .. }) => {
            return Err(RecordRefusal::LostRace {
                env: env.clone(),
                detail: e.to_string(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    }
    let status = if rec.rollback_of.is_some() {
        "rolled-back"
    } else {
        "recorded"
    };
    runner.set_output("history-tag", "")?;
    runner.set_output("status", status)?;
    runner.info(&format!(
        "{status} {sha} as the apply of `{env}` stack `{stack}`: {tag} -> {}{}{}",
        short(sha),
        previous
            .map(|p| format!(" (was {})", short(p)))
            .unwrap_or_default(),
        rec.plan_digest
            .as_deref()
            .map(|d| format!(", plan {d}"))
            .unwrap_or_default()
    ));
    runner.summary(&format!(
        "### tag-deploy: {} stack {} applied\n\n| | |\n|---|---|\n| commit | `{sha}` |\n| record | {} |\n| plan digest | {} |\n",
        markdown::code(env),
        markdown::code(stack),
        markdown::code(&tag),
        markdown::code(rec.plan_digest.as_deref().unwrap_or("-"))
    ))?;
    Ok(())
}

/// One history entry with its metadata, for `list`.
#[derive(Debug, serde::Serialize)]
struct ListEntry {
    tag: String,
    sha: String,
    time: String,
    run_id: String,
    current: bool,
    /// `true` when a real record made this entry ([`deploy::check_record`]); a forged entry is
    /// listed (so it can be found and deleted) with the reason, and none of its trailers.
    record_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_a_record: Option<String>,
    #[serde(flatten)]
    record: Option<Record>,
}

fn list(runner: &Runner, ctx: &Ctx, session: &Session, args: &Inputs) -> Result<()> {
    let env = &ctx.env;
    let branch_ref = format!("refs/heads/{}", ctx.branch);
    let (state, refs) = read_state(session, env, &[branch_ref.as_str()])?;
    let n = if args.limit == 0 {
        state.history.len()
    } else {
        args.limit.min(state.history.len())
    };
    let shown = &state.history[..n];
    // Tag messages carry actor, image, plan digest, rollback marks; each entry is checked to be
    // a real record before any of that is shown.
    let verdicts = audit(session, ctx, &refs, shown)?;
    let cur = state.current_commit();
    let mut current_marked = false;
    let entries: Vec<ListEntry> = shown
        .iter()
        .map(|e| {
            let verdict = verdicts.get(&e.tag).cloned();
            let is_current = !current_marked && Some(e.commit) == cur;
            current_marked |= is_current;
            let (record, not_a_record) = match verdict {
                Some(Ok(r)) => (Some(r), None),
                Some(Err(n)) => (None, Some(n.to_string())),
                None => (None, Some(deploy::NotARecord::NotAnnotated.to_string())),
            };
            ListEntry {
                tag: e.tag.clone(),
                sha: e.commit.to_string(),
                time: e.name.iso_time(),
                run_id: e.name.run_id.clone(),
                current: is_current,
                record_verified: record.is_some(),
                not_a_record,
                record,
            }
        })
        .collect();
    for e in &entries {
        if let Some(why) = &e.not_a_record {
            runner.warning(&format!(
                "{} is not a record of a deploy to `{env}` ({why}); it is never a rollback target",
                single_line(&e.tag)
            ));
        }
    }
    let hold = hold_details(session, &state);
    for f in &state.foreign {
        runner.warning(&format!(
            "ignoring {}: not a history tag written by tag-deploy",
            single_line(f)
        ));
    }
    let doc = serde_json::json!({
        "environment": env,
        "current": cur.map(|c| c.to_string()),
        "held": state.hold.is_some(),
        "hold": hold,
        "total": state.history.len(),
        "history": entries,
    });
    runner.set_output("status", "ok")?;
    runner.set_output("sha", &cur.map(|c| c.to_string()).unwrap_or_default())?;
    // When the current deploy was recorded (its history tag's time; plan-gate verify's
    // `deployed-at`): empty when nothing is deployed or the current entry is not listed.
    let deployed_at = entries
        .iter()
        .find(|e| e.current && e.record_verified)
        .map(|e| e.time.clone())
        .unwrap_or_default();
    runner.set_output("deployed-at", &deployed_at)?;
    runner.set_output(
        "held",
        if state.hold.is_some() {
            "true"
        } else {
            "false"
        },
    )?;
    runner.set_output("json", &doc.to_string())?;
    match args.common.format {
        Format::Json => runner.document(&doc)?,
        Format::Text => {
            let mut text = format!(
                "deploy history of `{env}` ({} of {}, newest first){}\n",
                entries.len(),
                state.history.len(),
                match (&state.hold, &hold) {
                    (Some(_), h) => format!(" -- ON HOLD ({})", describe_hold(h.as_ref())),
                    _ => String::new(),
                }
            );
            for e in &entries {
                let r = e.record.as_ref();
                let field =
                    |v: Option<&String>| v.map(|s| single_line(s)).unwrap_or_else(|| "-".into());
                if let Some(why) = &e.not_a_record {
                    text.push_str(&format!(
                        "{}  {}  run {}  NOT A RECORD ({why}){}\n",
                        e.time,
                        &e.sha[..7],
                        e.run_id,
                        if e.current { "  <- current" } else { "" }
                    ));
                    continue;
                }
                text.push_str(&format!(
                    "{}  {}  run {}  {}  {}{}{}\n",
                    e.time,
                    &e.sha[..7],
                    e.run_id,
                    field(r.and_then(|r| r.actor.as_ref())),
                    field(r.and_then(|r| r.image.as_ref())),
                    r.and_then(|r| r.rollback_of.as_ref())
                        .map(|p| format!("  rollback of {}", &p[..p.len().min(7)]))
                        .unwrap_or_default(),
                    if e.current { "  <- current" } else { "" }
                ));
            }
            if entries.is_empty() {
                text.push_str("(no deploys recorded)\n");
            }
            runner.untrusted_block(text.trim_end());
        }
    }
    Ok(())
}

fn resolve(runner: &Runner, ctx: &Ctx, session: &Session, args: &Inputs) -> Result<()> {
    let env = &ctx.env;
    let target = deploy::parse_target("to", env, args.to.as_deref().unwrap_or_default())?;
    let branch_ref = format!("refs/heads/{}", ctx.branch);
    let (state, refs) = read_state(session, env, &[branch_ref.as_str()])?;
    let judged: Vec<deploy::HistoryEntry> = match &target {
        deploy::Target::HistoryTag(t) => state
            .history
            .iter()
            .filter(|h| &h.tag == t)
            .cloned()
            .collect(),
        _ => state.history.clone(),
    };
    // Decided before any output is set: a refused target leaves `sha` empty, so no later step
    // of a rollback workflow can apply it.
    let verdicts = audit(session, ctx, &refs, &judged)?;
    let r = deploy::resolve(&state, &target, &verdicts)?;
    for (tag, why) in &r.skipped {
        runner.warning(&format!(
            "passed over {}: not a record of a deploy to `{env}` ({why})",
            single_line(tag)
        ));
    }
    runner.set_output("sha", &r.commit.to_string())?;
    runner.set_output("tag", &r.entry.tag)?;
    runner.set_output("status", "ok")?;
    runner.set_output(
        "held",
        if state.hold.is_some() {
            "true"
        } else {
            "false"
        },
    )?;
    runner.set_output(
        "previous-sha",
        &state
            .current_commit()
            .map(|c| c.to_string())
            .unwrap_or_default(),
    )?;
    if state.current_commit() == Some(r.commit) {
        runner.notice(&format!(
            "{} is already the current deploy of `{env}`",
            r.commit
        ));
    }
    runner.info(&format!(
        "rollback target for `{env}`: {} (deployed as {} at {})",
        r.commit,
        r.entry.tag,
        r.entry.name.iso_time()
    ));
    Ok(())
}

fn hold(runner: &Runner, ctx: &Ctx, session: &Session, args: &Inputs) -> Result<()> {
    place_hold(
        runner,
        ctx,
        session,
        args.reason.as_deref().unwrap_or_default(),
    )
    .map(|_| ())
}

/// Put the environment on hold (must not exist: the push is the compare-and-swap). `Ok(true)`
/// when this run placed it, `Ok(false)` when it was already on hold.
fn place_hold(runner: &Runner, ctx: &Ctx, session: &Session, reason: &str) -> Result<bool> {
    let env = &ctx.env;
    let branch_ref = format!("refs/heads/{}", ctx.branch);
    let (state, refs) = read_state(session, env, &[branch_ref.as_str()])?;
    let tag = deploy::hold_tag(env);
    runner.set_output("tag", &tag)?;
    runner.set_output("held", "true")?;
    if state.hold.is_some() {
        let h = hold_details(session, &state);
        runner.set_output("status", "already-held")?;
        runner.notice(&format!(
            "`{env}` is already on hold ({}); nothing changed",
            describe_hold(h.as_ref())
        ));
        return Ok(false);
    }
    // The hold points at what is deployed now (or the branch tip before any deploy).
    let (_target_oid, target_ref, commit) = match (state.current, refs.get(&branch_ref)) {
        (Some(c), _) => (c.oid, deploy::current_ref(env), c.peeled),
        (None, Some(b)) => (b.oid, branch_ref.clone(), b.oid),
        (None, None) => {
            return Err(Failure::refused(format!(
            "`{env}` has neither a current deploy nor a branch `{}` on the remote; nothing to hold",
            ctx.branch
        )))
        }
    };
    let depth = session.is_scratch().then_some(1);
    session.ensure_with_depth(&[commit], &[target_ref.as_str()], depth)?;
    let h = Hold {
        reason: reason.to_string(),
        actor: ctx.actor.clone(),
        run_url: ctx.run_url.clone(),
        since: Some(
            time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        ),
    };
    let oid = session.create_tag_object(&tag, commit, &tagger(ctx), &h.message(env))?;
    push_leased(
        session,
        RefUpdate {
            name: deploy::hold_ref(env),
            new: Some(oid),
            expect: Expect::Absent,
        },
        |e| format!("someone else put `{env}` on hold at the same time: {e}"),
    )?;
    runner.set_output("status", "held")?;
    runner.info(&format!(
        "`{env}` is on hold ({tag} on {}): automatic deploys and promotions are refused until `tag-deploy release --environment {env}`",
        short(commit)
    ));
    runner.summary(&format!(
        "### tag-deploy: {} on hold\n\n{}\n",
        markdown::code(env),
        markdown::escape(&h.reason)
    ))?;
    Ok(true)
}

fn release(runner: &Runner, ctx: &Ctx, session: &Session, args: &Inputs) -> Result<()> {
    let env = &ctx.env;
    let (state, _) = read_state(session, env, &[])?;
    let tag = deploy::hold_tag(env);
    runner.set_output("tag", &tag)?;
    let Some(h) = &state.hold else {
        runner.set_output("status", "not-held")?;
        runner.set_output("held", "false")?;
        runner.info(&format!("`{env}` is not on hold; nothing to release"));
        return Ok(());
    };
    push_leased(
        session,
        RefUpdate {
            name: deploy::hold_ref(env),
            new: None,
            expect: Expect::Oid(h.tag_oid),
        },
        |e| format!("the hold on `{env}` changed while releasing it: {e}"),
    )?;
    runner.set_output("status", "released")?;
    runner.set_output("held", "false")?;
    runner.info(&format!(
        "released the hold on `{env}`{}",
        args.reason
            .as_deref()
            .map(|r| format!(" ({})", single_line(r)))
            .unwrap_or_default()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_and_digest_rules() {
        validate_actor("octocat").unwrap();
        validate_actor("github-actions[bot]").unwrap();
        for bad in ["", "a b", "x\n::error::y", "[bot]", "a/b"] {
            assert!(validate_actor(bad).is_err(), "{bad:?}");
        }
        validate::sha256_digest("plan-digest", &format!("sha256:{}", "a".repeat(64))).unwrap();
        for bad in [
            "",
            "sha256:",
            &"a".repeat(64),
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(
                validate::sha256_digest("plan-digest", bad).is_err(),
                "{bad:?}"
            );
        }
        validate_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:abc").unwrap();
        assert!(validate_image("a b").is_err());
        assert!(validate_image("a\nb").is_err());
    }
}
