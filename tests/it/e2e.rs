//! The whole seed flow: the workflow templates (`workflows-templates/`), the Terraform projects
//! (`terraform/`), and the one-command local run (`scripts/demo`).
//!
//! - Templates: zizmor `--offline --persona=pedantic` finds nothing in them as an app repository
//!   holds them (`.github/workflows/`, no configuration); the workflow schema accepts them; every
//!   `uses:` names a real action pinned by full SHA with its release in a comment (ours: its
//!   `action.yml`, or the binary's flags while the action is not generated, all pinned to one
//!   release commit; third-party: listed in [`THIRD_PARTY`]), every `with:` key is a real input of
//!   it, every `steps.<id>.outputs.<x>` is a real output; no `${{ }}` inside `run:`;
//!   least-privilege permissions; no privileged credential in a job that runs pull-request code;
//!   applies never cancelled. `scripts/pin-actions` (the release's pin rewrite) rewrites exactly
//!   our references.
//! - Terraform: the `<env>-plan` environments and plan roles are restricted (branch policy,
//!   pull-request-only trust, state read only).
//! - Terraform: `terraform fmt -check`, checkov with `--skip-download` and no failed check, every
//!   skipped check carrying a written reason.
//! - The local run: `scripts/demo` against the real stand-ins, asserting the final tags.

use crate::support::{self, root, skip_loudly, tool};
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The templates, in the order of the flow.
const TEMPLATES: &[&str] = &[
    "plan.yml",
    "plan-record.yml",
    "drift.yml",
    "deploy.yml",
    "promote.yml",
    "rollback.yml",
    "core.yml",
    "preview.yml",
];

/// Where our own actions are referenced from in the templates.
const OUR_PREFIX: &str = "gitops-actions/gitops-actions/actions/";

/// Our root action (action.yml: installs every binary onto PATH), as the templates name it.
const ROOT_ACTION: &str = "gitops-actions/gitops-actions@";

/// Third-party actions the templates may use: the pinned commit, the release it is, and the
/// inputs that release declares (from its `action.yml`). A new pin or input must be added here
/// after checking that release's `action.yml`.
const THIRD_PARTY: &[(&str, &str, &str, &[&str])] = &[
    (
        "actions/checkout",
        "08c6903cd8c0fde910a37f88322edcfb5dd907a8",
        "v5.0.0",
        &[
            "repository",
            "ref",
            "token",
            "ssh-key",
            "ssh-known-hosts",
            "ssh-strict",
            "ssh-user",
            "persist-credentials",
            "path",
            "clean",
            "filter",
            "sparse-checkout",
            "sparse-checkout-cone-mode",
            "fetch-depth",
            "fetch-tags",
            "show-progress",
            "lfs",
            "submodules",
            "set-safe-directory",
            "github-server-url",
        ],
    ),
    (
        "opentofu/setup-opentofu",
        "a1320f892987e89d278cc92dc5adc984fb93aca4",
        "v2.0.2",
        &[
            "cli_config_credentials_hostname",
            "cli_config_credentials_token",
            "tofu_version",
            "tofu_wrapper",
        ],
    ),
    (
        "actions/upload-artifact",
        "ea165f8d65b6e75b540449e92b4886f43607fa02",
        "v4.6.2",
        &[
            "name",
            "path",
            "if-no-files-found",
            "retention-days",
            "compression-level",
            "overwrite",
            "include-hidden-files",
        ],
    ),
    (
        "actions/download-artifact",
        "d3f86a106a0bac45b974a628896c90dbdf5c8093",
        "v4.3.0",
        &[
            "name",
            "path",
            "pattern",
            "merge-multiple",
            "github-token",
            "repository",
            "run-id",
        ],
    ),
    (
        "hashicorp/setup-terraform",
        "b9cd54a3c349d3f38e8881555d616ced269862dd",
        "v3.1.2",
        &[
            "cli_config_credentials_hostname",
            "cli_config_credentials_token",
            "terraform_version",
            "terraform_wrapper",
        ],
    ),
];

fn templates_dir() -> PathBuf {
    root().join("workflows-templates")
}

fn load(name: &str) -> (String, Value) {
    let path = templates_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let value: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    (text, value)
}

fn map_keys(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What an action of ours declares: input names, the required ones, and output names.
#[derive(Debug, Default)]
struct ActionSpec {
    inputs: BTreeSet<String>,
    required: BTreeSet<String>,
    outputs: BTreeSet<String>,
    /// Where the spec came from, for messages.
    source: String,
}

/// Our action `name`: its generated `actions/<name>/action.yml` when present, else the binary's
/// clap definition (flags = inputs, a subcommand/positional = the `command` input). `None` while
/// the binary is still a stub without flags.
fn our_action(name: &str) -> Option<ActionSpec> {
    let yml = root().join("actions").join(name).join("action.yml");
    if yml.exists() {
        let text = std::fs::read_to_string(&yml).unwrap();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        let mut spec = ActionSpec {
            source: format!("actions/{name}/action.yml"),
            ..Default::default()
        };
        if let Some(m) = v.get("inputs").and_then(Value::as_mapping) {
            for (k, def) in m {
                let k = k.as_str().unwrap().to_string();
                let required = def.get("required").and_then(Value::as_bool) == Some(true)
                    && def.get("default").is_none();
                if required {
                    spec.required.insert(k.clone());
                }
                spec.inputs.insert(k);
            }
        }
        spec.outputs = map_keys(v.get("outputs")).into_iter().collect();
        // An action generated from a skeleton binary declares no inputs yet.
        return (!spec.inputs.is_empty()).then_some(spec);
    }
    let doc = gitops_actions::cmd::binaries()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("the templates use action `{name}`, which is not one of ours"));
    let cmd = (doc.command)();
    let mut spec = ActionSpec {
        source: format!(
            "the `{name}` binary's flags (actions/{name}/action.yml not generated yet)"
        ),
        outputs: doc.outputs.iter().map(|o| o.name.to_string()).collect(),
        ..Default::default()
    };
    fn walk(c: &clap::Command, spec: &mut ActionSpec) {
        for a in c.get_arguments() {
            if let Some(l) = a.get_long() {
                if l != "help" && l != "version" {
                    spec.inputs.insert(l.to_string());
                }
            } else if a.is_positional() {
                spec.inputs.insert("command".into());
            }
        }
        if c.has_subcommands() {
            spec.inputs.insert("command".into());
        }
        for s in c.get_subcommands() {
            walk(s, spec);
        }
    }
    walk(&cmd, &mut spec);
    if spec.inputs.is_empty() {
        return None;
    }
    Some(spec)
}

/// One `uses:` found in a template.
struct Use {
    file: String,
    job: String,
    step_id: Option<String>,
    uses: String,
    with: BTreeMap<String, Value>,
}

/// Our action `name` referenced at `reference`: it must be a full commit SHA, and the line must
/// carry the release it is (`uses: <ours><name>@<sha> # vX.Y.Z`). The movable `@v1` tag, a short
/// SHA or a branch would let whoever moves that ref run code in jobs holding AWS credentials and
/// write tokens.
fn our_pin(text: &str, name: &str, reference: &str) -> Result<(String, String), String> {
    let sha = regex_lite::Regex::new("^[0-9a-f]{40}$").unwrap();
    if !sha.is_match(reference) {
        return Err(format!(
            "our actions must be pinned by full commit SHA (`@<40 hex> # vX.Y.Z`), not `@{reference}`"
        ));
    }
    let line = regex_lite::Regex::new(&format!(
        r"(?m)^\s*(?:- )?uses: {}{}@{} # (v[0-9]+\.[0-9]+\.[0-9]+)$",
        regex_lite::escape(OUR_PREFIX),
        regex_lite::escape(name),
        reference
    ))
    .unwrap();
    match line.captures(text) {
        Some(c) => Ok((reference.to_string(), c[1].to_string())),
        None => Err(format!(
            "the pin must carry its release: `{OUR_PREFIX}{name}@{reference} # vX.Y.Z`"
        )),
    }
}

/// The root action pinned at `reference`: a full commit SHA, and the line carries the release.
fn our_root_pin(text: &str, reference: &str) -> Result<(String, String), String> {
    let sha = regex_lite::Regex::new("^[0-9a-f]{40}$").unwrap();
    if !sha.is_match(reference) {
        return Err(format!(
            "our root action must be pinned by full commit SHA (`@<40 hex> # vX.Y.Z`), not `@{reference}`"
        ));
    }
    let line = regex_lite::Regex::new(&format!(
        r"(?m)^\s*(?:- )?uses: {}{} # (v[0-9]+\.[0-9]+\.[0-9]+)$",
        regex_lite::escape(ROOT_ACTION),
        reference
    ))
    .unwrap();
    match line.captures(text) {
        Some(c) => Ok((reference.to_string(), c[1].to_string())),
        None => Err(format!(
            "the pin must carry its release: `{ROOT_ACTION}{reference} # vX.Y.Z`"
        )),
    }
}

fn uses_in(file: &str, wf: &Value) -> Vec<Use> {
    let mut out = Vec::new();
    let jobs = wf.get("jobs").and_then(Value::as_mapping).expect("jobs");
    for (job_name, job) in jobs {
        let job_name = job_name.as_str().unwrap().to_string();
        let with_of = |v: &Value| -> BTreeMap<String, Value> {
            v.get("with")
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(u) = job.get("uses").and_then(Value::as_str) {
            out.push(Use {
                file: file.into(),
                job: job_name.clone(),
                step_id: None,
                uses: u.into(),
                with: with_of(job),
            });
        }
        for step in job
            .get("steps")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if let Some(u) = step.get("uses").and_then(Value::as_str) {
                out.push(Use {
                    file: file.into(),
                    job: job_name.clone(),
                    step_id: step.get("id").and_then(Value::as_str).map(str::to_string),
                    uses: u.into(),
                    with: with_of(step),
                });
            }
        }
    }
    out
}

// Every template names real actions with real inputs, references real outputs, and pins every
// third-party action by full commit SHA with its release in a comment.
#[test]
fn e2e_templates_name_real_actions_inputs_and_outputs() {
    let mut problems = Vec::new();
    let mut stubs = BTreeSet::new();
    // Every (sha, version) our actions are pinned to, over all templates: exactly one.
    let mut pins = BTreeSet::new();
    for file in TEMPLATES {
        let (text, wf) = load(file);
        // step id -> our action name, per job, to check `steps.<id>.outputs.<name>`.
        let mut step_action: BTreeMap<(String, String), String> = BTreeMap::new();
        for u in uses_in(file, &wf) {
            let at = format!("{}: job `{}`: `{}`", u.file, u.job, u.uses);
            if let Some(reference) = u.uses.strip_prefix(ROOT_ACTION) {
                // The root action: installs every binary onto PATH; no inputs.
                match our_root_pin(&text, reference) {
                    Ok(pin) => {
                        pins.insert(pin);
                    }
                    Err(why) => problems.push(format!("{at}: {why}")),
                }
                let root_action: Value = serde_yaml_ng::from_str(
                    &std::fs::read_to_string(root().join("action.yml")).unwrap(),
                )
                .unwrap();
                let inputs: BTreeSet<String> =
                    map_keys(root_action.get("inputs")).into_iter().collect();
                for k in u.with.keys() {
                    if !inputs.contains(k) {
                        problems.push(format!("{at}: `{k}` is not an input of the root action"));
                    }
                }
            } else if let Some(rest) = u.uses.strip_prefix(OUR_PREFIX) {
                let (name, reference) = rest.split_once('@').unwrap_or((rest, ""));
                match our_pin(&text, name, reference) {
                    Ok(pin) => {
                        pins.insert(pin);
                    }
                    Err(why) => problems.push(format!("{at}: {why}")),
                }
                if let Some(id) = &u.step_id {
                    step_action.insert((u.job.clone(), id.clone()), name.to_string());
                }
                let Some(spec) = our_action(name) else {
                    stubs.insert(name.to_string());
                    continue;
                };
                for k in u.with.keys() {
                    if !spec.inputs.contains(k) {
                        problems.push(format!(
                            "{at}: `{k}` is not an input of {name} (per {}); inputs: {:?}",
                            spec.source, spec.inputs
                        ));
                    }
                }
                for r in &spec.required {
                    if !u.with.contains_key(r) {
                        problems.push(format!("{at}: required input `{r}` is missing"));
                    }
                }
            } else if let Some(local) = u.uses.strip_prefix("./.github/workflows/") {
                // A reusable workflow of the same repository: the templates are copied there.
                let (_, called) = load(local);
                let call = called
                    .get("on")
                    .and_then(|o| o.get("workflow_call"))
                    .unwrap_or_else(|| panic!("{at}: {local} has no workflow_call trigger"));
                let inputs: BTreeSet<String> = map_keys(call.get("inputs")).into_iter().collect();
                for k in u.with.keys() {
                    if !inputs.contains(k) {
                        problems.push(format!("{at}: `{k}` is not an input of {local}"));
                    }
                }
            } else {
                let (name, reference) = u
                    .uses
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{at}: no @ref"));
                let Some((_, sha, version, inputs)) = THIRD_PARTY.iter().find(|(n, ..)| *n == name)
                else {
                    problems.push(format!(
                        "{at}: third-party action not in the table of known actions"
                    ));
                    continue;
                };
                if reference != *sha {
                    problems.push(format!("{at}: must be pinned to {sha} ({version})"));
                }
                let pinned_line = format!("{name}@{sha} # {version}");
                if !text.contains(&pinned_line) {
                    problems.push(format!(
                        "{at}: the pin must carry its release: `{pinned_line}`"
                    ));
                }
                for k in u.with.keys() {
                    if !inputs.contains(&k.as_str()) {
                        problems.push(format!("{at}: `{k}` is not an input of {name} {version}"));
                    }
                }
            }
        }
        // Outputs of our own `run:` steps: the names they write to `$GITHUB_OUTPUT`.
        let written =
            regex_lite::Regex::new(r#"echo "([A-Za-z0-9_-]+)=[^\n]*>> "\$GITHUB_OUTPUT""#).unwrap();
        let mut run_outputs: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for (job_name, job) in wf.get("jobs").and_then(Value::as_mapping).unwrap() {
            for step in job
                .get("steps")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(run)) = (
                    step.get("id").and_then(Value::as_str),
                    step.get("run").and_then(Value::as_str),
                ) {
                    run_outputs.insert(
                        (job_name.as_str().unwrap().to_string(), id.to_string()),
                        written
                            .captures_iter(run)
                            .map(|c| c[1].to_string())
                            .collect(),
                    );
                }
            }
        }
        // `steps.<id>.outputs.<name>` must name a real output of that step's action.
        let re =
            regex_lite::Regex::new(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)").unwrap();
        let jobs = wf.get("jobs").and_then(Value::as_mapping).unwrap();
        for (job_name, job) in jobs {
            let job_name = job_name.as_str().unwrap();
            let job_text = serde_yaml_ng::to_string(job).unwrap();
            for c in re.captures_iter(&job_text) {
                let (id, out) = (&c[1], &c[2]);
                match step_action.get(&(job_name.to_string(), id.to_string())) {
                    Some(name) => {
                        if let Some(spec) = our_action(name) {
                            if !spec.outputs.contains(out) {
                                problems.push(format!(
                                    "{file}: job `{job_name}`: steps.{id}.outputs.{out}: {name} has no output `{out}` (per {}); outputs: {:?}",
                                    spec.source, spec.outputs
                                ));
                            }
                        }
                    }
                    None if run_outputs
                        .get(&(job_name.to_string(), id.to_string()))
                        .is_some_and(|o| o.contains(out)) => {}
                    None => problems.push(format!(
                        "{file}: job `{job_name}`: steps.{id}.outputs.{out} refers to no step with id `{id}` that sets it"
                    )),
                }
            }
        }
    }
    if pins.len() != 1 {
        problems.push(format!(
            "our actions must all be pinned to one release commit; found {pins:?}"
        ));
    }
    for s in &stubs {
        skip_loudly(
            &format!("input check of the templates' `{s}` steps"),
            "that binary has no flags yet (still a stub)",
        );
    }
    assert!(
        problems.is_empty(),
        "template problems:\n{}",
        problems.join("\n")
    );
}

// Untrusted context reaches shell code only through `env:`; every job states least-privilege
// permissions; the workflow grants none; every apply job runs in a per-environment concurrency
// group that never cancels a running apply.
#[test]
fn e2e_templates_keep_expressions_out_of_run_and_permissions_per_job() {
    let mut problems = Vec::new();
    for file in TEMPLATES {
        let (text, wf) = load(file);
        assert!(text.starts_with("# "), "{file}: needs its header comment");
        for needle in ["What it does", "Permissions", "Variables"] {
            assert!(text.contains(needle), "{file}: header must say `{needle}`");
        }
        let top = wf.get("permissions").and_then(Value::as_mapping);
        if top.map(|m| !m.is_empty()).unwrap_or(true) {
            problems.push(format!("{file}: top-level `permissions: {{}}` is required"));
        }
        for (job_name, job) in wf.get("jobs").and_then(Value::as_mapping).unwrap() {
            let job_name = job_name.as_str().unwrap();
            let perms = job.get("permissions").and_then(Value::as_mapping);
            match perms {
                None => problems.push(format!(
                    "{file}: job `{job_name}` must state its permissions"
                )),
                Some(p) => {
                    for (k, v) in p {
                        if v.as_str() == Some("write") {
                            let k = k.as_str().unwrap();
                            let allowed = [
                                "contents",
                                "id-token",
                                "deployments",
                                "pull-requests",
                                "actions",
                                "statuses",
                                "issues",
                            ];
                            if !allowed.contains(&k) {
                                problems.push(format!(
                                    "{file}: job `{job_name}`: unexpected `{k}: write`"
                                ));
                            }
                        }
                    }
                }
            }
            for step in job
                .get("steps")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                if let Some(run) = step.get("run").and_then(Value::as_str) {
                    if run.contains("${{") {
                        problems.push(format!(
                            "{file}: job `{job_name}`: `${{{{ }}}}` inside run: (map it through env:)"
                        ));
                    }
                }
            }
            let steps_text = serde_yaml_ng::to_string(job).unwrap();
            if steps_text.contains("terraform apply") {
                let cancel = job
                    .get("concurrency")
                    .and_then(|c| c.get("cancel-in-progress"))
                    .and_then(Value::as_bool);
                let group = job
                    .get("concurrency")
                    .and_then(|c| c.get("group"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if cancel != Some(false) || group.is_empty() {
                    problems.push(format!(
                        "{file}: job `{job_name}` applies: needs a concurrency group with cancel-in-progress: false"
                    ));
                }
            }
        }
    }
    // deploy.yml and rollback.yml share one group per environment.
    let group = |file: &str, job: &str| {
        load(file)
            .1
            .get("jobs")
            .and_then(|j| j.get(job))
            .and_then(|j| j.get("concurrency"))
            .and_then(|c| c.get("group"))
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    };
    assert!(group("deploy.yml", "deploy").starts_with("gitops-deploy-"));
    assert!(group("rollback.yml", "rollback").starts_with("gitops-deploy-"));
    assert!(
        problems.is_empty(),
        "template problems:\n{}",
        problems.join("\n")
    );
}

/// Runs `scripts/pin-actions` with `args`.
fn pin_actions(args: &[&str]) -> std::process::Output {
    Command::new(root().join("scripts/pin-actions"))
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("scripts/pin-actions")
}

fn read_all(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

// The release's pin rewrite (scripts/pin-actions): every `uses:` of our actions in every template
// becomes `@<sha> # <version>`, and nothing else changes (third-party pins, comments, any other
// line); a bad sha or version is refused before anything is read (exit 2); a reference in a form
// it does not rewrite is refused with its file and line (exit 1) and no file is written.
#[test]
fn e2e_pin_script_rewrites_every_reference_of_ours_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    std::fs::create_dir_all(&dir).unwrap();
    for f in TEMPLATES {
        std::fs::copy(templates_dir().join(f), dir.join(f)).unwrap();
    }
    let before = read_all(&dir);
    let ours: usize = TEMPLATES
        .iter()
        .map(|f| {
            let (_, wf) = load(f);
            uses_in(f, &wf)
                .iter()
                .filter(|u| u.uses.starts_with(OUR_PREFIX) || u.uses.starts_with(ROOT_ACTION))
                .count()
        })
        .sum();
    assert!(ours > 20, "{ours}");
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let d = dir.to_str().unwrap();
    let out = pin_actions(&[sha, "v1.4.2", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("{ours} references pinned to {sha} (v1.4.2)")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = read_all(&dir);
    let mut rewritten = 0;
    for (f, old) in &before {
        let new = &after[f];
        let (o, n): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
        assert_eq!(o.len(), n.len(), "{f}: lines added or removed");
        assert_eq!(old.ends_with('\n'), new.ends_with('\n'), "{f}");
        for (a, b) in o.iter().zip(&n) {
            if a == b {
                assert!(
                    !(a.trim_start()
                        .trim_start_matches("- ")
                        .starts_with(&format!("uses: {OUR_PREFIX}"))),
                    "{f}: not rewritten: {a}"
                );
                continue;
            }
            let (head, rest) = a.split_once("uses: ").expect("only uses: lines change");
            if rest.starts_with(ROOT_ACTION) {
                assert_eq!(
                    *b,
                    format!("{head}uses: {ROOT_ACTION}{sha} # v1.4.2"),
                    "{f}"
                );
                rewritten += 1;
                continue;
            }
            let name = rest
                .strip_prefix(OUR_PREFIX)
                .unwrap()
                .split('@')
                .next()
                .unwrap();
            assert_eq!(
                *b,
                format!("{head}uses: {OUR_PREFIX}{name}@{sha} # v1.4.2"),
                "{f}"
            );
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, ours);
    // The pinned templates still pass the template checks' pin rule.
    for (f, text) in &after {
        let wf: Value = serde_yaml_ng::from_str(text).unwrap();
        for u in uses_in(f, &wf) {
            if let Some(rest) = u.uses.strip_prefix(OUR_PREFIX) {
                let (name, reference) = rest.split_once('@').unwrap();
                assert_eq!(
                    our_pin(text, name, reference),
                    Ok((sha.to_string(), "v1.4.2".to_string()))
                );
            } else if let Some(reference) = u.uses.strip_prefix(ROOT_ACTION) {
                assert_eq!(
                    our_root_pin(text, reference),
                    Ok((sha.to_string(), "v1.4.2".to_string()))
                );
            }
        }
    }
    // Idempotent; a later release moves every pin.
    assert!(pin_actions(&[sha, "v1.4.2", d]).status.success());
    assert_eq!(read_all(&dir), after);
    let next = "fedcba9876543210fedcba9876543210fedcba98";
    assert!(pin_actions(&[next, "v1.5.0", d]).status.success());
    let moved = read_all(&dir);
    assert!(moved.values().all(|t| !t.contains(sha)));
    assert_eq!(
        moved
            .values()
            .map(|t| t.matches(&format!("@{next} # v1.5.0")).count())
            .sum::<usize>(),
        ours
    );

    // Bad input: exit 2, nothing written.
    for (bad_sha, bad_version, why) in [
        ("0123456", "v1.0.0", "full 40-character"),
        (
            "0123456789ABCDEF0123456789ABCDEF01234567",
            "v1.0.0",
            "full 40-character",
        ),
        (
            "0123456789abcdef0123456789abcdef012345678",
            "v1.0.0",
            "full 40-character",
        ),
        ("v1", "v1.0.0", "full 40-character"),
        (
            "0000000000000000000000000000000000000000",
            "v1.0.0",
            "placeholder",
        ),
        (next, "1.0.0", "v1.2.3"),
        (next, "v1.0", "v1.2.3"),
        (next, "v1.0.0 # x", "v1.2.3"),
    ] {
        let out = pin_actions(&[bad_sha, bad_version, d]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad_sha} {bad_version}: {err}");
        assert!(err.contains(why), "{bad_sha} {bad_version}: {err}");
        assert_eq!(
            read_all(&dir),
            moved,
            "{bad_sha} {bad_version}: a file changed"
        );
    }

    // A reference in a form the script does not rewrite: refused, with file and line, and no
    // file is written (not even the ones checked before it).
    let odd = "jobs:\n  a:\n    steps:\n      - uses: \"gitops-actions/gitops-actions/actions/promote@v1\"\n";
    std::fs::write(dir.join("zz.yml"), odd).unwrap();
    let out = pin_actions(&[sha, "v1.4.2", d]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("zz.yml:4: a reference to our actions"),
        "{err}"
    );
    let mut want = moved.clone();
    want.insert("zz.yml".into(), odd.into());
    assert_eq!(read_all(&dir), want, "nothing may be written on a refusal");

    // Comments and look-alike repositories are left alone; a directory without any of our
    // references is refused (a release that pinned nothing must not pass).
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let text = "# uses: gitops-actions/gitops-actions/actions/promote@v1\njobs:\n  a:\n    steps:\n      - uses: gitops-actions/gitops-actions-fork/x@v1\n";
    std::fs::write(other.join("a.yml"), text).unwrap();
    let out = pin_actions(&[sha, "v1.4.2", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no reference to"));
    assert_eq!(std::fs::read_to_string(other.join("a.yml")).unwrap(), text);
}

/// Secrets a job that runs pull-request code may receive, and why each is acceptable. None may be
/// a write or admin credential; each must live in a GitHub environment with required reviewers
/// (the job names that environment), so no unreviewed code ever sees it.
const PR_JOB_SECRETS: &[(&str, &str)] = &[(
    "CORE_PLAN_GITHUB_TOKEN",
    "read-only (environments, variables, metadata: read) token for the github provider's refresh in \
     core.yml's plan; a secret of the `core-plan` environment, which has required reviewers",
)];

/// `permissions:` a pull-request job may hold with `write`: the one plan comment and the OIDC
/// token for the read-only plan role.
const PR_JOB_WRITES: &[&str] = &["pull-requests", "id-token"];

/// What a job that runs the head of a pull request from THIS repository (never a fork) may also
/// hold with `write`, from the environment it names: a preview's record tag, its Deployment.
const SAME_REPO_PR_JOB_WRITES: &[&str] = &["contents", "deployments"];

/// The conjuncts (top-level `&&` parts, outer `${{ }}` and parentheses removed) of an `if:`.
fn conjuncts(cond: &str) -> Vec<String> {
    let c = cond.trim();
    let c = c
        .strip_prefix("${{")
        .and_then(|c| c.strip_suffix("}}"))
        .unwrap_or(c);
    let (mut out, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    let b = c.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'&' if depth == 0 && b.get(i + 1) == Some(&b'&') => {
                out.push(cur.trim().to_string());
                cur.clear();
                i += 2;
                continue;
            }
            _ => {}
        }
        cur.push(b[i] as char);
        i += 1;
    }
    out.push(cur.trim().to_string());
    out
}

/// Whether a job's `if:` requires the pull request's head to be in this repository: one of its
/// conjuncts is that comparison (events without a pull request pass the second form).
fn job_requires_same_repository(job: &Value) -> bool {
    let cond = job.get("if").and_then(Value::as_str).unwrap_or("");
    conjuncts(cond).iter().any(|c| {
        c == "github.event.pull_request.head.repo.full_name == github.repository"
            || c == "(github.event.pull_request.head.repo.full_name || github.repository) == github.repository"
    })
}

/// Events that run code from a pull request's head.
const PR_EVENTS: &[&str] = &["pull_request", "pull_request_target"];

/// The events a workflow triggers on.
fn triggers(wf: &Value) -> BTreeSet<String> {
    match wf.get("on") {
        Some(Value::String(s)) => [s.clone()].into(),
        Some(Value::Sequence(v)) => v
            .iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect(),
        other => map_keys(other).into_iter().collect(),
    }
}

/// Whether a job's `if:` limits it to events that run no pull-request code (it names such an
/// event with `==`, e.g. `github.event_name == 'push'`).
fn job_excludes_pull_requests(job: &Value) -> bool {
    let cond = job.get("if").and_then(Value::as_str).unwrap_or("");
    let only = regex_lite::Regex::new(r"github\.event_name == '([a-z_]+)'").unwrap();
    let named: Vec<String> = only.captures_iter(cond).map(|c| c[1].to_string()).collect();
    !cond.contains("||")
        && !named.is_empty()
        && named.iter().all(|e| !PR_EVENTS.contains(&e.as_str()))
}

/// Problems of one workflow: every job that runs pull-request code must hold no write or admin
/// credential (a PR can change the code the job runs and exfiltrate anything it holds).
fn pr_credential_problems(file: &str, wf: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let on = triggers(wf);
    if on.contains("pull_request_target") {
        problems.push(format!("{file}: `pull_request_target` runs with the base repository's secrets; use `pull_request`"));
    }
    if !on.iter().any(|e| PR_EVENTS.contains(&e.as_str())) {
        return problems;
    }
    let secret = regex_lite::Regex::new(r"secrets\.([A-Za-z0-9_]+)|secrets\[").unwrap();
    if let Some(env) = wf.get("env") {
        let text = serde_yaml_ng::to_string(env).unwrap();
        if secret.is_match(&text) {
            problems.push(format!("{file}: a workflow-level `env:` hands a secret to every job, pull requests included"));
        }
    }
    for (name, job) in wf.get("jobs").and_then(Value::as_mapping).unwrap() {
        let name = name.as_str().unwrap();
        if job_excludes_pull_requests(job) {
            continue;
        }
        let at = format!("{file}: job `{name}` runs pull-request code");
        let text = serde_yaml_ng::to_string(job).unwrap();
        if text.contains("secrets: inherit") {
            problems.push(format!("{at}: `secrets: inherit` hands it every secret"));
        }
        for c in secret.captures_iter(&text) {
            match c.get(1).map(|m| m.as_str()) {
                Some("GITHUB_TOKEN") => {}
                Some(s) if PR_JOB_SECRETS.iter().any(|(n, _)| *n == s) => {
                    if job.get("environment").is_none() {
                        problems.push(format!("{at}: `{s}` must come from an environment with reviewers; the job names none"));
                    }
                }
                Some(s) => problems.push(format!(
                    "{at}: it must not receive the secret `{s}` (not a listed read-only secret)"
                )),
                None => problems.push(format!(
                    "{at}: `secrets[...]` indexing hides which secret it receives"
                )),
            }
        }
        match job.get("permissions") {
            Some(Value::Mapping(p)) => {
                for (k, v) in p {
                    let k = k.as_str().unwrap_or("");
                    let same_repo = job_requires_same_repository(job)
                        && job.get("environment").is_some()
                        && SAME_REPO_PR_JOB_WRITES.contains(&k);
                    if v.as_str() == Some("write") && !PR_JOB_WRITES.contains(&k) && !same_repo {
                        problems.push(format!("{at}: it must not hold `{k}: write`"));
                    }
                }
            }
            Some(Value::String(s)) if s == "read-all" => {}
            _ => problems.push(format!(
                "{at}: it must state least-privilege permissions (no write-all, no default)"
            )),
        }
    }
    problems
}

// No job that runs pull-request code gets a write or admin credential: no secret but the listed
// read-only ones (each from an environment with reviewers), no write permission but the plan
// comment and OIDC. The rule catches the shapes it is about (a synthetic workflow for each).
#[test]
fn e2e_templates_give_pull_request_jobs_no_privileged_credentials() {
    let mut problems = Vec::new();
    for file in TEMPLATES {
        let (_, wf) = load(file);
        problems.extend(pr_credential_problems(file, &wf));
    }
    assert!(
        problems.is_empty(),
        "privileged credentials in pull-request jobs:\n{}",
        problems.join("\n")
    );

    let bad = |yaml: &str| {
        let wf: Value = serde_yaml_ng::from_str(yaml).unwrap();
        pr_credential_problems("synthetic.yml", &wf)
    };
    for (yaml, want) in [
        ("on: pull_request\njobs:\n  p:\n    permissions: {}\n    env:\n      T: ${{ secrets.CORE_GITHUB_TOKEN }}\n", "secret `CORE_GITHUB_TOKEN`"),
        ("on: [push, pull_request]\njobs:\n  p:\n    permissions:\n      contents: write\n", "`contents: write`"),
        ("on:\n  pull_request_target:\njobs:\n  p:\n    permissions: {}\n", "pull_request_target"),
        ("on: pull_request\njobs:\n  p:\n    permissions: {}\n    env:\n      T: ${{ secrets.CORE_PLAN_GITHUB_TOKEN }}\n", "must come from an environment"),
        ("on: pull_request\njobs:\n  p:\n    uses: ./x.yml\n    secrets: inherit\n    permissions: {}\n", "secrets: inherit"),
        ("on: pull_request\njobs:\n  p:\n    permissions: write-all\n", "least-privilege"),
        ("on: pull_request\nenv:\n  T: ${{ secrets.X }}\njobs:\n  p:\n    permissions: {}\n", "workflow-level"),
        ("on: [push, pull_request]\njobs:\n  p:\n    if: github.event_name == 'push' || true\n    permissions: {}\n    env:\n      T: ${{ secrets.X }}\n", "secret `X`"),
    ] {
        let p = bad(yaml);
        assert!(p.iter().any(|m| m.contains(want)), "{yaml}: expected {want:?} in {p:?}");
    }
    // A same-repository pull-request job (a preview) may hold the preview's writes, only from
    // an environment and only when its condition keeps forks out.
    assert!(bad("on: pull_request\njobs:\n  a:\n    if: ${{ github.event.pull_request.head.repo.full_name == github.repository }}\n    environment: dev\n    permissions:\n      contents: write\n").is_empty());
    for yaml in [
        "on: pull_request\njobs:\n  a:\n    environment: dev\n    permissions:\n      contents: write\n",
        "on: pull_request\njobs:\n  a:\n    if: ${{ github.event.pull_request.head.repo.full_name == github.repository || true }}\n    environment: dev\n    permissions:\n      contents: write\n",
        "on: pull_request\njobs:\n  a:\n    if: ${{ github.event.pull_request.head.repo.full_name == github.repository }}\n    permissions:\n      contents: write\n",
        "on: pull_request\njobs:\n  a:\n    if: ${{ github.event.pull_request.head.repo.full_name == github.repository }}\n    environment: dev\n    permissions:\n      actions: write\n",
    ] {
        assert!(!bad(yaml).is_empty(), "{yaml}");
    }
    // A push-only job may hold what it needs.
    assert!(bad("on: [push, pull_request]\njobs:\n  a:\n    if: github.event_name == 'push'\n    permissions:\n      contents: write\n    env:\n      T: ${{ secrets.CORE_GITHUB_TOKEN }}\n").is_empty());
}

/// The templates copied where a team puts them: `<app>/.github/workflows/`.
fn templates_as_app_repository() -> tempfile::TempDir {
    let app = tempfile::tempdir().unwrap();
    let wf = app.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    for f in TEMPLATES {
        std::fs::copy(templates_dir().join(f), wf.join(f)).unwrap();
    }
    app
}

/// zizmor, offline and pedantic, without any configuration file (an app repository has none of
/// ours), failing on files it cannot parse: the combined report and whether it passed.
fn zizmor_app_repository(app: &Path) -> (bool, String) {
    let out = Command::new(tool("zizmor"))
        .args([
            "--offline",
            "--persona=pedantic",
            "--no-progress",
            "--no-config",
            "--strict-collection",
        ])
        .arg(app)
        .env("NO_COLOR", "1")
        .output()
        .expect("zizmor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("No findings"), text)
}

// zizmor, offline and pedantic, finds nothing in the templates as they sit in an app repository
// (`.github/workflows/`, no zizmor configuration: every action, ours included, must be pinned by
// full SHA); the workflow schema accepts every template (zizmor skips schema-invalid files
// unless told otherwise, so the two go together). A template with our movable `@v1` pin is
// caught, so the check cannot pass by auditing nothing.
#[test]
fn e2e_templates_are_zizmor_pedantic_clean_and_schema_valid() {
    let app = templates_as_app_repository();
    let (ok, text) = zizmor_app_repository(app.path());
    assert!(ok, "zizmor found problems:\n{text}");
    for f in TEMPLATES {
        assert!(
            text.contains(&format!(
                "completed {}",
                app.path().join(".github/workflows").join(f).display()
            )),
            "zizmor did not audit {f}:\n{text}"
        );
    }
    let plan = app.path().join(".github/workflows/plan.yml");
    let moved = regex_lite::Regex::new(r"(actions/oidc-login)@[0-9a-f]{40} # v[0-9.]+")
        .unwrap()
        .replace(&std::fs::read_to_string(&plan).unwrap(), "${1}@v1")
        .into_owned();
    assert!(moved.contains("actions/oidc-login@v1"));
    std::fs::write(&plan, moved).unwrap();
    let (ok, text) = zizmor_app_repository(app.path());
    assert!(
        !ok && text.contains("unpinned-uses"),
        "zizmor missed `@v1`:\n{text}"
    );

    for f in TEMPLATES.iter().map(|f| templates_dir().join(f)) {
        let out = Command::new(tool("action-validator"))
            .arg(&f)
            .output()
            .expect("action-validator");
        assert!(
            out.status.success(),
            "{} is not a valid workflow:\n{}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn checkov() -> PathBuf {
    let p = support::standins_dir()
        .join("checkov")
        .join("bin")
        .join("checkov");
    assert!(
        p.exists(),
        "checkov is not installed at {}: run ./scripts/install-standins",
        p.display()
    );
    p
}

/// Every `.tf` file under `dir`, recursively.
pub(crate) fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            tf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "tf") {
            out.push(p);
        }
    }
}

// The Terraform projects parse and are formatted, checkov passes with no failed check, and every
// check we skip carries a written reason next to the resource.
#[test]
fn e2e_terraform_is_formatted_and_checkov_clean_with_reasons() {
    let tf = root().join("terraform");
    let mut files = Vec::new();
    tf_files(&tf, &mut files);
    assert!(files.len() >= 8, "terraform/ is incomplete: {files:?}");
    let skip = regex_lite::Regex::new(r"#\s*checkov:skip=([A-Z0-9_]+)(:?)(.*)").unwrap();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for c in skip.captures_iter(&text) {
            assert!(
                &c[2] == ":" && c[3].trim().len() >= 20,
                "{}: skipped check {} needs a written reason",
                f.display(),
                &c[1]
            );
        }
    }
    if support::has_tool("terraform") {
        let out = Command::new("terraform")
            .args(["fmt", "-check", "-recursive", "-diff"])
            .arg(&tf)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform fmt -check failed (it also fails on HCL that does not parse):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        skip_loudly(
            "terraform fmt -check of terraform/",
            "terraform is not installed",
        );
    }
    let out = Command::new(checkov())
        .args(["-d"])
        .arg(&tf)
        .args([
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output()
        .expect("checkov");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov gave no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let summary = &report["summary"];
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["file_path"]))
        .collect();
    assert!(
        summary["parsing_errors"].as_u64() == Some(0),
        "checkov could not parse: {summary}"
    );
    assert!(summary["passed"].as_u64().unwrap_or(0) > 100, "{summary}");
    assert!(
        failed.is_empty(),
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
}

/// The text of the top-level HCL block that starts with `header` (e.g.
/// `resource "aws_iam_role" "plan"`) in terraform/core or its modules, braces balanced.
fn core_block(header: &str) -> String {
    let mut files = Vec::new();
    tf_files(&root().join("terraform/core"), &mut files);
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let Some(start) = text.find(&format!("{header} {{")) else {
            continue;
        };
        let mut depth = 0usize;
        for (i, ch) in text[start..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return text[start..start + i + 1].to_string();
                    }
                }
                _ => {}
            }
        }
    }
    panic!("terraform/core has no block `{header}`");
}

/// The statement block with `sid = "<sid>"` inside a policy document's text.
fn statement<'a>(doc: &'a str, sid: &str) -> &'a str {
    let at = doc
        .find(&format!("sid       = \"{sid}\""))
        .or_else(|| doc.find(&format!("sid = \"{sid}\"")))
        .unwrap_or_else(|| panic!("no statement {sid} in:\n{doc}"));
    let start = doc[..at].rfind("statement {").unwrap();
    let end = doc[at..].find("\n  }\n").map_or(doc.len(), |e| at + e);
    &doc[start..end]
}

// The `<env>-plan` environments and the plan roles are restricted (design risk of #21): the
// environments admit branches only (deployment-branch policy, patterns per environment); the plan
// role trusts only pull-request runs of the plan workflow; it may read the state object and lock
// file and decrypt them only through S3, and never write, delete, encrypt or call KMS directly.
#[test]
fn e2e_terraform_plan_environments_and_roles_are_restricted() {
    let env = core_block(r#"resource "github_repository_environment" "plan""#);
    for want in [
        "deployment_branch_policy {",
        "protected_branches     = false",
        "custom_branch_policies = true",
    ] {
        assert!(
            env.contains(want),
            "plan environments need `{want}`:\n{env}"
        );
    }
    let policy = core_block(r#"resource "github_repository_environment_deployment_policy" "plan""#);
    assert!(
        policy.contains("github_repository_environment.plan[each.value.env].environment")
            && policy.contains("var.repositories[e.repository].plan_branch_patterns"),
        "{policy}"
    );

    let trust = core_block(r#"data "aws_iam_policy_document" "trust""#);
    assert!(
        trust.contains("ref              = [var.environments[each.value.env].plan_ref, var.environments[each.value.env].drift_ref]")
            && trust.contains("job_workflow_ref = [var.environments[each.value.env].plan_job_workflow_ref, var.environments[each.value.env].drift_job_workflow_ref]")
            && trust.contains("values   = condition.value"),
        "plan roles must require the pull-request ref and the plan workflow (or drift.yml from its branch):\n{trust}"
    );
    // The plan jobs of deploy.yml/rollback.yml (#16): the plan role, on the environment's own
    // branch only, for those workflows only.
    let squeeze = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let trust_words = squeeze(&trust);
    for want in [
        r#"sid = "GitHubOidcPlanBeforeApply""#,
        r#"variable = "${local.oidc_host}:sub" values = [each.value.sub]"#,
        r#"variable = "${local.oidc_host}:ref" values = [var.environments[each.value.env].deploy_plan_ref]"#,
        r#"variable = "${local.oidc_host}:job_workflow_ref" values = var.environments[each.value.env].deploy_plan_job_workflow_refs"#,
    ] {
        assert!(
            trust_words.contains(want),
            "the plan-before-apply trust needs `{want}`:\n{trust}"
        );
    }
    // ... whose values the root computes per repository environment: its own branch, and the
    // repository's deploy workflows on that branch.
    let root_locals =
        squeeze(&std::fs::read_to_string(root().join("terraform/core/locals.tf")).unwrap());
    for want in [
        r#"deploy_plan_ref = "refs/heads/${e.branch}""#,
        r#"deploy_plan_job_workflow_refs = [for w in var.repositories[e.repository].deploy_workflows : "${local.repos[e.repository].full_name}/${w}@refs/heads/${e.branch}"]"#,
    ] {
        assert!(root_locals.contains(want), "locals.tf needs `{want}`");
    }
    // Each trusted workflow carries its own ref in `job_workflow_ref`: plan.yml only from
    // pull-request merges, drift.yml only from its branch (per repository).
    for want in [
        r#"drift_job_workflow_ref = "${var.github_owner}/${r}/${c.drift_workflow}@refs/heads/${c.drift_branch}""#,
        r#"drift_ref = "refs/heads/${c.drift_branch}""#,
    ] {
        assert!(root_locals.contains(want), "locals.tf needs `{want}`");
    }
    let locals = std::fs::read_to_string(root().join("terraform/core/locals.tf")).unwrap();
    assert!(
        locals.contains(r#"plan_ref              = "refs/pull/*/merge""#),
        "{locals}"
    );
    assert!(
        locals.contains(r#"plan_job_workflow_ref = "${var.github_owner}/${r}/${c.plan_workflow}@refs/pull/*/merge""#),
        "{locals}"
    );

    let plan = core_block(r#"data "aws_iam_policy_document" "plan""#);
    // The actions it is granted, every one of them (comments aside).
    let granted: BTreeSet<String> = regex_lite::Regex::new(r"(?m)^\s*actions\s*=\s*\[([^\]]*)\]")
        .unwrap()
        .captures_iter(&plan)
        .flat_map(|c| {
            c[1].split(',')
                .map(|a| a.trim().trim_matches('"').to_string())
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let want: BTreeSet<String> = [
        "s3:ListBucket",
        "s3:GetObject",
        "kms:Decrypt",
        "ecr:DescribeImages",
        "ecr:DescribeRepositories",
    ]
    .map(String::from)
    .into();
    assert_eq!(granted, want, "the plan role's actions:\n{plan}");
    assert!(
        !plan.contains("\"*\""),
        "no wildcard resource or value:\n{plan}"
    );
    let read = statement(&plan, "StateRead");
    assert!(
        read.contains(r#"actions   = ["s3:GetObject"]"#)
            && read.contains("resources = local.state_objects[each.key]"),
        "state read is the repository's state objects and lock files only:\n{read}"
    );
    // ... which are the objects under the repository's own state key prefixes in its bucket, or
    // with explicit stacks exactly their keys and lock files (evaluated in
    // e2e_terraform_state_keys_per_stack_*).
    let iam =
        std::fs::read_to_string(root().join("terraform/core/modules/environment-account/iam.tf"))
            .unwrap();
    assert!(
        iam.contains(r#"state_objects = { for k, e in var.environments : k => e.state_keys == null ? [for p in e.state_prefixes : "${aws_s3_bucket.state[e.name].arn}/${p}*"] : flatten([for key in e.state_keys : ["${aws_s3_bucket.state[e.name].arn}/${key}", "${aws_s3_bucket.state[e.name].arn}/${key}.tflock"]]) }"#),
        "{iam}"
    );
    let decrypt = statement(&plan, "StateDecrypt");
    for want in [
        r#"actions   = ["kms:Decrypt"]"#,
        r#"variable = "kms:ViaService""#,
        r#"values   = ["s3.${var.aws_region}.amazonaws.com"]"#,
        r#"variable = "kms:EncryptionContext:aws:s3:arn""#,
    ] {
        assert!(decrypt.contains(want), "decrypt needs `{want}`:\n{decrypt}");
    }
    let list = statement(&plan, "StateList");
    assert!(
        list.contains(r#"test     = "StringLike""#)
            && list.contains(r#"variable = "s3:prefix""#)
            && list.contains(r#"values   = concat(local.state_listing[each.key], ["env:/"])"#),
        "{list}"
    );
}

/// `scripts/demo --no-install --quiet <extra> --bin-dir <the test build> --summary <summary>`,
/// hermetic: only what the demo needs (home and temp in `tmp`), no ambient GITHUB_*/AWS_*/ACTIONS_*.
fn demo_command(tmp: &Path, summary: &Path, extra: &[&str]) -> Command {
    let bin_dir = support::bin("oidc-login").parent().unwrap().to_path_buf();
    let mut c = Command::new(root().join("scripts/demo"));
    c.args(["--no-install", "--quiet"])
        .args(extra)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--summary")
        .arg(summary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", tmp)
        .env("TMPDIR", tmp)
        .env("LANG", "C.UTF-8")
        .env("GITOPS_STANDINS_VENV", support::standins_dir())
        .stdin(std::process::Stdio::null());
    c
}

// The README's main command, inside the test suite: `scripts/demo` with this test run's binaries
// and the installed stand-ins runs the REAL templates with act: dev -> staging -> prod twice (a
// good change, then a bad one, which fails prod's verification and is rolled back to `previous`
// automatically), holds prod, and a later deploy of prod
// is refused. The final tags are read from the git server by the demo and asserted here.
#[test]
fn e2e_demo_runs_the_whole_flow_and_leaves_the_expected_tags() {
    if !support::has_tool("terraform") {
        skip_loudly(
            "the end-to-end flow (scripts/demo)",
            "terraform is not installed, and the flow applies a real Terraform stack",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.txt");
    // With the optional preview step (#18, scripts/demo-lib/preview.sh): README names it; and
    // the optional drift scenario (#17, scripts/demo-lib/drift.sh), too slow for the default run.
    let mut c = demo_command(tmp.path(), &summary, &["--previews", "--drift"]);
    if let Some(m) = std::env::var_os("GITOPS_TF_PLUGINS") {
        c.env("GITOPS_TF_PLUGINS", m);
    }
    let out = c.output().expect("scripts/demo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code == 3 && stderr.contains("BLOCKED") && stderr.contains("still a skeleton") {
        let line = stderr
            .lines()
            .find(|l| l.contains("BLOCKED"))
            .unwrap_or_default()
            .to_string();
        skip_loudly("the rest of the end-to-end flow", &line);
        return;
    }
    assert_eq!(code, 0, "scripts/demo failed:\n{stderr}");
    let kv: BTreeMap<String, String> = std::fs::read_to_string(&summary)
        .expect("the demo writes its summary")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (good, bad) = (&kv["good"], &kv["bad"]);
    assert_ne!(good, bad);
    // dev and staging run the bad change; prod was rolled back to the good one and is held.
    assert_eq!(&kv["current.dev"], bad, "{kv:?}");
    assert_eq!(&kv["current.staging"], bad, "{kv:?}");
    assert_eq!(&kv["current.prod"], good, "{kv:?}");
    assert_eq!(kv["held.prod"], "true", "{kv:?}");
    // Every deploy left one history tag: dev and staging 2 each, prod 2 deploys + 1 rollback.
    assert_eq!(kv["history.dev"], "2", "{kv:?}");
    assert_eq!(kv["history.staging"], "2", "{kv:?}");
    assert_eq!(kv["history.prod"], "3", "{kv:?}");
    assert!(kv["prod.image"].contains("@sha256:"), "{kv:?}");
    assert_eq!(kv["refused.held"], "true", "{kv:?}");
    // #19: prod's bad deploy failed its verification and was rolled back automatically; the
    // rollback passed its verification.
    assert_eq!(kv["verified.bad"], "failed", "{kv:?}");
    assert_eq!(kv["verified.rollback"], "passed", "{kv:?}");
    // Stacks (#14, demo/platform): the partly failed deploy left current at c1 with only
    // network recorded at its commit; the fix reached staging; the rollback took dev back to
    // c1 across the three stacks.
    assert_eq!(kv["stacks.failed.current"], kv["stacks.c1"], "{kv:?}");
    assert_eq!(kv["stacks.failed.applied"], "network", "{kv:?}");
    assert_eq!(kv["stacks.current.staging"], kv["stacks.c3"], "{kv:?}");
    assert_eq!(kv["stacks.current.dev"], kv["stacks.c1"], "{kv:?}");
    assert_eq!(kv["stacks.rolled_back"], "dns network service", "{kv:?}");
    // The timeline names every step.
    for step in [
        "pull request -> dev: plan",
        "merged into dev",
        "deploy",
        "auto-rollback",
        "promote dev -> staging",
        "promote staging -> prod",
        "rollback prod -> previous",
        "deploy prod while held",
        "stacks: first deploy",
        "stacks: dns only",
        "stacks: module; svc fails",
        "stacks: fix + new change",
        "stacks: rollback dev",
        // The preview step: created, updated, refused for prod, destroyed.
        "pull request -> preview",
        "second push -> preview",
        "forged preview of prod",
        "pull request closed",
        // The sweep: two orphans and a broken preview in one scheduled run, then the retry.
        "2 orphans + 1 broken",
        "sweep (schedule)",
        "next sweep",
    ] {
        assert!(stderr.contains(step), "timeline lacks `{step}`:\n{stderr}");
    }
    // An account per environment (terraform/core's layout): every deploy line names the account
    // whose bucket holds that environment's state, dev and staging one account, prod another.
    for (env, account) in [
        ("dev", "111111111111"),
        ("staging", "111111111111"),
        ("prod", "222222222222"),
    ] {
        let deploys: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                let mut w = l.split_whitespace().skip(1);
                !l.contains("refused")
                    && w.next() == Some("deploy")
                    && w.find(|x| !x.starts_with('(')) == Some(env)
            })
            .collect();
        assert!(deploys.len() >= 2, "no deploy lines of {env}:\n{stderr}");
        for l in deploys {
            assert!(l.ends_with(&format!("account {account}")), "{l}");
        }
    }
    // The preview step checked its own facts (state under env:/pr-<n>/ in moto, the record,
    // the Deployment and comment, the refusal, the state gone, deploy/dev/current untouched)
    // and says so only when every one held.
    assert_eq!(kv["previews"], "ok", "{kv:?}");
    // Drift (#17, demo/ops): with the AWS provider's offline mirror, prod's parameter was changed
    // behind Terraform's back, the drift run opened exactly one issue (read from the GitHub
    // fake's state) naming its tags and value, and after the re-apply the next drift run closed
    // that same issue. Without the mirror the demo must say so, never pass silently.
    let mirror = std::env::var_os("GITOPS_TF_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    if mirror.join("registry.terraform.io/hashicorp/aws").is_dir() {
        assert_eq!(
            kv.get("drift").map(String::as_str),
            Some("ran"),
            "the AWS provider mirror is at {}, but the drift scenario did not run: {kv:?}",
            mirror.display()
        );
        assert_eq!(kv["drift.issues"], "1", "one issue for prod/params: {kv:?}");
        assert_eq!(kv["drift.issue.opened"], "open", "{kv:?}");
        assert_eq!(kv["drift.issue.updated"], "in-place", "{kv:?}");
        assert_eq!(kv["drift.issue.closed"], "closed", "{kv:?}");
        assert_eq!(kv["drift.attributes"], "tags,value", "{kv:?}");
        assert_eq!(kv["drift.found"], "changed by hand|someone-else", "{kv:?}");
        assert_eq!(kv["drift.current.prod"], kv["drift.c1"], "{kv:?}");
        let issue = format!("issue #{} ", kv["drift.issue"]);
        for step in [
            "drift: deploy prod",
            "drift: changed by hand",
            "drift: drift run again",
            "drift: re-apply prod",
        ] {
            assert!(stderr.contains(step), "timeline lacks `{step}`:\n{stderr}");
        }
        for what in ["opened", "closed"] {
            assert!(
                stderr.lines().any(
                    |l| l.contains("drift: drift run") && l.contains(&format!("{issue}{what}"))
                ),
                "timeline lacks the drift run that {what} {issue}:\n{stderr}"
            );
        }
    } else {
        assert_eq!(
            kv.get("drift").map(String::as_str),
            Some("skipped"),
            "{kv:?}"
        );
        assert!(
            stderr.contains("drift scenario SKIPPED: no AWS provider mirror at"),
            "{stderr}"
        );
        skip_loudly(
            "the drift scenario of the end-to-end flow",
            &format!(
                "no AWS provider mirror at {} (GITOPS_TF_PLUGINS)",
                mirror.display()
            ),
        );
    }
}

// `--drift` without the AWS provider's offline mirror: the demo says `drift scenario SKIPPED`
// and writes `drift=skipped`, never a silent pass (only the drift part runs, on the stand-ins).
#[test]
fn e2e_demo_says_loudly_that_the_drift_scenario_was_skipped_without_the_provider_mirror() {
    if !support::has_tool("terraform") {
        skip_loudly("the demo's drift skip", "terraform is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.txt");
    let out = demo_command(tmp.path(), &summary, &["--drift"])
        .env("GITOPS_DEMO_DRIFT_ONLY", "1")
        .env("GITOPS_TF_PLUGINS", tmp.path().join("no-mirror"))
        .output()
        .expect("scripts/demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("drift scenario SKIPPED: no AWS provider mirror at"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.lines().any(|l| l == "drift=skipped"), "{text}");
    assert!(!text.contains("drift=ran"), "{text}");
}

// Where terraform is absent the demo says so and stops before starting anything (exit 3); an
// unknown flag is a usage error (exit 2). Neither leaves a work directory behind.
#[test]
fn e2e_demo_stops_honestly_without_terraform_and_refuses_unknown_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |path: &str, args: &[&str]| {
        Command::new(root().join("scripts/demo"))
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", tmp.path())
            .env("TMPDIR", tmp.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // A PATH with the basic tools but without terraform.
    let bare = tmp.path().join("bin");
    std::fs::create_dir_all(&bare).unwrap();
    for t in [
        "bash", "env", "dirname", "date", "sed", "printf", "cat", "mktemp", "rm",
    ] {
        if let Some(p) = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(t))
            .find(|p| p.exists())
        {
            std::os::unix::fs::symlink(p, bare.join(t)).unwrap();
        }
    }
    let out = run(bare.to_str().unwrap(), &["--no-install"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("terraform is not installed"), "{err}");
    assert!(err.contains("nothing was started"), "{err}");
    let out = run(&std::env::var("PATH").unwrap_or_default(), &["--bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown argument"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("gitops-demo."))
        .collect();
    assert!(left.is_empty(), "the demo left a work directory behind");
}

/// Problems of preview.yml's fork rule: no `pull_request_target`; every job that holds a
/// credential (OIDC, a write) or checks out the pull request's head keeps forks out in its own
/// condition; the job that serves every pull request (forks too) holds no OIDC token, names no
/// environment and checks out the base branch only.
fn preview_fork_problems(wf: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if triggers(wf).contains("pull_request_target") {
        p.push("preview.yml must not run on pull_request_target".to_string());
    }
    for (name, job) in wf.get("jobs").and_then(Value::as_mapping).unwrap() {
        let name = name.as_str().unwrap();
        let text = serde_yaml_ng::to_string(job).unwrap();
        let writes = job
            .get("permissions")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter(|(k, v)| {
                        v.as_str() == Some("write") && k.as_str() != Some("pull-requests")
                    })
                    .count()
            })
            .unwrap_or(0);
        let head = text.contains("github.event.pull_request.head.sha");
        let guarded = job_requires_same_repository(job);
        if (writes > 0 || head || job.get("environment").is_some()) && !guarded {
            p.push(format!(
                "job `{name}` holds credentials or runs the pull request's head without keeping forks out"
            ));
        }
        if !guarded && text.contains("github.event.pull_request.head.sha") {
            p.push(format!("job `{name}` checks out a fork's head"));
        }
    }
    p
}

// The fork rule and the concurrency rule of preview.yml: forks get no credentials (and the
// rule catches a job that would give them some); a newer push cancels an older preview plan but
// never a running apply or destroy (one non-cancelling group per pull request, shared by apply
// and destroy); every binary that names the environment gets the workspace.
#[test]
fn e2e_preview_template_keeps_forks_out_and_never_cancels_an_apply() {
    let (text, wf) = load("preview.yml");
    let problems = preview_fork_problems(&wf);
    assert!(problems.is_empty(), "fork rule:\n{}", problems.join("\n"));
    let jobs = wf.get("jobs").unwrap();
    // The check job serves forks too: no OIDC, no environment, the base branch's files only.
    let check = &jobs["check"];
    assert!(check.get("environment").is_none());
    assert!(check["permissions"].get("id-token").is_none());
    assert!(serde_yaml_ng::to_string(check)
        .unwrap()
        .contains("github.base_ref"));
    // The rule is not vacuous: a preview plan job without the same-repository condition is caught.
    let mut broken = wf.clone();
    broken["jobs"]["plan"]["if"] = Value::from("${{ needs.check.outputs.preview == 'true' }}");
    assert!(
        preview_fork_problems(&broken)
            .iter()
            .any(|m| m.contains("`plan`")),
        "{:?}",
        preview_fork_problems(&broken)
    );
    let mut target: Value = wf.clone();
    target["on"]["pull_request_target"] = Value::Null;
    assert!(!preview_fork_problems(&target).is_empty());
    // ... and a destroy job (it holds dev-preview's credential) without it is caught too.
    let mut broken = wf.clone();
    broken["jobs"]["destroy"]["if"] = Value::from("${{ needs.targets.outputs.workspaces != '' }}");
    assert!(preview_fork_problems(&broken)
        .iter()
        .any(|m| m.contains("`destroy`")));
    // The binary decides (never a fork): preview-check gets the head's repository, and the
    // reason is the job's output and summary (the fork's token may not comment).
    let check_step = uses_in("preview.yml", &wf)
        .into_iter()
        .find(|u| u.job == "check" && u.step_id.as_deref() == Some("check"))
        .expect("the check job's preview-check step");
    assert_eq!(check_step.with["command"].as_str(), Some("preview-check"));
    assert_eq!(
        check_step.with["head-repository"].as_str(),
        Some("${{ github.event.pull_request.head.repo.full_name }}")
    );

    // Concurrency: no workflow-level group (it would cancel applies); the plan cancels, the
    // apply and destroy never do, and they share one group per pull request.
    assert!(
        wf.get("concurrency").is_none(),
        "no workflow-level concurrency"
    );
    let conc = |job: &str| {
        let c = &jobs[job]["concurrency"];
        (
            c["group"].as_str().unwrap().to_string(),
            c["cancel-in-progress"].as_bool(),
        )
    };
    let (plan_group, plan_cancel) = conc("plan");
    assert_eq!(plan_cancel, Some(true));
    assert_eq!(
        plan_group,
        "gitops-preview-plan-pr-${{ github.event.pull_request.number }}"
    );
    assert!(!serde_yaml_ng::to_string(&jobs["plan"])
        .unwrap()
        .contains("terraform apply"));
    let (apply_group, apply_cancel) = conc("apply");
    let (destroy_group, destroy_cancel) = conc("destroy");
    assert_eq!((apply_cancel, destroy_cancel), (Some(false), Some(false)));
    assert_eq!(
        apply_group,
        "gitops-preview-pr-${{ github.event.pull_request.number }}"
    );
    // For a closed pull request the destroy's group IS the apply's (`pr-<n>`); the sweep has
    // its own (`gitops-preview-pr-sweep`, no pull request number there).
    assert_eq!(destroy_group, apply_group.replace(" }}", " || 'sweep' }}"));
    assert_ne!(plan_group, apply_group);

    // The GitHub environments (#18): every job that holds a credential runs in `dev-preview`
    // (its branch policy admits pull-request heads; dev's own admits only dev), with dev's
    // PREVIEW role, never dev's deploy role; the jobs that serve forks or only list name none.
    for (job, env) in [
        ("check", None),
        ("plan", Some("dev-preview")),
        ("apply", Some("dev-preview")),
        ("targets", None),
        ("destroy", Some("dev-preview")),
    ] {
        assert_eq!(
            jobs[job].get("environment").and_then(Value::as_str),
            env,
            "job `{job}`'s environment"
        );
    }
    assert_eq!(
        wf["jobs"].as_mapping().unwrap().len(),
        5,
        "a new job must be added to the environment table above"
    );
    assert!(
        !text.contains("AWS_DEPLOY_ROLE_ARN") && !text.contains("AWS_PLAN_ROLE_ARN"),
        "preview.yml names only the preview role"
    );
    for u in uses_in("preview.yml", &wf) {
        if u.uses.contains("/actions/oidc-login@") {
            assert_eq!(
                u.with["role-to-assume"].as_str(),
                Some("${{ vars.AWS_PREVIEW_ROLE_ARN }}"),
                "job `{}`",
                u.job
            );
        }
    }
    let destroy = serde_yaml_ng::to_string(&jobs["destroy"]).unwrap();
    assert!(
        destroy.contains("ROLE_ARN: ${{ vars.AWS_PREVIEW_ROLE_ARN }}"),
        "{destroy}"
    );
    // Terraform never reads the default workspace's state (the preview role may not): the
    // workspace is selected by TF_WORKSPACE from init on, in every job that runs terraform.
    for job in ["plan", "apply"] {
        assert_eq!(
            jobs[job]["env"]["TF_WORKSPACE"].as_str(),
            Some("pr-${{ github.event.pull_request.number }}"),
            "job `{job}`"
        );
    }
    assert!(
        destroy.contains(r#"export TF_WORKSPACE="$ws""#),
        "{destroy}"
    );
    // A new workspace is created through a scratch root whose state key is the workspace's
    // key (a plain `init` would read the default workspace's state), and only when that state
    // holds nothing, so the empty apply there can never destroy anything.
    for job in ["plan", "apply", "destroy"] {
        let t = serde_yaml_ng::to_string(&jobs[job]).unwrap();
        assert!(
            t.contains("/${STATE_KEY}\"")
                && t.contains("-backend-config=\"key=${WORKSPACE_KEY_PREFIX}/")
                && t.contains("show -json)")
                && t.contains(r#"!= *'"values"'* ]]; then"#),
            "job `{job}` must create a new workspace through the scratch root, guarded:\n{t}"
        );
    }
    assert!(
        !text.contains("terraform workspace select") && !destroy.contains("workspace select"),
        "no workspace switch through the default workspace"
    );
    // The sweep destroys EVERY listed preview in one run: one job loops over the list, one
    // failure does not stop the others, and each preview is gated and closed on its own.
    assert_eq!(
        jobs["targets"]["outputs"]["workspaces"].as_str(),
        Some("${{ steps.closed.outputs.workspaces || steps.sweep.outputs.workspaces }}")
    );
    for want in [
        "WORKSPACES: ${{ needs.targets.outputs.workspaces }}",
        "for ws in $list; do",
        "oidc-login --role-to-assume",
        "--workspace \"$ws\"",
        "plan-gate --plan",
        "tag-deploy preview-close --environment dev",
        "terraform -chdir=\"$TF_DIR\" workspace delete",
        "GITHUB_STEP_SUMMARY",
        "exit \"$worst\"",
    ] {
        assert!(
            destroy.contains(want),
            "the destroy loop needs `{want}`:\n{destroy}"
        );
    }
    assert!(
        !destroy.contains("set -e") && destroy.contains("set +e -uo pipefail"),
        "one failure must not end the loop"
    );

    // Every step of ours that names the environment passes the workspace; the preview is never
    // recorded with `record` (that would move deploy/dev/current).
    for u in uses_in("preview.yml", &wf) {
        let Some(rest) = u.uses.strip_prefix(OUR_PREFIX) else {
            continue;
        };
        let cmd = u.with.get("command").and_then(Value::as_str).unwrap_or("");
        // The sweep looks at every preview: it takes no single workspace.
        if u.with.contains_key("environment") && cmd != "preview-sweep" {
            assert!(
                u.with.contains_key("workspace"),
                "job `{}`: {rest} names the environment without the workspace",
                u.job
            );
        }
        assert!(
            !matches!(cmd, "record" | "start" | "fail"),
            "preview.yml must not use tag-deploy {cmd}"
        );
    }
    assert!(
        text.contains("transient"),
        "the header says the Deployment is transient"
    );
}

/// IAM's resource wildcards: `*` any run of characters (`/` included), `?` one character.
fn iam_match(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[test]
fn iam_wildcards_match_like_iam() {
    for (p, s, want) in [
        (
            "arn:b/env:/pr-*/app/*",
            "arn:b/env:/pr-4/app/dev/terraform.tfstate",
            true,
        ),
        (
            "arn:b/env:/pr-*/app/*",
            "arn:b/app/dev/terraform.tfstate",
            false,
        ),
        (
            "arn:b/app/*",
            "arn:b/env:/pr-4/app/dev/terraform.tfstate",
            false,
        ),
        (
            "arn:b/app/*.tflock",
            "arn:b/app/dev/terraform.tfstate.tflock",
            true,
        ),
        (
            "arn:b/app/*.tflock",
            "arn:b/app/dev/terraform.tfstate",
            false,
        ),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*", "", true),
    ] {
        assert_eq!(iam_match(p, s), want, "{p} vs {s}");
    }
}

/// The account module's first `locals` block (iam.tf: the roles and the state keys each kind of
/// role may use), evaluated by `terraform apply` for `environments` (HCL), with the state bucket
/// of an environment `<name>` standing in as `arn:aws:s3:::bucket-<name>`. `None` without
/// terraform.
fn evaluate_iam_locals(environments: &str) -> Option<serde_json::Value> {
    if !support::has_tool("terraform") {
        skip_loudly(
            "evaluating the roles' state keys with terraform",
            "terraform is not installed (the text checks still run)",
        );
        return None;
    }
    let module = root().join("terraform/core/modules/environment-account");
    let iam = std::fs::read_to_string(module.join("iam.tf")).unwrap();
    let start = iam.find("\nlocals {").expect("iam.tf has a locals block") + 1;
    let mut depth = 0usize;
    let mut end = start;
    for (i, ch) in iam[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let bucket = "aws_s3_bucket.state[e.name].arn";
    let locals = &iam[start..end];
    assert!(locals.contains(bucket), "{locals}");
    let locals = locals.replace(bucket, "\"arn:aws:s3:::bucket-${e.name}\"");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(module.join("variables.tf"), dir.path().join("variables.tf")).unwrap();
    std::fs::write(
        dir.path().join("locals.tf"),
        format!(
            "{locals}\n\
             output \"roles\" {{ value = local.roles }}\n\
             output \"state_objects\" {{ value = local.state_objects }}\n\
             output \"state_locks\" {{ value = local.state_locks }}\n\
             output \"state_listing\" {{ value = local.state_listing }}\n\
             output \"preview_objects\" {{ value = local.preview_objects }}\n\
             output \"preview_listing\" {{ value = local.preview_listing }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t.tfvars"),
        format!(
            "account_name = \"main\"\naccount_id = \"111111111111\"\naws_region = \"eu-west-1\"\n\
             name_prefix = \"gitops\"\ncreate_oidc_provider = true\nimage_retention_count = 5\n\
             state_noncurrent_days = 5\nenvironments = {environments}\n"
        ),
    )
    .unwrap();
    Some(crate::terraform_schema::apply_outputs(dir.path()))
}

/// One repository environment of the account module's input, as the root computes it.
fn module_env(name: &str, previews: bool, wkp: &str) -> String {
    format!(
        r#"{{
    repository = "app", full_name = "o/app", name = "{name}"
    deploy_sub = "repo:o/app:environment:{name}", plan_sub = "repo:o/app:environment:{name}-plan"
    plan_ref = "refs/pull/*/merge", plan_job_workflow_ref = "o/app/.github/workflows/plan.yml@refs/pull/*/merge"
    drift_ref = "refs/heads/main", drift_job_workflow_ref = "o/app/.github/workflows/drift.yml@refs/heads/main"
    deploy_plan_ref = "refs/heads/{name}", deploy_plan_job_workflow_refs = []
    state_prefixes = ["app/", "shared/app/"], previews = {previews}
    preview_sub = "repo:o/app:environment:{name}-preview", preview_refs = [], preview_job_workflow_refs = []
    workspace_key_prefix = "{wkp}", preview_policy_arns = []
    registries = {{ app = "gitops/app-{name}" }}, app_deploy_policy_arns = [], plan_policy_arns = []
  }}"#
    )
}

// #18, the state-key scoping of Core's policy documents, evaluated: dev's deploy role can no
// longer touch any workspace state (`env:/...`), dev's preview role can touch only the previews'
// workspace state (and lock files) and never the default workspace's key, and staging/prod have
// no preview role at all (and their deploy roles no workspace state). The keys are what the
// module's locals compute, checked with IAM's wildcard rules; each statement of the policy
// documents is checked to use exactly those locals.
#[test]
fn e2e_terraform_state_keys_deploy_roles_default_workspace_preview_roles_workspaces_only() {
    // The statements: which keys each kind of role's S3 statements name.
    let squeeze = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let code = |t: &str| {
        t.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let deploy = code(&core_block(r#"data "aws_iam_policy_document" "deploy""#));
    for (sid, want) in [
        ("StateList", "values = local.state_listing[each.key]"),
        (
            "StateReadWrite",
            "resources = local.state_objects[each.key]",
        ),
        (
            "StateLockRelease",
            "resources = local.state_locks[each.key]",
        ),
    ] {
        assert!(
            squeeze(statement(&deploy, sid)).contains(want),
            "deploy {sid} needs `{want}`"
        );
    }
    for absent in ["env:", "preview", "workspace", "pr-"] {
        assert!(
            !deploy.contains(absent),
            "the deploy role names no workspace state (`{absent}`):\n{deploy}"
        );
    }
    let s3 = |doc: &str| -> BTreeSet<String> {
        regex_lite::Regex::new(r"(?m)^\s*actions\s*=\s*\[([^\]]*)\]")
            .unwrap()
            .captures_iter(doc)
            .flat_map(|c| {
                c[1].split(',')
                    .map(|a| a.trim().trim_matches('"').to_string())
                    .filter(|a| a.starts_with("s3:"))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let want: BTreeSet<String> = [
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    ]
    .map(String::from)
    .into();
    assert_eq!(s3(&deploy), want, "{deploy}");
    // Each S3 action of the deploy role is in one of the three statements above.
    let s3_grants = |doc: &str| doc.matches("\"s3:").count() - doc.matches("\"s3:prefix\"").count();
    assert_eq!(s3_grants(&deploy), 4, "{deploy}");
    let preview = code(&core_block(r#"data "aws_iam_policy_document" "preview""#));
    for (sid, want) in [
        (
            "PreviewStateList",
            "values = local.preview_listing[each.key]",
        ),
        (
            "PreviewStateReadWrite",
            r#"actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] resources = local.preview_objects[each.key]"#,
        ),
    ] {
        assert!(
            squeeze(statement(&preview, sid)).contains(want),
            "preview {sid} needs `{want}`"
        );
    }
    for absent in [
        "state_objects",
        "state_locks",
        "state_listing",
        "s3:*",
        "\"*\"]",
    ] {
        let at = preview.matches(absent).count();
        // `"*"` is allowed once: ecr:GetAuthorizationToken has no resource-level permission.
        let allowed = usize::from(absent == "\"*\"]");
        assert!(
            at <= allowed,
            "the preview role must not name `{absent}`:\n{preview}"
        );
    }
    assert_eq!(s3(&preview), want, "{preview}");
    assert_eq!(s3_grants(&preview), 4, "{preview}");
    assert!(
        squeeze(statement(&preview, "RegistryLogin"))
            .contains(r#"actions = ["ecr:GetAuthorizationToken"] resources = ["*"]"#),
        "{preview}"
    );
    // The preview role, its policy and its app policies exist only where previews are allowed.
    for header in [
        r#"resource "aws_iam_role" "preview""#,
        r#"data "aws_iam_policy_document" "preview""#,
        r#"resource "aws_iam_role_policy" "preview""#,
    ] {
        assert!(
            squeeze(&core_block(header)).contains("for_each = local.preview_envs"),
            "{header}"
        );
    }
    assert!(
        core_block(r#"resource "aws_iam_role_policy_attachment" "preview_app""#)
            .contains("for k, e in local.preview_envs")
    );
    let trust = squeeze(&core_block(r#"data "aws_iam_policy_document" "trust""#));
    assert!(
        trust.contains(r#"for_each = each.value.kind == "preview" ? { ref = var.environments[each.value.env].preview_refs job_workflow_ref = var.environments[each.value.env].preview_job_workflow_refs } : {}"#),
        "the preview role trusts only the preview workflow's runs:\n{trust}"
    );

    // Evaluated: dev (previews, the default prefix and a custom one), staging and prod (none).
    let envs = format!(
        "{{\n  \"app/dev\" = {}\n  \"app/staging\" = {}\n  \"app/prod\" = {}\n  \"tools/dev\" = {}\n}}",
        module_env("dev", true, "env:"),
        module_env("staging", false, "env:"),
        module_env("prod", false, "env:"),
        module_env("dev", true, "previews"),
    );
    // tools/dev: a second repository environment with its own workspace key prefix.
    let Some(o) = evaluate_iam_locals(&envs) else {
        return;
    };
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let roles: BTreeSet<String> = o["roles"].as_object().unwrap().keys().cloned().collect();
    let want: BTreeSet<String> = [
        "app/dev/deploy",
        "app/dev/plan",
        "app/dev/preview",
        "app/staging/deploy",
        "app/staging/plan",
        "app/prod/deploy",
        "app/prod/plan",
        "tools/dev/deploy",
        "tools/dev/plan",
        "tools/dev/preview",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        roles, want,
        "a preview role only where previews are allowed"
    );
    assert_eq!(
        o["roles"]["app/dev/preview"]["sub"],
        "repo:o/app:environment:dev-preview"
    );
    assert_eq!(
        o["preview_objects"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["app/dev", "tools/dev"],
        "staging and prod have no preview keys"
    );
    let b = |env: &str, key: &str| format!("arn:aws:s3:::bucket-{env}/{key}");
    for env in ["dev", "staging", "prod"] {
        let k = format!("app/{env}");
        let deploy_keys: Vec<String> = list(&o["state_objects"][&k])
            .into_iter()
            .chain(list(&o["state_locks"][&k]))
            .collect();
        let default = b(env, &format!("app/{env}/terraform.tfstate"));
        let stack = b(env, &format!("shared/app/{env}/net.tfstate"));
        for key in [&default, &stack, &format!("{default}.tflock")] {
            assert!(
                deploy_keys.iter().any(|p| iam_match(p, key)),
                "{k}'s deploy role uses its default-workspace key {key}"
            );
        }
        for key in [
            b(env, &format!("env:/pr-4/app/{env}/terraform.tfstate")),
            b(
                env,
                &format!("env:/pr-4/app/{env}/terraform.tfstate.tflock"),
            ),
            b(env, &format!("env:/pr-4/shared/app/{env}/net.tfstate")),
            b(env, &format!("env:/feature/app/{env}/terraform.tfstate")),
        ] {
            assert!(
                !deploy_keys.iter().any(|p| iam_match(p, &key)),
                "{k}'s deploy role must not touch workspace state {key}: {deploy_keys:?}"
            );
        }
        let listing = list(&o["state_listing"][&k]);
        assert!(
            !listing
                .iter()
                .any(|p| iam_match(p, "env:/") || iam_match(p, &format!("env:/pr-4/app/{env}/"))),
            "{k}'s deploy role lists no workspaces: {listing:?}"
        );
    }
    // dev's preview role: the previews' workspace state and lock files, nothing else.
    let pk = list(&o["preview_objects"]["app/dev"]);
    for key in [
        b("dev", "env:/pr-4/app/dev/terraform.tfstate"),
        b("dev", "env:/pr-4/app/dev/terraform.tfstate.tflock"),
        b("dev", "env:/pr-123/shared/app/dev/net.tfstate"),
    ] {
        assert!(pk.iter().any(|p| iam_match(p, &key)), "{key}: {pk:?}");
    }
    for key in [
        b("dev", "app/dev/terraform.tfstate"),
        b("dev", "app/dev/terraform.tfstate.tflock"),
        b("dev", "shared/app/dev/net.tfstate"),
        b("dev", "env:/feature/app/dev/terraform.tfstate"),
        b("dev", "env:/pr-4/other/dev/terraform.tfstate"),
        b("dev", "previews/pr-4/app/dev/terraform.tfstate"),
        b("staging", "env:/pr-4/app/staging/terraform.tfstate"),
    ] {
        assert!(
            !pk.iter().any(|p| iam_match(p, &key)),
            "dev's preview role must not touch {key}: {pk:?}"
        );
    }
    let pl = list(&o["preview_listing"]["app/dev"]);
    assert!(pl.iter().any(|p| iam_match(p, "env:/")), "{pl:?}");
    assert!(
        !pl.iter()
            .any(|p| iam_match(p, "app/") || iam_match(p, "app/dev/terraform.tfstate")),
        "the preview role lists no default-workspace key: {pl:?}"
    );
    // A repository with its own workspace_key_prefix: its previews live under it.
    let tk = list(&o["preview_objects"]["tools/dev"]);
    assert!(tk
        .iter()
        .any(|p| iam_match(p, &b("dev", "previews/pr-4/app/dev/terraform.tfstate"))));
    assert!(!tk
        .iter()
        .any(|p| iam_match(p, &b("dev", "env:/pr-4/app/dev/terraform.tfstate"))));

    // Who has previews: the binaries' rule (src/envs.rs), and never a production environment.
    let locals = std::fs::read_to_string(root().join("terraform/core/locals.tf")).unwrap();
    let words = squeeze(&locals);
    assert!(
        words.contains(
            r#"previews = try(e.previews, i == 0 && e.name == "dev" && !try(e.production, false))"#
        ) && words.contains("previews = e.previews && !e.production")
            && words.contains(
                "preview_envs = { for k, e in local.envs : k => e if e.previews && !e.production }"
            ),
        "only the first, non-production `dev` (or `previews: true`), never production:\n{locals}"
    );
    // The plan role: still no write, and no workspace object.
    let plan = core_block(r#"data "aws_iam_policy_document" "plan""#);
    assert!(
        !plan.contains("env:/pr-") && !plan.contains("preview"),
        "{plan}"
    );
    assert!(!plan.contains("s3:PutObject") && !plan.contains("s3:DeleteObject"));
}

// #18: the GitHub side of previews. Each environment with previews gets `<env>-preview` (never
// `<env>`, whose branch policy admits only its own branch): a branch policy of its own, optional
// reviewers, and variables naming the preview role (no deploy or plan role).
#[test]
fn e2e_terraform_preview_environments_are_their_own() {
    let squeeze = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let env = squeeze(&core_block(
        r#"resource "github_repository_environment" "preview""#,
    ));
    for want in [
        "for_each = local.preview_envs",
        r#"environment = "${each.value.name}-preview""#,
        "protected_branches = false custom_branch_policies = true",
        "dynamic \"reviewers\"",
        "preview_reviewers",
    ] {
        assert!(env.contains(want), "`{want}`:\n{env}");
    }
    let policy = squeeze(&core_block(
        r#"resource "github_repository_environment_deployment_policy" "preview""#,
    ));
    assert!(
        policy.contains("github_repository_environment.preview[each.value.env].environment")
            && policy.contains("var.repositories[e.repository].preview_branch_patterns"),
        "{policy}"
    );
    // dev's own environment still admits only dev's branch.
    let deploy_policy = squeeze(&core_block(
        r#"resource "github_repository_environment_deployment_policy" "deploy""#,
    ));
    assert!(
        deploy_policy.contains("branch_pattern = each.value.branch"),
        "{deploy_policy}"
    );
    let vars = core_block(r#"resource "github_actions_environment_variable" "preview""#);
    assert!(vars.contains("github_repository_environment.preview[each.value.env].environment"));
    let github = std::fs::read_to_string(root().join("terraform/core/github.tf")).unwrap();
    let at = github.find("preview_variables = merge(").unwrap();
    let block = &github[at..at + github[at..].find("}]...)").unwrap()];
    assert!(
        block.contains("AWS_PREVIEW_ROLE_ARN    = local.preview_role_arns[k]"),
        "{block}"
    );
    assert!(
        !block.contains("DEPLOY_ROLE") && !block.contains("PLAN_ROLE"),
        "{block}"
    );
}

// drift.yml: scheduled and by hand; per environment and deployed stack (matrix) it plans the
// commit behind `deploy/<env>/current` (never the branch tip) with the environment's read-only
// plan role, a refresh-only and a normal plan, hands both to `plan-gate drift` with the stack
// (one issue per environment and stack), and only that job may write issues; the detect job
// lists the deployed commit's stacks (`stacks list --deployed`) and may only read; the summary
// job holds no permission at all. The engine is a variable, each setup action pinned and chosen
// by it.
#[test]
fn e2e_drift_template_plans_the_deployed_commit_read_only_and_only_it_writes_issues() {
    let (text, wf) = load("drift.yml");
    let on = wf.get("on").unwrap();
    assert!(on.get("schedule").is_some() && on.get("workflow_dispatch").is_some());
    let jobs = wf.get("jobs").unwrap();
    assert_eq!(map_keys(Some(jobs)), ["detect", "drift", "summary"]);
    let detect = jobs.get("detect").unwrap();
    let perms = detect.get("permissions").unwrap();
    assert_eq!(perms.get("contents").and_then(Value::as_str), Some("read"));
    assert_eq!(map_keys(Some(perms)).len(), 1, "detect only reads");
    assert!(
        detect.get("environment").is_none(),
        "detect gets no environment's variables or token"
    );
    let detect_text = serde_yaml_ng::to_string(detect).unwrap();
    for want in [
        "stacks list --environment \"$env_name\" --deployed",
        "--working-dir \"$WORKING_DIR\"",
        "vars.DRIFT_ENVIRONMENTS || '[\"dev\",\"staging\",\"prod\"]'",
        "never-deployed",
        "-gt 256",
        "[[ \"$env_name\" =~ ^[a-z][a-z0-9-]{0,31}$ ]]",
    ] {
        assert!(detect_text.contains(want), "detect job lacks `{want}`");
    }
    // The detect step refuses a DRIFT_ENVIRONMENTS that is not a list of environment names
    // before anything is called (no `stacks` on PATH here) or used in a path or a log line.
    let script = detect
        .get("steps")
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .find(|s| s.get("id").and_then(Value::as_str) == Some("matrix"))
        .and_then(|s| s.get("run"))
        .and_then(Value::as_str)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (value, needle) in [
        (r#""prod""#, "must be a non-empty JSON list"),
        ("[]", "must be a non-empty JSON list"),
        ("[1]", "must be a non-empty JSON list"),
        ("not json", "must be a non-empty JSON list"),
        (r#"["../x","dev"]"#, "not an environment name"),
        (r#"["::error::pwned"]"#, "not an environment name"),
        (r#"["Prod"]"#, "not an environment name"),
    ] {
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ENVIRONMENTS", value)
            .env("RUNNER_TEMP", tmp.path())
            .env("GITHUB_OUTPUT", tmp.path().join("out"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {text}");
        assert!(text.contains(needle), "{value}: {text}");
        assert!(
            !text.contains("pwned"),
            "{value}: the value reached the log: {text}"
        );
        assert!(
            !tmp.path().join("out").exists(),
            "{value}: outputs were set"
        );
    }
    let drift = jobs.get("drift").unwrap();
    assert_eq!(
        drift.get("environment").and_then(Value::as_str),
        Some("${{ matrix.environment }}-plan")
    );
    assert_eq!(
        drift
            .get("strategy")
            .and_then(|s| s.get("matrix"))
            .and_then(Value::as_str),
        Some("${{ fromJSON(needs.detect.outputs.matrix) }}")
    );
    assert_eq!(
        drift.get("if").and_then(Value::as_str),
        Some("${{ needs.detect.outputs.count != '0' }}"),
        "GitHub refuses an empty matrix"
    );
    let perms = drift.get("permissions").unwrap();
    assert_eq!(perms.get("issues").and_then(Value::as_str), Some("write"));
    assert_eq!(perms.get("contents").and_then(Value::as_str), Some("read"));
    assert_eq!(
        map_keys(Some(perms)).len(),
        3,
        "contents, id-token, issues: nothing else"
    );
    let summary = jobs.get("summary").unwrap();
    assert!(map_keys(summary.get("permissions")).is_empty());
    let steps = drift.get("steps").and_then(Value::as_sequence).unwrap();
    let checkout = &steps[0];
    assert_eq!(
        checkout
            .get("with")
            .and_then(|w| w.get("ref"))
            .and_then(Value::as_str),
        Some("${{ matrix.sha }}"),
        "drift is about what is deployed (the commit detect read behind deploy/<env>/current), not the branch tip"
    );
    let job_text = serde_yaml_ng::to_string(drift).unwrap();
    for want in [
        "DEPLOYED_SHA: ${{ matrix.sha }}",
        "[ \"$head\" != \"$DEPLOYED_SHA\" ]",
        "vars.AWS_PLAN_ROLE_ARN",
        "STATE_KEY: ${{ matrix['state-key'] || vars.TF_STATE_KEY }}",
        "TF_DIR: ${{ matrix.path }}",
        "plan -refresh-only -input=false -lock=false",
        "command: drift",
        "normal-plan:",
        "stack: ${{ env.STACK }}",
        "deployed-sha: ${{ steps.deployed.outputs.sha }}",
        "if: ${{ env.TF_ENGINE == 'terraform' }}",
        "if: ${{ env.TF_ENGINE == 'tofu' }}",
    ] {
        assert!(job_text.contains(want), "drift job lacks `{want}`");
    }
    assert!(!text.contains("terraform apply") && !text.contains("tofu apply"));
}

// drift.yml's detect step, run as written with the real `stacks` binary on a checkout of the
// branch tip whose origin holds `deploy/prod/current` at an older commit: the matrix has the
// stacks of the DEPLOYED commit that deploy to prod (their paths and keys), with that commit's
// sha; without `stacks:` one entry per environment with TF_WORKING_DIR and no stack (the
// environment's TF_STATE_KEY applies); dev, never deployed, is listed apart.
#[test]
fn e2e_drift_template_detect_lists_the_stacks_of_each_deployed_commit() {
    let (_, wf) = load("drift.yml");
    let script = wf["jobs"]["detect"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s.get("id").and_then(Value::as_str) == Some("matrix"))
        .and_then(|s| s.get("run"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let bin = support::bin("stacks").parent().unwrap().to_path_buf();
    let git = |dir: &Path, args: &[&str]| support::git_http::git_ok(dir, args);
    let write = |root: &Path, files: &[(&str, &str)]| {
        for (p, text) in files {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    };
    let config = "stacks:\n  - name: a\n    path: s/a\n  - name: b\n    path: s/b\n    environments: [dev]\n  - name: k\n    path: s/k\n    state-key: 'kk/{env}/t.tfstate'\n";
    for (case, deployed_files, want) in [
        (
            "stacks",
            vec![
                (".github/gitops.yml", config),
                ("s/a/main.tf", "\n"),
                ("s/b/main.tf", "\n"),
                ("s/k/main.tf", "\n"),
            ],
            serde_json::json!([
                {"environment": "prod", "stack": "a", "path": "s/a", "state-key": "a/prod.tfstate"},
                {"environment": "prod", "stack": "k", "path": "s/k", "state-key": "kk/prod/t.tfstate"},
            ]),
        ),
        (
            "none for prod",
            vec![
                (
                    ".github/gitops.yml",
                    "stacks:\n  - name: b\n    path: s/b\n    environments: [dev]\n",
                ),
                ("s/b/main.tf", "\n"),
            ],
            serde_json::json!([]),
        ),
        (
            "single",
            vec![("terraform/app/release/main.tf", "\n")],
            serde_json::json!([
                {"environment": "prod", "stack": "", "path": "terraform/app/release", "state-key": ""},
            ]),
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir_all(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        write(&origin, &deployed_files);
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-qm", "deployed"]);
        let deployed = git(&origin, &["rev-parse", "HEAD"]);
        git(
            &origin,
            &[
                "tag",
                "-a",
                "-m",
                "deploy",
                "deploy/prod/current",
                &deployed,
            ],
        );
        // The tip: a stack (or root) that is not deployed yet.
        write(
            &origin,
            &[
                (
                    ".github/gitops.yml",
                    &format!("{config}  - name: new\n    path: s/new\n"),
                ),
                ("s/new/main.tf", "\n"),
            ],
        );
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-qm", "tip"]);
        let checkout = tmp.path().join("checkout");
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--no-tags",
                origin.to_str().unwrap(),
                checkout.to_str().unwrap(),
            ],
        );
        let out_file = tmp.path().join("github_output");
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
            .current_dir(&checkout)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", tmp.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("ENVIRONMENTS", r#"["dev","prod"]"#)
            .env("WORKING_DIR", "terraform/app/release")
            .env("GITHUB_TOKEN", "")
            .env("RUNNER_TEMP", tmp.path())
            .env("GITHUB_OUTPUT", &out_file)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {log}");
        let outputs = std::fs::read_to_string(&out_file).unwrap();
        let get = |k: &str| {
            outputs
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{case}: no output {k}: {outputs}"))
                .to_string()
        };
        let matrix: serde_json::Value = serde_json::from_str(&get("matrix")).unwrap();
        let mut want = want.clone();
        for e in want.as_array_mut().unwrap() {
            e["sha"] = serde_json::json!(deployed);
        }
        assert_eq!(matrix["include"], want, "{case}: {log}");
        assert_eq!(
            get("count"),
            want.as_array().unwrap().len().to_string(),
            "{case}"
        );
        assert_eq!(get("never-deployed"), r#"["dev"]"#, "{case}: {log}");
        assert!(
            log.contains("::notice::dev was never deployed"),
            "{case}: {log}"
        );
        assert_eq!(
            log.contains("::warning::prod: the deployed commit"),
            want.as_array().unwrap().is_empty(),
            "{case}: a deployed environment without stacks is warned about: {log}"
        );
    }
}

// The engine is a variable in every template that runs Terraform: `TF_ENGINE` (`terraform`, the
// default, or `tofu`) picks the pinned setup action, every command runs `"$TF_ENGINE"`, and any
// other value stops the job before anything runs.
#[test]
fn e2e_templates_take_the_engine_as_a_variable() {
    for file in [
        "plan.yml",
        "deploy.yml",
        "rollback.yml",
        "drift.yml",
        "core.yml",
    ] {
        let (text, wf) = load(file);
        for (job_name, job) in wf.get("jobs").and_then(Value::as_mapping).unwrap() {
            let job_text = serde_yaml_ng::to_string(job).unwrap();
            if !job_text.contains("hashicorp/setup-terraform") {
                continue;
            }
            let at = format!("{file}: job `{}`", job_name.as_str().unwrap());
            assert!(
                job_text.contains("TF_ENGINE: ${{ vars.TF_ENGINE || 'terraform' }}"),
                "{at}: TF_ENGINE"
            );
            // The pin verified against public pins of the release (docs/actions.md); the
            // parsed job has no comments, the file has the release in one.
            assert!(
                job_text
                    .contains("opentofu/setup-opentofu@a1320f892987e89d278cc92dc5adc984fb93aca4"),
                "{at}: tofu setup, pinned to the verified v2.0.2 commit"
            );
            assert!(
                text.lines()
                    .filter(|l| l.contains("opentofu/setup-opentofu@"))
                    .all(|l| l.trim_end().ends_with(
                        "opentofu/setup-opentofu@a1320f892987e89d278cc92dc5adc984fb93aca4 # v2.0.2"
                    )),
                "{file}: every setup-opentofu line is the verified pin"
            );
            assert!(
                job_text.contains("TF_ENGINE must be terraform or tofu"),
                "{at}: the engine is checked"
            );
            let bare = regex_lite::Regex::new(r"(?m)^\s*terraform (init|plan|show|apply)").unwrap();
            for step in job.get("steps").and_then(Value::as_sequence).unwrap() {
                if let Some(run) = step.get("run").and_then(Value::as_str) {
                    assert!(
                        !bare.is_match(run),
                        "{at}: a command names terraform: {run}"
                    );
                }
            }
        }
        assert!(text.contains("TF_ENGINE"), "{file}");
    }
}

// Core's state grants per stack, evaluated end to end: the root's locals (terraform apply of
// locals.tf with the repositories' files) compute each environment's `state_keys`, and the
// account module's IAM locals turn them into the roles' resources, checked with IAM's wildcard
// rules. `app` lists three stacks, `db` only in dev; `api` has no `stacks:` and keeps its prefix.
#[test]
fn e2e_terraform_state_keys_per_stack_exact_keys_per_environment() {
    let tfvars = r#"
aws_region      = "eu-west-1"
github_owner    = "example-org"
github_owner_id = 7
accounts = { main = { id = "111111111111" } }
repositories = {
  app = { config = "repositories/app.yml", repository_id = 1 }
  api = { config = "repositories/api.yml", repository_id = 2 }
  ops = { config = "repositories/ops.yml", repository_id = 3 }
}
"#;
    let app = "environments:\n  - { name: dev, branch: dev }\n  - { name: prod, branch: main, production: true, reviewers: { teams: [5] } }\nstate-prefixes: ['app/']\nstacks:\n  - { name: network, path: stacks/network, state-key: 'app/network/{env}.tfstate' }\n  - { name: service, path: stacks/service, state-key: 'app/{env}/service.tfstate' }\n  - { name: db, path: stacks/db, environments: [dev], state-key: 'app/db/{env}.tfstate' }\n";
    let api = "environments:\n  - { name: dev, branch: dev }\n  - { name: prod, branch: main }\n";
    let ops = "environments:\n  - { name: dev, branch: dev }\nstate-prefixes: ['ops/']\nstacks:\n  - { name: db, path: db }\n  - { name: cache, path: cache, state-key: 'ops/cache/{env}.tfstate', environments: [dev, qa] }\n";
    let Some(root_out) = crate::terraform_schema::evaluate_core(
        tfvars,
        &[
            ("repositories/app.yml", app),
            ("repositories/api.yml", api),
            ("repositories/ops.yml", ops),
        ],
    ) else {
        return;
    };
    // The keys github.tf's precondition refuses: only a stack key outside the prefixes the file
    // gives (ops' `db` takes the default key `db/{env}.tfstate`, outside `ops/`).
    assert_eq!(
        root_out["t_keys_outside_prefixes"],
        serde_json::json!({"app/dev": [], "app/prod": [], "api/dev": [], "api/prod": [], "ops/dev": ["db/dev.tfstate"]})
    );
    // ... and a stack naming an environment its file does not have (ops' `cache`, in `qa`).
    assert_eq!(
        root_out["t_unknown_stack_envs"],
        serde_json::json!({"app": [], "api": [], "ops": ["qa"]})
    );
    let github = std::fs::read_to_string(root().join("terraform/core/github.tf")).unwrap();
    for refusal in [
        "condition     = length(local.keys_outside_prefixes[each.key]) == 0",
        "condition     = length(local.unknown_stack_envs[each.value.repository]) == 0",
    ] {
        assert!(github.contains(refusal), "github.tf lacks `{refusal}`");
    }
    let envs = &root_out["t_account_envs"]["main"];
    assert_eq!(
        envs["app/dev"]["state_keys"],
        serde_json::json!([
            "app/network/dev.tfstate",
            "app/dev/service.tfstate",
            "app/db/dev.tfstate"
        ])
    );
    assert_eq!(
        envs["app/prod"]["state_keys"],
        serde_json::json!(["app/network/prod.tfstate", "app/prod/service.tfstate"])
    );
    assert!(envs["api/dev"]["state_keys"].is_null(), "{envs}");
    // The module's input as the root computed it (JSON is an HCL expression).
    let Some(o) = evaluate_iam_locals(&envs.to_string()) else {
        return;
    };
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("a list: {v}"))
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let b = |env: &str, key: &str| format!("arn:aws:s3:::bucket-{env}/{key}");
    let writes = |k: &str| list(&o["state_objects"][k]);
    let may = |k: &str, key: &str| writes(k).iter().any(|p| iam_match(p, key));
    // dev's deploy role writes the dev-only stack's key and its lock; prod's may not.
    for key in ["app/db/dev.tfstate", "app/db/dev.tfstate.tflock"] {
        assert!(
            may("app/dev", &b("dev", key)),
            "{key}: {:?}",
            writes("app/dev")
        );
    }
    for key in [
        "app/db/prod.tfstate",
        "app/db/prod.tfstate.tflock",
        "app/db/dev.tfstate",
    ] {
        assert!(
            !may("app/prod", &b("prod", key)),
            "{key}: {:?}",
            writes("app/prod")
        );
    }
    for (env, key) in [
        ("prod", "app/network/prod.tfstate"),
        ("prod", "app/prod/service.tfstate.tflock"),
        ("dev", "app/dev/service.tfstate"),
    ] {
        assert!(may(&format!("app/{env}"), &b(env, key)), "{env} {key}");
    }
    // Exactly the stacks' keys: nothing else under the prefix, no other repository's key, no
    // workspace state.
    for key in [
        "app/dev/terraform.tfstate",
        "app/other/dev.tfstate",
        "app/network/dev.tfstate.bak",
        "api/dev/terraform.tfstate",
        "env:/pr-4/app/db/dev.tfstate",
    ] {
        assert!(
            !may("app/dev", &b("dev", key)),
            "{key}: {:?}",
            writes("app/dev")
        );
    }
    assert_eq!(
        list(&o["state_locks"]["app/prod"]),
        [
            b("prod", "app/network/prod.tfstate.tflock"),
            b("prod", "app/prod/service.tfstate.tflock")
        ]
    );
    assert_eq!(
        list(&o["state_listing"]["app/prod"]),
        ["app/network/prod.tfstate", "app/prod/service.tfstate"]
    );
    // The stackless repository keeps its prefix grants, and never reaches app's keys.
    assert_eq!(list(&o["state_objects"]["api/dev"]), [b("dev", "api/*")]);
    assert!(may("api/dev", &b("dev", "api/dev/terraform.tfstate")));
    assert!(!may("api/dev", &b("dev", "app/db/dev.tfstate")));
    assert!(!may("api/prod", &b("prod", "app/network/prod.tfstate")));
    // dev's previews: the same stacks' keys under the workspace prefix, nothing else.
    let pk = list(&o["preview_objects"]["app/dev"]);
    for key in [
        "env:/pr-4/app/db/dev.tfstate",
        "env:/pr-4/app/db/dev.tfstate.tflock",
    ] {
        assert!(
            pk.iter().any(|p| iam_match(p, &b("dev", key))),
            "{key}: {pk:?}"
        );
    }
    for key in [
        "app/db/dev.tfstate",
        "env:/pr-4/app/other/dev.tfstate",
        "env:/pr-4/api/dev/x",
    ] {
        assert!(
            !pk.iter().any(|p| iam_match(p, &b("dev", key))),
            "{key}: {pk:?}"
        );
    }
    assert_eq!(
        list(&o["preview_listing"]["app/dev"]),
        [
            "env:/",
            "env:/pr-*/app/network/dev.tfstate",
            "env:/pr-*/app/dev/service.tfstate",
            "env:/pr-*/app/db/dev.tfstate"
        ]
    );
}

// Every refusal of Core's preconditions (github.tf) is a local of locals.tf, and Terraform
// evaluates the preconditions themselves without the providers: each condition and its
// message, per instance of its resource (`evaluate_core_refusals`). A configuration that breaks
// each rule once is refused exactly there, with messages naming the repository, environment,
// key or registry at fault; one that comes close to each rule without breaking it passes.
#[test]
fn e2e_terraform_core_refusals_name_what_is_at_fault() {
    // github.tf holds every precondition (the evaluation below reads that file only).
    let block = regex_lite::Regex::new(r"\bprecondition\s*\{").unwrap();
    let mut files = Vec::new();
    tf_files(&root().join("terraform/core"), &mut files);
    for f in files
        .iter()
        .filter(|f| !f.ends_with("terraform/core/github.tf"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !block.is_match(&text),
            "{}: a precondition outside github.tf",
            f.display()
        );
    }
    // Two accounts; each repository (name, its extra settings, its file) in repositories/.
    let refusals = |repos: &[(&str, &str, &str)]| {
        let entries: Vec<String> = repos
            .iter()
            .map(|(r, extra, _)| format!("  {r} = {{ config = \"repositories/{r}.yml\"{extra} }}"))
            .collect();
        let tfvars = format!(
            "aws_region   = \"eu-west-1\"\ngithub_owner = \"example-org\"\n\
             accounts = {{\n  main  = {{ id = \"111111111111\" }}\n  other = {{ id = \"222222222222\" }}\n}}\n\
             repositories = {{\n{}\n}}\n",
            entries.join("\n")
        );
        let files: Vec<(String, &str)> = repos
            .iter()
            .map(|(r, _, text)| (format!("repositories/{r}.yml"), *text))
            .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        crate::terraform_schema::evaluate_core_refusals(&tfvars, &files)
    };
    // app: a stack key under the workspace prefix (dev, prod), an environment no stack deploys
    // to (qa), a stack naming an environment the file lacks (stage), a production environment
    // in another region without reviewers. api: a prefix over app's dev key in dev's bucket, a
    // prefix under the workspace prefix, app's registry name. ops (another account): a stack key
    // outside its prefixes. lost: no account id while there are two accounts.
    let app = "environments:\n  - { name: dev, branch: dev, aws-account-id: '111111111111' }\n  - { name: qa, branch: qa, aws-account-id: '111111111111' }\n  - { name: prod, branch: main, production: true, aws-account-id: '111111111111', aws-region: us-east-1 }\nstacks:\n  - { name: network, path: stacks/network, environments: [dev, prod], state-key: 'env:/network/{env}.tfstate' }\n  - { name: db, path: stacks/db, environments: [dev, stage], state-key: 'shared/db/{env}.tfstate' }\n";
    let api = "environments:\n  - { name: dev, branch: dev, aws-account-id: '111111111111' }\nstate-prefixes: ['shared/', 'env:/api/']\nregistries: ['app']\n";
    let ops = "environments:\n  - { name: dev, branch: dev, aws-account-id: '222222222222' }\nstate-prefixes: ['ops/']\nstacks:\n  - { name: db, path: db }\n";
    let lost = "environments:\n  - { name: dev, branch: dev }\n";
    let Some(o) = refusals(&[
        ("app", "", app),
        ("api", "", api),
        ("ops", "", ops),
        ("lost", "", lost),
    ]) else {
        return;
    };
    let none = |keys: &[&str]| -> serde_json::Value {
        keys.iter()
            .map(|k| (k.to_string(), serde_json::json!([])))
            .collect()
    };
    let with = |mut v: serde_json::Value, k: &str, entries: serde_json::Value| {
        v[k] = entries;
        v
    };
    let envs = [
        "api/dev", "app/dev", "app/prod", "app/qa", "lost/dev", "ops/dev",
    ];
    // Each local holds exactly the entries at fault.
    assert_eq!(
        o["t_refusal_locals"],
        serde_json::json!({
            "envs_in_another_region": ["app/prod"],
            "envs_without_account": ["lost/dev"],
            "envs_without_stacks": ["app/qa"],
            "keys_outside_prefixes": with(none(&envs), "ops/dev", serde_json::json!(["db/dev.tfstate"])),
            "keys_under_workspace_prefix": with(
                with(none(&envs), "app/dev", serde_json::json!(["env:/network/dev.tfstate"])),
                "app/prod",
                serde_json::json!(["env:/network/prod.tfstate"])
            ),
            "overlapping_grants": with(
                with(none(&envs), "api/dev", serde_json::json!(["shared/ with app/dev's shared/db/dev.tfstate"])),
                "app/dev",
                serde_json::json!(["shared/db/dev.tfstate with api/dev's shared/"])
            ),
            "prefixes_under_workspace_prefix": with(none(&["api", "app", "lost", "ops"]), "api", serde_json::json!(["env:/api/"])),
            "production_envs_without_reviewers": ["app/prod"],
            "shared_registries": {"gitops/app-dev": ["api/dev/app", "app/dev/app"]},
            "unknown_stack_envs": with(none(&["api", "app", "lost", "ops"]), "app", serde_json::json!(["stage"])),
        })
    );
    // ... and each precondition fails exactly where its local says, with its message. The
    // shared registry fails every instance (the rule is about all of them).
    let shared = "Repository environments share a registry name (`registries`): each ECR repository belongs to one repository environment's image: gitops/app-dev for [api/dev/app, app/dev/app].";
    let unknown = "Repository app: its stacks name environments its file does not have: [stage].";
    let overlap = |env: &str, pairs: &str| {
        format!("Environment {env}: its state-prefixes (or stack state keys) overlap another repository's in the same state bucket: [{pairs}].")
    };
    let workspace = |env: &str, keys: &str| {
        format!("Environment {env}: stack state keys [{keys}] start with its workspace_key_prefix env:/, so they would be preview workspaces' keys.")
    };
    assert_eq!(
        o["t_refusals"],
        serde_json::json!({
            "github_repository_environment.deploy": {
                "api/dev": [shared, overlap("api/dev", "shared/ with app/dev's shared/db/dev.tfstate")],
                "app/dev": [
                    shared,
                    overlap("app/dev", "shared/db/dev.tfstate with api/dev's shared/"),
                    unknown,
                    workspace("app/dev", "env:/network/dev.tfstate"),
                ],
                "app/prod": [
                    "Environment app/prod: its aws-region us-east-1 differs from var.aws_region eu-west-1 (Core serves one region).",
                    "Environment app/prod: a production environment needs at least one reviewer (reviewers.users / reviewers.teams).",
                    shared,
                    unknown,
                    workspace("app/prod", "env:/network/prod.tfstate"),
                ],
                "app/qa": [
                    shared,
                    unknown,
                    "Environment app/qa: no stack of its repository's `stacks:` deploys there, so its roles would have no state key.",
                ],
                "lost/dev": [
                    "Environment lost/dev: its aws-account-id is not the id of an account in var.accounts (or it is missing while there are several accounts).",
                    shared,
                ],
                "ops/dev": [
                    shared,
                    "Environment ops/dev: stack state keys [db/dev.tfstate] lie outside the repository's state-prefixes [ops/].",
                ],
            },
            "github_repository_environment.preview": {
                "api/dev": ["Repository api: state prefixes [env:/api/] start with its workspace_key_prefix env:/, so the preview role's workspace keys would include default-workspace state."],
            },
        })
    );

    // Close to every rule, breaking none: app's keys and prefix under `env:/` with its own
    // workspace prefix `ws`; api's prefix `application/` beside `app/`; ops' prefix `app/` in
    // another account's dev bucket; prod in var.aws_region with one user as reviewer and only
    // some stacks; registries `app` and `app-worker`.
    let app = "environments:\n  - { name: dev, branch: dev, aws-account-id: '111111111111' }\n  - { name: prod, branch: main, production: true, aws-account-id: '222222222222', aws-region: eu-west-1, reviewers: { users: [1] } }\nstate-prefixes: ['app/', 'env:/app/']\nstacks:\n  - { name: network, path: stacks/network, state-key: 'env:/app/network/{env}.tfstate' }\n  - { name: db, path: stacks/db, environments: [dev], state-key: 'app/db/{env}.tfstate' }\n";
    let api = "environments:\n  - { name: dev, branch: dev, aws-account-id: '111111111111' }\n  - { name: prod, branch: main, aws-account-id: '111111111111' }\nstate-prefixes: ['application/']\nregistries: ['api', 'app-worker']\n";
    let ops = "environments:\n  - { name: dev, branch: dev, aws-account-id: '222222222222' }\nstate-prefixes: ['app/']\n";
    let Some(o) = refusals(&[
        ("app", ", workspace_key_prefix = \"ws\"", app),
        ("api", "", api),
        ("ops", "", ops),
    ]) else {
        return;
    };
    let envs = ["api/dev", "api/prod", "app/dev", "app/prod", "ops/dev"];
    let repos = none(&["api", "app", "ops"]);
    assert_eq!(
        o["t_refusal_locals"],
        serde_json::json!({
            "envs_in_another_region": [],
            "envs_without_account": [],
            "envs_without_stacks": [],
            "keys_outside_prefixes": none(&envs),
            "keys_under_workspace_prefix": none(&envs),
            "overlapping_grants": none(&envs),
            "prefixes_under_workspace_prefix": repos,
            "production_envs_without_reviewers": [],
            "shared_registries": {},
            "unknown_stack_envs": repos,
        })
    );
    assert_eq!(
        o["t_refusals"],
        serde_json::json!({
            "github_repository_environment.deploy": {},
            "github_repository_environment.preview": {},
        })
    );
}

/// Each `validation` block of the `variables.tf` in `dir` refuses its case: `base` (variable,
/// HCL value) is a valid set of values that `terraform plan` accepts; case `i` replaces one
/// variable's value and must fail exactly the file's `i`-th validation block, no other, with
/// that block's error message. `false` without terraform.
fn validations_refuse_each_case(dir: &Path, base: &[(&str, &str)], cases: &[(&str, &str)]) -> bool {
    if !support::has_tool("terraform") {
        skip_loudly(
            "evaluating the variables' validations with terraform",
            "terraform is not installed",
        );
        return false;
    }
    let text = std::fs::read_to_string(dir.join("variables.tf")).unwrap();
    // Every validation block: its line (as Terraform names it) and its error message.
    let body = hcl_edit::parser::parse_body(&text).unwrap();
    let mut rules = Vec::new();
    for v in body.get_blocks("variable") {
        for rule in v.body.get_blocks("validation") {
            let at = hcl_edit::Span::span(rule).unwrap().start;
            let line = text[..at].matches('\n').count() + 1;
            let message = rule
                .body
                .get_attribute("error_message")
                .unwrap()
                .value
                .as_str()
                .unwrap();
            rules.push((line, message.to_string()));
        }
    }
    assert_eq!(
        rules.len(),
        cases.len(),
        "one case per validation block of {}",
        dir.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("variables.tf"),
        scratch.path().join("variables.tf"),
    )
    .unwrap();
    let tf = |args: &[&str]| {
        Command::new("terraform")
            .args(args)
            .current_dir(scratch.path())
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap()
    };
    assert!(tf(&["init", "-input=false", "-no-color"]).status.success());
    // The error diagnostics of a plan with `values`.
    let errors = |values: &[(&str, &str)]| -> Vec<String> {
        let vars: Vec<String> = values.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        std::fs::write(scratch.path().join("t.tfvars"), vars.join("\n") + "\n").unwrap();
        let out = tf(&["plan", "-input=false", "-json", "-var-file=t.tfvars"]);
        let errors: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["diagnostic"]["severity"] == "error")
            .map(|m| {
                format!(
                    "{}: {}",
                    m["diagnostic"]["summary"].as_str().unwrap(),
                    m["diagnostic"]["detail"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(out.status.success(), errors.is_empty(), "{errors:?}");
        errors
    };
    assert_eq!(
        errors(base),
        Vec::<String>::new(),
        "the base values are valid"
    );
    for ((name, value), (line, message)) in cases.iter().zip(&rules) {
        assert!(
            base.iter().any(|(n, _)| n == name),
            "{name} is not in the base values"
        );
        let values: Vec<(&str, &str)> = base
            .iter()
            .map(|&(n, v)| if n == *name { (n, *value) } else { (n, v) })
            .collect();
        assert_eq!(
            errors(&values),
            [format!("Invalid value for variable: {message}\n\nThis was checked by the validation rule at variables.tf:{line},3-13.")],
            "{name} = {value}"
        );
    }
    true
}

// Every validation of Core's variables (terraform/core/variables.tf, and its account module's)
// refuses a value that breaks it, alone, with its message; Terraform evaluates them without the
// providers (a plan of the variables only).
#[test]
fn e2e_terraform_core_variable_validations_refuse_each_bad_value() {
    let repo = |attrs: &str| {
        format!("{{ app = {{ config = \"repositories/app.yml\", repository_id = 42{attrs} }} }}")
    };
    let owned: Vec<(&str, String)> = vec![
        ("aws_region", r#""europe""#.into()),
        ("sub_claim_format", r#""rename-proof""#.into()),
        ("name_prefix", r#""Gitops""#.into()),
        ("accounts", r#"{ main = { id = "11111111111" } }"#.into()),
        ("accounts", r#"{ main = { id = "111111111111" }, other = { id = "111111111111" } }"#.into()),
        ("accounts", r#"{ main = { id = "111111111111", core_role_arn = "arn:aws:iam::222222222222:role/core" } }"#.into()),
        ("repositories", r#"{ "example-org/app" = { config = "repositories/app.yml", repository_id = 42 } }"#.into()),
        ("repositories", repo(r#", sub_claim_format = "rename-proof""#)),
        // The default form is immutable (base values): a repository without its id.
        ("repositories", r#"{ app = { config = "repositories/app.yml" } }"#.into()),
        ("repositories", repo(r#", plan_workflow = "plan.yml""#)),
        ("repositories", repo(r#", deploy_workflows = [".github/workflows/deploy.yml", "rollback.yml"]"#)),
        ("repositories", repo(r#", drift_branch = "main..dev""#)),
        ("repositories", repo(r#", plan_branch_patterns = ["refs/heads/*"]"#)),
        ("repositories", repo(r#", preview_sweep_branch = "main..dev""#)),
        ("repositories", repo(r#", drift_branch = "refs/heads/main""#)),
        ("repositories", repo(", preview_branch_patterns = []")),
        ("repositories", repo(", preview_reviewers = { users = [1, 2, 3, 4], teams = [5, 6, 7] }")),
        ("repositories", repo(r#", workspace_key_prefix = "env:/previews""#)),
    ];
    let cases: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let core = root().join("terraform/core");
    let ok = validations_refuse_each_case(
        &core,
        &[
            ("aws_region", r#""eu-west-1""#),
            ("github_owner", r#""example-org""#),
            ("github_owner_id", "7"),
            ("sub_claim_format", r#""immutable""#),
            ("name_prefix", r#""gitops""#),
            (
                "accounts",
                r#"{ main = { id = "111111111111", core_role_arn = "arn:aws:iam::111111111111:role/core" }, other = { id = "222222222222" } }"#,
            ),
            (
                "repositories",
                r#"{ "app.v2" = { config = "repositories/app.yml", repository_id = 42, preview_reviewers = { users = [1, 2, 3], teams = [4, 5, 6] }, workspace_key_prefix = "env:" } }"#,
            ),
        ],
        &cases,
    );
    if !ok {
        return;
    }
    validations_refuse_each_case(
        &core.join("modules/environment-account"),
        &[
            ("account_name", r#""main""#),
            ("account_id", r#""111111111111""#),
            ("aws_region", r#""eu-west-1""#),
            ("name_prefix", r#""gitops""#),
            ("create_oidc_provider", "true"),
            ("image_retention_count", "5"),
            ("state_noncurrent_days", "5"),
            ("environments", "{}"),
        ],
        &[("account_id", r#""arn:aws:iam::111111111111:root""#)],
    );
}
