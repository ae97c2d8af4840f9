//! One module per binary: its clap definition (flags = action inputs, each also read from
//! `GITOPS_<FLAG>`), its declared outputs, and its `run`.

pub mod ecr_push;
pub mod oidc_login;
pub mod plan_gate;
pub mod promote;
pub mod stacks;
pub mod tag_deploy;

/// A step output a binary may set: name and description (used to generate `action.yml`).
#[derive(Debug, Clone, Copy)]
pub struct OutputDoc {
    /// Output name (kebab-case).
    pub name: &'static str,
    /// What it contains.
    pub description: &'static str,
}

/// Everything the action generator needs to know about one binary.
pub struct BinaryDoc {
    /// Binary and action name.
    pub name: &'static str,
    /// One-line description (the action's `description`).
    pub description: &'static str,
    /// The clap command.
    pub command: fn() -> clap::Command,
    /// Outputs it may set.
    pub outputs: &'static [OutputDoc],
}

/// All five binaries, in the order of the flow.
pub fn binaries() -> Vec<BinaryDoc> {
    vec![
        oidc_login::doc(),
        plan_gate::doc(),
        ecr_push::doc(),
        promote::doc(),
        tag_deploy::doc(),
        stacks::doc(),
    ]
}
