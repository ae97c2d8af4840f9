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
