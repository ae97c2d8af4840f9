//! `promote`: move the commit deployed in one environment onto the next environment's branch,
//! by fast-forward only (compare-and-swap on the branch), or through a promotion pull request
//! that a later run completes the same way once it is approved and its checks pass.
//!
//! Gather -> decide -> act; this module holds no rule. Every input is validated (exit 2) before
//! the first network call. Then the remote is read (`ls-remote`) into [`promote::Facts`] and
//! [`promote::decide`] is asked; each fact it asks for ([`promote::Need`]: the fetched history,
//! an ancestry answer, the deploy tag's time, GitHub's deployment status) is gathered here and
//! it is asked again, until it answers a refusal (rendered, exit 1 or 3), up-to-date, or how to
//! promote. Only then is anything written (changelog, push, pull request, dispatch).

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use git2::Oid;

use super::{BinaryDoc, OutputDoc};
use crate::cli::inputs::{Checkout, GithubTarget, ResolvedCheckout};
use crate::deploy::{self, Record};
use crate::envs::Model;
use crate::exit::{Failure, Result};
use crate::git::{Expect, GitError, RefUpdate, RemoteSpec, Session};
use crate::github::{self, TokenKind};
use crate::plan;
use crate::promote::{
    self, self as rules, short, Changelog, Decision, DeployAge, Facts, HeadBranch, Lacking, Need,
    Promotion, Rules, Via,
};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;
use crate::windows::{self, Windows};

/// How the target branch is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Update the target branch directly (compare-and-swap fast-forward).
    FastForward,
    /// Open/update a promotion PR; fast-forward once it is approved and checks pass.
    PullRequest,
}

/// Promote the deployed commit to the next environment by fast-forward.
#[derive(Debug, Parser)]
#[command(
    name = "promote",
    version,
    about = "Promote the deployed commit to the next environment by fast-forward"
)]
pub struct Args {
    /// Source environment: its `deploy/<from>/current` commit is promoted.
    #[arg(long, env = "GITOPS_FROM")]
    pub from: String,
    /// Target environment (default: the next one in the model). Backwards or skipping is refused.
    #[arg(long, env = "GITOPS_TO")]
    pub to: Option<String>,
    /// `fast-forward` (update the target branch) or `pull-request` (promotion PR first).
    #[arg(long, value_enum, env = "GITOPS_MODE", default_value_t = Mode::FastForward)]
    pub mode: Mode,
    /// Minimum time the candidate must have been deployed in the source (`30m`, `2h`, `1d`).
    #[arg(long, env = "GITOPS_MIN_SOAK")]
    pub min_soak: Option<String>,
    /// Deploy workflow to dispatch on the target branch when the push cannot trigger it
    /// (a `GITHUB_TOKEN` push starts no workflow), e.g. `deploy.yml`.
    #[arg(long, env = "GITOPS_DISPATCH_WORKFLOW")]
    pub dispatch_workflow: Option<String>,
    /// What `github-token` is: `auto` (by its prefix; `ghs_` counts as GITHUB_TOKEN),
    /// `github-token`, `app`, `user`.
    #[arg(long, env = "GITOPS_TOKEN_KIND", default_value = "auto")]
    pub token_kind: String,
    /// Also require the source's GitHub Deployment of the candidate to be `success`.
    #[arg(long, env = "GITOPS_REQUIRE_DEPLOYMENT_STATUS")]
    pub require_deployment_status: bool,
    /// Require the source deploy to have passed `tag-deploy verify` (its `Verification:
    /// passed` trailer). Default: `true` when the source environment declares `verify:`
    /// checks in `.github/gitops.yml`, else `false`.
    #[arg(
        long,
        env = "GITOPS_REQUIRE_VERIFICATION",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub require_verification: Option<bool>,
    /// Check everything and write the changelog, but change nothing (status `would-promote`).
    #[arg(long, env = "GITOPS_DRY_RUN")]
    pub dry_run: bool,
    /// Emergency override: promote outside the target's deploy windows or during a freeze;
    /// the reason is logged and passed to the dispatched deploy workflow.
    #[arg(long, env = "GITOPS_OVERRIDE_WINDOW_REASON")]
    pub override_window_reason: Option<String>,
    /// Token (for git as `x-access-token` and the GitHub API), repository, API URL.
    #[command(flatten)]
    pub github: GithubTarget,
    /// The checkout and its remote.
    #[command(flatten)]
    pub checkout: Checkout,
    /// Environments model file (default: `.github/gitops.yml` in the checkout, else built in).
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The workspace of `from` to promote: only `default` (a preview workspace `pr-<n>` is
    /// never promoted: exit 1).
    #[arg(long, env = "GITOPS_WORKSPACE", default_value = "default")]
    pub workspace: String,
}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "sha",
        description: "The promoted (candidate) commit",
    },
    OutputDoc {
        name: "from",
        description: "Source environment",
    },
    OutputDoc {
        name: "to",
        description: "Target environment",
    },
    OutputDoc {
        name: "status",
        description: "`promoted`, `up-to-date`, `pull-request-opened`, `pull-request-pending`, `would-promote` (dry run) or `refused`",
    },
    OutputDoc {
        name: "refusal",
        description: "Why the promotion was refused, in one line (which rule, and what would satisfy it); empty otherwise",
    },
    OutputDoc {
        name: "pull-request-url",
        description: "The promotion pull request (pull-request mode)",
    },
    OutputDoc {
        name: "changelog",
        description: "Path of a Markdown file listing the promoted commits",
    },
];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "promote",
        description: "Promote the deployed commit to the next environment by fast-forward",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Inputs after validation.
struct Checked {
    model: Model,
    from: crate::envs::Environment,
    to: crate::envs::Environment,
    soak: Option<Duration>,
    require_verification: bool,
    windows: Option<Windows>,
    override_window: Option<String>,
    token: Option<Secret>,
    kind: Option<TokenKind>,
    api: Option<github::Config>,
    checkout: ResolvedCheckout,
}

fn check(runner: &Runner, a: &Args) -> Result<Checked> {
    let checkout = a.checkout.resolve(runner)?;
    let model = Model::load(&checkout.root, a.config.as_deref())?;
    let (from, to) = rules::resolve_pair(&model, &a.from, a.to.as_deref())?;
    rules::never_a_preview(from, &a.workspace)?;
    let (from, to) = (from.clone(), to.clone());
    let soak = a.min_soak.as_deref().map(rules::parse_soak).transpose()?;
    let windows = to.windows()?;
    let require_verification = a.require_verification.unwrap_or(from.checks()?.is_some());
    let override_window = windows::check_override(a.override_window_reason.as_deref())?;
    if let Some(w) = &a.dispatch_workflow {
        rules::validate_workflow(w)?;
    }
    let github = a.github.resolve(runner)?;
    let token = github.token;
    let kind = match &token {
        Some(t) => Some(github::token_kind(t.expose(), &a.token_kind)?),
        None => {
            github::token_kind("", &a.token_kind)?;
            None
        }
    };
    let needs_api = a.mode == Mode::PullRequest
        || a.require_deployment_status
        || to.require_no_drift
        || (a.dispatch_workflow.is_some() && kind.is_some_and(|k| !k.push_triggers_workflows()));
    let api = github.api;
    if needs_api && api.is_none() {
        let what = if a.mode == Mode::PullRequest {
            "`mode: pull-request`"
        } else if a.require_deployment_status {
            "`require-deployment-status`"
        } else if to.require_no_drift {
            "the target's `require-no-drift`"
        } else {
            "`dispatch-workflow`"
        };
        return Err(Failure::usage(
            if token.is_none() { github.token_source } else { "repository" },
            format!("{what} needs the GitHub API: give `{}` and `repository` (or run in Actions, which sets GITHUB_REPOSITORY)", github.token_source),
        ));
    }
    Ok(Checked {
        model,
        from,
        to,
        soak,
        require_verification,
        windows,
        override_window,
        token,
        kind,
        api,
        checkout,
    })
}

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    let c = check(runner, &args)?;
    let spec = RemoteSpec {
        repo_path: Some(c.checkout.root.clone()),
        remote: c.checkout.remote.clone(),
        token: c.token.clone(),
        temp_dir: runner.var("RUNNER_TEMP").map(PathBuf::from),
    };
    let session = Session::open(&spec)?;
    if let Some(s) = session.auth().secret() {
        if c.token.as_ref().map(Secret::expose) != Some(s.expose()) {
            runner.mask(s);
        }
    }
    runner.set_output("from", &c.from.name)?;
    runner.set_output("to", &c.to.name)?;
    runner.info(&format!(
        "promote: {} (branch {}) -> {} (branch {}); {}",
        c.from.name,
        c.from.branch,
        c.to.name,
        c.to.branch,
        c.model.log_line()
    ));
    let mut attempt = 0;
    loop {
        attempt += 1;
        match promote_once(runner, &args, &c, &session) {
            Err(Retry::Lease(e)) if attempt < 3 => {
                runner.warning(&format!(
                    "{e}; another promotion or push moved the target: re-evaluating"
                ));
            }
            Err(Retry::Lease(e)) => break Err(Failure::from(e)),
            Err(Retry::Fail(f)) => break Err(f),
            Ok(()) => break Ok(()),
        }
    }
}

enum Retry {
    /// The target moved under us (F11): evaluate again from the remote.
    Lease(GitError),
    Fail(Failure),
}

impl From<Failure> for Retry {
    fn from(f: Failure) -> Self {
        Retry::Fail(f)
    }
}

impl From<github::ApiError> for Retry {
    fn from(e: github::ApiError) -> Self {
        Retry::Fail(e.into())
    }
}

impl From<GitError> for Retry {
    fn from(e: GitError) -> Self {
        match e {
            GitError::Lease { .. } => Retry::Lease(e),
            other => Retry::Fail(other.into()),
        }
    }
}

/// The GitHub API (the one bridge), opened when first needed.
type Api<'r> = github::Blocking<'r>;

/// `None` when no API is configured (`check` made sure every input that needs it has it).
fn open_api<'r>(runner: &'r Runner, c: &Checked) -> Result<Option<Api<'r>>> {
    c.api
        .as_ref()
        .map(|cfg| github::Blocking::open(cfg, runner))
        .transpose()
}

/// The API, which `check` guarantees for the inputs that need it.
fn required<'a, 'r>(api: Option<&'a Api<'r>>) -> Result<&'a Api<'r>> {
    api.ok_or_else(|| Failure::runtime("internal error: the GitHub API is not configured"))
}

/// One evaluation against the remote: gather the facts the decision asks for, decide, act.
fn promote_once(
    runner: &Runner,
    args: &Args,
    c: &Checked,
    session: &Session,
) -> std::result::Result<(), Retry> {
    let (from, to) = (&c.from, &c.to);
    let src_ref = format!("refs/heads/{}", from.branch);
    let dst_ref = format!("refs/heads/{}", to.branch);
    let cur_ref = deploy::current_ref(&from.name);
    let holds = [deploy::hold_ref(&from.name), deploy::hold_ref(&to.name)];
    let refs = session.ls_remote(&[
        src_ref.as_str(),
        dst_ref.as_str(),
        cur_ref.as_str(),
        holds[0].as_str(),
        holds[1].as_str(),
    ])?;
    let mut facts = Facts {
        from_held: refs.get(&holds[0]).is_some(),
        to_held: refs.get(&holds[1]).is_some(),
        current: refs.get(&cur_ref).map(|r| r.oid),
        source_tip: refs.get(&src_ref).map(|r| r.oid),
        target_tip: refs.get(&dst_ref).map(|r| r.oid),
        ..Facts::default()
    };
    let rules = Rules {
        from,
        to,
        min_soak: c.soak,
        require_deployment_status: args.require_deployment_status,
        require_verification: c.require_verification,
        dry_run: args.dry_run,
        via: match args.mode {
            Mode::FastForward => Via::FastForward,
            Mode::PullRequest => Via::PullRequest,
        },
        windows: c.windows.as_ref(),
        override_window: c.override_window.as_deref(),
        require_no_drift: to.require_no_drift,
    };
    // The changelog is written once, when every git rule passed (before any GitHub rule).
    let mut log: Option<String> = None;
    let mut api: Option<Api> = None;
    loop {
        let decision = promote::decide(&facts, &rules);
        if let (
            Decision::WouldPromote(_) | Decision::FastForward(_) | Decision::PullRequest(_),
            Some((shut, reason)),
        ) = (&decision, promote::window_overridden(&facts, &rules))
        {
            runner.warning(&format!(
                "`{}` {shut}; promoting anyway: {}: {}",
                to.name,
                windows::OVERRIDE_INPUT,
                single_line(reason)
            ));
        }
        match decision {
            Decision::Gather(Need::DeploymentStatus(p)) => {
                log = Some(changelog(runner, session, c, p)?);
                api = open_api(runner, c)?;
                let status = deployment_status(required(api.as_ref())?, &from.name, p.candidate)?;
                facts.deployment_status = Some(status);
            }
            Decision::Gather(Need::DriftIssues) => {
                if api.is_none() {
                    api = open_api(runner, c)?;
                }
                facts.drift = Some(open_drift(required(api.as_ref())?, &to.name)?);
            }
            Decision::Gather(need) => {
                let fetch = [cur_ref.as_str(), src_ref.as_str(), dst_ref.as_str()];
                gather(runner, session, &mut facts, need, &fetch)?;
            }
            Decision::Refuse(r) => {
                if let Some(d) = r.details() {
                    runner.untrusted_block(&d);
                }
                // The reason as outputs too: a workflow (or a log reader) can act on it without
                // parsing the annotation.
                runner.set_output("status", "refused")?;
                runner.set_output("refusal", &single_line(&r.to_string()))?;
                return Err(Failure::from(r).into());
            }
            Decision::UpToDate {
                candidate,
                target_tip,
            } => return Ok(up_to_date(runner, c, candidate, target_tip)?),
            Decision::WouldPromote(p) => {
                changelog(runner, session, c, p)?;
                runner.info(&format!(
                    "dry run: would fast-forward `{}` {} -> {}; nothing changed",
                    to.branch,
                    short(p.target_tip),
                    short(p.candidate)
                ));
                runner.set_output("status", "would-promote")?;
                runner.set_output("pull-request-url", "")?;
                return Ok(());
            }
            decision @ (Decision::FastForward(p) | Decision::PullRequest(p)) => {
                let log = match log.take() {
                    Some(l) => l,
                    None => changelog(runner, session, c, p)?,
                };
                if api.is_none() {
                    api = open_api(runner, c)?;
                }
                let update = RefUpdate {
                    name: dst_ref.clone(),
                    new: Some(p.candidate),
                    expect: Expect::Oid(p.target_tip),
                };
                if let Decision::PullRequest(_) = decision {
                    return pull_request(
                        runner,
                        args,
                        c,
                        session,
                        required(api.as_ref())?,
                        p,
                        &log,
                        &update,
                    );
                }
                session.push(std::slice::from_ref(&update))?;
                finish_promoted(runner, c, args, api.as_ref(), p)?;
                runner.set_output("pull-request-url", "")?;
                return Ok(());
            }
        }
    }
}

/// Gather the git fact a rule asked for (every question after the fetch is local).
fn gather(
    runner: &Runner,
    session: &Session,
    facts: &mut Facts,
    need: Need,
    fetch: &[&str],
) -> Result<()> {
    match need {
        Need::Candidate {
            current,
            source_tip,
            target_tip,
        } => {
            session.ensure(&[current, source_tip, target_tip], fetch)?;
            let candidate = session.peel_commit(current)?;
            runner.set_output("sha", &candidate.to_string())?;
            facts.candidate = Some(candidate);
        }
        Need::OnSource {
            candidate,
            source_tip,
        } => facts.on_source = Some(session.is_ancestor(candidate, source_tip)?),
        Need::InTarget {
            candidate,
            target_tip,
        } => facts.in_target = Some(session.is_ancestor(candidate, target_tip)?),
        Need::TargetBehind {
            candidate,
            target_tip,
        } => facts.target_behind = Some(session.is_ancestor(target_tip, candidate)?),
        Need::Lacking {
            candidate,
            target_tip,
        } => {
            let (commits, more) = session.commits_between(Some(candidate), target_tip, 20)?;
            facts.lacking = Some(Lacking { commits, more });
        }
        Need::Age { current } => {
            facts.age = Some(DeployAge {
                deployed_at: session.tag_time(current),
                now: clock(facts).as_second(),
            })
        }
        Need::Clock => facts.now = Some(clock(facts)),
        Need::Verification { current } => {
            // An unreadable tag message is an unverified deploy (fail closed).
            let record = session
                .tag_message(current)
                .map(|m| Record::parse(&m))
                .unwrap_or_default();
            facts.verification = Some(promote::Verified::from_record(
                &record,
                session.tag_time(current),
            ));
        }
        Need::DeploymentStatus(_) | Need::DriftIssues => {
            return Err(Failure::runtime(
                "internal error: GitHub facts are not git facts",
            ))
        }
    }
    Ok(())
}

/// The clock, read once per evaluation: every rule that needs the time sees the same instant.
fn clock(facts: &mut Facts) -> jiff::Timestamp {
    *facts.now.get_or_insert_with(windows::now)
}

/// `env`'s open drift issues (its own and its stacks'), as `plan-gate drift` keeps them.
fn open_drift(api: &Api, env: &str) -> Result<promote::OpenDrift> {
    let (issues, incomplete) =
        api.block(api.client.open_issues_matching(plan::drift::LABEL, |body| {
            plan::drift::marks_environment(body, env)
        }))?;
    Ok(promote::OpenDrift {
        issues: issues.iter().map(|i| i.number).collect(),
        incomplete,
    })
}

/// GitHub's latest status of `env`'s deployment of `candidate` (`None`: none, or no status).
fn deployment_status(api: &Api, env: &str, candidate: Oid) -> Result<Option<String>> {
    let sha = candidate.to_string();
    let cl = &api.client;
    Ok(api.block(async {
        let list = cl.list_deployments(env, Some(&sha), 1).await?;
        match list.first() {
            Some(d) => cl.latest_status(d.id).await,
            None => Ok(None),
        }
    })?)
}

fn up_to_date(runner: &Runner, c: &Checked, candidate: Oid, target_tip: Oid) -> Result<()> {
    runner.info(&format!(
        "nothing to promote: `{}` ({}) already contains {}",
        c.to.branch,
        short(target_tip),
        short(candidate)
    ));
    runner.set_output("status", "up-to-date")?;
    runner.set_output("pull-request-url", "")?;
    let path = write_changelog(
        runner,
        &format!(
            "## Promote `{}` to `{}`\n\nNothing to promote: `{}` already contains `{}`.\n",
            c.from.name, c.to.name, c.to.branch, candidate
        ),
    )?;
    runner.set_output("changelog", &path)
}

/// Render and write the changelog of a promotion every git rule allowed; returns the Markdown.
fn changelog(runner: &Runner, session: &Session, c: &Checked, p: Promotion) -> Result<String> {
    let sha = p.candidate.to_string();
    let (commits, truncated) = session.commits_between(Some(p.target_tip), p.candidate, 200)?;
    let record = session
        .tag_message(p.deploy_tag)
        .map(|m| Record::parse(&m))
        .unwrap_or_default();
    let log = Changelog {
        from: &c.from.name,
        to: &c.to.name,
        to_branch: &c.to.branch,
        sha: &sha,
        commits: &commits,
        truncated,
        deploy: &record,
    }
    .markdown();
    let changelog_path = write_changelog(runner, &log)?;
    runner.set_output("changelog", &changelog_path)?;
    runner.info(&format!(
        "candidate {} ({} commit(s) ahead of `{}` at {})",
        short(p.candidate),
        commits.len(),
        c.to.branch,
        short(p.target_tip)
    ));
    Ok(log)
}

/// Pull-request mode: open the promotion pull request, or wait on it, or complete it.
#[allow(clippy::too_many_arguments)]
fn pull_request(
    runner: &Runner,
    args: &Args,
    c: &Checked,
    session: &Session,
    api: &Api,
    p: Promotion,
    log: &str,
    update: &RefUpdate,
) -> std::result::Result<(), Retry> {
    let (from, to) = (&c.from, &c.to);
    let sha = p.candidate.to_string();
    let head = promote::pr_branch(&to.name, &sha);
    let head_ref = format!("refs/heads/{head}");
    let title = format!(
        "Promote {} to {}: {}",
        from.name,
        to.name,
        short(p.candidate)
    );
    let existing = api.block(api.client.find_pull_request(&head, &to.branch, "open"))?;
    let Some(pr) = existing else {
        let seen = session.ls_remote(&[head_ref.as_str()])?.get(&head_ref);
        match promote::head_branch(&head, seen.map(|r| r.oid), p.candidate)
            .map_err(Failure::from)?
        {
            HeadBranch::Present => {}
            HeadBranch::Push => session.push(&[RefUpdate {
                name: head_ref.clone(),
                new: Some(p.candidate),
                expect: Expect::Absent,
            }])?,
        }
        let pr = api.block(
            api.client
                .create_pull_request(&head, &to.branch, &title, log),
        )?;
        runner.info(&format!("opened promotion pull request #{}", pr.number));
        runner.set_output("status", "pull-request-opened")?;
        runner.set_output("pull-request-url", &pr.html_url)?;
        runner.summary(log)?;
        return Ok(());
    };
    runner.set_output("pull-request-url", &pr.html_url)?;
    let approval = api.block(api.client.approval(pr.number, &sha))?;
    let checks = api.block(api.client.checks(&sha))?;
    if let Some(why) = promote::pull_request_waits(&approval, &checks, pr.draft) {
        api.block(api.client.update_pull_request(pr.number, &title, log))?;
        runner.info(&format!(
            "promotion pull request #{} is not ready: {why}",
            pr.number
        ));
        runner.set_output("status", "pull-request-pending")?;
        return Ok(());
    }
    runner.info(&format!(
        "promotion pull request #{} is approved and green: fast-forwarding `{}`",
        pr.number, to.branch
    ));
    session.push(std::slice::from_ref(update))?;
    finish_promoted(runner, c, args, Some(api), p)?;
    Ok(())
}

fn finish_promoted(
    runner: &Runner,
    c: &Checked,
    args: &Args,
    api: Option<&Api>,
    p: Promotion,
) -> Result<()> {
    runner.notice(&format!(
        "promoted {} to `{}`: `{}` {} -> {} (fast-forward)",
        short(p.candidate),
        c.to.name,
        c.to.branch,
        short(p.target_tip),
        short(p.candidate)
    ));
    runner.set_output("status", "promoted")?;
    let triggers = c.kind.is_none_or(|k| k.push_triggers_workflows());
    match (&args.dispatch_workflow, api) {
        (Some(w), Some(api)) if !triggers => {
            // An override reaches the deploy run, whose window check would refuse it otherwise.
            let mut inputs = serde_json::Map::new();
            if let (Some(reason), Some(_)) = (&c.override_window, &c.windows) {
                inputs.insert(windows::OVERRIDE_INPUT.into(), reason.clone().into());
            }
            api.block(api.client.dispatch_workflow(w, &c.to.branch, &inputs))
                .map_err(|e| {
                    Failure::from(e).context(format!(
                        "`{}` moved, but dispatching `{w}` failed; start it by hand",
                        c.to.branch
                    ))
                })?;
            runner.info(&format!(
                "dispatched `{w}` on `{}` (pushes made with GITHUB_TOKEN start no workflow)",
                c.to.branch
            ));
        }
        (None, _) if !triggers => runner.warning(&format!(
            "`{}` was pushed with GITHUB_TOKEN, which starts no workflow: set `dispatch-workflow` or use a GitHub App token so `{}` deploys",
            c.to.branch, c.to.name
        )),
        _ => {}
    }
    Ok(())
}

fn write_changelog(runner: &Runner, text: &str) -> Result<String> {
    let dir = runner
        .var("RUNNER_TEMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!(
        "gitops-promote-changelog-{}.md",
        crate::runner::random_token()
    ));
    std::fs::write(&path, text)
        .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
    Ok(path.display().to_string())
}
