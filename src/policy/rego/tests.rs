use super::*;
use serde_json::json;

fn write_all(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    (dir, paths)
}

fn load(files: &[(&str, &str)]) -> Result<RegoPolicies> {
    let (dir, _) = write_all(files);
    let r = RegoPolicies::load(&[dir.path().to_path_buf()], Duration::from_secs(20));
    drop(dir);
    r
}

fn refusal(files: &[(&str, &str)]) -> String {
    match load(files) {
        Ok(_) => panic!("loaded, expected a refusal"),
        Err(e) => {
            assert_eq!(e.class.code(), 2, "{}", e.message);
            e.message
        }
    }
}

fn none() -> Scrubber {
    Scrubber::new(&[], "(sensitive)")
}

fn run(files: &[(&str, &str)], plan: serde_json::Value) -> Result<Findings> {
    let (dir, _) = write_all(files);
    let r = RegoPolicies::load(&[dir.path().to_path_buf()], Duration::from_secs(20))?;
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    r.check_plan(&plan_path, &none())
}

fn msgs(v: &[Violation]) -> Vec<(String, String)> {
    v.iter()
        .map(|v| {
            (
                v.rule.rsplit('/').next().unwrap().to_string(),
                v.message.clone(),
            )
        })
        .collect()
}

#[test]
fn rule_kinds_follow_conftests_naming() {
    for (name, want) in [
        ("deny", Some(Kind::Deny)),
        ("deny_public_bucket", Some(Kind::Deny)),
        ("violation", Some(Kind::Deny)),
        ("violation_tags", Some(Kind::Deny)),
        ("warn", Some(Kind::Warn)),
        ("warn_x1", Some(Kind::Warn)),
        ("denied", None),
        ("warning", None),
        ("deny_", Some(Kind::Deny)),
        ("deny-x", None),
        ("helper", None),
        ("violations", None),
    ] {
        assert_eq!(rule_kind(name), want, "{name}");
    }
}

#[test]
fn rule_values_give_messages_or_say_why_not() {
    let v = |j: serde_json::Value| -> Value { serde::Deserialize::deserialize(j).unwrap() };
    let set: Value = Value::from(
        [Value::from("b"), Value::from("a")]
            .into_iter()
            .collect::<BTreeSet<_>>(),
    );
    assert_eq!(messages(&set).unwrap(), vec!["a", "b"]);
    assert_eq!(
        messages(&v(json!([{"msg": "m", "details": {}}]))).unwrap(),
        vec!["m"]
    );
    assert_eq!(messages(&v(json!("one"))).unwrap(), vec!["one"]);
    assert_eq!(messages(&Value::Undefined).unwrap(), Vec::<String>::new());
    assert_eq!(messages(&v(json!(false))).unwrap(), Vec::<String>::new());
    assert_eq!(messages(&v(json!(true))).unwrap().len(), 1);
    for (bad, why) in [
        (json!([1]), "neither a string nor an object"),
        (json!([{"message": "x"}]), "without `msg`"),
        (json!([{"msg": 3}]), "`msg` is not a string"),
        (json!({"a": true}), "is an object"),
        (json!(7), "a number"),
    ] {
        let e = messages(&v(bad.clone())).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn masks_replace_exactly_what_they_mark() {
    for (value, mask, want) in [
        (
            json!({"a": 1, "b": "x"}),
            json!({"b": true}),
            json!({"a": 1, "b": SENSITIVE}),
        ),
        (json!("s"), json!(true), json!(SENSITIVE)),
        (
            json!([1, 2, 3]),
            json!([false, true]),
            json!([1, SENSITIVE, 3]),
        ),
        (
            json!({"n": {"deep": [{"k": 5}]}}),
            json!({"n": {"deep": [{"k": true}]}}),
            json!({"n": {"deep": [{"k": SENSITIVE}]}}),
        ),
        (json!({"a": 1}), json!(false), json!({"a": 1})),
        (json!({"a": 1}), json!({}), json!({"a": 1})),
        // A mask of another shape marks nothing it cannot place.
        (json!([1]), json!({"0": true}), json!([1])),
    ] {
        let r = |j: &serde_json::Value| Value::from_json_str(&j.to_string()).unwrap();
        let mut v = r(&value);
        apply_mask(&mut v, &r(&mask));
        assert_eq!(v, r(&want), "{value} under {mask}");
    }
}

#[test]
fn the_opt_in_line_counts_only_before_package() {
    for (text, want) in [
        ("# plan-gate: sees-sensitive-values\npackage main\n", true),
        (
            "  # plan-gate: sees-sensitive-values  \n\npackage main\n",
            true,
        ),
        ("package main\n# plan-gate: sees-sensitive-values\n", false),
        ("# plan-gate: sees-sensitive\npackage main\n", false),
        ("package main\n", false),
    ] {
        assert_eq!(opts_in(text), want, "{text:?}");
    }
}

const V1: &str = r#"package main
import rego.v1

deny contains msg if {
	some rc in input.resource_changes
	rc.type == "aws_s3_bucket"
	msg := sprintf("%s: bucket", [rc.address])
}

warn contains msg if {
	count(input.resource_changes) > 1
	msg := "many"
}
"#;

const V0: &str = r#"package main

deny[msg] {
	rc := input.resource_changes[_]
	rc.change.actions[_] == "delete"
	msg := sprintf("%s is destroyed", [rc.address])
}
"#;

fn plan() -> serde_json::Value {
    json!({
        "format_version": "1.2",
        "resource_changes": [
            {"address": "aws_s3_bucket.a", "type": "aws_s3_bucket",
             "change": {"actions": ["delete"], "before": {"p": "x"}, "after": null,
                        "before_sensitive": {"p": true}, "after_sensitive": false}},
            {"address": "null_resource.b", "type": "null_resource",
             "change": {"actions": ["create"], "before": null, "after": {}}}
        ],
        "variables": {"pw": {"value": "hunter2hunter2"}, "region": {"value": "eu-west-1"}},
        "configuration": {"root_module": {"variables": {"pw": {"sensitive": true}, "region": {}}}}
    })
}

#[test]
fn v1_and_v0_files_evaluate_side_by_side_each_named_by_file_and_rule() {
    let f = run(&[("a.rego", V1), ("b.rego", V0)], plan()).unwrap();
    assert_eq!(
        msgs(&f.deny),
        vec![
            ("a.rego:deny".into(), "aws_s3_bucket.a: bucket".into()),
            ("b.rego:deny".into(), "aws_s3_bucket.a is destroyed".into()),
        ]
    );
    assert_eq!(msgs(&f.warn), vec![("a.rego:warn".into(), "many".into())]);
}

#[test]
fn a_sensitive_value_reaches_a_policy_only_when_its_file_opts_in() {
    let leak = r#"package main
import rego.v1
deny contains msg if {
	msg := sprintf("pw=%v p=%v", [input.variables.pw.value, input.resource_changes[0].change.before.p])
}
"#;
    let f = run(&[("a.rego", leak)], plan()).unwrap();
    assert_eq!(
        f.deny[0].message,
        format!("pw={SENSITIVE} p={SENSITIVE}"),
        "masked by default"
    );
    let opted = format!("{SEES_SENSITIVE}\n{leak}");
    let f = run(&[("a.rego", &opted)], plan()).unwrap();
    assert_eq!(f.deny[0].message, "pw=hunter2hunter2 p=x");
}

#[test]
fn messages_are_scrubbed_of_the_plans_sensitive_strings_even_when_opted_in() {
    let (dir, _) = write_all(&[(
        "a.rego",
        "# plan-gate: sees-sensitive-values\npackage main\nimport rego.v1\ndeny contains msg if { msg := concat(\"\", [\"pw \", input.variables.pw.value]) }\n",
    )]);
    let r = RegoPolicies::load(&[dir.path().to_path_buf()], Duration::from_secs(20)).unwrap();
    let p = dir.path().join("plan.json");
    std::fs::write(&p, plan().to_string()).unwrap();
    let sc = Scrubber::new(&["hunter2hunter2".to_string()], "(sensitive)");
    let f = r.check_plan(&p, &sc).unwrap();
    assert_eq!(f.deny[0].message, "pw (sensitive)");
}

#[test]
fn only_the_keys_the_policies_read_are_converted() {
    let r = load(&[("a.rego", V1)]).unwrap();
    assert!(!r.uses.all);
    assert_eq!(
        r.uses.keys.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["resource_changes"]
    );
    for (text, all, key) in [
        ("package main\nimport rego.v1\nx := input\n", true, None),
        (
            "package main\nimport input.planned_values as pv\nx := pv.root_module\n",
            false,
            Some("planned_values"),
        ),
        (
            "package main\nimport rego.v1\nx := input[\"variables\"]\n",
            false,
            Some("variables"),
        ),
        (
            "package main\nimport rego.v1\nk := \"a\"\nx := input[k]\n",
            true,
            None,
        ),
        (
            "package main\nimport input as tfplan\nx := tfplan.a\n",
            true,
            None,
        ),
    ] {
        let text = format!("{text}deny contains \"d\" if {{ false }}\n");
        let r = load(&[("a.rego", &text)]).unwrap();
        assert_eq!(r.uses.all, all, "{text}");
        if let Some(k) = key {
            assert!(r.uses.keys.contains(k), "{text}: {:?}", r.uses);
        }
    }
}

#[test]
fn broken_policies_are_refused_with_file_and_line_before_evaluation() {
    for (files, needles) in [
        (
            vec![("bad.rego", "package main\n\ndeny contains msg if {\n  msg := \n}\n")],
            vec!["cannot parse", "bad.rego:"],
        ),
        (
            vec![(
                "t.rego",
                "package main\nimport rego.v1\n\ndeny contains msg if {\n  time.now_ns() > 0\n  msg := \"x\"\n}\n",
            )],
            vec!["t.rego:5", "`time.now_ns`", "built-in"],
        ),
        (
            vec![(
                "u.rego",
                "package main\nimport rego.v1\n\ndeny contains msg if {\n  data.lib.nothere\n  msg := \"x\"\n}\n",
            )],
            vec!["u.rego:5", "undefined reference `data.lib.nothere`"],
        ),
        (
            vec![
                ("lib.rego", "package lib\nimport rego.v1\npublic(b) if b.acl == \"public\"\n"),
                (
                    "u.rego",
                    "package main\nimport rego.v1\nimport data.lib\n\ndeny contains msg if {\n  lib.publik(input.x)\n  msg := \"x\"\n}\n",
                ),
            ],
            vec!["u.rego:6", "`lib.publik`"],
        ),
        (
            vec![("i.rego", "package main\nimport data.nolib.helpers\ndeny[m] { m := \"x\" }\n")],
            vec!["i.rego:2", "undefined reference `data.nolib.helpers`"],
        ),
        (
            vec![("lib.rego", "package lib\nimport rego.v1\nhelper := 1\n")],
            vec!["nothing would be checked"],
        ),
        (
            vec![("p.rego", "package terraform\nimport rego.v1\ndeny contains \"x\" if { true }\n")],
            vec!["p.rego:3", "package `terraform`", "package main"],
        ),
    ] {
        let m = refusal(&files);
        for n in needles {
            assert!(m.contains(n), "{files:?}: `{n}` not in {m}");
        }
    }
}

#[test]
fn calls_to_the_policies_own_functions_and_to_built_ins_pass_the_check() {
    let lib = "package lib.tf\nimport rego.v1\nis_bucket(rc) if rc.type == \"aws_s3_bucket\"\nkinds := {\"a\"}\n";
    let main = "package main\nimport rego.v1\nimport data.lib.tf\nimport data.lib.tf.is_bucket as bucket\n\ndeny contains msg if {\n  some rc in input.resource_changes\n  tf.is_bucket(rc)\n  bucket(rc)\n  data.lib.tf.is_bucket(rc)\n  \"a\" in data.lib.tf.kinds\n  own(rc)\n  glob.match(\"aws_*\", [], rc.type)\n  regex.match(\"^aws_\", rc.type)\n  msg := sprintf(\"%s\", [upper(rc.address)])\n}\n\nown(rc) if startswith(rc.type, \"aws_\")\n";
    let f = run(&[("lib.rego", lib), ("main.rego", main)], plan()).unwrap();
    assert_eq!(
        msgs(&f.deny),
        vec![("main.rego:deny".into(), "AWS_S3_BUCKET.A".into())]
    );
}

#[test]
fn evaluation_errors_and_the_time_limit_are_exit_2_naming_the_rule() {
    let slow = "package main\nimport rego.v1\n\ndeny contains msg if {\n  n := count([1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000)])\n  msg := sprintf(\"%d\", [n])\n}\n";
    let (dir, _) = write_all(&[("slow.rego", slow)]);
    let r = RegoPolicies::load(&[dir.path().to_path_buf()], Duration::from_millis(50)).unwrap();
    let p = dir.path().join("plan.json");
    std::fs::write(&p, plan().to_string()).unwrap();
    let e = r.check_plan(&p, &none()).unwrap_err();
    assert_eq!(e.class.code(), 2);
    assert!(e.message.contains("slow.rego:4"), "{}", e.message);

    let bad_value = "package main\nimport rego.v1\n\ndeny contains 5 if { true }\n";
    let e = run(&[("v.rego", bad_value)], plan()).unwrap_err();
    assert_eq!(e.class.code(), 2);
    assert!(
        e.message.contains("v.rego:4") && e.message.contains("neither a string"),
        "{}",
        e.message
    );
}

#[test]
fn an_empty_directory_or_a_missing_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x_test.rego"), "package main\n").unwrap();
    let e = RegoPolicies::load(&[dir.path().to_path_buf()], Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(e.message.contains("no `.rego` file"), "{}", e.message);
    let e = RegoPolicies::load(&[dir.path().join("nope.rego")], Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(e.message.contains("cannot read"), "{}", e.message);
}

#[test]
fn every_place_of_a_plan_that_carries_values_is_masked() {
    let sec = |s: &str| json!({"value": s});
    let plan = json!({
        "resource_changes": [{"change": {"before": {"a": "RC-BEFORE"}, "after": {"a": "RC-AFTER", "b": "shown"},
            "before_sensitive": {"a": true}, "after_sensitive": {"a": true}}}],
        "resource_drift": [{"change": {"before": "DRIFT", "after": "DRIFT2", "before_sensitive": true, "after_sensitive": true}}],
        "deferred_changes": [{"resource_change": {"change": {"after": {"k": "DEFERRED"}, "after_sensitive": {"k": true}}}}],
        "output_changes": {"o": {"before": null, "after": "OUT", "after_sensitive": true}},
        "planned_values": {"outputs": {"o": {"sensitive": true, "value": "PV-OUT"}},
            "root_module": {"resources": [{"values": {"a": "PV-RES"}, "sensitive_values": {"a": true}}],
                "child_modules": [{"resources": [{"values": {"a": "PV-CHILD"}, "sensitive_values": {"a": true}}]}]}},
        "prior_state": {"values": {"outputs": {"o": {"sensitive": true, "value": "PS-OUT"}},
            "root_module": {"resources": [{"values": {"a": "PS-RES"}, "sensitive_values": {"a": true}}]}}},
        "variables": {"pw": sec("VAR"), "ok": sec("visible")},
        "configuration": {"root_module": {"variables": {"pw": {"sensitive": true, "default": "DEFAULT"}}}},
        "other": {"note": "holds SCRUBBED-STRING inside"}
    });
    let sc = Scrubber::new(&["SCRUBBED-STRING".to_string()], "(sensitive)");
    let uses = Uses {
        all: true,
        keys: BTreeSet::new(),
    };
    let v = input(plan.to_string().as_bytes(), &uses, &sc, true).unwrap();
    let text = v.to_string();
    for secret in [
        "RC-BEFORE",
        "RC-AFTER",
        "DRIFT",
        "DEFERRED",
        "OUT",
        "PV-RES",
        "PV-CHILD",
        "PS-RES",
        "VAR",
        "DEFAULT",
        "SCRUBBED-STRING",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} reached the policy input: {text}"
        );
    }
    assert!(text.contains("shown") && text.contains("visible"), "{text}");
    // Unmasked (a file that opted in): everything as it is.
    let raw = input(plan.to_string().as_bytes(), &uses, &sc, false)
        .unwrap()
        .to_string();
    assert!(raw.contains("RC-AFTER") && raw.contains("SCRUBBED-STRING"));
    // Only the keys the policies read are there.
    let some = Uses {
        all: false,
        keys: ["variables".to_string()].into(),
    };
    let v = input(plan.to_string().as_bytes(), &some, &sc, true).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    assert!(
        !v.to_string().contains("VAR"),
        "the configuration is read for the mask: {v}"
    );
}

#[test]
fn one_evaluation_keeps_every_file_and_rule_apart() {
    // The same message from two files, a helper of `package main` defined in a third, a
    // default: every finding is still named by its own file and rule.
    let a = "package main\nimport rego.v1\ndeny contains msg if { some rc in input.resource_changes; destroyed(rc); msg := \"same\" }\n";
    let b = "package main\ndeny[msg] { rc := input.resource_changes[_]; destroyed(rc); msg := \"same\" }\ndefault warn_flag := false\nwarn_flag { count(input.resource_changes) > 1 }\n";
    let h = "package main\nimport rego.v1\ndestroyed(rc) if \"delete\" in rc.change.actions\n";
    let r = load(&[("a.rego", a), ("b.rego", b), ("h.rego", h)]).unwrap();
    assert!(r.combined.is_some(), "evaluated in one query");
    let f = run(&[("a.rego", a), ("b.rego", b), ("h.rego", h)], plan()).unwrap();
    assert_eq!(
        msgs(&f.deny),
        vec![
            ("a.rego:deny".into(), "same".into()),
            ("b.rego:deny".into(), "same".into()),
        ]
    );
    assert_eq!(
        msgs(&f.warn),
        vec![(
            "b.rego:warn_flag".into(),
            "(the rule holds; it gives no message)".into()
        )]
    );
}

#[test]
fn a_policy_that_reads_the_findings_is_evaluated_rule_by_rule() {
    let a = "package main\nimport rego.v1\ndeny contains \"d\" if { some rc in input.resource_changes; rc.type == \"aws_s3_bucket\" }\n";
    for reader in [
        "package main\nimport rego.v1\nwarn contains sprintf(\"%d denial(s)\", [count(deny)]) if true\n",
        "package other\nimport rego.v1\nn := count(data.main.deny)\n",
    ] {
        let files = [("a.rego", a), ("b.rego", reader)];
        let r = load(&files).unwrap();
        assert!(r.combined.is_none(), "{reader}");
        let f = run(&files, plan()).unwrap();
        assert_eq!(msgs(&f.deny), vec![("a.rego:deny".into(), "d".into())]);
    }
    let f = run(
        &[
            ("a.rego", a),
            ("b.rego", "package main\nimport rego.v1\nwarn contains sprintf(\"%d denial(s)\", [count(deny)]) if true\n"),
        ],
        plan(),
    )
    .unwrap();
    assert_eq!(
        msgs(&f.warn),
        vec![("b.rego:warn".into(), "1 denial(s)".into())]
    );
}

#[test]
fn an_evaluation_error_names_the_rule_it_is_in_as_written() {
    let bad = "package main\nimport rego.v1\n\nhelper := 1\n\ndeny contains msg if {\n  some rc in input.resource_changes\n  msg := rc.address + 1\n}\n";
    let e = run(&[("e.rego", bad)], plan()).unwrap_err();
    assert_eq!(e.class.code(), 2);
    assert!(
        e.message.contains("in rule `deny` (")
            && e.message.contains("e.rego:6)")
            && e.message.contains("e.rego:8:"),
        "{}",
        e.message
    );
    assert!(!e.message.contains(RENAMED), "{}", e.message);
}

#[test]
fn rules_split_across_threads_find_what_one_evaluation_finds() {
    // The committed conftest-style set (helpers in their own package, both syntaxes) and two
    // files of this module's own, on the module's plan: every split gives the same findings.
    let (dir, _) = write_all(&[("a.rego", V1), ("b.rego", V0)]);
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rego/terraform");
    let paths = [dir.path().to_path_buf(), committed];
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan().to_string()).unwrap();
    let find = |parts: usize| {
        let r = RegoPolicies::load_in_parts(&paths, Duration::from_secs(20), parts).unwrap();
        let c = r.combined.as_ref().expect("one combined evaluation");
        let rules = c.groups.iter().filter(|g| !g.opted).count();
        assert_eq!(c.queries[0].len(), parts.min(rules), "parts of {parts}");
        let f = r.check_plan(&plan_path, &none()).unwrap();
        (msgs(&f.deny), msgs(&f.warn))
    };
    let one = find(1);
    assert!(!one.0.is_empty() && !one.1.is_empty(), "{one:?}");
    for parts in [2, 3, 5, 64] {
        assert_eq!(find(parts), one, "{parts} parts");
    }
}
