//! `plan-gate`: Terraform plan summary, policy gate and PR comment. All logic lives in the library (`gitops_actions::cmd::plan_gate`).
fn main() -> std::process::ExitCode {
    gitops_actions::cli::main(gitops_actions::cmd::plan_gate::run)
}
