//! `promote` against real remotes: local bare repositories and git smart HTTP with token auth
//! (`support::git_http`), and for the pull-request flow a stateful GitHub fake behind a
//! validating Prism proxy (`support::github_fake`, `support::prism`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::support::git_http::{add_commits, git_ok, ls_remote, seed_env_branches, GitHttp};
use crate::support::github_fake::GithubFake;
use crate::support::prism::Prism;
use crate::support::{Run, Sandbox};

/// A bare remote with `dev`/`main`/`prod` and `deploy/dev/current` on dev's tip.
struct Remote {
    _dir: tempfile::TempDir,
    bare: std::path::PathBuf,
    dev: Vec<String>,
}

fn remote(n: usize) -> Remote {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("app.git");
    crate::support::git_http::init_bare(&bare);
    let s = seed_env_branches(&bare, n);
    Remote {
        _dir: dir,
        bare,
        dev: s.dev,
    }
}

fn tag(bare: &Path, name: &str, sha: &str, msg: &str) {
    git_ok(bare, &["tag", "-f", "-a", "-m", msg, name, sha]);
}

fn deploy_msg(env: &str, sha: &str) -> String {
    format!(
        "deploy {env}: {}\n\nRecorded by gitops-actions tag-deploy.\n\nEnvironment: {env}\nCommit: {sha}\nRun-ID: 1\nImage: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:{}\nPlan-Digest: sha256:{}\n",
        &sha[..7],
        "a".repeat(64),
        "b".repeat(64)
    )
}

/// A remote whose `deploy/dev/current` names the last of `n` commits on dev (the candidate).
fn deployed_in_dev(n: usize) -> (Remote, String) {
    let r = remote(n);
    let cand = r.dev[n - 1].clone();
    tag(
        &r.bare,
        "deploy/dev/current",
        &cand,
        &deploy_msg("dev", &cand),
    );
    (r, cand)
}

/// An Actions sandbox talking to the GitHub fake behind `proxy` with `token`.
fn api_sandbox(proxy: &Prism, token: &str) -> Sandbox {
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_API_URL", proxy.url())
        .set("GITHUB_REPOSITORY", "o/r")
        .set("GITOPS_GITHUB_TOKEN", token);
    sb
}

fn branch(bare: &Path, b: &str) -> String {
    git_ok(bare, &["rev-parse", &format!("refs/heads/{b}")])
}

fn refs(bare: &Path) -> BTreeMap<String, String> {
    ls_remote(&bare.display().to_string(), None)
}

fn promote(sb: &Sandbox, remote: &str, args: &[&str]) -> Run {
    let mut all = vec!["--remote", remote];
    all.extend_from_slice(args);
    sb.run("promote", &all)
}

// The candidate is the commit deployed in the source (not the source branch tip); the target
// is fast-forwarded to it; a re-run is a no-op that says so.
#[test]
fn promotes_the_deployed_commit_by_fast_forward_and_a_rerun_is_up_to_date() {
    let r = remote(5);
    let deployed = r.dev[4].clone();
    tag(
        &r.bare,
        "deploy/dev/current",
        &deployed,
        &deploy_msg("dev", &deployed),
    );
    add_commits(&r.bare, "dev", 2); // newer, undeployed commits on dev stay behind
    let old_main = branch(&r.bare, "main");
    let sb = Sandbox::actions();
    let url = r.bare.display().to_string();
    let run = promote(&sb, &url, &["--from", "dev"]);
    run.expect_code(0);
    assert_eq!(branch(&r.bare, "main"), deployed);
    let out = sb.outputs();
    assert_eq!(out["status"], "promoted");
    assert_eq!(out["sha"], deployed);
    assert_eq!(out["from"], "dev");
    assert_eq!(out["to"], "staging");
    let log = std::fs::read_to_string(&out["changelog"]).unwrap();
    assert!(log.contains("change 4"), "{log}");
    assert!(
        log.contains("sha256:bbbb"),
        "plan digest in changelog: {log}"
    );
    assert!(
        !log.contains("more 0"),
        "undeployed commits must not be listed: {log}"
    );
    assert!(run
        .stdout
        .contains(&format!("{} -> {}", &old_main[..7], &deployed[..7])));

    // dry run: all checks, nothing written
    let r3 = remote(4);
    tag(
        &r3.bare,
        "deploy/dev/current",
        &r3.dev[3],
        &deploy_msg("dev", &r3.dev[3]),
    );
    let before3 = refs(&r3.bare);
    let sb3 = Sandbox::actions();
    promote(
        &sb3,
        &r3.bare.display().to_string(),
        &["--from", "dev", "--dry-run"],
    )
    .expect_code(0);
    assert_eq!(sb3.outputs()["status"], "would-promote");
    assert_eq!(refs(&r3.bare), before3, "a dry run changes nothing");

    let before = refs(&r.bare);
    let sb2 = Sandbox::actions();
    promote(&sb2, &url, &["--from", "dev", "--to", "staging"]).expect_code(0);
    assert_eq!(sb2.outputs()["status"], "up-to-date");
    assert_eq!(refs(&r.bare), before, "a re-run changes nothing");
}

// Every refusal exits 1, explains itself, and leaves the remote exactly as it was.
#[test]
fn refusals_exit_1_and_change_nothing() {
    let url_of = |r: &Remote| r.bare.display().to_string();
    let check = |r: &Remote, args: &[&str], needle: &str| {
        let before = refs(&r.bare);
        let sb = Sandbox::actions();
        let run = promote(&sb, &url_of(r), args);
        run.expect_code(1);
        assert!(
            run.all().contains(needle),
            "want {needle:?} in:\n{}",
            run.all()
        );
        // The reason (the refusal's own line, without the details block) is an output too.
        let out = sb.outputs();
        assert_eq!(out["status"], "refused", "{}", run.all());
        let why = &out["refusal"];
        assert!(
            !why.is_empty()
                && !why.contains('\n')
                && run.all().contains(&format!("::error::{why}")),
            "refusal output {why:?} is not the refusal's line in:\n{}",
            run.all()
        );
        assert_eq!(refs(&r.bare), before, "{args:?} changed the remote");
    };
    // nothing deployed in the source
    let r = remote(4);
    check(&r, &["--from", "dev"], "nothing is deployed in `dev`");
    // holds on the source or the target
    tag(
        &r.bare,
        "deploy/dev/current",
        &r.dev[3],
        &deploy_msg("dev", &r.dev[3]),
    );
    tag(
        &r.bare,
        "deploy/dev/hold",
        &r.dev[3],
        "hold dev\n\nReason: rollback\n",
    );
    check(&r, &["--from", "dev"], "`dev` is on hold");
    git_ok(&r.bare, &["tag", "-d", "deploy/dev/hold"]);
    tag(&r.bare, "deploy/staging/hold", &r.dev[2], "hold staging\n");
    check(&r, &["--from", "dev"], "`staging` is on hold");
    git_ok(&r.bare, &["tag", "-d", "deploy/staging/hold"]);
    // minimum soak time
    check(
        &r,
        &["--from", "dev", "--min-soak", "1d"],
        "`min-soak` asks for 86400 s",
    );
    // divergence: staging got a commit dev lacks; it is listed
    let extra = add_commits(&r.bare, "main", 1);
    check(&r, &["--from", "dev"], "a fast-forward is impossible");
    check(&r, &["--from", "dev"], &extra[0][..7]);
    check(&r, &["--from", "dev"], "more 0");
    // the deployed commit is not on the source branch
    let r2 = remote(4);
    let side = add_commits(&r2.bare, "prod", 1);
    tag(
        &r2.bare,
        "deploy/dev/current",
        &side[0],
        &deploy_msg("dev", &side[0]),
    );
    check(&r2, &["--from", "dev"], "is not on its branch `dev`");
}

// Bad inputs exit 2 before any network call: the remote here refuses connections, so reaching
// it would be a runtime failure (3), not a usage error.
#[test]
fn bad_inputs_exit_2_before_any_network_call() {
    let dead = format!("http://127.0.0.1:{}/app.git", crate::support::free_port());
    let vectors: &[(&[&str], &str)] = &[
        (&["--from", "staging", "--to", "dev"], "backwards"),
        (&["--from", "dev", "--to", "prod"], "skips `staging`"),
        (&["--from", "dev", "--to", "dev"], "same environment"),
        (&["--from", "prod"], "last environment"),
        (&["--from", "Prod"], "did you mean `prod`"),
        (&["--from", "prod "], "not a configured environment"),
        (&["--from", "../prod"], "not a configured environment"),
        (&["--from", ""], "is empty"),
        (
            &["--from", "dev", "--to", "staging\n::error::pwned"],
            "not a configured environment",
        ),
        (&["--from", "dev", "--min-soak", "1w"], "min-soak"),
        (
            &["--from", "dev", "--dispatch-workflow", "../x.yml"],
            "dispatch-workflow",
        ),
        (
            &["--from", "dev", "--mode", "pull-request"],
            "needs the GitHub API",
        ),
        (&["--from", "dev", "--token-kind", "App"], "token-kind"),
        (
            &[
                "--from",
                "dev",
                "--github-token",
                "ghs_x",
                "--repository",
                "o/r",
                "--github-api-url",
                "http://api.github.com",
                "--mode",
                "pull-request",
            ],
            "must use https",
        ),
        (
            &[
                "--from",
                "dev",
                "--github-token",
                "ghs_x",
                "--repository",
                "../r",
                "--mode",
                "pull-request",
            ],
            "owner/repo",
        ),
    ];
    for (args, needle) in vectors {
        let sb = Sandbox::actions();
        let run = promote(&sb, &dead, args);
        run.expect_code(2);
        assert!(
            run.all().contains(needle),
            "{args:?}: want {needle:?} in\n{}",
            run.all()
        );
        assert!(
            !run.stdout.lines().any(|l| l.starts_with("::error::pwned")),
            "{}",
            run.stdout
        );
    }
    let sb = Sandbox::actions();
    let run = sb.run(
        "promote",
        &[
            "--from",
            "dev",
            "--remote",
            "https://user:pw@example.com/x.git",
        ],
    );
    run.expect_code(2);
    assert!(
        run.all().contains("must not carry credentials"),
        "{}",
        run.all()
    );
}

// F11: N promotions race, repeated, over smart HTTP with token auth and over a local path.
// Exactly one moves the branch, reports `promoted` and dispatches the deploy workflow (the
// token is a GITHUB_TOKEN, whose push starts no workflow); the others re-evaluate, report
// `up-to-date` in their outputs and dispatch nothing; the branch only ever moves forward.
fn race_rounds(url: &str, bare: &Path, token: &str, rounds: usize) {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let mut last_main = branch(bare, "main");
    for round in 0..rounds {
        let new = add_commits(bare, "dev", 2);
        let cand = new[1].clone();
        tag(bare, "deploy/dev/current", &cand, &deploy_msg("dev", &cand));
        let boxes: Vec<Sandbox> = (0..4)
            .map(|_| {
                let mut sb = Sandbox::actions();
                sb.set("GITHUB_API_URL", proxy.url())
                    .set("GITHUB_REPOSITORY", "o/r");
                sb
            })
            .collect();
        let children: Vec<_> = boxes
            .iter()
            .map(|sb| {
                let mut c = sb.cmd("promote");
                c.args([
                    "--from",
                    "dev",
                    "--remote",
                    url,
                    "--github-token",
                    token,
                    "--dispatch-workflow",
                    "deploy.yml",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        let runs: Vec<_> = children
            .into_iter()
            .map(|ch| ch.wait_with_output().unwrap())
            .collect();
        let mut statuses = Vec::new();
        for (sb, o) in boxes.iter().zip(&runs) {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.status.code(), Some(0), "round {round}: {all}");
            let shown: String = all
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .collect();
            assert!(!shown.contains(token), "token leaked: {all}");
            let out = sb.outputs();
            assert_eq!(out["sha"], cand, "round {round}: {all}");
            assert_eq!(out["pull-request-url"], "", "round {round}: {all}");
            match out["status"].as_str() {
                "promoted" => {
                    assert!(all.contains("dispatched `deploy.yml`"), "{all}");
                }
                "up-to-date" => {
                    assert!(!all.contains("dispatched"), "a loser dispatched: {all}");
                    assert!(!all.contains("promoted "), "a loser claims the win: {all}");
                }
                other => panic!("round {round}: status {other}: {all}"),
            }
            statuses.push(out["status"].clone());
        }
        let winners = statuses.iter().filter(|s| *s == "promoted").count();
        assert_eq!(winners, 1, "round {round}: {statuses:?}");
        let dispatches = fake.state.lock().unwrap().dispatches.clone();
        assert_eq!(
            dispatches.len(),
            round + 1,
            "one dispatch per round (round {round}): {dispatches:?}"
        );
        assert_eq!(dispatches[round]["body"]["ref"], json!("main"));
        let main = branch(bare, "main");
        assert_eq!(main, cand);
        // never a force push: the previous tip is an ancestor of the new one
        git_ok(bare, &["merge-base", "--is-ancestor", &last_main, &main]);
        last_main = main;
    }
    proxy.assert_no_violations();
}

#[test]
fn concurrent_promotions_over_smart_http_have_exactly_one_winner() {
    let token = "ghs_promoteRaceToken7f3a9c0123";
    let srv = GitHttp::start(token);
    let bare = srv.create_repo("app");
    seed_env_branches(&bare, 3);
    let url = srv.url("app");
    race_rounds(&url, &bare, token, 3);
    // wrong token: a runtime failure naming authentication, nothing moved, nothing leaked
    let before = ls_remote(&url, Some(token));
    let sb = Sandbox::actions();
    let run = sb.run(
        "promote",
        &[
            "--from",
            "dev",
            "--remote",
            &url,
            "--github-token",
            "wrong-token-123456",
        ],
    );
    run.expect_code(3);
    assert!(
        run.all().to_lowercase().contains("authentication"),
        "{}",
        run.all()
    );
    sb.assert_no_leak(&run, &["wrong-token-123456"], &[]);
    assert_eq!(ls_remote(&url, Some(token)), before);
}

// The same race against a remote that is a path: libgit2's local transport would write the
// ref without checking its old value, so every racer could "win".
#[test]
fn concurrent_promotions_to_a_local_remote_have_exactly_one_winner() {
    let r = remote(3);
    let url = r.bare.display().to_string();
    race_rounds(&url, &r.bare, "ghs_promoteRaceToken7f3a9c0123", 3);
}

// Pull-request mode end to end against a stateful GitHub (validated by Prism): open the PR
// from `promote/<to>/<sha7>` with the changelog, wait while it lacks an approval on its head,
// then fast-forward once approved and green, and dispatch the deploy workflow because the
// token is a GITHUB_TOKEN (F17).
#[test]
fn pull_request_mode_opens_waits_for_approval_then_fast_forwards_and_dispatches() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let (r, cand) = deployed_in_dev(4);
    let url = r.bare.display().to_string();
    let token = "ghs_promoteFakeToken0123456789";
    let run_it = || {
        let sb = api_sandbox(&proxy, token);
        let run = promote(
            &sb,
            &url,
            &[
                "--from",
                "dev",
                "--mode",
                "pull-request",
                "--dispatch-workflow",
                "deploy.yml",
            ],
        );
        sb.assert_no_leak(&run, &[token], &[]);
        (sb, run)
    };
    let old_main = branch(&r.bare, "main");
    let (sb, run) = run_it();
    run.expect_code(0);
    let out = sb.outputs();
    assert_eq!(out["status"], "pull-request-opened", "{}", run.all());
    assert!(out["pull-request-url"].contains("/pull/"));
    let head = format!("promote/staging/{}", &cand[..7]);
    assert_eq!(branch(&r.bare, &head), cand, "PR head branch pushed");
    assert_eq!(
        branch(&r.bare, "main"),
        old_main,
        "target untouched until approved"
    );
    let created = fake.requests_to("POST", "/repos/o/r/pulls");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["head"], json!(head));
    assert_eq!(created[0].body["base"], json!("main"));
    assert!(created[0].body["body"]
        .as_str()
        .unwrap()
        .contains("change 3"));
    let number = {
        let mut st = fake.state.lock().unwrap();
        st.pulls[0]["head"]["sha"] = json!(cand);
        st.pulls[0]["number"].as_u64().unwrap()
    };

    // Not approved yet: pending, nothing moves, no second PR.
    let (sb, run) = run_it();
    run.expect_code(0);
    assert_eq!(
        sb.outputs()["status"],
        "pull-request-pending",
        "{}",
        run.all()
    );
    assert!(run.all().contains("waiting for an approval"));
    assert_eq!(branch(&r.bare, "main"), old_main);
    assert_eq!(fake.requests_to("POST", "/repos/o/r/pulls").len(), 1);

    // Approved on the head commit, checks green: fast-forward, GitHub marks it merged.
    fake.add_review(number, "reviewer", "APPROVED", &cand);
    fake.state.lock().unwrap().check_runs.insert(
        cand.clone(),
        vec![("plan".into(), "completed".into(), Some("success".into()))],
    );
    let (sb, run) = run_it();
    run.expect_code(0);
    assert_eq!(sb.outputs()["status"], "promoted", "{}", run.all());
    assert_eq!(branch(&r.bare, "main"), cand);
    fake.mark_merged_if_landed(&cand);
    assert_eq!(fake.state.lock().unwrap().pulls[0]["merged"], json!(true));
    let d = fake.state.lock().unwrap().dispatches.clone();
    assert_eq!(d.len(), 1, "deploy workflow dispatched once");
    assert_eq!(d[0]["body"]["ref"], json!("main"));
    assert!(d[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/actions/workflows/deploy.yml/dispatches"));
    proxy.assert_no_violations();
}

// Item 5 of #21: a token is never sent over plain http except to loopback, nor to a URL with
// userinfo. `0.0.0.0` and `[::ffff:127.0.0.1]` reach this machine but are not loopback names:
// refused with exit 2, and the listener behind them sees no connection.
#[test]
fn http_remotes_to_non_loopback_hosts_and_userinfo_urls_are_refused_before_any_connection() {
    let sink = crate::support::ConnCounter::start();
    let p = sink.port;
    let refused = [
        (format!("http://0.0.0.0:{p}/app.git"), "plain http"),
        (
            format!("http://[::ffff:127.0.0.1]:{p}/app.git"),
            "plain http",
        ),
        (format!("HTTP://0.0.0.0:{p}/app.git"), "plain http"),
        (
            format!("http://x-access-token:ghs_SECRETinURL@127.0.0.1:{p}/app.git"),
            "must not carry credentials",
        ),
        (
            format!("https://ghs_SECRETinURL@127.0.0.1:{p}/app.git"),
            "must not carry credentials",
        ),
    ];
    for (url, needle) in &refused {
        let sb = Sandbox::actions();
        let run = promote(
            &sb,
            url,
            &["--from", "dev", "--github-token", "ghs_tokenvalue123"],
        );
        run.expect_code(2);
        assert!(run.all().contains(needle), "{url}: {}", run.all());
        assert!(run.all().contains("`remote`"), "{url}: {}", run.all());
        sb.assert_no_leak(&run, &["ghs_SECRETinURL", "ghs_tokenvalue123"], &[]);
    }
    // The checkout's own `origin` is held to the same rule.
    let sb = Sandbox::actions();
    git_ok(sb.path(), &["init", "-q"]);
    git_ok(
        sb.path(),
        &[
            "remote",
            "add",
            "origin",
            &format!("http://0.0.0.0:{p}/app.git"),
        ],
    );
    let run = sb.run(
        "promote",
        &["--from", "dev", "--github-token", "ghs_tokenvalue123"],
    );
    run.expect_code(2);
    assert!(run.all().contains("plain http"), "{}", run.all());
    assert_eq!(sink.hits(), 0, "a refused remote was contacted");
}

// Item 8 of #21: a mistyped `repo-path` is exit 2, never the built-in model (which would
// promote dev -> staging(main) in a repository whose order is dev -> qa -> staging -> prod).
#[test]
fn a_repo_path_that_does_not_exist_is_refused_and_the_model_in_use_is_logged() {
    let r = remote(3);
    let url = r.bare.display().to_string();
    let before = refs(&r.bare);
    let sb = Sandbox::actions();
    let checkout = sb.path().join("app");
    std::fs::create_dir_all(checkout.join(".github")).unwrap();
    std::fs::write(
        checkout.join(".github/gitops.yml"),
        "environments:\n  - name: dev\n    branch: dev\n  - name: qa\n    branch: qa\n  - name: staging\n    branch: main\n  - name: prod\n    branch: prod\n",
    )
    .unwrap();
    let typo = sb.path().join("ap");
    let run = promote(
        &sb,
        &url,
        &["--from", "dev", "--repo-path", &typo.display().to_string()],
    );
    run.expect_code(2);
    assert!(run.all().contains("`repo-path`"), "{}", run.all());
    assert!(
        run.all().contains(&typo.display().to_string()),
        "{}",
        run.all()
    );
    assert_eq!(refs(&r.bare), before, "a refused promotion moved a ref");
    // The real checkout: its own model, named in the log (dev -> qa, not dev -> staging).
    let run = promote(
        &sb,
        &url,
        &[
            "--from",
            "dev",
            "--repo-path",
            &checkout.display().to_string(),
            "--dry-run",
        ],
    );
    assert!(
        run.stdout.contains(&format!(
            "environments from {}",
            checkout.join(".github/gitops.yml").display()
        )),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("-> qa (branch qa)"), "{}", run.all());
    // A checkout without the file: the built-in model, said so.
    let plain = sb.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let run = promote(
        &sb,
        &url,
        &[
            "--from",
            "dev",
            "--repo-path",
            &plain.display().to_string(),
            "--dry-run",
        ],
    );
    assert_ne!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains(&format!(
            "built-in default model: no .github/gitops.yml in {}",
            plain.display()
        )),
        "{}",
        run.all()
    );
    assert_eq!(refs(&r.bare), before);
}

// Item 4 of #21: a token pasted into the environments file is never printed, and a default
// file linked out of the checkout is refused, naming the path.
#[test]
fn config_file_errors_show_place_and_kind_never_the_value_and_links_out_are_refused() {
    let r = remote(3);
    let url = r.bare.display().to_string();
    let tok = "ghp_PASTEDtoken0123456789abcdefABCD";
    let sb = Sandbox::actions();
    let checkout = sb.path().join("app");
    std::fs::create_dir_all(checkout.join(".github")).unwrap();
    let cfg = checkout.join(".github/gitops.yml");
    for text in [
        format!("environments:\n  - name: dev\n    branch: dev\n    production: {tok}\n"),
        format!("environments:\n  - name: dev\n    branch: dev\n    {tok}: x\n"),
        format!("environments:\n  - name: dev\n    branch: dev\n    aws-account-id: \"{tok}\"\n"),
        format!("environments:\n  - name: dev\n    branch: dev\n    aws-region: {tok}\n"),
        format!("environments:\n  - {tok}\n"),
    ] {
        std::fs::write(&cfg, &text).unwrap();
        let run = promote(
            &sb,
            &url,
            &[
                "--from",
                "dev",
                "--repo-path",
                &checkout.display().to_string(),
            ],
        );
        run.expect_code(2);
        assert!(
            run.all().contains(&format!("{}: line", cfg.display()))
                || run.all().contains("environments[0]"),
            "{text}: {}",
            run.all()
        );
        sb.assert_no_leak(&run, &[tok], &[]);
        sb.assert_no_piece_leaks(&run, &[tok], 12);
    }
    std::fs::remove_file(&cfg).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("g.yml"),
        "environments:\n  - name: dev\n    branch: dev\n  - name: staging\n    branch: main\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("g.yml"), &cfg).unwrap();
    let before = refs(&r.bare);
    let run = promote(
        &sb,
        &url,
        &[
            "--from",
            "dev",
            "--repo-path",
            &checkout.display().to_string(),
        ],
    );
    run.expect_code(2);
    assert!(
        run.all().contains(&cfg.display().to_string()),
        "{}",
        run.all()
    );
    assert!(run.all().contains("outside the checkout"), "{}", run.all());
    assert_eq!(refs(&r.bare), before);
}

// #19: a promotion into a frozen environment is refused in one line (which gate, since when,
// when it opens, how to override): exit 1, the remote unchanged, nothing dispatched. With an
// override reason it promotes, logs the override and hands the reason to the deploy it
// dispatches.
#[test]
fn a_promotion_into_a_frozen_environment_is_refused_unless_overridden() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let (r, cand) = deployed_in_dev(4);
    let url = r.bare.display().to_string();
    let token = "ghs_promoteFakeToken0123456789";
    let run_it = |extra: &[&str]| {
        let sb = api_sandbox(&proxy, token);
        let dir = sb.path().join("frozen");
        crate::support::write_frozen_staging_model(&dir);
        let checkout = dir.display().to_string();
        let mut args = vec![
            "--from",
            "dev",
            "--repo-path",
            &checkout,
            "--dispatch-workflow",
            "deploy.yml",
        ];
        args.extend_from_slice(extra);
        let run = promote(&sb, &url, &args);
        sb.assert_no_leak(&run, &[token], &[]);
        (sb, run)
    };
    let before = refs(&r.bare);
    let (_, run) = run_it(&[]);
    run.expect_code(1);
    assert!(
        run.all().contains("`staging` is frozen since 2000-01-01 00:00 UTC (century freeze); next window opens Fri 2100-01-01 00:00 UTC; to promote anyway, give override-window-reason"),
        "{}",
        run.all()
    );
    assert_eq!(refs(&r.bare), before, "a refused promotion moved a ref");
    assert!(fake.state.lock().unwrap().dispatches.is_empty());
    // A dry run predicts the same refusal.
    let (_, run) = run_it(&["--dry-run"]);
    run.expect_code(1);
    assert!(
        run.all().contains("`staging` is frozen since"),
        "{}",
        run.all()
    );

    let (sb, run) = run_it(&["--override-window-reason", "INC-42 login broken"]);
    run.expect_code(0);
    assert_eq!(sb.outputs()["status"], "promoted", "{}", run.all());
    assert_eq!(branch(&r.bare, "main"), cand);
    assert!(
        run.all().contains("::warning::`staging` is frozen since 2000-01-01 00:00 UTC (century freeze); next window opens Fri 2100-01-01 00:00 UTC; promoting anyway: override-window-reason: INC-42 login broken"),
        "{}",
        run.all()
    );
    let d = fake.state.lock().unwrap().dispatches.clone();
    assert_eq!(d.len(), 1, "deploy workflow dispatched once");
    assert_eq!(
        d[0]["body"]["inputs"],
        json!({"override-window-reason": "INC-42 login broken"})
    );
    proxy.assert_no_violations();

    // An override reason on two lines is a usage error before any call.
    let (_, run) = run_it(&["--override-window-reason", "a\nb"]);
    run.expect_code(2);
    assert!(
        run.all().contains("override-window-reason"),
        "{}",
        run.all()
    );
}

// #13 part 5: promote reads its checkout and token through the shared input groups: the root
// defaults to `GITHUB_WORKSPACE` (the model there is the one used), and `GITHUB_TOKEN` is the
// token when `github-token` is not given (under the one intake rule: refused, never echoed).
#[test]
fn the_checkout_defaults_to_github_workspace_and_the_token_to_github_token() {
    let (r, _) = deployed_in_dev(3);
    let url = r.bare.display().to_string();
    let before = refs(&r.bare);
    let mut sb = Sandbox::actions();
    let ws = sb.path().join("workspace");
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(
        ws.join(".github/gitops.yml"),
        "environments: [not, a, model\n",
    )
    .unwrap();
    sb.set("GITHUB_WORKSPACE", ws.display().to_string());
    let run = promote(&sb, &url, &["--from", "dev", "--dry-run"]);
    run.expect_code(2);
    assert!(run.all().contains("gitops.yml"), "{}", run.all());
    // `repo-path` still wins over the workspace.
    let elsewhere = sb.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let path = elsewhere.display().to_string();
    let run = promote(
        &sb,
        &url,
        &["--from", "dev", "--dry-run", "--repo-path", &path],
    );
    run.expect_code(0);
    assert_eq!(sb.outputs()["status"], "would-promote");

    sb.unset("GITHUB_WORKSPACE")
        .set("GITHUB_TOKEN", "ghs_Env Token0123");
    let run = promote(&sb, &url, &["--from", "dev", "--dry-run"]);
    run.expect_code(2);
    assert!(
        run.all().contains("GITHUB_TOKEN") && run.all().contains("whitespace"),
        "{}",
        run.all()
    );
    sb.assert_no_leak(&run, &["ghs_Env Token0123", "Token0123"], &["GITHUB_TOKEN"]);
    assert_eq!(refs(&r.bare), before, "nothing changed");
}

// #19: `require-verification` is on by default when the source environment declares `verify:`
// checks: a deploy whose trailers say it failed (or carry no verification) is refused in one
// line (the gate, since when, what would satisfy it), nothing changes; `Verification: passed`
// promotes; `require-verification: false` turns the gate off.
#[test]
fn require_verification_refuses_an_unverified_or_failed_source_deploy() {
    let (r, cand) = deployed_in_dev(4);
    let url = r.bare.display().to_string();
    let run_it = |trailers: &str, extra: &[&str]| {
        tag(
            &r.bare,
            "deploy/dev/current",
            &cand,
            &format!("{}{trailers}", deploy_msg("dev", &cand)),
        );
        let sb = Sandbox::actions();
        let dir = sb.path().join("checkout");
        std::fs::create_dir_all(dir.join(".github")).unwrap();
        std::fs::write(
            dir.join(".github/gitops.yml"),
            "environments:\n  - name: dev\n    branch: dev\n    verify:\n      window: 30s\n      http: [{ name: health, url: 'http://127.0.0.1:9/' }]\n  - name: staging\n    branch: main\n  - name: prod\n    branch: prod\n",
        )
        .unwrap();
        let checkout = dir.display().to_string();
        let mut args = vec!["--from", "dev", "--repo-path", &checkout];
        args.extend_from_slice(extra);
        let run = promote(&sb, &url, &args);
        (sb, run)
    };
    // Everything but the tag this test rewrites between runs.
    let others = |bare: &Path| {
        let mut m = refs(bare);
        m.retain(|k, _| !k.starts_with("refs/tags/deploy/dev/current"));
        m
    };
    let before = others(&r.bare);
    let (_, run) = run_it(
        "Verification: failed\nVerification-Checks: http health: failed (status 500, expected 200)\n",
        &[],
    );
    run.expect_code(1);
    let line = run
        .all()
        .lines()
        .find(|l| l.contains("gate require-verification"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(&format!("the deploy of {} in `dev` since ", &cand[..7]))
            && line.contains("failed its verification (http health: failed (status 500, expected 200)); satisfied by a deploy of `dev` whose `tag-deploy verify` passes (or `require-verification: false`)"),
        "{}",
        run.all()
    );
    assert_eq!(
        others(&r.bare),
        before,
        "a refused promotion changes nothing"
    );
    let (_, run) = run_it("", &[]);
    run.expect_code(1);
    assert!(
        run.all()
            .contains("was not verified (no `Verification` trailer)"),
        "{}",
        run.all()
    );
    assert_eq!(others(&r.bare), before);
    let (sb, run) = run_it("", &["--require-verification", "false"]);
    run.expect_code(0);
    assert_eq!(sb.outputs()["status"], "promoted", "{}", run.all());
    assert_eq!(branch(&r.bare, "main"), cand);
}

#[test]
fn a_verified_source_deploy_promotes() {
    let (r, cand) = deployed_in_dev(4);
    let url = r.bare.display().to_string();
    tag(
        &r.bare,
        "deploy/dev/current",
        &cand,
        &format!("{}Verification: passed\n", deploy_msg("dev", &cand)),
    );
    let sb = Sandbox::actions();
    let dir = sb.path().join("checkout");
    std::fs::create_dir_all(dir.join(".github")).unwrap();
    std::fs::write(
        dir.join(".github/gitops.yml"),
        "environments:\n  - name: dev\n    branch: dev\n    verify:\n      window: 30s\n      github: { contexts: [smoke] }\n  - name: staging\n    branch: main\n",
    )
    .unwrap();
    let checkout = dir.display().to_string();
    let run = promote(&sb, &url, &["--from", "dev", "--repo-path", &checkout]);
    run.expect_code(0);
    assert_eq!(branch(&r.bare, "main"), cand);
}

// #18: a preview is never promoted. With a preview record of a newer commit under
// deploy/dev/preview/pr-<n>, promote still promotes deploy/dev/current; asking for the preview's
// workspace is refused (exit 1) and changes nothing; a bad workspace name is exit 2.
#[test]
fn promote_never_promotes_a_preview() {
    let (r, cand) = deployed_in_dev(3);
    let url = r.bare.display().to_string();
    add_commits(&r.bare, "dev", 1);
    let newer = branch(&r.bare, "dev");
    tag(
        &r.bare,
        "deploy/dev/preview/pr-7",
        &newer,
        "preview dev/pr-7: x\n\nPreview.\n\nEnvironment: dev\nWorkspace: pr-7\nPull-Request: 7\n",
    );
    let before = refs(&r.bare);
    for (ws, code, needle) in [
        ("pr-7", 1, "promote never promotes a preview"),
        ("pr-007", 2, "is not a workspace name"),
    ] {
        let sb = Sandbox::actions();
        let run = promote(&sb, &url, &["--from", "dev", "--workspace", ws]);
        run.expect_code(code);
        assert!(run.all().contains(needle), "{}", run.all());
        assert_eq!(refs(&r.bare), before, "{ws}: nothing changed");
    }
    let sb = Sandbox::actions();
    promote(&sb, &url, &["--from", "dev"]).expect_code(0);
    assert_eq!(
        branch(&r.bare, "main"),
        cand,
        "deploy/dev/current, not the preview"
    );
    assert_ne!(cand, newer);
}

// `require-no-drift` on the target: an open drift issue of the target (or one of its stacks)
// refuses the promotion with exit 1, names the issue and moves nothing; a dry run says the same;
// another environment's drift issue does not count; once the issue is closed, it promotes.
#[test]
fn a_drifted_target_with_require_no_drift_refuses_the_promotion() {
    use gitops_actions::plan::drift;
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let (r, cand) = deployed_in_dev(3);
    let url = r.bare.display().to_string();
    let token = "ghs_promoteFakeToken0123456789";
    let marked = |key: &str| format!("drift\n{}\n", drift::issue_marker(key));
    let drifted = fake.add_issue(
        "Drift in staging",
        &marked("staging/network"),
        &[drift::LABEL],
        "github-actions[bot]",
    );
    fake.add_issue(
        "Drift in prod",
        &marked("prod"),
        &[drift::LABEL],
        "github-actions[bot]",
    );
    let run_it = |extra: &[&str]| {
        let sb = api_sandbox(&proxy, token);
        let dir = sb.path().join("model");
        std::fs::create_dir_all(dir.join(".github")).unwrap();
        std::fs::write(
            dir.join(".github/gitops.yml"),
            "environments:\n  - name: dev\n    branch: dev\n  - name: staging\n    branch: main\n    require-no-drift: true\n  - name: prod\n    branch: prod\n    production: true\n",
        )
        .unwrap();
        let checkout = dir.display().to_string();
        let mut args = vec!["--from", "dev", "--repo-path", &checkout];
        args.extend_from_slice(extra);
        let run = promote(&sb, &url, &args);
        sb.assert_no_leak(&run, &[token], &[]);
        (sb, run)
    };
    let before = refs(&r.bare);
    for extra in [&[][..], &["--dry-run"][..]] {
        let (_, run) = run_it(extra);
        run.expect_code(1);
        assert!(
            run.all().contains(&format!("`staging` has changed outside Terraform (open drift issue #{drifted}) and requires no drift (`require-no-drift`)")),
            "{}",
            run.all()
        );
        assert_eq!(refs(&r.bare), before, "a refused promotion moved a ref");
    }
    fake.state.lock().unwrap().issues.iter_mut().for_each(|i| {
        if i["number"] == json!(drifted) {
            i["state"] = json!("closed");
        }
    });
    let (sb, run) = run_it(&[]);
    run.expect_code(0);
    assert_eq!(sb.outputs()["status"], "promoted", "{}", run.all());
    assert_eq!(branch(&r.bare, "main"), cand);
    proxy.assert_no_violations();
}
