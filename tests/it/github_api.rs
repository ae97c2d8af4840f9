//! The GitHub REST API side of promote and tag-deploy, checked against GitHub's own OpenAPI
//! description: Prism (`support::prism`) proves what our client sends is schema-valid, and the
//! scenario fakes (`support::github_fake`) behind a validating Prism proxy cover stateful
//! behaviour (rate limits, 409s, timeouts of a create, a PR merged by a fast-forward).

use crate::support::prism::{self, Prism};

// The harness itself: the committed subset is served, the vendor media type negotiates (the
// description declares only application/json; the cut script adds it), slashes in refs work
// through the heads/tags forms, and an invalid body is refused with the violation named.
#[test]
fn prism_serves_the_committed_subset_and_rejects_invalid_requests() {
    let p = Prism::mock();
    let ok = r#"{"ref":"0123456789012345678901234567890123456789","auto_merge":false,"required_contexts":[],"environment":"dev","production_environment":false,"payload":{"run_id":"1"}}"#;
    let (code, _, body) = p.request("POST", "/repos/o/r/deployments", Some(ok));
    assert_eq!(code, 201, "{body}");
    let (code, _, _) = p.request("GET", "/repos/o/r/git/ref/heads/main", None);
    assert_eq!(code, 200);
    p.assert_no_violations();

    let (code, headers, _) = p.request(
        "POST",
        "/repos/o/r/deployments",
        Some(r#"{"auto_merge":"no"}"#),
    );
    assert_eq!(code, 422);
    let v = headers
        .iter()
        .find(|(k, _)| k == "sl-violations")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(v.contains("required property 'ref'"), "{v}");
    assert!(!p.violations().is_empty());
    assert!(prism::spec_path().exists());
}
