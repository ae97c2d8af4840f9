//! The reviewed plan bound to a commit: the commit status a plan job records (context
//! `gitops/plan/<env>[/<stack>]`, the digest in its description) and the rule
//! `require-reviewed-plan` ([`decide`]): the apply job of a promotion applies the plan the
//! promotion pull request's reviewers saw, or a fresh one when that plan is older than the
//! target's current deploy (re-planned, never trusted).
//!
//! Pure: the command gathers the statuses (through `github::Client`) and the current deploy's
//! time (tag-deploy's `deployed-at`), and this module decides.

use std::fmt;

use time::OffsetDateTime;

/// The prefix of every plan status context.
pub const CONTEXT_PREFIX: &str = "gitops/plan/";

/// The status context of a plan for `environment` (and `stack`).
pub fn context(environment: &str, stack: Option<&str>) -> String {
    match stack {
        Some(s) => format!("{CONTEXT_PREFIX}{environment}/{s}"),
        None => format!("{CONTEXT_PREFIX}{environment}"),
    }
}

/// The status description: the digest, which is all a status carries of the plan.
pub fn description(digest: &str) -> String {
    format!("plan {digest}")
}

/// The digest a status description carries (`None`: not a description we wrote).
pub fn digest_in(description: &str) -> Option<&str> {
    let d = description.strip_prefix("plan ")?;
    crate::validate::is_sha256_digest(d).then_some(d)
}

/// One commit status, as the API gives it (the fields this rule reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its context.
    pub context: String,
    /// Its description.
    pub description: String,
    /// Where it links (our plan job's run).
    pub target_url: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// `success` (the plan gate passed), `failure` (it refused), ...
    pub state: String,
}

/// The plan recorded on the commit by a plan job of another run (the promotion pull request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its digest.
    pub digest: String,
    /// When it was recorded.
    pub at: OffsetDateTime,
    /// The run that recorded it.
    pub run_url: Option<String>,
}

/// The newest plan status of `context` not written by this run (`this_run`: its URL, which
/// this run's own plan job put in `target_url`). `statuses` in any order.
pub fn recorded(statuses: &[Status], context: &str, this_run: Option<&str>) -> Option<Recorded> {
    statuses
        .iter()
        .filter(|s| s.context == context)
        .filter(|s| this_run.is_none() || s.target_url.as_deref() != this_run)
        .filter_map(|s| {
            Some(Recorded {
                digest: digest_in(&s.description)?.to_string(),
                at: s.created_at,
                run_url: s.target_url.clone(),
            })
        })
        .max_by_key(|r| r.at)
}

/// The newest plan status of `context` that THIS run's plan job recorded (`this_run`: the
/// run's URL, its `target_url`), and whether the plan gate passed it (`success`): how a matrix
/// apply job gets its own stack's reviewed digest, since a matrix job cannot pass per-entry
/// outputs. `None`: this run recorded none. A refused plan is never taken, even when an older
/// attempt of the same run passed.
pub fn from_this_run(
    statuses: &[Status],
    context: &str,
    this_run: &str,
) -> Option<(Recorded, bool)> {
    statuses
        .iter()
        .filter(|s| s.context == context && s.target_url.as_deref() == Some(this_run))
        .filter_map(|s| {
            let r = Recorded {
                digest: digest_in(&s.description)?.to_string(),
                at: s.created_at,
                run_url: s.target_url.clone(),
            };
            Some((r, s.state == "success"))
        })
        .max_by_key(|(r, _)| r.at)
}

/// What the rule lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passed {
    /// The rule is off.
    NotRequired,
    /// The plan is the one recorded on the pull request head.
    Matches,
    /// The recorded plan is older than the target's current deploy: not trusted; this run's
    /// own plan (reviewed at the environment's approval) is applied instead.
    Replanned {
        /// When the pull request's plan was recorded.
        recorded: OffsetDateTime,
        /// When the target was last deployed.
        deployed: OffsetDateTime,
    },
}

/// Why the rule refuses (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No plan of another run is recorded on the commit.
    NoRecord {
        /// The context looked for.
        context: String,
        /// The commit.
        sha: String,
    },
    /// The recorded plan is another one.
    Differs {
        /// The context.
        context: String,
        /// The digest recorded on the pull request head.
        recorded: String,
        /// The digest of this run's plan.
        got: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoRecord { context, sha } => write!(
                f,
                "require-reviewed-plan: no plan is recorded on {sha} (commit status `{context}`): the promotion pull request's plan job records it; plan the pull request again, or set require-reviewed-plan: false where promotions are direct"
            ),
            Refusal::Differs {
                context,
                recorded,
                got,
            } => write!(
                f,
                "require-reviewed-plan: this run's plan ({got}) is not the one the promotion pull request's reviewers saw ({recorded}, commit status `{context}`): nothing was applied; re-run the pull request's plan and review it again"
            ),
        }
    }
}

/// `require-reviewed-plan`: may the apply job apply the plan with digest `got`?
pub fn decide(
    required: bool,
    got: &str,
    context: &str,
    sha: &str,
    recorded: Option<&Recorded>,
    deployed_at: Option<OffsetDateTime>,
) -> Result<Passed, Refusal> {
    if !required {
        return Ok(Passed::NotRequired);
    }
    let Some(r) = recorded else {
        return Err(Refusal::NoRecord {
            context: context.to_string(),
            sha: sha.to_string(),
        });
    };
    if let Some(d) = deployed_at.filter(|d| r.at <= *d) {
        return Ok(Passed::Replanned {
            recorded: r.at,
            deployed: d,
        });
    }
    if r.digest == got {
        Ok(Passed::Matches)
    } else {
        Err(Refusal::Differs {
            context: context.to_string(),
            recorded: r.digest.clone(),
            got: got.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn status(context: &str, digest: &str, url: &str, at: &str) -> Status {
        Status {
            context: context.into(),
            description: description(digest),
            target_url: Some(url.into()),
            created_at: t(at),
            state: "success".into(),
        }
    }

    #[test]
    fn a_matrix_apply_reads_only_its_own_runs_newest_plan_of_its_stack() {
        let this = "https://github.com/o/r/actions/runs/7";
        let other = "https://github.com/o/r/actions/runs/6";
        let ctx = context("dev", Some("network"));
        let statuses = vec![
            status(&ctx, &d('a'), this, "2026-01-01T10:00:00Z"),
            status(&ctx, &d('b'), this, "2026-01-01T11:00:00Z"),
            status(&ctx, &d('c'), other, "2026-01-01T12:00:00Z"),
            status(
                &context("dev", Some("service")),
                &d('e'),
                this,
                "2026-01-01T13:00:00Z",
            ),
            Status {
                description: "not ours".into(),
                ..status(&ctx, &d('f'), this, "2026-01-01T14:00:00Z")
            },
        ];
        let (got, passed) = from_this_run(&statuses, &ctx, this).unwrap();
        assert_eq!(
            got.digest,
            d('b'),
            "the newest of this run, never another run's"
        );
        assert!(passed);
        let mut refused = statuses.clone();
        refused.push(Status {
            state: "failure".into(),
            ..status(&ctx, &d('9'), this, "2026-01-01T11:30:00Z")
        });
        let (got, passed) = from_this_run(&refused, &ctx, this).unwrap();
        assert_eq!((got.digest.as_str(), passed), (d('9').as_str(), false));
        assert!(from_this_run(&statuses, &ctx, "https://x/runs/8").is_none());
        assert!(from_this_run(&statuses, &context("dev", Some("db")), this).is_none());
    }

    #[test]
    fn the_vocabulary_round_trips() {
        assert_eq!(context("prod", None), "gitops/plan/prod");
        assert_eq!(context("prod", Some("db")), "gitops/plan/prod/db");
        assert_eq!(digest_in(&description(&d('a'))), Some(d('a').as_str()));
        assert_eq!(digest_in("plan sha256:xyz"), None);
        assert_eq!(digest_in(&d('a')), None);
        assert!(
            description(&d('a')).len() <= 140,
            "GitHub's description limit"
        );
    }

    #[test]
    fn the_pull_requests_record_is_the_newest_of_another_run() {
        let pr = "https://github.com/o/r/actions/runs/1";
        let me = "https://github.com/o/r/actions/runs/2";
        let all = [
            status("gitops/plan/prod", &d('a'), pr, "2026-12-01T10:00:00Z"),
            status("gitops/plan/prod", &d('b'), pr, "2026-12-01T11:00:00Z"),
            status("gitops/plan/prod", &d('c'), me, "2026-12-01T12:00:00Z"),
            status("gitops/plan/staging", &d('e'), pr, "2026-12-01T13:00:00Z"),
            Status {
                description: "someone else's words".into(),
                ..status("gitops/plan/prod", &d('f'), pr, "2026-12-01T14:00:00Z")
            },
        ];
        let r = recorded(&all, "gitops/plan/prod", Some(me)).unwrap();
        assert_eq!(r.digest, d('b'));
        assert_eq!(r.run_url.as_deref(), Some(pr));
        assert_eq!(recorded(&all, "gitops/plan/dev", Some(me)), None);
        assert_eq!(recorded(&all[2..3], "gitops/plan/prod", Some(me)), None);
    }

    #[test]
    fn the_decision_table() {
        let rec = Recorded {
            digest: d('a'),
            at: t("2026-12-01T10:00:00Z"),
            run_url: None,
        };
        let before = Some(t("2026-12-01T09:00:00Z"));
        let later = t("2026-12-01T11:00:00Z");
        let after = Some(later);
        let c = "gitops/plan/prod";
        let sha = "0123456789abcdef0123456789abcdef01234567";
        type Row<'a> = (
            &'a str,
            bool,
            String,
            Option<&'a Recorded>,
            Option<OffsetDateTime>,
            Result<Passed, &'a str>,
        );
        let rows: Vec<Row> = vec![
            ("off", false, d('b'), None, None, Ok(Passed::NotRequired)),
            (
                "matches",
                true,
                d('a'),
                Some(&rec),
                before,
                Ok(Passed::Matches),
            ),
            (
                "matches, nothing deployed",
                true,
                d('a'),
                Some(&rec),
                None,
                Ok(Passed::Matches),
            ),
            (
                "differs",
                true,
                d('b'),
                Some(&rec),
                before,
                Err("is not the one the promotion pull request's reviewers saw"),
            ),
            (
                "no record",
                true,
                d('a'),
                None,
                before,
                Err("no plan is recorded on 0123456789abcdef0123456789abcdef01234567"),
            ),
            (
                "older than the current deploy: re-planned, not trusted",
                true,
                d('b'),
                Some(&rec),
                after,
                Ok(Passed::Replanned {
                    recorded: rec.at,
                    deployed: later,
                }),
            ),
            (
                "recorded at the very second of the deploy: not trusted either",
                true,
                d('b'),
                Some(&rec),
                Some(rec.at),
                Ok(Passed::Replanned {
                    recorded: rec.at,
                    deployed: rec.at,
                }),
            ),
        ];
        for (name, required, got, r, deployed, want) in rows {
            let out = decide(required, &got, c, sha, r, deployed);
            match (out, want) {
                (Ok(p), Ok(w)) => assert_eq!(p, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (o, w) => panic!("{name}: got {o:?}, want {w:?}"),
            }
        }
    }
}
