//! The one integration-test binary. Every test runs the real binaries in a [`support::Sandbox`]
//! (ambient `GITHUB_*`, `RUNNER_*`, `ACTIONS_*`, `AWS_*` scrubbed) against real stand-ins started
//! on free 127.0.0.1 ports and stopped when the test ends.
//!
//! Modules, one per user-visible area:
//! - `cli`: every binary's `--help`, `--version`, usage errors and exit codes.
//! - `oidc_login`: keyless AWS login against moto and our OIDC token endpoint.
//! - `plan_gate`: plan parsing, counting, rendering, policy, PR comment.
//! - `plan_gate_rego`: Rego policies (`--policy-rego`) on the real plans of the corpus.
//! - `opentofu`: OpenTofu plan JSON (fixtures from its documentation) and its refusals.
//! - `ecr_push`: pushes and copies against the CNCF distribution registry and moto's ECR API.
//! - `tag_deploy`, `promote`: deploy tags and promotion against git smart-HTTP remotes.
//! - `stacks`: stack configuration, change detection against deploy tags, the matrix under act.
//! - `stacks_templates`: the stacks jobs of the templates (layers, digests, records, permissions).
//! - `actions`: generated action.yml files, install.sh, act runs of the composite actions.
//! - `drift`: `plan-gate drift` on real refresh-only plans and the drift issue lifecycle.
//! - `e2e`: the whole dev -> staging -> prod flow.

mod support;

mod actions;
mod cli;
mod drift;
mod e2e;
mod ecr_push;
mod github_api;
mod harness;
mod oidc_login;
mod opentofu;
mod plan_gate;
mod plan_gate_rego;
mod plan_review;
mod promote;
mod stacks;
mod stacks_templates;
mod tag_deploy;
mod terraform_schema;
mod verify;
