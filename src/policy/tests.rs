use super::*;
use crate::plan::load::{load_bytes, Limits};

fn plan() -> Summary {
    let p = br#"{"format_version":"1.2","resource_changes":[
        {"address":"aws_db_instance.main","type":"aws_db_instance","mode":"managed","provider_name":"registry.terraform.io/hashicorp/aws","change":{"actions":["delete"]}},
        {"address":"module.net.aws_vpc.v","module_address":"module.net","type":"aws_vpc","provider_name":"registry.terraform.io/hashicorp/aws","change":{"actions":["create","delete"]}},
        {"address":"null_resource.x","type":"null_resource","provider_name":"registry.terraform.io/hashicorp/null","change":{"actions":["create"]}}],
        "resource_drift":[{"address":"aws_s3_bucket.b","change":{"actions":["update"]}}]}"#;
    load_bytes(p, &Limits::default()).unwrap()
}

fn check(yaml: &str, env: Option<&str>, production: bool) -> Vec<Violation> {
    let p = plan();
    let pol = Policy::from_yaml(yaml, "test.yml").unwrap();
    pol.check(&Context {
        plan: &p,
        environment: env,
        production,
        rollback: false,
    })
}

fn ids(v: &[Violation]) -> Vec<(String, Option<String>)> {
    v.iter()
        .map(|v| (v.rule.clone(), v.address.clone()))
        .collect()
}

#[test]
fn unknown_rules_and_keys_are_refused() {
    let e = Policy::from_yaml("rules:\n  max-destroy: 3\n", "p.yml")
        .err()
        .unwrap();
    assert!(
        e.message
            .contains("`rules` has a key that is not a rule (did you mean `max-destroys`?)"),
        "{e}"
    );
    assert!(!e.message.contains("`max-destroy`"), "{e}");
    let e = Policy::from_yaml("rule:\n  max-destroys: 3\n", "p.yml")
        .err()
        .unwrap();
    assert!(e.message.contains("an unknown key"), "{e}");
    let e = Policy::from_yaml("rules:\n  forbid-destroy:\n    - type: [x]\n", "p.yml")
        .err()
        .unwrap();
    assert!(e.message.contains("an unknown key"), "{e}");
    let e = Policy::from_yaml("rules:\n  max-destroys: {limit: 1, env: [x]}\n", "p.yml")
        .err()
        .unwrap();
    assert!(e.message.contains("max-destroys"), "{e}");
    let e = Policy::from_yaml("version: 2\n", "p.yml").err().unwrap();
    assert!(e.message.contains("version"), "{e}");
}

#[test]
fn forbid_destroy_matches_types_addresses_and_environments() {
    let v = check(
        "rules:\n  forbid-destroy:\n    - types: [aws_db_*]\n",
        None,
        false,
    );
    assert_eq!(
        ids(&v),
        vec![("forbid-destroy".into(), Some("aws_db_instance.main".into()))]
    );
    let v = check("rules:\n  forbid-destroy:\n    - addresses: [\"module.net.*\"]\n      actions: [replace]\n", None, false);
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("replaces"));
    let v = check(
        "rules:\n  forbid-destroy:\n    - types: [aws_db_instance]\n      environments: [prod]\n",
        Some("dev"),
        false,
    );
    assert!(v.is_empty());
}

#[test]
fn max_destroys_no_drift_and_providers() {
    assert_eq!(check("rules:\n  max-destroys: 1\n", None, false).len(), 1);
    assert!(check("rules:\n  max-destroys: 2\n", None, false).is_empty());
    assert!(check(
        "rules:\n  max-destroys: {limit: 0, environments: [prod]}\n",
        Some("dev"),
        false
    )
    .is_empty());
    assert_eq!(check("rules:\n  no-drift: true\n", None, false).len(), 1);
    assert!(check("rules:\n  no-drift: false\n", None, false).is_empty());
    let v = check(
        "rules:\n  forbid-providers: [hashicorp/null]\n",
        None,
        false,
    );
    assert_eq!(
        ids(&v),
        vec![("forbid-providers".into(), Some("null_resource.x".into()))]
    );
    assert!(check("rules:\n  forbid-providers: [ull]\n", None, false).is_empty());
}

#[test]
fn production_is_protected_by_default_and_can_be_switched_off() {
    let p = plan();
    let v = Policy::default_policy().check(&Context {
        plan: &p,
        environment: Some("prod"),
        production: true,
        rollback: false,
    });
    // Both destroys break protect-production; the database's also breaks protect-stateful.
    assert_eq!(
        ids(&v),
        vec![
            (
                "protect-production".into(),
                Some("aws_db_instance.main".into())
            ),
            (
                "protect-production".into(),
                Some("module.net.aws_vpc.v".into())
            ),
            (
                "protect-stateful".into(),
                Some("aws_db_instance.main".into())
            ),
        ]
    );
    let v = Policy::default_policy().check(&Context {
        plan: &p,
        environment: Some("dev"),
        production: false,
        rollback: false,
    });
    assert!(v.is_empty());
    assert!(check(
        "rules:\n  protect-production: false\n  protect-stateful: false\n",
        Some("prod"),
        true
    )
    .is_empty());
    assert_eq!(
        check("rules:\n  max-destroys: 5\n", Some("prod"), true).len(),
        3
    );
}

#[test]
fn policy_errors_never_repeat_a_value_from_the_file() {
    let tok = "ghp_SECRET0123456789abcdefABCDEF";
    for yaml in [
        format!("rules:\n  {tok}: 3\n"),
        format!("rules:\n  max-destroys: {tok}\n"),
        format!("rules:\n  max-destroys: {{limit: 1, {tok}: [x]}}\n"),
        format!("rules:\n  forbid-destroy:\n    - types: [x]\n      {tok}: [y]\n"),
        format!("rules:\n  forbid-destroy:\n    - types: {tok}\n"),
        format!("rules:\n  forbid-destroy:\n    - addresses: ['[{tok}']\n"),
        format!("rules:\n  no-drift: {tok}\n"),
        format!("version: {tok}\n"),
        format!("{tok}: 1\n"),
        format!("rules: [\"{tok}\"\n"),
    ] {
        let e = Policy::from_yaml(&yaml, "p.yml").err().unwrap();
        assert_eq!(e.class, crate::exit::ExitClass::Usage, "{yaml}");
        assert!(e.message.starts_with("p.yml"), "{e}");
        assert!(!e.message.contains("SECRET"), "{yaml}: {e}");
    }
}
