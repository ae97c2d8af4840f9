//! Promotion rules, kept pure so they can be tested without a remote: which promotions are
//! allowed by the environments model, the names of promotion branches, soak-time parsing, the
//! changelog, and the decision table that turns what the remote says into an outcome.
//!
//! The I/O (git session, GitHub API, runner) lives in `cmd::promote`.

use std::time::Duration;

use crate::envs::{Environment, Model};
use crate::exit::{Failure, Result};
use crate::git::CommitInfo;
use crate::runner::{markdown, single_line};

/// `refs/tags/deploy/<env>/current` (the tag `tag-deploy record` moves).
pub fn current_ref(env: &str) -> String {
    format!("refs/tags/deploy/{env}/current")
}

/// `refs/tags/deploy/<env>/hold` (set by `tag-deploy hold`).
pub fn hold_ref(env: &str) -> String {
    format!("refs/tags/deploy/{env}/hold")
}

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

/// The trailers of a deploy tag message that a changelog shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployInfo {
    /// `Image:` trailer.
    pub image: Option<String>,
    /// `Plan-Digest:` trailer.
    pub plan_digest: Option<String>,
    /// `Run-URL:` trailer.
    pub run_url: Option<String>,
}

impl DeployInfo {
    /// Read the trailers `tag-deploy record` writes (last paragraph, `Key: value` lines).
    pub fn from_message(msg: &str) -> DeployInfo {
        let mut d = DeployInfo::default();
        let last = msg.trim_end().rsplit("\n\n").next().unwrap_or("");
        for line in last.lines() {
            if let Some((k, v)) = line.split_once(": ") {
                let v = Some(v.trim().to_string());
                match k.trim() {
                    "Image" => d.image = v,
                    "Plan-Digest" => d.plan_digest = v,
                    "Run-URL" => d.run_url = v,
                    _ => {}
                }
            }
        }
        d
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
    /// The source deploy's metadata.
    pub deploy: &'a DeployInfo,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let d = DeployInfo::from_message(
            "deploy dev: 0123456\n\nRecorded by gitops-actions tag-deploy.\n\nEnvironment: dev\nImage: r/app@sha256:00\nPlan-Digest: sha256:11\n",
        );
        assert_eq!(d.image.as_deref(), Some("r/app@sha256:00"));
        assert_eq!(d.plan_digest.as_deref(), Some("sha256:11"));
    }
}
