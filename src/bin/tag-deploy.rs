//! `tag-deploy`: Record deploys as atomic git tags and GitHub Deployments. All logic lives in the library (`gitops_actions::cmd::tag_deploy`).
fn main() -> std::process::ExitCode {
    gitops_actions::cli::main(gitops_actions::cmd::tag_deploy::run)
}
