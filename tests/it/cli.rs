//! Every binary: `--help` and `--version` work (exit 0), unknown flags exit 2 without touching
//! the network, and the clap definitions pass clap's own consistency checks.

use crate::support::Sandbox;

const BINS: [&str; 5] = [
    "oidc-login",
    "plan-gate",
    "ecr-push",
    "promote",
    "tag-deploy",
];

#[test]
fn help_and_version_exit_zero() {
    let sb = Sandbox::plain();
    for b in BINS {
        let r = sb.run(b, &["--help"]);
        r.expect_code(0);
        assert!(r.stdout.contains("Usage"), "{b}: {}", r.stdout);
        let r = sb.run(b, &["--version"]);
        r.expect_code(0);
        assert!(r.stdout.starts_with(b), "{b}: {}", r.stdout);
    }
}

#[test]
fn bad_usage_exits_two_and_neutralises_the_echoed_value() {
    let sb = Sandbox::actions();
    for b in BINS {
        let r = sb.run(b, &["--no-such-flag=::error::pwned"]);
        r.expect_code(2);
        for l in r.all().lines() {
            assert!(!l.trim_start().starts_with("::error::pwned"), "{b}: {l}");
        }
    }
}

#[test]
fn clap_definitions_are_consistent() {
    for b in gitops_actions::cmd::binaries() {
        (b.command)().debug_assert();
    }
}

/// Run `sh -c SCRIPT` where the binary's stdout is a pipe whose reader has already exited
/// (`{ sleep; bin ARGS; } | true`); returns (the binary's exit status, its stderr).
fn with_closed_stdout(sb: &Sandbox, bin: &str, args: &[&str]) -> (i32, String) {
    let script = r#"{ sleep 0.3; "$0" "$@"; echo "rc=$?" >&3; } 3>&2 2>"$ERR_FILE" | true"#;
    let err_file = sb.path().join(format!("{bin}.stderr"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(crate::support::bin(bin))
        .args(args)
        .env("ERR_FILE", &err_file)
        .current_dir(sb.path())
        .output()
        .unwrap();
    let rc_line = String::from_utf8_lossy(&out.stderr).to_string();
    let rc = rc_line
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or_else(|| panic!("{bin}: no status in {rc_line:?}"))
        .trim()
        .parse()
        .unwrap();
    (rc, std::fs::read_to_string(&err_file).unwrap_or_default())
}

// #13 item 8: `tag-deploy --help | head -1` panicked ("failed printing to stdout: Broken
// pipe", exit 101). A reader that goes away ends the output quietly: help and version exit 0,
// and a command whose log reader left still finishes with its own exit code.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    let sb = Sandbox::plain();
    for (bin, args) in [
        ("tag-deploy", &["--help"][..]),
        ("ecr-push", &["--help"]),
        ("plan-gate", &["verify", "--help"]),
        ("oidc-login", &["--version"]),
        ("gitops-dev", &["--help"]),
    ] {
        let (rc, stderr) = with_closed_stdout(&sb, bin, args);
        assert!(!stderr.contains("panicked"), "{bin} {args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{bin} {args:?}: {stderr}");
        assert_eq!(rc, 0, "{bin} {args:?}: {stderr}");
    }
    // A real run whose stdout reader left: the report is dropped, the verdict stands.
    let plan = sb.path().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"format_version":"1.2","terraform_version":"1.11.0","resource_changes":[]}"#,
    )
    .unwrap();
    let (rc, stderr) = with_closed_stdout(
        &sb,
        "plan-gate",
        &["--plan", plan.to_str().unwrap(), "--comment", "off"],
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(rc, 0, "{stderr}");
}

const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

// #13 item 5: a flag or a GITOPS_* input that the chosen verb does not take is exit 2, naming
// the input and the verb, before anything is read or sent (it used to be ignored silently:
// `ecr-push login --parallelism 4` logged in). From clap's tree, for every binary with verbs.
#[test]
fn an_input_of_another_verb_is_a_usage_error_naming_input_and_verb() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, "{}").unwrap();
    let plan = plan.to_str().unwrap();
    let digest = format!("sha256:{}", "a".repeat(64));
    type Case<'a> = (
        &'a str,
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("ecr-push", vec!["login", "--registry", ECR, "--parallelism", "4"], vec![], "parallelism", "`ecr-push login` does not take `--parallelism` (it is an input of: push, copy)"),
        ("ecr-push", vec!["copy", "--source", "x", "--destination", "y"], vec![("GITOPS_CACHE_DIR", "/tmp/c")], "cache-dir", "`GITOPS_CACHE_DIR` is set, but `ecr-push copy` does not take it (it is an input of: push)"),
        ("ecr-push", vec!["push", "--registry", ECR], vec![], "registry", "`ecr-push push` does not take `--registry` (it is an input of: login)"),
        ("plan-gate", vec!["--plan", plan, "--digest", &digest], vec![], "digest", "`plan-gate gate` does not take `--digest` (it is an input of: verify)"),
        ("plan-gate", vec!["verify", "--plan", plan, "--digest", &digest], vec![("GITOPS_POLICY", "p.yml")], "policy", "`plan-gate verify` does not take it (it is an input of: gate)"),
        ("plan-gate", vec![], vec![("GITOPS_COMMAND", "verify"), ("GITOPS_PLAN", plan), ("GITOPS_PR_NUMBER", "3")], "pr-number", "`plan-gate verify` does not take it"),
        ("plan-gate", vec!["record", "--record", "r", "--plan", plan], vec![], "plan", "`plan-gate record` does not take `--plan` (it is an input of: gate, verify, drift)"),
        ("plan-gate", vec!["record", "--record", "r"], vec![("GITOPS_DEPLOYED_SHA", "none")], "deployed-sha", "`GITOPS_DEPLOYED_SHA` is set, but `plan-gate record` does not take it (it is an input of: verify, drift)"),
        ("plan-gate", vec!["verify", "--plan", plan, "--digest", &digest, "--base-sha", "none"], vec![], "base-sha", "`plan-gate verify` does not take `--base-sha` (it is an input of: gate)"),
        // tag-deploy (its hand-made "does not apply to" checks are gone): flags and variables.
        ("tag-deploy", vec!["list", "--environment", "dev", "--to", "previous"], vec![], "to", "`tag-deploy list` does not take `--to` (it is an input of: resolve)"),
        ("tag-deploy", vec!["fail", "--environment", "dev", "--image", "x"], vec![], "image", "`tag-deploy fail` does not take `--image` (it is an input of: start, record, preview-open)"),
        ("tag-deploy", vec![], vec![("GITOPS_COMMAND", "record"), ("GITOPS_ENVIRONMENT", "dev"), ("GITOPS_REASON", "why")], "reason", "`GITOPS_REASON` is set, but `tag-deploy record` does not take it (it is an input of: hold, release, preview-close)"),
        ("tag-deploy", vec!["window", "--environment", "dev"], vec![("GITOPS_SHA", "abc")], "sha", "`GITOPS_SHA` is set, but `tag-deploy window` does not take it (it is an input of: start, record, fail, verify, preview-open)"),
        ("tag-deploy", vec!["verify", "--environment", "dev", "--image", "x"], vec![], "image", "`tag-deploy verify` does not take `--image` (it is an input of: start, record, preview-open)"),
        ("tag-deploy", vec!["auto-rollback", "--environment", "dev"], vec![("GITOPS_TERRAFORM_OUTPUTS", "o.json")], "terraform-outputs", "`GITOPS_TERRAFORM_OUTPUTS` is set, but `tag-deploy auto-rollback` does not take it (it is an input of: verify)"),
        ("tag-deploy", vec!["hold", "--environment", "dev", "--reason", "r", "--verification-outcome", "passed"], vec![], "verification-outcome", "`tag-deploy hold` does not take `--verification-outcome` (it is an input of: record)"),
    ];
    for (bin, args, env, field, msg) in cases {
        let mut sb = Sandbox::actions();
        for (k, v) in &env {
            sb.set(k, v);
        }
        let r = sb.run(bin, &args);
        r.expect_code(2);
        assert!(
            r.all().contains(&format!("invalid input `{field}`")),
            "{bin} {args:?}: {}",
            r.all()
        );
        assert!(r.all().contains(msg), "{bin} {args:?}: {}", r.all());
        assert!(sb.outputs().is_empty(), "{bin} {args:?}: nothing written");
    }
}

// What a composite action passes for the inputs it was not given (empty, or the published
// default) is not "given": the verb runs, and the first refusal is about its own inputs.
#[test]
fn action_defaults_of_other_verbs_are_not_inputs() {
    let mut sb = Sandbox::actions();
    for (k, v) in [
        ("GITOPS_COMMAND", "login"),
        ("GITOPS_REGISTRY", "registry.example.com"),
        ("GITOPS_SOURCE", ""),
        ("GITOPS_PARALLELISM", "6"),
        ("GITOPS_TIMEOUT", "30m"),
        ("GITOPS_CREATE_REPOSITORY", "false"),
        ("GITOPS_IMMUTABLE_TAGS", "false"),
        ("GITOPS_PLAIN_HTTP", "false"),
        ("GITOPS_PROGRESS_INTERVAL", "10"),
        ("GITOPS_FORMAT", "text"),
    ] {
        sb.set(k, v);
    }
    let r = sb.run("ecr-push", &["login"]);
    r.expect_code(2);
    assert!(r.all().contains("invalid input `registry`"), "{}", r.all());
    assert!(
        r.all().contains("is not an ECR registry host"),
        "{}",
        r.all()
    );
}
