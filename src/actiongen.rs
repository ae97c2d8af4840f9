//! Generates the composite actions users reference from the binaries' clap definitions:
//! `actions/<name>/action.yml`, the input/output tables inside `actions/<name>/README.md`, and the
//! root `action.yml` that installs all five binaries.
//!
//! The clap `Command` of each binary is the single source of truth: an action's inputs are
//! exactly the binary's long flags (plus a `command` input when the binary has subcommands or a
//! positional command), each passed to the binary through its `GITOPS_*` environment variable
//! (see [`crate::cli::env_name`]). Nothing user-controlled is ever expanded inside a `run:` script:
//! every `${{ }}` lives in an `env:` map.
//!
//! `gitops-dev generate` writes the files; `gitops-dev check` exits 1 on drift and prints the
//! command that fixes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::env_name;
use crate::cmd::{binaries, BinaryDoc, OutputDoc};

/// The command that regenerates every generated file.
pub const FIX_COMMAND: &str = "cargo run --bin gitops-dev -- generate";

/// The name of the input that selects a subcommand.
pub const COMMAND_INPUT: &str = "command";

/// Inputs that carry a GitHub token and default to the workflow's own token.
pub const TOKEN_INPUTS: &[&str] = &["github-token"];

/// The default of every token input.
pub const TOKEN_DEFAULT: &str = "${{ github.token }}";

/// Environment variable (set by the install step's output) naming the directory of the
/// installed binaries, read by the run step.
pub const BIN_DIR_ENV: &str = "GITOPS_ACTIONS_BIN";

/// Markers delimiting the generated tables in an action's README.
pub const INPUTS_BEGIN: &str =
    "<!-- BEGIN GENERATED: inputs (cargo run --bin gitops-dev -- generate) -->";
/// End of the inputs table.
pub const INPUTS_END: &str = "<!-- END GENERATED: inputs -->";
/// Start of the outputs table.
pub const OUTPUTS_BEGIN: &str =
    "<!-- BEGIN GENERATED: outputs (cargo run --bin gitops-dev -- generate) -->";
/// End of the outputs table.
pub const OUTPUTS_END: &str = "<!-- END GENERATED: outputs -->";

/// One action input, derived from a clap argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Input name (the long flag, kebab-case).
    pub name: String,
    /// The environment variable the run step sets from it.
    pub env: String,
    /// One-line description.
    pub description: String,
    /// Required by the action (required by the binary in every form and without a default).
    pub required: bool,
    /// Default value, if any.
    pub default: Option<String>,
    /// The verbs that take it, when not every verb does (empty: all of them, or no verbs).
    pub only_for: Vec<String>,
    /// For a deprecated alias (a hidden flag): the message GitHub shows when it is used.
    pub deprecated: Option<String>,
}

/// The `command` input of a binary with subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInput {
    /// Allowed values (subcommand names or the positional's possible values).
    pub choices: Vec<String>,
    /// One-line help of each choice (may be empty).
    pub helps: Vec<String>,
    /// Default subcommand, if the binary has one.
    pub default: Option<String>,
}

/// Everything needed to render one action.
#[derive(Debug, Clone)]
pub struct ActionModel {
    /// Binary and action name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// The subcommand selector, when the binary has subcommands.
    pub command: Option<CommandInput>,
    /// Flag inputs, in declaration order.
    pub inputs: Vec<Input>,
    /// Declared outputs.
    pub outputs: Vec<OutputDoc>,
}

/// Something about a binary's clap definition that cannot be expressed as an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{binary}: {problem}")]
pub struct GenError {
    /// The binary at fault.
    pub binary: String,
    /// What is wrong.
    pub problem: String,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_builtin(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

fn arg_help(arg: &clap::Arg) -> String {
    let h = arg
        .get_help()
        .or_else(|| arg.get_long_help())
        .map(|s| s.to_string())
        .unwrap_or_default();
    one_line(&h)
}

fn is_switch(arg: &clap::Arg) -> bool {
    matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
    )
}

/// Per-flag facts collected across the top-level command and its subcommands.
struct FlagFacts {
    input: Input,
    /// Subcommands that accept this flag (empty: the top level accepts it).
    used_by: Vec<String>,
    /// Whether any form requires it.
    required_somewhere: bool,
    /// Whether every form that has it requires it.
    top_level: bool,
}

fn flag_input(arg: &clap::Arg, long: &str) -> (Input, bool) {
    let mut description = arg_help(arg);
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if is_switch(arg) {
        if !description.is_empty() && !description.ends_with('.') {
            description.push('.');
        }
        description.push_str(" `true` or `false`.");
    } else if !values.is_empty() {
        if !description.is_empty() && !description.ends_with('.') {
            description.push('.');
        }
        let _ = write!(description, " One of: {}.", values.join(", "));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let deprecated = arg.is_hide_set().then(|| one_line(&description));
    let default = if TOKEN_INPUTS.contains(&long) && deprecated.is_none() {
        Some(TOKEN_DEFAULT.to_string())
    } else if defaults.is_empty() {
        None
    } else {
        Some(defaults.join(","))
    };
    let required = arg.is_required_set() && default.is_none();
    let mut description = one_line(&description);
    if description.is_empty() {
        // Undocumented flag: say so rather than publish an empty description.
        description = format!("--{long} (undocumented flag).");
    }
    (
        Input {
            name: long.to_string(),
            env: env_name(long),
            description,
            required,
            default,
            only_for: Vec::new(),
            deprecated,
        },
        arg.is_required_set(),
    )
}

fn collect_flags(
    binary: &str,
    cmd: &clap::Command,
    sub: Option<&str>,
    flags: &mut Vec<FlagFacts>,
) -> Result<(), GenError> {
    for arg in cmd.get_arguments() {
        if is_builtin(arg) || arg.is_positional() {
            continue;
        }
        let Some(long) = arg.get_long() else {
            return Err(GenError {
                binary: binary.into(),
                problem: format!(
                    "argument `{}` has no long flag; every input must be a long flag",
                    arg.get_id()
                ),
            });
        };
        if long == COMMAND_INPUT {
            return Err(GenError {
                binary: binary.into(),
                problem: "a flag named `--command` clashes with the `command` input".into(),
            });
        }
        let (input, req) = flag_input(arg, long);
        if let Some(f) = flags.iter_mut().find(|f| f.input.name == long) {
            if let Some(s) = sub {
                f.used_by.push(s.to_string());
            } else {
                f.top_level = true;
            }
            f.input.required &= input.required;
            f.required_somewhere |= req;
            if f.input.default.is_none() && input.default.is_some() {
                f.input.default = input.default;
                f.input.required = false;
            }
        } else {
            flags.push(FlagFacts {
                used_by: sub.map(|s| vec![s.to_string()]).unwrap_or_default(),
                required_somewhere: req,
                top_level: sub.is_none(),
                input,
            });
        }
    }
    Ok(())
}

/// Derive the action model of one binary from its clap definition.
pub fn model(doc: &BinaryDoc) -> Result<ActionModel, GenError> {
    let mut cmd = (doc.command)();
    cmd.build();
    let name = doc.name.to_string();
    let err = |problem: String| GenError {
        binary: name.clone(),
        problem,
    };
    let mut flags = Vec::new();
    collect_flags(doc.name, &cmd, None, &mut flags)?;

    let subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    let positionals: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_positional() && !is_builtin(a))
        .collect();

    let command = if !subs.is_empty() {
        if !positionals.is_empty() {
            return Err(err(
                "positional arguments next to subcommands cannot be mapped to inputs".into(),
            ));
        }
        for s in &subs {
            if s.get_subcommands().any(|x| x.get_name() != "help") {
                return Err(err(format!(
                    "subcommand `{}` has nested subcommands; only one level is supported",
                    s.get_name()
                )));
            }
            if s.get_arguments().any(|a| a.is_positional()) {
                return Err(err(format!(
                    "subcommand `{}` takes a positional argument; use a long flag",
                    s.get_name()
                )));
            }
            collect_flags(doc.name, s, Some(s.get_name()), &mut flags)?;
        }
        Some(CommandInput {
            choices: subs.iter().map(|s| s.get_name().to_string()).collect(),
            helps: subs
                .iter()
                .map(|s| one_line(&s.get_about().map(|a| a.to_string()).unwrap_or_default()))
                .collect(),
            default: crate::cli::default_verb(&cmd).map(str::to_string),
        })
    } else if let Some(p) = positionals.first() {
        if positionals.len() > 1 {
            return Err(err(
                "more than one positional argument; only a single `command` positional is supported"
                    .into(),
            ));
        }
        let values: Vec<clap::builder::PossibleValue> = p
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set())
            .collect();
        let choices: Vec<String> = values.iter().map(|v| v.get_name().to_string()).collect();
        let helps: Vec<String> = values
            .iter()
            .map(|v| one_line(&v.get_help().map(|h| h.to_string()).unwrap_or_default()))
            .collect();
        if choices.is_empty() {
            return Err(err(format!(
                "positional `{}` has no fixed set of values (use a ValueEnum) or make it a long flag",
                p.get_id()
            )));
        }
        let default = p
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned());
        Some(CommandInput {
            choices,
            helps,
            default,
        })
    } else {
        None
    };

    let n_subs = subs.len();
    let inputs = flags
        .into_iter()
        .map(|f| {
            let mut input = f.input;
            if !f.top_level && !f.used_by.is_empty() && f.used_by.len() < n_subs {
                // Only some subcommands take it: never required at the action level.
                let req = if f.required_somewhere {
                    "required by"
                } else {
                    "used by"
                };
                input.required = false;
                input.only_for = f.used_by.clone();
                if !input.description.is_empty() && !input.description.ends_with('.') {
                    input.description.push('.');
                }
                let _ = write!(
                    input.description,
                    " ({req} `command`: {}.)",
                    f.used_by.join(", ")
                );
                input.description = one_line(&input.description);
            }
            input
        })
        .collect();

    Ok(ActionModel {
        name,
        description: one_line(doc.description),
        command,
        inputs,
        outputs: doc.outputs.to_vec(),
    })
}

/// YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string serialises")
}

fn header(source: &str) -> String {
    format!(
        "# GENERATED by `{FIX_COMMAND}` from {source}.\n\
         # Do not edit by hand: change the clap definition and regenerate.\n"
    )
}

fn repo_slug() -> String {
    let r = env!("CARGO_PKG_REPOSITORY");
    r.trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplitn(3, '/')
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("/")
}

fn module_of(name: &str) -> String {
    name.replace('-', "_")
}

/// The `command` input's description: each choice with its one-line help.
fn command_description(m: &ActionModel, c: &CommandInput, code: bool) -> String {
    let items: Vec<String> = c
        .choices
        .iter()
        .zip(&c.helps)
        .map(|(name, help)| {
            let name = if code {
                format!("`{name}`")
            } else {
                name.clone()
            };
            if help.is_empty() {
                name
            } else {
                format!("{name} ({})", help.trim_end_matches('.'))
            }
        })
        .collect();
    format!("Which {} command to run: {}.", m.name, items.join(", "))
}

/// Render `actions/<name>/action.yml`.
pub fn render_action(m: &ActionModel) -> String {
    let mut y = header(&format!(
        "the clap definition in src/cmd/{}.rs",
        module_of(&m.name)
    ));
    let _ = writeln!(y, "name: {}", q(&format!("gitops-actions {}", m.name)));
    let _ = writeln!(y, "description: {}", q(&m.description));
    let _ = writeln!(y, "author: \"gitops-actions\"");
    let _ = writeln!(y, "branding:\n  icon: \"git-branch\"\n  color: \"blue\"");
    if m.command.is_some() || !m.inputs.is_empty() {
        y.push_str("inputs:\n");
    }
    if let Some(c) = &m.command {
        let _ = writeln!(y, "  {COMMAND_INPUT}:");
        let _ = writeln!(
            y,
            "    description: {}",
            q(&command_description(m, c, false))
        );
        let _ = writeln!(y, "    required: {}", c.default.is_none());
        if let Some(d) = &c.default {
            let _ = writeln!(y, "    default: {}", q(d));
        }
    }
    for i in &m.inputs {
        let _ = writeln!(y, "  {}:", i.name);
        let _ = writeln!(y, "    description: {}", q(&i.description));
        let _ = writeln!(y, "    required: {}", i.required);
        if let Some(d) = &i.default {
            let _ = writeln!(y, "    default: {}", q(d));
        }
        if let Some(d) = &i.deprecated {
            let _ = writeln!(y, "    deprecationMessage: {}", q(d));
        }
    }
    if !m.outputs.is_empty() {
        y.push_str("outputs:\n");
    }
    for o in &m.outputs {
        let _ = writeln!(y, "  {}:", o.name);
        let _ = writeln!(y, "    description: {}", q(&one_line(o.description)));
        let _ = writeln!(
            y,
            "    value: {}",
            q(&format!("${{{{ steps.run.outputs.{} }}}}", o.name))
        );
    }
    y.push_str("runs:\n  using: \"composite\"\n  steps:\n");
    let _ = writeln!(
        y,
        "    - name: {}\n      id: install\n      shell: bash\n      env:\n        GITOPS_ACTIONS_BINARIES: {}\n      run: '\"$GITHUB_ACTION_PATH/../../scripts/install.sh\"'",
        q(&format!("Install {} (checksum-verified)", m.name)),
        q(&m.name)
    );
    let _ = writeln!(
        y,
        "    - name: {}\n      id: run\n      shell: bash\n      env:",
        q(&format!("Run {}", m.name))
    );
    let _ = writeln!(
        y,
        "        {BIN_DIR_ENV}: \"${{{{ steps.install.outputs.bin-dir }}}}\""
    );
    if m.command.is_some() {
        let _ = writeln!(
            y,
            "        {}: \"${{{{ inputs.{COMMAND_INPUT} }}}}\"",
            env_name(COMMAND_INPUT)
        );
    }
    for i in &m.inputs {
        let _ = writeln!(y, "        {}: \"${{{{ inputs.{} }}}}\"", i.env, i.name);
    }
    y.push_str("      run: |\n");
    for line in run_script(m).lines() {
        if line.is_empty() {
            y.push('\n');
        } else {
            let _ = writeln!(y, "        {line}");
        }
    }
    y
}

/// The bash body of the run step. Reads only environment variables; no `${{ }}` anywhere.
pub fn run_script(m: &ActionModel) -> String {
    let mut s = String::from("set -euo pipefail\n");
    let bin = format!("\"${BIN_DIR_ENV}/{}\"", m.name);
    if let Some(c) = &m.command {
        let var = env_name(COMMAND_INPUT);
        let _ = writeln!(s, "case \"${var}\" in");
        let _ = writeln!(s, "  {}) ;;", c.choices.join("|"));
        let _ = writeln!(
            s,
            "  *) echo \"::error title={}::input 'command' must be one of: {}\"; exit 2 ;;",
            m.name,
            c.choices.join(", ")
        );
        s.push_str("esac\n");
        // An input whose default is an expression (the workflow token) always arrives set: the
        // binary could not tell it from a given one, so the verbs that do not take it never get it.
        let unset: Vec<(String, Vec<&str>)> = c
            .choices
            .iter()
            .map(|verb| {
                let vars = m
                    .inputs
                    .iter()
                    .filter(|i| !i.only_for.is_empty() && !i.only_for.contains(verb))
                    .filter(|i| i.default.as_deref().is_some_and(|d| d.contains("${{")))
                    .map(|i| i.env.as_str())
                    .collect();
                (verb.clone(), vars)
            })
            .filter(|(_, vars): &(String, Vec<&str>)| !vars.is_empty())
            .collect();
        if !unset.is_empty() {
            let _ = writeln!(s, "case \"${var}\" in");
            for (verb, vars) in &unset {
                let _ = writeln!(s, "  {verb}) unset {} ;;", vars.join(" "));
            }
            s.push_str("esac\n");
        }
        let _ = writeln!(s, "exec {bin} \"${var}\"");
    } else {
        let _ = writeln!(s, "exec {bin}");
    }
    s
}

/// Render the root `action.yml` (installs all five binaries and puts them on PATH).
pub fn render_root(docs: &[BinaryDoc]) -> String {
    let names: Vec<&str> = docs.iter().map(|d| d.name).collect();
    let mut y = header("the binary list in src/cmd/mod.rs");
    y.push_str("name: \"gitops-actions\"\n");
    let _ = writeln!(
        y,
        "description: {}",
        q(&format!(
            "Install the checksum-verified gitops-actions binaries ({}) and put them on PATH",
            names.join(", ")
        ))
    );
    y.push_str(
        "author: \"gitops-actions\"\nbranding:\n  icon: \"git-branch\"\n  color: \"blue\"\n",
    );
    y.push_str("outputs:\n");
    y.push_str("  bin-dir:\n    description: \"A fresh directory holding only the installed binaries, each verified on this run (added to PATH; the tool cache never is).\"\n    value: \"${{ steps.install.outputs.bin-dir }}\"\n");
    y.push_str("  version:\n    description: \"The installed release version, or `source` when built from an unreleased ref.\"\n    value: \"${{ steps.install.outputs.version }}\"\n");
    y.push_str("runs:\n  using: \"composite\"\n  steps:\n");
    let _ = writeln!(
        y,
        "    - name: \"Install gitops-actions binaries (checksum-verified)\"\n      id: install\n      shell: bash\n      env:\n        GITOPS_ACTIONS_BINARIES: {}\n        GITOPS_ACTIONS_ADD_TO_PATH: \"true\"\n      run: '\"$GITHUB_ACTION_PATH/scripts/install.sh\"'",
        q(&names.join(" "))
    );
    y
}

fn md_cell(s: &str) -> String {
    let mut out = String::new();
    for ch in one_line(s).chars() {
        match ch {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The generated inputs table (between the markers).
pub fn inputs_table(m: &ActionModel) -> String {
    let mut t = String::from(
        "| input | required | default | environment variable | description |\n|---|---|---|---|---|\n",
    );
    if let Some(c) = &m.command {
        let _ = writeln!(
            t,
            "| `{COMMAND_INPUT}` | {} | {} | `{}` | {} |",
            if c.default.is_none() { "yes" } else { "no" },
            c.default
                .as_deref()
                .map(|d| format!("`{d}`"))
                .unwrap_or_default(),
            env_name(COMMAND_INPUT),
            md_cell(&command_description(m, c, true))
        );
    }
    for i in &m.inputs {
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | `{}` | {} |",
            i.name,
            if i.required { "yes" } else { "no" },
            i.default
                .as_deref()
                .map(|d| format!("`{}`", md_cell(d)))
                .unwrap_or_default(),
            i.env,
            md_cell(&i.description)
        );
    }
    if m.command.is_none() && m.inputs.is_empty() {
        t.push_str("| _(none)_ | | | | |\n");
    }
    t
}

/// The generated outputs table (between the markers).
pub fn outputs_table(m: &ActionModel) -> String {
    let mut t = String::from("| output | description |\n|---|---|\n");
    for o in &m.outputs {
        let _ = writeln!(t, "| `{}` | {} |", o.name, md_cell(o.description));
    }
    if m.outputs.is_empty() {
        t.push_str("| _(none)_ | |\n");
    }
    t
}

fn readme_skeleton(m: &ActionModel) -> String {
    let slug = repo_slug();
    let mut r = format!(
        "# {}\n\n{}.\n\n",
        m.name,
        m.description.trim_end_matches('.')
    );
    r.push_str("```yaml\n");
    let _ = writeln!(
        r,
        "- uses: {slug}/actions/{}@v1  # pin a full commit SHA in production",
        m.name
    );
    if let Some(c) = &m.command {
        let _ = writeln!(r, "  with:\n    command: {}", c.choices[0]);
    }
    r.push_str("```\n\n");
    r.push_str(
        "Every input is passed to the binary through the environment variable shown below\n",
    );
    r.push_str("(never interpolated into a script); an empty input means \"not given\". See\n");
    r.push_str("[`docs/actions.md`](../../docs/actions.md) for how the binary is installed and verified.\n\n");
    let _ = write!(
        r,
        "## Inputs\n\n{INPUTS_BEGIN}\n{INPUTS_END}\n\n## Outputs\n\n{OUTPUTS_BEGIN}\n{OUTPUTS_END}\n"
    );
    r
}

fn replace_between(text: &str, begin: &str, end: &str, body: &str) -> Option<String> {
    let b = text.find(begin)?;
    let after_b = b + begin.len();
    let e = after_b + text[after_b..].find(end)?;
    Some(format!("{}\n{}{}", &text[..after_b], body, &text[e..]))
}

/// The README with its generated tables brought up to date. `existing` is the file on disk, if
/// any: hand-written prose outside the markers is kept.
pub fn render_readme(m: &ActionModel, existing: Option<&str>) -> String {
    let base = match existing {
        Some(t) if t.contains(INPUTS_BEGIN) && t.contains(OUTPUTS_BEGIN) => t.to_string(),
        Some(t) => format!(
            "{}\n## Inputs\n\n{INPUTS_BEGIN}\n{INPUTS_END}\n\n## Outputs\n\n{OUTPUTS_BEGIN}\n{OUTPUTS_END}\n",
            t.trim_end()
        ),
        None => readme_skeleton(m),
    };
    let with_inputs = replace_between(&base, INPUTS_BEGIN, INPUTS_END, &inputs_table(m))
        .expect("markers present");
    replace_between(&with_inputs, OUTPUTS_BEGIN, OUTPUTS_END, &outputs_table(m))
        .expect("markers present")
}

/// Every generated file, relative to the repository root, with its expected content.
pub fn render_all(root: &Path) -> Result<BTreeMap<PathBuf, String>, GenError> {
    let docs = binaries();
    let mut files = BTreeMap::new();
    for d in &docs {
        let m = model(d)?;
        let dir = PathBuf::from("actions").join(&m.name);
        files.insert(dir.join("action.yml"), render_action(&m));
        let readme = dir.join("README.md");
        let existing = std::fs::read_to_string(root.join(&readme)).ok();
        files.insert(readme, render_readme(&m, existing.as_deref()));
    }
    files.insert(PathBuf::from("action.yml"), render_root(&docs));
    Ok(files)
}

/// Files whose content on disk differs from the generated content.
pub fn drift(root: &Path) -> Result<Vec<PathBuf>, GenError> {
    Ok(render_all(root)?
        .into_iter()
        .filter(|(p, want)| std::fs::read_to_string(root.join(p)).ok().as_deref() != Some(want))
        .map(|(p, _)| p)
        .collect())
}

/// Write every generated file; returns the ones that changed.
pub fn generate(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut changed = Vec::new();
    for (p, want) in render_all(root).map_err(|e| e.to_string())? {
        let full = root.join(&p);
        if std::fs::read_to_string(&full).ok().as_deref() == Some(want.as_str()) {
            continue;
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&full, want).map_err(|e| format!("{}: {e}", full.display()))?;
        changed.push(p);
    }
    Ok(changed)
}

const USAGE: &str = "usage: gitops-dev <generate|check> [--root DIR]\n\
  generate  write actions/*/action.yml, their README tables and the root action.yml\n\
  check     exit 1 if any generated file is out of date (prints the command that fixes it)";

/// One line on stdout; a reader that went away only ends the output (no panic).
fn say(line: &str) {
    let _ = crate::cli::quiet_write(&mut std::io::stdout().lock(), &format!("{line}\n"));
}

/// Entry point of the `gitops-dev` binary.
pub fn dev_main() -> std::process::ExitCode {
    use std::process::ExitCode;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut root = PathBuf::from(".");
    let mut task = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => match it.next() {
                Some(r) => root = PathBuf::from(r),
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                say(USAGE);
                return ExitCode::SUCCESS;
            }
            "generate" | "check" if task.is_none() => task = Some(a.clone()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if !root.join("Cargo.toml").is_file() {
        eprintln!(
            "gitops-dev: {} is not the repository root (no Cargo.toml); run it from the root or pass --root",
            root.display()
        );
        return ExitCode::from(2);
    }
    match task.as_deref() {
        Some("generate") => match generate(&root) {
            Ok(changed) => {
                for p in &changed {
                    say(&format!("wrote {}", p.display()));
                }
                if changed.is_empty() {
                    say("all generated files are up to date");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gitops-dev generate: {e}");
                ExitCode::from(3)
            }
        },
        Some("check") => match drift(&root) {
            Ok(d) if d.is_empty() => {
                say("all generated files are up to date");
                ExitCode::SUCCESS
            }
            Ok(d) => {
                for p in &d {
                    eprintln!("out of date: {}", p.display());
                }
                eprintln!("generated files drifted from the clap definitions; fix with:\n    {FIX_COMMAND}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("gitops-dev check: {e}");
                ExitCode::from(3)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

    #[derive(Parser)]
    #[command(name = "probe", version)]
    struct Flat {
        /// Role to assume.
        #[arg(long, env = "GITOPS_ROLE_ARN")]
        role_arn: String,
        /// Region | with pipe.
        #[arg(long, env = "GITOPS_REGION", default_value = "us-east-1")]
        region: String,
        /// Token.
        #[arg(long, env = "GITOPS_GITHUB_TOKEN")]
        github_token: Option<String>,
        /// A switch.
        #[arg(long, env = "GITOPS_DRY_RUN")]
        dry_run: bool,
    }

    #[derive(Parser)]
    #[command(name = "multi")]
    struct Multi {
        #[command(subcommand)]
        cmd: Sub,
        /// Shared.
        #[arg(long, env = "GITOPS_ENVIRONMENT", global = true)]
        environment: Option<String>,
    }

    #[derive(Subcommand)]
    enum Sub {
        /// Push.
        Push {
            /// Image.
            #[arg(long, env = "GITOPS_IMAGE")]
            image: String,
            /// Tag.
            #[arg(long, env = "GITOPS_TAG")]
            tag: String,
        },
        /// Copy.
        Copy {
            /// Tag.
            #[arg(long, env = "GITOPS_TAG")]
            tag: String,
        },
    }

    #[derive(Parser)]
    #[command(name = "pos")]
    struct Pos {
        #[arg(value_enum, default_value = "record")]
        command: Which,
    }
    #[derive(Clone, ValueEnum)]
    enum Which {
        Record,
        List,
    }

    fn doc(name: &'static str, command: fn() -> clap::Command) -> BinaryDoc {
        BinaryDoc {
            name,
            description: "Probe",
            command,
            outputs: &[OutputDoc {
                name: "out",
                description: "An output",
            }],
        }
    }

    #[test]
    fn flat_flags_become_inputs_with_required_defaults_and_tokens() {
        let m = model(&doc("probe", Flat::command)).unwrap();
        assert!(m.command.is_none());
        let names: Vec<_> = m.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["role-arn", "region", "github-token", "dry-run"]);
        assert!(m.inputs[0].required);
        assert_eq!(m.inputs[1].default.as_deref(), Some("us-east-1"));
        assert!(!m.inputs[1].required);
        assert_eq!(m.inputs[2].default.as_deref(), Some(TOKEN_DEFAULT));
        assert_eq!(m.inputs[3].default.as_deref(), Some("false"));
        let y = render_action(&m);
        assert!(y.contains("GITOPS_ROLE_ARN: \"${{ inputs.role-arn }}\""));
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&y).unwrap();
        let run = v["runs"]["steps"][1]["run"].as_str().unwrap();
        assert!(!run.contains("${{"));
        assert!(inputs_table(&m).contains("Region \\| with pipe"));
    }

    #[test]
    fn subcommands_become_a_command_input_and_partial_flags_are_optional() {
        let m = model(&doc("multi", Multi::command)).unwrap();
        let c = m.command.clone().unwrap();
        assert_eq!(c.choices, ["push", "copy"]);
        let image = m.inputs.iter().find(|i| i.name == "image").unwrap();
        assert!(!image.required);
        assert!(image.description.contains("required by `command`: push"));
        let tag = m.inputs.iter().find(|i| i.name == "tag").unwrap();
        assert!(tag.required, "required by every subcommand");
        assert!(m.inputs.iter().any(|i| i.name == "environment"));
        let run = run_script(&m);
        assert!(run.contains("push|copy) ;;"));
        assert!(run.contains("\"$GITOPS_COMMAND\""));
    }

    #[test]
    fn positional_value_enum_becomes_command_with_default() {
        let m = model(&doc("pos", Pos::command)).unwrap();
        let c = m.command.unwrap();
        assert_eq!(c.choices, ["record", "list"]);
        assert_eq!(c.default.as_deref(), Some("record"));
    }

    #[test]
    fn readme_keeps_prose_and_replaces_tables() {
        let m = model(&doc("probe", Flat::command)).unwrap();
        let first = render_readme(&m, None);
        let edited = first.replace("# probe", "# probe\n\nHand-written prose.");
        let again = render_readme(&m, Some(&edited));
        assert!(again.contains("Hand-written prose."));
        assert_eq!(again.matches(INPUTS_BEGIN).count(), 1);
        assert_eq!(render_readme(&m, Some(&again)), again);
    }

    #[test]
    fn repo_slug_is_owner_and_name() {
        assert_eq!(repo_slug(), "gitops-actions/gitops-actions");
    }

    #[derive(Parser)]
    #[command(name = "opt")]
    struct Opt {
        #[command(subcommand)]
        cmd: Option<OptSub>,
    }

    #[derive(Subcommand)]
    enum OptSub {
        /// Gate.
        Gate {
            /// Token.
            #[arg(long, env = "GITOPS_GITHUB_TOKEN")]
            github_token: Option<String>,
            /// Deprecated: use `github-token`.
            #[arg(long, env = "GITOPS_TOKEN", hide = true)]
            token: Option<String>,
        },
        /// Verify.
        Verify {
            /// Digest.
            #[arg(long, env = "GITOPS_DIGEST")]
            digest: Option<String>,
        },
    }

    // An optional verb defaults to the first; the workflow-token default never reaches a verb
    // that does not take the token (the binary would refuse it as another verb's input); a
    // hidden flag is a deprecated alias with GitHub's deprecation message and no default.
    #[test]
    fn optional_verbs_default_to_the_first_and_token_defaults_reach_only_their_verbs() {
        let m = model(&doc("opt", Opt::command)).unwrap();
        let c = m.command.clone().unwrap();
        assert_eq!(c.default.as_deref(), Some("gate"));
        let run = run_script(&m);
        assert!(
            run.contains("  verify) unset GITOPS_GITHUB_TOKEN ;;"),
            "{run}"
        );
        assert!(!run.contains("gate) unset"), "{run}");
        let alias = m.inputs.iter().find(|i| i.name == "token").unwrap();
        assert_eq!(alias.default, None);
        assert_eq!(
            alias.deprecated.as_deref(),
            Some("Deprecated: use `github-token`")
        );
        let y = render_action(&m);
        assert!(
            y.contains("    deprecationMessage: \"Deprecated: use `github-token`\""),
            "{y}"
        );
        assert!(
            y.contains("    required: false\n    default: \"gate\""),
            "{y}"
        );
        // The flat probe and the required-verb probe keep their scripts unchanged.
        assert!(!run_script(&model(&doc("multi", Multi::command)).unwrap()).contains("unset"));
    }
}
