//! One module per policy rule. To add a rule: write `rules/<name>.rs` with a `KIND: RuleKind`,
//! then add one line to [`REGISTRY`] (and a test in `policy/tests.rs`, a paragraph in
//! `docs/plan-gate.md`).

pub mod forbid_destroy;
pub mod forbid_providers;
pub mod max_destroys;
pub mod no_drift;
pub mod protect_production;
pub mod protect_stateful;

use super::RuleKind;

/// Every rule plan-gate knows, in the order they are checked.
pub static REGISTRY: &[RuleKind] = &[
    forbid_destroy::KIND,
    max_destroys::KIND,
    no_drift::KIND,
    forbid_providers::KIND,
    protect_production::KIND,
    protect_stateful::KIND,
];

/// `environments:` filter shared by several rules: empty = every environment.
pub(crate) fn env_applies(envs: &[String], env: Option<&str>) -> bool {
    envs.is_empty() || env.is_some_and(|e| envs.iter().any(|x| x == e))
}
