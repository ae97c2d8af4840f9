//! `oidc-login` against real stand-ins: moto's STS behind our fault-injecting proxy
//! (`support::sts_faults`) and our GitHub OIDC token endpoint (`support::oidc`, real RS256 JWTs).
//! Covers the happy path, role chaining, faults F1–F5, the overall deadline, every bad-input
//! vector (exit 2, zero requests), the leak scan, and a run under act proving the GITHUB_ENV
//! hand-over to the next step.

use std::process::Command;

use crate::support::moto::Moto;
use crate::support::oidc::{OidcServer, REQUEST_TOKEN};
use crate::support::sts_faults::{self, Fault, StsFaults};
use crate::support::{bin, Run, Sandbox};

const ROLE: &str = "arn:aws:iam::123456789012:role/deploy";
const ROLE2: &str = "arn:aws:iam::123456789012:role/second";
const WI: &str = "AssumeRoleWithWebIdentity";

/// An Actions-like sandbox wired to the token endpoint and the STS endpoint.
fn sandbox(oidc: &OidcServer, sts: &str) -> Sandbox {
    let mut sb = Sandbox::actions();
    sb.set("ACTIONS_ID_TOKEN_REQUEST_URL", oidc.request_url())
        .set("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
        .set("AWS_ENDPOINT_URL_STS", sts)
        .set("GITHUB_RUN_ID", "4242")
        .set("GITHUB_RUN_ATTEMPT", "1")
        .set("GITHUB_REPOSITORY", "octo-org/octo-repo")
        .set("GITHUB_WORKFLOW", "deploy <prod>")
        .set("GITHUB_ACTION", "__run_2")
        .set("GITHUB_ACTOR", "octocat")
        .set("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .set("GITHUB_REF", "refs/heads/main");
    sb
}

/// moto, the token endpoint, and the recording STS proxy in front of moto.
fn moto_stack() -> (Moto, OidcServer, StsFaults) {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(Some(moto.port), vec![]);
    (moto, oidc, proxy)
}

/// A refusal before any request: exit 2, every `needle` in the message, and neither the token
/// endpoint nor STS asked anything.
#[track_caller]
fn assert_refused_unsent(r: &Run, oidc: &OidcServer, sts: &StsFaults, needles: &[&str]) {
    r.expect_code(2);
    for n in needles {
        assert!(r.all().contains(n), "no {n:?} in:\n{}", r.all());
    }
    assert_eq!(
        oidc.count(),
        0,
        "a refused input reached the token endpoint"
    );
    assert!(sts.requests().is_empty(), "a refused input reached STS");
}

/// The session tags (key, value) and transitive keys of one STS request, as sent.
fn tags_sent(s: &sts_faults::Seen) -> (Vec<(String, String)>, Vec<String>) {
    let mut tags = Vec::new();
    for i in 1.. {
        let Some(k) = s.field(&format!("Tags.member.{i}.Key")) else {
            break;
        };
        let v = s.field(&format!("Tags.member.{i}.Value")).unwrap_or("");
        tags.push((k.to_string(), v.to_string()));
    }
    let mut keys = Vec::new();
    for i in 1.. {
        let Some(k) = s.field(&format!("TransitiveTagKeys.member.{i}")) else {
            break;
        };
        keys.push(k.to_string());
    }
    (tags, keys)
}

/// The tags configure-aws-credentials sends, for the run `sandbox` describes.
fn default_tags() -> Vec<(String, String)> {
    [
        ("GitHub", "Actions"),
        ("Repository", "octo-org/octo-repo"),
        ("Workflow", "deploy _prod_"),
        ("Action", "__run_2"),
        ("Actor", "octocat"),
        ("Commit", "0123456789abcdef0123456789abcdef01234567"),
        ("Branch", "refs/heads/main"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// Run oidc-login under a watchdog (`timeout`), so a hang fails the test instead of stalling it.
fn login(sb: &Sandbox, args: &[&str]) -> Run {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "90"])
        .arg(bin("oidc-login"))
        .args(args)
        .env_clear()
        .envs(&sb.env)
        .current_dir(sb.path())
        .stdin(std::process::Stdio::null());
    let r = sb.run_cmd(c);
    assert_ne!(r.code, 124, "oidc-login hung:\n{}", r.all());
    r
}

fn base_args() -> Vec<&'static str> {
    vec!["--role-to-assume", ROLE, "--aws-region", "eu-west-1"]
}

/// The WebIdentityToken of every AssumeRoleWithWebIdentity the proxy saw.
fn tokens_sent(p: &StsFaults) -> Vec<String> {
    p.requests()
        .iter()
        .filter(|s| s.action == WI)
        .map(|s| s.field("WebIdentityToken").unwrap_or("").to_string())
        .collect()
}

fn retry_lines(r: &Run) -> Vec<String> {
    r.stdout
        .lines()
        .filter(|l| l.contains("failed:") && l.contains("retrying in"))
        .map(str::to_string)
        .collect()
}

#[test]
fn oidc_login_exports_masked_credentials_and_leaks_nothing() {
    let moto = Moto::start();
    let oidc = OidcServer::start_with(&["--environment", "prod"]);
    let proxy = StsFaults::start(Some(moto.port), vec![]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(0);

    let env = sb.exported();
    let akid = env["AWS_ACCESS_KEY_ID"].clone();
    let secret = env["AWS_SECRET_ACCESS_KEY"].clone();
    let session = env["AWS_SESSION_TOKEN"].clone();
    assert!(akid.starts_with("ASIA"), "{akid}");
    assert!(!secret.is_empty() && !session.is_empty());
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-1");

    let out = sb.outputs();
    assert_eq!(out["aws-account-id"], "123456789012");
    assert!(
        out["authenticated-arn"].contains(":assumed-role/deploy/GitHubActions-4242-1"),
        "{out:?}"
    );
    assert!(out["aws-expiration"].ends_with('Z'), "{out:?}");
    assert!(
        !out.contains_key("aws-secret-access-key"),
        "credentials are outputs only on request"
    );

    // One token, for the default audience; one web-identity call carrying it; one identity check.
    let reqs = oidc.token_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["audience"], "sts.amazonaws.com");
    let tokens = tokens_sent(&proxy);
    assert_eq!(tokens.len(), 1);
    assert_eq!(proxy.count("GetCallerIdentity"), 1);
    // The stand-in's token is a real RS256 JWT with GitHub's claims, verifiable with its JWKS.
    let jwks = oidc.jwks();
    let key = &jwks["keys"][0];
    let dk = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["sts.amazonaws.com"]);
    v.set_issuer(&["https://token.actions.githubusercontent.com"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&tokens[0], &dk, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "repo:octo-org/octo-repo:environment:prod");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let wi = &proxy.requests()[0];
    assert_eq!(wi.field("RoleSessionName"), Some("GitHubActions-4242-1"));
    assert_eq!(wi.field("DurationSeconds"), Some("3600"));

    // Every credential is masked before any other line is printed.
    let lines: Vec<&str> = r.stdout.lines().collect();
    let first_other = lines
        .iter()
        .position(|l| !l.starts_with("::add-mask::"))
        .unwrap_or(lines.len());
    for s in [&akid, &secret, &session] {
        let i = lines
            .iter()
            .position(|l| *l == format!("::add-mask::{s}"))
            .unwrap_or_else(|| panic!("no mask line for a credential:\n{}", r.stdout));
        assert!(i < first_other, "mask after other output:\n{}", r.stdout);
    }
    // Nothing secret anywhere but GITHUB_ENV; the JWT nowhere at all (raw, base64, URL, JSON forms).
    sb.assert_no_leak(
        &r,
        &[&akid, &secret, &session, &tokens[0], REQUEST_TOKEN],
        &[&akid, &secret, &session],
    );
}

#[test]
fn role_chaining_assumes_the_second_role_with_the_first_roles_credentials() {
    let (_moto, oidc, proxy) = moto_stack();
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend([
        "--chain-to-role",
        ROLE2,
        "--role-external-id",
        "ext-id-42",
        "--role-duration-seconds",
        "1800",
        "--managed-session-policies",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "--inline-session-policy",
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#,
        "--role-session-name",
        "chain-test",
        "--allowed-account-ids",
        "123456789012",
    ]);
    let r = login(&sb, &args);
    r.expect_code(0);
    let reqs = proxy.requests();
    let actions: Vec<&str> = reqs.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(actions, [WI, "AssumeRole", "GetCallerIdentity"]);
    // The first session only lives long enough to chain and carries no session policy.
    assert_eq!(reqs[0].field("DurationSeconds"), Some("900"));
    assert_eq!(reqs[0].field("Policy"), None);
    assert_eq!(reqs[1].field("RoleArn"), Some(ROLE2));
    assert_eq!(reqs[1].field("ExternalId"), Some("ext-id-42"));
    assert_eq!(reqs[1].field("DurationSeconds"), Some("1800"));
    // The AssumeRole hop carries the run's session tags (the web-identity hop takes none).
    assert_eq!(tags_sent(&reqs[1]), (default_tags(), vec![]));
    assert_eq!(tags_sent(&reqs[0]), (vec![], vec![]));
    assert_eq!(
        reqs[1].field("PolicyArns.member.1.arn"),
        Some("arn:aws:iam::aws:policy/ReadOnlyAccess")
    );
    assert!(reqs[1].field("Policy").unwrap().contains("s3:GetObject"));
    let out = sb.outputs();
    assert!(
        out["authenticated-arn"].contains(":assumed-role/second/chain-test"),
        "{out:?}"
    );
    let env = sb.exported();
    // Both sessions' credentials are masked; only the second one's is exported.
    assert!(
        r.stdout.matches("::add-mask::ASIA").count() >= 2,
        "{}",
        r.stdout
    );
    sb.assert_no_leak(
        &r,
        &[
            &env["AWS_ACCESS_KEY_ID"],
            &env["AWS_SECRET_ACCESS_KEY"],
            &env["AWS_SESSION_TOKEN"],
        ],
        &[
            &env["AWS_ACCESS_KEY_ID"],
            &env["AWS_SECRET_ACCESS_KEY"],
            &env["AWS_SESSION_TOKEN"],
        ],
    );
}

// F1 + F2: IDPCommunicationError, throttling and a 5xx are retried, each on one log line, each
// attempt with a token of its own.
#[test]
fn f1_f2_transient_sts_errors_are_retried_with_a_fresh_token_per_attempt() {
    let moto = Moto::start();
    // The token endpoint itself fails once first (HTTP 500): retried like any transient error.
    let oidc = OidcServer::start_with(&["--fail-first", "1"]);
    let proxy = StsFaults::start(
        Some(moto.port),
        vec![
            sts_faults::idp_communication_error(),
            sts_faults::throttling(),
            sts_faults::server_error(503),
            Fault::Forward,
        ],
    );
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(0);
    assert!(sb.exported()["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));
    let tokens = tokens_sent(&proxy);
    assert_eq!(tokens.len(), 4);
    assert_eq!(
        oidc.count(),
        5,
        "one token request per STS attempt (+1 failed)"
    );
    let mut uniq = tokens.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4, "a token was resent");
    let retries = retry_lines(&r);
    assert_eq!(retries.len(), 4, "{}", r.stdout);
    assert!(
        retries[0]
            .contains("OIDC token: attempt 1/8 failed: OIDC token endpoint answered HTTP 500"),
        "{retries:?}"
    );
    assert!(
        retries[1].contains("attempt 2/8 failed: IDPCommunicationError"),
        "{retries:?}"
    );
    assert!(retries[2].contains("Throttling"), "{retries:?}");
    assert!(retries[3].contains("HTTP 503"), "{retries:?}");
    let all: Vec<&str> = tokens.iter().map(String::as_str).collect();
    sb.assert_no_leak(&r, &all, &[]);
}

// F3: an expired or invalid token is never resent: a new one is fetched before the retry.
#[test]
fn f3_expired_token_is_replaced_by_a_new_one_before_retrying() {
    let moto = Moto::start();
    let oidc = OidcServer::start_with(&["--ttl", "-60"]);
    let proxy = StsFaults::start(
        Some(moto.port),
        vec![
            sts_faults::expired_token(),
            sts_faults::invalid_identity_token(),
            Fault::Forward,
        ],
    );
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(0);
    let tokens = tokens_sent(&proxy);
    assert_eq!(tokens.len(), 3);
    assert_eq!(oidc.count(), 3);
    assert!(tokens[0] != tokens[1] && tokens[1] != tokens[2] && tokens[0] != tokens[2]);
    assert!(r.stdout.contains("ExpiredTokenException"), "{}", r.stdout);
    assert!(
        r.stdout.contains("a fresh OIDC token will be used"),
        "{}",
        r.stdout
    );
}

// F4: "Not authorized" fails at once and explains the claims against the role, with both `sub` forms.
#[test]
fn f4_not_authorized_is_not_retried_and_is_explained_from_the_claims() {
    let oidc = OidcServer::start_with(&["--environment", "prod", "--ref", "refs/heads/prod"]);
    let proxy = StsFaults::start(None, vec![sts_faults::access_denied()]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(1);
    assert_eq!(proxy.count(WI), 1, "AccessDenied must not be retried");
    assert_eq!(proxy.requests().len(), 1);
    assert_eq!(oidc.count(), 1);
    let all = r.all();
    for want in [
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        ROLE,
        "repo:octo-org/octo-repo:environment:prod",
        "repo:octo-org@987654/octo-repo@123456789:environment:prod",
        "token.actions.githubusercontent.com:aud",
        "sts.amazonaws.com",
        "refs/heads/prod",
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
        "job_workflow_ref",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(retry_lines(&r).is_empty());
    assert!(
        sb.exported().is_empty(),
        "nothing may be exported on failure"
    );
    assert!(sb.outputs().is_empty());
    let tokens = tokens_sent(&proxy);
    sb.assert_no_leak(&r, &[&tokens[0]], &[]);
}

// F4 without an environment: the explanation points at the missing `environment:`; a branch name
// with a workflow command in it stays inert.
#[test]
fn f4_explanation_without_environment_keeps_untrusted_claims_inert() {
    let oidc = OidcServer::start_with(&["--ref", "refs/heads/x\n::error::pwned"]);
    let proxy = StsFaults::start(None, vec![sts_faults::access_denied()]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(1);
    assert!(r.stdout.contains("has no `environment:`"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("repo:octo-org/octo-repo:ref:refs/heads/x"),
        "{}",
        r.stdout
    );
    for l in r.all().lines() {
        assert!(!l.trim_start().starts_with("::error::pwned"), "{l}");
    }
}

// F5: fresh credentials briefly rejected by GetCallerIdentity are retried a few times.
#[test]
fn f5_identity_check_retries_while_fresh_credentials_propagate() {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(
        Some(moto.port),
        vec![
            Fault::Forward,
            sts_faults::invalid_client_token_id(),
            sts_faults::invalid_client_token_id(),
            Fault::Forward,
        ],
    );
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(0);
    assert_eq!(proxy.count(WI), 1);
    assert_eq!(proxy.count("GetCallerIdentity"), 3);
    assert_eq!(oidc.count(), 1);
    assert_eq!(sb.outputs()["aws-account-id"], "123456789012");
}

// The overall deadline holds against an endpoint that accepts and never answers.
#[test]
fn blackholed_sts_endpoint_ends_at_the_overall_deadline() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![Fault::Blackhole; 20]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend(["--timeout", "3"]);
    let r = login(&sb, &args);
    r.expect_code(3);
    assert!(r.all().contains("overall timeout"), "{}", r.all());
    assert!(proxy.count(WI) >= 1);
    assert!(sb.exported().is_empty());
}

#[test]
fn retries_stop_at_retry_max_attempts() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![sts_faults::throttling(); 10]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend(["--retry-max-attempts", "2"]);
    let r = login(&sb, &args);
    r.expect_code(3);
    assert_eq!(proxy.count(WI), 2);
    assert_eq!(oidc.count(), 2);
    assert!(
        r.all().contains("giving up after 2 attempt(s)"),
        "{}",
        r.all()
    );
}

#[test]
fn account_outside_allowed_account_ids_is_refused_after_assuming_and_nothing_is_exported() {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    // GetCallerIdentity answers with another account than the role's.
    let body = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
        <Arn>arn:aws:sts::999999999999:assumed-role/deploy/x</Arn><UserId>AROAX:x</UserId><Account>999999999999</Account>\
        </GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>";
    let proxy = StsFaults::start(
        Some(moto.port),
        vec![
            Fault::Forward,
            Fault::Respond {
                status: 200,
                body: body.into(),
            },
        ],
    );
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend(["--allowed-account-ids", "123456789012"]);
    let r = login(&sb, &args);
    r.expect_code(1);
    assert!(
        r.all().contains("999999999999, which is not allowed"),
        "{}",
        r.all()
    );
    assert!(sb.exported().is_empty(), "{:?}", sb.exported());
    assert!(sb.outputs().is_empty());
}

#[test]
fn credentials_become_outputs_only_when_asked_and_account_id_can_be_masked() {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let sb = sandbox(&oidc, &moto.endpoint());
    let mut args = base_args();
    args.extend(["--output-credentials", "--mask-aws-account-id"]);
    let mut sb2 = sb;
    sb2.set("GITOPS_OUTPUT_ENV_CREDENTIALS", "false");
    let r = login(&sb2, &args);
    r.expect_code(0);
    let out = sb2.outputs();
    assert!(out["aws-access-key-id"].starts_with("ASIA"));
    assert!(!out["aws-secret-access-key"].is_empty());
    assert!(!out["aws-session-token"].is_empty());
    assert_eq!(out["aws-account-id"], "123456789012");
    assert!(
        r.stdout.contains("::add-mask::123456789012"),
        "{}",
        r.stdout
    );
    let env = sb2.exported();
    assert!(
        !env.contains_key("AWS_ACCESS_KEY_ID"),
        "output-env-credentials=false"
    );
    // As configure-aws-credentials: without env credentials the region is not exported either
    // (it would override the region of a profile later steps use).
    assert!(!env.contains_key("AWS_REGION"), "{env:?}");
    // The account id appears in no log line except its mask.
    for l in r.stdout.lines().filter(|l| !l.starts_with("::add-mask::")) {
        assert!(!l.contains("123456789012"), "{l}");
    }
}

#[test]
fn web_identity_token_file_works_outside_actions() {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let jwt = oidc.fetch_token("sts.amazonaws.com");
    let mut sb = Sandbox::plain();
    let file = sb.path().join("token");
    std::fs::write(&file, format!("{jwt}\n")).unwrap();
    sb.set("AWS_ENDPOINT_URL", moto.endpoint());
    let mut args = base_args();
    let f = file.display().to_string();
    args.extend(["--web-identity-token-file", &f]);
    let r = login(&sb, &args);
    r.expect_code(0);
    assert!(
        r.stdout.contains("aws-account-id: 123456789012"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("authenticated-arn: arn:aws:sts::123456789012:assumed-role/deploy/oidc-login"));
    assert_eq!(oidc.count(), 1, "the file is used, not the endpoint");
    assert!(!r.all().contains(&jwt));
}

#[test]
fn missing_token_endpoint_says_the_job_needs_id_token_write() {
    let proxy = StsFaults::start(None, vec![]);
    let mut sb = Sandbox::actions();
    sb.set("AWS_ENDPOINT_URL_STS", proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(2);
    assert!(r.all().contains("id-token: write"), "{}", r.all());
    assert!(proxy.requests().is_empty());
}

/// (field named in the message, extra env, args replacing/adding to the base)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[test]
fn refused_request_token_fails_without_calling_sts_and_names_the_permission() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![]);
    let mut sb = sandbox(&oidc, &proxy.endpoint());
    sb.set("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong-request-token");
    let r = login(&sb, &base_args());
    r.expect_code(3);
    assert!(
        r.all().contains("HTTP 401") && r.all().contains("id-token: write"),
        "{}",
        r.all()
    );
    assert_eq!(oidc.count(), 1, "a refused request token is not retried");
    assert!(proxy.requests().is_empty());
    sb.assert_no_leak(&r, &["wrong-request-token"], &[]);
}

// Every bad-input vector of hardening.md for oidc-login: exit 2, the message names the input,
// the offending value is shown inert, and neither the token endpoint nor STS sees a request.
#[test]
fn every_bad_input_exits_2_names_the_input_and_sends_nothing() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![]);
    let long65 = "a".repeat(65);
    let aud256 = "a".repeat(256);
    let arn_long = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(65));
    // Plain http to a name that reaches this machine but is not loopback (item 5 of #21): the
    // stand-ins behind these URLs must see nothing.
    let sts_any = format!("http://0.0.0.0:{}", proxy.port);
    let sts_mapped = format!("http://[::ffff:127.0.0.1]:{}", proxy.port);
    let sts_userinfo = format!("http://AKIAX:SECRETinURL@127.0.0.1:{}", proxy.port);
    let oidc_any = oidc.request_url().replace("127.0.0.1", "0.0.0.0");
    let oidc_userinfo = oidc
        .request_url()
        .replace("http://", "http://u:SECRETinURL@");
    // (field named in the message, extra env, args replacing/adding to the base)
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("--role-to-assume", vec![], vec!["--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::12345678901:role/deploy", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam:us-east-1:123456789012:role/deploy", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::123456789012:user/deploy", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:sts::123456789012:assumed-role/deploy/s", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::123456789012:assumed-role/deploy", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::123456789012:role/", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::123456789012:role/deploy ", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::123456789012:role/deploy\n::error::pwned", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", &arn_long, "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws-cn:iam::123456789012:role/deploy", "--aws-region", "eu-west-1"]),
        ("role-to-assume", vec![], vec!["--role-to-assume", "arn:aws:iam::123456789012:role/deploy", "--aws-region", "eu-west-1", "--allowed-account-ids", "210987654321"]),
        ("--aws-region", vec![], vec!["--role-to-assume", ROLE]),
        ("aws-region", vec![], vec!["--role-to-assume", ROLE, "--aws-region", "US-EAST-1"]),
        ("aws-region", vec![], vec!["--role-to-assume", ROLE, "--aws-region", "us-east-1a"]),
        ("aws-region", vec![], vec!["--role-to-assume", ROLE, "--aws-region", "us-east-1 "]),
        ("aws-region", vec![], vec!["--role-to-assume", ROLE, "--aws-region", ""]),
        ("role-session-name", vec![], vec!["--role-session-name", "a"]),
        ("role-session-name", vec![], vec!["--role-session-name", &long65]),
        ("role-session-name", vec![], vec!["--role-session-name", "a b"]),
        ("role-session-name", vec![], vec!["--role-session-name", "a/b"]),
        ("role-duration-seconds", vec![], vec!["--role-duration-seconds", "899"]),
        ("role-duration-seconds", vec![], vec!["--role-duration-seconds", "43201"]),
        ("role-duration-seconds", vec![], vec!["--role-duration-seconds", "1h"]),
        ("role-duration-seconds", vec![], vec!["--role-duration-seconds", "3601", "--chain-to-role", ROLE2]),
        ("audience", vec![], vec!["--audience", ""]),
        ("audience", vec![], vec!["--audience", " sts.amazonaws.com"]),
        ("audience", vec![], vec!["--audience", "a,b"]),
        ("audience", vec![], vec!["--audience", &aud256]),
        ("chain-to-role", vec![], vec!["--chain-to-role", "arn:aws:iam::123456789012:user/x"]),
        ("role-chaining", vec![], vec!["--role-chaining", ROLE2]),
        ("role-chaining", vec![], vec!["--role-chaining", "yes"]),
        // role-chaining: true with no credentials in the environment, or with a second hop.
        ("role-chaining", vec![], vec!["--role-chaining", "true"]),
        ("chain-to-role", vec![("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE1"), ("AWS_SECRET_ACCESS_KEY", "s3cretEXAMPLE")], vec!["--role-chaining", "true", "--chain-to-role", ROLE2]),
        ("AWS_PROFILE", vec![("AWS_PROFILE", "nosuch")], vec!["--role-chaining", "true"]),
        ("unset-current-credentials", vec![("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE1"), ("AWS_SECRET_ACCESS_KEY", "s3cretEXAMPLE")], vec!["--role-chaining", "true", "--unset-current-credentials"]),
        ("unset-current-credentials", vec![], vec!["--use-existing-credentials", "--unset-current-credentials"]),
        ("role-external-id", vec![], vec!["--role-external-id", "abc"]),
        ("role-external-id", vec![], vec!["--chain-to-role", ROLE2, "--role-external-id", "a b"]),
        // Session tags need an AssumeRole hop; each is validated before any request.
        ("custom-tags", vec![], vec!["--custom-tags", r#"{"Team": "payments"}"#]),
        ("transitive-tag-keys", vec![], vec!["--transitive-tag-keys", "Team"]),
        ("custom-tags", vec![], vec!["--chain-to-role", ROLE2, "--custom-tags", "[1]"]),
        ("custom-tags", vec![], vec!["--chain-to-role", ROLE2, "--custom-tags", r#"{"GitHub": "x"}"#]),
        ("transitive-tag-keys", vec![], vec!["--chain-to-role", ROLE2, "--transitive-tag-keys", "Team"]),
        ("aws-profile", vec![], vec!["--aws-profile", "a b"]),
        ("aws-profile", vec![], vec!["--aws-profile", "dev"]), // no RUNNER_TEMP
        ("aws-profile", vec![("RUNNER_TEMP", "/tmp/rt")], vec!["--aws-profile", "dev"]), // AWS_CONFIG_FILE outside it
        ("http-proxy", vec![], vec!["--http-proxy", "socks5://u:SECRETinURL@127.0.0.1:1080"]),
        ("http-proxy", vec![], vec!["--http-proxy", "http://u:SECRETinURL@127.0.0.1:3128/x"]),
        ("sts-endpoint", vec![], vec!["--sts-endpoint", "http://sts.eu-west-1.amazonaws.com"]),
        ("sts-endpoint", vec![], vec!["--sts-endpoint", &sts_userinfo]),
        ("action-timeout-s", vec![], vec!["--action-timeout-s", "3601"]),
        ("action-timeout-s", vec![], vec!["--action-timeout-s", "5s"]),
        ("action-timeout-s", vec![], vec!["--action-timeout-s", "30", "--timeout", "60"]),
        ("inline-session-policy", vec![], vec!["--inline-session-policy", "[1]"]),
        ("inline-session-policy", vec![], vec!["--inline-session-policy", "{"]),
        ("managed-session-policies", vec![], vec!["--managed-session-policies", "arn:aws:iam::aws:role/x"]),
        ("allowed-account-ids", vec![], vec!["--allowed-account-ids", "12345678901"]),
        ("retry-max-attempts", vec![], vec!["--retry-max-attempts", "0"]),
        ("retry-max-attempts", vec![], vec!["--retry-max-attempts", "51"]),
        ("timeout", vec![], vec!["--timeout", "0"]),
        ("timeout", vec![], vec!["--timeout", "5m"]),
        ("environment", vec![], vec!["--environment", "Prod"]),
        ("environment", vec![], vec!["--environment", "prod "]),
        ("environment", vec![], vec!["--environment", "../prod"]),
        ("web-identity-token-file", vec![], vec!["--web-identity-token-file", "/nonexistent/token"]),
        ("AWS_ENDPOINT_URL_STS", vec![("AWS_ENDPOINT_URL_STS", "not a url")], vec![]),
        ("AWS_ENDPOINT_URL_STS", vec![("AWS_ENDPOINT_URL_STS", &sts_any)], vec![]),
        ("AWS_ENDPOINT_URL_STS", vec![("AWS_ENDPOINT_URL_STS", &sts_mapped)], vec![]),
        ("AWS_ENDPOINT_URL_STS", vec![("AWS_ENDPOINT_URL_STS", &sts_userinfo)], vec![]),
        ("AWS_ENDPOINT_URL_STS", vec![("AWS_ENDPOINT_URL_STS", "http://sts.eu-west-1.amazonaws.com")], vec![]),
        ("AWS_ENDPOINT_URL", vec![("AWS_ENDPOINT_URL_STS", ""), ("AWS_ENDPOINT_URL", &sts_any)], vec![]),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", vec![("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc_any)], vec![]),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", vec![("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc_userinfo)], vec![]),
        ("role-duration-seconds", vec![("GITOPS_ROLE_DURATION_SECONDS", "100")], vec![]),
        ("audience", vec![("GITOPS_AUDIENCE", "a b")], vec![]),
    ];
    for (field, env, extra) in &cases {
        let mut sb = sandbox(&oidc, &proxy.endpoint());
        for (k, v) in env {
            sb.set(k, v);
        }
        let mut args: Vec<&str> = Vec::new();
        let replaces_base = extra
            .first()
            .is_some_and(|a| *a == "--role-to-assume" || *a == "--aws-region");
        if !replaces_base {
            args.extend(base_args());
        }
        args.extend(extra.iter().copied());
        let r = login(&sb, &args);
        assert_eq!(r.code, 2, "{field} {extra:?}: expected exit 2\n{}", r.all());
        let named = if field.starts_with("--") {
            r.all().contains(field) // clap's "required arguments were not provided"
        } else {
            r.all().contains(&format!("`{field}`"))
        };
        assert!(
            named,
            "{field} {extra:?}: message does not name the input:\n{}",
            r.all()
        );
        for l in r.all().lines() {
            assert!(
                !l.trim_start().starts_with("::error::pwned"),
                "{field}: {l}"
            );
        }
        assert!(!r.all().contains("SECRETinURL"), "{field}: {}", r.all());
        assert!(
            sb.exported().is_empty() && sb.outputs().is_empty(),
            "{field}: wrote files"
        );
    }
    assert_eq!(oidc.count(), 0, "a bad input reached the token endpoint");
    assert!(proxy.requests().is_empty(), "a bad input reached STS");
}

#[test]
fn environment_model_pins_account_and_region() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let cfg = sb.path().join("gitops.yml");
    std::fs::write(
        &cfg,
        "environments:\n  - name: dev\n    branch: dev\n  - name: prod\n    branch: prod\n    production: true\n    aws-account-id: \"210987654321\"\n    aws-region: eu-central-1\n",
    )
    .unwrap();
    let c = cfg.display().to_string();
    let r = login(
        &sb,
        &[
            "--role-to-assume",
            ROLE,
            "--aws-region",
            "eu-central-1",
            "--environment",
            "prod",
            "--config",
            &c,
        ],
    );
    r.expect_code(2);
    assert!(
        r.all().contains("`role-to-assume`") && r.all().contains("210987654321"),
        "{}",
        r.all()
    );
    let r = login(
        &sb,
        &[
            "--role-to-assume",
            "arn:aws:iam::210987654321:role/deploy",
            "--aws-region",
            "eu-west-1",
            "--environment",
            "prod",
            "--config",
            &c,
        ],
    );
    assert_refused_unsent(&r, &oidc, &proxy, &["`aws-region`", "eu-central-1"]);
}

/// Run workflow `wf` under act in `repo`, wired to the token endpoint and moto's STS (also as
/// `STS_ENDPOINT` for the AWS CLI); it must succeed. Returns the log.
fn act_login_run(sb: &Sandbox, steps: &str, oidc: &OidcServer, moto: &Moto) -> String {
    use crate::support::act;
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    let wf = format!(
        "on: push\npermissions:\n  id-token: write\njobs:\n  login:\n    runs-on: ubuntu-latest\n    steps:\n{steps}"
    );
    std::fs::write(repo.join(".github/workflows/login.yml"), &wf).unwrap();
    act::init_repo(&repo);
    let url = format!("ACTIONS_ID_TOKEN_REQUEST_URL={}", oidc.request_url());
    let tok = format!("ACTIONS_ID_TOKEN_REQUEST_TOKEN={REQUEST_TOKEN}");
    let sts = format!("AWS_ENDPOINT_URL_STS={}", moto.endpoint());
    let sts2 = format!("STS_ENDPOINT={}", moto.endpoint());
    let args = ["--env", &url, "--env", &tok, "--env", &sts, "--env", &sts2];
    let run = act::run(sb, &repo, "push", &args);
    let log = run.all();
    assert_eq!(run.code, 0, "act failed\n{log}\n--- workflow\n{wf}");
    log
}

// Under act (host mode): the binary runs as one step and the NEXT step finds the credentials in
// its environment (the GITHUB_ENV hand-over), masked in the log, and usable by the AWS CLI.
#[test]
fn act_run_hands_credentials_to_the_next_step_through_github_env() {
    let moto = Moto::start();
    let oidc = OidcServer::start_with(&["--environment", "dev"]);
    let sb = Sandbox::plain();
    let aws_cli = crate::support::tool("aws");
    let wf = format!(
        r#"      - id: login
        env:
          GITOPS_ROLE_TO_ASSUME: {ROLE}
          GITOPS_AWS_REGION: eu-west-1
          GITOPS_ROLE_SESSION_NAME: act-handover
          GITOPS_AUDIENCE: ""
        run: '{bin}'
      - env:
          ACCOUNT: ${{{{ steps.login.outputs.aws-account-id }}}}
        run: |
          echo "NEXT account=$ACCOUNT region=$AWS_REGION default=$AWS_DEFAULT_REGION"
          echo "NEXT key-prefix=${{AWS_ACCESS_KEY_ID:0:4}} key=$AWS_ACCESS_KEY_ID"
          test -n "$AWS_SECRET_ACCESS_KEY" && test -n "$AWS_SESSION_TOKEN" && echo "NEXT secret+token present"
          '{aws}' sts get-caller-identity --endpoint-url "$STS_ENDPOINT" --query Arn --output text | sed 's/^/NEXT identity=/'
"#,
        bin = bin("oidc-login").display(),
        aws = aws_cli.display(),
    );
    let log = act_login_run(&sb, &wf, &oidc, &moto);
    for want in [
        "NEXT account=123456789012 region=eu-west-1 default=eu-west-1",
        "NEXT key-prefix=ASIA key=***",
        "NEXT secret+token present",
        "NEXT identity=arn:aws:sts::123456789012:assumed-role/deploy/act-handover",
    ] {
        assert!(log.contains(want), "missing {want:?} in act log\n{log}");
    }
    assert_eq!(oidc.count(), 1);
    assert!(!log.contains(REQUEST_TOKEN), "request token leaked");
    let akid = regex_lite::Regex::new(r"ASIA[A-Z0-9]{16}").unwrap();
    assert!(
        !akid.is_match(&log),
        "an access key id reached the act log\n{log}"
    );
    assert!(
        !log.contains("eyJ"),
        "something JWT-like reached the act log\n{log}"
    );
}

// Item 3 of #21: a remote that echoes what it was sent gets its error text cut at a display
// limit; the cut falls inside a secret. Neither the session token (echoed by the identity check)
// nor the OIDC token (echoed by the web-identity call) may show, whole or in part.
#[test]
fn an_endpoint_echoing_secrets_past_the_display_cut_shows_no_part_of_them() {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    // The session token: the web-identity call goes through, the identity check echoes.
    let proxy = StsFaults::start(
        Some(moto.port),
        vec![Fault::Forward, Fault::Echo { pad: 420 }],
    );
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(3);
    assert!(r.all().contains("ValidationError"), "{}", r.all());
    assert!(r.all().contains("X-Amz-Security-Token: ***"), "{}", r.all());
    let session = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .next_back() // the credentials are masked last, the session token after the keys
        .expect("masks")
        .to_string();
    assert!(session.len() > 200, "{session}");
    sb.assert_no_piece_leaks(&r, &[&session, REQUEST_TOKEN], 12);

    // The OIDC token (a JWT), cut in its claims by the same limit.
    let proxy = StsFaults::start(None, vec![Fault::Echo { pad: 300 }]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let r = login(&sb, &base_args());
    r.expect_code(3);
    assert!(r.all().contains("WebIdentityToken=***"), "{}", r.all());
    let jwt = tokens_sent(&proxy).pop().expect("a web-identity call");
    assert!(jwt.len() > 400, "{jwt}");
    sb.assert_no_piece_leaks(&r, &[&jwt, REQUEST_TOKEN], 12);
}

// ----- configure-aws-credentials v6 inputs (#15) ---------------------------------------------

/// The names in one section (`[inputs]`, `[outputs]`) of the committed peer fixture.
fn peer_names(section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(
        crate::support::root().join("tests/fixtures/peer/configure-aws-credentials-v6.txt"),
    )
    .unwrap();
    let mut cur = String::new();
    let mut out = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with('[') {
            cur = l.to_string();
        } else if cur == section {
            out.push(l.to_string());
        }
    }
    out
}

// A team migrating changes only the `uses:` line: every input and output of the peer's v6 is one
// of this action's (accepted with the same meaning, or refused with the reason, as the tests
// below show per input).
#[test]
fn action_inputs_are_a_superset_of_configure_aws_credentials_v6() {
    let text =
        std::fs::read_to_string(crate::support::root().join("actions/oidc-login/action.yml"))
            .unwrap();
    let action: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    for (section, key) in [("[inputs]", "inputs"), ("[outputs]", "outputs")] {
        let names = peer_names(section);
        assert!(names.len() >= 6, "{section}: fixture unreadable");
        let ours = action[key].as_mapping().unwrap();
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !ours.contains_key(n.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{key} the peer has and we lack: {missing:?}"
        );
    }
    assert_eq!(peer_names("[inputs]").len(), 32);
}

/// A sandbox whose job-private directory is `RUNNER_TEMP` (and no AWS file variables).
fn profile_sandbox(oidc: &OidcServer, sts: &str) -> Sandbox {
    let mut sb = sandbox(oidc, sts);
    let rt = sb.path().join("runner-temp");
    std::fs::create_dir_all(&rt).unwrap();
    sb.set("RUNNER_TEMP", rt.display().to_string())
        .unset("AWS_CONFIG_FILE")
        .unset("AWS_SHARED_CREDENTIALS_FILE");
    sb
}

/// `--role-to-assume <role> --aws-region <region> --aws-profile <profile>`.
fn profile_args<'a>(role: &'a str, region: &'a str, profile: &'a str) -> Vec<&'a str> {
    vec![
        "--role-to-assume",
        role,
        "--aws-region",
        region,
        "--aws-profile",
        profile,
    ]
}

/// `role-chaining: true` to ROLE2: chain from the credentials an earlier step left.
fn chain_from_existing_args() -> Vec<&'static str> {
    vec![
        "--role-to-assume",
        ROLE2,
        "--aws-region",
        "eu-west-1",
        "--role-chaining",
        "true",
    ]
}

/// What the runner does between steps: apply the step's GITHUB_ENV, then start a fresh one.
fn next_step(sb: &mut Sandbox) {
    for (k, v) in sb.exported() {
        sb.set(&k, v);
    }
    std::fs::write(&sb.env["GITHUB_ENV"], "").unwrap();
    std::fs::write(&sb.env["GITHUB_OUTPUT"], "").unwrap();
}

/// `aws sts get-caller-identity --profile <p>` as a later step would run it.
fn aws_cli_identity(sb: &Sandbox, profile: &str, sts: &str) -> serde_json::Value {
    let out = Command::new(crate::support::tool("aws"))
        .args([
            "sts",
            "get-caller-identity",
            "--output",
            "json",
            "--profile",
            profile,
        ])
        .env_clear()
        .env("PATH", &sb.env["PATH"])
        .env("HOME", &sb.env["HOME"])
        .env("AWS_CONFIG_FILE", &sb.env["AWS_CONFIG_FILE"])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            &sb.env["AWS_SHARED_CREDENTIALS_FILE"],
        )
        .env("AWS_ENDPOINT_URL_STS", sts)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws cli --profile {profile}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

// `aws-profile`: two calls in one job hold credentials for two accounts at once, as named
// profiles in job-private files (0600) under RUNNER_TEMP; the real AWS CLI uses each.
#[test]
fn aws_profiles_hold_two_accounts_in_one_job_for_the_aws_cli() {
    use std::os::unix::fs::PermissionsExt;
    let (moto, oidc, proxy) = moto_stack();
    let mut sb = profile_sandbox(&oidc, &proxy.endpoint());
    let rt = sb.env["RUNNER_TEMP"].clone();
    let r1 = login(&sb, &profile_args(ROLE, "eu-west-1", "dev"));
    r1.expect_code(0);
    let env = sb.exported();
    assert_eq!(env["AWS_CONFIG_FILE"], format!("{rt}/gitops-aws/config"));
    assert_eq!(
        env["AWS_SHARED_CREDENTIALS_FILE"],
        format!("{rt}/gitops-aws/credentials")
    );
    // As the peer: with a profile, nothing else is exported unless output-env-credentials says so.
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
    ] {
        assert!(!env.contains_key(k), "{k} exported: {env:?}");
    }
    assert_eq!(sb.outputs()["aws-account-id"], "123456789012");
    next_step(&mut sb);
    let prod = "arn:aws:iam::210987654321:role/deploy-prod";
    let r2 = login(&sb, &profile_args(prod, "us-east-1", "prod"));
    r2.expect_code(0);
    next_step(&mut sb);

    let creds_file = format!("{rt}/gitops-aws/credentials");
    let text = std::fs::read_to_string(&creds_file).unwrap();
    assert!(
        text.contains("[dev]\n") && text.contains("[prod]\n"),
        "{text}"
    );
    let config = std::fs::read_to_string(format!("{rt}/gitops-aws/config")).unwrap();
    assert!(
        config.contains("[profile dev]\nregion = eu-west-1"),
        "{config}"
    );
    assert!(
        config.contains("[profile prod]\nregion = us-east-1"),
        "{config}"
    );
    for f in ["credentials", "config"] {
        let m = std::fs::metadata(format!("{rt}/gitops-aws/{f}")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    assert!(
        !sb.path().join("home/.aws").exists(),
        "wrote the runner user's ~/.aws"
    );

    let dev = aws_cli_identity(&sb, "dev", &moto.endpoint());
    assert_eq!(dev["Account"], "123456789012", "{dev}");
    assert!(
        dev["Arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deploy/"),
        "{dev}"
    );
    let prod_id = aws_cli_identity(&sb, "prod", &moto.endpoint());
    assert_eq!(prod_id["Account"], "210987654321", "{prod_id}");
    assert!(prod_id["Arn"]
        .as_str()
        .unwrap()
        .contains(":assumed-role/deploy-prod/"));

    // The same profile again is refused before any request, unless overwrite-aws-profile.
    let before = (oidc.count(), proxy.requests().len());
    let r3 = login(&sb, &profile_args(ROLE, "eu-west-1", "dev"));
    r3.expect_code(2);
    assert!(r3.all().contains("`aws-profile`") && r3.all().contains("overwrite-aws-profile"));
    assert_eq!(
        (oidc.count(), proxy.requests().len()),
        before,
        "refusal made requests"
    );
    assert_eq!(
        std::fs::read_to_string(&creds_file).unwrap(),
        text,
        "refusal changed the file"
    );
    let mut args = profile_args(ROLE, "eu-west-1", "dev");
    args.extend([
        "--overwrite-aws-profile",
        "--output-env-credentials",
        "true",
    ]);
    let r4 = login(&sb, &args);
    r4.expect_code(0);
    let after = std::fs::read_to_string(&creds_file).unwrap();
    let section = |t: &str, name: &str| {
        t.split("\n\n")
            .find(|s| s.trim_start().starts_with(&format!("[{name}]")))
            .unwrap()
            .trim_end()
            .to_string()
    };
    assert_ne!(
        section(&after, "dev"),
        section(&text, "dev"),
        "dev not replaced"
    );
    assert_eq!(section(&after, "prod"), section(&text, "prod"), "prod lost");
    // output-env-credentials: true with a profile also exports AWS_PROFILE and the keys.
    let env = sb.exported();
    assert_eq!(env["AWS_PROFILE"], "dev");
    assert!(env["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));

    // No key of any profile is printed anywhere.
    let keys: Vec<String> = after
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(_, v)| v.to_string()))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for r in [&r1, &r2, &r3] {
        for k in &keys {
            for l in r.all().lines().filter(|l| !l.starts_with("::add-mask::")) {
                assert!(!l.contains(k), "a profile key was printed: {l}");
            }
        }
    }
}

// `role-chaining: true` is the peer's meaning: the role is assumed with the credentials an
// earlier step left (here the profile it wrote, named by AWS_PROFILE), not with an OIDC token;
// that AssumeRole hop carries the session tags.
#[test]
fn role_chaining_true_chains_from_the_profile_an_earlier_step_left_with_session_tags() {
    let (_moto, oidc, proxy) = moto_stack();
    let mut sb = profile_sandbox(&oidc, &proxy.endpoint());
    login(&sb, &profile_args(ROLE, "eu-west-1", "first")).expect_code(0);
    next_step(&mut sb);
    let first_file = std::fs::read_to_string(&sb.env["AWS_SHARED_CREDENTIALS_FILE"]).unwrap();
    let value_of = |key: &str| {
        first_file
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")).map(str::to_string))
            .unwrap()
    };
    let (first_id, first_key) = (
        value_of("aws_access_key_id"),
        value_of("aws_secret_access_key"),
    );
    sb.set("AWS_PROFILE", "first");
    let tokens_before = oidc.count();
    let seen_before = proxy.requests().len();
    let mut args = profile_args(ROLE2, "eu-west-1", "second");
    args.extend(["--role-chaining", "true"]);
    args.extend([
        "--custom-tags",
        r#"{"Team": "payments"}"#,
        "--transitive-tag-keys",
        "Repository\nTeam",
        "--role-external-id",
        "ext-7",
    ]);
    let r = login(&sb, &args);
    r.expect_code(0);
    assert_eq!(
        oidc.count(),
        tokens_before,
        "role-chaining: true asked for an OIDC token"
    );
    let reqs: Vec<_> = proxy.requests().into_iter().skip(seen_before).collect();
    let actions: Vec<&str> = reqs.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(actions, ["AssumeRole", "GetCallerIdentity"]);
    assert_eq!(reqs[0].field("RoleArn"), Some(ROLE2));
    assert_eq!(reqs[0].field("ExternalId"), Some("ext-7"));
    // Signed with the first profile's key: the credentials the earlier step left.
    assert_eq!(reqs[0].signed_by.as_deref(), Some(first_id.as_str()));
    let mut want = default_tags();
    want.push(("Team".into(), "payments".into()));
    assert_eq!(
        tags_sent(&reqs[0]),
        (want, vec!["Repository".into(), "Team".into()])
    );
    assert!(sb.outputs()["authenticated-arn"].contains(":assumed-role/second/"));
    // The source profile's secret was masked before anything else and never printed.
    assert!(r
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .starts_with("::add-mask::"));
    assert!(r.stdout.contains(&format!("::add-mask::{first_key}")));
    sb.assert_no_leak(&r, &[&first_key], &[]);

    // role-skip-session-tagging: the hop carries only what custom-tags adds (here nothing).
    next_step(&mut sb);
    let seen_before = proxy.requests().len();
    let mut args = chain_from_existing_args();
    args.push("--role-skip-session-tagging");
    login(&sb, &args).expect_code(0);
    let hop = &proxy.requests()[seen_before];
    assert_eq!(hop.action, "AssumeRole");
    assert_eq!(tags_sent(hop), (vec![], vec![]));
}

// The old one-step form (`role-chaining: <ARN>`) fails with the migration, before any request.
#[test]
fn role_chaining_with_an_arn_names_chain_to_role() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![]);
    let mut sb = sandbox(&oidc, &proxy.endpoint());
    sb.set("GITOPS_ROLE_CHAINING", ROLE2);
    let r = login(&sb, &base_args());
    let needles = ["`role-chaining`", "chain-to-role: <ARN>", "sts:TagSession"];
    assert_refused_unsent(&r, &oidc, &proxy, &needles);
}

// Static keys and force-skip-oidc are inputs only to be refused: exit 2, the keyless design and
// the migration explained, the value masked first and found on no channel, nothing requested.
#[test]
fn static_keys_and_force_skip_oidc_are_refused_masked_and_never_sent() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![]);
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY";
    for var in [
        "GITOPS_AWS_ACCESS_KEY_ID",
        "GITOPS_AWS_SECRET_ACCESS_KEY",
        "GITOPS_AWS_SESSION_TOKEN",
    ] {
        let mut sb = sandbox(&oidc, &proxy.endpoint());
        sb.set(var, secret);
        let r = login(&sb, &base_args());
        let input = var
            .trim_start_matches("GITOPS_")
            .to_ascii_lowercase()
            .replace('_', "-");
        let named = format!("`{input}`");
        assert_refused_unsent(&r, &oidc, &proxy, &[&named, "keyless", "id-token: write"]);
        assert_eq!(
            r.stdout.lines().next(),
            Some(format!("::add-mask::{secret}").as_str())
        );
        sb.assert_no_leak(&r, &[secret], &[]);
        assert!(sb.exported().is_empty() && sb.outputs().is_empty());
    }
    let mut sb = sandbox(&oidc, &proxy.endpoint());
    sb.set("GITOPS_FORCE_SKIP_OIDC", "true");
    let r = login(&sb, &base_args());
    assert_refused_unsent(
        &r,
        &oidc,
        &proxy,
        &["`force-skip-oidc`", "role-chaining: true"],
    );
}

// http-proxy relays the token request and every STS call; no-proxy (or NO_PROXY) bypasses it;
// HTTP_PROXY is honoured without the input, HTTPS_PROXY for an https endpoint (a CONNECT).
#[test]
fn proxies_relay_what_they_should_and_no_proxy_bypasses_them() {
    use crate::support::fwdproxy::FwdProxy;
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let fwd = FwdProxy::start();
    let moto_at = format!("127.0.0.1:{}", moto.port);
    let oidc_at = format!("127.0.0.1:{}", oidc.port);
    let with_auth = fwd
        .url()
        .replace("http://", "http://proxyuser:SECRETproxyPW@");

    let sb = sandbox(&oidc, &moto.endpoint());
    let mut args = base_args();
    args.extend(["--http-proxy", &with_auth]);
    let r = login(&sb, &args);
    r.expect_code(0);
    let relayed = fwd.relayed();
    assert_eq!(
        relayed,
        [
            format!("GET {oidc_at}"),
            format!("POST {moto_at}"),
            format!("POST {moto_at}")
        ],
        "{}",
        r.all()
    );
    sb.assert_no_leak(&r, &["SECRETproxyPW"], &[]);

    // no-proxy bypasses the input's proxy; NO_PROXY bypasses HTTP_PROXY.
    let sb = sandbox(&oidc, &moto.endpoint());
    let mut args = base_args();
    args.extend(["--http-proxy", &with_auth, "--no-proxy", "127.0.0.1"]);
    login(&sb, &args).expect_code(0);
    let mut sb = sandbox(&oidc, &moto.endpoint());
    sb.set("HTTP_PROXY", fwd.url())
        .set("NO_PROXY", "localhost,127.0.0.1");
    login(&sb, &base_args()).expect_code(0);
    assert_eq!(
        fwd.relayed().len(),
        3,
        "a bypassed request went through the proxy"
    );

    // HTTP_PROXY alone is honoured (the environment's policy, as every client of net).
    let mut sb = sandbox(&oidc, &moto.endpoint());
    sb.set("HTTP_PROXY", fwd.url());
    login(&sb, &base_args()).expect_code(0);
    assert_eq!(fwd.relayed().len(), 6, "{:?}", fwd.relayed());

    // HTTPS_PROXY carries an https endpoint through CONNECT (moto speaks no TLS, so the login
    // fails after the tunnel: what is observable is that the proxy was asked).
    let mut sb = sandbox(&oidc, &format!("https://{moto_at}"));
    sb.set("HTTPS_PROXY", fwd.url());
    let mut args = base_args();
    args.extend(["--disable-retry", "--timeout", "20"]);
    let r = login(&sb, &args);
    r.expect_code(3);
    assert_eq!(
        fwd.relayed().last(),
        Some(&format!("CONNECT {moto_at}")),
        "{}",
        r.all()
    );
    assert!(sb.exported().is_empty());
}

// sts-endpoint takes the place of AWS_ENDPOINT_URL_STS (a bare host name means https://).
#[test]
fn sts_endpoint_input_replaces_the_environments_endpoint() {
    let (_moto, oidc, proxy) = moto_stack();
    // The environment's endpoint is dead: only the input's can answer.
    let sb = sandbox(&oidc, "http://127.0.0.1:9");
    let mut args = base_args();
    let ep = proxy.endpoint();
    args.extend(["--sts-endpoint", &ep]);
    login(&sb, &args).expect_code(0);
    assert_eq!(proxy.count(WI), 1);
    assert_eq!(proxy.count("GetCallerIdentity"), 1);
}

// disable-retry: one attempt, no retry line; action-timeout-s is the overall deadline.
#[test]
fn disable_retry_and_action_timeout_s() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![sts_faults::throttling(); 5]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend(["--disable-retry", "--retry-max-attempts", "8"]);
    let r = login(&sb, &args);
    r.expect_code(3);
    assert_eq!(proxy.count(WI), 1, "{}", r.all());
    assert!(retry_lines(&r).is_empty(), "{}", r.all());

    let proxy = StsFaults::start(None, vec![Fault::Blackhole; 20]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend(["--action-timeout-s", "3"]);
    let t = std::time::Instant::now();
    let r = login(&sb, &args);
    r.expect_code(3);
    assert!(r.all().contains("overall timeout"), "{}", r.all());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t.elapsed()
    );
}

// use-existing-credentials: valid credentials an earlier step exported stay (one
// GetCallerIdentity, no token); rejected ones (here STS says so) lead to a normal login.
#[test]
fn use_existing_credentials_keeps_valid_ones_and_replaces_rejected_ones() {
    let (moto, oidc, proxy) = moto_stack();
    let mut sb = sandbox(&oidc, &proxy.endpoint());
    login(&sb, &base_args()).expect_code(0);
    next_step(&mut sb);
    let (tokens, seen) = (oidc.count(), proxy.requests().len());
    let mut args = base_args();
    args.push("--use-existing-credentials");
    let r = login(&sb, &args);
    r.expect_code(0);
    assert_eq!(
        oidc.count(),
        tokens,
        "asked for a token although the credentials were valid"
    );
    let actions: Vec<String> = proxy
        .requests()
        .into_iter()
        .skip(seen)
        .map(|s| s.action)
        .collect();
    assert_eq!(actions, ["GetCallerIdentity"]);
    let check = &proxy.requests()[seen];
    assert_eq!(
        check.signed_by.as_deref(),
        Some(sb.env["AWS_ACCESS_KEY_ID"].as_str())
    );
    assert!(r.all().contains("are valid"), "{}", r.all());
    assert_eq!(sb.outputs()["aws-account-id"], "123456789012");
    assert!(sb.exported().is_empty(), "nothing new to export");

    // STS rejects them: a normal login follows.
    let proxy = StsFaults::start(Some(moto.port), vec![sts_faults::invalid_client_token_id()]);
    let mut sb2 = sandbox(&oidc, &proxy.endpoint());
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        sb2.set(k, &sb.env[k]);
    }
    let r = login(&sb2, &args);
    r.expect_code(0);
    let actions: Vec<String> = proxy.requests().into_iter().map(|s| s.action).collect();
    assert_eq!(
        actions,
        ["GetCallerIdentity", WI, "GetCallerIdentity"],
        "{}",
        r.all()
    );
    assert!(r.all().contains("not usable"), "{}", r.all());
    assert!(sb2.exported()["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));

    // An AWS_PROFILE that does not exist (yet) is "none to keep", said in a notice.
    let mut sb3 = sandbox(&oidc, &proxy.endpoint());
    sb3.set("AWS_PROFILE", "not-yet");
    let r = login(&sb3, &args);
    r.expect_code(0);
    assert!(r.all().contains("none usable"), "{}", r.all());
    assert!(sb3.exported()["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));
}

// special-characters-workaround is accepted, changes nothing, and says why (and
// `force-skip-oidc: false` is accepted).
#[test]
fn special_characters_workaround_is_accepted_and_explained() {
    let (_moto, oidc, proxy) = moto_stack();
    let mut sb = sandbox(&oidc, &proxy.endpoint());
    // force-skip-oidc: false is the peer's default and simply accepted.
    sb.set("GITOPS_SPECIAL_CHARACTERS_WORKAROUND", "true")
        .set("GITOPS_FORCE_SKIP_OIDC", "false");
    let r = login(&sb, &base_args());
    r.expect_code(0);
    assert!(
        r.all()
            .contains("special-characters-workaround has no effect"),
        "{}",
        r.all()
    );
    assert_eq!(proxy.count(WI), 1, "asked STS more than once");
}

// Under act: the peer's two-step profile chain (README of configure-aws-credentials v6) — a
// profile from OIDC, then `role-chaining: true` from it with `env: AWS_PROFILE` — and a later
// step's AWS CLI using the second profile. The files live under act's RUNNER_TEMP and reach the
// later steps through GITHUB_ENV alone.
#[test]
fn act_run_chains_profiles_as_the_peer_documents() {
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let sb = Sandbox::plain();
    let wf = format!(
        r#"      - env:
          GITOPS_ROLE_TO_ASSUME: {ROLE}
          GITOPS_AWS_REGION: eu-west-1
          GITOPS_AWS_PROFILE: first
        # The sandbox points AWS_*_FILE outside RUNNER_TEMP (a real runner sets neither).
        run: |
          unset AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
          '{bin}'
      - env:
          GITOPS_ROLE_TO_ASSUME: {ROLE2}
          GITOPS_AWS_REGION: eu-west-1
          GITOPS_AWS_PROFILE: second
          GITOPS_ROLE_CHAINING: "true"
          AWS_PROFILE: first
        run: '{bin}'
      - run: |
          case "$AWS_SHARED_CREDENTIALS_FILE" in "$RUNNER_TEMP"/*) echo "NEXT files under RUNNER_TEMP";; esac
          test -z "${{AWS_ACCESS_KEY_ID:-}}" && echo "NEXT no env keys"
          '{aws}' sts get-caller-identity --profile second --endpoint-url "$STS_ENDPOINT" --query Arn --output text | sed 's/^/NEXT second=/'
"#,
        bin = bin("oidc-login").display(),
        aws = crate::support::tool("aws").display(),
    );
    let log = act_login_run(&sb, &wf, &oidc, &moto);
    for want in [
        "NEXT files under RUNNER_TEMP",
        "NEXT no env keys",
        "NEXT second=arn:aws:sts::123456789012:assumed-role/second/",
    ] {
        assert!(log.contains(want), "missing {want:?} in act log\n{log}");
    }
    assert_eq!(oidc.count(), 1, "the chained step asked for a token");
    assert!(!sb.path().join("home/.aws").exists());
    let akid = regex_lite::Regex::new(r"ASIA[A-Z0-9]{16}").unwrap();
    assert!(
        !akid.is_match(&log),
        "an access key id reached the act log\n{log}"
    );
}

// role-chaining: true from the keys an earlier step exported (the peer's commonest chain): the
// AssumeRole hop is signed with them and no token is asked for.
#[test]
fn role_chaining_true_chains_from_exported_environment_keys() {
    let (_moto, oidc, proxy) = moto_stack();
    let mut sb = sandbox(&oidc, &proxy.endpoint());
    login(&sb, &base_args()).expect_code(0);
    next_step(&mut sb);
    let first_id = sb.env["AWS_ACCESS_KEY_ID"].clone();
    let first_secret = sb.env["AWS_SECRET_ACCESS_KEY"].clone();
    let seen = proxy.requests().len();
    let r = login(&sb, &chain_from_existing_args());
    r.expect_code(0);
    assert_eq!(oidc.count(), 1, "the chained step asked for a token");
    let reqs: Vec<_> = proxy.requests().into_iter().skip(seen).collect();
    assert_eq!(reqs[0].action, "AssumeRole");
    assert_eq!(reqs[0].signed_by.as_deref(), Some(first_id.as_str()));
    assert_eq!(tags_sent(&reqs[0]).0, default_tags());
    // The new session's keys replace the old ones for later steps.
    let env = sb.exported();
    assert_ne!(env["AWS_ACCESS_KEY_ID"], first_id);
    assert!(sb.outputs()["authenticated-arn"].contains(":assumed-role/second/"));
    sb.assert_no_leak(&r, &[&first_secret], &[]);
}

// #18: dev's deploy credentials for a preview workspace only where previews are allowed; the
// refusal happens before any token is requested or any STS call is made.
#[test]
fn a_preview_workspace_is_refused_for_staging_and_prod_before_any_request() {
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(None, vec![]);
    for (extra, code, needle) in [
        (
            vec!["--environment", "prod", "--workspace", "pr-4"],
            1,
            "`prod` is a production environment",
        ),
        (
            vec!["--environment", "staging", "--workspace", "pr-4"],
            1,
            "`staging` is not marked `previews: true`",
        ),
        (
            vec!["--environment", "dev", "--workspace", "pr-x"],
            2,
            "is not a workspace name",
        ),
        (
            vec!["--workspace", "pr-4"],
            2,
            "a preview workspace needs `environment`",
        ),
    ] {
        let sb = sandbox(&oidc, &proxy.endpoint());
        let mut args = base_args();
        args.extend(extra.iter().copied());
        let r = login(&sb, &args);
        r.expect_code(code);
        assert!(r.all().contains(needle), "{extra:?}: {}", r.all());
        assert!(!sb.outputs().contains_key("aws-access-key-id"), "{extra:?}");
    }
    assert_eq!(oidc.count(), 0, "no token was requested");
    assert!(proxy.requests().is_empty(), "nothing reached STS");
}
