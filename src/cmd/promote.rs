//! `promote`: Promote the deployed commit to the next environment by fast-forward. (Skeleton; its owner fills it in.)

use clap::{CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::exit::{Failure, Result};
use crate::runner::Runner;

/// Promote the deployed commit to the next environment by fast-forward.
#[derive(Debug, Parser)]
#[command(
    name = "promote",
    version,
    about = "Promote the deployed commit to the next environment by fast-forward"
)]
pub struct Args {}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "promote",
        description: "Promote the deployed commit to the next environment by fast-forward",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Run the command.
pub fn run(_runner: &Runner, _args: Args) -> Result<()> {
    Err(Failure::runtime("promote is not implemented yet"))
}
