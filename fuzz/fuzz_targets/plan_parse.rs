//! Fuzz the plan reader and everything downstream of it: any input is either refused with a
//! `PlanError` or yields a summary whose invariants hold and which renders without panicking;
//! and the fast path always gives exactly the reference path's answer.
#![no_main]

use gitops_actions::plan::load::{load_bytes, load_bytes_reference, Limits};
use gitops_actions::plan_report::{self as render, Report, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bytes: 4 << 20,
        max_depth: 100,
    };
    let got = load_bytes(data, &limits);
    assert_eq!(
        format!("{got:?}"),
        format!("{:?}", load_bytes_reference(data, &limits)),
        "the fast path and the reference path disagree"
    );
    let Ok(s) = got else {
        return;
    };
    let c = s.counts;
    assert!(c.replace <= c.destroy && c.replace <= c.add);
    assert!(gitops_actions::validate::is_sha256_digest(&s.digest));
    // Same bytes, same digest.
    assert_eq!(load_bytes(data, &limits).unwrap().digest, s.digest);
    let r = Report {
        plan: &s,
        verdict: Verdict::Pass,
        gate: Vec::new(),
        violations: Vec::new(),
        allowed: Vec::new(),
        allow_reason: None,
        data_loss_reason: None,
        environment: None,
        stack: None,
    };
    // Rendering never panics, and the scrubbed text carries no sensitive string.
    let md = s.scrub(&render::markdown(&r).render());
    let text = render::text(&r);
    for secret in s.sensitive_strings.iter().filter(|x| !"(sensitive)".contains(x.as_str())) {
        assert!(!md.contains(secret.as_str()));
        assert!(!text.contains(secret.as_str()));
    }
    let _ = render::json(&r);
});
