//! The edge every binary shares: parse flags (each also readable from `GITOPS_<FLAG>`), pick the
//! verb, build the runner, run, map the result to the documented exit codes.
//!
//! A binary's `main` is one call: `gitops_actions::cli::main::<cmd::plan_gate::Args>(cmd::plan_gate::run)`.
//!
//! Verbs are clap subcommands, each with its own arguments. The generic rules, read from the
//! clap command tree of the binary (no per-binary table):
//! - the verb comes from the command line, else from `GITOPS_COMMAND` (the actions' `command`
//!   input), else, when the verb is optional (`Option<Verb>`), the first verb is the default;
//! - a flag, or a non-empty `GITOPS_*` input, that another verb of the binary takes but the chosen
//!   one does not is a usage error (exit 2) naming the input and the verb. An input whose value
//!   is its published default counts as not given (an action passes defaults for unset inputs);
//! - a closed stdout (`... --help | head -1`) is not a crash: help and version end quietly with
//!   exit 0; log lines to a closed stdout are dropped and the command finishes its work (it may
//!   be half way through a deploy) with its own exit code.

pub mod inputs;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

use crate::exit::{Failure, Result};
use crate::runner::{neutralise_line, Runner};

/// The variable the actions' `command` input arrives in.
pub const COMMAND_ENV: &str = "GITOPS_COMMAND";

/// The environment variable that feeds a flag: `GITOPS_` + the flag in upper snake case.
pub fn env_name(flag: &str) -> String {
    format!("GITOPS_{}", flag.replace('-', "_").to_ascii_uppercase())
}

/// Why parsing stopped.
#[derive(Debug)]
pub enum ParseError {
    /// clap's own error, help or version (rendered by clap).
    Clap(clap::Error),
    /// An input the chosen verb does not take.
    Input(Failure),
}

/// Parse, run and map to an exit code. Usage errors (clap's) exit 2, `--help`/`--version` exit 0.
pub fn main<A: Parser>(run: impl FnOnce(&Runner, A) -> Result<()>) -> ExitCode {
    drop_empty_inputs();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("GITOPS_"))
        .collect();
    let args = match parse::<A>(std::env::args_os().collect(), &env) {
        Ok(a) => a,
        Err(ParseError::Clap(e)) => return clap_exit(&e),
        Err(ParseError::Input(f)) => return finish(&Runner::from_process(), Err(f)),
    };
    let runner = Runner::from_process();
    finish(&runner, run(&runner, args))
}

/// Print clap's message (help, version or error) and return its exit code. clap echoes
/// argument values: they are neutralised before they reach a runner log. A reader that went
/// away (`| head -1`) ends the output quietly.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let code = e.exit_code();
    let text = e.render().to_string();
    let safe: Vec<String> = text.lines().map(neutralise_line).collect();
    let body = format!("{}\n", safe.join("\n"));
    let _ = if e.use_stderr() {
        quiet_write(&mut std::io::stderr().lock(), &body)
    } else {
        quiet_write(&mut std::io::stdout().lock(), &body)
    };
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// Write and flush, never panicking: a closed pipe (or any write error) only stops the output.
pub fn quiet_write(w: &mut dyn std::io::Write, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes())?;
    w.flush()
}

/// Parse `argv` for binary `A`: choose the verb ([`with_verb`]), let clap parse, then apply the
/// generic per-verb rule to flags ([`foreign_flag`]) and to the `GITOPS_*` inputs in `env`
/// ([`foreign_input`]).
pub fn parse<A: Parser>(
    argv: Vec<OsString>,
    env: &BTreeMap<String, String>,
) -> std::result::Result<A, ParseError> {
    let mut cmd = A::command();
    cmd.build();
    let argv = with_verb(&cmd, argv, env.get(COMMAND_ENV).map(String::as_str));
    let matches = match cmd.clone().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            return Err(match foreign_flag(&cmd, &argv, &e) {
                Some(f) => ParseError::Input(f),
                None => ParseError::Clap(e),
            })
        }
    };
    if let Some(verb) = matches.subcommand_name() {
        if let Some(f) = foreign_input(&cmd, verb, env) {
            return Err(ParseError::Input(f));
        }
    }
    A::from_arg_matches(&matches).map_err(|e| ParseError::Clap(e.format(&mut A::command())))
}

fn verbs(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|s| s.get_name() != "help")
}

fn is_verb(cmd: &clap::Command, name: &str) -> bool {
    cmd.find_subcommand(name).is_some()
}

/// Whether `--long` takes a value in any verb (so the next token is its value, not a verb).
fn takes_value(cmd: &clap::Command, long: &str) -> bool {
    std::iter::once(cmd).chain(verbs(cmd)).any(|c| {
        c.get_arguments()
            .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
    })
}

/// The verb of a binary with subcommands, moved to `argv[1]` where clap expects it: the first
/// positional word on the command line that names a verb (flags may come before it, as they
/// could with the old positional), else `GITOPS_COMMAND`, else the default verb (the first one,
/// when the verb is optional). `--help`/`--version` without a verb stay the binary's own.
pub fn with_verb(
    cmd: &clap::Command,
    mut argv: Vec<OsString>,
    env_verb: Option<&str>,
) -> Vec<OsString> {
    if verbs(cmd).next().is_none() || argv.is_empty() {
        return argv;
    }
    let mut i = 1;
    let mut asks_help = false;
    while i < argv.len() {
        let Some(t) = argv[i].to_str() else { break };
        if t == "--" {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            asks_help |= matches!(long, "help" | "version");
            if !long.contains('=') && takes_value(cmd, long) {
                i += 1;
            }
        } else if t.starts_with('-') && t.len() > 1 {
            asks_help |= matches!(t, "-h" | "-V");
        } else {
            if is_verb(cmd, t) {
                let verb = argv.remove(i);
                argv.insert(1, verb);
                return argv;
            }
            // A word that is no verb: clap names it.
            return argv;
        }
        i += 1;
    }
    if asks_help {
        return argv;
    }
    let fallback = env_verb
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| default_verb(cmd).map(str::to_string));
    if let Some(v) = fallback {
        argv.insert(1, OsString::from(v));
    }
    argv
}

/// The verb that runs when none is given: the first, when the binary's verb is optional.
pub fn default_verb(cmd: &clap::Command) -> Option<&str> {
    if cmd.is_subcommand_required_set() {
        return None;
    }
    verbs(cmd).next().map(clap::Command::get_name)
}

/// The verbs of `cmd` that take an argument matching `pred`, comma-separated.
fn verbs_taking(cmd: &clap::Command, pred: impl Fn(&clap::Arg) -> bool) -> String {
    verbs(cmd)
        .filter(|v| v.get_arguments().any(&pred))
        .map(clap::Command::get_name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn long_matches(a: &clap::Arg, long: &str) -> bool {
    a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long))
}

/// A clap "unexpected argument" for a flag that another verb takes, as a usage error that names
/// the flag and the verb (clap's own message says neither which verb nor which ones take it).
pub fn foreign_flag(cmd: &clap::Command, argv: &[OsString], e: &clap::Error) -> Option<Failure> {
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let verb = argv.get(1)?.to_str().filter(|v| is_verb(cmd, v))?;
    let Some(ContextValue::String(raw)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = raw.strip_prefix("--")?.split('=').next()?;
    let takers = verbs_taking(cmd, |a| long_matches(a, long));
    if takers.is_empty() {
        return None;
    }
    Some(Failure::usage(
        long,
        format!(
            "`{} {verb}` does not take `--{long}` (it is an input of: {takers})",
            cmd.get_name()
        ),
    ))
}

/// A non-empty `GITOPS_*` input that another verb takes but `verb` does not, as a usage error
/// naming the input and the verb. A value equal to the input's published default counts as
/// not given: an action passes the default of every input it was not given.
pub fn foreign_input(
    cmd: &clap::Command,
    verb: &str,
    env: &BTreeMap<String, String>,
) -> Option<Failure> {
    let chosen = cmd.find_subcommand(verb)?;
    let env_of = |a: &clap::Arg| a.get_env().and_then(|e| e.to_str()).map(str::to_string);
    let taken: Vec<String> = chosen.get_arguments().filter_map(env_of).collect();
    for other in verbs(cmd).filter(|v| v.get_name() != verb) {
        for a in other.get_arguments() {
            let Some(var) = env_of(a) else { continue };
            if var == COMMAND_ENV || taken.contains(&var) {
                continue;
            }
            let Some(value) = env.get(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let defaults: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() && *value == defaults.join(",") {
                continue;
            }
            let name = a.get_long().unwrap_or(a.get_id().as_str()).to_string();
            let takers = verbs_taking(cmd, |x| env_of(x).as_deref() == Some(var.as_str()));
            return Some(Failure::usage(
                name,
                format!(
                    "`{var}` is set, but `{} {verb}` does not take it (it is an input of: {takers})",
                    cmd.get_name()
                ),
            ));
        }
    }
    None
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

    type Argv<'a> = &'a [&'a str];
    type Env<'a> = &'a [(&'a str, &'a str)];

    #[derive(Debug, Parser)]
    #[command(name = "probe")]
    struct Verbs {
        #[command(subcommand)]
        verb: Option<V>,
    }

    #[derive(Debug, Parser)]
    #[command(name = "strict")]
    struct Strict {
        #[command(subcommand)]
        verb: V,
    }

    #[derive(Debug, PartialEq, Eq, clap::Subcommand)]
    enum V {
        /// Gate.
        Gate(GateA),
        /// Verify.
        Verify(VerifyA),
    }

    #[derive(Debug, PartialEq, Eq, clap::Args)]
    struct GateA {
        #[arg(long, env = "GITOPS_CLI_V_PLAN")]
        plan: String,
        #[arg(long, env = "GITOPS_CLI_V_COMMENT", default_value = "upsert")]
        comment: String,
    }

    #[derive(Debug, PartialEq, Eq, clap::Args)]
    struct VerifyA {
        #[arg(long, env = "GITOPS_CLI_V_PLAN")]
        plan: String,
        #[arg(long, env = "GITOPS_CLI_V_DIGEST")]
        digest: Option<String>,
    }

    fn argv(a: &[&str]) -> Vec<std::ffi::OsString> {
        a.iter().map(Into::into).collect()
    }

    fn env(kv: &[(&str, &str)]) -> super::BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn gate(plan: &str) -> V {
        V::Gate(GateA {
            plan: plan.into(),
            comment: "upsert".into(),
        })
    }

    fn verify(plan: &str, digest: Option<&str>) -> V {
        V::Verify(VerifyA {
            plan: plan.into(),
            digest: digest.map(Into::into),
        })
    }

    // The verb: command line (anywhere a positional may stand), else GITOPS_COMMAND, else the
    // default (the first verb, when the verb is optional).
    #[test]
    fn the_verb_comes_from_the_command_line_then_gitops_command_then_the_default() {
        let cases: &[(Argv, Env, V)] = &[
            (&["probe", "--plan", "p"], &[], gate("p")),
            (&["probe", "gate", "--plan", "p"], &[], gate("p")),
            (
                &["probe", "verify", "--plan", "p", "--digest", "d"],
                &[],
                verify("p", Some("d")),
            ),
            // Flags before the verb still work, and a flag value that spells a verb is a value.
            (
                &["probe", "--plan", "verify", "verify"],
                &[],
                verify("verify", None),
            ),
            (&["probe", "--plan=p", "verify"], &[], verify("p", None)),
            (
                &["probe", "--plan", "p"],
                &[("GITOPS_COMMAND", "verify")],
                verify("p", None),
            ),
            (
                &["probe", "gate", "--plan", "p"],
                &[("GITOPS_COMMAND", "verify")],
                gate("p"),
            ),
            (
                &["probe", "--plan", "p"],
                &[("GITOPS_COMMAND", "")],
                gate("p"),
            ),
        ];
        for (a, e, want) in cases {
            match super::parse::<Verbs>(argv(a), &env(e)) {
                Ok(v) => assert_eq!(v.verb.as_ref(), Some(want), "{a:?} {e:?}"),
                Err(err) => panic!("{a:?} {e:?}: {err:?}"),
            }
        }
        // No default for a required verb: clap's usage error (exit 2).
        match super::parse::<Strict>(argv(&["strict", "--plan", "p"]), &env(&[])) {
            Err(super::ParseError::Clap(e)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            super::parse::<Strict>(
                argv(&["strict", "--plan", "p"]),
                &env(&[("GITOPS_COMMAND", "verify")])
            )
            .unwrap()
            .verb,
            verify("p", None)
        );
        // An unknown GITOPS_COMMAND is clap's "unrecognized subcommand" (exit 2).
        match super::parse::<Verbs>(argv(&["probe"]), &env(&[("GITOPS_COMMAND", "nope")])) {
            Err(super::ParseError::Clap(e)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{other:?}"),
        }
        // Help and version stay the binary's own.
        for h in ["--help", "-h"] {
            match super::parse::<Verbs>(argv(&["probe", h]), &env(&[])) {
                Err(super::ParseError::Clap(e)) => assert_eq!(e.exit_code(), 0, "{h}"),
                other => panic!("{h}: {other:?}"),
            }
        }
    }

    // The generic rule: a flag or an input of another verb is exit 2 naming the input and the
    // verb; a value equal to the published default counts as not given.
    #[test]
    fn inputs_of_another_verb_are_usage_errors_naming_input_and_verb() {
        let refused: &[(Argv, Env, &str, &str)] = &[
            (&["probe", "gate", "--plan", "p", "--digest", "d"], &[], "digest", "`probe gate` does not take `--digest` (it is an input of: verify)"),
            (&["probe", "--plan", "p", "--digest=d"], &[], "digest", "`probe gate` does not take `--digest`"),
            (&["probe", "verify", "--plan", "p", "--comment", "off"], &[], "comment", "`probe verify` does not take `--comment` (it is an input of: gate)"),
            (&["probe", "--plan", "p"], &[("GITOPS_CLI_V_DIGEST", "d")], "digest", "`GITOPS_CLI_V_DIGEST` is set, but `probe gate` does not take it (it is an input of: verify)"),
            (&["probe", "verify", "--plan", "p"], &[("GITOPS_CLI_V_COMMENT", "off")], "comment", "`probe verify` does not take it"),
        ];
        for (a, e, field, msg) in refused {
            match super::parse::<Verbs>(argv(a), &env(e)) {
                Err(super::ParseError::Input(f)) => {
                    assert_eq!(f.class.code(), 2);
                    assert_eq!(f.field.as_deref(), Some(*field), "{a:?}");
                    assert!(f.message.contains(msg), "{a:?}: {}", f.message);
                }
                other => panic!("{a:?} {e:?}: {other:?}"),
            }
        }
        let accepted: &[(Argv, Env)] = &[
            // What an action passes for inputs it was not given: empty, or the default.
            (
                &["probe", "verify", "--plan", "p"],
                &[("GITOPS_CLI_V_COMMENT", "upsert")],
            ),
            (
                &["probe", "verify", "--plan", "p"],
                &[("GITOPS_CLI_V_COMMENT", "")],
            ),
            // Variables that are no input of any verb are not ours to judge.
            (
                &["probe", "--plan", "p"],
                &[("GITOPS_GITHUB_TIMEOUT_MS", "5")],
            ),
        ];
        for (a, e) in accepted {
            super::parse::<Verbs>(argv(a), &env(e))
                .unwrap_or_else(|err| panic!("{a:?} {e:?}: {err:?}"));
        }
        // A flag no verb takes stays clap's error.
        match super::parse::<Verbs>(argv(&["probe", "--plan", "p", "--nope"]), &env(&[])) {
            Err(super::ParseError::Clap(e)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{other:?}"),
        }
    }
}
