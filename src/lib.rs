//! # gitops-actions
//!
//! One library behind six thin binaries (`oidc-login`, `plan-gate`, `ecr-push`, `promote`,
//! `tag-deploy`, `stacks`), each wrapped as a composite GitHub Action. A tour by concern:
//!
//! - [`exit`]: the exit-code classes and the one error type ([`exit::Failure`]).
//! - [`runner`]: the GitHub Actions runner protocol (outputs, env exports, masks, annotations,
//!   step summary, neutralising untrusted text). Every byte a binary prints goes through it.
//! - [`secret`]: a string type that never prints itself.
//! - [`envs`]: the environments model (`dev` -> `staging` -> `prod` by default, or `.github/gitops.yml`).
//! - [`validate`]: validators for inputs several binaries share (regions, accounts, refs, SHAs).
//! - [`net`]: every HTTP(S) connection: one rustls configuration (ring, one root store), one
//!   reqwest stack, one proxy policy — for the AWS SDK, GitHub, the registry, OIDC and git.
//! - [`cli`]: the shared `main` (parse, verbs as subcommands picked from argv or `GITOPS_COMMAND`,
//!   the rule that refuses another verb's inputs, exit codes, a closed stdout) and the input
//!   groups several binaries flatten ([`cli::inputs`]: GitHub target, checkout).
//! - [`oidc`], [`aws`]: GitHub OIDC tokens and STS (oidc-login).
//! - [`profiles`]: named AWS profiles in job-private files under `RUNNER_TEMP` (oidc-login's
//!   `aws-profile`), and the credentials an earlier step left (environment keys or `AWS_PROFILE`).
//! - [`plan`], [`policy`]: Terraform plan JSON reading, counting, digesting, and the policy rules checked
//!   against it (plan-gate). [`policy`] reads [`plan`]; [`plan`] reads neither.
//! - [`plan_report`]: the plan-gate report (Markdown, text, JSON) of a plan and the policy's verdict;
//!   it sits above [`plan`] and [`policy`], and nothing below imports it.
//! - [`registry`]: OCI distribution client, image sources and ECR specifics (ecr-push).
//! - [`promote`]: the promotion decision table, [`promote::decide`]: one function per rule, in
//!   order (holds, nothing deployed, not on the source branch, up to date, a target with commits
//!   the source lacks, soak, the target's deploy windows, the target's drift with
//!   `require-no-drift`, deployment status), each refusal a
//!   [`promote::Refusal`].
//! - [`windows`]: deploy windows and freezes per environment (time zone, allowed windows,
//!   freeze periods) and the rule [`windows::Windows::check`] promote and tag-deploy enforce.
//! - [`deploy`]: the one owner of the deploy-tag vocabulary (names, trailers, parsing) and the
//!   `tag-deploy` decisions ([`deploy::decide_record`], [`deploy::check_record`], [`deploy::resolve`]).
//! - [`git`], [`github`]: the git session (ls-remote, fetch, ancestry, leased pushes) and the
//!   GitHub REST API: the one client (plan-gate's comment, promote, tag-deploy) and the one
//!   blocking bridge the commands run it through ([`github::Blocking`]).
//! - [`stacks`]: many Terraform roots in one repository: their configuration, dependency
//!   layers, change detection against the deployed commit and the job matrix (the `stacks` binary).
//! - [`actiongen`]: generates `actions/*/action.yml` and their README tables from the clap definitions.
//! - [`cmd`]: one module per binary: its clap `Args` (flags = action inputs) and `run`.

pub mod actiongen;
pub mod aws;
pub mod cli;
pub mod cmd;
pub mod deploy;
pub mod envs;
pub mod exit;
pub mod git;
pub mod github;
pub mod net;
pub mod oidc;
pub mod plan;
pub mod plan_report;
pub mod policy;
pub mod profiles;
pub mod promote;
pub mod registry;
pub mod runner;
pub mod secret;
pub mod stacks;
pub mod validate;
pub mod verify;
pub mod windows;

#[cfg(test)]
mod module_graph;
