//! `ecr-push`: Push and copy container images to ECR without a Docker daemon. (Skeleton; its owner fills it in.)

use clap::{CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::exit::{Failure, Result};
use crate::runner::Runner;

/// Push and copy container images to ECR without a Docker daemon.
#[derive(Debug, Parser)]
#[command(
    name = "ecr-push",
    version,
    about = "Push and copy container images to ECR without a Docker daemon"
)]
pub struct Args {}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "ecr-push",
        description: "Push and copy container images to ECR without a Docker daemon",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Run the command.
pub fn run(_runner: &Runner, _args: Args) -> Result<()> {
    Err(Failure::runtime("ecr-push is not implemented yet"))
}
