//! The reviewed plan bound to a commit: the commit statuses plan jobs record (context
//! `gitops/plan/<env>[/<stack>]`, the digest in the description) and the rule
//! `require-reviewed-plan` ([`decide`]): the apply job of a promotion applies the plan the
//! promotion pull request's reviewers saw, and only when that plan was made against the deploy
//! the target still runs; a plan made against another deploy is not trusted (a new pull-request
//! plan is needed).
//!
//! Two kinds of status share a context: a deploy run's plan job writes `plan <digest>`; the
//! recorder (`plan-gate record`, `workflow_run` of the pull request's plan) writes
//! `plan <digest> base <sha|none>`, the base being the target's `deploy/<env>/current` that
//! the pull request's plan was made against. Only the second kind is a pull request's record.
//!
//! Pure: the command gathers the statuses (through `github::Client`) and the target's current
//! deploy (tag-deploy list's `sha`), and this module decides.

use std::fmt;

use time::OffsetDateTime;

/// The prefix of every plan status context.
pub const CONTEXT_PREFIX: &str = "gitops/plan/";

/// GitHub's limit on a status description.
pub const DESCRIPTION_MAX: usize = 140;

/// The status context of a plan for `environment` (and `stack`).
pub fn context(environment: &str, stack: Option<&str>) -> String {
    match stack {
        Some(s) => format!("{CONTEXT_PREFIX}{environment}/{s}"),
        None => format!("{CONTEXT_PREFIX}{environment}"),
    }
}

/// The deploy a plan was made against: the target's `deploy/<env>/current` commit, or nothing
/// deployed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `deploy/<env>/current` pointed at this commit (40 lowercase hex digits).
    Deployed(String),
    /// Nothing was deployed.
    Nothing,
}

impl Base {
    /// `none`, or a GitHub commit id (40 lowercase hex digits); `None` for anything else.
    pub fn parse(v: &str) -> Option<Base> {
        if v == "none" {
            return Some(Base::Nothing);
        }
        (v.len() == 40
            && v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Base::Deployed(v.to_string()))
    }

    /// The text form ([`Base::parse`] reads it back).
    pub fn as_text(&self) -> &str {
        match self {
            Base::Deployed(s) => s,
            Base::Nothing => "none",
        }
    }
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::Deployed(s) => write!(f, "commit {s}"),
            Base::Nothing => f.write_str("none (nothing deployed)"),
        }
    }
}

/// A deploy run's plan job's status description: the digest.
pub fn description(digest: &str) -> String {
    format!("plan {digest}")
}

/// A pull request's record: the digest and the deploy it was planned against (at most 122
/// characters, within GitHub's 140).
pub fn record_description(digest: &str, base: &Base) -> String {
    format!("plan {digest} base {}", base.as_text())
}

/// The digest a status description carries (`None`: not a description we wrote).
pub fn digest_in(description: &str) -> Option<&str> {
    let rest = description.strip_prefix("plan ")?;
    let d = rest.split_once(' ').map_or(rest, |(d, _)| d);
    crate::validate::is_sha256_digest(d).then_some(d)
}

/// The digest and base of a pull request's record (`None`: not a record; a deploy run's own
/// `plan <digest>` is not one).
pub fn record_in(description: &str) -> Option<(&str, Base)> {
    let rest = description.strip_prefix("plan ")?;
    let (d, base) = rest.split_once(" base ")?;
    if !crate::validate::is_sha256_digest(d) {
        return None;
    }
    Some((d, Base::parse(base)?))
}

/// One commit status, as the API gives it (the fields this rule reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its context.
    pub context: String,
    /// `success`, `failure`, `pending` or `error`.
    pub state: String,
    /// Its description.
    pub description: String,
    /// Where it links (the plan's run).
    pub target_url: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// The plan a pull request's plan run recorded on the commit (through the recorder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its digest.
    pub digest: String,
    /// The target's deploy it was planned against.
    pub base: Base,
    /// When it was recorded.
    pub at: OffsetDateTime,
    /// The plan's run.
    pub run_url: Option<String>,
}

/// The newest successful pull-request record of `context`, not linked to this run (`this_run`:
/// its URL, which this run's own plan job puts in `target_url`). `statuses` in any order.
pub fn recorded(statuses: &[Status], context: &str, this_run: Option<&str>) -> Option<Recorded> {
    statuses
        .iter()
        .filter(|s| s.context == context && s.state == "success")
        .filter(|s| this_run.is_none() || s.target_url.as_deref() != this_run)
        .filter_map(|s| {
            let (digest, base) = record_in(&s.description)?;
            Some(Recorded {
                digest: digest.to_string(),
                base,
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
) -> Option<(ThisRunPlan, bool)> {
    statuses
        .iter()
        .filter(|s| s.context == context && s.target_url.as_deref() == Some(this_run))
        .filter_map(|s| {
            let r = ThisRunPlan {
                digest: digest_in(&s.description)?.to_string(),
                at: s.created_at,
            };
            Some((r, s.state == "success"))
        })
        .max_by_key(|(r, _)| r.at)
}

/// A plan this run's own plan job recorded (no base: it is not a pull request's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThisRunPlan {
    /// Its digest.
    pub digest: String,
    /// When it was recorded.
    pub at: OffsetDateTime,
}

/// Whether `require-reviewed-plan` applies: `explicit` is the input when it is `true` or
/// `false`; `auto` (`None`) means on exactly when the environment is production **and** it is
/// promoted into through pull requests (`promotion-mode: pull-request`): only then is there a
/// promotion pull request whose reviewers saw a plan. A fast-forward promotion has none, so
/// `auto` leaves it to the environment's own approval of this run's plan.
pub fn required(explicit: Option<bool>, production: bool, pull_request_promotion: bool) -> bool {
    explicit.unwrap_or(production && pull_request_promotion)
}

/// What the rule lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passed {
    /// The rule is off.
    NotRequired,
    /// The plan is the one recorded on the pull request head, made against the current deploy.
    Matches,
}

/// Why the rule refuses (exit 1; nothing is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No pull request's plan is recorded on the commit.
    NoRecord {
        /// The context looked for.
        context: String,
        /// The commit.
        sha: String,
    },
    /// The recorded plan was made against another deploy than the target's current one.
    Stale {
        /// The context.
        context: String,
        /// What the pull request's plan was made against.
        planned: Base,
        /// The target's current deploy.
        current: Base,
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
                "require-reviewed-plan: no pull request's plan is recorded on {sha} (commit status `{context}` with a base, written by plan-record.yml): nothing was applied; plan the promotion pull request (plan.yml) so that its plan is recorded, or set require-reviewed-plan: false where production is not promoted through pull requests"
            ),
            Refusal::Stale {
                context,
                planned,
                current,
            } => write!(
                f,
                "require-reviewed-plan: the promotion pull request's plan (commit status `{context}`) was made when the target's current deploy was {planned}, but it is now {current}: a plan reviewed against another deploy is not trusted, and nothing was applied; a new plan is needed: re-run the pull request's plan (plan.yml), have it reviewed, then deploy again"
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

/// `require-reviewed-plan`: may the apply job apply the plan with digest `got`, on `sha`,
/// while the target runs `current`? A record made against another deploy is refused before
/// its digest is compared: it is never trusted, whatever it says.
pub fn decide(
    required: bool,
    got: &str,
    context: &str,
    sha: &str,
    recorded: Option<&Recorded>,
    current: &Base,
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
    if &r.base != current {
        return Err(Refusal::Stale {
            context: context.to_string(),
            planned: r.base.clone(),
            current: current.clone(),
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

    fn sha(c: char) -> String {
        c.to_string().repeat(40)
    }

    fn status(context: &str, description: String, url: &str, at: &str) -> Status {
        Status {
            context: context.into(),
            state: "success".into(),
            description,
            target_url: Some(url.into()),
            created_at: t(at),
        }
    }

    #[test]
    fn a_matrix_apply_reads_only_its_own_runs_newest_plan_of_its_stack() {
        let this = "https://github.com/o/r/actions/runs/7";
        let other = "https://github.com/o/r/actions/runs/6";
        let ctx = context("dev", Some("network"));
        let statuses = vec![
            status(&ctx, description(&d('a')), this, "2026-01-01T10:00:00Z"),
            status(&ctx, description(&d('b')), this, "2026-01-01T11:00:00Z"),
            status(&ctx, description(&d('c')), other, "2026-01-01T12:00:00Z"),
            status(
                &context("dev", Some("service")),
                description(&d('e')),
                this,
                "2026-01-01T13:00:00Z",
            ),
            Status {
                description: "not ours".into(),
                ..status(&ctx, description(&d('f')), this, "2026-01-01T14:00:00Z")
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
            ..status(&ctx, description(&d('9')), this, "2026-01-01T11:30:00Z")
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
        let based = Base::Deployed(sha('b'));
        let rd = record_description(&d('a'), &based);
        assert_eq!(digest_in(&rd), Some(d('a').as_str()));
        assert_eq!(record_in(&rd), Some((d('a').as_str(), based)));
        let none = record_description(&d('a'), &Base::Nothing);
        assert_eq!(record_in(&none), Some((d('a').as_str(), Base::Nothing)));
        assert!(rd.len() <= DESCRIPTION_MAX, "GitHub's description limit");
        // A deploy run's own status is not a pull request's record; nor is anything malformed.
        for not in [
            description(&d('a')),
            format!("plan {} base {}", d('a'), "B".repeat(40)),
            format!("plan {} base {}", d('a'), "b".repeat(64)),
            format!("plan {} base ", d('a')),
            format!("plan sha256:{} base none", "a".repeat(63)),
            format!("plan {} base none trailing", d('a')),
        ] {
            assert_eq!(record_in(&not), None, "{not}");
        }
        assert_eq!(Base::parse("none"), Some(Base::Nothing));
        assert_eq!(Base::parse(""), None);
    }

    #[test]
    fn the_pull_requests_record_is_the_newest_successful_one_of_another_run() {
        let pr = "https://github.com/o/r/actions/runs/1";
        let me = "https://github.com/o/r/actions/runs/2";
        let base = Base::Deployed(sha('0'));
        let rec = |c: char| record_description(&d(c), &base);
        let all = [
            status("gitops/plan/prod", rec('a'), pr, "2026-12-01T10:00:00Z"),
            status("gitops/plan/prod", rec('b'), pr, "2026-12-01T11:00:00Z"),
            // This run's own record, and a deploy run's plain status: neither is the PR's.
            status("gitops/plan/prod", rec('c'), me, "2026-12-01T12:00:00Z"),
            status(
                "gitops/plan/prod",
                description(&d('g')),
                "https://github.com/o/r/actions/runs/3",
                "2026-12-01T12:30:00Z",
            ),
            status("gitops/plan/staging", rec('e'), pr, "2026-12-01T13:00:00Z"),
            status(
                "gitops/plan/prod",
                "someone else's words".into(),
                pr,
                "2026-12-01T14:00:00Z",
            ),
            Status {
                state: "failure".into(),
                ..status("gitops/plan/prod", rec('h'), pr, "2026-12-01T15:00:00Z")
            },
        ];
        let r = recorded(&all, "gitops/plan/prod", Some(me)).unwrap();
        assert_eq!(r.digest, d('b'));
        assert_eq!(r.base, base);
        assert_eq!(r.run_url.as_deref(), Some(pr));
        assert_eq!(recorded(&all, "gitops/plan/dev", Some(me)), None);
        assert_eq!(recorded(&all[2..4], "gitops/plan/prod", Some(me)), None);
    }

    #[test]
    fn auto_means_production_promoted_through_pull_requests() {
        // (explicit, production, pull-request promotion) -> required
        for (explicit, production, pr, want) in [
            (None, true, true, true),
            (None, true, false, false),
            (None, false, true, false),
            (None, false, false, false),
            (Some(true), false, false, true),
            (Some(true), true, false, true),
            (Some(false), true, true, false),
        ] {
            assert_eq!(
                required(explicit, production, pr),
                want,
                "{explicit:?} {production} {pr}"
            );
        }
    }

    #[test]
    fn the_decision_table() {
        let current = Base::Deployed(sha('1'));
        let rec = Recorded {
            digest: d('a'),
            base: current.clone(),
            at: t("2026-12-01T10:00:00Z"),
            run_url: None,
        };
        let older = Recorded {
            base: Base::Deployed(sha('0')),
            ..rec.clone()
        };
        let first = Recorded {
            base: Base::Nothing,
            ..rec.clone()
        };
        let c = "gitops/plan/prod";
        let on = "0123456789abcdef0123456789abcdef01234567";
        type Row<'a> = (
            &'a str,
            bool,
            String,
            Option<&'a Recorded>,
            Base,
            Result<Passed, &'a str>,
        );
        let rows: Vec<Row> = vec![
            ("off", false, d('b'), None, current.clone(), Ok(Passed::NotRequired)),
            (
                "off: a stale record does not matter",
                false,
                d('b'),
                Some(&older),
                current.clone(),
                Ok(Passed::NotRequired),
            ),
            ("matches", true, d('a'), Some(&rec), current.clone(), Ok(Passed::Matches)),
            (
                "matches, nothing deployed then or now",
                true,
                d('a'),
                Some(&first),
                Base::Nothing,
                Ok(Passed::Matches),
            ),
            (
                "differs",
                true,
                d('b'),
                Some(&rec),
                current.clone(),
                Err("is not the one the promotion pull request's reviewers saw"),
            ),
            (
                "no record",
                true,
                d('a'),
                None,
                current.clone(),
                Err("no pull request's plan is recorded on 0123456789abcdef0123456789abcdef01234567"),
            ),
            (
                "planned against an older deploy: not trusted, even with the same digest",
                true,
                d('a'),
                Some(&older),
                current.clone(),
                Err("was made when the target's current deploy was commit 0000000000000000000000000000000000000000, but it is now commit 1111111111111111111111111111111111111111: a plan reviewed against another deploy is not trusted, and nothing was applied; a new plan is needed: re-run the pull request's plan"),
            ),
            (
                "planned before the first deploy, deployed since",
                true,
                d('a'),
                Some(&first),
                current.clone(),
                Err("current deploy was none (nothing deployed), but it is now commit 1111"),
            ),
            (
                "planned against a deploy, nothing deployed now (the tags were removed)",
                true,
                d('a'),
                Some(&rec),
                Base::Nothing,
                Err("but it is now none (nothing deployed)"),
            ),
            (
                "stale and different: the staleness is what is said",
                true,
                d('b'),
                Some(&older),
                current.clone(),
                Err("a new plan is needed"),
            ),
        ];
        for (name, required, got, r, now, want) in rows {
            let out = decide(required, &got, c, on, r, &now);
            match (out, want) {
                (Ok(p), Ok(w)) => assert_eq!(p, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (o, w) => panic!("{name}: got {o:?}, want {w:?}"),
            }
        }
    }
}
