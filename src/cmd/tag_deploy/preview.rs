//! The preview verbs of `tag-deploy`: `preview-check`, `preview-open`, `preview-close`,
//! `preview-sweep`.
//!
//! A preview is pull request `n`'s head applied into the Terraform workspace `pr-<n>` of an
//! environment that allows previews ([`crate::envs::check_workspace`]). Its record is the tag
//! `deploy/<env>/preview/pr-<n>` ([`deploy::preview_tag`]), never `deploy/<env>/current` or its
//! history ([`deploy::workspace_scope`]); its GitHub Deployment is the transient environment
//! `<env>/pr-<n>`; its PR comment is one upserted comment (key `preview/<env>/pr-<n>`).
//! The rules live in `envs` (who gets a preview) and `deploy` (names, records, the sweep's
//! verdict); this module gathers the facts and does the I/O.

use std::path::PathBuf;

use git2::Oid;

use super::{push_leased, short, tagger, validate_environment_url, Ctx, Inputs as AllInputs};
use crate::cli::inputs::Github;
use crate::deploy::{self, PrState, Preview};
use crate::envs::{PreviewSettings, MAX_AGE_RULE};
use crate::exit::{Failure, Result};
use crate::git::{self, Expect, RefUpdate, Session};
use crate::github::{self, ApiError};
use crate::plan::{comment, Action, Limits};
use crate::runner::{markdown, single_line, Runner};
use crate::validate;

/// The preview verbs' own inputs (what a verb does not take stays `None`).
#[derive(Debug, Clone, Default)]
pub(super) struct Inputs {
    pub head_repository: Option<String>,
    pub labels: Option<String>,
    pub comment_author: Option<String>,
    pub sha: Option<String>,
    pub environment_url: Option<String>,
    pub plan: Option<PathBuf>,
    pub max_age: Option<String>,
}

/// The validated context of a preview verb.
pub(super) struct Context {
    /// The pull request (`None` for the sweep).
    pr: Option<u64>,
    settings: PreviewSettings,
    /// The API, when a token and the repository are known.
    api: Option<github::Config>,
    author: Option<String>,
    /// preview-check: whether the head is in this repository.
    same_repository: bool,
    labels: Vec<String>,
    /// preview-open: the commit, the URL.
    sha: Option<Oid>,
    url: Option<String>,
    /// preview-open/close: the resources of the applied plan (created / destroyed), scrubbed.
    resources: Option<Vec<String>>,
    max_age: std::time::Duration,
    reason: Option<String>,
}

/// At most this many resource addresses are listed in the comment.
const RESOURCES_MAX: usize = 30;

/// Validate the preview verbs' inputs, before any network call (exit 2).
pub(super) fn prepare(
    runner: &Runner,
    args: &AllInputs,
    env: &str,
    pr: Option<u64>,
    settings: &PreviewSettings,
    github: &Github,
) -> Result<Context> {
    let p = &args.preview;
    if let Some(pr) = pr {
        git::validate_full_ref("workspace", &deploy::preview_ref(env, pr))?;
    }
    let author = p
        .comment_author
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(crate::cmd::plan_gate::comment_author)
        .transpose()?;
    let repository = github.api.as_ref().map(|a| a.repository.clone());
    let same_repository = match (args.command, &p.head_repository) {
        (super::Command::PreviewCheck, None) => {
            return Err(Failure::usage(
                "head-repository",
                "is required for `preview-check` (the event's `pull_request.head.repo.full_name`): without it a fork cannot be told apart",
            ))
        }
        (super::Command::PreviewCheck, Some(h)) => {
            github::validate_repository("head-repository", h)?;
            let Some(r) = &repository else {
                return Err(Failure::usage(
                    "repository",
                    "is required for `preview-check` (or GITHUB_REPOSITORY): the head repository is compared with it",
                ));
            };
            h.eq_ignore_ascii_case(r)
        }
        _ => true,
    };
    let mut labels = Vec::new();
    for l in p
        .labels
        .as_deref()
        .unwrap_or_default()
        .split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        deploy::validate_text("labels", l, 100)?;
        labels.push(l.to_string());
    }
    let sha = match args.command {
        super::Command::PreviewOpen => Some(super::sha_input(runner, p.sha.as_deref())?),
        _ => None,
    };
    let url = p
        .environment_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(validate_environment_url)
        .transpose()?;
    let max_age = match &p.max_age {
        Some(m) => validate::duration("max-age", m, &MAX_AGE_RULE)?,
        None => settings.max_age,
    };
    if args.command == super::Command::PreviewSweep && github.api.is_none() {
        return Err(Failure::usage(
            "github-token",
            "`preview-sweep` reads each preview's pull request: give a token and `repository` (or run in Actions)",
        ));
    }
    // The applied plan is read now (a local file): a bad one is exit 2 before any call.
    let resources = match &p.plan {
        None => None,
        Some(path) => {
            let plan = crate::plan::load(path, &Limits::default()).map_err(|e| e.into_failure())?;
            let sc = plan.scrubber();
            let want = |a: Action| match args.command {
                super::Command::PreviewClose => a.deletes(),
                _ => a.creates(),
            };
            Some(
                plan.changes
                    .iter()
                    .filter(|c| c.mode == "managed" && want(c.action))
                    .map(|c| sc.scrub(&c.address))
                    .collect(),
            )
        }
    };
    Ok(Context {
        pr,
        settings: settings.clone(),
        api: github.api.clone(),
        author,
        same_repository,
        labels,
        sha,
        url,
        resources,
        max_age,
        reason: args.reason.clone(),
    })
}

fn pctx(ctx: &Ctx) -> &Context {
    ctx.preview
        .as_ref()
        .expect("a preview verb has its context")
}

/// The pull request of a one-preview verb.
fn the_pr(p: &Context) -> u64 {
    p.pr.expect("workspace_scope gave the preview verbs their PR")
}

/// Upsert the preview's one PR comment; a failure is a warning (the preview itself stands).
fn upsert_comment(runner: &Runner, ctx: &Ctx, body: &str) -> Result<String> {
    let p = pctx(ctx);
    let Some(api) = &p.api else {
        runner.notice("preview comment skipped: no token or no repository (GITHUB_REPOSITORY)");
        runner.set_output("comment-url", "")?;
        return Ok(String::new());
    };
    let pr = the_pr(p);
    let key = deploy::preview_comment_key(&ctx.env, pr);
    let body = format!("{body}\n{}\n", comment::marker(&key));
    let done = github::Blocking::open(api, runner).and_then(|gh| {
        gh.block(
            gh.client
                .upsert_comment(pr, &key, p.author.as_deref(), &body),
        )
        .map_err(Failure::from)
    });
    let url = match done {
        Ok(comment::Outcome::Created { url, notes, .. })
        | Ok(comment::Outcome::Updated { url, notes, .. }) => {
            for n in &notes {
                runner.warning(n);
            }
            runner.info(&format!("preview comment: {}", single_line(&url)));
            url
        }
        Err(e) => {
            runner.warning(&format!("preview comment not written: {}", e.message));
            String::new()
        }
    };
    runner.set_output("comment-url", &url)?;
    Ok(url)
}

/// A validated URL (http(s), no whitespace) as a Markdown link: shown as code, the target in
/// its serialised form with the parentheses that would end a link target encoded.
fn link(u: &str) -> String {
    let target = url::Url::parse(u)
        .map(|x| x.to_string())
        .unwrap_or_default()
        .replace('(', "%28")
        .replace(')', "%29");
    format!("[{}]({target})", markdown::code(u))
}

fn heading(env: &str, pr: u64) -> String {
    format!(
        "### Preview {} of pull request #{pr}\n\n",
        markdown::code(&deploy::preview_environment(env, pr))
    )
}

fn resource_list(title: &str, list: &[String]) -> String {
    let mut s = format!("\n**{title}** ({}):\n", list.len());
    for a in list.iter().take(RESOURCES_MAX) {
        s.push_str(&format!("- {}\n", markdown::code(a)));
    }
    if list.len() > RESOURCES_MAX {
        s.push_str(&format!("- … and {} more\n", list.len() - RESOURCES_MAX));
    }
    s
}

/// `preview-check`: does this pull request get a preview? No git, no Deployment; a PR comment
/// only to say why not.
pub(super) fn check(runner: &Runner, ctx: &Ctx) -> Result<()> {
    let p = pctx(ctx);
    let pr = the_pr(p);
    runner.set_output("workspace", &format!("pr-{pr}"))?;
    runner.set_output("url-output", &p.settings.url_output)?;
    match p.settings.eligible(p.same_repository, &p.labels) {
        Ok(()) => {
            runner.set_output("preview", "true")?;
            runner.set_output("reason", "")?;
            runner.info(&format!(
                "pull request #{pr} gets a preview in workspace pr-{pr} of `{}`",
                ctx.env
            ));
            Ok(())
        }
        Err(why) => {
            runner.set_output("preview", "false")?;
            runner.set_output("reason", &why.to_string())?;
            runner.notice(&format!("no preview for pull request #{pr}: {why}"));
            if why == crate::envs::Ineligible::Fork {
                let body = format!(
                    "{}**No preview**: {why}. The plan of this pull request is reviewed as usual; a maintainer can push the branch to this repository for a preview.\n",
                    heading(&ctx.env, pr)
                );
                upsert_comment(runner, ctx, &body)?;
            }
            Ok(())
        }
    }
}

/// `preview-open`: the record (created or moved, with a lease), the transient Deployment with
/// the URL, the comment.
pub(super) fn open(runner: &Runner, ctx: &Ctx, session: &Session, args: &AllInputs) -> Result<()> {
    let p = pctx(ctx);
    let (env, pr) = (&ctx.env, the_pr(p));
    let sha = p.sha.expect("validated");
    let tag = deploy::preview_tag(env, pr);
    let full = deploy::preview_ref(env, pr);
    runner.set_output("workspace", &format!("pr-{pr}"))?;
    runner.set_output("tag", &tag)?;
    runner.set_output("sha", &sha.to_string())?;
    let seen = session.ls_remote(&[full.as_str()])?.get(&full);
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // An update keeps the time the preview was first opened (the sweep's max-age counts from it).
    let opened = seen
        .and_then(|s| {
            let depth = session.is_scratch().then_some(1);
            session
                .ensure_with_depth(&[s.oid], &[full.as_str()], depth)
                .ok()?;
            session.tag_message(s.oid).ok()
        })
        .map(|m| Preview::parse(&m))
        .filter(|old| old.opened_at().is_some())
        .map(|old| old.opened)
        .unwrap_or_else(|| stamp.clone());
    let rec = Preview {
        environment: env.clone(),
        workspace: format!("pr-{pr}"),
        pull_request: pr,
        commit: sha.to_string(),
        opened,
        updated: stamp,
        url: p.url.clone(),
        run_id: ctx.run_id.clone(),
        run_url: ctx.run_url.clone(),
        image: args.image.clone(),
    };
    session
        .ensure(&[sha], &[])
        .map_err(|_| {
            Failure::usage(
                "sha",
                format!("{sha} is not in the checkout: check out the pull request's head before `preview-open`"),
            )
        })?;
    let oid = session.create_tag_object(&tag, sha, &tagger(ctx), &rec.message())?;
    push_leased(
        session,
        RefUpdate {
            name: full.clone(),
            new: Some(oid),
            expect: Expect::from_seen(seen),
        },
        |e| format!("another run changed {tag} at the same time; nothing was recorded: {e}"),
    )?;
    let status = if seen.is_some() { "updated" } else { "opened" };
    runner.set_output("status", status)?;
    runner.info(&format!(
        "preview {status}: {tag} -> {} (never {})",
        short(sha),
        deploy::current_tag(env)
    ));

    // The transient Deployment, then the comment.
    let mut deployment = String::new();
    if ctx.skip_deployment {
        runner.notice("GitHub Deployment skipped (skip-github-deployment)");
    } else if let Some(api) = &p.api {
        let gh = github::Blocking::open(api, runner)?;
        let attempt = runner.var("GITHUB_RUN_ATTEMPT").unwrap_or("1");
        let mut extra = serde_json::Map::new();
        extra.insert("preview".into(), serde_json::json!(format!("pr-{pr}")));
        if let Some(i) = &args.image {
            extra.insert("image".into(), serde_json::json!(i));
        }
        let new = github::NewDeployment {
            sha: sha.to_string(),
            environment: deploy::preview_environment(env, pr),
            production: false,
            required_contexts: Vec::new(),
            run_key: format!("{}.{attempt}", ctx.run_id),
            description: format!("preview of pull request #{pr} at {}", short(sha)),
            extra,
            transient: true,
        };
        let d = gh
            .block(gh.client.create_deployment(&new))
            .map_err(|e| Failure::from(e).context("GitHub Deployment of the preview"))?;
        gh.block(gh.client.set_deployment_status(
            d.id,
            &github::DeploymentStatus {
                state: github::DeploymentState::Success,
                log_url: ctx.run_url.clone(),
                environment_url: p.url.clone(),
                description: Some(format!("preview of pull request #{pr}")),
                // GitHub marks the preview's older deployments inactive.
                auto_inactive: Some(true),
            },
        ))
        .map_err(|e| Failure::from(e).context("GitHub Deployment status of the preview"))?;
        deployment = d.id.to_string();
        runner.info(&format!(
            "GitHub Deployment {} in `{}` (transient): success",
            d.id, new.environment
        ));
    }
    runner.set_output("deployment-id", &deployment)?;
    let mut body = heading(env, pr);
    body.push_str(&format!(
        "This pull request is deployed as a **preview**: workspace {} of {}, commit `{sha}`. It never becomes {} and is destroyed when the pull request closes.\n\n",
        markdown::code(&format!("pr-{pr}")),
        markdown::code(env),
        markdown::code(&deploy::current_tag(env))
    ));
    match &p.url {
        Some(u) => body.push_str(&format!("**URL:** {}\n", link(u))),
        None => body.push_str("**URL:** none (no URL output)\n"),
    }
    if let Some(list) = &p.resources {
        body.push_str(&resource_list("Resources created by this run", list));
    }
    upsert_comment(runner, ctx, &body)?;
    Ok(())
}

/// `preview-close`: delete the record (lease), mark the Deployment inactive, update the comment.
/// Idempotent: a preview already closed changes nothing but the comment.
pub(super) fn close(runner: &Runner, ctx: &Ctx, session: &Session) -> Result<()> {
    let p = pctx(ctx);
    let (env, pr) = (&ctx.env, the_pr(p));
    let tag = deploy::preview_tag(env, pr);
    let full = deploy::preview_ref(env, pr);
    runner.set_output("workspace", &format!("pr-{pr}"))?;
    runner.set_output("tag", &tag)?;
    let seen = session.ls_remote(&[full.as_str()])?.get(&full);
    let status = match seen {
        Some(s) => {
            push_leased(
                session,
                RefUpdate {
                    name: full.clone(),
                    new: None,
                    expect: Expect::Oid(s.oid),
                },
                |e| {
                    format!("{tag} changed while closing the preview (a newer push opened it again?); nothing was deleted: {e}")
                },
            )?;
            runner.info(&format!("deleted {tag}"));
            "closed"
        }
        None => {
            runner.info(&format!("{tag} does not exist; nothing to delete"));
            "not-recorded"
        }
    };
    runner.set_output("status", status)?;
    if !ctx.skip_deployment {
        if let Some(api) = &p.api {
            let gh = github::Blocking::open(api, runner)?;
            let environment = deploy::preview_environment(env, pr);
            let marked = gh
                .block(
                    gh.client
                        .deactivate_environment(&environment, "preview destroyed", 30),
                )
                .map_err(|e| {
                    Failure::from(e).context("marking the preview's Deployment inactive")
                })?;
            runner.info(&format!(
                "marked {} deployment(s) of `{environment}` inactive",
                marked.len()
            ));
        }
    }
    let mut body = heading(env, pr);
    body.push_str(&format!(
        "The preview was **destroyed**{}: workspace {} of {} is gone.\n",
        p.reason
            .as_deref()
            .map(|r| format!(" ({})", markdown::escape(&single_line(r))))
            .unwrap_or_default(),
        markdown::code(&format!("pr-{pr}")),
        markdown::code(env)
    ));
    if let Some(list) = &p.resources {
        body.push_str(&resource_list("Resources destroyed", list));
    }
    upsert_comment(runner, ctx, &body)?;
    Ok(())
}

/// `preview-sweep`: which previews to destroy. Reads the records and their PRs; changes nothing.
pub(super) fn sweep(runner: &Runner, ctx: &Ctx, session: &Session) -> Result<()> {
    let p = pctx(ctx);
    let env = &ctx.env;
    let prefix = deploy::preview_prefix(env);
    let refs = session.ls_remote(&[prefix.as_str()])?;
    let (previews, foreign) = deploy::previews_from_refs(env, &refs);
    for f in &foreign {
        runner.warning(&format!(
            "ignoring {}: not a preview record (`pr-<n>`)",
            single_line(f)
        ));
    }
    let names: Vec<String> = previews.iter().map(|e| deploy::tag_ref(&e.tag)).collect();
    let names_s: Vec<&str> = names.iter().map(String::as_str).collect();
    let oids: Vec<Oid> = previews.iter().map(|e| e.tag_oid).collect();
    let depth = session.is_scratch().then_some(1);
    if !previews.is_empty() {
        session.ensure_with_depth(&oids, &names_s, depth)?;
    }
    let api = p.api.as_ref().expect("validated: the sweep needs the API");
    let gh = github::Blocking::open(api, runner)?;
    let now = time::OffsetDateTime::now_utc();
    let mut destroy = Vec::new();
    let mut report = Vec::new();
    for e in &previews {
        let rec = session
            .tag_message(e.tag_oid)
            .ok()
            .map(|m| Preview::parse(&m));
        let opened = rec.as_ref().and_then(Preview::opened_at);
        if opened.is_none() {
            runner.warning(&format!(
                "{}: no readable opening time; judged by its pull request only",
                e.tag
            ));
        }
        let state = match gh.block(gh.client.get_pull_request(e.pr)) {
            Ok(pr) if pr.state == "open" => PrState::Open,
            Ok(_) => PrState::Closed,
            Err(err @ ApiError::Status { .. }) if err.status() == Some(404) => PrState::Missing,
            Err(err) => {
                return Err(Failure::from(err)
                    .context(format!("reading pull request #{} of {}", e.pr, e.tag)))
            }
        };
        let verdict = deploy::sweep_verdict(state, opened, now, p.max_age);
        let ws = format!("pr-{}", e.pr);
        match &verdict {
            Some(why) => {
                runner.info(&format!("destroy {ws} of `{env}`: {why}"));
                destroy.push(ws.clone());
            }
            None => runner.info(&format!("keep {ws} of `{env}`: its pull request is open")),
        }
        report.push(serde_json::json!({
            "workspace": ws,
            "pull_request": e.pr,
            "commit": e.commit.to_string(),
            "opened": rec.map(|r| r.opened).unwrap_or_default(),
            "destroy": verdict.is_some(),
            "reason": verdict.map(|v| v.to_string()),
        }));
    }
    let list = serde_json::json!(destroy);
    runner.set_output("workspaces", &list.to_string())?;
    runner.set_output(
        "workspace",
        destroy.first().map(String::as_str).unwrap_or(""),
    )?;
    runner.set_output("status", "ok")?;
    let doc = serde_json::json!({
        "environment": env,
        "max_age_hours": p.max_age.as_secs() / 3600,
        "previews": report,
        "destroy": destroy,
    });
    runner.set_output("json", &doc.to_string())?;
    runner.info(&format!(
        "{} preview(s) of `{env}`, {} to destroy",
        previews.len(),
        destroy.len()
    ));
    Ok(())
}
