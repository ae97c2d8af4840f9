//! The edge every binary shares: parse flags (each also readable from `GITOPS_<FLAG>`), build the
//! runner, run, map the result to the documented exit codes.
//!
//! A binary's `main` is one call: `gitops_actions::cli::main::<cmd::plan_gate::Args>(cmd::plan_gate::run)`.

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Result;
use crate::runner::{neutralise_line, Runner};

/// The environment variable that feeds a flag: `GITOPS_` + the flag in upper snake case.
pub fn env_name(flag: &str) -> String {
    format!("GITOPS_{}", flag.replace('-', "_").to_ascii_uppercase())
}

/// Parse, run and map to an exit code. Usage errors (clap's) exit 2, `--help`/`--version` exit 0.
pub fn main<A: Parser>(run: impl FnOnce(&Runner, A) -> Result<()>) -> ExitCode {
    drop_empty_inputs();
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = e.exit_code();
            let text = e.render().to_string();
            // clap echoes argument values: neutralise them before they reach a runner log.
            let safe: Vec<String> = text.lines().map(neutralise_line).collect();
            if e.use_stderr() {
                eprintln!("{}", safe.join("\n"));
            } else {
                println!("{}", safe.join("\n"));
            }
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    let runner = Runner::from_process();
    finish(&runner, run(&runner, args))
}

/// Composite actions pass every input as `GITOPS_<NAME>`, unset ones as the empty string. An
/// empty value means "not given": remove those before clap reads the environment, so that
/// defaults apply and boolean flags are not handed an empty value. Called at the very start of
/// `main`, before any thread exists.
pub fn drop_empty_inputs() {
    let empty: Vec<std::ffi::OsString> = std::env::vars_os()
        .filter(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("GITOPS_")) && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        std::env::remove_var(k);
    }
}

/// Report a result through the runner and return the exit code.
pub fn finish(runner: &Runner, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            runner.error(&f.to_string());
            ExitCode::from(f.class.code())
        }
    }
}

/// A tokio runtime for one command (multi-threaded: uploads and API calls run concurrently).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| crate::exit::Failure::runtime(format!("cannot start async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[arg(long, env = "GITOPS_CLI_PROBE_VALUE")]
        value: Option<String>,
        #[arg(long, env = "GITOPS_CLI_PROBE_FLAG")]
        flag: bool,
        #[arg(long, env = "GITOPS_CLI_PROBE_DEFAULTED", default_value = "d")]
        defaulted: String,
    }

    // Composite actions pass every input as an env var, unset ones as "": that must mean "absent".
    #[test]
    fn empty_env_values_count_as_absent_and_flags_read_booleans() {
        std::env::set_var("GITOPS_CLI_PROBE_VALUE", "");
        std::env::set_var("GITOPS_CLI_PROBE_FLAG", "");
        std::env::set_var("GITOPS_CLI_PROBE_DEFAULTED", "");
        super::drop_empty_inputs();
        let p = Probe::try_parse_from(["probe"]).unwrap();
        assert_eq!(p.value, None);
        assert!(!p.flag);
        assert_eq!(p.defaulted, "d");
        std::env::set_var("GITOPS_CLI_PROBE_VALUE", "v");
        std::env::set_var("GITOPS_CLI_PROBE_FLAG", "true");
        let p = Probe::try_parse_from(["probe"]).unwrap();
        assert_eq!(p.value.as_deref(), Some("v"));
        assert!(p.flag);
        std::env::set_var("GITOPS_CLI_PROBE_FLAG", "false");
        assert!(!Probe::try_parse_from(["probe"]).unwrap().flag);
        assert_eq!(super::env_name("role-to-assume"), "GITOPS_ROLE_TO_ASSUME");
    }
}
