//! `tag-deploy verify` and `tag-deploy auto-rollback`: observe, ask the library, report.
//!
//! The rules live elsewhere: what the checks are and when they pass in [`crate::verify`]
//! ([`verify::decide`]), the address and redirect rules of a probe in [`crate::net`], alarm
//! states in [`crate::aws`], commit statuses in [`crate::github`], and what a failed
//! verification leads to in [`deploy::after_verification`] (the no-loop rule).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{place_hold, read_state, Ctx, Inputs};
use crate::deploy::{self, AfterVerification, Record};
use crate::exit::{Failure, Result};
use crate::git::Session;
use crate::github;
use crate::net::{self, ProbeAnswer};
use crate::runner::{single_line, Runner};
use crate::validate;
use crate::verify::{self, Observations, Probe, Verdict};

/// The verification outcome `record` keeps (validated `verification-*` inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    /// `passed` or `failed`.
    pub outcome: String,
    /// `31s`.
    pub duration: Option<String>,
    /// The checks line.
    pub checks: Option<String>,
}

impl Outcome {
    pub(super) fn failed(&self) -> bool {
        self.outcome == deploy::VERIFICATION_FAILED
    }

    pub(super) fn failed_check(&self) -> Option<String> {
        Record {
            verification_checks: self.checks.clone(),
            ..Record::default()
        }
        .failed_check()
    }
}

/// A stack's record (`record --stack`) carries no verification: the environment's record does.
pub(super) fn none_for_a_stack(v: &super::VerificationArgs) -> Result<()> {
    for (f, x) in [
        ("verification-outcome", &v.verification_outcome),
        ("verification-duration", &v.verification_duration),
        ("verification-checks", &v.verification_checks),
    ] {
        if x.as_deref().is_some_and(|x| !x.is_empty()) {
            return Err(Failure::usage(
                f,
                "is for the environment's record: a stack's record (`stack`) carries no verification",
            ));
        }
    }
    Ok(())
}

/// Validate `record`'s verification inputs (exit 2, before any call): an environment with
/// checks needs an outcome (`success` is posted only after a passed verification); `none` is
/// only for an environment without checks.
pub(super) fn outcome_input(
    v: &super::VerificationArgs,
    checks: Option<&verify::Checks>,
    env: &str,
) -> Result<Option<Outcome>> {
    let outcome = v.verification_outcome.as_deref().filter(|o| !o.is_empty());
    match (outcome, checks) {
        (None, Some(_)) => {
            return Err(Failure::usage(
                "verification-outcome",
                format!("is required: `{env}` declares verification checks (`verify:`); pass the `outcome` output of `tag-deploy verify`"),
            ))
        }
        (None | Some("none"), None) => {
            for (f, x) in [
                ("verification-duration", &v.verification_duration),
                ("verification-checks", &v.verification_checks),
            ] {
                if x.as_deref().is_some_and(|x| !x.is_empty()) {
                    return Err(Failure::usage(
                        f,
                        "is given without a `verification-outcome` of `passed` or `failed`",
                    ));
                }
            }
            return Ok(None);
        }
        (Some("none"), Some(_)) => {
            return Err(Failure::usage(
                "verification-outcome",
                format!("is `none`, but `{env}` declares verification checks"),
            ))
        }
        (Some(deploy::VERIFICATION_PASSED | deploy::VERIFICATION_FAILED), _) => {}
        (Some(o), _) => {
            return Err(Failure::usage(
                "verification-outcome",
                format!("`{}` is not `passed`, `failed` or `none`", single_line(o)),
            ))
        }
    }
    let duration = v.verification_duration.clone().filter(|d| !d.is_empty());
    if let Some(d) = &duration {
        let ok = d.len() <= 8
            && d.strip_suffix('s')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Failure::usage(
                "verification-duration",
                format!("`{}` is not a number of seconds like `31s`", single_line(d)),
            ));
        }
    }
    let checks_line = v.verification_checks.clone().filter(|c| !c.is_empty());
    if let Some(c) = &checks_line {
        deploy::validate_text("verification-checks", c, 2000)?;
    }
    Ok(Some(Outcome {
        outcome: outcome.unwrap_or_default().to_string(),
        duration,
        checks: checks_line,
    }))
}

/// What `verify` needs, validated before any call.
struct Plan {
    checks: verify::Checks,
    urls: Vec<url::Url>,
    sha: Option<String>,
    alarms: Option<(String, Option<String>)>,
}

fn plan(
    runner: &Runner,
    ctx: &Ctx,
    args: &super::VerifyArgs,
    checks: &verify::Checks,
) -> Result<Plan> {
    let env = &ctx.env;
    let invalid = |field: &str, e: verify::Invalid| {
        Failure::usage(field, format!("`{env}`: verify.{} {}", e.key, e.rule))
    };
    let outputs = match &args.terraform_outputs {
        None => None,
        Some(p) => Some(read_outputs(runner, p)?),
    };
    let vars = parse_variables(args.variables.as_deref().unwrap_or_default())?;
    let field = if checks
        .http
        .iter()
        .any(|h| matches!(h.url, verify::UrlSource::Output(_)))
    {
        "terraform-outputs"
    } else {
        "variables"
    };
    let urls = checks
        .urls(outputs.as_ref(), &vars)
        .map_err(|e| invalid(field, e))?;
    let sha = if checks.github.is_empty() {
        None
    } else {
        if ctx.api.is_none() {
            return Err(Failure::usage(
                "github-token",
                format!("`{env}` declares GitHub checks (verify.github): give `github-token` and `repository` (or run in Actions)"),
            ));
        }
        Some(super::sha_input(runner, args.sha.as_deref())?.to_string())
    };
    let alarms = match &checks.alarms {
        None => None,
        Some(_) => {
            let region = args
                .aws_region
                .clone()
                .or_else(|| ctx.aws_region.clone())
                .or_else(|| runner.var("AWS_REGION").map(str::to_string))
                .filter(|r| !r.is_empty())
                .ok_or_else(|| {
                    Failure::usage(
                        "aws-region",
                        format!("`{env}` declares CloudWatch alarms (verify.alarms): give `aws-region` (or pin `aws-region` in the environment, or set AWS_REGION)"),
                    )
                })?;
            validate::region(&region)?;
            Some((region, crate::aws::cloudwatch_endpoint(runner)?))
        }
    };
    Ok(Plan {
        checks: checks.clone(),
        urls,
        sha,
        alarms,
    })
}

/// The string outputs of `terraform output -json` (`{"name": {"value": ..., "sensitive": ...}}`).
/// A sensitive value is masked before anything can print it.
fn read_outputs(runner: &Runner, p: &std::path::Path) -> Result<BTreeMap<String, String>> {
    let shown = single_line(&p.display().to_string());
    let text = std::fs::read_to_string(p).map_err(|e| {
        Failure::usage(
            "terraform-outputs",
            format!("cannot read {shown}: {}", e.kind()),
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        Failure::usage(
            "terraform-outputs",
            format!("{shown} is not the JSON of `terraform output -json`"),
        )
    })?;
    let obj = v.as_object().ok_or_else(|| {
        Failure::usage(
            "terraform-outputs",
            format!("{shown} is not the JSON object of `terraform output -json`"),
        )
    })?;
    let mut out = BTreeMap::new();
    for (k, o) in obj {
        if let Some(s) = o.get("value").and_then(serde_json::Value::as_str) {
            if o.get("sensitive").and_then(serde_json::Value::as_bool) == Some(true) {
                runner.mask(&crate::secret::Secret::new(s));
            }
            out.insert(k.clone(), s.to_string());
        }
    }
    Ok(out)
}

/// `NAME=value` lines (blank lines ignored).
fn parse_variables(v: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, line) in v.lines().map(str::trim).enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((k, val)) = line.split_once('=') else {
            return Err(Failure::usage(
                "variables",
                format!("line {} is not `NAME=value`", i + 1),
            ));
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Failure::usage(
                "variables",
                format!(
                    "line {}: the name is not letters, digits, `_` or `-`",
                    i + 1
                ),
            ));
        }
        out.insert(k.to_string(), val.trim().to_string());
    }
    Ok(out)
}

fn probe_observation(p: &verify::HttpProbe, a: ProbeAnswer) -> Probe {
    match a {
        ProbeAnswer::Response {
            status,
            body_matches,
        } => {
            if status != p.status {
                Probe::Bad(format!("status {status}, expected {}", p.status))
            } else if body_matches == Some(false) {
                Probe::Bad("the body does not contain the expected text".into())
            } else {
                Probe::Ok
            }
        }
        ProbeAnswer::Failed(why) => Probe::Bad(why),
        ProbeAnswer::Refused(why) => Probe::Refused(why),
    }
}

/// `verify`: observe every check each round until [`verify::decide`] says passed or failed;
/// the window bounds the run (plus the last round's request timeouts).
pub(super) fn verify(runner: &Runner, ctx: &Ctx, args: &Inputs) -> Result<()> {
    let env = &ctx.env;
    let Some(checks) = &ctx.checks else {
        runner.set_output("outcome", "none")?;
        runner.set_output("status", "none")?;
        for k in ["failed-check", "duration", "checks"] {
            runner.set_output(k, "")?;
        }
        runner.info(&format!(
            "`{env}` declares no verification checks (verify: in .github/gitops.yml): nothing to verify"
        ));
        return Ok(());
    };
    let va = args.verify.as_ref().expect("verify inputs");
    let plan = plan(runner, ctx, va, checks)?;
    let c = &plan.checks;
    let rt = net::runtime()?;
    let client = if c.http.is_empty() {
        None
    } else {
        Some(net::probe_client()?)
    };
    let cw = plan
        .alarms
        .as_ref()
        .map(|(region, ep)| rt.block_on(crate::aws::cloudwatch(region, ep.as_deref())));
    let gh = match (&plan.sha, &ctx.api) {
        (Some(_), Some(api)) => Some(github::Blocking::open(api, runner)?),
        _ => None,
    };
    runner.info(&format!(
        "verifying `{env}` for at most {}s: {}",
        c.window.as_secs(),
        describe(c)
    ));
    let start = Instant::now();
    let mut obs = Observations {
        http: vec![Vec::new(); c.http.len()],
        ..Observations::default()
    };
    let mut round = 0u32;
    let verdict = loop {
        round += 1;
        let over = start.elapsed() >= c.window;
        let now_states = verify::states(c, &obs, false);
        for (i, p) in c.http.iter().enumerate() {
            if matches!(now_states[i].1, verify::CheckState::Passed(_)) {
                continue;
            }
            let client = client.as_ref().expect("probe client");
            let a = rt.block_on(net::probe(
                client,
                &plan.urls[i],
                p.timeout,
                p.body.as_deref(),
            ));
            let o = probe_observation(p, a);
            if let Probe::Bad(w) | Probe::Refused(w) = &o {
                runner.info(&format!(
                    "round {round}: http {}: {}",
                    single_line(&p.name),
                    single_line(w)
                ));
            }
            obs.http[i].push(o);
        }
        if let (Some(cw), Some(sel)) = (&cw, &c.alarms) {
            match rt.block_on(crate::aws::alarm_round(cw, sel)) {
                Ok(r) => obs.alarms.push(r),
                Err(f) => {
                    break Verdict::Failed {
                        check: "alarms".into(),
                        why: f.message,
                    }
                }
            }
        }
        if let (Some(gh), Some(sha)) = (&gh, &plan.sha) {
            let done = matches!(
                now_states
                    .iter()
                    .find(|(n, _)| n == "github")
                    .map(|(_, s)| s),
                Some(verify::CheckState::Passed(_))
            );
            if !done {
                match gh.block(gh.client.contexts(sha)) {
                    Ok(m) => obs.github = Some(m),
                    Err(e) => {
                        break Verdict::Failed {
                            check: "github".into(),
                            why: Failure::from(e).message,
                        }
                    }
                }
            }
        }
        match verify::decide(c, &obs, over) {
            Verdict::Pending => {}
            v => break v,
        }
        let left = c.window.saturating_sub(start.elapsed());
        std::thread::sleep(c.interval.min(left).max(Duration::from_millis(50)));
    };
    let took = format!("{}s", start.elapsed().as_secs());
    let over = start.elapsed() >= c.window;
    let line = single_line(&verify::summary(&verify::states(c, &obs, over)));
    runner.set_output("duration", &took)?;
    runner.set_output("checks", &line)?;
    match verdict {
        Verdict::Passed => {
            runner.set_output("outcome", deploy::VERIFICATION_PASSED)?;
            runner.set_output("status", deploy::VERIFICATION_PASSED)?;
            runner.set_output("failed-check", "")?;
            runner.info(&format!("verification of `{env}` passed in {took}: {line}"));
            runner.summary(&format!(
                "### tag-deploy: `{env}` verified\n\n{}\n",
                crate::runner::markdown::escape(&line)
            ))?;
            Ok(())
        }
        Verdict::Failed { check, why } => {
            let failed = single_line(&format!("{check}: {why}"));
            runner.set_output("outcome", deploy::VERIFICATION_FAILED)?;
            runner.set_output("status", deploy::VERIFICATION_FAILED)?;
            runner.set_output("failed-check", &failed)?;
            runner.summary(&format!(
                "### tag-deploy: `{env}` FAILED verification\n\n{}\n",
                crate::runner::markdown::escape(&line)
            ))?;
            Err(Failure::refused(format!(
                "verification of `{env}` failed after {took}: {failed}"
            )))
        }
        Verdict::Pending => unreachable!("the loop ends on a decision"),
    }
}

fn describe(c: &verify::Checks) -> String {
    let mut parts: Vec<String> = c
        .http
        .iter()
        .map(|p| format!("http {} ({} in a row)", single_line(&p.name), p.successes))
        .collect();
    if c.alarms.is_some() {
        parts.push("CloudWatch alarms".into());
    }
    if !c.github.is_empty() {
        parts.push(format!(
            "GitHub checks {}",
            single_line(&c.github.join(", "))
        ));
    }
    parts.join(", ")
}

/// `auto-rollback`: decide from the current deploy's trailers ([`deploy::after_verification`])
/// whether to hold and dispatch `rollback.yml`, or hold and stop. Only the run that places the
/// hold dispatches (the hold's must-not-exist push decides the race), so a re-run never
/// dispatches a second rollback.
pub(super) fn auto_rollback(
    runner: &Runner,
    ctx: &Ctx,
    session: &Session,
    args: &Inputs,
) -> Result<()> {
    let env = &ctx.env;
    let a = args.auto_rollback.as_ref().expect("auto-rollback inputs");
    crate::promote::validate_workflow(&a.workflow).map_err(|mut f| {
        f.field = Some("workflow".into());
        f
    })?;
    let git_ref = a.r#ref.clone().unwrap_or_else(|| ctx.branch.clone());
    validate::branch_name(&git_ref).map_err(|mut f| {
        f.field = Some("ref".into());
        f
    })?;
    let Some(api) = &ctx.api else {
        return Err(Failure::usage(
            "github-token",
            "auto-rollback dispatches the rollback workflow: give `github-token` and `repository` (or run in Actions)",
        ));
    };
    let auto = ctx.checks.as_ref().is_some_and(|c| c.auto_rollback);
    let (state, _) = read_state(session, env, &[])?;
    let Some(current) = state.current else {
        runner.set_output("status", "none")?;
        runner.info(&format!(
            "`{env}` has no current deploy: nothing to roll back"
        ));
        return Ok(());
    };
    let depth = session.is_scratch().then_some(1);
    session.ensure_with_depth(&[current.oid], &[deploy::current_ref(env).as_str()], depth)?;
    // An unreadable current tag is no verdict: stop, never dispatch on a guess.
    let rec = session
        .tag_message(current.oid)
        .map(|m| Record::parse(&m))
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", deploy::current_tag(env))))?;
    let sha7 = short(&rec.commit);
    match deploy::after_verification(&rec, auto) {
        AfterVerification::Nothing(why) => {
            runner.set_output("status", "none")?;
            runner.info(&format!("no automatic rollback of `{env}`: {why}"));
            Ok(())
        }
        AfterVerification::Stop { why } => {
            place_hold(
                runner,
                ctx,
                session,
                &format!("verification of {sha7} failed; automatic rollback stopped"),
            )?;
            runner.set_output("status", "stopped")?;
            runner.error(&format!("`{env}` needs a person: {why}"));
            Err(Failure::refused(format!(
                "no automatic rollback of `{env}`: {why}; `{env}` is on hold"
            )))
        }
        AfterVerification::RollBack { failed } => {
            let reason = single_line(&format!(
                "verification of {sha7} failed ({failed}); automatic rollback to previous"
            ));
            let reason: String = reason.chars().take(400).collect();
            if !place_hold(runner, ctx, session, &reason)? {
                runner.set_output("status", "already-held")?;
                runner.notice(&format!(
                    "`{env}` was already on hold: another run has acted on this failure; no second rollback is dispatched"
                ));
                return Ok(());
            }
            let gh = github::Blocking::open(api, runner)?;
            let mut inputs = serde_json::Map::new();
            inputs.insert("environment".into(), serde_json::json!(env));
            inputs.insert("to".into(), serde_json::json!("previous"));
            // A rollback restores what ran before; it does not wait for a deploy window. The
            // reason is logged and kept in the rollback's `Window-Override` trailer.
            let why = format!("automatic rollback: verification of {sha7} failed");
            inputs.insert(
                crate::windows::OVERRIDE_INPUT.into(),
                serde_json::json!(why),
            );
            gh.block(gh.client.dispatch_workflow(&a.workflow, &git_ref, &inputs))
                .map_err(|e| {
                    Failure::from(e).context(format!(
                        "`{env}` is on hold, but {} could not be dispatched",
                        a.workflow
                    ))
                })?;
            runner.set_output("status", "dispatched")?;
            runner.warning(&format!(
                "`{env}`: {} failed its verification ({}); on hold, and {} dispatched on `{git_ref}` to roll back to `previous`",
                sha7,
                single_line(&failed),
                a.workflow
            ));
            Ok(())
        }
    }
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}
