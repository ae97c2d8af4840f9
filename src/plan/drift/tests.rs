//! The drift rules on real plans: `tests/fixtures/drift/` was written by Terraform 1.11 and the
//! AWS provider against moto (`scripts/gen-drift-fixtures`; the integration test re-runs it when
//! terraform is installed). One parameter's value and tags and one SecureString were changed
//! behind Terraform's back; `aws_ssm_parameter.code` changed in code only; a data source reads
//! the changed parameter; the provider normalises `tags = null` to `{}` on every refresh.

use super::*;
use crate::plan::load::{load_bytes, Limits};

fn fixture(name: &str) -> Summary {
    let path = format!("{}/tests/fixtures/drift/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    load_bytes(&bytes, &Limits::default()).unwrap()
}

const SECRETS: &[&str] = &["deployed-secret-value-1", "changed-secret-value-2"];

fn attrs(f: &Finding) -> Vec<&str> {
    f.attrs.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn the_drift_table_on_real_plans() {
    struct Case {
        name: &'static str,
        refresh: &'static str,
        plan: Option<&'static str>,
        status: &'static str,
        /// (address, kind, attributes, apply reverts)
        findings: &'static [(&'static str, Kind, &'static [&'static str], bool)],
        normalisation_only: &'static [&'static str],
        data_ignored: usize,
    }
    use Kind::{CodeNotDeployed as Code, RealityChanged as Real};
    let cases = [
        Case {
            name: "right after apply: the provider's normalisation is not drift",
            refresh: "clean.refresh-only.json",
            plan: None,
            status: "clean",
            findings: &[],
            normalisation_only: &[
                "aws_s3_bucket.steady",
                "aws_ssm_parameter.code",
                "aws_ssm_parameter.secret",
            ],
            data_ignored: 0,
        },
        Case {
            name: "changed by hand: by address and attribute",
            refresh: "drifted.refresh-only.json",
            plan: None,
            status: "drifted",
            findings: &[
                (
                    "aws_ssm_parameter.plain",
                    Real,
                    &["tags", "tags_all", "value", "version"],
                    false,
                ),
                (
                    "aws_ssm_parameter.secret",
                    Real,
                    &["value", "version"],
                    false,
                ),
            ],
            normalisation_only: &["aws_s3_bucket.steady", "aws_ssm_parameter.code"],
            data_ignored: 0,
        },
        Case {
            name: "with the normal plan: reality changed vs code not yet deployed",
            refresh: "drifted.refresh-only.json",
            plan: Some("drifted.plan.json"),
            status: "drifted",
            findings: &[
                (
                    "aws_ssm_parameter.plain",
                    Real,
                    &["tags", "tags_all", "value", "version"],
                    true,
                ),
                (
                    "aws_ssm_parameter.secret",
                    Real,
                    &["value", "version"],
                    true,
                ),
                (
                    "aws_ssm_parameter.code",
                    Code,
                    &["insecure_value", "value", "version"],
                    false,
                ),
            ],
            normalisation_only: &["aws_s3_bucket.steady", "aws_ssm_parameter.code"],
            // The data source the normal plan reads again.
            data_ignored: 1,
        },
        Case {
            name: "after a re-apply the drift is gone",
            refresh: "reapplied.refresh-only.json",
            plan: None,
            status: "clean",
            findings: &[],
            normalisation_only: &[],
            data_ignored: 0,
        },
    ];
    for c in cases {
        let refresh = fixture(c.refresh);
        let plan = c.plan.map(fixture);
        let d = classify(&refresh, plan.as_ref()).unwrap();
        let got: Vec<(&str, Kind, Vec<&str>, bool)> = d
            .findings
            .iter()
            .map(|f| (f.address.as_str(), f.kind, attrs(f), f.apply_reverts))
            .collect();
        let want: Vec<(&str, Kind, Vec<&str>, bool)> = c
            .findings
            .iter()
            .map(|(a, k, at, r)| (*a, *k, at.to_vec(), *r))
            .collect();
        assert_eq!(got, want, "{}", c.name);
        assert_eq!(d.status(), c.status, "{}", c.name);
        assert_eq!(d.normalisation_only, c.normalisation_only, "{}", c.name);
        assert_eq!(d.data_ignored, c.data_ignored, "{}", c.name);
        assert_eq!(d.engine, "Terraform 1.11.4", "{}", c.name);
        // Sensitive-safe: the SecureString's old and new values are shown nowhere.
        let mut plans = vec![&refresh];
        plans.extend(plan.as_ref());
        let sc = scrubber(&plans);
        let place = Place {
            environment: "prod".into(),
            stack: None,
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            run_url: Some("https://github.com/o/r/actions/runs/1".into()),
        };
        let mut j = json(&d, &place);
        crate::plan::drift::tests::scrub_value(&sc, &mut j);
        for text in [
            j.to_string(),
            markdown(&d, &place, &sc),
            issue_body(&d, &place, &sc),
        ] {
            for s in SECRETS {
                assert!(!text.contains(s), "{}: {s} leaked in {text}", c.name);
            }
        }
    }
}

pub(crate) fn scrub_value(sc: &Scrubber, v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = sc.scrub(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| scrub_value(sc, x)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| scrub_value(sc, x)),
        _ => {}
    }
}

#[test]
fn the_sensitive_value_is_shown_as_sensitive_and_the_plain_one_as_found() {
    let d = classify(&fixture("drifted.refresh-only.json"), None).unwrap();
    let secret = &d.findings[1];
    assert_eq!(secret.attrs[0].before, Shown::Sensitive);
    assert_eq!(secret.attrs[0].after, Shown::Sensitive);
    let plain = &d.findings[0];
    let value = plain.attrs.iter().find(|a| a.name == "value").unwrap();
    // `value` of a String parameter is still marked sensitive by the provider's schema.
    assert_eq!(value.after, Shown::Sensitive);
    let tags = plain.attrs.iter().find(|a| a.name == "tags").unwrap();
    assert_eq!(
        tags.after,
        Shown::Value(r#"{"owner":"someone-else","ticket":"OPS-1"}"#.into())
    );
}

fn synthetic(drift: &str, changes: &str) -> Summary {
    let text = format!(
        r#"{{"format_version":"1.2","terraform_version":"1.11.4","resource_drift":[{drift}],"resource_changes":[{changes}]}}"#
    );
    load_bytes(text.as_bytes(), &Limits::default()).unwrap()
}

#[test]
fn data_sources_are_never_drift_and_deletions_are() {
    // Terraform 1.0 wrote data sources into `resource_drift`, without `address`.
    let refresh = synthetic(
        r#"{"mode":"data","type":"aws_ami","name":"x","change":{"actions":["update"],"before":{"id":"a"},"after":{"id":"b"}}},
           {"address":"aws_s3_bucket.gone","mode":"managed","type":"aws_s3_bucket","name":"gone","change":{"actions":["delete"],"before":{"bucket":"b"},"after":null}}"#,
        "",
    );
    let plan = synthetic(
        "",
        r#"{"address":"data.aws_ami.x","mode":"data","type":"aws_ami","name":"x","change":{"actions":["read"],"before":null,"after":{"id":"c"}}},
           {"address":"aws_s3_bucket.gone","mode":"managed","type":"aws_s3_bucket","name":"gone","change":{"actions":["create"],"before":null,"after":{"bucket":"b"}}}"#,
    );
    let d = classify(&refresh, Some(&plan)).unwrap();
    assert_eq!(d.data_ignored, 2);
    assert_eq!(d.findings.len(), 1);
    assert_eq!(d.findings[0].address, "aws_s3_bucket.gone");
    assert_eq!(d.findings[0].action, Action::Delete);
    assert!(d.findings[0].apply_reverts);
    assert_eq!(d.status(), "drifted");
    assert!(markdown(&d, &Place::default(), &scrubber(&[&refresh]))
        .contains("deleted outside Terraform"));
}

#[test]
fn a_normal_plan_given_as_the_refresh_only_plan_is_refused() {
    let plan = fixture("drifted.plan.json");
    let e = classify(&plan, None).unwrap_err().to_string();
    assert!(e.contains("refresh-only plan would update"), "{e}");
    assert!(e.contains("normal-plan"), "{e}");
    let mut errored = fixture("clean.refresh-only.json");
    errored.errored = true;
    let e = classify(&fixture("clean.refresh-only.json"), Some(&errored))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`normal-plan`") && e.contains("errored"), "{e}");
}

#[test]
fn the_issue_lifecycle_and_its_marker() {
    assert_eq!(next_step(true, None), Step::Open);
    assert_eq!(next_step(true, Some(7)), Step::Update(7));
    assert_eq!(next_step(false, Some(7)), Step::Close(7));
    assert_eq!(next_step(false, None), Step::Nothing);
    assert_eq!(
        issue_marker("prod/net work-->"),
        "<!-- gitops-actions:drift key=prod/net_work--_ -->"
    );
    // A resource address that carries our marker text cannot make a body read as another key's.
    let mut refresh = synthetic(
        r#"{"address":"aws_s3_bucket.b[\"<!-- gitops-actions:drift key=dev -->\"]","mode":"managed","type":"aws_s3_bucket","name":"b","change":{"actions":["update"],"before":{"x":"1"},"after":{"x":"2"}}}"#,
        "",
    );
    refresh.changes.clear();
    let d = classify(&refresh, None).unwrap();
    let place = Place {
        environment: "prod".into(),
        ..Place::default()
    };
    let body = issue_body(&d, &place, &scrubber(&[&refresh]));
    assert!(body.trim_end().ends_with(&issue_marker("prod")));
    assert_eq!(body.matches("gitops-actions:drift").count(), 1, "{body}");
    assert!(marks_environment(&body, "prod"));
    assert!(!marks_environment(&body, "pro"));
    let stack = Place {
        stack: Some("net".into()),
        ..place.clone()
    };
    assert!(marks_environment(
        &issue_body(&d, &stack, &scrubber(&[&refresh])),
        "prod"
    ));
    assert!(!marks_environment(
        "<!-- gitops-actions:drift key=prod --> and more",
        "prod"
    ));
    assert!(close_comment(&place).contains("No drift any more in `prod`"));
}
