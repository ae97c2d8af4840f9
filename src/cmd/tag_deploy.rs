//! `tag-deploy`: Record deploys as atomic git tags and GitHub Deployments. (Skeleton; its owner fills it in.)

use clap::{CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::exit::{Failure, Result};
use crate::runner::Runner;

/// Record deploys as atomic git tags and GitHub Deployments.
#[derive(Debug, Parser)]
#[command(
    name = "tag-deploy",
    version,
    about = "Record deploys as atomic git tags and GitHub Deployments"
)]
pub struct Args {}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "tag-deploy",
        description: "Record deploys as atomic git tags and GitHub Deployments",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Run the command.
pub fn run(_runner: &Runner, _args: Args) -> Result<()> {
    Err(Failure::runtime("tag-deploy is not implemented yet"))
}
