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
