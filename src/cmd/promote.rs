//! `promote`: move the commit deployed in one environment onto the next environment's branch,
//! by fast-forward only (compare-and-swap on the branch), or through a promotion pull request
//! that a later run completes the same way once it is approved and its checks pass.
//!
//! Order of work: every input is validated (exit 2) before the first network call; then the
//! remote is read (`ls-remote`), the needed history fetched, the rules applied (exit 1 with the
//! reason), and only then is anything written.

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use git2::Oid;

use super::{BinaryDoc, OutputDoc};
use crate::envs::Model;
use crate::exit::{Failure, Result};
use crate::git::{Expect, GitError, RefUpdate, RemoteSpec, Session};
use crate::github::{self, Approval, Checks, TokenKind};
use crate::promote::{self as rules, Changelog, DeployInfo};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;

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
    /// Check everything and write the changelog, but change nothing (status `would-promote`).
    #[arg(long, env = "GITOPS_DRY_RUN")]
    pub dry_run: bool,
    /// Token for git (as `x-access-token`) and the GitHub API (the action passes `github.token`).
    #[arg(long, env = "GITOPS_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// Git remote URL or path (default: the checkout's `origin`).
    #[arg(long, env = "GITOPS_REMOTE")]
    pub remote: Option<String>,
    /// The checkout (default: the working directory).
    #[arg(long, env = "GITOPS_REPO_PATH")]
    pub repo_path: Option<PathBuf>,
    /// Environments model file (default: `.github/gitops.yml` in the checkout, else built in).
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// `owner/repo` (default: `GITHUB_REPOSITORY`).
    #[arg(long, env = "GITOPS_REPOSITORY")]
    pub repository: Option<String>,
    /// GitHub REST API URL (default: `GITHUB_API_URL`, else https://api.github.com).
    #[arg(long, env = "GITOPS_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
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
        description: "`promoted`, `up-to-date`, `pull-request-opened`, `pull-request-pending` or `would-promote` (dry run)",
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
    token: Option<Secret>,
    kind: Option<TokenKind>,
    api: Option<github::Config>,
}

fn check(runner: &Runner, a: &Args) -> Result<Checked> {
    let root = a.repo_path.clone().unwrap_or_else(|| PathBuf::from("."));
    let model = Model::load(&root, a.config.as_deref())?;
    let (from, to) = rules::resolve_pair(&model, &a.from, a.to.as_deref())?;
    let (from, to) = (from.clone(), to.clone());
    let soak = a.min_soak.as_deref().map(rules::parse_soak).transpose()?;
    if let Some(w) = &a.dispatch_workflow {
        rules::validate_workflow(w)?;
    }
    if let Some(r) = &a.remote {
        crate::git::validate_remote_url("remote", r)?;
    }
    let token = a
        .github_token
        .clone()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    if let Some(t) = &token {
        runner.mask(t);
        if t.expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Failure::usage(
                "github-token",
                "contains whitespace or control characters",
            ));
        }
    }
    let kind = match &token {
        Some(t) => Some(github::token_kind(t.expose(), &a.token_kind)?),
        None => {
            github::token_kind("", &a.token_kind)?;
            None
        }
    };
    let needs_api = a.mode == Mode::PullRequest
        || a.require_deployment_status
        || (a.dispatch_workflow.is_some() && kind.is_some_and(|k| !k.push_triggers_workflows()));
    let api = github::config_from(
        runner,
        token.as_ref(),
        a.repository.as_deref(),
        a.github_api_url.as_deref(),
    )?;
    if needs_api && api.is_none() {
        let what = if a.mode == Mode::PullRequest {
            "`mode: pull-request`"
        } else if a.require_deployment_status {
            "`require-deployment-status`"
        } else {
            "`dispatch-workflow`"
        };
        return Err(Failure::usage(
            if token.is_none() { "github-token" } else { "repository" },
            format!("{what} needs the GitHub API: give `github-token` and `repository` (or run in Actions, which sets GITHUB_REPOSITORY)"),
        ));
    }
    Ok(Checked {
        model,
        from,
        to,
        soak,
        token,
        kind,
        api,
    })
}

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    let c = check(runner, &args)?;
    let spec = RemoteSpec {
        repo_path: args.repo_path.clone(),
        remote: args.remote.clone(),
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
    // GitHub client notices (rate-limit waits) arrive from inside async calls: a scoped thread
    // prints them through the runner as they come.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::scope(|s| {
        s.spawn(|| {
            for m in rx {
                runner.info(&m);
            }
        });
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match promote_once(runner, &args, &c, &session, tx.clone()) {
                Err(Retry::Lease(e)) if attempt < 3 => {
                    runner.warning(&format!(
                        "{e}; another promotion or push moved the target: re-evaluating"
                    ));
                }
                Err(Retry::Lease(e)) => break Err(Failure::from(e)),
                Err(Retry::Fail(f)) => break Err(f),
                Ok(()) => break Ok(()),
            }
        };
        drop(tx);
        result
    })
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

impl From<GitError> for Retry {
    fn from(e: GitError) -> Self {
        match e {
            GitError::Lease { .. } => Retry::Lease(e),
            other => Retry::Fail(other.into()),
        }
    }
}

fn short(o: Oid) -> String {
    o.to_string()[..7].to_string()
}

fn promote_once(
    runner: &Runner,
    args: &Args,
    c: &Checked,
    session: &Session,
    notices: std::sync::mpsc::Sender<String>,
) -> std::result::Result<(), Retry> {
    let (from, to) = (&c.from, &c.to);
    let src_ref = format!("refs/heads/{}", from.branch);
    let dst_ref = format!("refs/heads/{}", to.branch);
    let cur_ref = rules::current_ref(&from.name);
    let holds = [rules::hold_ref(&from.name), rules::hold_ref(&to.name)];
    let refs = session.ls_remote(&[
        src_ref.as_str(),
        dst_ref.as_str(),
        cur_ref.as_str(),
        holds[0].as_str(),
        holds[1].as_str(),
    ])?;
    // 1. Holds (set by a rollback) stop promotions out of and into an environment.
    for (env, h) in [(&from.name, &holds[0]), (&to.name, &holds[1])] {
        if refs.get(h).is_some() {
            return Err(Failure::refused(format!(
                "`{env}` is on hold ({}); release it with `tag-deploy release --environment {env}` before promoting",
                h.trim_start_matches("refs/tags/")
            ))
            .into());
        }
    }
    // 2. The candidate is what the source environment runs now.
    let Some(current) = refs.get(&cur_ref) else {
        return Err(Failure::refused(format!(
            "nothing is deployed in `{}`: {} does not exist (tag-deploy record creates it after a successful deploy)",
            from.name,
            cur_ref.trim_start_matches("refs/tags/")
        ))
        .into());
    };
    let Some(src) = refs.get(&src_ref) else {
        return Err(Failure::runtime(format!(
            "the source branch `{}` does not exist on the remote",
            from.branch
        ))
        .into());
    };
    let Some(dst) = refs.get(&dst_ref) else {
        return Err(Failure::runtime(format!(
            "the target branch `{}` does not exist on the remote (create it once from the first commit you want in `{}`)",
            to.branch, to.name
        ))
        .into());
    };
    session.ensure(
        &[current.oid, src.oid, dst.oid],
        &[cur_ref.as_str(), src_ref.as_str(), dst_ref.as_str()],
    )?;
    let candidate = session.peel_commit(current.oid)?;
    let sha = candidate.to_string();
    runner.set_output("sha", &sha)?;
    // 3. The candidate must be on the source branch.
    if !session.is_ancestor(candidate, src.oid)? {
        return Err(Failure::refused(format!(
            "the commit deployed in `{}` ({}) is not on its branch `{}`; redeploy `{}` from its branch first",
            from.name, short(candidate), from.branch, from.name
        ))
        .into());
    }
    // 4. Already there?
    if session.is_ancestor(candidate, dst.oid)? {
        runner.info(&format!(
            "nothing to promote: `{}` ({}) already contains {}",
            to.branch,
            short(dst.oid),
            short(candidate)
        ));
        runner.set_output("status", "up-to-date")?;
        runner.set_output("pull-request-url", "")?;
        let path = write_changelog(
            runner,
            &format!(
                "## Promote `{}` to `{}`\n\nNothing to promote: `{}` already contains `{}`.\n",
                from.name, to.name, to.branch, sha
            ),
        )?;
        runner.set_output("changelog", &path)?;
        return Ok(());
    }
    // 5. Divergence: the target has commits the candidate lacks.
    if !session.is_ancestor(dst.oid, candidate)? {
        let (extra, more) = session.commits_between(Some(candidate), dst.oid, 20)?;
        let list: Vec<String> = extra
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
        runner.untrusted_block(&format!(
            "commits on `{}` that `{}` lacks:\n{}{}",
            to.branch,
            from.name,
            list.join("\n"),
            if more { "\n(more left out)" } else { "" }
        ));
        return Err(Failure::refused(format!(
            "`{}` has {}{} commit(s) that the candidate {} lacks (first: {}); a fast-forward is impossible. Bring them into `{}` (merge or revert there), deploy, then promote",
            to.branch,
            extra.len(),
            if more { "+" } else { "" },
            short(candidate),
            extra.first().map(|c| short(c.id)).unwrap_or_default(),
            from.branch
        ))
        .into());
    }
    // 6. Soak time, from the deploy tag's time.
    let tag_time = session
        .repo()
        .find_tag(current.oid)
        .ok()
        .and_then(|t| t.tagger().map(|s| s.when().seconds()));
    let deploy_info = session
        .tag_message(current.oid)
        .map(|m| DeployInfo::from_message(&m))
        .unwrap_or_default();
    if let Some(soak) = c.soak {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Some(at) = tag_time else {
            return Err(Failure::refused(format!(
                "`min-soak` is set but {} is not an annotated tag with a time",
                cur_ref.trim_start_matches("refs/tags/")
            ))
            .into());
        };
        let age = now.saturating_sub(at).max(0) as u64;
        if age < soak.as_secs() {
            return Err(Failure::refused(format!(
                "{} has been deployed in `{}` for {} s; `min-soak` asks for {} s (try again in {} s)",
                short(candidate),
                from.name,
                age,
                soak.as_secs(),
                soak.as_secs() - age
            ))
            .into());
        }
    }
    let (commits, truncated) = session.commits_between(Some(dst.oid), candidate, 200)?;
    let log = Changelog {
        from: &from.name,
        to: &to.name,
        to_branch: &to.branch,
        sha: &sha,
        commits: &commits,
        truncated,
        deploy: &deploy_info,
    }
    .markdown();
    let changelog_path = write_changelog(runner, &log)?;
    runner.set_output("changelog", &changelog_path)?;
    runner.info(&format!(
        "candidate {} ({} commit(s) ahead of `{}` at {})",
        short(candidate),
        commits.len(),
        to.branch,
        short(dst.oid)
    ));

    if args.dry_run {
        runner.info(&format!(
            "dry run: would fast-forward `{}` {} -> {}; nothing changed",
            to.branch,
            short(dst.oid),
            short(candidate)
        ));
        runner.set_output("status", "would-promote")?;
        runner.set_output("pull-request-url", "")?;
        return Ok(());
    }
    let rt = if c.api.is_some() {
        Some(crate::cli::runtime()?)
    } else {
        None
    };
    let client = match (&rt, &c.api) {
        (Some(rt), Some(cfg)) => {
            let _g = rt.enter();
            let tx = std::sync::Mutex::new(notices);
            Some(github::Client::new(cfg, move |m| {
                let _ = tx.lock().map(|t| t.send(m.to_string()));
            })?)
        }
        _ => None,
    };
    // 7. Optional: GitHub's own record of the source deploy.
    if args.require_deployment_status {
        let (rt, cl) = (rt.as_ref().expect("api"), client.as_ref().expect("api"));
        let ok = rt
            .block_on(async {
                let list = cl.list_deployments(&from.name, Some(&sha), 1).await?;
                match list.first() {
                    Some(d) => cl.latest_status(d.id).await,
                    None => Ok(None),
                }
            })
            .map_err(Failure::from)?;
        if ok.as_deref() != Some("success") {
            return Err(Failure::refused(format!(
                "the GitHub Deployment of {} in `{}` is {} (must be `success`)",
                short(candidate),
                from.name,
                ok.map(|s| format!("`{}`", single_line(&s)))
                    .unwrap_or_else(|| "missing".into())
            ))
            .into());
        }
    }
    let update = RefUpdate {
        name: dst_ref.clone(),
        new: Some(candidate),
        expect: Expect::Oid(dst.oid),
    };
    match args.mode {
        Mode::FastForward => {
            session.push(std::slice::from_ref(&update))?;
            finish_promoted(
                runner,
                c,
                args,
                rt.as_ref(),
                client.as_ref(),
                candidate,
                dst.oid,
            )?;
            runner.set_output("pull-request-url", "")?;
        }
        Mode::PullRequest => {
            let (rt, cl) = (rt.as_ref().expect("api"), client.as_ref().expect("api"));
            let head = rules::pr_branch(&to.name, &sha);
            let head_ref = format!("refs/heads/{head}");
            let title = format!("Promote {} to {}: {}", from.name, to.name, short(candidate));
            let existing = rt
                .block_on(cl.find_pull_request(&head, &to.branch, "open"))
                .map_err(Failure::from)?;
            let Some(pr) = existing else {
                // Push the head branch (must not exist, or already hold the candidate).
                let seen = session.ls_remote(&[head_ref.as_str()])?.get(&head_ref);
                match seen {
                    Some(r) if r.oid == candidate => {}
                    Some(r) => {
                        return Err(Failure::refused(format!(
                            "branch `{head}` exists at {} instead of {}; delete it or let it be",
                            short(r.oid),
                            short(candidate)
                        ))
                        .into())
                    }
                    None => session.push(&[RefUpdate {
                        name: head_ref.clone(),
                        new: Some(candidate),
                        expect: Expect::Absent,
                    }])?,
                }
                let pr = rt
                    .block_on(cl.create_pull_request(&head, &to.branch, &title, &log))
                    .map_err(Failure::from)?;
                runner.info(&format!("opened promotion pull request #{}", pr.number));
                runner.set_output("status", "pull-request-opened")?;
                runner.set_output("pull-request-url", &pr.html_url)?;
                runner.summary(&log)?;
                return Ok(());
            };
            runner.set_output("pull-request-url", &pr.html_url)?;
            let approval = rt
                .block_on(cl.approval(pr.number, &sha))
                .map_err(Failure::from)?;
            let checks = rt.block_on(cl.checks(&sha)).map_err(Failure::from)?;
            let ready = matches!(approval, Approval::Approved(_))
                && matches!(checks, Checks::Passed { .. })
                && !pr.draft;
            if !ready {
                rt.block_on(cl.update_pull_request(pr.number, &title, &log))
                    .map_err(Failure::from)?;
                let why = match (&approval, &checks) {
                    (Approval::ChangesRequested(u), _) => {
                        format!("changes requested by {}", single_line(&u.join(", ")))
                    }
                    (Approval::Pending, _) => "waiting for an approval on the head commit".into(),
                    (_, Checks::Failed(n)) => {
                        format!("checks failed: {}", single_line(&n.join(", ")))
                    }
                    (_, Checks::Pending(n)) => {
                        format!("checks running: {}", single_line(&n.join(", ")))
                    }
                    _ => "the pull request is a draft".into(),
                };
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
            session.push(std::slice::from_ref(&update))?;
            finish_promoted(runner, c, args, Some(rt), Some(cl), candidate, dst.oid)?;
        }
    }
    Ok(())
}

fn finish_promoted(
    runner: &Runner,
    c: &Checked,
    args: &Args,
    rt: Option<&tokio::runtime::Runtime>,
    client: Option<&github::Client>,
    candidate: Oid,
    old: Oid,
) -> Result<()> {
    runner.notice(&format!(
        "promoted {} to `{}`: `{}` {} -> {} (fast-forward)",
        short(candidate),
        c.to.name,
        c.to.branch,
        short(old),
        short(candidate)
    ));
    runner.set_output("status", "promoted")?;
    let triggers = c.kind.is_none_or(|k| k.push_triggers_workflows());
    match (&args.dispatch_workflow, rt, client) {
        (Some(w), Some(rt), Some(cl)) if !triggers => {
            rt.block_on(cl.dispatch_workflow(w, &c.to.branch, &serde_json::Map::new()))
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
        (None, _, _) if !triggers => runner.warning(&format!(
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
