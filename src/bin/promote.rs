//! `promote`: Promote the deployed commit to the next environment by fast-forward. All logic lives in the library (`gitops_actions::cmd::promote`).
fn main() -> std::process::ExitCode {
    gitops_actions::cli::main(gitops_actions::cmd::promote::run)
}
