//! plan-gate: the shared plan corpus against an independent oracle, every refusal, the policy
//! gate and overrides, digests and `verify`, sensitive values in every channel, the PR comment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gitops_actions::plan::{self, Limits, PlanError};

use crate::support::github_comments_fake::GithubFake;
use crate::support::{root, Run, Sandbox};

/// `../shared` beside the repository (CI keeps a copy there); `GITOPS_SHARED_DIR` overrides it
/// (worktrees that live elsewhere).
fn shared() -> PathBuf {
    let p = std::env::var_os("GITOPS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    assert!(
        p.join("plans/MANIFEST.tsv").exists(),
        "the shared plan corpus is missing at {} (set GITOPS_SHARED_DIR)",
        p.display()
    );
    p
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/plan").join(name)
}

fn refusal_kind(e: &PlanError) -> &'static str {
    match e {
        PlanError::Empty => "empty",
        PlanError::Utf16Bom | PlanError::Utf16NoBom => "utf16",
        PlanError::NotUtf8 { .. } => "utf8",
        PlanError::TooDeep { .. } => "depth",
        PlanError::FormatVersionMissing
        | PlanError::FormatVersionNotString
        | PlanError::UnsupportedVersion(_) => "format_version",
        PlanError::StateFile | PlanError::Encrypted => "state",
        PlanError::UnsupportedEngineVersion { .. } => "format_version",
        PlanError::NotAPlan => "not_a_plan",
        PlanError::DuplicateAddress(_) => "duplicate",
        PlanError::UnknownAction { .. } => "action",
        PlanError::UnknownMode { .. } => "mode",
        PlanError::Syntax(_) | PlanError::TrailingGarbage { .. } | PlanError::NotAnObject => {
            "syntax"
        }
        PlanError::DuplicateKey(_) => "syntax",
        PlanError::TooLarge { .. } => "size",
        PlanError::Io(_) => "io",
    }
}

fn oracle(dirs: &[&Path]) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .arg(fixture("independent_counts.py"))
        .args(dirs)
        .output()
        .expect("python3 runs the independent oracle");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_shared_plan_counts_like_the_independent_oracle_or_is_refused_for_a_documented_reason() {
    let sh = shared();
    let plans = sh.join("plans");
    let bad = sh.join("plans-malformed");
    let expected = oracle(&[&plans, &bad]);
    assert!(
        expected.len() >= 480,
        "corpus too small: {}",
        expected.len()
    );
    let mut refused = BTreeMap::new();
    for e in &expected {
        let name = e["file"].as_str().unwrap();
        let path = if plans.join(name).exists() {
            plans.join(name)
        } else {
            bad.join(name)
        };
        let got = plan::load(&path, &Limits::default());
        match (&e["refused"], got) {
            (serde_json::Value::String(why), Err(err)) => {
                assert_eq!(refusal_kind(&err), why, "{name}: {err}");
                refused.insert(name.to_string(), err.to_string());
            }
            (serde_json::Value::String(why), Ok(_)) => {
                panic!("{name}: the oracle refuses it ({why}) but plan-gate accepted it")
            }
            (_, Err(err)) => panic!("{name}: refused by plan-gate but not by the oracle: {err}"),
            (_, Ok(s)) => {
                let c = &e["counts"];
                let n = &s.counts;
                let got = serde_json::json!({
                    "add": n.add, "change": n.change, "destroy": n.destroy, "replace": n.replace,
                    "import": n.import, "move": n.moves, "forget": n.forget, "read": n.read,
                    "no_op": n.no_op, "drift": n.drift, "output_changes": n.output_changes,
                });
                assert_eq!(&got, c, "{name}: counts differ from the oracle");
                assert_eq!(
                    e["errored"].as_bool().unwrap(),
                    s.errored,
                    "{name}: errored"
                );
                assert_eq!(e["applyable"].as_bool(), s.applyable, "{name}: applyable");
                assert!(gitops_actions::validate::is_sha256_digest(&s.digest));
            }
        }
    }
    // The documented odd ones: the two malformed documents, the UTF-16 copy in the corpus and the
    // synthetic plan with a made-up format_version.
    let names: Vec<&str> = refused.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "Naver-Dunamu-Merge-TF__NSC-infra__tfplans__tfplan.json",
            "overmindtech__cli__tfutils__testdata__plan.json",
            "ovsds__tf-plan-format__tests__data__plans__artificial__full.json",
            "sau29__aws-ephemeral-environment-janitor__terraform__tfplan.json",
        ]
    );
}

/// Run plan-gate in an Actions-like sandbox.
fn gate(args: &[&str]) -> (Sandbox, Run) {
    let sb = Sandbox::actions();
    let r = sb.run("plan-gate", args);
    (sb, r)
}

#[track_caller]
fn assert_refused_cleanly(sb: &Sandbox, r: &Run, code: i32, needle: &str) {
    r.expect_code(code);
    assert!(
        r.all().contains(needle),
        "missing {needle:?} in\n{}",
        r.all()
    );
    assert!(
        sb.outputs().is_empty(),
        "outputs written: {:?}",
        sb.outputs()
    );
    assert!(sb.summary().is_empty(), "summary written");
}

#[test]
fn the_two_malformed_documents_are_refused_with_clear_messages() {
    let bad = shared().join("plans-malformed");
    let p = bad.join("Naver-Dunamu-Merge-TF__NSC-infra__tfplans__tfplan.json");
    let (sb, r) = gate(&["--plan", p.to_str().unwrap()]);
    assert_refused_cleanly(&sb, &r, 2, "UTF-16");
    assert!(r.all().contains("PowerShell"));
    let p = bad.join("overmindtech__cli__tfutils__testdata__plan.json");
    let (sb, r) = gate(&["--plan", p.to_str().unwrap()]);
    assert_refused_cleanly(&sb, &r, 2, "`format_version` is missing");
}

#[test]
fn every_refusal_exits_2_names_its_reason_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        r#"{{"format_version":"1.2","resource_changes":[],"x":{}{}}}"#,
        "[".repeat(150),
        "]".repeat(150)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", b"".to_vec(), "is empty"),
        ("bom", b"\xff\xfe{\x00}\x00".to_vec(), "UTF-16"),
        ("latin1", b"{\"format_version\":\"1.2\",\"x\":\"caf\xe9\"}".to_vec(), "not valid UTF-8"),
        ("trailing", br#"{"format_version":"1.2","resource_changes":[]}{"a":1}"#.to_vec(), "after the end of the JSON document"),
        ("deep", deep.into_bytes(), "nests deeper than 100 levels"),
        ("noversion", br#"{"resource_changes":[]}"#.to_vec(), "`format_version` is missing"),
        ("numversion", br#"{"format_version":1.2,"resource_changes":[]}"#.to_vec(), "`format_version` is not a string"),
        ("v2", br#"{"format_version":"2.0","resource_changes":[]}"#.to_vec(), "unsupported plan `format_version` `2.0`"),
        ("state", br#"{"version":4,"terraform_version":"1.11.0","serial":1,"lineage":"x","outputs":{},"resources":[]}"#.to_vec(), "Terraform state, not a plan"),
        ("showstate", br#"{"format_version":"1.0","terraform_version":"1.11.0","values":{"root_module":{}}}"#.to_vec(), "Terraform state, not a plan"),
        ("dup", br#"{"format_version":"1.2","resource_changes":[{"address":"a.b","change":{"actions":["create"]}},{"address":"a.b","change":{"actions":["delete"]}}]}"#.to_vec(), "occurs twice"),
        ("action", br#"{"format_version":"1.2","resource_changes":[{"address":"a.b","change":{"actions":["obliterate"]}}]}"#.to_vec(), "Terraform does not define"),
        ("notjson", b"Plan: 1 to add".to_vec(), "not valid plan JSON"),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, &bytes).unwrap();
        let (sb, r) = gate(&["--plan", p.to_str().unwrap()]);
        assert_refused_cleanly(&sb, &r, 2, needle);
        assert!(
            r.all().contains("invalid input `plan`"),
            "{name}: {}",
            r.all()
        );
    }
    // The size limit is checked before reading: a file of 1 MiB of garbage with a 1 KiB limit
    // is refused for its size, not for its content.
    let p = dir.path().join("big.json");
    std::fs::write(&p, vec![b'x'; 1 << 20]).unwrap();
    let (sb, r) = gate(&["--plan", p.to_str().unwrap(), "--max-plan-bytes", "1024"]);
    assert_refused_cleanly(&sb, &r, 2, "over the limit of 1024 bytes");
    // A value that looks like a secret in a wrongly typed field is not echoed.
    let p = dir.path().join("typed.json");
    std::fs::write(
        &p,
        br#"{"format_version":"1.2","errored":"TOPSECRETVALUE","resource_changes":[]}"#,
    )
    .unwrap();
    let (sb, r) = gate(&["--plan", p.to_str().unwrap()]);
    assert_refused_cleanly(&sb, &r, 2, "invalid type");
    assert!(!r.all().contains("TOPSECRETVALUE"));
}

#[test]
fn errored_and_unapplyable_plans_fail_but_an_empty_plan_passes() {
    let sh = shared().join("plans");
    let (sb, r) = gate(&[
        "--plan",
        sh.join("TheBearguy__tf-gatekeeper__tfplan.json")
            .to_str()
            .unwrap(),
    ]);
    r.expect_code(1);
    assert!(r.all().contains("errored: true"));
    assert_eq!(sb.outputs()["verdict"], "fail");
    assert_eq!(sb.outputs()["errored"], "true");
    // Nothing to apply (`applyable: false`, no changes): a pass with no changes.
    let p = sh.join(
        "hashicorp__terraform__internal__command__testdata__show-json__basic-update__output.json",
    );
    let (sb, r) = gate(&["--plan", p.to_str().unwrap()]);
    r.expect_code(0);
    assert_eq!(sb.outputs()["has-changes"], "false");
    assert!(sb.summary().contains("No changes"));
}

#[test]
fn json_format_prints_every_figure_and_outputs_match() {
    let p = shared().join("plans/Necron-99__robert-consulting-public__terraform-plan.json");
    let (sb, r) = gate(&[
        "--plan",
        p.to_str().unwrap(),
        "--format",
        "json",
        "--comment",
        "off",
    ]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let j: serde_json::Value = serde_json::from_str(line).unwrap();
    for k in [
        "format_version",
        "terraform_version",
        "add",
        "change",
        "destroy",
        "replace",
        "import",
        "move",
        "forget",
        "read",
        "no_op",
        "drift",
        "output_changes",
        "errored",
        "applyable",
        "verdict",
        "violations",
        "plan_digest",
    ] {
        assert!(j.get(k).is_some(), "missing {k}");
    }
    let o = sb.outputs();
    assert_eq!(o["add"], j["add"].to_string());
    assert_eq!(o["destroy"], j["destroy"].to_string());
    assert_eq!(o["replace"], j["replace"].to_string());
    assert_eq!(o["plan-digest"], j["plan_digest"].as_str().unwrap());
    assert!(
        j["replace"].as_u64().unwrap() > 0,
        "this plan replaces both ways"
    );
    assert_eq!(o["verdict"], j["verdict"].as_str().unwrap());
    let s = sb.summary();
    assert!(
        s.contains("to destroy"),
        "destroys are listed first and loud"
    );
    assert!(s.find("⚠️").unwrap() < s.find("<details>").unwrap());
    assert_eq!(r.code, if j["verdict"] == "pass" { 0 } else { 1 });
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const DESTROYING: &str = r#"{"format_version":"1.2","terraform_version":"1.11.0","resource_changes":[
 {"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","name":"main","provider_name":"registry.terraform.io/hashicorp/aws","change":{"actions":["delete"],"before":{"id":"db-1"},"after":null}},
 {"address":"aws_s3_bucket.logs","mode":"managed","type":"aws_s3_bucket","name":"logs","provider_name":"registry.terraform.io/hashicorp/aws","change":{"actions":["create"],"before":null,"after":{"bucket":"logs"}}}],
 "applyable":true,"errored":false}"#;

#[test]
fn policy_violations_fail_the_gate_and_overrides_need_a_logged_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let pol = write(
        dir.path(),
        "policy.yml",
        "rules:\n  forbid-destroy:\n    - types: [aws_db_instance]\n  max-destroys: 5\n",
    );
    let (sb, r) = gate(&["--plan", &plan, "--policy", &pol, "--environment", "dev"]);
    r.expect_code(1);
    assert!(r.all().contains("forbid-destroy"));
    let v: serde_json::Value = serde_json::from_str(&sb.outputs()["violations"]).unwrap();
    assert_eq!(v[0]["address"], "aws_db_instance.main");
    // An override without a reason is bad input, before anything is read.
    let (sb, r) = gate(&[
        "--plan",
        &plan,
        "--policy",
        &pol,
        "--allow",
        "forbid-destroy",
    ]);
    assert_refused_cleanly(&sb, &r, 2, "needs a reason");
    let (sb, r) = gate(&[
        "--plan",
        &plan,
        "--policy",
        &pol,
        "--allow",
        "forbid-destroys",
        "--allow-reason",
        "x",
    ]);
    assert_refused_cleanly(&sb, &r, 2, "is not a rule id");
    // With a reason: passes, logged as a warning and shown in the summary.
    let (sb, r) = gate(&[
        "--plan",
        &plan,
        "--policy",
        &pol,
        "--allow",
        "forbid-destroy",
        "--allow-reason",
        "decommissioning the old DB (CHG-42)",
    ]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("::warning::policy override: rule forbid-destroy"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("CHG-42"));
    assert!(sb.summary().contains("allowed by override"));
    assert!(sb.summary().contains("CHG\\-42"));
    // A typo in the policy file is refused, not ignored.
    let typo = write(
        dir.path(),
        "typo.yml",
        "rules:\n  forbid-destroy:\n    - type: [aws_db_instance]\n",
    );
    let (sb, r) = gate(&["--plan", &plan, "--policy", &typo]);
    assert_refused_cleanly(
        &sb,
        &r,
        2,
        "rule `forbid-destroy`: an unknown key; expected one of `types`, `addresses`",
    );
    let typo = write(dir.path(), "typo2.yml", "rules:\n  max-destroy: 1\n");
    let (sb, r) = gate(&["--plan", &plan, "--policy", &typo]);
    assert_refused_cleanly(&sb, &r, 2, "did you mean `max-destroys`?");
}

// Item 4 of #21: a token pasted into the policy file is never printed, in any form or part:
// the message names the file, the place and the kind of error.
#[test]
fn policy_file_errors_name_place_and_kind_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let tok = "ghp_PASTEDtoken0123456789abcdefABCD";
    let cases = [
        (
            format!("rules:\n  max-destroys: {tok}\n"),
            "rule `max-destroys`",
        ),
        (
            format!("rules:\n  {tok}: 1\n"),
            "`rules` has a key that is not a rule",
        ),
        (format!("rules:\n  no-drift: {tok}\n"), "rule `no-drift`"),
        (
            format!("rules:\n  forbid-destroy:\n    - types: [x]\n      {tok}: [y]\n"),
            "an unknown key",
        ),
        (
            format!("rules:\n  forbid-destroy:\n    - addresses: ['[{tok}']\n"),
            "not a valid glob",
        ),
        (
            format!("version: {tok}\n"),
            "line 1, column 10: a value of the wrong type",
        ),
        (format!("{tok}: 1\n"), "line 1, column 1: an unknown key"),
        (
            format!("version: 1\n\"{tok}\n"),
            "not valid YAML: found unexpected end of stream",
        ),
    ];
    for (text, needle) in cases {
        let pol = write(dir.path(), "policy.yml", &text);
        let (sb, r) = gate(&["--plan", &plan, "--policy", &pol]);
        assert_refused_cleanly(&sb, &r, 2, needle);
        assert!(r.all().contains(&pol), "{text}: {}", r.all());
        sb.assert_no_leak(&r, &[tok], &[]);
        sb.assert_no_piece_leaks(&r, &[tok], 12);
    }
}

#[test]
fn production_destroys_need_an_explicit_override_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let (_sb, r) = gate(&["--plan", &plan, "--environment", "prod"]);
    r.expect_code(1);
    assert!(r.all().contains("protect-production"));
    let (_sb, r) = gate(&["--plan", &plan, "--environment", "staging"]);
    r.expect_code(0);
    let allowed = [
        "--plan",
        &plan,
        "--environment",
        "prod",
        "--allow",
        "protect-production",
        "--allow-reason",
        "approved in CAB",
    ];
    let (_sb, r) = gate(&allowed);
    // The destroyed database is stateful: protect-stateful (on in production) still refuses it.
    r.expect_code(1);
    assert!(r.all().contains("protect-stateful"), "{}", r.all());
    let data_loss = [
        "--allow-data-loss",
        "--data-loss-reason",
        "CAB-7: the database moved",
    ];
    let (_sb, r) = gate(&[&allowed[..], &data_loss[..]].concat());
    r.expect_code(0);
    let (sb, r) = gate(&["--plan", &plan, "--environment", "Prod"]);
    assert_refused_cleanly(&sb, &r, 2, "did you mean `prod`");
}

/// A plan reviewed with one release must verify with the next: the digest of a committed plan
/// is pinned (any change to what the digest covers or how it is computed must be deliberate).
#[test]
fn the_plan_digest_of_a_committed_plan_is_stable_across_releases() {
    let p = fixture("tf-scenarios.plan.json");
    let s = plan::load(&p, &Limits::default()).unwrap();
    assert_eq!(
        s.digest,
        "sha256:b7daabf026da7c5cd2334516a3097f50f82fb488ed83cf2026a16c434acc6a5b"
    );
    // The same through the reference reader and from memory.
    let bytes = std::fs::read(&p).unwrap();
    let r = plan::load::load_bytes_reference(&bytes, &Limits::default()).unwrap();
    assert_eq!(r.digest, s.digest);
}

#[test]
fn verify_accepts_the_reviewed_plan_and_refuses_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let (sb, r) = gate(&["--plan", &plan, "--environment", "dev"]);
    r.expect_code(0);
    let d = sb.outputs()["plan-digest"].clone();
    // Re-formatting does not change the digest.
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(DESTROYING).unwrap(),
    )
    .unwrap();
    let plan2 = write(dir.path(), "pretty.json", &pretty);
    let (_sb, r) = gate(&["verify", "--plan", &plan2, "--digest", &d]);
    r.expect_code(0);
    assert!(r.stdout.contains("plan digest verified"));
    // Any change to what would be applied does.
    let changed = write(
        dir.path(),
        "changed.json",
        &DESTROYING.replace("\"bucket\":\"logs\"", "\"bucket\":\"logs2\""),
    );
    let (_sb, r) = gate(&["verify", "--plan", &changed, "--digest", &d]);
    r.expect_code(1);
    assert!(r.all().contains("not the one that was reviewed"));
    // Bad digest input is exit 2, before reading.
    let (sb, r) = gate(&["verify", "--plan", &plan, "--digest", "sha256:XYZ"]);
    assert_refused_cleanly(&sb, &r, 2, "invalid input `digest`");
    let (sb, r) = gate(&["verify", "--plan", &plan]);
    assert_refused_cleanly(&sb, &r, 2, "invalid input `digest`");
    // The action passes the command as GITOPS_COMMAND; empty means the default (gate).
    let mut sb = Sandbox::actions();
    sb.set("GITOPS_COMMAND", "verify")
        .set("GITOPS_PLAN", &plan)
        .set("GITOPS_DIGEST", &d)
        .set("GITOPS_COMMENT", "");
    sb.run("plan-gate", &[]).expect_code(0);
}

#[test]
fn sensitive_values_reach_no_channel() {
    let dir = tempfile::tempdir().unwrap();
    let plan = r#"{"format_version":"1.2","terraform_version":"1.11.0",
      "variables":{"db_password":{"value":"SENTINEL-VAR-9f3a1c"}},
      "resource_changes":[
       {"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","name":"main","provider_name":"registry.terraform.io/hashicorp/aws",
        "change":{"actions":["update"],"before":{"password":"SENTINEL-OLD-77e1b2","name":"db","tags":{"k":"SENTINEL-NESTED-5c5c5c"}},
        "after":{"password":"SENTINEL-VAR-9f3a1c","name":"db2","tags":{"k":"SENTINEL-NESTED-6d6d6d"}},
        "after_unknown":{},"before_sensitive":{"password":true,"tags":{"k":true}},"after_sensitive":{"password":true,"tags":{"k":true}}}}],
      "output_changes":{"conn":{"actions":["create"],"before":null,"after":"SENTINEL-OUT-4b4b4b","after_unknown":false,"before_sensitive":false,"after_sensitive":true}},
      "configuration":{"root_module":{"variables":{"db_password":{"sensitive":true}},"outputs":{"conn":{"sensitive":true}}}}}"#;
    let p = write(dir.path(), "s.json", plan);
    let secrets = [
        "SENTINEL-VAR-9f3a1c",
        "SENTINEL-OLD-77e1b2",
        "SENTINEL-NESTED-5c5c5c",
        "SENTINEL-NESTED-6d6d6d",
        "SENTINEL-OUT-4b4b4b",
    ];
    for format in ["text", "markdown", "json"] {
        let (sb, r) = gate(&["--plan", &p, "--format", format, "--environment", "dev"]);
        r.expect_code(0);
        sb.assert_no_leak(&r, &secrets, &[]);
        assert!(sb.summary().contains("(sensitive)"));
        assert!(
            sb.summary().contains("db2"),
            "non-sensitive changes are shown"
        );
    }
}

#[test]
fn pr_comment_is_created_once_then_updated_in_place() {
    let gh = GithubFake::start();
    let other = gh.add_comment("LGTM", "someone");
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let run = |extra: &[&str]| {
        let mut sb = Sandbox::actions();
        sb.set("GITHUB_REPOSITORY", "acme/infra")
            .set("GITHUB_API_URL", gh.url())
            .set("GITOPS_GITHUB_TOKEN", "ghs_FAKETOKEN0123456789abcdef");
        let mut args = vec![
            "--plan",
            plan.as_str(),
            "--environment",
            "dev",
            "--pr-number",
            "7",
        ];
        args.extend_from_slice(extra);
        let r = sb.run("plan-gate", &args);
        (sb, r)
    };
    let (sb, r) = run(&[]);
    r.expect_code(0);
    assert!(r.stdout.contains("PR comment created"), "{}", r.all());
    sb.assert_no_leak(&r, &["ghs_FAKETOKEN0123456789abcdef"], &[]);
    assert!(sb.outputs()["comment-url"].contains("#issuecomment-"));
    let (_sb, r) = run(&[]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("PR comment updated in place"),
        "{}",
        r.all()
    );
    // A second stack gets its own comment.
    let (_sb, r) = run(&["--stack", "network"]);
    assert!(r.stdout.contains("PR comment created"));
    let comments = gh.comments();
    assert_eq!(comments.len(), 3, "one foreign + one per environment/stack");
    assert_eq!(comments[0].id, other);
    assert_eq!(
        comments[0].body, "LGTM",
        "someone else's comment is untouched"
    );
    assert!(comments[1]
        .body
        .contains("gitops-actions:plan-gate key=dev -->"));
    assert!(comments[2].body.contains("key=dev/network -->"));
    let reqs = gh.requests();
    assert_eq!(reqs.iter().filter(|r| r.method == "PATCH").count(), 1);
    assert!(reqs
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer ghs_FAKETOKEN0123456789abcdef")));
}

#[test]
fn pr_comment_is_skipped_with_a_notice_without_token_or_pull_request() {
    let gh = GithubFake::start();
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_REPOSITORY", "acme/infra")
        .set("GITHUB_API_URL", gh.url());
    let r = sb.run("plan-gate", &["--plan", &plan, "--pr-number", "7"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("::notice::PR comment skipped: no GitHub token"),
        "{}",
        r.stdout
    );
    sb.set("GITOPS_GITHUB_TOKEN", "ghs_x");
    let r = sb.run("plan-gate", &["--plan", &plan]);
    r.expect_code(0);
    assert!(r
        .stdout
        .contains("PR comment skipped: this run is not for a pull request"));
    assert!(gh.requests().is_empty(), "nothing was sent");
    // Bad comment inputs are refused before anything is read or sent.
    let r = sb.run(
        "plan-gate",
        &[
            "--plan",
            &plan,
            "--pr-number",
            "7",
            "--repository",
            "acme/../x",
        ],
    );
    r.expect_code(2);
    assert!(
        r.all().contains("`acme/../x` is not `owner/repo`"),
        "{}",
        r.all()
    );
    let r = sb.run(
        "plan-gate",
        &[
            "--plan",
            &plan,
            "--pr-number",
            "7",
            "--github-api-url",
            "http://example.com",
        ],
    );
    r.expect_code(2);
    assert!(r.all().contains("must use https"), "{}", r.all());
    assert!(gh.requests().is_empty());
}

#[test]
fn a_huge_plan_comment_is_cut_at_a_section_with_a_pointer_to_the_summary() {
    let gh = GithubFake::start();
    let p = shared()
        .join("plans/liatrio__terraform-change-pr-commenter__test-data__tf_test_large.json");
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_REPOSITORY", "acme/infra")
        .set("GITHUB_API_URL", gh.url())
        .set("GITHUB_SERVER_URL", "https://github.com")
        .set("GITHUB_RUN_ID", "123")
        .set("GITOPS_GITHUB_TOKEN", "ghs_x");
    let r = sb.run(
        "plan-gate",
        &["--plan", p.to_str().unwrap(), "--pr-number", "3"],
    );
    r.expect_code(0);
    let c = gh.comments();
    assert_eq!(c.len(), 1);
    assert!(c[0].body.chars().count() < 65_536, "{}", c[0].body.len());
    assert!(c[0].body.contains("cut to fit"));
    assert!(c[0]
        .body
        .contains("https://github.com/acme/infra/actions/runs/123"));
    assert!(c[0].body.contains("Plan: 5000 to add"));
    assert_eq!(sb.outputs()["add"], "5000");
}

/// The sentinel values in `tests/fixtures/tf/scenarios` (sensitive variable and output).
const TF_SENTINELS: &[&str] = &[
    "SENTINEL-TFVAR-OLD-a1b2c3d4",
    "SENTINEL-TFVAR-NEW-c9d0e1f2",
    "SENTINEL-TFOUT-OLD-e5f6a7b8",
    "SENTINEL-TFOUT-NEW-0a1b2c3d",
];

fn tf_fixtures() -> Vec<(PathBuf, String)> {
    let mut v: Vec<(PathBuf, String)> = std::fs::read_dir(fixture(""))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let n = p.file_name()?.to_str()?.to_string();
            let stem = n.strip_suffix(".plan.json")?;
            let line = std::fs::read_to_string(fixture(&format!("{stem}.plan-line.txt"))).ok()?;
            Some((p, line.trim().to_string()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn terraform_generated_plans_count_exactly_like_terraforms_own_plan_line() {
    let fx = tf_fixtures();
    assert!(!fx.is_empty(), "run scripts/gen-plan-fixtures");
    for (p, line) in fx {
        let s = plan::load(&p, &Limits::default()).unwrap();
        assert_eq!(s.counts.terraform_line(), line, "{}", p.display());
        let c = s.counts;
        // The scenario covers every kind: replace both ways, count shrink, moved, removed.
        assert_eq!((c.replace, c.moves, c.forget), (2, 1, 1), "{}", p.display());
        let kinds: Vec<_> = s.changes.iter().map(|r| r.action).collect();
        assert!(kinds.contains(&plan::Action::DeleteThenCreate));
        assert!(kinds.contains(&plan::Action::CreateThenDelete));
        // The oracle agrees as well.
        let o = oracle(&[&p]);
        assert_eq!(o[0]["counts"]["destroy"], c.destroy);
    }
}

#[test]
fn terraform_sentinel_secrets_reach_no_channel_not_even_the_pr_comment() {
    let (p, _) = tf_fixtures().into_iter().next().unwrap();
    let raw = std::fs::read_to_string(&p).unwrap();
    for s in TF_SENTINELS {
        assert!(
            raw.contains(s),
            "the fixture carries {s} in plain text, as Terraform writes it"
        );
    }
    let gh = GithubFake::start();
    for format in ["text", "markdown", "json"] {
        let mut sb = Sandbox::actions();
        sb.set("GITHUB_REPOSITORY", "acme/infra")
            .set("GITHUB_API_URL", gh.url())
            .set("GITOPS_GITHUB_TOKEN", "ghs_x");
        let r = sb.run(
            "plan-gate",
            &[
                "--plan",
                p.to_str().unwrap(),
                "--format",
                format,
                "--pr-number",
                "5",
                "--environment",
                "dev",
            ],
        );
        r.expect_code(0);
        sb.assert_no_leak(&r, TF_SENTINELS, &[]);
        assert!(sb.summary().contains("(sensitive)"));
    }
    let bodies: Vec<String> = gh.requests().into_iter().map(|r| r.body).collect();
    assert!(
        bodies.iter().any(|b| b.contains("connection\\\\_string")),
        "the comment lists outputs"
    );
    for b in bodies {
        for s in TF_SENTINELS {
            for form in crate::support::secret_forms(s) {
                assert!(!b.contains(&form), "sentinel {s} reached the PR comment");
            }
        }
    }
}

#[test]
fn live_terraform_regenerates_the_fixtures_with_the_same_plan_line() {
    if !crate::support::has_tool("terraform") {
        crate::support::skip_loudly(
            "live_terraform_regenerates_the_fixtures_with_the_same_plan_line",
            "terraform is not installed (the committed fixtures are still tested)",
        );
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let r = Command::new(root().join("scripts/gen-plan-fixtures"))
        .env("GITOPS_PLAN_FIXTURES_OUT", out.path())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for (committed, line) in tf_fixtures() {
        let name = committed.file_name().unwrap();
        let fresh = out.path().join(name);
        let fresh_line =
            std::fs::read_to_string(fresh.with_extension("").with_extension("plan-line.txt"))
                .unwrap();
        assert_eq!(
            fresh_line.trim(),
            line,
            "Terraform's own line changed: regenerate the fixtures"
        );
        let s = plan::load(&fresh, &Limits::default()).unwrap();
        assert_eq!(s.counts.terraform_line(), line);
    }
}

/// A pagination link to another origin is not followed: octocrab would send the token with it.
/// The "other origin" is a second fake that records what reaches it: nothing may.
#[test]
fn pr_comment_pagination_never_carries_the_token_to_another_origin() {
    let gh = GithubFake::start();
    let elsewhere = GithubFake::start();
    gh.set_link_next(&format!(
        "{}/repos/acme/infra/issues/7/comments?page=2",
        elsewhere.url()
    ));
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let token = "ghs_PAGINATIONTOKEN0123456789";
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_REPOSITORY", "acme/infra")
        .set("GITHUB_API_URL", gh.url())
        .set("GITOPS_GITHUB_TOKEN", token);
    let r = sb.run(
        "plan-gate",
        &["--plan", &plan, "--environment", "dev", "--pr-number", "7"],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("another origin"), "{}", r.all());
    assert!(r.stdout.contains("PR comment created"), "{}", r.all());
    assert!(
        elsewhere.requests().is_empty(),
        "a request reached the other origin"
    );
    assert_eq!(gh.comments().len(), 1);
    sb.assert_no_leak(&r, &[token], &[]);
}

/// The comment calls checked against GitHub's own OpenAPI description: Prism validates every
/// request plan-gate sends and every response of the scenario fake behind it.
#[test]
fn pr_comment_requests_and_fake_responses_follow_githubs_openapi_description() {
    let gh = GithubFake::start();
    let prism = crate::support::prism::Prism::proxy(&gh.url());
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    for expect in ["PR comment created", "PR comment updated in place"] {
        let mut sb = Sandbox::actions();
        sb.set("GITHUB_REPOSITORY", "acme/infra")
            .set("GITHUB_API_URL", prism.url())
            .set("GITOPS_GITHUB_TOKEN", "ghs_PRISMTOKEN0123456789");
        let r = sb.run(
            "plan-gate",
            &["--plan", &plan, "--pr-number", "12", "--environment", "dev"],
        );
        r.expect_code(0);
        assert!(r.stdout.contains(expect), "{}\n{}", r.all(), prism.log());
    }
    prism.assert_no_violations();
    let methods: Vec<String> = gh
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        methods,
        vec![
            "GET /repos/acme/infra/issues/12/comments",
            "POST /repos/acme/infra/issues/12/comments",
            "GET /repos/acme/infra/issues/12/comments",
            // Asked once a comment with our marker exists (403 for an installation token).
            "GET /user",
            "PATCH /repos/acme/infra/issues/comments/1001",
        ]
    );
}

/// The fast path (sections cut by the structural scanner, validated on a second thread) must give
/// exactly the reference path's answer: the same summary (counts, changes, sensitive strings,
/// digest) or the same refusal, on every corpus plan and on damaged copies of some of them.
#[test]
fn the_fast_path_gives_exactly_the_reference_answer_on_the_corpus_and_damaged_copies() {
    use plan::load::{load_bytes, load_bytes_reference};
    let sh = shared();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [sh.join("plans"), sh.join("plans-malformed"), fixture("")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 480, "corpus too small: {}", files.len());
    let lim = Limits::default();
    let same = |what: &str, bytes: &[u8]| {
        let want = format!("{:?}", load_bytes_reference(bytes, &lim));
        let got = format!("{:?}", load_bytes(bytes, &lim));
        assert!(got == want, "{what}: fast path differs from the reference");
    };
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let mut fast_declined = Vec::new();
    for (k, f) in files.iter().enumerate() {
        let name = f.display().to_string();
        let bytes = std::fs::read(f).unwrap();
        // The fast path itself answers for every plan the reference path accepts.
        let reference = load_bytes_reference(&bytes, &lim);
        if reference.is_ok() && plan::load::load_bytes_fast(&bytes, &lim).is_none() {
            fast_declined.push(name.clone());
        }
        // From the file (memory map, two threads, pages released) and from memory.
        let want = format!("{reference:?}");
        let mut from_file = plan::load(f, &lim);
        if let Ok(s) = &mut from_file {
            s.bytes = bytes.len() as u64;
        }
        assert!(
            format!("{from_file:?}") == want,
            "{name}: load() differs from the reference"
        );
        same(&name, &bytes);
        // Damaged copies of every 8th plan (small ones, to keep the test quick).
        if k % 8 != 0 || bytes.len() > 200_000 || bytes.is_empty() {
            continue;
        }
        let at = rnd(bytes.len());
        same(&format!("{name} cut at {at}"), &bytes[..at]);
        for b in [
            b'{', b'}', b'[', b']', b'"', b'\\', b',', b':', 0xff, 0x01, b'e', b' ',
        ] {
            let at = rnd(bytes.len());
            let mut m = bytes.clone();
            m[at] = b;
            same(&format!("{name} byte {at} set to {b:#x}"), &m);
            let mut m = bytes.clone();
            m.insert(at, b);
            same(&format!("{name} byte {b:#x} inserted at {at}"), &m);
        }
        let mut m = bytes.clone();
        m.extend_from_slice(b" {}");
        same(&format!("{name} with trailing garbage"), &m);
        let mut m = b"\xef\xbb\xbf".to_vec();
        m.extend_from_slice(&bytes);
        same(&format!("{name} with a UTF-8 BOM"), &m);
    }
    // Deep nesting around the limits, in a section that is only validated and in one that is read.
    for depth in [98, 99, 100, 101, 119, 120, 121, 127, 128, 129] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let a = format!(r#"{{"format_version":"1.2","resource_changes":[],"x":{deep}}}"#);
            same(&format!("depth {depth} {open}"), a.as_bytes());
            let b = format!(
                r#"{{"format_version":"1.2","resource_changes":[{{"address":"a.b","change":{{"actions":["create"],"after":{deep}}}}}]}}"#
            );
            same(
                &format!("depth {depth} {open} in resource_changes"),
                b.as_bytes(),
            );
        }
    }
    // A fast path that always declined would pass every comparison above: it must answer.
    assert!(
        fast_declined.is_empty(),
        "the fast path declined {} accepted plans: {fast_declined:?}",
        fast_declined.len()
    );
}

// #21 item 14: with GITHUB_ACTIONS=true, `--format json` leaves exactly one line of JSON on
// stdout (no `::add-mask::` before it); the masks still reach the runner, on stderr; the same
// object is the `json` output. A verdict `fail` still prints its one document.
#[test]
fn json_format_is_one_document_on_stdout_inside_actions() {
    let dir = tempfile::tempdir().unwrap();
    let plan = r#"{"format_version":"1.2","terraform_version":"1.11.0",
      "resource_changes":[
       {"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","name":"main","provider_name":"registry.terraform.io/hashicorp/aws",
        "change":{"actions":["update"],"before":{"password":"SENTINEL-OLD-1a2b3c","name":"db"},
        "after":{"password":"SENTINEL-NEW-4d5e6f","name":"db2"},
        "after_unknown":{},"before_sensitive":{"password":true},"after_sensitive":{"password":true}}}]}"#;
    let p = write(dir.path(), "s.json", plan);
    let secrets = ["SENTINEL-OLD-1a2b3c", "SENTINEL-NEW-4d5e6f"];
    let (sb, r) = gate(&["--plan", &p, "--format", "json", "--comment", "off"]);
    r.expect_code(0);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(doc["change"], 1);
    assert_eq!(doc["verdict"], "pass");
    let out: serde_json::Value = serde_json::from_str(&sb.outputs()["json"]).unwrap();
    assert_eq!(doc, out);
    for s in secrets {
        assert!(
            r.stderr.contains(&format!("::add-mask::{s}")),
            "mask for {s} on stderr: {}",
            r.stderr
        );
    }
    sb.assert_no_leak(&r, &secrets, &[]);
    // A failing gate (protect-production on a destroy) still prints exactly one document.
    let p = write(dir.path(), "d.json", DESTROYING);
    let (_, r) = gate(&[
        "--plan",
        &p,
        "--format",
        "json",
        "--comment",
        "off",
        "--environment",
        "prod",
    ]);
    r.expect_code(1);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(doc["verdict"], "fail");
    assert!(r.stderr.contains("::error::"), "{}", r.stderr);
}

/// Every channel a run writes to: stdout, stderr, the `GITHUB_*` files and what reached GitHub.
fn channels(sb: &Sandbox, r: &Run, gh: &GithubFake) -> Vec<(String, String)> {
    let mut c = vec![
        ("stdout".to_string(), r.stdout.clone()),
        ("stderr".to_string(), r.stderr.clone()),
        ("summary".to_string(), sb.summary()),
        ("outputs".to_string(), format!("{:?}", sb.outputs())),
    ];
    for q in gh.requests() {
        c.push((format!("{} {}", q.method, q.path), q.body));
    }
    c
}

/// A secret in every form a renderer can give it (as written, JSON-escaped, Markdown-escaped,
/// with `|` escaped for a table) and every 12-character piece of each (what a cut leaves).
fn leaked_forms(secret: &str) -> Vec<String> {
    use gitops_actions::runner::markdown;
    let json = serde_json::to_string(secret).unwrap();
    let json = json[1..json.len() - 1].to_string();
    let mut forms = crate::support::secret_forms(secret);
    forms.extend([
        json.replace('|', "\\|"),
        secret.replace('|', "\\|"),
        markdown::escape_max(secret, 10_000),
        serde_json::to_string(&json)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    ]);
    let mut out = Vec::new();
    for f in forms {
        let chars: Vec<char> = f.chars().collect();
        if chars.len() <= 12 {
            out.push(f);
            continue;
        }
        for w in chars.windows(12) {
            out.push(w.iter().collect());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Item 1 of #21: a sensitive value repeated in an attribute whose mask does not mark it (which
/// Terraform does produce) is hidden in every rendered form: JSON-escaped (quotes, backslashes,
/// tabs, control characters), Markdown-escaped (`|` in a table), longer than the display cut
/// (and the prefix a cut leaves), in an address, an output and a multi-line value.
#[test]
fn transformed_sensitive_values_reach_no_channel_in_any_form() {
    let quoted = "Qz\"8\\kW\tv|N\u{1}r-quoted-secret";
    let long = format!(
        "LONG{}",
        (0..450)
            .map(|i| format!("{:x}", (i * 7919 + 13) % 997))
            .collect::<String>()
    );
    let piped = "Pv|7*_x`ab|cd-piped";
    let multi = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----";
    assert!(
        long.len() > 1100,
        "longer than what is kept of a value while reading"
    );
    let secrets = [quoted, long.as_str(), piped, multi];
    let j = |s: &str| serde_json::to_string(s).unwrap();
    let plan = format!(
        r#"{{"format_version":"1.2","terraform_version":"1.11.0","resource_changes":[
 {{"address":"aws_db_instance.a","mode":"managed","type":"aws_db_instance","name":"a","provider_name":"p","change":{{"actions":["create"],"before":null,
   "after":{{"password":{q},"token":{l},"k":{p},"pem":{m}}},"after_sensitive":{{"password":true,"token":true,"k":true,"pem":true}}}}}},
 {{"address":"aws_ssm_parameter.b","mode":"managed","type":"aws_ssm_parameter","name":"b","provider_name":"p","change":{{"actions":["update"],
   "before":{{"d1":"x","d2":"x","d3":"x","d4":"x","d5":"x"}},
   "after":{{"d1":{q},"d2":{l},"d3":{cut},"d4":{p},"d5":{m}}}}}}},
 {{"address":{addr},"mode":"managed","type":"null_resource","name":"c","provider_name":"p","action_reason":{p},"change":{{"actions":["create"],"before":null,"after":{{}}}}}}],
 "output_changes":{{"o":{{"actions":["update"],"before":"x","after":{q}}},{p}:{{"actions":["create"],"before":null,"after":{l}}}}},
 "applyable":true,"errored":false}}"#,
        q = j(quoted),
        l = j(&long),
        p = j(piped),
        m = j(multi),
        cut = j(&format!("{}{long}", "x".repeat(150))),
        addr = j(&format!("null_resource.c[\"{piped}\"]")),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", &plan);
    let gh = GithubFake::start();
    for format in ["text", "markdown", "json"] {
        let mut sb = Sandbox::actions();
        sb.set("GITHUB_REPOSITORY", "acme/infra")
            .set("GITHUB_API_URL", gh.url())
            .set("GITOPS_GITHUB_TOKEN", "ghs_x");
        let r = sb.run(
            "plan-gate",
            &["--plan", &path, "--format", format, "--pr-number", "5"],
        );
        r.expect_code(0);
        assert!(sb.summary().contains("(sensitive)"), "{}", sb.summary());
        assert!(
            sb.summary().contains("d3"),
            "the open attributes are listed"
        );
        for (name, text) in channels(&sb, &r, &gh) {
            let text: String = text
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .collect();
            for secret in secrets {
                for form in leaked_forms(secret) {
                    assert!(
                        !text.contains(&form),
                        "{format}: a form of a sensitive value reached {name}: {form:?}"
                    );
                }
            }
        }
    }
}

/// Item 2 of #21: past the cap on distinct sensitive values, no value is shown and the run
/// says so (and many copies of one value do not count towards the cap).
#[test]
fn too_many_distinct_sensitive_values_withhold_every_value_and_say_so() {
    let n = plan::load::SENSITIVE_MAX + 5;
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"address":"aws_ssm_parameter.p{i}","mode":"managed","type":"aws_ssm_parameter","name":"p{i}","provider_name":"p","change":{{"actions":["update"],"before":{{"value":"old","note":"x"}},"after":{{"value":"secret-number-{i:05}","note":"secret-number-{j:05}"}},"after_sensitive":{{"value":true}}}}}}"#,
                j = n - 1 - i
            )
        })
        .collect();
    let plan = format!(
        r#"{{"format_version":"1.2","resource_changes":[{}]}}"#,
        entries.join(",")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", &plan);
    let sb = Sandbox::actions();
    let r = sb.run("plan-gate", &["--plan", &path, "--format", "markdown"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("more distinct sensitive values than plan-gate can scrub"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("::warning"), "{}", r.all());
    assert!(
        r.stdout
            .contains("1500 sensitive values were not registered with the runner's masks"),
        "{}",
        r.all()
    );
    let summary = sb.summary();
    assert!(summary.contains("no attribute or output value is shown"));
    assert!(summary.contains("_(not shown)_"));
    assert!(!summary.contains("secret-number-"), "a value was shown");
    let log: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect();
    assert!(
        !log.iter().any(|l| l.contains("secret-number-")),
        "a value was shown"
    );
}

/// Item 9 of #21: a `mode` Terraform does not write is refused (exit 2) by both readers, naming
/// the entry and the mode (neutralised), before anything is written or sent.
#[test]
fn unknown_resource_modes_are_refused_before_anything_is_written_or_sent() {
    use plan::load::{load_bytes, load_bytes_reference};
    let gh = GithubFake::start();
    for mode in [
        "Managed",
        "managed ",
        "",
        "resource",
        "man\\naged\\u001b::error::x",
    ] {
        let text = DESTROYING.replacen(r#""mode":"managed""#, &format!(r#""mode":"{mode}""#), 1);
        let bytes = text.as_bytes();
        let want = PlanError::UnknownMode {
            address: "aws_db_instance.main".into(),
            mode: serde_json::from_str(&format!("\"{mode}\"")).unwrap(),
        };
        assert_eq!(load_bytes(bytes, &Limits::default()).unwrap_err(), want);
        assert_eq!(
            load_bytes_reference(bytes, &Limits::default()).unwrap_err(),
            want
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "p.json", &text);
        let mut sb = Sandbox::actions();
        sb.set("GITHUB_REPOSITORY", "acme/infra")
            .set("GITHUB_API_URL", gh.url())
            .set("GITOPS_GITHUB_TOKEN", "ghs_x");
        let r = sb.run(
            "plan-gate",
            &["--plan", &path, "--environment", "prod", "--pr-number", "3"],
        );
        r.expect_code(2);
        assert!(
            r.all().contains("`aws_db_instance.main` has mode")
                && r.all().contains("which Terraform does not define"),
            "{}",
            r.all()
        );
        assert!(
            !r.all().contains("\n::error::x") && !r.all().contains('\u{1b}'),
            "{}",
            r.all()
        );
        assert!(sb.outputs().is_empty(), "no output is written");
        assert!(sb.summary().is_empty(), "no summary is written");
    }
    assert!(gh.requests().is_empty(), "nothing is sent");
    // The modes Terraform writes, and an absent one (managed), still pass.
    for mode in [r#""mode":"managed","#, r#""mode":"data","#, ""] {
        let text = DESTROYING.replacen(r#""mode":"managed","#, mode, 1);
        assert!(
            load_bytes(text.as_bytes(), &Limits::default()).is_ok(),
            "{mode}"
        );
    }
}

/// Item 10 of #21: numbers are shown as Terraform wrote them (out of `f64`'s range, more digits
/// than `f64` holds), and the digest does not change.
#[test]
fn numbers_are_shown_as_written_and_the_digest_is_unchanged() {
    let plan = r#"{"format_version":"1.2","resource_changes":[
 {"address":"terraform_data.n","mode":"managed","type":"terraform_data","name":"n","provider_name":"p","change":{"actions":["update"],
  "before":{"big":1e400,"precise":0.1000000000000000000001,"int":123456789012345678901234567890,"same":1e400},
  "after":{"big":2E+400,"precise":0.1000000000000000000002,"int":123456789012345678901234567891,"same":1e400}}}],
 "output_changes":{"o":{"actions":["update"],"before":1e400,"after":-1.50}}}"#;
    let s = plan::load::load_bytes(plan.as_bytes(), &Limits::default()).unwrap();
    let r = plan::load::load_bytes_reference(plan.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(format!("{s:?}"), format!("{r:?}"));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", plan);
    for format in ["text", "markdown"] {
        let sb = Sandbox::actions();
        let run = sb.run("plan-gate", &["--plan", &path, "--format", format]);
        run.expect_code(0);
        for text in [
            "1e400",
            "2E+400",
            "0.1000000000000000000001",
            "0.1000000000000000000002",
            "123456789012345678901234567890",
            "123456789012345678901234567891",
            "-1.50",
        ] {
            assert!(
                run.stdout.contains(text),
                "{format}: {text} not shown\n{}",
                run.stdout
            );
        }
        assert!(
            !run.stdout.contains("same"),
            "an unchanged attribute is not listed"
        );
        assert!(!run.stdout.contains("null"), "{}", run.stdout);
        assert_eq!(sb.outputs()["plan-digest"], s.digest);
    }
}

fn comment_run(gh: &GithubFake, plan: &str, env: &str, extra: &[&str]) -> (Sandbox, Run) {
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_REPOSITORY", "acme/infra")
        .set("GITHUB_API_URL", gh.url())
        .set("GITOPS_GITHUB_TOKEN", "ghs_FAKETOKEN0123456789abcdef");
    let mut args = vec!["--plan", plan, "--environment", env, "--pr-number", "7"];
    args.extend_from_slice(extra);
    let r = sb.run("plan-gate", &args);
    (sb, r)
}

/// Item 12 of #21: a comment that carries our marker but was written by someone else is never
/// edited (whoever the token is); a new one is created and the log says why.
#[test]
fn a_comment_with_our_marker_by_someone_else_is_never_edited() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let marker = plan::comment::marker("dev");
    let forged = format!("pwned\n{marker}\n");

    // An installation token (GET /user answers 403): only github-actions[bot] is us.
    let gh = GithubFake::start();
    let mallory = gh.add_comment(&forged, "mallory");
    let other_bot = gh.add_comment(&forged, "other-app[bot]");
    let (_sb, r) = comment_run(&gh, &plan, "dev", &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("PR comment created"), "{}", r.all());
    assert!(
        r.stdout
            .contains("was written by `mallory`, not by us (`github-actions[bot]`)"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("`other-app[bot]`"), "{}", r.all());
    assert!(
        gh.requests().iter().all(|q| q.method != "PATCH"),
        "no PATCH"
    );
    let c = gh.comments();
    assert_eq!(c.len(), 3);
    for id in [mallory, other_bot] {
        assert_eq!(c.iter().find(|c| c.id == id).unwrap().body, forged);
    }
    // Our own comment (now the third) is the one a re-run edits.
    let (_sb, r) = comment_run(&gh, &plan, "dev", &[]);
    assert!(
        r.stdout.contains("PR comment updated in place"),
        "{}",
        r.all()
    );
    let patches: Vec<String> = gh
        .requests()
        .into_iter()
        .filter(|q| q.method == "PATCH")
        .map(|q| q.path)
        .collect();
    assert_eq!(
        patches,
        [format!("/repos/acme/infra/issues/comments/{}", c[2].id)]
    );

    // A user token: GET /user names the user, whose comments alone are edited.
    let gh = GithubFake::start();
    gh.set_user("alice");
    gh.add_comment(&forged, "mallory");
    let alices = gh.add_comment(&forged, "alice");
    let (_sb, r) = comment_run(&gh, &plan, "dev", &[]);
    assert!(
        r.stdout.contains("PR comment updated in place"),
        "{}",
        r.all()
    );
    let patches: Vec<String> = gh
        .requests()
        .into_iter()
        .filter(|q| q.method == "PATCH")
        .map(|q| q.path)
        .collect();
    assert_eq!(
        patches,
        [format!("/repos/acme/infra/issues/comments/{alices}")]
    );

    // `comment-author` names a GitHub App's bot: github-actions[bot]'s comment is not ours.
    let gh = GithubFake::start();
    gh.add_comment(&forged, "github-actions[bot]");
    let (_sb, r) = comment_run(&gh, &plan, "dev", &["--comment-author", "deploy-app[bot]"]);
    assert!(r.stdout.contains("PR comment created"), "{}", r.all());
    assert!(gh.requests().iter().all(|q| q.method != "PATCH"));
    assert!(
        gh.requests().iter().all(|q| q.path != "/user"),
        "an explicit identity is not asked for"
    );
    // A bad login is refused before anything is sent.
    for bad in [
        "bad login",
        "-x",
        "a--b",
        "x[bot][bot]",
        "[bot]",
        "é",
        "a/b",
    ] {
        let flag = format!("--comment-author={bad}");
        let (_sb, r) = comment_run(&gh, &plan, "dev", &[&flag]);
        r.expect_code(2);
        assert!(r.all().contains("comment-author"), "{}", r.all());
    }
    assert_eq!(gh.requests().len(), 2, "only the one run's list and create");
}

/// Item 12 of #21: a plan address that carries the marker text of another key cannot make our
/// comment for one environment look like the comment for another.
#[test]
fn a_plan_address_carrying_the_marker_text_cannot_forge_a_marker() {
    let prod = plan::comment::marker("prod");
    let text = DESTROYING.replace(
        "aws_s3_bucket.logs",
        &format!("aws_s3_bucket.logs[\\\"{}\\\"]", prod.replace('"', "\\\"")),
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", &text);
    let gh = GithubFake::start();
    let (_sb, r) = comment_run(&gh, &plan, "dev", &[]);
    r.expect_code(0);
    let body = &gh.comments()[0].body;
    assert!(body.contains("aws\\_s3\\_bucket") || body.contains("aws_s3_bucket.logs"));
    assert!(!body.contains(&prod), "{body}");
    assert!(body.trim_end().ends_with(&plan::comment::marker("dev")));
    let (_sb, r) = comment_run(
        &gh,
        &plan,
        "prod",
        &["--allow", "protect-production", "--allow-reason", "test"],
    );
    assert!(r.stdout.contains("PR comment created"), "{}", r.all());
    assert_eq!(gh.comments().len(), 2);
    assert!(
        gh.requests().iter().all(|q| q.method != "PATCH"),
        "the dev comment is not edited"
    );
}

/// #13 (F15 for comments): the create POST takes effect but its answer is lost. The comments
/// are searched for ours before posting again, so there is one comment, not two (octocrab's
/// blind retry used to POST it again).
#[test]
fn a_comment_create_whose_answer_is_lost_is_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.json", DESTROYING);
    let gh = GithubFake::start();
    gh.lose_next_create_answer();
    let (sb, r) = comment_run(&gh, &plan, "dev", &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("outcome unknown"), "{}", r.all());
    assert!(r.stdout.contains("not creating another"), "{}", r.all());
    assert!(r.stdout.contains("PR comment created"), "{}", r.all());
    let c = gh.comments();
    assert_eq!(c.len(), 1, "one comment: {c:?}");
    assert!(c[0]
        .body
        .trim_end()
        .ends_with(&plan::comment::marker("dev")));
    assert!(sb.outputs()["comment-url"].ends_with(&format!("#issuecomment-{}", c[0].id)));
    let methods: Vec<String> = gh
        .requests()
        .iter()
        .map(|q| format!("{} {}", q.method, q.path))
        .collect();
    assert_eq!(
        methods,
        [
            "GET /repos/acme/infra/issues/7/comments",
            "POST /repos/acme/infra/issues/7/comments",
            "GET /repos/acme/infra/issues/7/comments",
            "GET /user",
        ]
    );
    sb.assert_no_leak(&r, &["ghs_FAKETOKEN0123456789abcdef"], &[]);
}

// #18: plan-gate takes the workspace; a preview's report says it is a preview (and gets its own
// comment key); a preview workspace for staging or prod is refused by the one rule (exit 1)
// before the plan is read or anything is sent; a bad name is exit 2.
#[test]
fn plan_gate_workspace_previews_only_where_allowed() {
    let plan = fixture("tf-scenarios.plan.json");
    let plan = plan.to_str().unwrap();
    let (_, r) = gate(&[
        "--plan",
        plan,
        "--environment",
        "dev",
        "--workspace",
        "pr-9",
        "--comment",
        "off",
        "--format",
        "markdown",
    ]);
    assert!(
        r.stdout.contains("**preview** `pr-9`"),
        "the report says it is a preview: {}",
        r.stdout
    );
    for (args, code, needle) in [
        (
            vec!["--environment", "prod", "--workspace", "pr-9"],
            1,
            "`prod` is a production environment",
        ),
        (
            vec!["--environment", "staging", "--workspace", "pr-9"],
            1,
            "previews: true",
        ),
        (
            vec!["--environment", "dev", "--workspace", "pr-9 "],
            2,
            "is not a workspace name",
        ),
        (vec!["--workspace", "pr-9"], 2, "needs `environment`"),
        (
            vec![
                "--environment",
                "dev",
                "--workspace",
                "pr-9",
                "--pr-number",
                "8",
            ],
            2,
            "is the preview of pull request 9",
        ),
    ] {
        let mut all = vec!["--plan", plan];
        all.extend(args.iter().copied());
        let (sb, r) = gate(&all);
        r.expect_code(code);
        assert!(r.all().contains(needle), "{args:?}: {}", r.all());
        assert!(
            !sb.outputs().contains_key("verdict"),
            "{args:?}: refused before reading the plan"
        );
    }
}
