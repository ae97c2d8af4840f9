//! `gitops-dev`: developer tasks (generate action.yml files, check drift). Not shipped in releases.
fn main() -> std::process::ExitCode {
    gitops_actions::actiongen::dev_main()
}
