//! Per-stack deploy records: what each stack's apply job recorded, and the rule that moves the
//! environment's `deploy/<env>/current` only when every changed stack of the commit applied.
//!
//! - `deploy/<env>/stacks/<stack>/current`: an annotated tag on the commit the stack was last
//!   applied at, moved by a compare-and-swap on its tag object (`tag-deploy record --stack`).
//!   Its message is a [`Record`] with the `Stack` trailer (and the stack's `Plan-Digest`).
//! - The environment's record (`tag-deploy record --stacks '["network","service"]'`) is written
//!   only when each listed stack's record points at the commit and its trailers agree (the
//!   environment, the stack, the full commit); its message then carries one `Stack-Applied`
//!   trailer per stack ([`StackOutcome`]): `network applied sha256:... run 4203`.
//!
//! A partly failed deploy leaves `current` where it was: `stacks changed --environment` then
//! compares with the old `current`, so the next deploy re-plans every stack changed since (the
//! ones that applied show no changes), and `promote` (which promotes `current` only) never
//! promotes a partly deployed commit.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use git2::Oid;

use super::{
    refuse_record, tag_ref, DeployFacts, Record, RecordDecision, RecordNeed, RecordRefusal,
    RecordRules, RecordStep,
};
use crate::git::{RemoteRef, RemoteRefs};
use crate::runner::single_line;

/// The trailer of the environment's record naming one stack's outcome.
pub const APPLIED_TRAILER: &str = "Stack-Applied";

/// The outcome a stack's record proves: it applied at the commit.
pub const APPLIED: &str = "applied";

/// `deploy/<env>/stacks/` (short prefix of every stack record).
fn stacks_dir(env: &str) -> String {
    format!("deploy/{env}/stacks/")
}

/// `refs/tags/deploy/<env>/stacks/` (prefix of every stack record).
pub fn stacks_prefix(env: &str) -> String {
    tag_ref(&stacks_dir(env))
}

/// `deploy/<env>/stacks/<stack>/current` (short tag name).
pub fn stack_tag(env: &str, stack: &str) -> String {
    format!("{}{stack}/current", stacks_dir(env))
}

/// `refs/tags/deploy/<env>/stacks/<stack>/current`.
pub fn stack_ref(env: &str, stack: &str) -> String {
    tag_ref(&stack_tag(env, stack))
}

/// The stack records of `env` in an ls-remote (name -> ref), and the refs under the stacks
/// prefix that are not one (`<name>/current`), to be shown as foreign.
pub fn from_refs(env: &str, refs: &RemoteRefs) -> (BTreeMap<String, RemoteRef>, Vec<String>) {
    let prefix = stacks_prefix(env);
    let mut records = BTreeMap::new();
    let mut foreign = Vec::new();
    for (name, r) in refs.under(&prefix) {
        match name[prefix.len()..].strip_suffix("/current") {
            Some(stack) if !stack.is_empty() && !stack.contains('/') => {
                records.insert(stack.to_string(), r);
            }
            _ => foreign.push(name.to_string()),
        }
    }
    (records, foreign)
}

/// One stack's outcome in the environment's record (`Stack-Applied` trailer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackOutcome {
    /// The stack.
    pub stack: String,
    /// [`APPLIED`].
    pub outcome: String,
    /// The digest of the plan its apply job applied (`None`: its record carries none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// The run whose apply job recorded it.
    pub run_id: String,
}

impl StackOutcome {
    /// The trailer's value: `<stack> <outcome> <digest or -> run <run id>`.
    pub fn trailer(&self) -> String {
        format!(
            "{} {} {} run {}",
            self.stack,
            self.outcome,
            self.plan_digest.as_deref().unwrap_or("-"),
            self.run_id
        )
    }

    /// Parse a trailer's value we wrote (`None`: not one).
    pub fn parse(v: &str) -> Option<StackOutcome> {
        let parts: Vec<&str> = v.split_whitespace().collect();
        let [stack, outcome, digest, "run", run_id] = parts.as_slice() else {
            return None;
        };
        Some(StackOutcome {
            stack: stack.to_string(),
            outcome: outcome.to_string(),
            plan_digest: (*digest != "-").then(|| digest.to_string()),
            run_id: run_id.to_string(),
        })
    }
}

/// Why a changed stack does not count as applied at the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// No record of the stack in this environment.
    NoRecord,
    /// Its record is at another commit (its apply failed, was skipped or never ran).
    At(Oid),
    /// Its record is at the commit, but its message is unreadable or its trailers do not
    /// say this environment, this stack and this commit.
    NotARecord,
}

/// The refusal when not every changed stack applied ([`RecordRefusal::StacksNotApplied`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    /// The environment.
    pub env: String,
    /// The commit.
    pub sha: Oid,
    /// The environment's current deploy (stays).
    pub current: Option<Oid>,
    /// The stacks that applied at the commit.
    pub applied: Vec<StackOutcome>,
    /// The stacks that did not, and why.
    pub missing: Vec<(String, Missing)>,
}

impl std::fmt::Display for NotApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sha7 = &self.sha.to_string()[..7];
        let applied = if self.applied.is_empty() {
            "none".to_string()
        } else {
            self.applied
                .iter()
                .map(|o| o.stack.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing = self
            .missing
            .iter()
            .map(|(s, m)| match m {
                Missing::NoRecord => format!("{s} (never applied here)"),
                Missing::At(o) => format!("{s} (last applied at {})", &o.to_string()[..7]),
                Missing::NotARecord => format!("{s} (its record is not one of ours)"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let stays = match self.current {
            Some(c) => format!("stays at {}", &c.to_string()[..7]),
            None => "stays absent".into(),
        };
        write!(
            f,
            "not every changed stack of {sha7} applied in `{env}`: applied: {applied}; not applied: {missing}. {} {stays}: it moves only when every changed stack applied; the next deploy re-plans every stack changed since it",
            super::current_tag(&self.env),
            env = self.env,
        )
    }
}

/// Whether `rec`, read from `stack`'s record at `sha`, is what a stack record of `env` says.
fn agrees(rec: &Record, env: &str, stack: &str, sha: Oid) -> bool {
    rec.environment == env && rec.stack.as_deref() == Some(stack) && rec.commit == sha.to_string()
}

/// 7. With stacks (`--stacks`), the environment's record is written only when every changed
///    stack's record is at the commit and is one of ours; the outcomes go into its trailers.
pub(super) fn every_stack_applied(
    f: &DeployFacts,
    r: &RecordRules,
) -> RecordStep<Vec<StackOutcome>> {
    let (None, Some(names)) = (r.stack, r.stacks) else {
        return ControlFlow::Continue(Vec::new());
    };
    let at_sha: Vec<(String, Oid)> = names
        .iter()
        .filter_map(|n| {
            let rec = f.state.stacks.get(n)?;
            (rec.peeled == f.sha).then(|| (n.clone(), rec.oid))
        })
        .collect();
    let empty = BTreeMap::new();
    let records = if at_sha.is_empty() {
        &empty
    } else {
        match &f.stack_records {
            Some(m) => m,
            None => {
                return ControlFlow::Break(RecordDecision::Gather(RecordNeed::StackRecords(at_sha)))
            }
        }
    };
    let mut applied = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match f.state.stacks.get(n) {
            None => missing.push((n.clone(), Missing::NoRecord)),
            Some(s) if s.peeled != f.sha => missing.push((n.clone(), Missing::At(s.peeled))),
            Some(_) => match records.get(n).and_then(Option::as_ref) {
                Some(rec) if agrees(rec, r.env, n, f.sha) => applied.push(StackOutcome {
                    stack: n.clone(),
                    outcome: APPLIED.into(),
                    plan_digest: rec.plan_digest.clone(),
                    run_id: single_line(&rec.run_id),
                }),
                _ => missing.push((n.clone(), Missing::NotARecord)),
            },
        }
    }
    if missing.is_empty() {
        return ControlFlow::Continue(applied);
    }
    refuse_record(RecordRefusal::StacksNotApplied(NotApplied {
        env: r.env.to_string(),
        sha: f.sha,
        current: f.state.current_commit(),
        applied,
        missing,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::{decide_record, EnvState};
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::from_str(&c.to_string().repeat(40)).unwrap()
    }

    fn record_of(env: &str, stack: &str, sha: Oid, digest: char) -> Record {
        Record {
            environment: env.into(),
            commit: sha.to_string(),
            run_id: "7".into(),
            plan_digest: Some(format!("sha256:{}", digest.to_string().repeat(64))),
            stack: Some(stack.into()),
            ..Record::default()
        }
    }

    /// `dev` current at `1`; stack records: network at `4` (tag object `a`), service at `3`
    /// (tag object `b`); recording `4`.
    fn facts() -> DeployFacts {
        let mut refs = std::collections::BTreeMap::new();
        for (name, o, p) in [
            ("refs/tags/deploy/dev/current", 'c', '1'),
            ("refs/tags/deploy/dev/stacks/network/current", 'a', '4'),
            ("refs/tags/deploy/dev/stacks/service/current", 'b', '3'),
            ("refs/tags/deploy/dev/stacks/odd", 'e', '3'),
        ] {
            refs.insert(
                name.to_string(),
                RemoteRef {
                    oid: oid(o),
                    peeled: oid(p),
                },
            );
        }
        DeployFacts {
            state: EnvState::from_refs("dev", &RemoteRefs { refs }),
            branch_tip: Some(oid('f')),
            sha: oid('4'),
            hold: None,
            on_branch: Some(true),
            behind_current: Some(false),
            verdicts: None,
            stack_records: None,
        }
    }

    fn rules<'a>(stack: Option<&'a str>, stacks: Option<&'a [String]>) -> RecordRules<'a> {
        RecordRules {
            env: "dev",
            branch: "dev",
            rollback: false,
            stack,
            stacks,
        }
    }

    #[test]
    fn the_names_and_the_trailer_round_trip() {
        assert_eq!(
            stack_tag("dev", "network"),
            "deploy/dev/stacks/network/current"
        );
        assert_eq!(
            stack_ref("dev", "network"),
            "refs/tags/deploy/dev/stacks/network/current"
        );
        assert_eq!(stacks_prefix("dev"), "refs/tags/deploy/dev/stacks/");
        let f = facts();
        assert_eq!(
            f.state.stacks.keys().collect::<Vec<_>>(),
            ["network", "service"]
        );
        assert_eq!(f.state.foreign, ["refs/tags/deploy/dev/stacks/odd"]);
        let o = StackOutcome {
            stack: "network".into(),
            outcome: APPLIED.into(),
            plan_digest: None,
            run_id: "42".into(),
        };
        assert_eq!(o.trailer(), "network applied - run 42");
        assert_eq!(StackOutcome::parse(&o.trailer()), Some(o.clone()));
        assert_eq!(StackOutcome::parse("network applied"), None);
        let env = Record {
            environment: "dev".into(),
            commit: oid('4').to_string(),
            run_id: "42".into(),
            stacks: vec![o.clone(), o],
            ..Record::default()
        };
        assert_eq!(Record::parse(&env.message()), env);
        let st = record_of("dev", "network", oid('4'), 'a');
        let m = st.message();
        assert!(m.starts_with("deploy dev stack network: 4444444\n"), "{m}");
        assert_eq!(Record::parse(&m), st);
    }

    // Every outcome of the stacks rule alone (no git, no network).
    #[test]
    fn the_stacks_record_table() {
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = names(&["network", "service"]);
        let net = names(&["network"]);
        let db = names(&["db"]);
        let none: Vec<String> = Vec::new();
        let good = || {
            let mut m = BTreeMap::new();
            m.insert(
                "network".to_string(),
                Some(record_of("dev", "network", oid('4'), 'a')),
            );
            Some(m)
        };
        type Case<'a> = (
            &'a str,
            &'a [String],
            Box<dyn Fn(&mut DeployFacts)>,
            Result<usize, &'a str>,
        );
        let cases: Vec<Case> = vec![
            ("every stack applied", &net, Box::new(move |f| f.stack_records = good()), Ok(1)),
            ("no stack changed", &none, Box::new(|_| {}), Ok(0)),
            (
                "one stack applied, one at an older commit",
                &both,
                Box::new(move |f| f.stack_records = good()),
                Err("not every changed stack of 4444444 applied in `dev`: applied: network; not applied: service (last applied at 3333333). deploy/dev/current stays at 1111111"),
            ),
            (
                "a stack never applied",
                &db,
                Box::new(|_| {}),
                Err("applied: none; not applied: db (never applied here)"),
            ),
            (
                "a record for another stack",
                &net,
                Box::new(|f| {
                    let mut m = BTreeMap::new();
                    m.insert("network".to_string(), Some(record_of("dev", "service", oid('4'), 'a')));
                    f.stack_records = Some(m);
                }),
                Err("not applied: network (its record is not one of ours)"),
            ),
            (
                "a record of another environment",
                &net,
                Box::new(|f| {
                    let mut m = BTreeMap::new();
                    m.insert("network".to_string(), Some(record_of("prod", "network", oid('4'), 'a')));
                    f.stack_records = Some(m);
                }),
                Err("its record is not one of ours"),
            ),
            (
                "an unreadable record",
                &net,
                Box::new(|f| {
                    let mut m = BTreeMap::new();
                    m.insert("network".to_string(), None);
                    f.stack_records = Some(m);
                }),
                Err("its record is not one of ours"),
            ),
            (
                "the first deploy",
                &db,
                Box::new(|f| f.state.current = None),
                Err("deploy/dev/current stays absent"),
            ),
        ];
        for (what, list, edit, want) in cases {
            let mut f = facts();
            edit(&mut f);
            let got = decide_record(&f, &rules(None, Some(list)));
            match (want, got) {
                (
                    Ok(n),
                    RecordDecision::Record {
                        stacks, previous, ..
                    },
                ) => {
                    assert_eq!(stacks.len(), n, "{what}");
                    assert_eq!(previous, Some(oid('1')), "{what}");
                    if n == 1 {
                        assert_eq!(
                            stacks[0].plan_digest,
                            Some(format!("sha256:{}", "a".repeat(64)))
                        );
                        assert_eq!(stacks[0].run_id, "7");
                    }
                }
                (Err(needle), RecordDecision::Refuse(r)) => {
                    assert!(matches!(r, RecordRefusal::StacksNotApplied(_)), "{what}");
                    let failure = crate::exit::Failure::from(r);
                    assert_eq!(failure.class, crate::exit::ExitClass::Refused, "{what}");
                    assert!(
                        failure.message.contains(needle),
                        "{what}: {}",
                        failure.message
                    );
                }
                (w, g) => panic!("{what}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    // The messages are read only for the stacks whose record is at the commit, and only once
    // every earlier rule passed.
    #[test]
    fn stack_records_are_asked_for_last_and_only_at_the_commit() {
        let both = vec!["network".to_string(), "service".to_string()];
        let mut f = facts();
        f.on_branch = None;
        assert!(matches!(
            decide_record(&f, &rules(None, Some(&both))),
            RecordDecision::Gather(RecordNeed::OnBranch { .. })
        ));
        f.on_branch = Some(true);
        assert_eq!(
            decide_record(&f, &rules(None, Some(&both))),
            RecordDecision::Gather(RecordNeed::StackRecords(vec![("network".into(), oid('a'))]))
        );
    }

    // A stack's own record: unchanged at the same commit, backwards refused, else recorded
    // with the stack's previous commit.
    #[test]
    fn a_stack_record_is_judged_against_the_stacks_own_record() {
        let f = facts();
        assert_eq!(
            decide_record(&f, &rules(Some("network"), None)),
            RecordDecision::Unchanged {
                history_tag: String::new()
            }
        );
        assert_eq!(
            decide_record(&f, &rules(Some("service"), None)),
            RecordDecision::Record {
                previous: Some(oid('3')),
                rollback: false,
                stacks: Vec::new()
            }
        );
        assert_eq!(
            decide_record(&f, &rules(Some("db"), None)),
            RecordDecision::Record {
                previous: None,
                rollback: false,
                stacks: Vec::new()
            }
        );
        let mut back = facts();
        back.sha = oid('2');
        back.behind_current = Some(true);
        match decide_record(&back, &rules(Some("service"), None)) {
            RecordDecision::Refuse(r) => assert!(
                r.to_string().contains(
                    "of `dev` stack `service` (history tag deploy/dev/stacks/service/current): recording it would roll `dev` stack `service` back"
                ),
                "{r}"
            ),
            d => panic!("{d:?}"),
        }
        back.behind_current = None;
        assert_eq!(
            decide_record(&back, &rules(Some("service"), None)),
            RecordDecision::Gather(RecordNeed::BehindCurrent {
                sha: oid('2'),
                current: oid('3')
            })
        );
    }
}
