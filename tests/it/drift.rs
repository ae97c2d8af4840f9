//! `plan-gate drift` end to end: the real binary on the real Terraform fixtures
//! (`tests/fixtures/drift/`, re-made by `scripts/gen-drift-fixtures` when terraform is here), the
//! drift report (outputs, `--format json`, the step summary) and the drift issue's lifecycle
//! against the stateful GitHub fake; every refusal exits 2 before anything is read or sent.

use std::path::PathBuf;
use std::process::Command;

use gitops_actions::plan::{self, drift, Limits};

use crate::support::github_fake::GithubFake;
use crate::support::{root, skip_loudly, Run, Sandbox};

const TOKEN: &str = "ghs_FAKETOKEN0123456789abcdef";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const SECRETS: &[&str] = &["deployed-secret-value-1", "changed-secret-value-2"];

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/drift")
        .join(name)
        .display()
        .to_string()
}

fn run(gh: &GithubFake, args: &[&str]) -> (Sandbox, Run) {
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_REPOSITORY", "o/r")
        .set("GITHUB_API_URL", gh.url())
        .set("GITHUB_SERVER_URL", "https://github.com")
        .set("GITHUB_RUN_ID", "42")
        .set("GITOPS_GITHUB_TOKEN", TOKEN);
    let mut all = vec!["drift", "--environment", "prod", "--deployed-sha", SHA];
    all.extend_from_slice(args);
    let r = sb.run("plan-gate", &all);
    (sb, r)
}

#[test]
fn drift_opens_one_issue_updates_it_in_place_and_closes_it_when_gone() {
    let gh = GithubFake::start();
    let drifted = fixture("drifted.refresh-only.json");
    let normal = fixture("drifted.plan.json");
    let args = ["--plan", drifted.as_str(), "--normal-plan", normal.as_str()];
    let (sb, r) = run(&gh, &args);
    r.expect_code(0);
    let out = sb.outputs();
    assert_eq!(out["drift-status"], "drifted");
    assert_eq!(out["reality-changed"], "2");
    assert_eq!(out["code-not-deployed"], "1");
    assert!(out["drift-issue-url"].contains("/issues/"), "{out:?}");
    let j: serde_json::Value = serde_json::from_str(&out["json"]).unwrap();
    assert_eq!(j["environment"], "prod");
    assert_eq!(j["sha"], SHA);
    assert_eq!(j["resources"][0]["address"], "aws_ssm_parameter.plain");
    assert_eq!(j["resources"][0]["kind"], "reality-changed");
    assert_eq!(j["resources"][2]["kind"], "code-not-deployed");
    assert_eq!(j["data-sources-ignored"], 1);
    let summary = sb.summary();
    assert!(
        summary.contains("2 resource(s) changed outside Terraform"),
        "{summary}"
    );
    assert!(summary.contains("code not yet deployed"));
    assert!(r.stdout.contains("drift issue #"), "{}", r.all());
    // Every form of the token and of the SecureString's old and new values, in every channel
    // (the runner's `::add-mask::` lines aside).
    sb.assert_no_leak(&r, &[&[TOKEN][..], SECRETS].concat(), &[]);
    let issues = gh.issues();
    assert_eq!(issues.len(), 1);
    let body = issues[0]["body"].as_str().unwrap();
    assert!(body.trim_end().ends_with(&drift::issue_marker("prod")));
    assert!(body.contains(SHA) && body.contains("https://github.com/o/r/actions/runs/42"));
    assert!(SECRETS.iter().all(|s| !body.contains(s)));
    assert_eq!(issues[0]["labels"][0]["name"], drift::LABEL);

    // The next run: the same issue, updated in place.
    let (sb, r) = run(&gh, &args);
    r.expect_code(0);
    assert!(r.stdout.contains("updated in place"), "{}", r.all());
    assert_eq!(gh.issues().len(), 1);
    assert_eq!(sb.outputs()["drift-issue-url"], out["drift-issue-url"]);

    // A stack of the same environment has its own issue.
    let (_sb, r) = run(&gh, &[&args[..], &["--stack", "network"]].concat());
    r.expect_code(0);
    assert_eq!(gh.issues().len(), 2);

    // After a re-apply: clean, the issue is commented on and closed.
    let clean = fixture("reapplied.refresh-only.json");
    let (sb, r) = run(&gh, &["--plan", clean.as_str()]);
    r.expect_code(0);
    assert_eq!(sb.outputs()["drift-status"], "clean");
    assert_eq!(sb.outputs()["code-not-deployed"], "");
    assert!(r.stdout.contains("closed"), "{}", r.all());
    let issues = gh.issues();
    assert_eq!(issues[0]["state"], "closed");
    assert_eq!(issues[1]["state"], "open", "the stack's drift is its own");
    let (_sb, r) = run(&gh, &["--plan", clean.as_str()]);
    r.expect_code(0);
    assert!(r.stdout.contains("no drift and no open drift issue"));
    assert_eq!(
        gh.requests_to("POST", "/repos/o/r/issues").len(),
        3,
        "two issues, one close comment"
    );
}

#[test]
fn drift_refusals_exit_2_before_anything_is_read_or_sent() {
    let gh = GithubFake::start();
    let drifted = fixture("drifted.refresh-only.json");
    let normal = fixture("drifted.plan.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--plan", normal.as_str()],
            "refresh-only plan would update",
        ),
        (
            vec![
                "--plan",
                drifted.as_str(),
                "--normal-plan",
                "/nonexistent.json",
            ],
            "normal-plan",
        ),
        (
            vec!["--plan", drifted.as_str(), "--deployed-sha", "abc"],
            "deployed-sha",
        ),
        (
            vec!["--plan", drifted.as_str(), "--issue-author=-bad-"],
            "issue-author",
        ),
        (
            vec!["--plan", drifted.as_str(), "--policy", "p.yml"],
            "policy",
        ),
        (
            vec!["--plan", drifted.as_str(), "--environment", "Prod"],
            "environment",
        ),
    ];
    for (args, needle) in cases {
        let (sb, r) = run(&gh, &args);
        r.expect_code(2);
        assert!(
            r.all().contains(needle),
            "{args:?}: {needle:?} in {}",
            r.all()
        );
        assert!(sb.outputs().is_empty(), "{args:?}: {:?}", sb.outputs());
        assert!(sb.summary().is_empty(), "{args:?}");
    }
    // No environment at all.
    let mut sb = Sandbox::actions();
    sb.set("GITOPS_GITHUB_TOKEN", TOKEN);
    let r = sb.run(
        "plan-gate",
        &["drift", "--plan", drifted.as_str(), "--issue", "off"],
    );
    r.expect_code(2);
    assert!(
        r.all().contains("`drift` needs the environment"),
        "{}",
        r.all()
    );
    // `issue: sync` without a token.
    let sb = Sandbox::actions();
    let r = sb.run(
        "plan-gate",
        &["drift", "--plan", drifted.as_str(), "--environment", "prod"],
    );
    r.expect_code(2);
    assert!(
        r.all().contains("`issue: sync` needs the GitHub API"),
        "{}",
        r.all()
    );
    assert!(
        gh.requests().is_empty(),
        "nothing sent: {:?}",
        gh.requests()
    );
    // `issue: off` reports without the API.
    let sb = Sandbox::actions();
    let r = sb.run(
        "plan-gate",
        &[
            "drift",
            "--plan",
            drifted.as_str(),
            "--environment",
            "prod",
            "--issue",
            "off",
        ],
    );
    r.expect_code(0);
    assert_eq!(sb.outputs()["drift-status"], "drifted");
    assert_eq!(sb.outputs()["drift-issue-url"], "");
}

/// The fixtures are what Terraform writes today: with terraform (and the AWS provider mirror)
/// here, the generator re-runs against moto and the classification is the same.
#[test]
fn live_terraform_regenerates_the_drift_fixtures_with_the_same_classification() {
    let have_tf = Command::new("terraform").arg("version").output().is_ok();
    let mirror = std::env::var("GITOPS_TF_PLUGINS").unwrap_or("/opt/tf-plugins".into());
    if !have_tf
        || !PathBuf::from(&mirror)
            .join("registry.terraform.io/hashicorp/aws")
            .is_dir()
    {
        skip_loudly(
            "re-making the drift fixtures with terraform",
            "terraform or the AWS provider mirror is not installed; the committed fixtures still ran",
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let r = Command::new(root().join("scripts/gen-drift-fixtures"))
        .env("GITOPS_DRIFT_FIXTURES_OUT", out.path())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let load =
        |dir: &std::path::Path, n: &str| plan::load(&dir.join(n), &Limits::default()).unwrap();
    let committed = root().join("tests/fixtures/drift");
    for (refresh, normal) in [
        ("clean.refresh-only.json", None),
        ("drifted.refresh-only.json", Some("drifted.plan.json")),
        ("reapplied.refresh-only.json", None),
    ] {
        let classify = |dir: &std::path::Path| {
            let n = normal.map(|n| load(dir, n));
            let d = drift::classify(&load(dir, refresh), n.as_ref()).unwrap();
            let mut j = drift::json(&d, &drift::Place::default());
            j["engine"] = serde_json::Value::Null;
            j
        };
        assert_eq!(classify(out.path()), classify(&committed), "{refresh}");
    }
}
