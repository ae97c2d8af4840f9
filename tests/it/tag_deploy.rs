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
