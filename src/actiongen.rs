//! Generates `actions/<name>/action.yml` and README input tables from the clap definitions.
//! (Skeleton; its owner fills it in.)

/// Entry point of the `gitops-dev` binary.
pub fn dev_main() -> std::process::ExitCode {
    eprintln!("gitops-dev: not implemented yet");
    std::process::ExitCode::from(3)
}
