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
        .set("GITHUB_RUN_ATTEMPT", "1");
    sb
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
    let moto = Moto::start();
    let oidc = OidcServer::start();
    let proxy = StsFaults::start(Some(moto.port), vec![]);
    let sb = sandbox(&oidc, &proxy.endpoint());
    let mut args = base_args();
    args.extend([
        "--role-chaining",
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
    assert_eq!(env["AWS_REGION"], "eu-west-1");
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
        ("role-duration-seconds", vec![], vec!["--role-duration-seconds", "3601", "--role-chaining", ROLE2]),
        ("audience", vec![], vec!["--audience", ""]),
        ("audience", vec![], vec!["--audience", " sts.amazonaws.com"]),
        ("audience", vec![], vec!["--audience", "a,b"]),
        ("audience", vec![], vec!["--audience", &aud256]),
        ("role-chaining", vec![], vec!["--role-chaining", "arn:aws:iam::123456789012:user/x"]),
        ("role-external-id", vec![], vec!["--role-external-id", "abc"]),
        ("role-external-id", vec![], vec!["--role-chaining", ROLE2, "--role-external-id", "a b"]),
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
    r.expect_code(2);
    assert!(
        r.all().contains("`aws-region`") && r.all().contains("eu-central-1"),
        "{}",
        r.all()
    );
    assert_eq!(oidc.count(), 0);
    assert!(proxy.requests().is_empty());
}

// Under act (host mode): the binary runs as one step and the NEXT step finds the credentials in
// its environment (the GITHUB_ENV hand-over), masked in the log, and usable by the AWS CLI.
#[test]
fn act_run_hands_credentials_to_the_next_step_through_github_env() {
    use crate::support::act;
    let moto = Moto::start();
    let oidc = OidcServer::start_with(&["--environment", "dev"]);
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    let aws_cli = crate::support::tool("aws");
    let wf = format!(
        r#"on: push
permissions:
  id-token: write
jobs:
  login:
    runs-on: ubuntu-latest
    steps:
      - id: login
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
    std::fs::write(repo.join(".github/workflows/login.yml"), &wf).unwrap();
    act::init_repo(&repo);
    let url = format!("ACTIONS_ID_TOKEN_REQUEST_URL={}", oidc.request_url());
    let tok = format!("ACTIONS_ID_TOKEN_REQUEST_TOKEN={REQUEST_TOKEN}");
    let sts = format!("AWS_ENDPOINT_URL_STS={}", moto.endpoint());
    let sts2 = format!("STS_ENDPOINT={}", moto.endpoint());
    let run = act::run(
        &sb,
        &repo,
        "push",
        &["--env", &url, "--env", &tok, "--env", &sts, "--env", &sts2],
    );
    let log = run.all();
    assert_eq!(run.code, 0, "act failed\n{log}\n--- workflow\n{wf}");
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
