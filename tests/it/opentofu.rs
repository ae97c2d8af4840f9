//! OpenTofu's plan JSON: plans written from OpenTofu's "JSON Output Format" documentation
//! (`tests/fixtures/opentofu/README.md` names the section each follows) are counted exactly,
//! name their engine and version, keep sensitive values out of every channel, and what
//! plan-gate does not understand (an OpenTofu version that is not 1.x, an encrypted state or
//! plan) is refused with exit 2 before anything is written.

use crate::support::{root, Sandbox};

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/opentofu")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn opentofu_plans_are_counted_exactly_and_name_their_engine() {
    let sb = Sandbox::actions();
    let plan = fixture("tofu-1.8-plan.json");
    let r = sb.run(
        "plan-gate",
        &["--plan", &plan, "--format", "json", "--comment", "off"],
    );
    // The default policy refuses nothing here (no production environment given).
    r.expect_code(0);
    let out = sb.outputs();
    for (k, want) in [
        ("import", "1"),
        ("add", "1"),
        ("change", "1"),
        ("destroy", "3"),
        ("replace", "1"),
        ("move", "1"),
        ("forget", "1"),
        ("read", "1"),
        ("no-op", "1"),
        ("drift", "1"),
        ("output-changes", "2"),
        ("has-changes", "true"),
        ("errored", "false"),
    ] {
        assert_eq!(out[k], want, "{k}");
    }
    let j: serde_json::Value = serde_json::from_str(&out["json"]).unwrap();
    assert_eq!(j["engine"], "OpenTofu");
    assert_eq!(j["terraform_version"], "1.8.3");
    assert!(
        sb.summary().contains("OpenTofu `1.8.3`"),
        "{}",
        sb.summary()
    );
    sb.assert_no_leak(&r, &["tofu-sensitive-value-9"], &[]);
}

#[test]
fn what_plan_gate_does_not_understand_of_opentofu_is_refused() {
    for (file, needle) in [
        (
            "tofu-unknown-version.plan.json",
            "its `terraform_version` (the OpenTofu version) is \"2.0.0\", not a 1.x version",
        ),
        (
            "tofu-encrypted-state.json",
            "OpenTofu encrypted state or plan (it has `encryption_version`)",
        ),
        (
            "tofu-encrypted-plan.json",
            "run `tofu show -json tfplan` with the encryption configured",
        ),
    ] {
        for verb in [
            &["gate", "--comment", "off"][..],
            &["verify", "--digest", &format!("sha256:{}", "0".repeat(64))][..],
        ] {
            let sb = Sandbox::actions();
            let plan = fixture(file);
            let mut args = verb.to_vec();
            args.extend_from_slice(&["--plan", &plan]);
            let r = sb.run("plan-gate", &args);
            r.expect_code(2);
            assert!(
                r.all().contains(needle),
                "{file}: {needle:?} in {}",
                r.all()
            );
            assert!(sb.outputs().is_empty(), "{file}: {:?}", sb.outputs());
            assert!(sb.summary().is_empty(), "{file}");
        }
    }
}
