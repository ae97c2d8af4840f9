//! `oidc-login`: Keyless AWS credentials from GitHub OIDC. (Skeleton; its owner fills it in.)

use clap::{CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::exit::{Failure, Result};
use crate::runner::Runner;

/// Keyless AWS credentials from GitHub OIDC.
#[derive(Debug, Parser)]
#[command(
    name = "oidc-login",
    version,
    about = "Keyless AWS credentials from GitHub OIDC"
)]
pub struct Args {}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "oidc-login",
        description: "Keyless AWS credentials from GitHub OIDC",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Run the command.
pub fn run(_runner: &Runner, _args: Args) -> Result<()> {
    Err(Failure::runtime("oidc-login is not implemented yet"))
}
