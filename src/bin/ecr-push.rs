//! `ecr-push`: Push and copy container images to ECR without a Docker daemon. All logic lives in the library (`gitops_actions::cmd::ecr_push`).
fn main() -> std::process::ExitCode {
    gitops_actions::cli::main(gitops_actions::cmd::ecr_push::run)
}
