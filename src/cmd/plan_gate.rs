//! `plan-gate`: Terraform plan summary, policy gate and PR comment. (Skeleton; its owner fills it in.)

use clap::{CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::exit::{Failure, Result};
use crate::runner::Runner;

/// Terraform plan summary, policy gate and PR comment.
#[derive(Debug, Parser)]
#[command(
    name = "plan-gate",
    version,
    about = "Terraform plan summary, policy gate and PR comment"
)]
pub struct Args {}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "plan-gate",
        description: "Terraform plan summary, policy gate and PR comment",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Run the command.
pub fn run(_runner: &Runner, _args: Args) -> Result<()> {
    Err(Failure::runtime("plan-gate is not implemented yet"))
}
