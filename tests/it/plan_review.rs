//! The reviewed plan is the applied plan (#16): digest stability with real Terraform against
//! moto's S3 backend, `verify --reviewed-changes` printing what differs, `protect-stateful` and
//! `allow-data-loss` end to end through the binary.

use std::path::Path;
use std::process::Command;

use crate::support::moto::Moto;
use crate::support::{Run, Sandbox};

const REGION: &str = "eu-west-1";

/// A Terraform root with an S3 backend in moto: `input` feeds `terraform_data.app`, `with_db`
/// keeps `terraform_data.db`, and `terraform_data.stamp` takes `timestamp()` (unknown until
/// apply, different on every run).
fn write_root(dir: &Path, input: &str, with_db: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let db = if with_db {
        "resource \"terraform_data\" \"db\" {\n  input = \"orders\"\n}\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("main.tf"),
        format!(
            "terraform {{\n  backend \"s3\" {{}}\n}}\n\
             resource \"terraform_data\" \"app\" {{\n  input = \"{input}\"\n}}\n\
             resource \"terraform_data\" \"stamp\" {{\n  input = timestamp()\n}}\n{db}"
        ),
    )
    .unwrap();
}

struct Tf<'a> {
    moto: &'a Moto,
    home: &'a Path,
}

impl Tf<'_> {
    fn run(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("terraform")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home)
            .env("TF_CLI_CONFIG_FILE", self.home.join("terraformrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn init(&self, dir: &Path) {
        let backend = self.home.join("backend.hcl");
        std::fs::write(
            &backend,
            format!(
                "bucket = \"review-tfstate\"\nkey = \"app/prod/terraform.tfstate\"\nregion = \"{REGION}\"\n\
                 endpoints = {{ s3 = \"{}\" }}\nuse_path_style = true\nskip_credentials_validation = true\n\
                 skip_requesting_account_id = true\nskip_metadata_api_check = true\n",
                self.moto.endpoint()
            ),
        )
        .unwrap();
        self.run(
            dir,
            &[
                "init",
                "-no-color",
                &format!("-backend-config={}", backend.display()),
            ],
        );
    }

    /// `terraform plan -out` + `show -json`, written to `dir/<name>.json`.
    fn plan(&self, dir: &Path, name: &str) -> String {
        self.run(
            dir,
            &["plan", "-no-color", "-lock-timeout=30s", "-out=tfplan"],
        );
        let json = self.run(dir, &["show", "-json", "tfplan"]);
        let p = dir.join(format!("{name}.json"));
        std::fs::write(&p, json).unwrap();
        p.display().to_string()
    }
}

fn create_bucket(moto: &Moto) {
    let ok = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "--aws-sigv4",
            &format!("aws:amz:{REGION}:s3"),
            "--user",
            "test:test",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/xml",
            "--data",
            &format!("<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"),
            &format!("{}/review-tfstate", moto.endpoint()),
        ])
        .status()
        .unwrap();
    assert!(ok.success(), "could not create the state bucket in moto");
}

fn gate(plan: &str) -> (Sandbox, Run) {
    let sb = Sandbox::actions();
    let r = sb.run("plan-gate", &["--plan", plan, "--comment", "off"]);
    (sb, r)
}

/// `plan-gate verify --plan PLAN --digest DIGEST EXTRA...` in `sb`.
fn verify_in(sb: Sandbox, plan: &str, digest: &str, extra: &[&str]) -> (Sandbox, Run) {
    let mut args = vec!["verify", "--plan", plan, "--digest", digest];
    args.extend_from_slice(extra);
    let r = sb.run("plan-gate", &args);
    (sb, r)
}

fn verify(plan: &str, digest: &str, changes: &str) -> (Sandbox, Run) {
    verify_in(
        Sandbox::actions(),
        plan,
        digest,
        &["--reviewed-changes", changes],
    )
}

/// Plan twice from the same configuration and state: one digest, even though `timestamp()`
/// differs between the runs. Change the state between (a second apply from another checkout):
/// another digest, and verify names what differs by address and action.
#[test]
fn a_replan_of_the_same_state_verifies_and_a_state_changed_behind_its_back_is_named() {
    if !crate::support::has_tool("terraform") {
        crate::support::skip_loudly(
            "a_replan_of_the_same_state_verifies_and_a_state_changed_behind_its_back_is_named",
            "terraform is not installed (the manifest comparison is still unit-tested)",
        );
        return;
    }
    let moto = Moto::start();
    create_bucket(&moto);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("terraformrc"), "").unwrap();
    let tf = Tf {
        moto: &moto,
        home: work.path(),
    };
    // Deployed: v1 with its database.
    let main = work.path().join("main");
    write_root(&main, "v1", true);
    tf.init(&main);
    tf.run(&main, &["apply", "-auto-approve", "-no-color"]);
    // The reviewed plan: v2.
    write_root(&main, "v2", true);
    let reviewed = tf.plan(&main, "reviewed");
    let (sb, r) = gate(&reviewed);
    r.expect_code(0);
    let digest = sb.outputs()["plan-digest"].clone();
    let changes = sb.outputs()["changes"].clone();
    assert!(changes.contains("terraform_data.app"), "{changes}");
    assert!(
        !changes.contains("v2"),
        "the manifest holds no values: {changes}"
    );

    // The apply job's re-plan, seconds later: timestamp() is another value, unknown in both.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = tf.plan(&main, "again");
    let (sb, r) = verify(&again, &digest, &changes);
    r.expect_code(0);
    assert!(r.all().contains("plan digest verified"), "{}", r.all());
    assert_eq!(sb.outputs()["differences"], "");

    // Someone applies from another checkout (the database is gone from its configuration).
    let other = work.path().join("other");
    write_root(&other, "v1", false);
    tf.init(&other);
    tf.run(&other, &["apply", "-auto-approve", "-no-color"]);
    let fresh = tf.plan(&main, "fresh");
    let (sb, r) = verify(&fresh, &digest, &changes);
    r.expect_code(1);
    let all = r.all();
    assert!(all.contains("not the one that was reviewed"), "{all}");
    assert!(
        all.contains("+ terraform_data.db: create (not in the reviewed plan)"),
        "{all}"
    );
    // The stamp's recorded value changed too (the other apply wrote a new one).
    assert!(
        all.contains("~ terraform_data.stamp: update, with other values than reviewed"),
        "{all}"
    );
    let diff = &sb.outputs()["differences"];
    assert!(diff.contains("terraform_data.db"), "{diff}");
    assert!(
        sb.summary().contains("Nothing was applied"),
        "{}",
        sb.summary()
    );
}

const STATEFUL: &str = r#"{"format_version":"1.2","terraform_version":"1.11.4","resource_changes":[
 {"address":"module.data.aws_db_instance.main","module_address":"module.data","mode":"managed","type":"aws_db_instance","name":"main","provider_name":"registry.terraform.io/hashicorp/aws","change":{"actions":["delete"],"before":{"id":"db-1"},"after":null}}]}"#;

#[test]
fn a_rollback_destroying_a_database_needs_allow_data_loss_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.json");
    std::fs::write(&plan, STATEFUL).unwrap();
    let plan = plan.display().to_string();
    let run = |extra: &[&str]| {
        let sb = Sandbox::actions();
        let mut args = vec![
            "--plan",
            plan.as_str(),
            "--comment",
            "off",
            "--environment",
            "dev",
        ];
        args.extend_from_slice(extra);
        let r = sb.run("plan-gate", &args);
        (sb, r)
    };
    // A deploy of dev: not checked.
    run(&[]).1.expect_code(0);
    // A rollback: refused, naming the rule and the way out.
    let (sb, r) = run(&["--rollback"]);
    r.expect_code(1);
    assert!(r.all().contains("protect-stateful"), "{}", r.all());
    assert!(
        sb.summary().contains("`protect-stateful`"),
        "{}",
        sb.summary()
    );
    assert!(sb.summary().contains("stateful"), "{}", sb.summary());
    // allow-data-loss without a reason: exit 2 before the plan is read; nothing written.
    for extra in [
        &["--rollback", "--allow-data-loss"][..],
        &[
            "--rollback",
            "--allow-data-loss",
            "--data-loss-reason",
            "  ",
        ][..],
    ] {
        let (sb, r) = run(extra);
        r.expect_code(2);
        assert!(
            r.all().contains("invalid input `data-loss-reason`"),
            "{}",
            r.all()
        );
        assert!(sb.outputs().is_empty() && sb.summary().is_empty());
    }
    // The rule is not overridden through the generic `allow`.
    let (sb, r) = run(&[
        "--rollback",
        "--allow",
        "protect-stateful",
        "--allow-reason",
        "x",
    ]);
    r.expect_code(2);
    assert!(
        r.all().contains("only with `allow-data-loss`"),
        "{}",
        r.all()
    );
    assert!(sb.outputs().is_empty());
    // With a reason: passes, logged, shown, and set as an output for the deploy tag.
    let reason = "INC-9: the orders database moved to the new cluster";
    let (sb, r) = run(&[
        "--rollback",
        "--allow-data-loss",
        "--data-loss-reason",
        reason,
    ]);
    r.expect_code(0);
    assert!(r.all().contains("allow-data-loss given"), "{}", r.all());
    assert_eq!(sb.outputs()["data-loss-reason"], reason);
    assert!(
        sb.summary().contains("Data loss allowed"),
        "{}",
        sb.summary()
    );
    // Without allow-data-loss the output is empty.
    let (sb, _) = run(&[]);
    assert_eq!(sb.outputs()["data-loss-reason"], "");
}

#[test]
fn a_manifest_of_another_plan_or_a_malformed_one_is_refused_before_the_plan_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.json");
    std::fs::write(&plan, STATEFUL).unwrap();
    let plan = plan.display().to_string();
    let (sb, r) = gate(&plan);
    r.expect_code(0);
    let digest = sb.outputs()["plan-digest"].clone();
    let changes = sb.outputs()["changes"].clone();
    let other = format!("sha256:{}", "0".repeat(64));
    for (d, m, want) in [
        (other.as_str(), changes.as_str(), "describes the plan"),
        (digest.as_str(), "{\"v\":1}", "is not a change manifest"),
    ] {
        let (sb, r) = verify("/nonexistent/plan.json", d, m);
        r.expect_code(2);
        assert!(
            r.all().contains("invalid input `reviewed-changes`"),
            "{}",
            r.all()
        );
        assert!(r.all().contains(want), "{}", r.all());
        assert!(sb.outputs().is_empty());
    }
    // The reviewed plan itself verifies with its manifest.
    verify(&plan, &digest, &changes).1.expect_code(0);
}

const PR_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn github_sandbox(proxy: &crate::support::prism::Prism, run_id: &str) -> Sandbox {
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_API_URL", proxy.url())
        .set("GITHUB_REPOSITORY", "o/r")
        .set("GITHUB_SERVER_URL", "https://github.com")
        .set("GITHUB_RUN_ID", run_id)
        .set("GITHUB_TOKEN", "ghs_planStatusToken0123456789");
    sb
}

fn plan_file(dir: &Path, name: &str, bucket: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            r#"{{"format_version":"1.2","terraform_version":"1.11.4","resource_changes":[
 {{"address":"aws_s3_bucket.logs","mode":"managed","type":"aws_s3_bucket","name":"logs","provider_name":"registry.terraform.io/hashicorp/aws","change":{{"actions":["create"],"before":null,"after":{{"bucket":"{bucket}"}}}}}}]}}"#
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// The promotion pull request's plan job records its digest on the head; the deploy run's own
/// plan job records its own; the apply job requires the two to be equal (or the pull request's
/// to be older than the current deploy). Every request is checked against GitHub's OpenAPI
/// description by Prism in front of the fake.
#[test]
fn the_apply_requires_the_plan_recorded_on_the_promotion_pull_request_head() {
    let fake = crate::support::github_fake::GithubFake::start();
    let proxy = crate::support::prism::Prism::proxy(&fake.url());
    let dir = tempfile::tempdir().unwrap();
    let reviewed = plan_file(dir.path(), "pr.json", "logs");
    let other = plan_file(dir.path(), "other.json", "logs-2");
    let gate_on = |run: &str, plan: &str| {
        let sb = github_sandbox(&proxy, run);
        let r = sb.run(
            "plan-gate",
            &[
                "--plan",
                plan,
                "--comment",
                "off",
                "--environment",
                "prod",
                "--allow",
                "protect-production",
                "--allow-reason",
                "new bucket",
                "--status-sha",
                PR_SHA,
            ],
        );
        r.expect_code(0);
        assert!(r.all().contains("plan recorded on"), "{}", r.all());
        sb.outputs()["plan-digest"].clone()
    };
    let verify_on = |run: &str, plan: &str, digest: &str, deployed_at: &str| {
        let extra = [
            "--environment",
            "prod",
            "--sha",
            PR_SHA,
            "--deployed-at",
            deployed_at,
        ];
        verify_in(github_sandbox(&proxy, run), plan, digest, &extra)
    };
    // Run 1 is the pull request's plan; run 2 is the deploy, whose plan job plans again.
    let d1 = gate_on("1", &reviewed);
    let st = fake.state.lock().unwrap().posted_statuses[PR_SHA].clone();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["context"], "gitops/plan/prod");
    assert_eq!(st[0]["description"], format!("plan {d1}"));
    assert_eq!(st[0]["target_url"], "https://github.com/o/r/actions/runs/1");

    // The same plan: passes (production: `auto` requires it).
    let d2 = gate_on("2", &reviewed);
    assert_eq!(d1, d2);
    let (sb, r) = verify_on("2", &reviewed, &d2, "2026-12-01T11:00:00Z");
    r.expect_code(0);
    assert_eq!(sb.outputs()["reviewed-plan"], "matches");

    // Another plan in the deploy run (its own status is not the pull request's record): refused.
    let d3 = gate_on("3", &other);
    let (sb, r) = verify_on("3", &other, &d3, "2026-12-01T11:00:00Z");
    r.expect_code(1);
    assert!(
        r.all()
            .contains("is not the one the promotion pull request's reviewers saw"),
        "{}",
        r.all()
    );
    assert!(r.all().contains(&d1), "{}", r.all());
    assert!(!sb.outputs().contains_key("reviewed-plan"));
    // ... unless the pull request's plan is older than the current deploy: re-planned, not trusted.
    let (sb, r) = verify_on("3", &other, &d3, "2026-12-01T13:00:00Z");
    r.expect_code(0);
    assert_eq!(sb.outputs()["reviewed-plan"], "replanned");
    assert!(r.all().contains("not trusted"), "{}", r.all());

    // No record at all (another commit): refused, naming the context.
    let sb = github_sandbox(&proxy, "4");
    let r = sb.run(
        "plan-gate",
        &[
            "verify",
            "--plan",
            &reviewed,
            "--digest",
            &d1,
            "--environment",
            "prod",
            "--sha",
            &"a".repeat(40),
        ],
    );
    r.expect_code(1);
    assert!(r.all().contains("no plan is recorded on"), "{}", r.all());
    // Bad inputs: exit 2 before any request.
    let before = fake.requests().len();
    for (args, want) in [
        (
            vec!["--deployed-at", "yesterday"],
            "invalid input `deployed-at`",
        ),
        (vec!["--sha", "abc"], "invalid input `sha`"),
    ] {
        let sb = github_sandbox(&proxy, "5");
        let mut all = vec![
            "verify",
            "--plan",
            &reviewed,
            "--digest",
            &d1,
            "--environment",
            "prod",
        ];
        all.extend(args);
        if !all.contains(&"--sha") {
            all.extend(["--sha", PR_SHA]);
        }
        let r = sb.run("plan-gate", &all);
        r.expect_code(2);
        assert!(r.all().contains(want), "{}", r.all());
    }
    assert_eq!(
        fake.requests().len(),
        before,
        "no request after a bad input"
    );
    // Off: no request at all.
    let sb = github_sandbox(&proxy, "6");
    let r = sb.run(
        "plan-gate",
        &[
            "verify",
            "--plan",
            &other,
            "--digest",
            &d3,
            "--environment",
            "prod",
            "--require-reviewed-plan",
            "false",
        ],
    );
    r.expect_code(0);
    assert_eq!(sb.outputs()["reviewed-plan"], "not-required");
    assert_eq!(fake.requests().len(), before);
    proxy.assert_no_violations();
}

/// #14: a stack's apply job (a matrix entry, which gets no per-entry outputs) reads its
/// reviewed digest from the status `gitops/plan/<env>/<stack>` that this run's plan job
/// recorded; another run's status, another stack's, or none is never taken (exit 1, nothing
/// applied), and bad inputs are exit 2 before any request.
#[test]
fn a_stack_apply_reads_its_reviewed_digest_from_this_runs_plan_status() {
    let fake = crate::support::github_fake::GithubFake::start();
    let proxy = crate::support::prism::Prism::proxy(&fake.url());
    let dir = tempfile::tempdir().unwrap();
    let net = plan_file(dir.path(), "net.json", "net");
    let svc = plan_file(dir.path(), "svc.json", "svc");
    let gate_on = |run: &str, plan: &str, stack: &str| {
        let sb = github_sandbox(&proxy, run);
        let r = sb.run(
            "plan-gate",
            &[
                "--plan",
                plan,
                "--comment",
                "off",
                "--environment",
                "dev",
                "--stack",
                stack,
                "--status-sha",
                PR_SHA,
            ],
        );
        r.expect_code(0);
        sb.outputs()["plan-digest"].clone()
    };
    let verify_on = |run: &str, plan: &str, stack: &str| {
        let sb = github_sandbox(&proxy, run);
        let r = sb.run(
            "plan-gate",
            &[
                "verify",
                "--plan",
                plan,
                "--digest-from-status",
                "--environment",
                "dev",
                "--stack",
                stack,
                "--sha",
                PR_SHA,
                "--require-reviewed-plan",
                "false",
            ],
        );
        (sb, r)
    };
    let d_net = gate_on("7", &net, "network");
    gate_on("7", &svc, "service");
    let st = fake.state.lock().unwrap().posted_statuses[PR_SHA].clone();
    assert!(st.iter().any(|s| s["context"] == "gitops/plan/dev/network"));

    let (sb, r) = verify_on("7", &net, "network");
    r.expect_code(0);
    assert!(
        r.all().contains(&format!(
            "the reviewed digest of this run's plan job: {d_net}"
        )),
        "{}",
        r.all()
    );
    assert_eq!(sb.outputs()["plan-digest"], d_net);
    // The service plan against network's status: another plan, refused.
    let (_, r) = verify_on("7", &svc, "network");
    r.expect_code(1);
    assert!(
        r.all().contains("is not the one that was reviewed"),
        "{}",
        r.all()
    );
    // Another run (8) recorded nothing: refused before the plan is compared.
    let (sb, r) = verify_on("8", &net, "network");
    r.expect_code(1);
    assert!(
        r.all().contains("no plan of this run is recorded on 0123456789abcdef0123456789abcdef01234567 (commit status `gitops/plan/dev/network` with this run as its target)"),
        "{}",
        r.all()
    );
    assert!(!sb.outputs().contains_key("plan-digest"));
    let (_, r) = verify_on("7", &net, "db");
    r.expect_code(1);
    // A plan the gate refused (a policy) records `failure`: never applied.
    let sb = github_sandbox(&proxy, "9");
    let policy = dir.path().join("policy.yml");
    std::fs::write(&policy, "rules:\n  forbid-providers: [hashicorp/aws]\n").unwrap();
    let policy = policy.display().to_string();
    sb.run(
        "plan-gate",
        &[
            "--plan",
            &net,
            "--comment",
            "off",
            "--environment",
            "prod",
            "--stack",
            "network",
            "--status-sha",
            PR_SHA,
            "--policy",
            &policy,
        ],
    )
    .expect_code(1);
    let r = sb.run(
        "plan-gate",
        &[
            "verify",
            "--plan",
            &net,
            "--digest-from-status",
            "--environment",
            "prod",
            "--stack",
            "network",
            "--sha",
            PR_SHA,
            "--require-reviewed-plan",
            "false",
        ],
    );
    r.expect_code(1);
    assert!(
        r.all()
            .contains("was refused by plan-gate: nothing may be applied"),
        "{}",
        r.all()
    );

    let before = fake.requests().len();
    for (args, want) in [
        (
            vec![
                "--digest-from-status",
                "--digest",
                &d_net,
                "--environment",
                "dev",
                "--stack",
                "network",
            ],
            "not both",
        ),
        (
            vec!["--digest-from-status", "--environment", "dev"],
            "give `stack`",
        ),
        (
            vec!["--digest-from-status", "--stack", "network"],
            "give `environment`",
        ),
        (
            vec![
                "--digest-from-status",
                "--environment",
                "qa",
                "--stack",
                "network",
            ],
            "qa",
        ),
        (vec![], "`verify` needs the reviewed digest"),
    ] {
        let sb = github_sandbox(&proxy, "7");
        let mut all = vec!["verify", "--plan", &net, "--sha", PR_SHA];
        all.extend(args);
        let r = sb.run("plan-gate", &all);
        r.expect_code(2);
        assert!(r.all().contains(want), "{want}: {}", r.all());
    }
    let mut sb = github_sandbox(&proxy, "7");
    sb.unset("GITHUB_RUN_ID");
    let r = sb.run(
        "plan-gate",
        &[
            "verify",
            "--plan",
            &net,
            "--sha",
            PR_SHA,
            "--digest-from-status",
            "--environment",
            "dev",
            "--stack",
            "network",
        ],
    );
    r.expect_code(2);
    assert!(r.all().contains("the run is unknown"), "{}", r.all());
    assert_eq!(
        fake.requests().len(),
        before,
        "no request after a bad input"
    );
    proxy.assert_no_violations();
}

// ---------------------------------------------------------------- template structure

use serde_yaml_ng::Value;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn uses_our(step: &Value, action: &str) -> bool {
    s(step, "uses").starts_with(&format!("gitops-actions/gitops-actions/actions/{action}@"))
}

fn holds_deploy_role(job: &Value) -> bool {
    job["steps"].as_sequence().into_iter().flatten().any(|st| {
        uses_our(st, "oidc-login")
            && s(&st["with"], "role-to-assume").contains("AWS_DEPLOY_ROLE_ARN")
    })
}

/// `${{ needs.JOB.outputs.NAME }}` -> (JOB, NAME).
fn needs_output(expr: &str) -> Option<(String, String)> {
    let inner = expr.trim().strip_prefix("${{")?.strip_suffix("}}")?.trim();
    let rest = inner.strip_prefix("needs.")?;
    let (job, out) = rest.split_once(".outputs.")?;
    Some((job.to_string(), out.to_string()))
}

/// A step whose script runs the engine's `verb`: `terraform`, `tofu`, or the templates'
/// `"$TF_ENGINE"` (either of them).
fn runs_engine(st: &Value, verb: &str) -> bool {
    let run = s(st, "run");
    ["terraform", "tofu", "\"$TF_ENGINE\""]
        .iter()
        .any(|e| run.contains(&format!("{e} {verb}")))
}

/// No job holding the deploy role applies without a `plan-gate verify` against a digest that
/// came from a job outside the protected environment (gated there by `plan-gate`), and nothing
/// re-plans between that verify and the apply.
fn split_problems(file: &str, wf: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let jobs = wf["jobs"].as_mapping().cloned().unwrap_or_default();
    for (name, job) in &jobs {
        let name = name.as_str().unwrap_or("?");
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        let Some(apply) = steps.iter().position(|st| runs_engine(st, "apply")) else {
            continue;
        };
        if !holds_deploy_role(job) {
            continue;
        }
        let here = s(job, "environment");
        let verify = steps[..apply]
            .iter()
            .rposition(|st| uses_our(st, "plan-gate") && s(&st["with"], "command") == "verify");
        let Some(verify) = verify else {
            problems.push(format!(
                "{file}: job `{name}` applies without `plan-gate verify` before it"
            ));
            continue;
        };
        if steps[verify + 1..apply]
            .iter()
            .any(|st| runs_engine(st, "plan"))
        {
            problems.push(format!(
                "{file}: job `{name}` plans again between verify and apply"
            ));
        }
        if s(&steps[verify]["with"], "digest-from-status") == "true" {
            problems.extend(status_digest_problems(
                file,
                name,
                job,
                &steps[verify],
                &jobs,
            ));
            continue;
        }
        let Some((from, out)) = needs_output(s(&steps[verify]["with"], "digest")) else {
            problems.push(format!(
                "{file}: job `{name}` verifies against a digest that is not another job's output"
            ));
            continue;
        };
        let needs: Vec<&str> = match &job["needs"] {
            Value::String(n) => vec![n.as_str()],
            Value::Sequence(l) => l.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !needs.contains(&from.as_str()) {
            problems.push(format!("{file}: job `{name}` does not need `{from}`"));
        }
        let Some(src) = jobs.get(from.as_str()) else {
            problems.push(format!("{file}: job `{from}` does not exist"));
            continue;
        };
        if s(src, "environment") == here || !s(src, "environment").ends_with("-plan") {
            problems.push(format!(
                "{file}: the digest comes from `{from}`, which is not in a plan environment outside `{name}`'s protected one"
            ));
        }
        if holds_deploy_role(src) {
            problems.push(format!("{file}: `{from}` holds the deploy role"));
        }
        // The output is plan-gate's digest of a gated plan in that job.
        let gated = s(&src["outputs"], &out)
            .trim_start_matches("${{")
            .trim()
            .strip_prefix("steps.")
            .and_then(|r| r.split_once(".outputs.plan-digest"))
            .is_some_and(|(id, _)| {
                src["steps"].as_sequence().into_iter().flatten().any(|st| {
                    s(st, "id") == id
                        && uses_our(st, "plan-gate")
                        && matches!(s(&st["with"], "command"), "" | "gate")
                })
            });
        if !gated {
            problems.push(format!(
                "{file}: `{from}`'s output `{out}` is not the digest of a plan-gate gate step"
            ));
        }
    }
    problems
}

/// A stack's apply (`digest-from-status`) verifies against the commit status its plan job
/// wrote in this run: the job needs a plan job outside its protected environment, in a `-plan`
/// environment, without the deploy role, over the same matrix (the same layer), whose
/// plan-gate gate step records the same stack's digest on the same commit.
fn status_digest_problems(
    file: &str,
    name: &str,
    job: &Value,
    verify: &Value,
    jobs: &serde_yaml_ng::Mapping,
) -> Vec<String> {
    let mut problems = Vec::new();
    let w = &verify["with"];
    if !s(w, "digest").is_empty() {
        problems.push(format!(
            "{file}: job `{name}` gives a digest and digest-from-status"
        ));
    }
    if s(w, "stack") != "${{ matrix.stack }}" {
        problems.push(format!(
            "{file}: job `{name}` verifies another stack's status"
        ));
    }
    let needs: Vec<&str> = match &job["needs"] {
        Value::String(n) => vec![n.as_str()],
        Value::Sequence(l) => l.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let matrix = &job["strategy"]["matrix"];
    let planners: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|n| {
            let Some(src) = jobs.get(*n) else {
                return false;
            };
            src["steps"].as_sequence().into_iter().flatten().any(|st| {
                uses_our(st, "plan-gate")
                    && matches!(s(&st["with"], "command"), "" | "gate")
                    && s(&st["with"], "stack") == "${{ matrix.stack }}"
                    && s(&st["with"], "status-sha") == s(w, "sha")
                    && s(&st["with"], "environment") == s(w, "environment")
            }) && &src["strategy"]["matrix"] == matrix
        })
        .collect();
    let [from] = planners.as_slice() else {
        problems.push(format!(
            "{file}: job `{name}` reads its digest from a status no single needed plan job over the same matrix records"
        ));
        return problems;
    };
    let src = &jobs[*from];
    if s(src, "environment") == s(job, "environment") || !s(src, "environment").ends_with("-plan") {
        problems.push(format!(
            "{file}: the status comes from `{from}`, which is not in a plan environment outside `{name}`'s protected one"
        ));
    }
    if holds_deploy_role(src) {
        problems.push(format!("{file}: `{from}` holds the deploy role"));
    }
    problems
}

#[test]
fn e2e_templates_apply_only_a_plan_verified_against_a_digest_reviewed_outside_the_protected_environment(
) {
    let dir = crate::support::root().join("workflows-templates");
    for file in ["deploy.yml", "rollback.yml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let wf: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(split_problems(file, &wf), Vec::<String>::new(), "{file}");
        assert!(
            wf["jobs"].as_mapping().unwrap().values().any(|j| {
                j["steps"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|st| runs_engine(st, "apply"))
            }),
            "{file} applies somewhere (the check above is not vacuous)"
        );
        // Each way a later edit could undo the split is caught.
        let (apply_job, plan_job) = if file == "deploy.yml" {
            ("deploy", "plan")
        } else {
            ("rollback", "plan")
        };
        type Edit = fn(&mut Value, &str, &str);
        let edits: [(&str, Edit, &str); 5] = [
            (
                "verify removed",
                |wf, a, _| {
                    let st = wf["jobs"][a]["steps"].as_sequence_mut().unwrap();
                    st.retain(|x| s(&x["with"], "command") != "verify");
                },
                "applies without `plan-gate verify`",
            ),
            (
                "digest from a step of the same job",
                |wf, a, _| {
                    for x in wf["jobs"][a]["steps"].as_sequence_mut().unwrap() {
                        if s(&x["with"], "command") == "verify" {
                            x["with"]["digest"] = "${{ steps.gate.outputs.plan-digest }}".into();
                        }
                    }
                },
                "not another job's output",
            ),
            (
                "plan job moved into the protected environment",
                |wf, a, p| {
                    let env = wf["jobs"][a]["environment"].clone();
                    wf["jobs"][p]["environment"] = env;
                },
                "not in a plan environment",
            ),
            (
                "a re-plan after verify",
                |wf, a, _| {
                    let st = wf["jobs"][a]["steps"].as_sequence_mut().unwrap();
                    let at = st.iter().position(|x| runs_engine(x, "apply")).unwrap();
                    let mut extra = serde_yaml_ng::Mapping::new();
                    extra.insert("run".into(), "terraform plan -out=tfplan".into());
                    st.insert(at, Value::Mapping(extra));
                },
                "plans again between verify and apply",
            ),
            (
                "the output is not a gate's digest",
                |wf, _, p| {
                    wf["jobs"][p]["outputs"]["plan-digest"] =
                        "${{ steps.image.outputs.digest }}".into();
                },
                "is not the digest of a plan-gate gate step",
            ),
        ];
        for (what, edit, want) in edits {
            let mut w = wf.clone();
            edit(&mut w, apply_job, plan_job);
            let p = split_problems(file, &w);
            assert!(p.iter().any(|x| x.contains(want)), "{file}, {what}: {p:?}");
        }
    }
}
