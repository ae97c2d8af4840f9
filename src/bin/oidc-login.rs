//! `oidc-login`: Keyless AWS credentials from GitHub OIDC. All logic lives in the library (`gitops_actions::cmd::oidc_login`).
fn main() -> std::process::ExitCode {
    gitops_actions::cli::main(gitops_actions::cmd::oidc_login::run)
}
