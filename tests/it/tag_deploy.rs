//! `tag-deploy` and the git layer under it, against real remotes: git's smart-HTTP backend behind
//! nginx with basic auth (`support::git_http`), and plain local bare repositories.

use std::sync::{Arc, Barrier};

use git2::Oid;
use gitops_actions::git::{Expect, GitError, RefUpdate, RemoteSpec, Session, Tagger};
use gitops_actions::secret::Secret;

use crate::support::git_http::{self, GitHttp};

const TOKEN: &str = "ghs_TestToken0123456789abcdef";

fn session(url: &str, token: Option<&str>, tmp: &std::path::Path) -> Session {
    Session::open(&RemoteSpec {
        repo_path: Some(tmp.join("no-checkout")),
        remote: Some(url.to_string()),
        token: token.map(Secret::from),
        temp_dir: Some(tmp.to_path_buf()),
    })
    .unwrap()
}

fn oid(s: &str) -> Oid {
    Oid::from_str(s).unwrap()
}

fn tagger() -> Tagger {
    Tagger {
        name: "test".into(),
        email: "test@example.com".into(),
    }
}

// The primitives promote and tag-deploy build on: ls-remote, fetch, ancestry, rev-list, tag
// objects, and a compare-and-swap push, over authenticated smart HTTP.
#[test]
fn git_layer_reads_and_swaps_over_authenticated_http() {
    let srv = GitHttp::start(TOKEN);
    let bare = srv.create_repo("app");
    let seeded = git_http::seed_env_branches(&bare, 5);
    let tmp = tempfile::tempdir().unwrap();
    let s = session(&srv.url("app"), Some(TOKEN), tmp.path());

    let refs = s.ls_remote(&["refs/heads/"]).unwrap();
    assert_eq!(refs.get("refs/heads/dev").unwrap().oid, oid(&seeded.dev[4]));
    assert_eq!(refs.get("refs/heads/main").unwrap().oid, oid(&seeded.main));
    assert!(refs.get("refs/tags/x").is_none());

    s.fetch(&["refs/heads/dev"], None).unwrap();
    assert!(s
        .is_ancestor(oid(&seeded.prod), oid(&seeded.dev[4]))
        .unwrap());
    assert!(!s
        .is_ancestor(oid(&seeded.dev[4]), oid(&seeded.prod))
        .unwrap());
    assert_eq!(
        s.merge_base(oid(&seeded.prod), oid(&seeded.main)).unwrap(),
        Some(oid(&seeded.prod))
    );
    let (between, more) = s
        .commits_between(Some(oid(&seeded.prod)), oid(&seeded.dev[4]), 10)
        .unwrap();
    assert!(!more);
    assert_eq!(
        between.iter().map(|c| c.id.to_string()).collect::<Vec<_>>(),
        vec![seeded.dev[4].clone(), seeded.dev[3].clone()]
    );
    let (one, more) = s
        .commits_between(Some(oid(&seeded.prod)), oid(&seeded.dev[4]), 1)
        .unwrap();
    assert!(more && one.len() == 1);

    // Create: must-not-exist lease.
    let t1 = s
        .create_tag_object(
            "deploy/dev/current",
            oid(&seeded.dev[3]),
            &tagger(),
            "one\n",
        )
        .unwrap();
    s.push(&[RefUpdate {
        name: "refs/tags/deploy/dev/current".into(),
        new: Some(t1),
        expect: Expect::Absent,
    }])
    .unwrap();
    let after = git_http::ls_remote(&srv.url("app"), Some(TOKEN));
    assert_eq!(after["refs/tags/deploy/dev/current"], t1.to_string());
    assert_eq!(after["refs/tags/deploy/dev/current^{}"], seeded.dev[3]);

    // A second "must not exist" create loses: both ids reported, nothing changed.
    let t2 = s
        .create_tag_object(
            "deploy/dev/current",
            oid(&seeded.dev[4]),
            &tagger(),
            "two\n",
        )
        .unwrap();
    let err = s
        .push(&[RefUpdate {
            name: "refs/tags/deploy/dev/current".into(),
            new: Some(t2),
            expect: Expect::Absent,
        }])
        .unwrap_err();
    match &err {
        GitError::Lease {
            expected, actual, ..
        } => {
            assert_eq!(expected, "<none>");
            assert_eq!(actual, &t1.to_string());
        }
        other => panic!("expected a lease failure, got {other:?}"),
    }
    assert_eq!(git_http::ls_remote(&srv.url("app"), Some(TOKEN)), after);

    // Atomic pair: one stale lease -> neither ref moves.
    let err = s
        .push(&[
            RefUpdate {
                name: "refs/tags/deploy/dev/history/x".into(),
                new: Some(t2),
                expect: Expect::Absent,
            },
            RefUpdate {
                name: "refs/tags/deploy/dev/current".into(),
                new: Some(t2),
                expect: Expect::Oid(t2),
            },
        ])
        .unwrap_err();
    match &err {
        GitError::Lease {
            refname,
            expected,
            actual,
        } => {
            assert_eq!(refname, "refs/tags/deploy/dev/current");
            assert_eq!(expected, &t2.to_string());
            assert_eq!(actual, &t1.to_string());
        }
        other => panic!("expected a lease failure, got {other:?}"),
    }
    assert_eq!(git_http::ls_remote(&srv.url("app"), Some(TOKEN)), after);

    // Atomic pair with the right lease: both move.
    s.push(&[
        RefUpdate {
            name: "refs/tags/deploy/dev/history/x".into(),
            new: Some(t2),
            expect: Expect::Absent,
        },
        RefUpdate {
            name: "refs/tags/deploy/dev/current".into(),
            new: Some(t2),
            expect: Expect::Oid(t1),
        },
    ])
    .unwrap();
    let now = git_http::ls_remote(&srv.url("app"), Some(TOKEN));
    assert_eq!(now["refs/tags/deploy/dev/current"], t2.to_string());
    assert_eq!(now["refs/tags/deploy/dev/history/x"], t2.to_string());

    // Delete with a lease.
    s.push(&[RefUpdate {
        name: "refs/tags/deploy/dev/history/x".into(),
        new: None,
        expect: Expect::Oid(t2),
    }])
    .unwrap();
    assert!(!git_http::ls_remote(&srv.url("app"), Some(TOKEN))
        .contains_key("refs/tags/deploy/dev/history/x"));
}

// libgit2 asks for credentials again and again when they are rejected: we answer once and fail.
#[test]
fn git_layer_bad_or_missing_credentials_fail_fast() {
    let srv = GitHttp::start(TOKEN);
    let bare = srv.create_repo("app");
    git_http::seed_env_branches(&bare, 3);
    let tmp = tempfile::tempdir().unwrap();
    for token in [Some("ghs_wrong"), None] {
        let s = session(&srv.url("app"), token, tmp.path());
        let err = s.ls_remote(&[]).unwrap_err();
        assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("authentication"), "{msg}");
        assert!(!msg.contains("ghs_wrong"), "{msg}");
        let err = s.fetch(&["refs/heads/dev"], None).unwrap_err();
        assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    }
}

// F10 at the git layer: N writers race for the same lease with an atomic (history, current)
// pair, repeatedly; exactly one wins each round and no history tag of a loser remains.
#[test]
fn git_layer_atomic_pairs_race_with_exactly_one_winner() {
    let srv = GitHttp::start(TOKEN);
    let bare = srv.create_repo("app");
    let seeded = git_http::seed_env_branches(&bare, 3);
    let url = srv.url("app");
    let tmp = tempfile::tempdir().unwrap();
    let writers = 4;
    for round in 0..3 {
        let before = git_http::ls_remote(&url, Some(TOKEN));
        let expect = Expect::from_seen(before.get("refs/tags/deploy/dev/current").map(|o| {
            gitops_actions::git::RemoteRef {
                oid: oid(o),
                peeled: oid(o),
            }
        }));
        let barrier = Arc::new(Barrier::new(writers));
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let barrier = barrier.clone();
                let url = url.clone();
                let dir = tmp.path().to_path_buf();
                let target = seeded.dev[w % 3].clone();
                std::thread::spawn(move || {
                    let s = session(&url, Some(TOKEN), &dir);
                    s.fetch(&["refs/heads/dev"], None).unwrap();
                    let name = format!("deploy/dev/history/r{round}-w{w}");
                    let t = s
                        .create_tag_object(&name, oid(&target), &tagger(), &format!("{name}\n"))
                        .unwrap();
                    barrier.wait();
                    let res = s.push(&[
                        RefUpdate {
                            name: format!("refs/tags/{name}"),
                            new: Some(t),
                            expect: Expect::Absent,
                        },
                        RefUpdate {
                            name: "refs/tags/deploy/dev/current".into(),
                            new: Some(t),
                            expect,
                        },
                    ]);
                    (name, t, res)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|r| r.2.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, _, r) in results.iter().filter(|r| r.2.is_err()) {
            assert!(
                matches!(r, Err(GitError::Lease { .. })),
                "a loser must fail on the lease: {r:?}"
            );
        }
        let after = git_http::ls_remote(&url, Some(TOKEN));
        let (wname, wtag, _) = winners[0];
        assert_eq!(after["refs/tags/deploy/dev/current"], wtag.to_string());
        for (name, _, r) in &results {
            assert_eq!(
                after.contains_key(&format!("refs/tags/{name}")),
                r.is_ok(),
                "history of {name} (winner {wname})"
            );
        }
        assert_eq!(after.len(), before.len() + 2 + usize::from(round == 0) * 2);
    }
}

// ---------------------------------------------------------------------------------------------
// The `tag-deploy` binary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::support::faultproxy::FaultProxy;
use crate::support::{Run, Sandbox};

/// A remote with seeded environment branches: over authenticated HTTP, or a plain local path.
struct Remote {
    srv: Option<GitHttp>,
    _local: Option<tempfile::TempDir>,
    url: String,
    _bare: PathBuf,
    seeded: git_http::Seeded,
}

impl Remote {
    fn http(commits: usize) -> Remote {
        Remote::served(GitHttp::start(TOKEN), commits)
    }
    fn https(commits: usize) -> Remote {
        Remote::served(GitHttp::start_tls(TOKEN), commits)
    }
    fn served(srv: GitHttp, commits: usize) -> Remote {
        let bare = srv.create_repo("app");
        let seeded = git_http::seed_env_branches(&bare, commits);
        Remote {
            url: srv.url("app"),
            srv: Some(srv),
            _local: None,
            _bare: bare,
            seeded,
        }
    }
    fn local(commits: usize) -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("app.git");
        git_http::init_bare(&bare);
        let seeded = git_http::seed_env_branches(&bare, commits);
        Remote {
            url: bare.display().to_string(),
            srv: None,
            _local: Some(dir),
            _bare: bare,
            seeded,
        }
    }
    fn token(&self) -> Option<&str> {
        self.srv.as_ref().map(|s| s.token())
    }
    fn refs(&self) -> BTreeMap<String, String> {
        git_http::ls_remote(&self.url, self.token())
    }
    /// The remote's refs read by the git CLI trusting `ca` (an https remote).
    fn refs_tls(&self, ca: &std::path::Path) -> BTreeMap<String, String> {
        git_http::ls_remote_env(&self.url, self.token(), &[("GIT_SSL_CAINFO", ca)])
    }
    /// A sandbox that looks like a deploy job of run `run_id`.
    fn sandbox(&self, run_id: &str) -> Sandbox {
        let mut sb = Sandbox::actions();
        sb.set("GITOPS_REMOTE", &self.url)
            .set("GITHUB_RUN_ID", run_id)
            .set("GITHUB_ACTOR", "octocat")
            .set("GITHUB_SERVER_URL", "https://github.com")
            .set("GITHUB_REPOSITORY", "acme/app")
            // The git part alone unless a test opts in to GitHub Deployments (and then points
            // the API at its own fake); a loopback URL either way, never api.github.com.
            .set("GITOPS_SKIP_GITHUB_DEPLOYMENT", "true")
            .set(
                "GITHUB_API_URL",
                format!("http://127.0.0.1:{}", crate::support::free_port()),
            );
        // A directory that is not a git checkout and has no `.github/gitops.yml`: the built-in
        // model, the remote from `GITOPS_REMOTE`. (A path that does not exist is refused.)
        let repo_path = sb.path().join("no-checkout");
        std::fs::create_dir_all(&repo_path).unwrap();
        sb.set("GITOPS_REPO_PATH", repo_path.display().to_string());
        if let Some(t) = self.token() {
            sb.set("GITOPS_GITHUB_TOKEN", t);
        }
        sb
    }
    fn td(&self, run_id: &str, args: &[&str]) -> (Run, Sandbox) {
        let sb = self.sandbox(run_id);
        let r = sb.run("tag-deploy", args);
        (r, sb)
    }
}

fn out(sb: &Sandbox, k: &str) -> String {
    sb.outputs().get(k).cloned().unwrap_or_default()
}

#[test]
fn record_moves_current_and_adds_history_in_one_push_and_reruns_are_idempotent() {
    let r = Remote::http(5);
    let d = &r.seeded.dev;
    let (run, sb) = r.td(
        "101",
        &[
            "record",
            "--environment",
            "dev",
            "--sha",
            &d[3],
            "--image",
            "app@sha256:1111",
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "recorded");
    assert_eq!(out(&sb, "sha"), d[3]);
    assert_eq!(out(&sb, "previous-sha"), "");
    assert_eq!(out(&sb, "tag"), "deploy/dev/current");
    let history = out(&sb, "history-tag");
    assert!(
        history.starts_with("deploy/dev/history/")
            && history.ends_with(&format!("-101-{}", &d[3][..7])),
        "{history}"
    );
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    let refs = r.refs();
    assert_eq!(refs["refs/tags/deploy/dev/current^{}"], d[3]);
    assert_eq!(refs[&format!("refs/tags/{history}^{{}}")], d[3]);
    assert!(sb.summary().contains("deploy/dev/history/"));

    // Re-run of the same job: success, nothing written.
    let (run, sb) = r.td("101", &["record", "--environment", "dev", "--sha", &d[3]]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "unchanged");
    assert_eq!(out(&sb, "history-tag"), history);
    assert_eq!(r.refs(), refs);

    // The next deploy moves current and keeps the first history entry.
    let (run, sb) = r.td("102", &["record", "--environment", "dev", "--sha", &d[4]]);
    run.expect_code(0);
    assert_eq!(out(&sb, "previous-sha"), d[3]);
    let now = r.refs();
    assert_eq!(now["refs/tags/deploy/dev/current^{}"], d[4]);
    assert_eq!(
        now[&format!("refs/tags/{history}")],
        refs[&format!("refs/tags/{history}")]
    );
    assert_eq!(
        now.keys()
            .filter(|k| k.contains("/history/") && !k.ends_with("^{}"))
            .count(),
        2
    );

    // list, from the remote, newest first, with the metadata from the tag messages.
    let (run, sb) = r.td("103", &["list", "--environment", "dev", "--format", "json"]);
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out(&sb, "json")).unwrap();
    assert_eq!(doc["current"], d[4].as_str());
    assert_eq!(doc["history"][0]["sha"], d[4].as_str());
    assert_eq!(doc["history"][0]["current"], true);
    assert_eq!(doc["history"][0]["run_id"], "102");
    assert_eq!(doc["history"][1]["sha"], d[3].as_str());
    assert_eq!(doc["history"][1]["image"], "app@sha256:1111");
    assert_eq!(doc["history"][1]["actor"], "octocat");
    assert_eq!(
        doc["history"][1]["run_url"],
        "https://github.com/acme/app/actions/runs/101"
    );
    assert!(run.stdout.contains(&d[4]));
    let (run, _) = r.td("103", &["list", "--environment", "dev"]);
    run.expect_code(0);
    assert!(run.stdout.contains("<- current"), "{}", run.stdout);
    assert!(run.stdout.contains("app@sha256:1111"), "{}", run.stdout);
}

// F13: a re-run of an old deploy job after a newer deploy succeeded must not roll back.
#[test]
fn rerun_of_an_older_deploy_is_refused_unless_marked_rollback_f13() {
    let r = Remote::local(5);
    let d = &r.seeded.dev;
    r.td("1", &["record", "--environment", "dev", "--sha", &d[3]])
        .0
        .expect_code(0);
    r.td("2", &["record", "--environment", "dev", "--sha", &d[4]])
        .0
        .expect_code(0);
    let before = r.refs();
    let (run, _) = r.td("1", &["record", "--environment", "dev", "--sha", &d[3]]);
    run.expect_code(1);
    assert!(
        run.all().contains("ancestor of the current deploy"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("--rollback"), "{}", run.all());
    assert_eq!(r.refs(), before);

    let (run, sb) = r.td(
        "3",
        &[
            "record",
            "--environment",
            "dev",
            "--sha",
            &d[3],
            "--rollback",
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "rolled-back");
    assert_eq!(out(&sb, "previous-sha"), d[4]);
    assert_eq!(r.refs()["refs/tags/deploy/dev/current^{}"], d[3]);
    let (_, sb) = r.td("4", &["list", "--environment", "dev", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out(&sb, "json")).unwrap();
    assert_eq!(doc["history"][0]["rollback_of"], d[4].as_str());
}

// F16: rolling back to a commit never deployed to that environment is refused, in `resolve` and
// in `record --rollback`.
#[test]
fn rollback_to_a_commit_never_deployed_is_refused_f16() {
    let r = Remote::local(5);
    let d = &r.seeded.dev;
    r.td("1", &["record", "--environment", "dev", "--sha", &d[3]])
        .0
        .expect_code(0);
    r.td("2", &["record", "--environment", "dev", "--sha", &d[4]])
        .0
        .expect_code(0);
    let before = r.refs();
    let (run, _) = r.td("3", &["resolve", "--environment", "dev", "--to", &d[1]]);
    run.expect_code(1);
    assert!(run.all().contains("never deployed"), "{}", run.all());
    let (run, _) = r.td(
        "3",
        &[
            "record",
            "--environment",
            "dev",
            "--sha",
            &d[1],
            "--rollback",
        ],
    );
    run.expect_code(1);
    assert!(run.all().contains("never deployed"), "{}", run.all());
    // Deployed to dev, but never to staging.
    let (run, _) = r.td("3", &["resolve", "--environment", "staging", "--to", &d[3]]);
    run.expect_code(1);
    assert_eq!(r.refs(), before);
}

/// Record dev's commits 2, 3, 4 (runs 10-12); their history tags, oldest first.
fn record_three(r: &Remote) -> Vec<String> {
    let d = &r.seeded.dev;
    let mut tags = Vec::new();
    for (i, c) in [&d[2], &d[3], &d[4]].iter().enumerate() {
        let (run, sb) = r.td(
            &format!("{}", 10 + i),
            &["record", "--environment", "dev", "--sha", c],
        );
        run.expect_code(0);
        tags.push(out(&sb, "history-tag"));
    }
    tags
}

#[test]
fn resolve_previous_a_history_tag_or_a_deployed_sha() {
    let r = Remote::local(6);
    let d = &r.seeded.dev;
    let tags = record_three(&r);
    let (run, sb) = r.td(
        "20",
        &["resolve", "--environment", "dev", "--to", "previous"],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "sha"), d[3]);
    assert_eq!(out(&sb, "tag"), tags[1]);
    assert_eq!(out(&sb, "previous-sha"), d[4]);
    let (run, sb) = r.td("20", &["resolve", "--environment", "dev", "--to", &tags[0]]);
    run.expect_code(0);
    assert_eq!(out(&sb, "sha"), d[2]);
    let (run, sb) = r.td(
        "20",
        &[
            "resolve",
            "--environment",
            "dev",
            "--to",
            &format!("refs/tags/{}", tags[0]),
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "sha"), d[2]);
    let (run, sb) = r.td("20", &["resolve", "--environment", "dev", "--to", &d[2]]);
    run.expect_code(0);
    assert_eq!(out(&sb, "tag"), tags[0]);
    // No deploy before the first one.
    let (run, _) = r.td(
        "20",
        &["resolve", "--environment", "prod", "--to", "previous"],
    );
    run.expect_code(1);
}

#[test]
fn record_refuses_a_commit_that_is_not_on_the_environment_branch() {
    let r = Remote::local(5);
    let d = &r.seeded.dev;
    let before = r.refs();
    // dev's tip is not (yet) on prod's branch.
    let (run, _) = r.td("1", &["record", "--environment", "prod", "--sha", &d[4]]);
    run.expect_code(1);
    assert!(
        run.all().contains("is not on branch `prod`"),
        "{}",
        run.all()
    );
    // A commit the remote does not have at all.
    let (run, _) = r.td(
        "1",
        &["record", "--environment", "dev", "--sha", &"e".repeat(40)],
    );
    run.expect_code(1);
    assert_eq!(r.refs(), before);
    // prod's own tip is fine.
    r.td(
        "1",
        &["record", "--environment", "prod", "--sha", &r.seeded.prod],
    )
    .0
    .expect_code(0);
}

#[test]
fn hold_blocks_normal_records_until_released() {
    let r = Remote::http(5);
    let d = &r.seeded.dev;
    r.td("1", &["record", "--environment", "dev", "--sha", &d[3]])
        .0
        .expect_code(0);
    let (run, _) = r.td("2", &["hold", "--environment", "dev"]);
    run.expect_code(2);
    assert!(run.all().contains("`reason`"), "{}", run.all());
    let (run, sb) = r.td(
        "2",
        &[
            "hold",
            "--environment",
            "dev",
            "--reason",
            "rolled back: bad release",
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "held");
    let held = r.refs();
    assert_eq!(held["refs/tags/deploy/dev/hold^{}"], d[3]);
    // Holding again changes nothing.
    let (run, sb) = r.td("2", &["hold", "--environment", "dev", "--reason", "again"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "already-held");
    assert!(
        run.all().contains("rolled back: bad release"),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), held);
    // An automatic deploy is refused while held, with the reason.
    let (run, _) = r.td("3", &["record", "--environment", "dev", "--sha", &d[4]]);
    run.expect_code(1);
    assert!(run.all().contains("on hold"), "{}", run.all());
    assert!(
        run.all().contains("rolled back: bad release"),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), held);
    let (run, sb) = r.td("3", &["list", "--environment", "dev", "--format", "json"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "held"), "true");
    let doc: serde_json::Value = serde_json::from_str(&out(&sb, "json")).unwrap();
    assert_eq!(doc["hold"]["reason"], "rolled back: bad release");
    assert_eq!(doc["hold"]["actor"], "octocat");
    // Release, then the deploy goes through.
    let (run, sb) = r.td(
        "4",
        &["release", "--environment", "dev", "--reason", "fixed"],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "released");
    assert!(!r.refs().contains_key("refs/tags/deploy/dev/hold"));
    let (run, sb) = r.td("4", &["release", "--environment", "dev"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "not-held");
    r.td("5", &["record", "--environment", "dev", "--sha", &d[4]])
        .0
        .expect_code(0);
}

// F10/F12: N deploy jobs of one environment record at once, repeatedly. Exactly one wins each
// round; each loser exits 1 naming both object ids (or, if it started after the winner was
// done, finds its commit already current); no history entry is lost or left dangling.
#[test]
fn concurrent_records_have_exactly_one_winner_f10_f12() {
    let r = Remote::http(8);
    let d = &r.seeded.dev;
    let writers = 4;
    for round in 0..3 {
        let base = &d[2 * round + 1];
        let target = &d[2 * round + 2];
        r.td(
            &format!("{round}0"),
            &["record", "--environment", "dev", "--sha", base],
        )
        .0
        .expect_code(0);
        let before = r.refs();
        let children: Vec<_> = (0..writers)
            .map(|w| {
                let sb = r.sandbox(&format!("{round}{}", w + 1));
                let mut c = sb.cmd("tag-deploy");
                c.args(["record", "--environment", "dev", "--sha", target])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                (c.spawn().unwrap(), sb)
            })
            .collect();
        let results: Vec<_> = children
            .into_iter()
            .map(|(c, sb)| {
                let o = c.wait_with_output().unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                (o.status.code().unwrap(), out(&sb, "status"), text)
            })
            .collect();
        let winners = results.iter().filter(|x| x.1 == "recorded").count();
        assert_eq!(winners, 1, "round {round}: {results:#?}");
        eprintln!(
            "round {round}: 1 winner, {} lost the race, {} found it already current",
            results.iter().filter(|x| x.0 == 1).count(),
            results.iter().filter(|x| x.1 == "unchanged").count()
        );
        for (code, status, text) in &results {
            match (code, status.as_str()) {
                (0, "recorded") | (0, "unchanged") => {}
                (1, _) => {
                    assert!(text.contains("lost the race"), "{text}");
                    let ids = text
                        .split(|c: char| !c.is_ascii_hexdigit())
                        .filter(|w| w.len() == 40)
                        .count();
                    assert!(ids >= 2, "both object ids must be printed: {text}");
                }
                other => panic!("unexpected outcome {other:?}: {text}"),
            }
        }
        let after = r.refs();
        assert_eq!(after["refs/tags/deploy/dev/current^{}"], *target);
        let new_history: Vec<_> = after
            .keys()
            .filter(|k| k.contains("/history/") && !k.ends_with("^{}") && !before.contains_key(*k))
            .collect();
        assert_eq!(
            new_history.len(),
            1,
            "round {round}: exactly the winner's history entry: {new_history:?}"
        );
        assert_eq!(after[&format!("{}^{{}}", new_history[0])], *target);
    }
}

// Every ref/sha/environment vector of hardening.md: exit 2, the field named, the value shown
// neutralised, and nothing sent (the remote is a closed port) or written (a real remote).
#[test]
fn bad_inputs_are_refused_before_any_call_with_nothing_written() {
    let r = Remote::http(4);
    let d = &r.seeded.dev;
    let before = r.refs();
    let closed = format!("http://127.0.0.1:{}/app.git", crate::support::free_port());
    let sha = d[3].clone();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "record".into(),
                "--environment".into(),
                "Prod".into(),
                "--sha".into(),
                sha.clone(),
            ],
            "environment",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "prod ".into(),
                "--sha".into(),
                sha.clone(),
            ],
            "environment",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "../prod".into(),
                "--sha".into(),
                sha.clone(),
            ],
            "environment",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "".into(),
                "--sha".into(),
                sha.clone(),
            ],
            "environment",
        ),
        (
            vec!["list".into(), "--environment".into(), "dev/../prod".into()],
            "environment",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha[..7].to_string(),
            ],
            "sha",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.to_uppercase(),
            ],
            "sha",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                format!("{sha}0"),
            ],
            "sha",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                "HEAD".into(),
            ],
            "sha",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                format!("{}\n::error::pwned", &sha[..39]),
            ],
            "sha",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.clone(),
                "--plan-digest".into(),
                "sha256:xyz".into(),
            ],
            "plan-digest",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.clone(),
                "--image".into(),
                "a\n::error::x".into(),
            ],
            "image",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.clone(),
                "--to".into(),
                "previous".into(),
            ],
            "to",
        ),
        (
            vec![
                "list".into(),
                "--environment".into(),
                "dev".into(),
                "--rollback".into(),
            ],
            "rollback",
        ),
        (
            vec!["resolve".into(), "--environment".into(), "dev".into()],
            "to",
        ),
        (
            vec![
                "hold".into(),
                "--environment".into(),
                "dev".into(),
                "--reason".into(),
                "x\r\n::add-mask::y".into(),
            ],
            "reason",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.clone(),
                "--remote".into(),
                "https://x-access-token:ghs_x@github.com/o/r".into(),
            ],
            "remote",
        ),
        (
            vec![
                "record".into(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.clone(),
                "--remote".into(),
                "ext::sh -c touch% /tmp/pwned".into(),
            ],
            "remote",
        ),
    ];
    let deploy_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["record", "--environment-url", "javascript:alert(1)"],
            "environment-url",
        ),
        (
            vec!["start", "--environment-url", "https://u:p@app.example.com/"],
            "environment-url",
        ),
        (
            vec!["record", "--environment-url", "https://x/\n::error::pwned"],
            "environment-url",
        ),
        (
            vec!["fail", "--required-contexts", "plan,\u{7}bell"],
            "required-contexts",
        ),
        (
            vec!["start", "--github-api-url", "http://169.254.169.254/"],
            "github-api-url",
        ),
        (vec!["record", "--repository", "a/b/c"], "repository"),
        (vec!["fail", "--image", "app@sha256:00"], "image"),
        (vec!["start", "--deployment-id", "7"], "deployment-id"),
    ];
    let mut deploy_vectors: Vec<(Vec<String>, &str)> = deploy_cases
        .into_iter()
        .map(|(extra, field)| {
            let mut v = vec![
                extra[0].to_string(),
                "--environment".into(),
                "dev".into(),
                "--sha".into(),
                sha.clone(),
            ];
            v.extend(extra[1..].iter().map(|x| x.to_string()));
            (v, field)
        })
        .collect();
    deploy_vectors.push((
        vec![
            "list".into(),
            "--environment".into(),
            "dev".into(),
            "--environment-url".into(),
            "https://app.example.com".into(),
        ],
        "environment-url",
    ));
    deploy_vectors.push((
        vec![
            "hold".into(),
            "--environment".into(),
            "dev".into(),
            "--reason".into(),
            "r".into(),
            "--deployment-id".into(),
            "3".into(),
        ],
        "deployment-id",
    ));
    let mut to_vectors = vec![
        "a..b",
        "deploy/dev/history/a b",
        "deploy/dev/history/x~1",
        "deploy/dev/history/x^",
        "deploy/dev/history/x:y",
        "deploy/dev/history/x?",
        "deploy/dev/history/x*",
        "deploy/dev/history/x[",
        "deploy/dev/history/x\\y",
        "deploy/dev//history/x",
        "deploy/dev/history/x.",
        "deploy/dev/history/x/",
        "deploy/dev/history/x.lock",
        "deploy/dev/history/@{1}",
        "deploy/dev/history/\u{1}x",
        "deploy/prod/history/20261126T120000Z-1-abcdef1",
        "deploy/dev/current",
        "HEAD~1",
        "Previous",
        "",
    ]
    .into_iter()
    .map(|t| {
        (
            vec![
                "resolve".to_string(),
                "--environment".into(),
                "dev".into(),
                "--to".into(),
                t.to_string(),
            ],
            "to",
        )
    })
    .collect();
    let mut all = cases;
    all.append(&mut to_vectors);
    all.append(&mut deploy_vectors);
    for (args, field) in &all {
        for remote in [&closed, &r.url] {
            let mut sb = r.sandbox("1");
            sb.set("GITOPS_REMOTE", remote);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = sb.run("tag-deploy", &argv);
            assert_eq!(run.code, 2, "{args:?} via {remote}: {}", run.all());
            assert!(
                run.all().contains(&format!("`{field}`")),
                "{args:?}: {}",
                run.all()
            );
            for line in run.stdout.lines() {
                assert!(
                    !line.trim_start().starts_with("::error::pwned")
                        && !line.starts_with("::add-mask::y"),
                    "{line}"
                );
            }
        }
    }
    assert_eq!(r.refs(), before);
}

// #13 part 4: `github-token` is the input; the old `token` (flag `--token`, variable
// `GITOPS_TOKEN`) still works, says once that it is deprecated, and never prints the token.
#[test]
fn the_deprecated_token_alias_still_works_with_one_warning_and_no_leak() {
    let r = Remote::http(3);
    let mut sb = r.sandbox("1");
    sb.unset("GITOPS_GITHUB_TOKEN").unset("GITHUB_TOKEN");
    // Without any token the private remote refuses: the alias below really carries it.
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(3);
    assert!(!run.all().contains("deprecated"), "{}", run.all());
    let by_flag = sb.run(
        "tag-deploy",
        &["list", "--environment", "dev", "--token", TOKEN],
    );
    sb.set("GITOPS_TOKEN", TOKEN);
    let by_env = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    for run in [by_flag, by_env] {
        run.expect_code(0);
        assert_eq!(
            run.all()
                .matches("input `token` is deprecated: use `github-token`")
                .count(),
            1,
            "{}",
            run.all()
        );
        assert!(run.stdout.contains("::warning::"), "{}", run.stdout);
        sb.assert_no_leak(&run, &[TOKEN], &[]);
    }
    // The new name: no warning.
    sb.unset("GITOPS_TOKEN").set("GITOPS_GITHUB_TOKEN", TOKEN);
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(0);
    assert!(!run.all().contains("deprecated"), "{}", run.all());
}

#[test]
fn bad_credentials_fail_fast_with_exit_3_and_no_leak() {
    let r = Remote::http(3);
    let mut sb = r.sandbox("1");
    // The deprecated alias, set on purpose, wins over `github-token` (which an action always
    // fills with the workflow token).
    sb.set("GITOPS_TOKEN", "ghs_WrongToken987654321");
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(3);
    assert!(run.all().contains("authentication"), "{}", run.all());
    sb.assert_no_leak(&run, &["ghs_WrongToken987654321"], &[]);
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &r.seeded.dev[2]],
    );
    run.expect_code(3);
    sb.assert_no_leak(&run, &["ghs_WrongToken987654321"], &[]);
}

// One proxy policy for every connection (src/net.rs): with `http_proxy` set, each git request
// of tag-deploy goes through the proxy. The remote's host name resolves nowhere but at the
// proxy (which forwards to the git server), so nothing could have gone around it; `NO_PROXY`
// exempts the host again (and then it cannot be reached: exit 3, the proxy sees nothing).
#[test]
fn git_requests_go_through_the_environments_proxy_and_no_proxy_exempts_hosts() {
    let r = Remote::http(4);
    let d = &r.seeded.dev;
    let proxy = FaultProxy::start(r.srv.as_ref().unwrap().port);
    let mut sb = r.sandbox("301");
    // A loopback name (plain http with a token is for loopback only) on a port where nothing
    // listens: only the proxy, which relays to the real server, can reach it.
    sb.set("GITOPS_REMOTE", "http://localhost:1/app.git")
        .set("http_proxy", format!("http://{}", proxy.host()));
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &d[2]],
    );
    run.expect_code(0);
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    assert_eq!(r.refs()["refs/tags/deploy/dev/current^{}"], d[2]);
    let seen = proxy.requests();
    let via = |m: &str, p: &str| proxy.count(m, &format!("http://localhost:1/app.git{p}"));
    // The advertisement and the fetch: libgit2, through our smart-HTTP transport.
    assert!(via("GET", "/info/refs") >= 1, "{seen:?}");
    assert!(via("POST", "/git-upload-pack") >= 1, "{seen:?}");
    // The push of the (history, current) pair.
    assert!(via("POST", "/git-receive-pack") >= 1, "{seen:?}");
    assert_eq!(seen.len(), proxy.requests().len());

    proxy.clear();
    sb.set("NO_PROXY", "localhost").set("no_proxy", "localhost");
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(3);
    assert!(run.all().contains("localhost"), "{}", run.all());
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
}

// git over https goes through the one TLS stack: with the server's CA trusted through
// SSL_CERT_FILE (read as OpenSSL and curl read it) reads and a compare-and-swap push work; with
// the system roots only, the handshake fails (exit 3, nothing written) — verification is never
// skipped; with no usable root at all the message says where roots come from.
#[test]
fn git_over_https_trusts_exactly_the_configured_roots() {
    let r = Remote::https(4);
    let ca = r.srv.as_ref().unwrap().ca.clone().unwrap();
    let before = r.refs_tls(&ca);
    let hold = ["hold", "--environment", "dev", "--reason", "tls test"];

    let mut sb = r.sandbox("401");
    sb.set("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt");
    let run = sb.run("tag-deploy", &hold);
    run.expect_code(3);
    assert!(
        run.all().to_lowercase().contains("certificate"),
        "{}",
        run.all()
    );
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    assert_eq!(r.refs_tls(&ca), before, "nothing may be written");

    sb.set("SSL_CERT_FILE", "/dev/null");
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(3);
    assert!(run.all().contains("SSL_CERT_FILE"), "{}", run.all());

    sb.set("SSL_CERT_FILE", ca.display().to_string());
    let run = sb.run("tag-deploy", &hold);
    run.expect_code(0);
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    let after = r.refs_tls(&ca);
    assert!(after.contains_key("refs/tags/deploy/dev/hold"), "{after:?}");
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(0);
}

// actions/checkout leaves `http.<origin>.extraheader = AUTHORIZATION: basic ...` in the
// checkout's config; with no token input tag-deploy uses it and the checkout's `origin`.
#[test]
fn uses_the_checkout_origin_and_its_persisted_credentials() {
    use base64::Engine;
    let r = Remote::http(4);
    let d = &r.seeded.dev;
    let sb0 = Sandbox::actions();
    let checkout = sb0.path().join("work");
    let header = format!(
        "AUTHORIZATION: basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
    );
    let origin = format!("http://127.0.0.1:{}/", r.srv.as_ref().unwrap().port);
    let o = git_http::git(sb0.path())
        .args([
            "-c",
            &format!("http.extraheader={header}"),
            "clone",
            "--quiet",
            &r.url,
        ])
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    git_http::git_ok(
        &checkout,
        &["config", &format!("http.{origin}.extraheader"), &header],
    );

    let mut sb = Sandbox::actions();
    sb.set("GITHUB_WORKSPACE", checkout.display().to_string())
        .set("GITHUB_RUN_ID", "7")
        .set("GITHUB_SHA", &d[3]);
    let run = sb.run("tag-deploy", &["record", "--environment", "dev"]);
    run.expect_code(0);
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    assert_eq!(r.refs()["refs/tags/deploy/dev/current^{}"], d[3]);
    // No local tag was written in the user's checkout.
    assert_eq!(git_http::git_ok(&checkout, &["tag", "--list"]), "");
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(0);
    assert!(run.stdout.contains(&d[3][..7]), "{}", run.stdout);
}

// ---------------------------------------------------------------- GitHub Deployments

use crate::support::github_fake::{GithubFake, Scripted};
use crate::support::prism::Prism;

const API_TOKEN: &str = "ghs_DeploymentsApiToken0123456789";

/// A deploy-job sandbox with GitHub Deployments on, against the fake behind Prism.
fn deploy_sandbox(r: &Remote, proxy: &Prism, run_id: &str) -> Sandbox {
    let mut sb = r.sandbox(run_id);
    sb.unset("GITOPS_SKIP_GITHUB_DEPLOYMENT")
        .set("GITHUB_API_URL", proxy.url())
        .set("GITHUB_RUN_ATTEMPT", "1")
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    sb
}

// The deploy job's life cycle on a production environment: `start` creates the deployment with
// explicit, safe fields and posts in_progress; `record` finds it by the run key (no second
// deployment), moves the tags, posts success with the run and environment URLs, and marks the
// older successful production deployment inactive. Prism checks every request and answer
// against GitHub's OpenAPI description.
#[test]
fn start_then_record_keeps_one_github_deployment_through_in_progress_to_success() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let r = Remote::local(4);
    let prod = r.seeded.prod.clone();
    let older = fake.add_deployment(&r.seeded.dev[0], "prod", true, "success");
    let other_env = fake.add_deployment(&r.seeded.dev[0], "dev", false, "success");

    let mut sb = deploy_sandbox(&r, &proxy, "201");
    sb.set("GITOPS_ENVIRONMENT_URL", "https://app.example.com/");
    let run = sb.run(
        "tag-deploy",
        &[
            "start",
            "--environment",
            "prod",
            "--sha",
            &prod,
            "--image",
            "app@sha256:2222",
        ],
    );
    run.expect_code(0);
    sb.assert_no_leak(&run, &[API_TOKEN], &[]);
    assert_eq!(out(&sb, "status"), "started");
    let id = out(&sb, "deployment-id");
    assert!(!id.is_empty(), "{}", run.all());
    let posts = fake.requests_to("POST", "/repos/acme/app/deployments");
    let creates: Vec<_> = posts
        .iter()
        .filter(|p| p.path == "/repos/acme/app/deployments")
        .collect();
    assert_eq!(creates.len(), 1);
    let body = &creates[0].body;
    assert_eq!(body["ref"], prod.as_str());
    assert_eq!(body["environment"], "prod");
    assert_eq!(body["auto_merge"], false);
    assert_eq!(body["required_contexts"], serde_json::json!([]));
    assert_eq!(body["production_environment"], true);
    assert_eq!(body["payload"]["gitops"]["run_key"], "201.1");
    assert_eq!(body["payload"]["gitops"]["image"], "app@sha256:2222");
    let id_n: u64 = id.parse().unwrap();
    assert_eq!(fake.latest_status(id_n).as_deref(), Some("in_progress"));
    assert_eq!(
        r.refs().get("refs/tags/deploy/prod/current"),
        None,
        "start writes no tag"
    );

    // The same run records: the deployment is found by its run key, not created again.
    let mut sb = deploy_sandbox(&r, &proxy, "201");
    sb.set("GITOPS_ENVIRONMENT_URL", "https://app.example.com/");
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "prod", "--sha", &prod],
    );
    run.expect_code(0);
    sb.assert_no_leak(&run, &[API_TOKEN], &[]);
    assert_eq!(out(&sb, "status"), "recorded");
    assert_eq!(out(&sb, "deployment-id"), id);
    assert_eq!(r.refs()["refs/tags/deploy/prod/current^{}"], prod);
    assert_eq!(
        fake.requests_to("POST", "/repos/acme/app/deployments")
            .iter()
            .filter(|p| p.path == "/repos/acme/app/deployments")
            .count(),
        1,
        "no duplicate deployment"
    );
    assert_eq!(fake.latest_status(id_n).as_deref(), Some("success"));
    let st = fake.state.lock().unwrap().statuses[&id_n][0].clone();
    assert_eq!(
        st["log_url"],
        "https://github.com/acme/app/actions/runs/201"
    );
    assert_eq!(st["environment_url"], "https://app.example.com/");
    assert_eq!(fake.latest_status(older).as_deref(), Some("inactive"));
    assert_eq!(
        fake.latest_status(other_env).as_deref(),
        Some("success"),
        "other environments untouched"
    );
    assert!(run.all().contains("inactive"), "{}", run.all());
    proxy.assert_no_violations();
}

// A record that refuses (F13: an older commit without --rollback) leaves the tags alone and
// marks the run's deployment failure; `fail` from a job's failure path creates (or finds) the
// run's deployment and posts failure, with no git access at all.
#[test]
fn a_refused_record_and_the_fail_command_post_failure_statuses() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let r = Remote::local(5);
    let d = r.seeded.dev.clone();
    let sb = deploy_sandbox(&r, &proxy, "300");
    sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &d[4]],
    )
    .expect_code(0);
    let before = r.refs();

    let sb = deploy_sandbox(&r, &proxy, "301");
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &d[2]],
    );
    run.expect_code(1);
    assert!(run.all().contains("--rollback"), "{}", run.all());
    assert_eq!(r.refs(), before, "nothing written");
    let id: u64 = out(&sb, "deployment-id").parse().unwrap();
    assert_eq!(fake.latest_status(id).as_deref(), Some("failure"));
    let st = fake.state.lock().unwrap().statuses[&id][0].clone();
    assert!(
        st["description"].as_str().unwrap().contains("failed"),
        "{st}"
    );

    // `fail` with no checkout or remote at all: only the API.
    let mut sb = deploy_sandbox(&r, &proxy, "302");
    sb.set(
        "GITOPS_REMOTE",
        format!(
            "http://127.0.0.1:{}/closed.git",
            crate::support::free_port()
        ),
    );
    let run = sb.run(
        "tag-deploy",
        &["fail", "--environment", "dev", "--sha", &d[3]],
    );
    run.expect_code(0);
    sb.assert_no_leak(&run, &[API_TOKEN], &[]);
    assert_eq!(out(&sb, "status"), "failed");
    let id2: u64 = out(&sb, "deployment-id").parse().unwrap();
    assert_ne!(id2, id);
    assert_eq!(fake.latest_status(id2).as_deref(), Some("failure"));
    // Again for the same run: the same deployment, not a new one.
    let run = sb.run(
        "tag-deploy",
        &["fail", "--environment", "dev", "--sha", &d[3]],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "deployment-id"), id2.to_string());
    assert_eq!(r.refs(), before);

    // A deployment id of another commit is refused before any status is posted.
    let statuses_before = fake
        .requests_to("POST", "/repos/acme/app/deployments/")
        .len();
    let sb = deploy_sandbox(&r, &proxy, "303");
    let run = sb.run(
        "tag-deploy",
        &[
            "record",
            "--environment",
            "dev",
            "--sha",
            &d[4],
            "--deployment-id",
            &id2.to_string(),
        ],
    );
    run.expect_code(1);
    assert!(run.all().contains("not"), "{}", run.all());
    assert_eq!(
        fake.requests_to("POST", "/repos/acme/app/deployments/")
            .len(),
        statuses_before
    );
    assert_eq!(r.refs(), before);
    proxy.assert_no_violations();
}

// The Deployments API refusing the token (403) fails the record before any tag moves (exit 3,
// with the permission hint and the way out); without a token, or with the skip input, the git
// part runs alone with one notice line.
#[test]
fn deployments_api_errors_change_nothing_and_without_a_token_git_runs_alone() {
    let fake = GithubFake::start();
    let r = Remote::local(3);
    let d = r.seeded.dev.clone();
    let before = r.refs();
    fake.script(Scripted {
        method: "POST".into(),
        path_prefix: "/repos/acme/app/deployments".into(),
        status: 403,
        headers: vec![],
        body: serde_json::json!({"message": "Resource not accessible by integration", "documentation_url": "x"}),
        delay: std::time::Duration::ZERO,
        apply: false,
    });
    let mut sb = r.sandbox("400");
    sb.unset("GITOPS_SKIP_GITHUB_DEPLOYMENT")
        .set("GITHUB_API_URL", fake.url())
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &d[2]],
    );
    run.expect_code(3);
    let all = run.all();
    assert!(all.contains("deployments: write"), "{all}");
    assert!(
        all.contains("nothing was recorded") && all.contains("skip-github-deployment"),
        "{all}"
    );
    sb.assert_no_leak(&run, &[API_TOKEN], &[]);
    assert_eq!(r.refs(), before, "no tag moved");

    // No token: git only, one notice.
    let mut sb = r.sandbox("401");
    sb.unset("GITOPS_SKIP_GITHUB_DEPLOYMENT")
        .unset("GITOPS_GITHUB_TOKEN");
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &d[2]],
    );
    run.expect_code(0);
    assert_eq!(run.stdout.matches("::notice").count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("git tags only"), "{}", run.stdout);
    assert_eq!(out(&sb, "deployment-id"), "");
    assert_eq!(r.refs()["refs/tags/deploy/dev/current^{}"], d[2]);
    let n = fake.requests().len();

    // Skipped explicitly: `start` says so and calls nothing.
    let mut sb = r.sandbox("402");
    sb.set("GITHUB_API_URL", fake.url())
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    let run = sb.run(
        "tag-deploy",
        &["start", "--environment", "dev", "--sha", &d[2]],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "skipped");
    assert!(
        run.stdout.contains("skip-github-deployment"),
        "{}",
        run.stdout
    );
    assert_eq!(fake.requests().len(), n, "no API call");
}

/// An annotated tag `name` on `sha` in `bare` with `message` (what anyone who may push tags can
/// create: the name alone proves nothing).
fn forge(bare: &std::path::Path, name: &str, sha: &str, message: &str) {
    git_http::git_ok(bare, &["tag", "-a", "-m", message, name, sha]);
}

fn trailers(env: &str, sha: &str, run: &str) -> String {
    format!(
        "deploy {env}: {}\n\nRecorded by gitops-actions tag-deploy.\n\nEnvironment: {env}\nCommit: {sha}\nRun-ID: {run}\nImage: evil.example.com/app@sha256:{}\n",
        &sha[..7],
        "e".repeat(64)
    )
}

// F16 / #21 item 6: a well-named history tag is not a record. A rollback target must be a
// commit of the environment's branch that a real record made (trailers naming this environment
// and exactly the tag's commit, name agreeing with them), however the target is named:
// `previous`, the tag, the sha, or `record --rollback`. Refusals exit 1 before any output or
// change; `list` flags forged entries and shows none of their trailers.
#[test]
fn forged_history_tags_are_never_rollback_targets() {
    let r = Remote::local(6);
    let d = &r.seeded.dev;
    let tags = record_three(&r);
    let bare = &r._bare;
    // (a) newest entry, perfect trailers, on a commit that was never on `dev`.
    let tree = git_http::git_ok(bare, &["rev-parse", "refs/heads/dev^{tree}"]);
    let evil = git_http::git_ok(bare, &["commit-tree", &tree, "-p", &d[4], "-m", "evil"]);
    let off_branch = format!("deploy/dev/history/20991231T000000Z-99-{}", &evil[..7]);
    forge(bare, &off_branch, &evil, &trailers("dev", &evil, "99"));
    // (b) on the branch, but its trailers name another environment.
    let other_env = format!("deploy/dev/history/20261101T000000Z-5-{}", &d[1][..7]);
    forge(bare, &other_env, &d[1], &trailers("prod", &d[1], "5"));
    // (c) on the branch, a lightweight tag (no record at all).
    let light = format!("deploy/dev/history/20261101T000001Z-6-{}", &d[0][..7]);
    git_http::git_ok(bare, &["tag", &light, &d[0]]);
    // (d) on the branch, trailers for another commit.
    let wrong_commit = format!("deploy/dev/history/20261101T000002Z-7-{}", &d[1][..7]);
    forge(bare, &wrong_commit, &d[1], &trailers("dev", &d[2], "7"));
    let before = r.refs();

    // `previous` passes over the forged newest entry to the real previous deploy.
    let (run, sb) = r.td(
        "20",
        &["resolve", "--environment", "dev", "--to", "previous"],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "sha"), d[3], "{}", run.all());
    assert_eq!(out(&sb, "tag"), tags[1]);
    assert!(run.all().contains("passed over"), "{}", run.all());

    // Every other way of naming a forged target is refused with the reason, nothing set.
    for (to, needle) in [
        (off_branch.as_str(), "not on the environment's branch `dev`"),
        (
            &format!("refs/tags/{off_branch}"),
            "not on the environment's branch",
        ),
        (evil.as_str(), "never deployed"),
        (other_env.as_str(), "Environment trailer is `prod`"),
        (light.as_str(), "not an annotated tag"),
        (wrong_commit.as_str(), "Commit trailer is"),
        (d[1].as_str(), "never deployed"),
        (d[0].as_str(), "never deployed"),
    ] {
        let (run, sb) = r.td("21", &["resolve", "--environment", "dev", "--to", to]);
        run.expect_code(1);
        assert!(run.all().contains(needle), "{to}: {}", run.all());
        assert!(
            !sb.outputs().contains_key("sha"),
            "{to}: a refused target sets no sha: {:?}",
            sb.outputs()
        );
    }
    // record --rollback applies the same rule (d[1] is on the branch: only the record is fake).
    for sha in [&d[1], &d[0]] {
        let (run, _) = r.td(
            "22",
            &["record", "--environment", "dev", "--sha", sha, "--rollback"],
        );
        run.expect_code(1);
        assert!(run.all().contains("never deployed"), "{}", run.all());
    }
    assert_eq!(r.refs(), before, "nothing changed");

    // list: forged entries flagged, with none of their trailers; real ones verified.
    let (run, sb) = r.td(
        "23",
        &[
            "list",
            "--environment",
            "dev",
            "--format",
            "json",
            "--limit",
            "0",
        ],
    );
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is one document");
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(&out(&sb, "json")).unwrap()
    );
    let by_tag = |t: &str| {
        doc["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["tag"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("{t} not listed: {doc}"))
    };
    for t in [&off_branch, &other_env, &light, &wrong_commit] {
        let e = by_tag(t);
        assert_eq!(e["record_verified"], false, "{e}");
        assert!(e["not_a_record"].as_str().is_some(), "{e}");
        assert!(e.get("image").is_none(), "{e}");
        assert!(e.get("environment").is_none(), "{e}");
    }
    for t in &tags {
        let e = by_tag(t);
        assert_eq!(e["record_verified"], true, "{e}");
        assert!(e.get("not_a_record").is_none(), "{e}");
        assert_eq!(e["environment"], "dev");
    }
    assert!(
        run.stderr.contains("is not a record of a deploy"),
        "{}",
        run.stderr
    );
    let (run, _) = r.td("23", &["list", "--environment", "dev", "--limit", "0"]);
    run.expect_code(0);
    assert!(run.stdout.contains("NOT A RECORD"), "{}", run.stdout);
    assert!(!run.stdout.contains("evil.example.com"), "{}", run.stdout);
}

// #21 item 14: with GITHUB_ACTIONS=true, `--format json` leaves exactly one JSON document on
// stdout (no stop-commands, no masks); the masks and logs are on stderr, and the same document
// is the `json` output. The other commands print their outputs as one object.
#[test]
fn json_format_is_one_document_on_stdout_inside_actions() {
    let r = Remote::http(4);
    let d = &r.seeded.dev;
    r.td("1", &["record", "--environment", "dev", "--sha", &d[3]])
        .0
        .expect_code(0);
    let (run, sb) = r.td("2", &["list", "--environment", "dev", "--format", "json"]);
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["history"][0]["sha"], d[3].as_str());
    assert_eq!(
        doc,
        serde_json::from_str::<serde_json::Value>(&out(&sb, "json")).unwrap()
    );
    assert!(
        run.stderr.contains(&format!("::add-mask::{TOKEN}")),
        "the mask still reaches the runner, on stderr: {}",
        run.stderr
    );
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    let (run, sb) = r.td(
        "3",
        &[
            "resolve",
            "--environment",
            "dev",
            "--to",
            &d[3],
            "--format",
            "json",
        ],
    );
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["sha"], d[3].as_str());
    assert_eq!(doc["status"], "ok");
    assert_eq!(out(&sb, "sha"), d[3]);
}

// Items 5 and 8 of #21 for tag-deploy: a plain-http remote to a name that is not loopback (but
// reaches this machine) and a userinfo URL are refused before any connection; a `repo-path`
// that does not exist is exit 2, not the built-in model; the log names the model in use.
#[test]
fn clear_text_remotes_and_missing_repo_paths_are_refused_before_any_call() {
    let r = Remote::local(3);
    let sha = r.seeded.dev[2].clone();
    let before = r.refs();
    let sink = crate::support::ConnCounter::start();
    let p = sink.port;
    for (url, needle) in [
        (format!("http://0.0.0.0:{p}/app.git"), "plain http"),
        (
            format!("http://[::ffff:127.0.0.1]:{p}/app.git"),
            "plain http",
        ),
        (
            format!("http://x-access-token:ghs_SECRETinURL@127.0.0.1:{p}/a.git"),
            "must not carry credentials",
        ),
    ] {
        let mut sb = r.sandbox("1");
        sb.set("GITOPS_REMOTE", &url)
            .set("GITOPS_GITHUB_TOKEN", "ghs_tokenvalue123");
        let run = sb.run(
            "tag-deploy",
            &["record", "--environment", "dev", "--sha", &sha],
        );
        run.expect_code(2);
        assert!(
            run.all().contains(needle) && run.all().contains("`remote`"),
            "{url}: {}",
            run.all()
        );
        sb.assert_no_leak(&run, &["ghs_SECRETinURL", "ghs_tokenvalue123"], &[]);
    }
    assert_eq!(sink.hits(), 0, "a refused remote was contacted");

    let mut sb = r.sandbox("1");
    let typo = sb.path().join("no-such-checkout");
    sb.set("GITOPS_REPO_PATH", typo.display().to_string());
    let run = sb.run(
        "tag-deploy",
        &["record", "--environment", "dev", "--sha", &sha],
    );
    run.expect_code(2);
    assert!(
        run.all().contains("`repo-path`") && run.all().contains(&typo.display().to_string()),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), before, "a refused record moved a ref");

    let sb = r.sandbox("1");
    let run = sb.run("tag-deploy", &["list", "--environment", "dev"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(&format!(
            "built-in default model: no .github/gitops.yml in {}",
            sb.path().join("no-checkout").display()
        )),
        "{}",
        run.all()
    );
}

/// Give the sandbox's checkout a model that freezes `staging` from 2000 to 2100 (UTC).
fn freeze_staging(sb: &Sandbox) {
    crate::support::write_frozen_staging_model(&sb.path().join("no-checkout"));
}

// #19: `tag-deploy window` checks an environment's deploy windows and changes nothing: exit 1
// during a freeze with when the next window opens; exit 0 with a warning and status
// `overridden` with an override reason; exit 0 `open` for an environment without windows.
// `record` keeps the override in the `Window-Override` trailer.
#[test]
fn window_refuses_a_frozen_environment_and_an_override_is_recorded() {
    let r = Remote::local(4);
    let before = r.refs();
    let window = |env: &str, extra: &[&str]| {
        let sb = r.sandbox("301");
        freeze_staging(&sb);
        let mut args = vec!["window", "--environment", env];
        args.extend_from_slice(extra);
        let run = sb.run("tag-deploy", &args);
        (run, sb)
    };
    let (run, _) = window("staging", &[]);
    run.expect_code(1);
    assert!(
        run.all().contains("`staging` is frozen since 2000-01-01 00:00 UTC (century freeze); next window opens Fri 2100-01-01 00:00 UTC; to deploy anyway, give override-window-reason"),
        "{}",
        run.all()
    );
    let (run, sb) = window("staging", &["--override-window-reason", "INC-7 rollback"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "overridden");
    assert!(
        run.all().contains("::warning::`staging` is frozen since 2000-01-01 00:00 UTC (century freeze); next window opens Fri 2100-01-01 00:00 UTC; deploying anyway: override-window-reason: INC-7 rollback"),
        "{}",
        run.all()
    );
    let (run, sb) = window("dev", &[]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "open");
    assert!(
        run.all().contains("`dev` has no deploy windows"),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), before, "window changed the remote");
    // Not for other verbs; one line only.
    let (run, _) = window("staging", &["--override-window-reason", "a\nb"]);
    run.expect_code(2);
    let sb = r.sandbox("302");
    let run = sb.run(
        "tag-deploy",
        &[
            "list",
            "--environment",
            "dev",
            "--override-window-reason",
            "x",
        ],
    );
    run.expect_code(2);
    assert!(
        run.all().contains("`tag-deploy list` does not take `--override-window-reason` (it is an input of: record, window)"),
        "{}",
        run.all()
    );

    // record keeps the override that was used.
    let sha = r.seeded.main.clone();
    let sb = r.sandbox("303");
    freeze_staging(&sb);
    let run = sb.run(
        "tag-deploy",
        &[
            "record",
            "--environment",
            "staging",
            "--sha",
            &sha,
            "--override-window-reason",
            "INC-7 rollback",
        ],
    );
    run.expect_code(0);
    let msg = git_http::git_ok(
        &r._bare,
        &["cat-file", "-p", "refs/tags/deploy/staging/current"],
    );
    assert!(
        msg.trim_end()
            .ends_with("\nWindow-Override: INC-7 rollback"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- previews (#18)

/// GitHub's ref for a pull request's head, in the bare repository (what GitHub advertises).
fn pull_head(r: &Remote, pr: u64, sha: &str) {
    git_http::git_ok(
        &r._bare,
        &["update-ref", &format!("refs/pull/{pr}/head"), sha],
    );
}

/// A preview run's sandbox: the Deployments API and comments on the fake behind Prism.
fn preview_sandbox(r: &Remote, proxy: &Prism, run_id: &str) -> Sandbox {
    deploy_sandbox(r, proxy, run_id)
}

/// Run a tag-deploy verb; the preview verbs that comment edit only `github-actions[bot]`'s.
fn pv(sb: &Sandbox, args: &[&str]) -> Run {
    let mut a: Vec<&str> = args.to_vec();
    if matches!(args[0], "preview-open" | "preview-close" | "preview-check") {
        a.extend(["--comment-author", "github-actions[bot]"]);
    }
    sb.run("tag-deploy", &a)
}

fn deploy_refs(r: &Remote) -> BTreeMap<String, String> {
    r.refs()
        .into_iter()
        .filter(|(k, _)| k.starts_with("refs/tags/deploy/"))
        .collect()
}

// The lifecycle: a pull request into dev gets a preview (its record under
// deploy/dev/preview/pr-<n>, a transient Deployment `dev/pr-<n>` with the URL, one comment with
// the URL and the resources created); a second push updates the same record, Deployment
// environment and comment (keeping the opening time); closing deletes the record, marks the
// Deployments inactive and updates the comment. deploy/dev/current and dev's history never move.
#[test]
fn preview_lifecycle_open_update_close_never_touches_the_environments_record() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let r = Remote::local(4);
    let d = r.seeded.dev.clone();
    // dev is deployed at d[1]: its record must survive the whole preview untouched.
    let (run, _) = r.td("300", &["record", "--environment", "dev", "--sha", &d[1]]);
    run.expect_code(0);
    let before = deploy_refs(&r);
    let pr = fake.add_pull("feature/x", "dev", &d[2]);
    pull_head(&r, pr, &d[2]);
    let ws = format!("pr-{pr}");
    let plan_dir = tempfile::tempdir().unwrap();
    let plan = plan_dir.path().join("tfplan.json");
    std::fs::write(
        &plan,
        r#"{"format_version":"1.2","terraform_version":"1.11.4","applyable":true,"complete":true,"resource_changes":[{"address":"terraform_data.release","mode":"managed","type":"terraform_data","name":"release","provider_name":"terraform.io/builtin/terraform","change":{"actions":["create"],"before":null,"after":{},"after_unknown":{}}}]}"#,
    )
    .unwrap();

    let sb = preview_sandbox(&r, &proxy, "301");
    let run = pv(
        &sb,
        &[
            "preview-open",
            "--environment",
            "dev",
            "--workspace",
            &ws,
            "--sha",
            &d[2],
            "--environment-url",
            "https://pr.dev.example.com/",
            "--plan",
            plan.to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    sb.assert_no_leak(&run, &[API_TOKEN], &[]);
    assert_eq!(out(&sb, "status"), "opened");
    assert_eq!(out(&sb, "tag"), format!("deploy/dev/preview/{ws}"));
    let refs = r.refs();
    let rec = format!("refs/tags/deploy/dev/preview/{ws}");
    assert_eq!(refs[&format!("{rec}^{{}}")], d[2]);
    let creates: Vec<_> = fake
        .requests_to("POST", "/repos/acme/app/deployments")
        .into_iter()
        .filter(|p| p.path == "/repos/acme/app/deployments")
        .collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].body["environment"], format!("dev/{ws}"));
    assert_eq!(creates[0].body["transient_environment"], true);
    assert_eq!(creates[0].body["production_environment"], false);
    let id: u64 = out(&sb, "deployment-id").parse().unwrap();
    assert_eq!(fake.latest_status(id).as_deref(), Some("success"));
    let st = fake.state.lock().unwrap().statuses[&id][0].clone();
    assert_eq!(st["environment_url"], "https://pr.dev.example.com/");
    let comments = fake.comments_on(pr);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].contains("**preview**"), "{}", comments[0]);
    assert!(
        comments[0].contains("https://pr.dev.example.com/"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains("Resources created by this run"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains("terraform_data.release"),
        "{}",
        comments[0]
    );
    let opened = tag_message(&r, &rec);
    let opened_line = opened
        .lines()
        .find(|l| l.starts_with("Opened: "))
        .unwrap()
        .to_string();

    // A second push: the record moves to the new head, one comment still, the opening time kept.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pull_head(&r, pr, &d[3]);
    let sb = preview_sandbox(&r, &proxy, "302");
    let run = pv(
        &sb,
        &[
            "preview-open",
            "--environment",
            "dev",
            "--workspace",
            &ws,
            "--sha",
            &d[3],
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "updated");
    assert_eq!(r.refs()[&format!("{rec}^{{}}")], d[3]);
    assert_eq!(
        fake.comments_on(pr).len(),
        1,
        "the comment is updated in place"
    );
    let again = tag_message(&r, &rec);
    assert!(again.contains(&opened_line), "{again}");
    assert!(again.contains(&format!("Commit: {}", d[3])), "{again}");

    // Closed: the record is gone, every Deployment of dev/pr-<n> inactive, the comment says so.
    fake.close_pull(pr);
    let sb = preview_sandbox(&r, &proxy, "303");
    let run = pv(
        &sb,
        &[
            "preview-close",
            "--environment",
            "dev",
            "--workspace",
            &ws,
            "--reason",
            "pull request closed",
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "closed");
    assert!(!r.refs().contains_key(&rec));
    let ids: Vec<u64> = fake
        .state
        .lock()
        .unwrap()
        .deployments
        .iter()
        .filter(|dep| dep["environment"] == format!("dev/{ws}"))
        .map(|dep| dep["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "one Deployment per run of preview-open");
    for n in ids {
        assert_eq!(fake.latest_status(n).as_deref(), Some("inactive"), "{n}");
    }
    let comments = fake.comments_on(pr);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].contains("**destroyed**"), "{}", comments[0]);
    // Closing again is a no-op on git.
    let sb = preview_sandbox(&r, &proxy, "304");
    let run = pv(
        &sb,
        &["preview-close", "--environment", "dev", "--workspace", &ws],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "not-recorded");

    assert_eq!(
        deploy_refs(&r),
        before,
        "deploy/dev/current and dev's history untouched"
    );
    proxy.assert_no_violations();
}

fn tag_message(r: &Remote, full: &str) -> String {
    let out = std::process::Command::new("git")
        .args(["-C", r._bare.to_str().unwrap(), "cat-file", "-p", full])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// The sweep: a preview whose close event was missed (its PR is closed), one whose PR no longer
// exists, and one older than max-age are listed for destruction; an open, fresh one is kept.
// It changes nothing itself.
#[test]
fn preview_sweep_lists_orphans_and_old_previews_and_changes_nothing() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let r = Remote::local(4);
    let d = r.seeded.dev.clone();
    let open_pr = fake.add_pull("a", "dev", &d[1]);
    let closed_pr = fake.add_pull("b", "dev", &d[2]);
    let old_pr = fake.add_pull("c", "dev", &d[3]);
    let gone_pr = 9999;
    let msg = |pr: u64, opened: &str| {
        format!("preview dev/pr-{pr}: x\n\nPreview.\n\nEnvironment: dev\nWorkspace: pr-{pr}\nPull-Request: {pr}\nOpened: {opened}\n")
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (pr, sha, opened) in [
        (open_pr, &d[1], now.as_str()),
        (closed_pr, &d[2], now.as_str()),
        (old_pr, &d[3], "2020-01-01T00:00:00Z"),
        (gone_pr, &d[1], now.as_str()),
    ] {
        forge(
            &r._bare,
            &format!("deploy/dev/preview/pr-{pr}"),
            sha,
            &msg(pr, opened),
        );
    }
    fake.close_pull(closed_pr);
    let before = r.refs();
    let sb = preview_sandbox(&r, &proxy, "310");
    let run = pv(
        &sb,
        &["preview-sweep", "--environment", "dev", "--max-age", "7d"],
    );
    run.expect_code(0);
    let list: Vec<String> = serde_json::from_str(&out(&sb, "workspaces")).unwrap();
    let mut want = vec![
        format!("pr-{closed_pr}"),
        format!("pr-{old_pr}"),
        format!("pr-{gone_pr}"),
    ];
    want.sort_by_key(|w| w[3..].parse::<u64>().unwrap());
    assert_eq!(list, want, "{}", run.all());
    assert_eq!(out(&sb, "workspace"), want[0], "the first to destroy");
    assert!(
        run.all().contains("its pull request is closed"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("does not exist"), "{}", run.all());
    assert!(
        run.all().contains("older than the maximum age"),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), before, "the sweep changes nothing");
    assert!(
        fake.requests_to("POST", "/").is_empty(),
        "the sweep posts nothing"
    );
    proxy.assert_no_violations();
}

// Refused by construction: a preview workspace for staging or prod (exit 1 naming the rule), a
// preview workspace for the environment's own verbs (exit 1: previews never move current), bad
// workspace names (exit 2), a fork (no preview, the reason as an output). Nothing is written
// and, for every refusal, no request is sent.
#[test]
fn preview_refusals_change_nothing_and_send_nothing() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let r = Remote::local(3);
    let d = r.seeded.dev.clone();
    let before = r.refs();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "preview-open",
                "--environment",
                "prod",
                "--workspace",
                "pr-5",
                "--sha",
                &d[1],
            ],
            1,
            "`prod` is a production environment",
        ),
        (
            vec![
                "preview-open",
                "--environment",
                "staging",
                "--workspace",
                "pr-5",
                "--sha",
                &d[1],
            ],
            1,
            "`staging` is not marked `previews: true`",
        ),
        (
            vec![
                "preview-close",
                "--environment",
                "prod",
                "--workspace",
                "pr-5",
            ],
            1,
            "previews: true",
        ),
        (
            vec![
                "record",
                "--environment",
                "dev",
                "--workspace",
                "pr-5",
                "--sha",
                &d[1],
            ],
            1,
            "a preview never moves deploy/dev/current",
        ),
        (
            vec![
                "record",
                "--environment",
                "prod",
                "--workspace",
                "pr-5",
                "--sha",
                &d[1],
            ],
            1,
            "production environment",
        ),
        (
            vec![
                "hold",
                "--environment",
                "dev",
                "--workspace",
                "pr-5",
                "--reason",
                "x",
            ],
            1,
            "never enters `deploy/dev/history/`",
        ),
        (
            vec![
                "preview-open",
                "--environment",
                "dev",
                "--workspace",
                "pr-05",
                "--sha",
                &d[1],
            ],
            2,
            "is not a workspace name",
        ),
        (
            vec![
                "preview-open",
                "--environment",
                "dev",
                "--workspace",
                "../prod",
                "--sha",
                &d[1],
            ],
            2,
            "is not a workspace name",
        ),
        (
            vec![
                "preview-open",
                "--environment",
                "dev",
                "--workspace",
                "default",
                "--sha",
                &d[1],
            ],
            2,
            "needs the preview's workspace",
        ),
        (
            vec!["preview-open", "--environment", "dev", "--sha", &d[1]],
            2,
            "needs the preview's workspace",
        ),
        (
            vec![
                "preview-sweep",
                "--environment",
                "dev",
                "--workspace",
                "pr-5",
            ],
            2,
            "give no workspace",
        ),
        (
            vec!["preview-sweep", "--environment", "dev", "--max-age", "10m"],
            2,
            "between 1h and 90d",
        ),
        (
            vec![
                "preview-check",
                "--environment",
                "dev",
                "--workspace",
                "pr-5",
            ],
            2,
            "head-repository",
        ),
        (
            vec![
                "preview-open",
                "--environment",
                "dev",
                "--workspace",
                "pr-5",
                "--sha",
                &d[1],
                "--environment-url",
                "ftp://x",
            ],
            2,
            "environment-url",
        ),
    ];
    for (args, code, needle) in cases {
        let sb = preview_sandbox(&r, &proxy, "320");
        let run = pv(&sb, &args);
        run.expect_code(code);
        assert!(run.all().contains(needle), "{args:?}: {}", run.all());
        assert_eq!(r.refs(), before, "{args:?}");
    }
    assert!(
        fake.requests().is_empty(),
        "a refusal sends nothing: {:?}",
        fake.requests()
    );

    // A fork: no preview, the reason in the outputs and in the one comment; no git, no Deployment.
    let sb = preview_sandbox(&r, &proxy, "321");
    let run = pv(
        &sb,
        &[
            "preview-check",
            "--environment",
            "dev",
            "--workspace",
            "pr-5",
            "--head-repository",
            "mallory/app",
            "--labels",
            "preview",
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "preview"), "false");
    assert!(out(&sb, "reason").contains("comes from a fork"));
    let comments = fake.comments_on(5);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].contains("**No preview**") && comments[0].contains("fork"),
        "{}",
        comments[0]
    );
    assert!(fake
        .requests_to("POST", "/repos/acme/app/deployments")
        .is_empty());
    // The same repository: a preview, no comment.
    let sb = preview_sandbox(&r, &proxy, "322");
    let run = pv(
        &sb,
        &[
            "preview-check",
            "--environment",
            "dev",
            "--workspace",
            "pr-6",
            "--head-repository",
            "acme/app",
        ],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "preview"), "true");
    assert_eq!(out(&sb, "url-output"), "url");
    assert!(fake.comments_on(6).is_empty());
    assert_eq!(r.refs(), before);
    proxy.assert_no_violations();
}

/// `record` of one stack (`--stack`) or of the environment with stacks (`--stacks`).
fn rec(r: &Remote, run: &str, sha: &str, extra: &[&str]) -> (Run, Sandbox) {
    let mut a = vec!["record", "--environment", "dev", "--sha", sha];
    a.extend_from_slice(extra);
    r.td(run, &a)
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

// #14: each stack's apply job records the stack (deploy/<env>/stacks/<stack>/current, one
// leased push, its plan digest in the message); the environment's record moves
// deploy/<env>/current only when every changed stack of the commit applied there, and names
// each stack's outcome and digest in its trailers. A partly failed deploy leaves current where
// it was (exit 1, the summary says which applied); the fixing commit records both.
#[test]
fn stack_records_and_current_moves_only_when_every_changed_stack_applied() {
    let r = Remote::http(6);
    let d = &r.seeded.dev;
    rec(&r, "100", &d[1], &[]).0.expect_code(0);
    let both = r#"["network","service"]"#;

    // Commit 2: network applies, service's apply fails (never records).
    let (run, sb) = rec(
        &r,
        "101",
        &d[2],
        &["--stack", "network", "--plan-digest", &digest('a')],
    );
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "recorded");
    assert_eq!(out(&sb, "tag"), "deploy/dev/stacks/network/current");
    assert_eq!(out(&sb, "history-tag"), "");
    sb.assert_no_leak(&run, &[TOKEN], &[]);
    let refs = r.refs();
    assert_eq!(refs["refs/tags/deploy/dev/stacks/network/current^{}"], d[2]);
    assert_eq!(
        refs["refs/tags/deploy/dev/current^{}"], d[1],
        "a stack's record moves nothing else"
    );
    assert_eq!(
        refs.keys()
            .filter(|k| k.contains("/history/") && !k.ends_with("^{}"))
            .count(),
        1,
        "a stack's record adds no history tag"
    );
    let msg = tag_message(&r, "refs/tags/deploy/dev/stacks/network/current");
    assert!(msg.contains("\nStack: network\n"), "{msg}");
    assert!(
        msg.contains(&format!("\nPlan-Digest: {}\n", digest('a'))),
        "{msg}"
    );
    assert!(msg.contains(&format!("\nCommit: {}\n", d[2])), "{msg}");

    let before = r.refs();
    let (run, sb) = rec(&r, "101", &d[2], &["--stacks", both]);
    run.expect_code(1);
    let all = run.all();
    assert!(
        all.contains(&format!(
            "not every changed stack of {} applied in `dev`: applied: network; not applied: service (never applied here). deploy/dev/current stays at {}",
            &d[2][..7],
            &d[1][..7]
        )),
        "{all}"
    );
    assert_eq!(r.refs(), before, "a refused record changes nothing");
    let summary = sb.summary();
    assert!(
        summary.contains("| `network` | applied (run 101) |"),
        "{summary}"
    );
    assert!(
        summary.contains("| `service` | not applied (never applied here) |"),
        "{summary}"
    );

    // Commit 3 (the fix): `stacks changed` against current (d[1]) lists both again.
    for (run, stack, c) in [("102", "network", 'b'), ("102", "service", 'c')] {
        let (x, sb) = rec(
            &r,
            run,
            &d[3],
            &["--stack", stack, "--plan-digest", &digest(c)],
        );
        x.expect_code(0);
        if stack == "network" {
            assert_eq!(out(&sb, "previous-sha"), d[2]);
        }
    }
    // A re-run of a stack's apply at the same commit is unchanged.
    let (x, sb) = rec(&r, "102", &d[3], &["--stack", "service"]);
    x.expect_code(0);
    assert_eq!(out(&sb, "status"), "unchanged");
    let (run, sb) = rec(&r, "102", &d[3], &["--stacks", both]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "recorded");
    assert_eq!(r.refs()["refs/tags/deploy/dev/current^{}"], d[3]);
    let msg = tag_message(&r, "refs/tags/deploy/dev/current");
    assert!(
        msg.contains(&format!(
            "\nStack-Applied: network applied {} run 102\n",
            digest('b')
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "\nStack-Applied: service applied {} run 102\n",
            digest('c')
        )),
        "{msg}"
    );
    assert!(sb.summary().contains("| `service` | applied (run 102) |"));
    let (_, sb) = r.td("103", &["list", "--environment", "dev", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out(&sb, "json")).unwrap();
    assert_eq!(doc["history"][0]["stacks"][1]["stack"], "service");
    assert_eq!(
        doc["history"][0]["stacks"][1]["plan_digest"],
        digest('c').as_str()
    );

    // An older commit for one stack is a rollback, and must say so (F13 per stack).
    let before = r.refs();
    let (run, _) = rec(&r, "104", &d[2], &["--stack", "network"]);
    run.expect_code(1);
    assert!(
        run.all().contains(&format!(
            "is an ancestor of the current deploy {} of `dev` stack `network` (history tag deploy/dev/stacks/network/current)",
            d[3]
        )),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), before);

    // A tag with the right name but not our trailers is not a stack record.
    forge(
        &r._bare,
        "deploy/dev/stacks/db/current",
        &d[4],
        &trailers("dev", &d[4], "105"),
    );
    rec(&r, "105", &d[4], &["--stack", "network"])
        .0
        .expect_code(0);
    let before = r.refs();
    let (run, _) = rec(&r, "105", &d[4], &["--stacks", r#"["network","db"]"#]);
    run.expect_code(1);
    assert!(
        run.all()
            .contains("not applied: db (its record is not one of ours)"),
        "{}",
        run.all()
    );
    assert_eq!(r.refs(), before);

    // No stack changed (`[]`): the environment's record moves as for one stack.
    let (run, _) = rec(&r, "106", &d[4], &["--stacks", "[]"]);
    run.expect_code(0);
    assert_eq!(r.refs()["refs/tags/deploy/dev/current^{}"], d[4]);
}

// The stack inputs are validated before any call: exit 2, the input named, nothing written.
#[test]
fn bad_stack_inputs_are_refused_before_any_call() {
    let r = Remote::local(3);
    let d = &r.seeded.dev;
    let before = r.refs();
    for (args, field, needle) in [
        (
            vec!["--stack", "../x"],
            "stack",
            "is not a valid stack name",
        ),
        (vec!["--stack=-x"], "stack", "is not a valid stack name"),
        (
            vec!["--stacks", "network"],
            "stacks",
            "is not a JSON array of stack names",
        ),
        (
            vec!["--stacks", r#"["a","a"]"#],
            "stacks",
            "names `a` twice",
        ),
        (
            vec!["--stacks", r#"["a b"]"#],
            "stacks",
            "is not a valid stack name",
        ),
        (
            vec!["--stack", "a", "--stacks", r#"["a"]"#],
            "stacks",
            "give one of them",
        ),
        (
            vec!["--stack", "a", "--verification-outcome", "passed"],
            "verification-outcome",
            "a stack's record (`stack`) carries no verification",
        ),
    ] {
        let (run, _) = rec(&r, "1", &d[1], &args);
        run.expect_code(2);
        assert!(
            run.all().contains(field) && run.all().contains(needle),
            "{args:?}: {}",
            run.all()
        );
    }
    let (run, _) = r.td("1", &["list", "--environment", "dev", "--stack", "a"]);
    run.expect_code(2);
    assert_eq!(r.refs(), before);
}
