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

const BASE: &str = "1111111111111111111111111111111111111111";
const NEWER: &str = "2222222222222222222222222222222222222222";

/// A `workflow_run` payload of a completed plan run (id `run_id`) of `head_repo`'s head
/// `PR_SHA`, listing `prs` (number, base branch) as GitHub does (none for a fork's).
fn plan_run_event(run_id: u64, head_repo: &str, conclusion: &str, prs: &[(u64, &str)]) -> String {
    let prs: Vec<serde_json::Value> = prs
        .iter()
        .map(|(n, base)| {
            serde_json::json!({
                "id": 1000 + n, "number": n, "url": format!("https://api.github.com/repos/o/r/pulls/{n}"),
                "head": {"ref": "promote/prod/0123456", "sha": PR_SHA, "repo": {"id": 1, "url": "https://api.github.com/repos/o/r", "name": "r"}},
                "base": {"ref": base, "sha": "c".repeat(40), "repo": {"id": 1, "url": "https://api.github.com/repos/o/r", "name": "r"}}
            })
        })
        .collect();
    serde_json::json!({
        "action": "completed",
        "repository": {"full_name": "o/r"},
        "workflow": {"name": "plan", "path": ".github/workflows/plan.yml"},
        "workflow_run": {
            "id": run_id, "name": "plan", "event": "pull_request", "status": "completed",
            "conclusion": conclusion, "head_sha": PR_SHA, "head_branch": "promote/prod/0123456",
            "head_repository": {"full_name": head_repo}, "repository": {"full_name": "o/r"},
            "pull_requests": prs
        }
    })
    .to_string()
}

/// The recorder's sandbox: a `workflow_run` event written to a file, the token, the repository.
fn recorder_sandbox(proxy: &crate::support::prism::Prism, event: &str) -> Sandbox {
    let mut sb = github_sandbox(proxy, "900");
    let ev = sb.path().join("event.json");
    std::fs::write(&ev, event).unwrap();
    sb.set("GITHUB_EVENT_NAME", "workflow_run")
        .set("GITHUB_EVENT_PATH", ev.display().to_string());
    sb
}

fn posts(fake: &crate::support::github_fake::GithubFake) -> usize {
    fake.requests_to("POST", "/repos/o/r/statuses").len()
}

/// Across a promotion pull request: its plan job (the pull request's code, no token) writes the
/// value-free record; the recorder (`plan-gate record`, the `workflow_run` of that plan) posts it
/// on the head, the commit and base taken from the event; the deploy run's plan job records its
/// own plan; the apply job requires the two to be equal and the record to be made against the
/// deploy the target runs now. Every refusal says why, sets no result and sends nothing more.
/// Every request goes through Prism, which checks it against GitHub's OpenAPI description.
#[test]
fn the_apply_requires_the_plan_recorded_on_the_promotion_pull_request_head() {
    let fake = crate::support::github_fake::GithubFake::start();
    let proxy = crate::support::prism::Prism::proxy(&fake.url());
    let dir = tempfile::tempdir().unwrap();
    let reviewed = plan_file(dir.path(), "pr.json", "logs");
    let other = plan_file(dir.path(), "other.json", "logs-2");
    let allow = [
        "--allow",
        "protect-production",
        "--allow-reason",
        "new bucket",
    ];

    // 1. The pull request's plan job: no token at all; it writes the record, sends nothing.
    let records = dir.path().join("artifact/gitops-plan-record-prod");
    let rec_file = records.join("prod.json");
    let mut sb = Sandbox::actions();
    sb.set("GITHUB_REPOSITORY", "o/r");
    let mut args = vec![
        "--plan",
        &reviewed,
        "--comment",
        "off",
        "--environment",
        "prod",
    ];
    args.extend(allow);
    let rf = rec_file.display().to_string();
    args.extend(["--record-file", &rf, "--base-sha", BASE]);
    let r = sb.run("plan-gate", &args);
    r.expect_code(0);
    let d1 = sb.outputs()["plan-digest"].clone();
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rec_file).unwrap()).unwrap();
    assert_eq!(rec["environment"], "prod");
    assert_eq!(rec["digest"], d1.as_str());
    assert_eq!(rec["base"], BASE);
    assert_eq!(rec["changes"], sb.outputs()["changes"].as_str());
    assert!(
        !rec.to_string().contains("\"logs\""),
        "no value in the record: {rec}"
    );
    assert!(
        fake.requests().is_empty(),
        "the pull request's plan sends nothing"
    );
    // Without a base, or without an environment: exit 2, no record.
    for (extra, want) in [
        (
            vec!["--environment", "prod", "--record-file", &rf],
            "invalid input `base-sha`",
        ),
        (
            vec!["--record-file", &rf, "--base-sha", "none"],
            "invalid input `environment`",
        ),
        (
            vec![
                "--environment",
                "prod",
                "--record-file",
                &rf,
                "--base-sha",
                "main",
            ],
            "invalid input `base-sha`",
        ),
    ] {
        let sb = Sandbox::actions();
        let mut a = vec!["--plan", reviewed.as_str(), "--comment", "off"];
        a.extend(allow);
        a.extend(extra);
        let r = sb.run("plan-gate", &a);
        r.expect_code(2);
        assert!(r.all().contains(want), "{want}: {}", r.all());
    }

    // 2. The recorder, on the plan run 41's completion: the status goes on the head the event
    //    names, linked to that plan run.
    let artifact = dir.path().join("artifact").display().to_string();
    let event = plan_run_event(41, "o/r", "success", &[(12, "prod")]);
    let sb = recorder_sandbox(&proxy, &event);
    let r = sb.run("plan-gate", &["record", "--record", &artifact]);
    r.expect_code(0);
    assert_eq!(sb.outputs()["recorded"], "gitops/plan/prod");
    assert!(
        sb.summary().contains("pull request #12"),
        "{}",
        sb.summary()
    );
    let st = fake.state.lock().unwrap().posted_statuses[PR_SHA].clone();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["context"], "gitops/plan/prod");
    assert_eq!(st[0]["state"], "success");
    assert_eq!(st[0]["description"], format!("plan {d1} base {BASE}"));
    assert_eq!(
        st[0]["target_url"],
        "https://github.com/o/r/actions/runs/41"
    );

    // 3. The deploy run 2 (after the promotion fast-forwarded PR_SHA): its plan job records its
    //    own plan on the same commit ...
    let gate_on = |run: &str, plan: &str, sha: &str| {
        let sb = github_sandbox(&proxy, run);
        let mut a = vec!["--plan", plan, "--comment", "off", "--environment", "prod"];
        a.extend(allow);
        a.extend(["--status-sha", sha]);
        let r = sb.run("plan-gate", &a);
        r.expect_code(0);
        assert!(r.all().contains("plan recorded on"), "{}", r.all());
        sb.outputs()["plan-digest"].clone()
    };
    let verify_on = |run: &str, plan: &str, digest: &str, extra: &[&str]| {
        let mut a = vec!["--environment", "prod", "--sha", PR_SHA];
        a.extend_from_slice(extra);
        verify_in(github_sandbox(&proxy, run), plan, digest, &a)
    };
    let pr_mode = ["--promotion-mode", "pull-request"];
    let d2 = gate_on("2", &reviewed, PR_SHA);
    assert_eq!(d1, d2);
    // ... and its apply job passes: the same plan, made against the deploy prod still runs
    //    (production + pull-request promotion: `auto` requires it).
    let (sb, r) = verify_on(
        "2",
        &reviewed,
        &d2,
        &[pr_mode[0], pr_mode[1], "--deployed-sha", BASE],
    );
    r.expect_code(0);
    assert_eq!(sb.outputs()["reviewed-plan"], "matches");
    assert!(r.all().contains("made against commit 1111"), "{}", r.all());
    // Fast-forward promotion (the default): `auto` does not require it, and reads nothing.
    let before = fake.requests().len();
    let (sb, r) = verify_on("2", &reviewed, &d2, &[]);
    r.expect_code(0);
    assert_eq!(sb.outputs()["reviewed-plan"], "not-required");
    assert_eq!(fake.requests().len(), before, "not required: no request");

    // Each refusal: exit 1, the reason, no result, nothing posted.
    let refused = |run: &str, plan: &str, digest: &str, extra: &[&str], want: &[&str]| {
        let posted = posts(&fake);
        let (sb, r) = verify_on(run, plan, digest, extra);
        r.expect_code(1);
        for w in want {
            assert!(r.all().contains(w), "{w}: {}", r.all());
        }
        assert!(
            !sb.outputs().contains_key("reviewed-plan"),
            "{:?}",
            sb.outputs()
        );
        assert_eq!(posts(&fake), posted, "a refusal posts nothing");
    };
    // The digest differs: the deploy run 3 planned something else than the reviewers saw.
    let d3 = gate_on("3", &other, PR_SHA);
    refused(
        "3",
        &other,
        &d3,
        &[pr_mode[0], pr_mode[1], "--deployed-sha", BASE],
        &[
            "is not the one the promotion pull request's reviewers saw",
            &d1,
            "nothing was applied",
        ],
    );
    // Stale base: prod was deployed again since the pull request's plan; even the same plan
    // is not trusted, and a new pull-request plan is asked for.
    refused(
        "2",
        &reviewed,
        &d2,
        &[pr_mode[0], pr_mode[1], "--deployed-sha", NEWER],
        &[
            "was made when the target's current deploy was commit 1111111111111111111111111111111111111111, but it is now commit 2222222222222222222222222222222222222222",
            "a new plan is needed: re-run the pull request's plan",
            "nothing was applied",
        ],
    );
    // No status: a commit with only a deploy run's own plan status (not a pull request's record).
    let lone = "a".repeat(40);
    gate_on("5", &reviewed, &lone);
    let (sb, r) = verify_in(
        github_sandbox(&proxy, "6"),
        &reviewed,
        &d1,
        &[
            "--environment",
            "prod",
            "--sha",
            &lone,
            "--require-reviewed-plan",
            "true",
            "--deployed-sha",
            BASE,
        ],
    );
    r.expect_code(1);
    assert!(
        r.all()
            .contains(&format!("no pull request's plan is recorded on {lone}")),
        "{}",
        r.all()
    );
    assert!(!sb.outputs().contains_key("reviewed-plan"));

    // 4. The recorder refuses, posting nothing: a fork's plan (its records are not even read:
    //    a malformed one changes nothing), a failed plan, a record for another environment than
    //    the pull request's base, a malformed record.
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("prod.json"), "{\"v\":1}").unwrap();
    let junk = junk.display().to_string();
    let staging_rec = dir.path().join("staging");
    std::fs::create_dir_all(&staging_rec).unwrap();
    std::fs::write(
        staging_rec.join("staging.json"),
        std::fs::read_to_string(&rec_file)
            .unwrap()
            .replace("\"prod\"", "\"staging\""),
    )
    .unwrap();
    let staging_rec = staging_rec.display().to_string();
    let fork = plan_run_event(42, "mallory/r", "success", &[]);
    let failed = plan_run_event(43, "o/r", "failure", &[(12, "prod")]);
    for (event, path, code, want) in [
        (
            &fork,
            &junk,
            1,
            "comes from the fork `mallory/r`; a fork's plan is never recorded",
        ),
        (&fork, &artifact, 1, "a fork's plan is never recorded"),
        (
            &failed,
            &artifact,
            1,
            "conclusion is `failure`, not `success`",
        ),
        (
            &event,
            &staging_rec,
            1,
            "for `staging`, whose branch `main` is not the base of a pull request of this head",
        ),
        (
            &event,
            &junk,
            2,
            "invalid input `record`: the plan record `prod.json` is not a plan record",
        ),
    ] {
        let posted = posts(&fake);
        let sb = recorder_sandbox(&proxy, event);
        let r = sb.run("plan-gate", &["record", "--record", path]);
        r.expect_code(code);
        assert!(r.all().contains(want), "{want}: {}", r.all());
        assert_eq!(posts(&fake), posted, "{want}: nothing posted");
        assert_ne!(
            sb.outputs()
                .get("recorded")
                .map(String::as_str)
                .unwrap_or(""),
            "gitops/plan/prod"
        );
    }
    // Not on workflow_run: exit 2 before anything.
    let mut sb = recorder_sandbox(&proxy, &event);
    sb.set("GITHUB_EVENT_NAME", "pull_request_target");
    let r = sb.run("plan-gate", &["record", "--record", &artifact]);
    r.expect_code(2);
    assert!(r.all().contains("runs on `workflow_run`"), "{}", r.all());

    // Bad inputs of verify: exit 2 before any request.
    let before = fake.requests().len();
    let pr = ["--promotion-mode", "pull-request"];
    for (args, want) in [
        (
            vec![pr[0], pr[1], "--deployed-sha", "yesterday"],
            "invalid input `deployed-sha`",
        ),
        (vec![pr[0], pr[1]], "invalid input `deployed-sha`"),
        (
            vec![pr[0], pr[1], "--sha", "abc", "--deployed-sha", BASE],
            "invalid input `sha`",
        ),
        (
            vec!["--promotion-mode", "merge", "--deployed-sha", BASE],
            "merge",
        ),
    ] {
        let sb = github_sandbox(&proxy, "7");
        let mut all = vec![
            "verify",
            "--plan",
            &reviewed,
            "--digest",
            &d1,
            "--environment",
            "prod",
        ];
        all.extend(["--require-reviewed-plan", "auto"]);
        all.extend(args);
        if !all.contains(&"--sha") {
            all.extend(["--sha", PR_SHA]);
        }
        let r = sb.run("plan-gate", &all);
        r.expect_code(2);
        assert!(r.all().contains(want), "{want}: {}", r.all());
    }
    assert_eq!(
        fake.requests().len(),
        before,
        "no request after a bad input"
    );
    // Off: no request at all.
    let (sb, r) = verify_on("8", &other, &d3, &["--require-reviewed-plan", "false"]);
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

// ---------------------------------------------------------------- the recorder (plan-record.yml)

fn template(name: &str) -> Value {
    let text = std::fs::read_to_string(
        crate::support::root()
            .join("workflows-templates")
            .join(name),
    )
    .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Every `${{ ... }}` expression in `v` (any depth), with where it is.
fn expressions(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(t) => {
            let mut rest = t.as_str();
            while let Some(i) = rest.find("${{") {
                let end = rest[i..].find("}}").map_or(rest.len(), |j| i + j + 2);
                out.push((at.to_string(), rest[i..end].to_string()));
                rest = &rest[end..];
            }
        }
        Value::Sequence(l) => l
            .iter()
            .enumerate()
            .for_each(|(i, x)| expressions(x, &format!("{at}[{i}]"), out)),
        Value::Mapping(m) => m
            .iter()
            .for_each(|(k, x)| expressions(x, &format!("{at}.{}", k.as_str().unwrap_or("?")), out)),
        _ => {}
    }
}

/// The recorder never runs or checks out pull-request code: it runs only on `workflow_run`
/// (the default branch's copy), grants nothing at the top, its job holds only `contents: read`,
/// `actions: read`, `statuses: write`, skips other events, failed runs and forks, checks out
/// no `ref` or other repository, runs no script (nothing of the artifact is executed), pins
/// every action by full SHA, downloads outside the workspace, and reads of the event only the
/// plan run's id (in its steps) — the commit and base are read by plan-gate from the payload.
fn recorder_problems(wf: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let on = wf["on"].clone();
    let triggers: Vec<&str> = on
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    if triggers != ["workflow_run"] {
        p.push(format!("triggers {triggers:?}, not only workflow_run"));
    }
    if on["workflow_run"]["workflows"] != serde_yaml_ng::from_str::<Value>("[plan]").unwrap() {
        p.push("does not follow exactly the `plan` workflow".into());
    }
    if wf["permissions"].as_mapping().is_none_or(|m| !m.is_empty()) {
        p.push("grants permissions at the workflow level".into());
    }
    for (name, job) in wf["jobs"].as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or("?");
        for (k, v) in job["permissions"].as_mapping().into_iter().flatten() {
            let (k, v) = (k.as_str().unwrap_or(""), v.as_str().unwrap_or(""));
            if !matches!(
                (k, v),
                ("contents", "read") | ("actions", "read") | ("statuses", "write")
            ) {
                p.push(format!("job `{name}` holds `{k}: {v}`"));
            }
        }
        let cond = s(job, "if");
        for want in [
            "github.event.workflow_run.event == 'pull_request'",
            "github.event.workflow_run.conclusion == 'success'",
            "github.event.workflow_run.head_repository.full_name == github.repository",
        ] {
            if !cond.contains(want) {
                p.push(format!("job `{name}` runs without `{want}`"));
            }
        }
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        let mut exprs = Vec::new();
        expressions(&job["steps"], name, &mut exprs);
        for (at, e) in exprs {
            if e.contains("workflow_run") && e != "${{ github.event.workflow_run.id }}" {
                p.push(format!(
                    "{at} reads `{e}` from the event (only the run id may be)"
                ));
            }
            if e.contains("github.head_ref") || e.contains("pull_request") {
                p.push(format!("{at} reads `{e}`"));
            }
        }
        for st in &steps {
            let uses = s(st, "uses");
            if !s(st, "run").is_empty() {
                p.push(format!("job `{name}` runs a script (`{}`)", s(st, "name")));
            }
            let pinned = uses.split_once('@').is_some_and(|(_, r)| {
                let r = r.split_whitespace().next().unwrap_or("");
                r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !uses.starts_with("./") && !pinned {
                p.push(format!("`{uses}` is not pinned by full SHA"));
            }
            if uses.starts_with("actions/checkout@") {
                for k in ["ref", "repository"] {
                    if !s(&st["with"], k).is_empty() {
                        p.push(format!(
                            "job `{name}` checks out `{k}: {}`",
                            s(&st["with"], k)
                        ));
                    }
                }
                if st["with"]["persist-credentials"].as_bool() != Some(false) {
                    p.push(format!("job `{name}`'s checkout persists credentials"));
                }
            }
            if uses.starts_with("actions/download-artifact@")
                && !s(&st["with"], "path").starts_with("${{ runner.temp }}")
            {
                p.push(format!("job `{name}` downloads into the workspace"));
            }
        }
        if !steps
            .iter()
            .any(|st| uses_our(st, "plan-gate") && s(&st["with"], "command") == "record")
        {
            p.push(format!(
                "job `{name}` does not post through `plan-gate record`"
            ));
        }
    }
    p
}

/// The pull request's plan holds no write permission that could post a status, push, dispatch
/// or approve: only its OIDC token and the one plan comment; it runs on `pull_request`, never
/// `pull_request_target`; it writes the record and uploads it for the recorder.
fn pr_plan_problems(wf: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let on = wf["on"].clone();
    let triggers: Vec<&str> = on
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    if triggers != ["pull_request"] {
        p.push(format!("triggers {triggers:?}, not only pull_request"));
    }
    if wf["permissions"].as_mapping().is_none_or(|m| !m.is_empty()) {
        p.push("grants permissions at the workflow level".into());
    }
    for (name, job) in wf["jobs"].as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or("?");
        for (k, v) in job["permissions"].as_mapping().into_iter().flatten() {
            let (k, v) = (k.as_str().unwrap_or(""), v.as_str().unwrap_or(""));
            if v != "read" && !matches!(k, "id-token" | "pull-requests") {
                p.push(format!("job `{name}` holds `{k}: {v}`"));
            }
        }
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        if steps
            .iter()
            .any(|st| !s(&st["with"], "status-sha").is_empty())
        {
            p.push(format!("job `{name}` posts a status itself"));
        }
        let gate = steps.iter().find(|st| uses_our(st, "plan-gate"));
        if gate.is_none() {
            // A job that plans nothing (the stacks list, the summary) has no record to write.
            continue;
        }
        let dir = gate
            .map(|g| s(&g["with"], "record-file"))
            .and_then(|f| f.rsplit_once('/'))
            .map(|(d, _)| d.to_string());
        let Some(dir) = dir else {
            p.push(format!("job `{name}` writes no plan record"));
            continue;
        };
        if gate.is_some_and(|g| s(&g["with"], "base-sha").is_empty()) {
            p.push(format!("job `{name}`'s record says no base"));
        }
        let uploads = steps.iter().any(|st| {
            s(st, "uses").starts_with("actions/upload-artifact@")
                && s(&st["with"], "name").starts_with("gitops-plan-record-")
                && s(&st["with"], "path").trim_end_matches('/') == dir
        });
        if !uploads {
            p.push(format!(
                "job `{name}` does not upload its record as `gitops-plan-record-*`"
            ));
        }
    }
    p
}

#[test]
fn e2e_templates_the_recorder_never_runs_pull_request_code_and_the_pr_plan_holds_no_write_permission(
) {
    let rec = template("plan-record.yml");
    assert_eq!(recorder_problems(&rec), Vec::<String>::new());
    let plan = template("plan.yml");
    assert_eq!(pr_plan_problems(&plan), Vec::<String>::new());
    // The artifact names agree: the recorder downloads what the plan uploads.
    let pattern = s(&rec["jobs"]["record"]["steps"][1]["with"], "pattern").to_string();
    assert_eq!(pattern, "gitops-plan-record-*");

    type Edit = fn(&mut Value);
    let rec_edits: [(&str, Edit, &str); 8] = [
        (
            "checking out the pull request's head",
            |w| {
                w["jobs"]["record"]["steps"][0]["with"]["ref"] =
                    "${{ github.event.workflow_run.head_sha }}".into()
            },
            "checks out `ref:",
        ),
        (
            "a script step",
            |w| {
                let mut m = serde_yaml_ng::Mapping::new();
                m.insert("run".into(), "bash ./record.sh".into());
                w["jobs"]["record"]["steps"]
                    .as_sequence_mut()
                    .unwrap()
                    .push(Value::Mapping(m));
            },
            "runs a script",
        ),
        (
            "recording forks",
            |w| {
                w["jobs"]["record"]["if"] =
                    "${{ github.event.workflow_run.conclusion == 'success' }}".into()
            },
            "head_repository.full_name == github.repository",
        ),
        (
            "a write permission more",
            |w| w["jobs"]["record"]["permissions"]["contents"] = "write".into(),
            "holds `contents: write`",
        ),
        (
            "the head sha from the event in a step",
            |w| {
                w["jobs"]["record"]["steps"][2]["with"]["sha"] =
                    "${{ github.event.workflow_run.head_sha }}".into()
            },
            "reads `${{ github.event.workflow_run.head_sha }}`",
        ),
        (
            "pull_request_target as well",
            |w| w["on"]["pull_request_target"] = Value::Null,
            "not only workflow_run",
        ),
        (
            "an unpinned action",
            |w| w["jobs"]["record"]["steps"][1]["uses"] = "actions/download-artifact@v4".into(),
            "is not pinned by full SHA",
        ),
        (
            "downloading into the workspace",
            |w| w["jobs"]["record"]["steps"][1]["with"]["path"] = "records".into(),
            "downloads into the workspace",
        ),
    ];
    for (what, edit, want) in rec_edits {
        let mut w = rec.clone();
        edit(&mut w);
        let p = recorder_problems(&w);
        assert!(p.iter().any(|x| x.contains(want)), "{what}: {p:?}");
    }
    let plan_edits: [(&str, Edit, &str); 4] = [
        (
            "statuses: write in the PR plan",
            |w| w["jobs"]["plan"]["permissions"]["statuses"] = "write".into(),
            "holds `statuses: write`",
        ),
        (
            "contents: write in the PR plan",
            |w| w["jobs"]["plan"]["permissions"]["contents"] = "write".into(),
            "holds `contents: write`",
        ),
        (
            "pull_request_target",
            |w| {
                let on = w.get_mut("on").unwrap();
                on["pull_request_target"] = on["pull_request"].clone();
            },
            "not only pull_request",
        ),
        (
            "no upload",
            |w| {
                let st = w["jobs"]["plan"]["steps"].as_sequence_mut().unwrap();
                st.retain(|x| !s(x, "uses").starts_with("actions/upload-artifact@"));
            },
            "does not upload its record",
        ),
    ];
    for (what, edit, want) in plan_edits {
        let mut w = plan.clone();
        edit(&mut w);
        let p = pr_plan_problems(&w);
        assert!(p.iter().any(|x| x.contains(want)), "{what}: {p:?}");
    }
}

/// plan-record.yml under act (host mode), on a `workflow_run` event payload: the real template,
/// with our action from this tree and `actions/download-artifact` replaced by a local stand-in
/// that hands over the plan run's artifact (act cannot reach GitHub's artifact store). A
/// same-repository plan is recorded on the head through Prism; a fork's plan run skips the job,
/// and nothing is posted.
#[test]
fn e2e_act_the_recorder_template_records_a_same_repository_plan_and_skips_a_fork() {
    use crate::support::act;
    let fake = crate::support::github_fake::GithubFake::start();
    let proxy = crate::support::prism::Prism::proxy(&fake.url());
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    crate::actions::copy_action_tree(&repo);
    let text =
        std::fs::read_to_string(crate::support::root().join("workflows-templates/plan-record.yml"))
            .unwrap();
    let mut wf = String::new();
    for line in text.lines() {
        let l = if line
            .trim_start()
            .starts_with("uses: gitops-actions/gitops-actions/actions/plan-gate@")
        {
            line.split("uses:").next().unwrap().to_string() + "uses: ./actions/plan-gate"
        } else if line
            .trim_start()
            .starts_with("uses: actions/download-artifact@")
        {
            line.split("uses:").next().unwrap().to_string() + "uses: ./.stub/download-artifact"
        } else {
            line.to_string()
        };
        wf.push_str(&l);
        wf.push('\n');
    }
    assert!(wf.contains("./.stub/download-artifact") && wf.contains("./actions/plan-gate"));
    std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    std::fs::write(repo.join(".github/workflows/plan-record.yml"), &wf).unwrap();
    std::fs::create_dir_all(repo.join(".stub/download-artifact")).unwrap();
    std::fs::write(
        repo.join(".stub/download-artifact/action.yml"),
        r#"name: download-artifact (test stand-in)
description: copies the artifacts of run `run-id` from STUB_ARTIFACTS
inputs:
  pattern: { required: false }
  path: { required: true }
  run-id: { required: true }
  github-token: { required: false }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        DEST: ${{ inputs.path }}
        RUN: ${{ inputs.run-id }}
        PATTERN: ${{ inputs.pattern }}
      run: |
        mkdir -p "$DEST"
        for a in "$STUB_ARTIFACTS/$RUN"/$PATTERN; do [ -d "$a" ] && cp -r "$a" "$DEST/"; done
        echo "STUB downloaded $(find "$DEST" -type f | wc -l) file(s) of run $RUN"
"#,
    )
    .unwrap();
    act::init_repo(&repo);
    // The plan run 41's artifact, as plan.yml's plan job leaves it.
    let plans = sb.path().join("plans");
    std::fs::create_dir_all(&plans).unwrap();
    let plan = plan_file(&plans, "pr.json", "logs");
    let artifacts = sb.path().join("artifacts");
    let rec = artifacts.join("41/gitops-plan-record-prod/prod.json");
    let mut gsb = Sandbox::actions();
    gsb.set("GITHUB_REPOSITORY", "o/r");
    let rf = rec.display().to_string();
    gsb.run(
        "plan-gate",
        &[
            "--plan",
            &plan,
            "--comment",
            "off",
            "--environment",
            "prod",
            "--allow",
            "protect-production",
            "--allow-reason",
            "new bucket",
            "--record-file",
            &rf,
            "--base-sha",
            BASE,
        ],
    )
    .expect_code(0);
    let digest = gsb.outputs()["plan-digest"].clone();

    let bins = crate::actions::built_bin_dir().display().to_string();
    let run_event = |name: &str, event: &str| {
        let ev = sb.path().join(name);
        std::fs::write(&ev, event).unwrap();
        let ev = ev.display().to_string();
        let envs = [
            format!("GITOPS_ACTIONS_LOCAL_BIN_DIR={bins}"),
            format!("STUB_ARTIFACTS={}", artifacts.display()),
            format!("GITHUB_API_URL={}", proxy.url()),
            "GITHUB_REPOSITORY=o/r".to_string(),
        ];
        let mut args = vec![
            "-e",
            ev.as_str(),
            "-W",
            ".github/workflows/plan-record.yml",
            "-P",
            "ubuntu-24.04=-self-hosted",
        ];
        for e in &envs {
            args.extend(["--env", e.as_str()]);
        }
        args.extend(["--secret", "GITHUB_TOKEN=ghs_recorderToken0123456789"]);
        act::run(&sb, &repo, "workflow_run", &args)
    };

    let r = run_event(
        "same.json",
        &plan_run_event(41, "o/r", "success", &[(12, "prod")]),
    );
    let log = r.all();
    assert_eq!(r.code, 0, "{log}");
    assert!(log.contains("STUB downloaded 1 file(s) of run 41"), "{log}");
    assert!(
        log.contains("recorded on 0123456789abcdef0123456789abcdef01234567 (pull request #12)"),
        "{log}"
    );
    assert!(
        !log.contains("ghs_recorderToken0123456789"),
        "the token is masked"
    );
    let st = fake.state.lock().unwrap().posted_statuses[PR_SHA].clone();
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st[0]["context"], "gitops/plan/prod");
    assert_eq!(st[0]["description"], format!("plan {digest} base {BASE}"));
    assert!(
        st[0]["target_url"]
            .as_str()
            .unwrap()
            .ends_with("/o/r/actions/runs/41"),
        "{st:?}"
    );

    // A fork's plan run (its artifact is there, and would be well-formed): the job is skipped.
    std::fs::create_dir_all(artifacts.join("42")).unwrap();
    std::fs::rename(
        artifacts.join("41/gitops-plan-record-prod"),
        artifacts.join("42/gitops-plan-record-prod"),
    )
    .unwrap();
    let before = posts(&fake);
    let r = run_event(
        "fork.json",
        &plan_run_event(42, "mallory/r", "success", &[]),
    );
    let log = r.all();
    assert_eq!(r.code, 0, "{log}");
    assert!(
        !log.contains("STUB downloaded"),
        "the fork's artifact is not even downloaded: {log}"
    );
    assert_eq!(posts(&fake), before, "a fork's plan is never recorded");
    proxy.assert_no_violations();
}
