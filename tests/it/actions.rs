//! The composite actions users reference: generated `action.yml` files (drift and structure),
//! `scripts/install.sh` against a local release server, the actions run under act, and the
//! static checkers (zizmor, action-validator).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gitops_actions::actiongen::{self, COMMAND_INPUT, FIX_COMMAND, TOKEN_DEFAULT, TOKEN_INPUTS};
use gitops_actions::cli::env_name;
use gitops_actions::cmd::binaries;
use serde_yaml_ng::Value;

use crate::support::{self, root};

mod install;
mod runs;

fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `{FIX_COMMAND}`", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Every `run:` script in a composite action's steps.
fn run_scripts(action: &Value) -> Vec<String> {
    action["runs"]["steps"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|st| str_of(st, "run").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

// (1) The committed action.yml files and README tables are exactly what the generator writes,
// and `gitops-dev check` names the command that fixes a drift.
#[test]
fn actions_generated_files_match_the_clap_definitions() {
    let drift =
        actiongen::drift(&root()).expect("generator accepts every binary's clap definition");
    assert!(
        drift.is_empty(),
        "generated files are out of date: {drift:?}\nfix with: {FIX_COMMAND}"
    );
    let sb = support::Sandbox::plain();
    let run = sb.run_cmd({
        let mut c = sb.cmd("gitops-dev");
        c.args(["check", "--root"]).arg(root());
        c
    });
    run.expect_code(0);

    // A drifted copy: check fails, names the file and the fix, and changes nothing.
    let copy = sb.path().join("repo");
    std::fs::create_dir_all(copy.join("actions/promote")).unwrap();
    std::fs::copy(root().join("Cargo.toml"), copy.join("Cargo.toml")).unwrap();
    for (p, _) in actiongen::render_all(&root()).unwrap() {
        std::fs::create_dir_all(copy.join(&p).parent().unwrap()).unwrap();
        std::fs::copy(root().join(&p), copy.join(&p)).unwrap();
    }
    let yml = copy.join("actions/promote/action.yml");
    let tampered = std::fs::read_to_string(&yml).unwrap() + "# hand edit\n";
    std::fs::write(&yml, &tampered).unwrap();
    let run = sb.run_cmd({
        let mut c = sb.cmd("gitops-dev");
        c.args(["check", "--root"]).arg(&copy);
        c
    });
    run.expect_code(1);
    assert!(
        run.stderr.contains("actions/promote/action.yml"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(FIX_COMMAND), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&yml).unwrap(), tampered);

    // generate repairs it; a second generate writes nothing.
    let run = sb.run_cmd({
        let mut c = sb.cmd("gitops-dev");
        c.args(["generate", "--root"]).arg(&copy);
        c
    });
    run.expect_code(0);
    assert!(run.stdout.contains("wrote actions/promote/action.yml"));
    let run = sb.run_cmd({
        let mut c = sb.cmd("gitops-dev");
        c.args(["check", "--root"]).arg(&copy);
        c
    });
    run.expect_code(0);
}

/// Long flags of a clap command and its subcommands: name -> (env, required everywhere, default).
struct Flag {
    env: Option<String>,
    required_in: BTreeSet<String>,
    used_in: BTreeSet<String>,
    default: Vec<String>,
    switch: bool,
}

fn flags_of(cmd: &clap::Command) -> (std::collections::BTreeMap<String, Flag>, Vec<String>) {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut flags = std::collections::BTreeMap::<String, Flag>::new();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .cloned()
        .collect();
    let forms: Vec<(String, &clap::Command)> = std::iter::once((String::new(), &cmd))
        .chain(subs.iter().map(|s| (s.get_name().to_string(), s)))
        .collect();
    for (form, c) in forms {
        for a in c.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let f = flags.entry(long.to_string()).or_insert(Flag {
                env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                required_in: BTreeSet::new(),
                used_in: BTreeSet::new(),
                default: a
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect(),
                switch: matches!(a.get_action(), clap::ArgAction::SetTrue),
            });
            f.used_in.insert(form.clone());
            if a.is_required_set() {
                f.required_in.insert(form.clone());
            }
        }
    }
    let mut choices: Vec<String> = subs.iter().map(|s| s.get_name().to_string()).collect();
    if choices.is_empty() {
        if let Some(p) = cmd.get_arguments().find(|a| a.is_positional()) {
            choices = p
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
        }
    }
    (flags, choices)
}

// (2) Read every action.yml on disk and hold it against the binaries themselves: inputs are
// exactly the long flags (plus `command`), every input reaches its GITOPS_* variable, required
// and defaults follow clap, token inputs default to the workflow token, every output has a
// value, and no `run:` script contains an expression.
#[test]
fn actions_on_disk_map_every_flag_and_output_of_the_binaries() {
    for doc in binaries() {
        let path = root().join("actions").join(doc.name).join("action.yml");
        let action = load_yaml(&path);
        let (flags, choices) = flags_of(&(doc.command)());
        assert_eq!(str_of(&action["runs"], "using"), Some("composite"));

        let empty = serde_yaml_ng::Mapping::new();
        let inputs = action
            .get("inputs")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let names: BTreeSet<String> = inputs
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let mut want: BTreeSet<String> = flags.keys().cloned().collect();
        if !choices.is_empty() {
            want.insert(COMMAND_INPUT.to_string());
        }
        assert_eq!(
            names, want,
            "{}: inputs must be exactly the long flags",
            doc.name
        );

        let steps = action["runs"]["steps"].as_sequence().unwrap();
        assert_eq!(steps.len(), 2, "{}: install step + one run step", doc.name);
        assert!(str_of(&steps[0], "run")
            .unwrap()
            .contains("$GITHUB_ACTION_PATH/../../scripts/install.sh"));
        let run_step = &steps[1];
        assert_eq!(str_of(run_step, "id"), Some("run"));
        let env = run_step["env"].as_mapping().unwrap();

        for (name, f) in &flags {
            let var = env_name(name);
            assert_eq!(
                f.env.as_deref(),
                Some(var.as_str()),
                "{}: flag --{name} must be declared with env = \"{var}\" (the action passes it that way)",
                doc.name
            );
            assert_eq!(
                env.get(var.as_str()).and_then(Value::as_str),
                Some(format!("${{{{ inputs.{name} }}}}").as_str()),
                "{}: input {name} must reach {var}",
                doc.name
            );
            let input = &inputs[name.as_str()];
            assert!(
                !str_of(input, "description").unwrap_or("").is_empty(),
                "{}: input {name} has no description",
                doc.name
            );
            let default = str_of(input, "default");
            if TOKEN_INPUTS.contains(&name.as_str()) {
                assert_eq!(default, Some(TOKEN_DEFAULT), "{}: {name}", doc.name);
            } else if !f.default.is_empty() {
                assert_eq!(
                    default,
                    Some(f.default.join(",").as_str()),
                    "{}: {name}",
                    doc.name
                );
            } else {
                assert_eq!(default, None, "{}: {name}", doc.name);
            }
            // Required by the action only when every verb takes it and requires it (an input of
            // some verbs only, like plan-gate's `plan`, which `record` does not take, is not).
            let verbs = (doc.command)()
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .count();
            let in_every_verb =
                verbs == 0 || f.used_in.iter().filter(|u| !u.is_empty()).count() == verbs;
            let required_everywhere =
                !f.required_in.is_empty() && f.required_in == f.used_in && in_every_verb;
            let want_required = required_everywhere && default.is_none();
            assert_eq!(
                input["required"].as_bool(),
                Some(want_required),
                "{}: input {name} required",
                doc.name
            );
            if f.switch {
                assert_eq!(default, Some("false"));
            }
        }
        if !choices.is_empty() {
            assert_eq!(
                env.get("GITOPS_COMMAND").and_then(Value::as_str),
                Some("${{ inputs.command }}")
            );
            let script = str_of(run_step, "run").unwrap();
            assert!(script.contains(&format!("{}) ;;", choices.join("|"))));
            assert!(script.contains("\"$GITOPS_COMMAND\""));
        }
        // Nothing but inputs (and the install step's bin dir) reaches the run step.
        assert_eq!(
            env.len(),
            flags.len() + usize::from(!choices.is_empty()) + 1,
            "{}: unexpected env entries",
            doc.name
        );

        let outputs = action
            .get("outputs")
            .and_then(Value::as_mapping)
            .unwrap_or(&empty);
        let out_names: BTreeSet<&str> = outputs.keys().map(|k| k.as_str().unwrap()).collect();
        let want_out: BTreeSet<&str> = doc.outputs.iter().map(|o| o.name).collect();
        assert_eq!(out_names, want_out, "{}: outputs", doc.name);
        for o in doc.outputs {
            assert_eq!(
                str_of(&outputs[o.name], "value"),
                Some(format!("${{{{ steps.run.outputs.{} }}}}", o.name).as_str())
            );
        }
        for s in run_scripts(&action) {
            assert!(
                !s.contains("${{"),
                "{}: expression inside run: {s}",
                doc.name
            );
        }
        let readme =
            std::fs::read_to_string(root().join("actions").join(doc.name).join("README.md"))
                .unwrap();
        for name in &want {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{}: README lacks {name}",
                doc.name
            );
        }
    }

    let rootact = load_yaml(&root().join("action.yml"));
    for o in ["bin-dir", "version"] {
        assert!(str_of(&rootact["outputs"][o], "value")
            .unwrap()
            .contains("steps.install.outputs"));
    }
    for s in run_scripts(&rootact) {
        assert!(!s.contains("${{"));
        assert!(s.contains("$GITHUB_ACTION_PATH/scripts/install.sh"));
    }
}

/// The repository tree an action run needs (root action, actions, install script, dist/)
/// copied into `dst`.
pub fn copy_action_tree(dst: &Path) {
    for rel in ["action.yml", "actions", "scripts/install.sh", "dist"] {
        let src = root().join(rel);
        if src.exists() {
            copy_recursive(&src, &dst.join(rel));
        }
    }
}

fn copy_recursive(src: &Path, dst: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_recursive(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, dst).unwrap();
    }
}

/// Write an executable file (mode 0755).
pub fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The directory holding the binaries cargo built for this test run.
pub fn built_bin_dir() -> PathBuf {
    support::bin("oidc-login").parent().unwrap().to_path_buf()
}

// (5) zizmor (offline, pedantic) finds nothing in the root action, the actions and our
// workflows, and every action.yml and workflow passes the action-validator schema check.
#[test]
fn actions_and_workflows_pass_zizmor_pedantic_and_the_schema_check() {
    let r = root();
    let out = std::process::Command::new(support::tool("zizmor"))
        .args([
            "--offline",
            "--persona=pedantic",
            "--no-progress",
            "--config",
        ])
        .arg(r.join(".github/zizmor.yml"))
        .args(["action.yml", "actions/", ".github/workflows/"])
        .current_dir(&r)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "zizmor findings:\n{text}");
    assert!(text.contains("No findings"), "{text}");

    let mut files = vec![r.join("action.yml")];
    for doc in binaries() {
        files.push(r.join("actions").join(doc.name).join("action.yml"));
    }
    for e in std::fs::read_dir(r.join(".github/workflows")).unwrap() {
        files.push(e.unwrap().path());
    }
    let tmp = tempfile::tempdir().unwrap();
    for f in files {
        let mut text = std::fs::read_to_string(&f).unwrap();
        // The validator's bundled schema predates the `attestations` permission that
        // actions/attest-build-provenance needs; check everything else.
        if text.contains("attestations: write") {
            text = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("attestations: write"))
                .collect::<Vec<_>>()
                .join("\n");
        }
        let copy = tmp.path().join(f.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        let out = std::process::Command::new(support::tool("action-validator"))
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} fails the schema check:\n{}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// The shell scripts users run (install.sh) and we run (build-static, bench-actions) are
// shellcheck-clean.
#[test]
fn actions_scripts_are_shellcheck_clean() {
    let r = root();
    let mut c = std::process::Command::new(support::tool("shellcheck"));
    c.current_dir(&r).arg("scripts/install.sh");
    for s in [
        "scripts/build-static",
        "scripts/bench-actions",
        "scripts/pin-actions",
    ] {
        if r.join(s).exists() {
            c.arg(s);
        }
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
