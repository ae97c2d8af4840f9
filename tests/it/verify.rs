//! #19: `tag-deploy verify` against probe servers on 127.0.0.1 started here (slow, flapping,
//! wrong body, redirects to another host and to the metadata address, TLS errors), CloudWatch
//! alarms in moto (states set with set_alarm_state), and commit statuses / check runs in the
//! GitHub fake behind a validating Prism; the verification trailers `record` writes, the
//! GitHub Deployment status after a failed verification, and `auto-rollback` (the no-loop rule)
//! against a real git remote.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::git_http::{self, GitHttp};
use crate::support::github_fake::GithubFake;
use crate::support::moto::Moto;
use crate::support::prism::Prism;
use crate::support::{Run, Sandbox};

/// A probe target: answers by path; records every path it was asked for.
struct ProbeServer {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl ProbeServer {
    /// `other`: the port of another server, for the cross-host redirect.
    fn start(other: u16) -> ProbeServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let flaps = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (h, flaps) = (h.clone(), flaps.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap_or_default();
                    loop {
                        let mut hdr = String::new();
                        if r.read_line(&mut hdr).unwrap_or(0) == 0 || hdr == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    h.lock().unwrap().push(path.clone());
                    let (status, extra, body) = match path.as_str() {
                        "/ok" => ("200 OK", String::new(), "healthy"),
                        "/slow" => {
                            std::thread::sleep(Duration::from_secs(3));
                            ("200 OK", String::new(), "healthy")
                        }
                        "/flap" if flaps.fetch_add(1, Ordering::SeqCst) % 2 == 1 => {
                            ("500 Internal Server Error", String::new(), "healthy")
                        }
                        "/flap" => ("200 OK", String::new(), "healthy"),
                        "/wrong" => ("200 OK", String::new(), "maintenance page"),
                        "/away" => (
                            "302 Found",
                            format!("Location: http://localhost:{other}/ok\r\n"),
                            "",
                        ),
                        "/meta" => (
                            "302 Found",
                            "Location: http://169.254.169.254/latest/meta-data/\r\n".into(),
                            "",
                        ),
                        "/same" => ("302 Found", "Location: /ok\r\n".into(), ""),
                        _ => ("404 Not Found", String::new(), "no"),
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        ProbeServer { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

/// A checkout whose `.github/gitops.yml` gives `dev` this `verify:` block (YAML, indented by
/// the caller for the `verify:` key's children).
fn checkout_with(dir: &Path, verify: &str) {
    std::fs::create_dir_all(dir.join(".github")).unwrap();
    std::fs::write(
        dir.join(".github/gitops.yml"),
        format!(
            "environments:\n  - name: dev\n    branch: dev\n    verify:\n{verify}  - name: staging\n    branch: main\n  - name: prod\n    branch: prod\n    production: true\n"
        ),
    )
    .unwrap();
}

fn sandbox(verify: &str) -> Sandbox {
    let mut sb = Sandbox::actions();
    let repo = sb.path().join("checkout");
    checkout_with(&repo, verify);
    let none = sb.path().join("none.git").display().to_string();
    sb.set("GITOPS_REPO_PATH", repo.display().to_string())
        .set("GITOPS_REMOTE", none)
        .set("GITHUB_RUN_ID", "900")
        .set("GITHUB_REPOSITORY", "acme/app")
        .set(
            "GITHUB_API_URL",
            format!("http://127.0.0.1:{}", crate::support::free_port()),
        );
    sb
}

fn out(sb: &Sandbox, k: &str) -> String {
    sb.outputs().get(k).cloned().unwrap_or_default()
}

fn verify(sb: &Sandbox) -> Run {
    sb.run("tag-deploy", &["verify", "--environment", "dev"])
}

fn probe_block(url: &str, extra: &str) -> String {
    format!(
        "      window: 2s\n      interval: 1s\n      http:\n        - {{ name: h, url: '{url}', body: healthy, successes: 2, timeout: 1s{extra} }}\n"
    )
}

#[test]
fn http_probes_pass_fail_and_refuse_by_the_vectors() {
    let other = ProbeServer::start(0);
    let srv = ProbeServer::start(other.port);
    // (path, exit, outcome, what the failed check / log says)
    let rows: [(&str, i32, &str, &str); 7] = [
        ("/ok", 0, "passed", ""),
        ("/same", 0, "passed", ""),
        ("/slow", 1, "failed", "http h: no 2 consecutive successes within 2s: 0 of 2 consecutive successes; last failure: timed out after 1s"),
        ("/flap", 1, "failed", "http h: no 2 consecutive successes within 2s: 1 of 2 consecutive successes; last failure: status 500, expected 200"),
        ("/wrong", 1, "failed", "last failure: the body does not contain the expected text"),
        ("/away", 1, "failed", "http h: redirect to another host, port or scheme (never followed)"),
        ("/meta", 1, "failed", "http h: redirect to another host, port or scheme (never followed)"),
    ];
    for (path, code, outcome, says) in rows {
        let sb = sandbox(&probe_block(&srv.url(path), ""));
        let run = verify(&sb);
        run.expect_code(code);
        assert_eq!(out(&sb, "outcome"), outcome, "{path}: {}", run.all());
        assert!(
            out(&sb, "failed-check").contains(says),
            "{path}: {}",
            out(&sb, "failed-check")
        );
        if code == 1 {
            assert!(
                run.all().contains("verification of `dev` failed after"),
                "{path}: {}",
                run.all()
            );
        } else {
            assert_eq!(out(&sb, "checks"), "http h: passed (2 in a row)", "{path}");
        }
    }
    // Never followed off the host: the other server and the metadata address got nothing.
    assert!(other.hits().is_empty(), "{:?}", other.hits());
    // A redirect to the same host is followed.
    assert!(
        srv.hits().iter().filter(|p| *p == "/ok").count() >= 4,
        "{:?}",
        srv.hits()
    );
}

#[test]
fn a_probe_over_tls_fails_on_an_untrusted_certificate() {
    let tls = GitHttp::start_tls("ghs_unused0123456789");
    let ca = tls.ca.clone().unwrap();
    let url = tls.url("app").replace("/app.git", "/");
    let mut sb = sandbox(&probe_block(&url, ", status: 401"));
    sb.set("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt");
    let run = verify(&sb);
    run.expect_code(1);
    let failed = out(&sb, "failed-check");
    assert!(
        failed.contains("last failure: TLS: invalid peer certificate"),
        "{failed}"
    );
    // Trusting the CA, the same probe reaches the server: no TLS failure any more.
    sb.set("SSL_CERT_FILE", ca.display().to_string());
    let run = verify(&sb);
    assert!(!out(&sb, "failed-check").contains("TLS"), "{}", run.all());
}

#[test]
fn probe_urls_are_validated_before_any_request() {
    let srv = ProbeServer::start(0);
    let rows: [(String, &[&str], &str); 4] = [
        (
            probe_block("http://169.254.169.254/latest/meta-data/", ""),
            &[],
            "environments[0].verify.http[0].url is a link-local or cloud metadata address",
        ),
        (
            "      window: 2s\n      http: [{ name: h, url-from-output: app_url }]\n".into(),
            &[],
            "`dev`: verify.http[0].url-from-output needs the `terraform-outputs` input",
        ),
        (
            "      window: 2s\n      http: [{ name: h, url-from-variable: APP_URL }]\n".into(),
            &["--variables", "APP_URL=ftp://x/"],
            "`dev`: verify.http[0].url-from-variable is not an http(s) URL with a host",
        ),
        (
            "      window: 2s\n      alarms: { names: [x] }\n".into(),
            &[],
            "aws-region",
        ),
    ];
    for (block, extra, says) in rows {
        let mut sb = sandbox(&block);
        sb.unset("AWS_REGION");
        let mut args = vec!["verify", "--environment", "dev"];
        args.extend_from_slice(extra);
        let run = sb.run("tag-deploy", &args);
        run.expect_code(2);
        assert!(run.all().contains(says), "{says}: {}", run.all());
    }
    assert!(srv.hits().is_empty());
    // From a Terraform output and a variable: both probed.
    let sb = sandbox(
        "      window: 2s\n      interval: 1s\n      http:\n        - { name: a, url-from-output: app_url, successes: 1 }\n        - { name: b, url-from-variable: APP_URL, successes: 1 }\n",
    );
    let outputs = sb.path().join("outputs.json");
    std::fs::write(
        &outputs,
        format!(
            r#"{{"app_url": {{"value": "{}", "type": "string", "sensitive": false}}}}"#,
            srv.url("/ok")
        ),
    )
    .unwrap();
    let run = sb.run(
        "tag-deploy",
        &[
            "verify",
            "--environment",
            "dev",
            "--terraform-outputs",
            &outputs.display().to_string(),
            "--variables",
            &format!("APP_URL={}", srv.url("/same")),
        ],
    );
    run.expect_code(0);
    assert_eq!(
        out(&sb, "checks"),
        "http a: passed (1 in a row); http b: passed (1 in a row)"
    );
}

#[test]
fn an_environment_without_checks_verifies_nothing() {
    let sb = sandbox(&probe_block("http://127.0.0.1:9/", ""));
    let run = sb.run("tag-deploy", &["verify", "--environment", "staging"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "outcome"), "none");
    assert!(
        run.all().contains("declares no verification checks"),
        "{}",
        run.all()
    );
}

// ------------------------------------------------------------------ CloudWatch alarms (moto)

fn cloudwatch(moto: &Moto) -> (tokio::runtime::Runtime, aws_sdk_cloudwatch::Client) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new("eu-west-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .http_client(gitops_actions::net::sdk_http_client())
        .build();
    (rt, aws_sdk_cloudwatch::Client::from_conf(conf))
}

fn put_alarm(
    rt: &tokio::runtime::Runtime,
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
    tag: Option<(&str, &str)>,
) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic, Tag};
    let mut req = cw
        .put_metric_alarm()
        .alarm_name(name)
        .metric_name("5xx")
        .namespace("app")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold);
    if let Some((k, v)) = tag {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    rt.block_on(req.send()).unwrap();
}

fn set_state(
    rt: &tokio::runtime::Runtime,
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
    state: aws_sdk_cloudwatch::types::StateValue,
) {
    rt.block_on(
        cw.set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason("test")
            .send(),
    )
    .unwrap();
}

#[test]
fn cloudwatch_alarms_must_stay_out_of_alarm_for_the_window() {
    use aws_sdk_cloudwatch::types::StateValue;
    let moto = Moto::start();
    let (rt, cw) = cloudwatch(&moto);
    put_alarm(&rt, &cw, "app-5xx", Some(("service", "app")));
    put_alarm(&rt, &cw, "app-latency", Some(("service", "app")));
    put_alarm(&rt, &cw, "other", Some(("service", "other")));
    set_state(&rt, &cw, "app-5xx", StateValue::Ok);
    let run_with = |block: &str| {
        let mut sb = sandbox(block);
        sb.set("AWS_ENDPOINT_URL_CLOUDWATCH", moto.endpoint())
            .set("AWS_ACCESS_KEY_ID", "test")
            .set("AWS_SECRET_ACCESS_KEY", "test")
            .set("AWS_REGION", "eu-west-1");
        let run = verify(&sb);
        (run, sb)
    };
    let names =
        "      window: 2s\n      interval: 1s\n      alarms: { names: [app-5xx, app-latency] }\n";
    let by_tag = "      window: 2s\n      interval: 1s\n      alarms: { tag: { key: service, value: app } }\n";
    // OK and INSUFFICIENT_DATA for the whole window: passed.
    let (run, sb) = run_with(names);
    run.expect_code(0);
    assert_eq!(
        out(&sb, "checks"),
        "alarms: passed (2 alarm(s) out of ALARM for 2s)",
        "{}",
        run.all()
    );
    let (run, sb) = run_with(by_tag);
    run.expect_code(0);
    assert_eq!(
        out(&sb, "checks"),
        "alarms: passed (2 alarm(s) out of ALARM for 2s)",
        "{}",
        run.all()
    );
    // One in ALARM: failed at once, naming it; by name and by tag.
    set_state(&rt, &cw, "app-latency", StateValue::Alarm);
    for block in [names, by_tag] {
        let (run, sb) = run_with(block);
        run.expect_code(1);
        assert_eq!(
            out(&sb, "failed-check"),
            "alarms: alarm `app-latency` is in ALARM",
            "{}",
            run.all()
        );
    }
    // Another service's alarm in ALARM does not count; a missing alarm and an empty tag fail closed.
    set_state(&rt, &cw, "app-latency", StateValue::Ok);
    set_state(&rt, &cw, "other", StateValue::Alarm);
    let (run, _) = run_with(by_tag);
    run.expect_code(0);
    let (run, sb) = run_with("      window: 2s\n      alarms: { names: [app-5xx, gone] }\n");
    run.expect_code(1);
    assert_eq!(
        out(&sb, "failed-check"),
        "alarms: alarm `gone` does not exist"
    );
    let (run, sb) =
        run_with("      window: 2s\n      alarms: { tag: { key: service, value: none } }\n");
    run.expect_code(1);
    assert_eq!(
        out(&sb, "failed-check"),
        "alarms: no alarm carries the tag service=none"
    );
}

// ------------------------------------------------------------------ GitHub checks (fake + Prism)

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const API_TOKEN: &str = "ghs_VerifyApiToken0123456789abcdef";

#[test]
fn github_statuses_and_check_runs_must_be_green_on_the_deployed_sha() {
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let block = "      window: 2s\n      interval: 1s\n      github: { contexts: [smoke, e2e] }\n";
    let set = |statuses: &[(&str, &str)], runs: &[(&str, &str, Option<&str>)]| {
        let mut st = fake.state.lock().unwrap();
        st.commit_statuses.insert(
            SHA.into(),
            statuses
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
        st.check_runs.insert(
            SHA.into(),
            runs.iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.map(str::to_string)))
                .collect(),
        );
    };
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str, Option<&'a str>)],
        i32,
        &'a str,
    );
    let rows: [Row; 5] = [
        (
            &[],
            &[],
            1,
            "github: `smoke` not reported, `e2e` not reported after 2s",
        ),
        (
            &[("smoke", "success")],
            &[("e2e", "completed", Some("success"))],
            0,
            "",
        ),
        (
            &[("smoke", "success")],
            &[("e2e", "completed", Some("failure"))],
            1,
            "github: `e2e` is not green",
        ),
        (
            &[("smoke", "pending")],
            &[("e2e", "completed", Some("success"))],
            1,
            "github: `smoke` pending after 2s",
        ),
        (
            &[("smoke", "error"), ("other", "success")],
            &[("e2e", "in_progress", None)],
            1,
            "github: `smoke` is not green",
        ),
    ];
    for (statuses, runs, code, says) in rows {
        set(statuses, runs);
        let mut sb = sandbox(block);
        sb.set("GITHUB_API_URL", proxy.url())
            .set("GITOPS_GITHUB_TOKEN", API_TOKEN)
            .set("GITHUB_SHA", SHA);
        let run = verify(&sb);
        run.expect_code(code);
        assert_eq!(out(&sb, "failed-check"), says, "{}", run.all());
        sb.assert_no_leak(&run, &[API_TOKEN], &[]);
    }
    proxy.assert_no_violations();
    // Without a token the GitHub check cannot run: exit 2, before any call.
    let n = fake.requests().len();
    let mut sb = sandbox(block);
    sb.unset("GITOPS_GITHUB_TOKEN").unset("GITHUB_TOKEN");
    let run = verify(&sb);
    run.expect_code(2);
    assert!(
        run.all().contains("declares GitHub checks"),
        "{}",
        run.all()
    );
    assert_eq!(fake.requests().len(), n);
}

// ------------------------------------------------------------------ trailers and auto-rollback

fn remote_sandbox(url: &str, verify: &str, run_id: &str) -> Sandbox {
    let mut sb = sandbox(verify);
    sb.set("GITOPS_REMOTE", url)
        .set("GITHUB_RUN_ID", run_id)
        .set("GITHUB_ACTOR", "octocat")
        .set("GITHUB_SERVER_URL", "https://github.com")
        .set("GITOPS_SKIP_GITHUB_DEPLOYMENT", "true");
    sb
}

fn tag_message(bare: &Path, tag: &str) -> String {
    let o = std::process::Command::new("git")
        .args([
            "--git-dir",
            &bare.display().to_string(),
            "cat-file",
            "-p",
            tag,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn record(sb: &Sandbox, sha: &str, extra: &[&str]) -> Run {
    let mut args = vec!["record", "--environment", "dev", "--sha", sha];
    args.extend_from_slice(extra);
    sb.run("tag-deploy", &args)
}

#[test]
fn verification_is_recorded_and_a_failure_rolls_back_once_and_never_loops() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("app.git");
    git_http::init_bare(&bare);
    let seeded = git_http::seed_env_branches(&bare, 4);
    let url = bare.display().to_string();
    let fake = GithubFake::start();
    let proxy = Prism::proxy(&fake.url());
    let block = |auto: bool| {
        format!("      window: 2s\n      auto-rollback: {auto}\n      http: [{{ name: h, url: 'http://127.0.0.1:9/' }}]\n")
    };
    let (good, bad) = (&seeded.dev[2], &seeded.dev[3]);
    let passed = [
        "--verification-outcome",
        "passed",
        "--verification-duration",
        "3s",
        "--verification-checks",
        "http h: passed (3 in a row)",
    ];
    let failed = [
        "--verification-outcome",
        "failed",
        "--verification-duration",
        "2s",
        "--verification-checks",
        "http h: failed (status 500, expected 200)",
    ];

    // An environment with checks: record needs the outcome (exit 2, nothing written).
    let before = git_http::ls_remote(&url, None);
    let sb = remote_sandbox(&url, &block(true), "501");
    let run = record(&sb, good, &[]);
    run.expect_code(2);
    assert!(
        run.all()
            .contains("`verification-outcome`: is required: `dev` declares verification checks"),
        "{}",
        run.all()
    );
    let run = record(&sb, good, &["--verification-outcome", "maybe"]);
    run.expect_code(2);
    assert_eq!(git_http::ls_remote(&url, None), before);

    // The outcome lands in the trailers.
    record(&sb, good, &passed).expect_code(0);
    let m = tag_message(&bare, "deploy/dev/current");
    assert!(m.contains("\nVerification: passed\nVerification-Duration: 3s\nVerification-Checks: http h: passed (3 in a row)\n"), "{m}");

    // A failed verification is recorded too (it is what runs), and GitHub hears `failure`
    // naming the check.
    let mut sb = remote_sandbox(&url, &block(true), "502");
    sb.unset("GITOPS_SKIP_GITHUB_DEPLOYMENT")
        .set("GITHUB_API_URL", proxy.url())
        .set("GITHUB_RUN_ATTEMPT", "1")
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    let run = record(&sb, bad, &failed);
    run.expect_code(0);
    let id: u64 = out(&sb, "deployment-id").parse().unwrap();
    assert_eq!(fake.latest_status(id).as_deref(), Some("failure"));
    let posted = fake.requests_to(
        "POST",
        &format!("/repos/acme/app/deployments/{id}/statuses"),
    );
    let last = posted.last().unwrap().body.to_string();
    assert!(
        last.contains("failed verification: http h: failed (status 500, expected 200)"),
        "{last}"
    );
    assert!(tag_message(&bare, "deploy/dev/current").contains("\nVerification: failed\n"));

    // auto-rollback: hold, one dispatch of rollback.yml to `previous`; a re-run dispatches nothing.
    let run = sb.run("tag-deploy", &["auto-rollback", "--environment", "dev"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "dispatched", "{}", run.all());
    let refs = git_http::ls_remote(&url, None);
    assert!(refs.contains_key("refs/tags/deploy/dev/hold"));
    assert!(
        tag_message(&bare, "deploy/dev/hold").contains("Reason: verification of"),
        "hold"
    );
    let d = fake.state.lock().unwrap().dispatches.clone();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/actions/workflows/rollback.yml/dispatches"));
    assert_eq!(d[0]["body"]["ref"], "dev");
    assert_eq!(d[0]["body"]["inputs"]["to"], "previous");
    assert_eq!(d[0]["body"]["inputs"]["environment"], "dev");
    let run = sb.run("tag-deploy", &["auto-rollback", "--environment", "dev"]);
    run.expect_code(0);
    assert_eq!(out(&sb, "status"), "already-held");
    assert_eq!(fake.state.lock().unwrap().dispatches.len(), 1);

    // The rollback fails its verification too: stop and alert, never dispatch again.
    let sb2 = remote_sandbox(&url, &block(true), "503");
    record(&sb2, good, &[&["--rollback"][..], &failed[..]].concat()).expect_code(0);
    let mut sb2 = sb2;
    sb2.set("GITHUB_API_URL", proxy.url())
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    let run = sb2.run("tag-deploy", &["auto-rollback", "--environment", "dev"]);
    run.expect_code(1);
    assert_eq!(out(&sb2, "status"), "stopped");
    assert!(run.all().contains("failed its verification (http h: failed (status 500, expected 200)); rolling back again would loop"), "{}", run.all());
    assert_eq!(
        fake.state.lock().unwrap().dispatches.len(),
        1,
        "a failed rollback must not dispatch"
    );
    proxy.assert_no_violations();
}

#[test]
fn without_the_opt_in_a_failed_verification_holds_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("app.git");
    git_http::init_bare(&bare);
    let seeded = git_http::seed_env_branches(&bare, 4);
    let url = bare.display().to_string();
    let fake = GithubFake::start();
    let mut sb = remote_sandbox(
        &url,
        "      window: 2s\n      http: [{ name: h, url: 'http://127.0.0.1:9/' }]\n",
        "601",
    );
    record(
        &sb,
        &seeded.dev[2],
        &[
            "--verification-outcome",
            "failed",
            "--verification-checks",
            "http h: failed (connection failed)",
        ],
    )
    .expect_code(0);
    sb.set("GITHUB_API_URL", fake.url())
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    let run = sb.run("tag-deploy", &["auto-rollback", "--environment", "dev"]);
    run.expect_code(1);
    assert!(
        run.all()
            .contains("`auto-rollback` is off for `dev`: roll back by hand"),
        "{}",
        run.all()
    );
    assert!(git_http::ls_remote(&url, None).contains_key("refs/tags/deploy/dev/hold"));
    assert!(fake.state.lock().unwrap().dispatches.is_empty());
    // After a passed deploy (the hold released): nothing at all.
    sb.run("tag-deploy", &["release", "--environment", "dev"])
        .expect_code(0);
    record(&sb, &seeded.dev[3], &[]).expect_code(2);
    record(&sb, &seeded.dev[3], &["--verification-outcome", "passed"]).expect_code(0);
    let sb3 = remote_sandbox(
        &url,
        "      window: 2s\n      http: [{ name: h, url: 'http://127.0.0.1:9/' }]\n",
        "602",
    );
    let mut sb3 = sb3;
    sb3.set("GITHUB_API_URL", fake.url())
        .set("GITOPS_GITHUB_TOKEN", API_TOKEN);
    let run = sb3.run("tag-deploy", &["auto-rollback", "--environment", "dev"]);
    run.expect_code(0);
    assert_eq!(out(&sb3, "status"), "none");
    assert!(!git_http::ls_remote(&url, None).contains_key("refs/tags/deploy/dev/hold"));
}
