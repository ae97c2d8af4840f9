//! plan-gate's Rego policies (`--policy-rego`): our conftest-style policy set on the real plans
//! of the shared corpus against an independent oracle of what each policy says, findings in the
//! report and the verdict, refusals of broken policies, sensitive values kept from policies.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as J;

use gitops_actions::plan::{self, Limits};
use gitops_actions::policy::rego::{RegoPolicies, SENSITIVE};

use crate::support::{root, Run, Sandbox};

fn shared_plans() -> PathBuf {
    let p = std::env::var_os("GITOPS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"))
        .join("plans");
    assert!(
        p.join("MANIFEST.tsv").exists(),
        "the shared plan corpus is missing at {} (set GITOPS_SHARED_DIR)",
        p.display()
    );
    p
}

fn policies() -> PathBuf {
    root().join("tests/fixtures/rego/terraform")
}

// ---- The oracle: what each policy of tests/fixtures/rego/terraform says, computed from the
// plan JSON directly (no Rego), with the masks applied as the policy input promises.

/// Whether `mask` marks the path (`true` at it or at any prefix).
fn marked(mask: Option<&J>, path: &[&str]) -> bool {
    let mut m = match mask {
        Some(m) => m,
        None => return false,
    };
    for p in path {
        if m == &J::Bool(true) {
            return true;
        }
        m = match m {
            J::Object(o) => match o.get(*p) {
                Some(x) => x,
                None => return false,
            },
            J::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    m == &J::Bool(true)
}

/// `rc.change.after.<path>` as the policy sees it.
fn after<'a>(rc: &'a J, path: &[&str]) -> Option<std::borrow::Cow<'a, J>> {
    let c = &rc["change"];
    if marked(c.get("after_sensitive"), path) {
        return Some(std::borrow::Cow::Owned(J::String(SENSITIVE.into())));
    }
    let mut v = c.get("after")?;
    for p in path {
        v = match v {
            J::Object(o) => o.get(*p)?,
            J::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(std::borrow::Cow::Borrowed(v))
}

fn actions(rc: &J) -> Vec<&str> {
    rc["change"]["actions"]
        .as_array()
        .map(|a| a.iter().filter_map(J::as_str).collect())
        .unwrap_or_default()
}

fn managed(rc: &J) -> bool {
    rc["mode"] == "managed"
}

/// Go's `%q` for the plain strings of these plans.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// (file:rule, message) pairs.
type Findings = BTreeSet<(String, String)>;

/// (file:rule, message) the policies must give, and whether the plan makes one of them fail
/// (`Err`: the policy input makes a rule fail to evaluate, e.g. a masked policy document).
fn expected(plan: &J) -> std::result::Result<(Findings, Findings), String> {
    let mut deny = BTreeSet::new();
    let mut warn = BTreeSet::new();
    let empty = vec![];
    let rcs = plan["resource_changes"].as_array().unwrap_or(&empty);
    let world = "0.0.0.0/0";
    for rc in rcs {
        let addr = rc["address"].as_str().unwrap_or_default();
        let ty = rc["type"].as_str().unwrap_or_default();
        let acts = actions(rc);
        // destroy.rego
        if managed(rc)
            && acts.contains(&"delete")
            && [
                "aws_db_instance",
                "aws_s3_bucket",
                "aws_dynamodb_table",
                "aws_rds_cluster",
            ]
            .contains(&ty)
        {
            deny.insert((
                "destroy.rego:deny".into(),
                format!(
                    "{addr}: a {ty} may not be destroyed (actions: {})",
                    acts.join(",")
                ),
            ));
        }
        // tags.rego
        let changed = managed(rc) && acts.iter().any(|a| *a == "create" || *a == "update");
        if changed && rc["change"]["after"].get("tags").is_some() {
            let tags = match after(rc, &["tags"]).as_deref() {
                Some(J::Object(o)) => o.clone(),
                _ => Default::default(),
            };
            let missing: Vec<&str> = ["Environment", "Project"]
                .into_iter()
                .filter(|t| matches!(tags.get(*t), None | Some(J::Bool(false))))
                .collect();
            if !missing.is_empty() {
                deny.insert((
                    "tags.rego:deny_missing_tags".into(),
                    format!("{addr} is missing the tag(s) {}", missing.join(", ")),
                ));
            }
        }
        // iam.rego
        let iam = ty.starts_with("aws_iam_") && ty.ends_with("policy");
        if iam {
            if let Some(J::String(doc)) = after(rc, &["policy"]).as_deref() {
                let doc: J = serde_json::from_str(doc)
                    .map_err(|_| format!("{addr}: its policy is not JSON as the policy sees it"))?;
                let sts = match &doc["Statement"] {
                    J::Array(a) => a.clone(),
                    o @ J::Object(_) => vec![o.clone()],
                    _ => vec![],
                };
                for st in sts.iter().filter(|s| s["Effect"] == "Allow") {
                    let acts = match &st["Action"] {
                        J::Array(a) => a.clone(),
                        s @ J::String(_) => vec![s.clone()],
                        _ => vec![],
                    };
                    for a in acts
                        .iter()
                        .filter_map(J::as_str)
                        .filter(|a| a.ends_with('*'))
                    {
                        deny.insert((
                            "iam.rego:violation".into(),
                            format!("{addr} allows the wildcard action {}", quoted(a)),
                        ));
                    }
                }
            }
        }
        // network.rego
        if ty == "aws_security_group" {
            if let Some(J::Array(ingress)) = after(rc, &["ingress"]).as_deref() {
                let open = |r: &J| {
                    r["cidr_blocks"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|x| x == world))
                };
                if !ingress.is_empty() && ingress.iter().all(open) {
                    let mut ports: Vec<i64> = ingress
                        .iter()
                        .filter_map(|r| r["from_port"].as_i64())
                        .collect();
                    ports.sort();
                    let ports: Vec<String> = ports.iter().map(i64::to_string).collect();
                    warn.insert((
                        "network.rego:warn_open_security_group".into(),
                        format!(
                            "{addr}: every ingress rule is open to {world} (ports {})",
                            ports.join(" ")
                        ),
                    ));
                }
                for r in ingress {
                    let (from, to) = (r["from_port"].as_i64(), r["to_port"].as_i64());
                    if from.is_some_and(|f| f <= 22) && to.is_some_and(|t| t >= 22) && open(r) {
                        deny.insert((
                            "network.rego:deny_ssh_from_world".into(),
                            format!("{addr} opens SSH (port 22) to {world}"),
                        ));
                    }
                }
            }
        }
        // naming.rego
        if managed(rc) {
            if let Some(name) = rc["name"].as_str() {
                let snake = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !snake {
                    warn.insert((
                        "naming.rego:warn_naming".into(),
                        format!("{addr}: resource name {} is not snake_case", quoted(name)),
                    ));
                }
            }
        }
    }
    let reads = rcs
        .iter()
        .filter(|rc| {
            rc["mode"] == "data" && rc["type"].as_str().is_some_and(|t| t.starts_with("aws_"))
        })
        .count();
    if reads > 1 {
        warn.insert((
            "naming.rego:warn_data_source_count".into(),
            format!("{reads} AWS data sources are read"),
        ));
    }
    // providers.rego
    let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
    for rc in rcs {
        if let Some(p) = rc["provider_name"].as_str() {
            *per.entry(p).or_default() += 1;
        }
    }
    for (p, n) in per {
        if ![
            "registry.terraform.io/hashicorp/aws",
            "registry.terraform.io/hashicorp/random",
        ]
        .contains(&p)
        {
            let short = p.strip_prefix("registry.terraform.io/").unwrap_or(p);
            warn.insert((
                "providers.rego:warn_provider".into(),
                format!("provider {short} ({n} resource change(s)) is not on the allowed list"),
            ));
        }
    }
    Ok((deny, warn))
}

fn short(rule: &str) -> String {
    // `<dir>/lib/x.rego:deny` -> `x.rego:deny`
    rule.rsplit('/').next().unwrap_or(rule).to_string()
}

fn pairs(v: &[gitops_actions::policy::Violation]) -> BTreeSet<(String, String)> {
    v.iter()
        .map(|v| (short(&v.rule), v.message.clone()))
        .collect()
}

#[test]
fn our_conftest_style_policies_say_exactly_what_they_mean_on_every_real_plan() {
    let r = RegoPolicies::load(&[policies()], Duration::from_secs(60)).unwrap();
    assert_eq!(r.files.len(), 7, "{:?}", r.files);
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared_plans())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut checked, mut with_findings) = (0, BTreeSet::new());
    let mut seen_rules = BTreeSet::new();
    for f in &files {
        let limits = Limits {
            max_bytes: 1 << 30,
            max_depth: 100,
        };
        let Ok(summary) = plan::load(f, &limits) else {
            continue; // refused plans are the corpus test's business
        };
        let bytes = std::fs::read(f).unwrap();
        let json: J =
            serde_json::from_slice(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes)).unwrap();
        let got = r.check_plan(f, &summary.scrubber());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        match (expected(&json), got) {
            (Ok((deny, warn)), Ok(found)) => {
                assert_eq!(pairs(&found.deny), deny, "denials on {name}");
                assert_eq!(pairs(&found.warn), warn, "warnings on {name}");
                if !deny.is_empty() || !warn.is_empty() {
                    with_findings.insert(name.clone());
                }
                seen_rules.extend(deny.into_iter().chain(warn).map(|(r, _)| r));
            }
            (Err(why), Err(e)) => {
                assert_eq!(e.class.code(), 2, "{name}: {why}: {}", e.message);
                assert!(e.message.contains("iam.rego"), "{name}: {}", e.message);
            }
            (want, got) => panic!(
                "{name}: expected {want:?}, got {:?}",
                got.map(|f| (f.deny, f.warn)).map_err(|e| e.message)
            ),
        }
        checked += 1;
    }
    assert!(checked > 400, "only {checked} corpus plans were checked");
    // The oracle must not be trivially empty: every rule fires somewhere in the corpus.
    for rule in [
        "destroy.rego:deny",
        "tags.rego:deny_missing_tags",
        "iam.rego:violation",
        "network.rego:warn_open_security_group",
        "network.rego:deny_ssh_from_world",
        "naming.rego:warn_naming",
        "naming.rego:warn_data_source_count",
        "providers.rego:warn_provider",
    ] {
        assert!(
            seen_rules.contains(rule),
            "{rule} never fired on the corpus"
        );
    }
    assert!(with_findings.len() > 50, "{}", with_findings.len());
}

fn gate(args: &[&str]) -> (Sandbox, Run) {
    let sb = Sandbox::actions();
    let r = sb.run("plan-gate", args);
    (sb, r)
}

const WORKSHOP: &str =
    "Bright-04__terraform-atlantis-workshop__policy-test-scenarios__missing-cost-tag__tfplan.json";

#[test]
fn rego_denials_join_the_report_and_the_verdict_and_warnings_never_fail_it() {
    let plan = shared_plans().join(WORKSHOP);
    let plan = plan.to_str().unwrap();
    let pol = policies();
    let (sb, r) = gate(&[
        "--plan",
        plan,
        "--policy-rego",
        pol.to_str().unwrap(),
        "--format",
        "json",
        "--comment",
        "off",
    ]);
    r.expect_code(1);
    let out: J = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(out["verdict"], "fail");
    let rules: BTreeSet<String> = out["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| short(v["rule"].as_str().unwrap()))
        .collect();
    assert!(
        rules.contains("network.rego:deny_ssh_from_world"),
        "{rules:?}"
    );
    assert!(rules.contains("tags.rego:deny_missing_tags"), "{rules:?}");
    let warned: Vec<&str> = out["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert!(
        warned
            .iter()
            .any(|w| w.contains("every ingress rule is open")),
        "{warned:?}"
    );
    assert!(
        r.stderr.contains("plan gate failed") && r.stderr.contains("deny_ssh_from_world"),
        "{}",
        r.stderr
    );
    assert!(
        sb.summary().contains("deny\\_ssh\\_from\\_world")
            || sb.summary().contains("deny_ssh_from_world"),
        "{}",
        sb.summary()
    );
    assert!(sb.summary().contains("warning:"), "{}", sb.summary());
    assert_eq!(sb.outputs()["verdict"], "fail");

    // Warnings alone never fail the gate: they are annotations and report lines.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("network.rego"),
        std::fs::read_to_string(pol.join("network.rego"))
            .unwrap()
            .replace("deny_ssh_from_world", "warn_ssh_from_world"),
    )
    .unwrap();
    let (sb, r) = gate(&[
        "--plan",
        plan,
        "--policy-rego",
        dir.path().to_str().unwrap(),
        "--comment",
        "off",
    ]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("::warning::policy warning ["),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("opens SSH (port 22)"), "{}", r.stdout);
    assert_eq!(sb.outputs()["verdict"], "pass");
    assert!(sb.summary().contains("warning:"), "{}", sb.summary());

    // A Rego finding is overridden like a built-in rule: by its id, with a logged reason.
    let id = format!("{}:deny_ssh_from_world", pol.join("network.rego").display());
    let tags_id = format!("{}:deny_missing_tags", pol.join("tags.rego").display());
    let (sb, r) = gate(&[
        "--plan",
        plan,
        "--policy-rego",
        pol.to_str().unwrap(),
        "--comment",
        "off",
        "--allow",
        &format!("{id},{tags_id}"),
        "--allow-reason",
        "workshop sandbox (CHG-7)",
    ]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("::warning::policy override: rule "),
        "{}",
        r.stdout
    );
    assert!(sb.summary().contains("allowed by override"));
}

#[track_caller]
fn refused(sb: &Sandbox, r: &Run, needles: &[&str]) {
    r.expect_code(2);
    for n in needles {
        assert!(r.all().contains(n), "missing {n:?} in\n{}", r.all());
    }
    assert!(
        sb.outputs().is_empty(),
        "outputs written: {:?}",
        sb.outputs()
    );
    assert!(sb.summary().is_empty(), "summary written");
}

fn one_policy(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.rego"), text).unwrap();
    let p = dir.path().join("p.rego").display().to_string();
    (dir, p)
}

#[test]
fn a_broken_rego_policy_is_exit_2_with_its_file_and_line_and_nothing_is_written() {
    let plan = shared_plans().join(WORKSHOP);
    let plan = plan.to_str().unwrap();
    for (text, needles) in [
        ("package main\nimport rego.v1\n\ndeny contains msg if {\n  msg := sprintf(\"%s\", \n}\n", vec!["p.rego:", "cannot parse"]),
        ("package main\nimport rego.v1\n\ndeny contains msg if {\n  time.now_ns() > 0\n  msg := \"late\"\n}\n", vec!["p.rego:5", "`time.now_ns`"]),
        ("package main\nimport rego.v1\n\ndeny contains msg if {\n  data.helpers.public\n  msg := \"x\"\n}\n", vec!["p.rego:5", "undefined reference"]),
        ("package main\nimport rego.v1\n\ndeny contains msg if {\n  some rc in input.resource_changes\n  msg := rc.change.after.ami + 1\n}\n", vec!["p.rego:", "policy evaluation failed in rule `deny`"]),
        ("package main\nimport rego.v1\n\ndeny contains msg if {\n  n := count([1 | some i in numbers.range(1, 4000); some j in numbers.range(1, 4000)])\n  msg := sprintf(\"%d\", [n])\n}\n", vec!["p.rego:4", "policy evaluation failed"]),
    ] {
        let (_d, p) = one_policy(text);
        let (sb, r) = gate(&["--plan", plan, "--policy-rego", &p, "--policy-rego-timeout", "1", "--comment", "off"]);
        refused(&sb, &r, &needles);
    }
    let (sb, r) = gate(&[
        "--plan",
        plan,
        "--policy-rego",
        "no/such/dir",
        "--comment",
        "off",
    ]);
    refused(&sb, &r, &["policy-rego", "cannot read"]);
}

#[test]
fn a_rego_policy_cannot_print_a_sensitive_value_unless_its_file_opts_in() {
    let dir = tempfile::tempdir().unwrap();
    let plan = r#"{"format_version":"1.2","terraform_version":"1.11.0",
      "variables":{"db_password":{"value":"SENTINEL-VAR-9f3a1c"},"port":{"value":5432}},
      "resource_changes":[
       {"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","name":"main","provider_name":"registry.terraform.io/hashicorp/aws",
        "change":{"actions":["update"],"before":{"password":"SENTINEL-OLD-77e1b2","name":"db","pin":1234},
        "after":{"password":"SENTINEL-VAR-9f3a1c","name":"db2","pin":4321,"note":"pw is SENTINEL-VAR-9f3a1c"},
        "after_unknown":{},"before_sensitive":{"password":true,"pin":true},"after_sensitive":{"password":true,"pin":true}}}],
      "output_changes":{"conn":{"actions":["create"],"before":null,"after":"SENTINEL-OUT-4b4b4b","after_unknown":false,"before_sensitive":false,"after_sensitive":true}},
      "configuration":{"root_module":{"variables":{"db_password":{"sensitive":true}},"outputs":{"conn":{"sensitive":true}}}}}"#;
    let p = dir.path().join("s.json");
    std::fs::write(&p, plan).unwrap();
    let secrets = [
        "SENTINEL-VAR-9f3a1c",
        "SENTINEL-OLD-77e1b2",
        "SENTINEL-OUT-4b4b4b",
    ];
    let dump_run = |pol: &str| {
        let (sb, r) = gate(&[
            "--plan",
            p.to_str().unwrap(),
            "--policy-rego",
            pol,
            "--comment",
            "off",
            "--format",
            "json",
        ]);
        r.expect_code(1);
        sb.assert_no_leak(&r, &secrets, &[]);
        (sb, r)
    };
    let dump = "package main\nimport rego.v1\n\ndeny contains json.marshal(input)\n\ndeny contains sprintf(\"pin %d\", [input.resource_changes[0].change.after.pin])\n";
    let (_d, pol) = one_policy(dump);
    let (_sb, r) = dump_run(&pol);
    assert!(
        !r.all().contains("4321") && !r.all().contains("1234"),
        "a masked number reached the report"
    );
    assert!(r.stdout.contains(SENSITIVE), "{}", r.stdout);
    assert!(r.stdout.contains("db2"), "non-sensitive values are seen");

    // Opted in: the policy sees the values as they are (the password's length is its own, not
    // the marker's), and its messages are still scrubbed of every sensitive string.
    let opted = format!(
        "# plan-gate: sees-sensitive-values\n{dump}\ndeny contains sprintf(\"password of %d characters\", [count(input.resource_changes[0].change.after.password)])\n"
    );
    let (_d2, pol) = one_policy(&opted);
    let (_sb, r) = dump_run(&pol);
    assert!(
        r.stdout.contains("password of 19 characters"),
        "{}",
        r.stdout
    );
    assert!(
        !r.all().contains("4321"),
        "a sensitive number of 4 digits is scrubbed"
    );
    assert!(
        r.stderr.contains("see sensitive values as they are"),
        "{}",
        r.stderr
    );
}
