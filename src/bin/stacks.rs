//! `stacks`: List the Terraform stacks of a repository and detect which changed. All logic lives in the library (`gitops_actions::cmd::stacks`).
fn main() -> std::process::ExitCode {
    gitops_actions::cli::main(gitops_actions::cmd::stacks::run)
}
