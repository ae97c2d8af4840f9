//! The GitHub REST API side of promote and tag-deploy, checked against GitHub's own OpenAPI
//! description: Prism (`support::prism`) proves what our client sends is schema-valid, and the
//! scenario fakes (`support::github_fake`) behind a validating Prism proxy cover stateful
//! behaviour (rate limits, 409s, timeouts of a create, a PR merged by a fast-forward).

use crate::support::prism::{self, Prism};

// The harness itself: the committed subset is served, the vendor media type negotiates (the
// description declares only application/json; the cut script adds it), slashes in refs work
// through the heads/tags forms, and an invalid body is refused with the violation named.
#[test]
fn prism_serves_the_committed_subset_and_rejects_invalid_requests() {
    let p = Prism::mock();
    let ok = r#"{"ref":"0123456789012345678901234567890123456789","auto_merge":false,"required_contexts":[],"environment":"dev","production_environment":false,"payload":{"run_id":"1"}}"#;
    let (code, _, body) = p.request("POST", "/repos/o/r/deployments", Some(ok));
    assert_eq!(code, 201, "{body}");
    let (code, _, _) = p.request("GET", "/repos/o/r/git/ref/heads/main", None);
    assert_eq!(code, 200);
    p.assert_no_violations();

    let (code, headers, _) = p.request(
        "POST",
        "/repos/o/r/deployments",
        Some(r#"{"auto_merge":"no"}"#),
    );
    assert_eq!(code, 422);
    let v = headers
        .iter()
        .find(|(k, _)| k == "sl-violations")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(v.contains("required property 'ref'"), "{v}");
    assert!(!p.violations().is_empty());
    assert!(prism::spec_path().exists());

    // Request bodies are checked on every operation we call, also where GitHub's description
    // has a `nullable` oneOf (POST /issues' `milestone`): without the cut script's rewrite
    // (scripts/lib/openapi-null-alternatives.py) Prism let a body without `title` through.
    p.mark();
    let (code, headers, _) = p.request("POST", "/repos/o/r/issues", Some(r#"{"body":"no title"}"#));
    assert_eq!(
        code, 422,
        "a POST /issues without its required title was accepted"
    );
    let v = headers
        .iter()
        .find(|(k, _)| k == "sl-violations")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(v.contains("required property 'title'"), "{v}");
    let (code, _, _) = p.request(
        "POST",
        "/repos/o/r/issues",
        Some(r#"{"title":"t","milestone":1.5}"#),
    );
    assert_eq!(
        code, 422,
        "a milestone neither string, integer nor null was accepted"
    );
    for ok in [
        r#"{"title":"t","milestone":null}"#,
        r#"{"title":"t","milestone":3}"#,
    ] {
        let (code, _, body) = p.request("POST", "/repos/o/r/issues", Some(ok));
        assert_eq!(code, 201, "{ok}: {body}");
    }
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prism::spec_path()).unwrap()).unwrap();
    let left = nullable_alternatives_without_type(&spec, "");
    assert!(
        left.is_empty(),
        "Prism skips checking bodies with these: {left:?}"
    );
    p.mark();
    p.mark();
    every_github_call_we_make_is_valid_against_githubs_openapi_description(&p);

    // GitHub's own examples must satisfy its schemas (the cut script repairs the ones that do
    // not), or Prism answers 500 to valid requests and the scenario fakes built on them break.
    for path in [
        "/repos/o/r",
        "/repos/o/r/pulls",
        "/repos/o/r/pulls/1",
        "/repos/o/r/pulls/1/reviews",
        "/repos/o/r/commits/abc/status",
        "/repos/o/r/commits/abc/check-runs",
        "/repos/o/r/deployments",
        "/repos/o/r/deployments/1/statuses",
        "/repos/o/r/git/ref/heads/main",
        "/repos/o/r/issues/1/comments",
        "/repos/o/r/issues",
    ] {
        let (code, _, body) = p.request("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
    }
}

/// Schemas with `nullable: true`, no `type` and a `oneOf`/`anyOf` (JSON pointers): under Prism
/// they switch off the check of the whole request body.
fn nullable_alternatives_without_type(v: &serde_json::Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            if m.get("nullable") == Some(&serde_json::Value::Bool(true))
                && !m.contains_key("type")
                && (m.contains_key("oneOf") || m.contains_key("anyOf"))
            {
                out.push(at.to_string());
            }
            for (k, x) in m {
                out.extend(nullable_alternatives_without_type(x, &format!("{at}/{k}")));
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                out.extend(nullable_alternatives_without_type(x, &format!("{at}/{i}")));
            }
        }
        _ => {}
    }
    out
}

use std::time::Duration;

use gitops_actions::github::{
    Approval, Checks, Client, Config, DeploymentState, DeploymentStatus, NewDeployment, RetryPolicy,
};
use gitops_actions::secret::Secret;
use serde_json::json;

use crate::support::github_fake::{GithubFake, Scripted};
use gitops_actions::plan::drift;

fn place(env: &str) -> drift::Place {
    drift::Place {
        environment: env.into(),
        stack: None,
        sha: Some(SHA.into()),
        run_url: Some("https://github.com/o/r/actions/runs/42".into()),
    }
}

static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn client(
    url: &str,
    timeout: Duration,
    retry: RetryPolicy,
) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _g = RT.get_or_init(rt).enter();
    let l2 = lines.clone();
    let c = Client::new(
        &Config {
            api_url: url.to_string(),
            repository: "o/r".into(),
            token: Secret::new("ghs_test-token-value-123"),
            timeout,
            retry,
        },
        move |m| l2.lock().unwrap().push(m.to_string()),
    )
    .unwrap();
    (c, lines)
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        max_wait: Duration::from_secs(5),
        base_backoff: Duration::from_millis(10),
    }
}

/// octocrab spawns its buffer worker when the client is built: build it inside the runtime.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn new_deployment(env: &str, production: bool, run_key: &str) -> NewDeployment {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "image".into(),
        json!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:00"),
    );
    NewDeployment {
        sha: SHA.into(),
        environment: env.into(),
        production,
        required_contexts: vec![],
        run_key: run_key.into(),
        description: "deploy by gitops-actions".into(),
        extra,
        transient: false,
    }
}

// Every operation promote and tag-deploy call, sent to Prism serving GitHub's own description:
// no request may break the schema (methods, paths, parameters, bodies, media type).
fn every_github_call_we_make_is_valid_against_githubs_openapi_description(prism: &Prism) {
    let (c, _) = client(&prism.url(), Duration::from_secs(20), fast_retry());
    RT.get_or_init(rt).block_on(async {
        let d = c
            .create_deployment(&new_deployment("prod", true, "42.1"))
            .await
            .unwrap();
        c.set_deployment_status(
            d.id,
            &DeploymentStatus {
                state: DeploymentState::InProgress,
                log_url: Some("https://github.com/o/r/actions/runs/42".into()),
                environment_url: Some("https://app.example.com".into()),
                description: Some("deploying".into()),
                auto_inactive: None,
            },
        )
        .await
        .unwrap();
        c.set_deployment_status(
            d.id,
            &DeploymentStatus {
                state: DeploymentState::Success,
                log_url: Some("https://github.com/o/r/actions/runs/42".into()),
                environment_url: None,
                description: None,
                auto_inactive: Some(false),
            },
        )
        .await
        .unwrap();
        c.list_deployments("prod", Some(SHA), 10).await.unwrap();
        // A preview's deployment: a transient environment `dev/pr-<n>`, marked inactive when
        // the preview is destroyed; the sweep reads each preview's pull request.
        let preview = NewDeployment {
            transient: true,
            ..new_deployment("dev/pr-7", false, "43.1")
        };
        let pd = c.create_deployment(&preview).await.unwrap();
        c.set_deployment_status(
            pd.id,
            &DeploymentStatus {
                state: DeploymentState::Success,
                log_url: None,
                environment_url: Some("https://pr-7.dev.example.com".into()),
                description: Some("preview of pull request #7".into()),
                auto_inactive: Some(true),
            },
        )
        .await
        .unwrap();
        c.deactivate_environment("dev/pr-7", "preview destroyed", 10)
            .await
            .unwrap();
        c.mark_older_inactive("prod", d.id, 5).await.unwrap();
        c.find_pull_request("promote/prod/0123456", "prod", "open")
            .await
            .unwrap();
        let pr = c
            .create_pull_request(
                "promote/prod/0123456",
                "prod",
                "Promote staging to prod",
                "body",
            )
            .await
            .unwrap();
        c.update_pull_request(pr.number, "Promote staging to prod", "new body")
            .await
            .unwrap();
        c.get_pull_request(pr.number).await.unwrap();
        c.approval(pr.number, SHA).await.unwrap();
        c.checks(SHA).await.unwrap();
        // plan-gate's comment calls, on the same client.
        c.issue_comments_page(1, None).await.unwrap();
        let made = c.create_issue_comment(1, "plan report").await.unwrap();
        c.update_issue_comment(made.id, "plan report, again")
            .await
            .unwrap();
        c.authenticated_user().await.unwrap();
        c.upsert_comment(1, "dev", None, "plan report")
            .await
            .unwrap();
        // The drift issue calls.
        c.open_issues_page(drift::LABEL, None).await.unwrap();
        let issue = c
            .create_issue("Drift in prod", "body", &[drift::LABEL])
            .await
            .unwrap();
        c.update_issue(
            issue.number,
            &json!({"title": "Drift in prod", "body": "again"}),
        )
        .await
        .unwrap();
        c.update_issue(
            issue.number,
            &json!({"state": "closed", "state_reason": "completed"}),
        )
        .await
        .unwrap();
        c.sync_drift_issue(&place("prod"), true, "drift body", None)
            .await
            .unwrap();
        let mut inputs = serde_json::Map::new();
        inputs.insert("environment".into(), json!("prod"));
        c.dispatch_workflow("deploy.yml", "prod", &inputs)
            .await
            .unwrap();
    });
    prism.assert_no_violations();
    assert!(!prism.log().contains("ghs_test-token-value-123"));
}

// F14: a secondary rate limit with `retry-after` is waited out, then the call succeeds; what the
// fake answered and what we sent are both checked by Prism in proxy mode.
fn rate_limited_call_waits_for_retry_after_then_succeeds(fake: &GithubFake, proxy: &Prism) {
    fake.script(Scripted {
        method: "GET".into(),
        path_prefix: "/repos/o/r/deployments".into(),
        status: 403,
        headers: vec![("retry-after".into(), "1".into())],
        body: json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com"}),
        delay: Duration::ZERO,
        apply: false,
    });
    let (c, lines) = client(&proxy.url(), Duration::from_secs(20), fast_retry());
    let list = RT
        .get_or_init(rt)
        .block_on(c.list_deployments("dev", None, 10))
        .unwrap();
    assert!(list.is_empty());
    assert_eq!(fake.requests_to("GET", "/repos/o/r/deployments").len(), 2);
    let lines = lines.lock().unwrap().join("\n");
    assert!(lines.contains("waiting 1 s before attempt 2/3"), "{lines}");
    // GitHub sends rate-limit 403/429 on every endpoint but documents them on few.
    proxy.assert_no_violations_except(&["Unable to match the returned status code"]);
}

// F14: when GitHub asks for a wait longer than allowed we fail at once (no hidden long sleep,
// no second request), saying how long it asked for.
#[test]
fn rate_limit_longer_than_allowed_fails_without_retrying() {
    let fake = GithubFake::start();
    fake.script(Scripted {
        method: "POST".into(),
        path_prefix: "/repos/o/r/deployments".into(),
        status: 429,
        headers: vec![("retry-after".into(), "3600".into())],
        body: json!({"message": "rate limited"}),
        delay: Duration::ZERO,
        apply: false,
    });
    let (c, _) = client(&fake.url(), Duration::from_secs(20), fast_retry());
    let e = rt()
        .block_on(c.create_deployment(&new_deployment("dev", false, "7.1")))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("asks to wait 3600 s"), "{msg}");
    assert_eq!(fake.requests_to("POST", "/repos/o/r/deployments").len(), 1);
    assert!(fake.state.lock().unwrap().deployments.is_empty());
}

// F15: the create POST takes effect but its answer never arrives in time. We must find the
// deployment carrying our run key instead of creating a second one.
fn timed_out_deployment_create_finds_ours_instead_of_duplicating(fake: &GithubFake, proxy: &Prism) {
    fake.script(late_answer_to_post("/repos/o/r/deployments"));
    let (c, lines) = client(&proxy.url(), Duration::from_secs(2), fast_retry());
    let d = rt()
        .block_on(c.create_deployment(&new_deployment("staging", false, "99.2")))
        .unwrap();
    assert_eq!(d.run_key.as_deref(), Some("99.2"));
    let st = fake.state.lock().unwrap();
    assert_eq!(st.deployments.len(), 1, "no duplicate deployment");
    let posts = st.requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "no second POST once ours was found");
    let body = &st
        .requests
        .iter()
        .find(|r| r.method == "POST")
        .unwrap()
        .body;
    assert_eq!(body["auto_merge"], json!(false));
    assert_eq!(body["required_contexts"], json!([]));
    assert_eq!(body["production_environment"], json!(false));
    drop(st);
    assert!(lines.lock().unwrap().join("\n").contains("outcome unknown"));
}

// A 409 (e.g. required contexts failed) is an answer, not an unknown outcome: reported once,
// never retried.
fn deployment_conflict_is_reported_and_not_retried(fake: &GithubFake, proxy: &Prism) {
    fake.script(Scripted {
        method: "POST".into(),
        path_prefix: "/repos/o/r/deployments".into(),
        status: 409,
        headers: vec![],
        body: json!({"message": "Conflict: Commit status checks failed for main.", "documentation_url": "https://docs.github.com"}),
        delay: Duration::ZERO,
        apply: false,
    });
    let (c, _) = client(&proxy.url(), Duration::from_secs(20), fast_retry());
    let e = rt()
        .block_on(c.create_deployment(&new_deployment("dev", false, "5.1")))
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("status checks failed"), "{e}");
    assert_eq!(fake.requests_to("POST", "/repos/o/r/deployments").len(), 1);
    proxy.assert_no_violations();
}

// Production: GitHub leaves older successful deployments active; we mark them inactive, and
// leave failed ones and the new one alone.
fn older_successful_production_deployments_are_marked_inactive(fake: &GithubFake, proxy: &Prism) {
    let old_ok = fake.add_deployment(SHA, "prod", true, "success");
    let old_failed = fake.add_deployment(SHA, "prod", true, "failure");
    let other_env = fake.add_deployment(SHA, "staging", false, "success");
    let (c, _) = client(&proxy.url(), Duration::from_secs(20), fast_retry());
    let marked = RT.get_or_init(rt).block_on(async {
        let d = c
            .create_deployment(&new_deployment("prod", true, "8.1"))
            .await
            .unwrap();
        c.set_deployment_status(
            d.id,
            &DeploymentStatus {
                state: DeploymentState::Success,
                log_url: None,
                environment_url: None,
                description: None,
                auto_inactive: None,
            },
        )
        .await
        .unwrap();
        c.mark_older_inactive("prod", d.id, 30).await.unwrap()
    });
    assert_eq!(marked, vec![old_ok]);
    assert_eq!(fake.latest_status(old_ok).as_deref(), Some("inactive"));
    assert_eq!(fake.latest_status(old_failed).as_deref(), Some("failure"));
    assert_eq!(fake.latest_status(other_env).as_deref(), Some("success"));
    proxy.assert_no_violations();
}

// Reviews and checks as promote reads them: approval must be on the head commit; a failing
// or running check blocks.
fn approval_and_checks_are_read_from_reviews_statuses_and_check_runs(
    fake: &GithubFake,
    proxy: &Prism,
) {
    let n = fake.add_pull("promote/prod/0123456", "prod", SHA);
    fake.add_review(
        n,
        "alice",
        "APPROVED",
        "1111111111111111111111111111111111111111",
    );
    let (c, _) = client(&proxy.url(), Duration::from_secs(20), fast_retry());
    let r = RT.get_or_init(rt);
    assert_eq!(r.block_on(c.approval(n, SHA)).unwrap(), Approval::Pending);
    fake.add_review(n, "bob", "APPROVED", SHA);
    assert_eq!(
        r.block_on(c.approval(n, SHA)).unwrap(),
        Approval::Approved(vec!["bob".into()])
    );
    assert_eq!(
        r.block_on(c.checks(SHA)).unwrap(),
        Checks::Passed { none: true }
    );
    fake.state.lock().unwrap().check_runs.insert(
        SHA.into(),
        vec![("plan".into(), "in_progress".into(), None)],
    );
    assert_eq!(
        r.block_on(c.checks(SHA)).unwrap(),
        Checks::Pending(vec!["plan".into()])
    );
    fake.state
        .lock()
        .unwrap()
        .commit_statuses
        .insert(SHA.into(), vec![("ci".into(), "failure".into())]);
    assert!(matches!(
        r.block_on(c.checks(SHA)).unwrap(),
        Checks::Failed(_)
    ));
    let found = r
        .block_on(c.find_pull_request("promote/prod/0123456", "prod", "open"))
        .unwrap()
        .unwrap();
    assert_eq!(found.number, n);
    proxy.assert_no_violations();
}

// The drift issue's lifecycle: opened on first detection (with the label), updated in place by
// the next run (never a second issue), an issue with our marker by someone else left alone,
// commented on and closed once the drift is gone, then nothing.
fn drift_issue_is_opened_updated_in_place_and_closed(fake: &GithubFake, proxy: &Prism) {
    let foreign = fake.add_issue(
        "copied",
        &format!("x\n{}\n", drift::issue_marker("prod")),
        &[drift::LABEL],
        "mallory",
    );
    let (c, _) = client(&proxy.url(), Duration::from_secs(20), fast_retry());
    let r = RT.get_or_init(rt);
    let (o, notes) = r
        .block_on(c.sync_drift_issue(
            &place("prod"),
            true,
            "first\n<!-- gitops-actions:drift key=prod -->\n",
            None,
        ))
        .unwrap();
    let drift::IssueOutcome::Opened(n, _) = o else {
        panic!("{o:?}")
    };
    assert!(notes.iter().any(|m| m.contains("mallory")), "{notes:?}");
    let (o, _) = r
        .block_on(c.sync_drift_issue(
            &place("prod"),
            true,
            "second\n<!-- gitops-actions:drift key=prod -->\n",
            None,
        ))
        .unwrap();
    assert!(
        matches!(o, drift::IssueOutcome::Updated(m, _) if m == n),
        "{o:?}"
    );
    let issues = fake.issues();
    assert_eq!(issues.len(), 2, "one of ours, one foreign");
    let ours = issues.iter().find(|i| i["number"] == json!(n)).unwrap();
    assert!(ours["body"].as_str().unwrap().starts_with("second"));
    assert_eq!(ours["labels"][0]["name"], json!(drift::LABEL));
    assert_eq!(
        ours["title"],
        json!("Drift in prod: changed outside Terraform")
    );
    // Another environment's drift is its own issue.
    let (o, _) = r
        .block_on(c.sync_drift_issue(&place("dev"), false, "", None))
        .unwrap();
    assert_eq!(o, drift::IssueOutcome::Nothing);
    let (o, _) = r
        .block_on(c.sync_drift_issue(&place("prod"), false, "", None))
        .unwrap();
    assert!(
        matches!(o, drift::IssueOutcome::Closed(m, _) if m == n),
        "{o:?}"
    );
    let issues = fake.issues();
    let ours = issues.iter().find(|i| i["number"] == json!(n)).unwrap();
    assert_eq!(ours["state"], json!("closed"));
    let comments = fake.state.lock().unwrap().issue_comments.clone();
    assert!(comments[&n][0]["body"]
        .as_str()
        .unwrap()
        .contains("No drift any more in `prod`"));
    let theirs = issues
        .iter()
        .find(|i| i["number"] == json!(foreign))
        .unwrap();
    assert_eq!(
        theirs["state"],
        json!("open"),
        "never edit someone else's issue"
    );
    assert!(fake
        .requests_to("PATCH", &format!("/repos/o/r/issues/{foreign}"))
        .is_empty());
    let (o, _) = r
        .block_on(c.sync_drift_issue(&place("prod"), false, "", None))
        .unwrap();
    assert_eq!(o, drift::IssueOutcome::Nothing);
    assert_eq!(
        fake.requests_to("POST", "/repos/o/r/issues")
            .iter()
            .filter(|q| q.path == "/repos/o/r/issues")
            .count(),
        1
    );
    proxy.assert_no_violations();
}

/// The POST to `prefix` takes effect, but its answer comes after the client's 2 s timeout.
fn late_answer_to_post(prefix: &str) -> Scripted {
    Scripted {
        method: "POST".into(),
        path_prefix: prefix.into(),
        status: 201,
        headers: vec![],
        body: json!({}),
        delay: Duration::from_secs(4),
        apply: true,
    }
}

// F15 for the drift issue: the create POST took effect but its answer came too late; the retry
// finds our issue instead of opening a second one.
fn timed_out_drift_issue_create_finds_ours_instead_of_duplicating(
    fake: &GithubFake,
    proxy: &Prism,
) {
    fake.script(late_answer_to_post("/repos/o/r/issues"));
    let (c, lines) = client(&proxy.url(), Duration::from_secs(2), fast_retry());
    let (o, _) = RT
        .get_or_init(rt)
        .block_on(c.sync_drift_issue(
            &place("prod"),
            true,
            "body\n<!-- gitops-actions:drift key=prod -->\n",
            None,
        ))
        .unwrap();
    assert!(matches!(o, drift::IssueOutcome::Opened(..)), "{o:?}");
    assert_eq!(fake.issues().len(), 1, "no duplicate issue");
    let lines = lines.lock().unwrap().join("\n");
    assert!(lines.contains("outcome unknown"), "{lines}");
    assert!(lines.contains("not creating another"), "{lines}");
}

// Stateful scenarios, one fake behind one validating Prism proxy (Prism takes seconds to start:
// one instance serves them all, the fake is reset between scenarios).
#[test]
fn github_scenarios_against_a_stateful_fake_behind_a_validating_proxy() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    type Scenario = fn(&GithubFake, &Prism);
    let scenarios: [(&str, Scenario); 7] = [
        (
            "drift issue lifecycle",
            drift_issue_is_opened_updated_in_place_and_closed,
        ),
        (
            "F15 drift issue",
            timed_out_drift_issue_create_finds_ours_instead_of_duplicating,
        ),
        (
            "F14 retry-after",
            rate_limited_call_waits_for_retry_after_then_succeeds,
        ),
        (
            "F15 unknown outcome",
            timed_out_deployment_create_finds_ours_instead_of_duplicating,
        ),
        ("409", deployment_conflict_is_reported_and_not_retried),
        (
            "inactive",
            older_successful_production_deployments_are_marked_inactive,
        ),
        (
            "reviews and checks",
            approval_and_checks_are_read_from_reviews_statuses_and_check_runs,
        ),
    ];
    for (name, run) in scenarios {
        eprintln!("-- scenario: {name}");
        fake.reset();
        proxy.mark();
        run(&fake, &proxy);
    }
}

// The demo's GitHub API: the same fake, compiled into `gitops-dev github-fake`, serves GitHub's
// routes with state and its own `/__fake/state`; a description without examples is refused
// before it listens.
#[test]
fn the_dev_binary_serves_the_same_stateful_fake_for_the_demo() {
    use crate::support::prism::raw_request;
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = std::process::Command::new(crate::support::bin("gitops-dev"))
        .args(["github-fake", "--spec"])
        .arg(&bad)
        .arg("--port-file")
        .arg(&port_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!port_file.exists(), "refused before listening");
    let mut child = std::process::Command::new(crate::support::bin("gitops-dev"))
        .args(["github-fake", "--spec"])
        .arg(crate::support::prism::spec_path())
        .arg("--port-file")
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !port_file.exists() || std::fs::read_to_string(&port_file).unwrap().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no port file"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .parse()
        .unwrap();
    let (status, _, body) = raw_request(
        port,
        "POST",
        "/repos/o/r/issues",
        Some(r#"{"title":"drift in prod","body":"b","labels":["gitops-drift"]}"#),
        &[],
    );
    assert_eq!(status, 201, "{body}");
    let n = serde_json::from_str::<serde_json::Value>(&body).unwrap()["number"].clone();
    let (status, _, body) = raw_request(port, "GET", "/__fake/state", None, &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["issues"][0]["number"], n, "{state}");
    assert_eq!(state["issues"][0]["title"], "drift in prod");
    assert_eq!(state["issues"][0]["state"], "open");
}
