//! The plan record a pull request's plan job leaves behind (`plan-gate --record-file`), and the
//! rules of the recorder that turns it into a commit status on the pull request's head
//! (`plan-gate record`, run by `workflows-templates/plan-record.yml` on `workflow_run`).
//!
//! The plan job runs the pull request's code with a read-only token, so it cannot post the
//! status itself; the recorder holds `statuses: write` and runs only the default branch's code.
//! Everything in a record is therefore untrusted: it is value-free text (digest, change
//! manifest, environment, stack, the target's deploy it was planned against), checked here for
//! its form, and nothing in it decides *where* the status goes. The commit, the pull request
//! and its base come from the `workflow_run` event payload; a record is posted only for a
//! successful `pull_request` run whose head repository is this repository (a fork's plan is
//! never recorded), on that run's head commit, for the environment whose branch is the base of
//! an open pull request of that head.
//!
//! Pure: `cmd::plan_gate` reads the files and the event, and posts through `github::Client`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::manifest::Manifest;
use super::review::{self, Base};

/// Largest record file read (a manifest is at most 64 KiB).
pub const MAX_BYTES: u64 = 128 * 1024;

/// Most record files one plan run may leave (one per environment and stack).
pub const MAX_FILES: usize = 64;

const VERSION: u32 = 1;

/// One plan's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The environment the plan is for (checked against the model by the command).
    pub environment: String,
    /// The stack, when the environment has several roots.
    pub stack: Option<String>,
    /// The plan's digest.
    pub digest: String,
    /// The target's `deploy/<env>/current` when the plan was made.
    pub base: Base,
    /// The value-free change manifest (`gate`'s `changes`), empty when not kept.
    pub changes: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stack: Option<String>,
    digest: String,
    base: String,
    #[serde(default)]
    changes: String,
}

/// A name as the model and the stacks spell them (environment, stack).
fn name_like(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !v.contains("..")
}

impl Record {
    /// One line of JSON.
    pub fn to_text(&self) -> String {
        serde_json::to_string(&Wire {
            v: VERSION,
            environment: self.environment.clone(),
            stack: self.stack.clone(),
            digest: self.digest.clone(),
            base: self.base.as_text().to_string(),
            changes: self.changes.clone(),
        })
        .unwrap_or_default()
    }

    /// Read and check a record; the error says what is wrong, never echoing a value.
    pub fn parse(text: &str) -> Result<Record, String> {
        if text.len() as u64 > MAX_BYTES {
            return Err(format!("is larger than {MAX_BYTES} bytes"));
        }
        let w: Wire = serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "is not a plan record (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if w.v != VERSION {
            return Err(format!(
                "has version {}, this plan-gate reads {VERSION}",
                w.v
            ));
        }
        if !name_like(&w.environment) {
            return Err("names an environment that is not 1-64 of letters, digits, `-_./`".into());
        }
        if w.stack.as_deref().is_some_and(|s| !name_like(s)) {
            return Err("names a stack that is not 1-64 of letters, digits, `-_./`".into());
        }
        if !crate::validate::is_sha256_digest(&w.digest) {
            return Err("has a digest that is not `sha256:` and 64 lowercase hex digits".into());
        }
        let base = Base::parse(&w.base)
            .ok_or("has a base that is neither `none` nor a 40-hex-digit commit id")?;
        if !w.changes.trim().is_empty() {
            let m = Manifest::parse(&w.changes)
                .map_err(|e| format!("has a change manifest that {e}"))?;
            if m.digest != w.digest {
                return Err("has a change manifest of another plan than its digest".into());
            }
        }
        Ok(Record {
            environment: w.environment,
            stack: w.stack,
            digest: w.digest,
            base,
            changes: w.changes,
        })
    }
}

/// One open pull request of the run's head, as the event lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Its base branch.
    pub base_ref: String,
    /// Its head commit.
    pub head_sha: String,
}

/// The facts of the completed plan run, all from the `workflow_run` event payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRun {
    /// The run's id (its page is where the reviewers read the plan).
    pub id: u64,
    /// The event that started it (`pull_request` for a pull request's plan).
    pub event: String,
    /// `success`, `failure`, ...
    pub conclusion: String,
    /// The commit it planned.
    pub head_sha: String,
    /// `owner/name` of the repository the head commit came from.
    pub head_repository: String,
    /// `owner/name` of the repository the run ran in.
    pub repository: String,
    /// The open pull requests of that head (GitHub lists none for a fork's).
    pub pull_requests: Vec<PullRequest>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

impl PlanRun {
    /// Read the payload of a `workflow_run` event; the error names what is missing.
    pub fn from_event(payload: &str) -> Result<PlanRun, String> {
        let v: Value = serde_json::from_str(payload).map_err(|_| "is not JSON".to_string())?;
        let run = v.get("workflow_run").ok_or("has no `workflow_run`")?;
        let field = |path: &[&str]| {
            str_at(run, path)
                .map(str::to_string)
                .ok_or_else(|| format!("has no `workflow_run.{}`", path.join(".")))
        };
        let id = run
            .get("id")
            .and_then(Value::as_u64)
            .ok_or("has no `workflow_run.id`")?;
        let mut pull_requests = Vec::new();
        for p in run
            .get("pull_requests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(number), Some(base_ref), Some(head_sha)) = (
                p.get("number").and_then(Value::as_u64),
                str_at(p, &["base", "ref"]),
                str_at(p, &["head", "sha"]),
            ) else {
                return Err("lists a pull request without number, base ref or head sha".into());
            };
            pull_requests.push(PullRequest {
                number,
                base_ref: base_ref.to_string(),
                head_sha: head_sha.to_string(),
            });
        }
        Ok(PlanRun {
            id,
            event: field(&["event"])?,
            // A run that has not completed has no conclusion: it is not recorded either.
            conclusion: str_at(run, &["conclusion"]).unwrap_or("").to_string(),
            head_sha: field(&["head_sha"])?,
            head_repository: field(&["head_repository", "full_name"])?,
            repository: field(&["repository", "full_name"])?,
            pull_requests,
        })
    }
}

/// A status to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// The pull request's head commit (from the event).
    pub sha: String,
    /// The pull request (from the event).
    pub pr: u64,
    /// `gitops/plan/<env>[/<stack>]`.
    pub context: String,
    /// `plan <digest> base <sha|none>`.
    pub description: String,
}

/// Why nothing is recorded (exit 1; nothing is posted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRecorded {
    /// The run was not started by a pull request.
    NotPullRequest {
        /// Its event.
        event: String,
    },
    /// The run did not succeed (its plan gate failed, or it was cancelled).
    NotSuccessful {
        /// Its conclusion.
        conclusion: String,
    },
    /// The run ran in another repository than this one.
    OtherRepository {
        /// `owner/name`.
        repository: String,
    },
    /// The head commit comes from a fork.
    Fork {
        /// The fork's `owner/name`.
        head_repository: String,
    },
    /// The head commit is not a full commit id.
    BadHead,
    /// No open pull request of the run's head.
    NoPullRequest,
    /// The record's environment is not the base of any pull request of this head.
    NotTheBase {
        /// The record's environment.
        environment: String,
        /// Its branch (`None`: not in the model).
        branch: Option<String>,
    },
    /// Two records for one environment and stack.
    Duplicate {
        /// The context.
        context: String,
    },
    /// The run left no record.
    Empty,
}

impl fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::runner::single_line as one;
        match self {
            NotRecorded::NotPullRequest { event } => write!(
                f,
                "not recorded: the plan run was started by `{}`, not by a pull request",
                one(event)
            ),
            NotRecorded::NotSuccessful { conclusion } => write!(
                f,
                "not recorded: the plan run's conclusion is `{}`, not `success` (a failed plan is not a reviewed plan)",
                one(conclusion)
            ),
            NotRecorded::OtherRepository { repository } => write!(
                f,
                "not recorded: the plan run ran in `{}`, not in this repository",
                one(repository)
            ),
            NotRecorded::Fork { head_repository } => write!(
                f,
                "not recorded: the pull request comes from the fork `{}`; a fork's plan is never recorded (its code is nobody's review)",
                one(head_repository)
            ),
            NotRecorded::BadHead => f.write_str(
                "not recorded: the plan run's head is not a full commit id",
            ),
            NotRecorded::NoPullRequest => f.write_str(
                "not recorded: the event lists no open pull request of the plan run's head (a fork's pull request is never listed)",
            ),
            NotRecorded::NotTheBase { environment, branch } => match branch {
                Some(b) => write!(
                    f,
                    "not recorded: the record is for `{environment}`, whose branch `{b}` is not the base of a pull request of this head"
                ),
                None => write!(
                    f,
                    "not recorded: the record names `{environment}`, which is not an environment of the model"
                ),
            },
            NotRecorded::Duplicate { context } => write!(
                f,
                "not recorded: the plan run left two records for `{context}`"
            ),
            NotRecorded::Empty => f.write_str("not recorded: the plan run left no record"),
        }
    }
}

/// Whether `run` is one whose records may be posted at all (checked before any record is
/// read): a successful `pull_request` run of this repository, whose head is this repository's
/// (not a fork's) and belongs to an open pull request the event lists.
pub fn check_run(run: &PlanRun, repository: &str) -> Result<(), NotRecorded> {
    if run.event != "pull_request" {
        return Err(NotRecorded::NotPullRequest {
            event: run.event.clone(),
        });
    }
    if !run.repository.eq_ignore_ascii_case(repository) {
        return Err(NotRecorded::OtherRepository {
            repository: run.repository.clone(),
        });
    }
    if !run.head_repository.eq_ignore_ascii_case(repository) {
        return Err(NotRecorded::Fork {
            head_repository: run.head_repository.clone(),
        });
    }
    if run.conclusion != "success" {
        return Err(NotRecorded::NotSuccessful {
            conclusion: run.conclusion.clone(),
        });
    }
    if crate::validate::full_sha("head_sha", &run.head_sha).is_err() {
        return Err(NotRecorded::BadHead);
    }
    if !run.pull_requests.iter().any(|p| p.head_sha == run.head_sha) {
        return Err(NotRecorded::NoPullRequest);
    }
    Ok(())
}

/// What to post for `records` of `run` in `repository` (`owner/name`, from the recorder's own
/// run): all of them or nothing. `branch_of` maps an environment of the model to its branch.
pub fn decide(
    run: &PlanRun,
    repository: &str,
    records: &[Record],
    branch_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Post>, NotRecorded> {
    check_run(run, repository)?;
    let prs: Vec<&PullRequest> = run
        .pull_requests
        .iter()
        .filter(|p| p.head_sha == run.head_sha)
        .collect();
    if records.is_empty() {
        return Err(NotRecorded::Empty);
    }
    let mut posts: Vec<Post> = Vec::new();
    for r in records {
        let branch = branch_of(&r.environment);
        let Some(pr) = branch
            .as_deref()
            .and_then(|b| prs.iter().find(|p| p.base_ref == b))
        else {
            return Err(NotRecorded::NotTheBase {
                environment: r.environment.clone(),
                branch,
            });
        };
        let context = review::context(&r.environment, r.stack.as_deref());
        if posts.iter().any(|p| p.context == context) {
            return Err(NotRecorded::Duplicate { context });
        }
        posts.push(Post {
            sha: run.head_sha.clone(),
            pr: pr.number,
            context,
            description: review::record_description(&r.digest, &r.base),
        });
    }
    Ok(posts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn record(env: &str) -> Record {
        Record {
            environment: env.into(),
            stack: None,
            digest: d('a'),
            base: Base::Deployed("b".repeat(40)),
            changes: String::new(),
        }
    }

    fn run() -> PlanRun {
        PlanRun {
            id: 7,
            event: "pull_request".into(),
            conclusion: "success".into(),
            head_sha: HEAD.into(),
            head_repository: "o/r".into(),
            repository: "o/r".into(),
            pull_requests: vec![PullRequest {
                number: 12,
                base_ref: "prod".into(),
                head_sha: HEAD.into(),
            }],
        }
    }

    fn branch_of(env: &str) -> Option<String> {
        match env {
            "staging" => Some("main".into()),
            "prod" | "dev" => Some(env.into()),
            _ => None,
        }
    }

    #[test]
    fn a_record_round_trips_and_every_bad_field_is_named_without_its_value() {
        let r = Record {
            stack: Some("db".into()),
            ..record("prod")
        };
        assert_eq!(Record::parse(&r.to_text()), Ok(r.clone()));
        let nothing = Record {
            base: Base::Nothing,
            ..record("prod")
        };
        assert_eq!(Record::parse(&nothing.to_text()), Ok(nothing));
        let text = r.to_text();
        let secret = "AKIAIOSFODNN7EXAMPLE";
        for (bad, want) in [
            (text.replace("\"v\":1", "\"v\":2"), "has version 2"),
            (
                text.replace("\"prod\"", &format!("\"{secret} x\"")),
                "names an environment",
            ),
            (
                text.replace("\"db\"", &format!("\"../{secret}\"")),
                "names a stack",
            ),
            (
                text.replace(&d('a'), &format!("sha256:{secret}")),
                "has a digest",
            ),
            (text.replace(&"b".repeat(40), secret), "has a base"),
            (
                text.replace("}", &format!(",\"extra\":\"{secret}\"}}")),
                "is not a plan record",
            ),
            (
                text.replace("\"changes\":\"\"", &format!("\"changes\":\"{secret}\"")),
                "has a change manifest that",
            ),
            ("x".repeat(MAX_BYTES as usize + 1), "is larger than"),
        ] {
            let e = Record::parse(&bad).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains(secret), "the value is not echoed: {e}");
        }
    }

    #[test]
    fn the_run_comes_from_the_event_payload() {
        let payload = serde_json::json!({
            "action": "completed",
            "workflow_run": {
                "id": 7, "event": "pull_request", "conclusion": "success", "head_sha": HEAD,
                "head_repository": {"full_name": "o/r"}, "repository": {"full_name": "o/r"},
                "pull_requests": [{"number": 12, "head": {"sha": HEAD, "ref": "promote/prod/0123456"}, "base": {"ref": "prod", "sha": "c".repeat(40)}}]
            }
        });
        assert_eq!(PlanRun::from_event(&payload.to_string()), Ok(run()));
        for (bad, want) in [
            ("{}".to_string(), "has no `workflow_run`"),
            ("nope".to_string(), "is not JSON"),
            (
                payload.to_string().replace("\"head_sha\"", "\"sha\""),
                "has no `workflow_run.head_sha`",
            ),
            (
                payload
                    .to_string()
                    .replace("\"number\":12", "\"number\":\"12\""),
                "lists a pull request without",
            ),
        ] {
            let e = PlanRun::from_event(&bad).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn the_decision_table() {
        let ok = decide(&run(), "o/r", &[record("prod")], branch_of).unwrap();
        assert_eq!(
            ok,
            vec![Post {
                sha: HEAD.into(),
                pr: 12,
                context: "gitops/plan/prod".into(),
                description: format!("plan {} base {}", d('a'), "b".repeat(40)),
            }]
        );
        // Two stacks of one environment: both posted.
        let two = [
            Record {
                stack: Some("a".into()),
                ..record("prod")
            },
            Record {
                stack: Some("b".into()),
                ..record("prod")
            },
        ];
        assert_eq!(decide(&run(), "o/r", &two, branch_of).unwrap().len(), 2);
        type Edit = fn(&mut PlanRun, &mut Vec<Record>);
        let rows: Vec<(&str, Edit, &str)> = vec![
            (
                "a push run",
                |r, _| r.event = "push".into(),
                "started by `push`",
            ),
            (
                "a failed plan",
                |r, _| r.conclusion = "failure".into(),
                "conclusion is `failure`",
            ),
            (
                "a fork's pull request",
                |r, _| {
                    r.head_repository = "mallory/r".into();
                    r.pull_requests.clear();
                },
                "comes from the fork `mallory/r`; a fork's plan is never recorded",
            ),
            (
                "another repository's run",
                |r, _| r.repository = "x/y".into(),
                "ran in `x/y`",
            ),
            (
                "a bad head",
                |r, _| r.head_sha = "abc".into(),
                "not a full commit id",
            ),
            (
                "no pull request",
                |r, _| r.pull_requests.clear(),
                "lists no open pull request",
            ),
            (
                "a pull request of another head",
                |r, _| r.pull_requests[0].head_sha = "f".repeat(40),
                "lists no open pull request",
            ),
            (
                "a record for another environment than the base",
                |_, rs| rs[0].environment = "staging".into(),
                "for `staging`, whose branch `main` is not the base",
            ),
            (
                "a record for an unknown environment",
                |_, rs| rs[0].environment = "qa".into(),
                "`qa`, which is not an environment of the model",
            ),
            (
                "two records of one context",
                |_, rs| rs.push(rs[0].clone()),
                "two records for `gitops/plan/prod`",
            ),
            ("no record", |_, rs| rs.clear(), "left no record"),
            (
                "one good and one bad record: nothing is posted",
                |_, rs| rs.push(record("dev")),
                "for `dev`, whose branch `dev` is not the base",
            ),
        ];
        for (name, edit, want) in rows {
            let (mut r, mut rs) = (run(), vec![record("prod")]);
            edit(&mut r, &mut rs);
            let e = decide(&r, "o/r", &rs, branch_of).unwrap_err();
            assert!(e.to_string().contains(want), "{name}: {e}");
        }
    }
}
