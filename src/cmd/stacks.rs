//! `stacks`: the Terraform roots of a repository and which of them changed.
//!
//! - `list`: every stack (of `--environment`, if given) with its path, layer and state key.
//!   `list --environment ENV --deployed`: the stacks of the commit behind `deploy/<ENV>/current`
//!   on the remote (fetched if it is not local; drift.yml's matrix), `head` that commit; never
//!   deployed: no stacks and `head` empty.
//! - `changed --base REV [--head REV]`: the stacks changed between two local commits.
//! - `changed --environment ENV` (no `--base`): the base is the commit behind
//!   `deploy/<ENV>/current` on the remote (read with ls-remote, fetched if it is not local); no
//!   deploy yet means every stack of the environment.
//!
//! - `check-core --core-config FILE`: Core's configuration of this repository (its
//!   `terraform/core/repositories/<repository>.yml`, same schema) against the checkout's
//!   `.github/gitops.yml` at `head`: exit 1 naming every disagreement ([`crate::envs::disagreements`],
//!   and [`crate::stacks::core_disagreements`]: with `stacks:` in Core's file, every stack and
//!   environment where the keys Core grants and the repository's differ; without, every stack
//!   whose state key lies outside Core's `state-prefixes`); no outputs.
//!
//! Outputs: `matrix` (`{"include":[...]}` in dependency order), `chunks` (the same entries in
//! chunks of at most 256, one layer each, in run order), `chunk-count`, `stacks`, `count`,
//! `layers`, `deleted`, `base`, `head`. The rules live in [`crate::stacks`]. Configuration is
//! validated before any network call (exit 2).

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, ValueEnum};
use git2::{Oid, Repository};

use super::{BinaryDoc, OutputDoc};
use crate::deploy;
use crate::exit::{Failure, Result};
use crate::git::{self, RemoteSpec, Session};
use crate::runner::{single_line, OutputFormat, Runner};
use crate::secret::Secret;
use crate::stacks::{self, Changes, GitTree, Opts, Resolved};

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Command {
    /// Every stack with its path, layer and state key.
    List,
    /// The stacks changed between a base and a head commit.
    Changed,
    /// Check Core's configuration of this repository against its own (exit 1 when they disagree).
    CheckCore,
}

/// The Terraform stacks of a repository and which of them changed.
#[derive(Debug, Parser)]
#[command(
    name = "stacks",
    version,
    about = "List the Terraform stacks of a repository and detect which changed"
)]
pub struct Args {
    /// What to do: list, changed, check-core.
    #[arg(value_enum, env = "GITOPS_COMMAND")]
    pub command: Command,

    /// Only stacks deploying to this environment. changed without `base`: the base is the commit behind `deploy/<env>/current` on the remote.
    #[arg(long, env = "GITOPS_ENVIRONMENT")]
    pub environment: Option<String>,

    /// changed: the base commit (a revision of the local checkout, e.g. a full SHA).
    #[arg(long, env = "GITOPS_BASE")]
    pub base: Option<String>,

    /// The head commit (a revision of the local checkout). Default: `HEAD`.
    #[arg(long, env = "GITOPS_HEAD")]
    pub head: Option<String>,

    /// list: read the stacks of the commit behind `deploy/<env>/current` on the remote (needs `environment`; fetched when the checkout lacks it) instead of `head`. Never deployed: no stacks, `head` empty.
    #[arg(long, env = "GITOPS_DEPLOYED")]
    pub deployed: bool,

    /// Also print the outputs on stdout: `text` lines or one `json` object.
    #[arg(long, env = "GITOPS_FORMAT", value_enum, default_value = "text")]
    pub format: OutputFormat,

    /// The configuration file, relative to the repository root, read from the commits.
    #[arg(long, env = "GITOPS_CONFIG", default_value = crate::envs::CONFIG_PATH)]
    pub config: String,

    /// The one stack's directory when the configuration has no `stacks:`/`stack-roots:` (today's `TF_WORKING_DIR`).
    #[arg(long, env = "GITOPS_WORKING_DIR", default_value = ".")]
    pub working_dir: String,

    /// The git remote (https URL or local path) holding the deploy tags. Default: the checkout's `origin`.
    #[arg(long, env = "GITOPS_REMOTE")]
    pub remote: Option<String>,

    /// The checkout (default: `GITHUB_WORKSPACE`, else the current directory).
    #[arg(long, env = "GITOPS_REPO_PATH")]
    pub repo_path: Option<PathBuf>,

    /// check-core: Core's configuration file of this repository (a path on disk, e.g. `core/terraform/core/repositories/<repository>.yml` in a checkout of the Core repository).
    #[arg(long, env = "GITOPS_CORE_CONFIG")]
    pub core_config: Option<PathBuf>,

    /// Token for the git remote (`x-access-token` basic auth). Default: `GITHUB_TOKEN` if set, else the credentials `actions/checkout` persisted.
    #[arg(long, env = "GITOPS_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,

    /// changed with `base` and `environment`: also every stack changed since `deploy/<env>/current` on the remote (what the environment's next deploy applies beyond `base`, e.g. a stack whose apply failed), so a pull request plans everything its merge will deploy.
    #[arg(long, env = "GITOPS_INCLUDE_UNDEPLOYED")]
    pub include_undeployed: bool,

    /// list/changed: the most dependency layers the workflow runs (its fixed layer jobs, fed by the `layer-<k>` outputs; 1-6). A configuration whose stacks of the environment need more layers is exit 2, before the remote is read.
    #[arg(long, env = "GITOPS_MAX_LAYERS")]
    pub max_layers: Option<String>,
}

/// How many `layer-<k>` outputs there are (`layer-0` ... `layer-5`).
pub const LAYER_OUTPUTS: usize = 6;

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "matrix",
        description: "`{\"include\":[{\"stack\",\"path\",\"layer\",\"state-key\"}]}` in dependency order (layers numbered 0, 1, ... within this matrix); use `chunks` over 256 entries",
    },
    OutputDoc {
        name: "chunks",
        description: "JSON array of matrices (`{\"include\":[...]}`): the matrix in chunks of at most 256 entries, each within one layer, to run in the array's order",
    },
    OutputDoc {
        name: "chunk-count",
        description: "How many chunks",
    },
    OutputDoc {
        name: "stacks",
        description: "JSON array of the stack names, in dependency order",
    },
    OutputDoc {
        name: "count",
        description: "How many stacks are in the matrix",
    },
    OutputDoc {
        name: "layers",
        description: "How many dependency layers the matrix has",
    },
    OutputDoc {
        name: "deleted",
        description: "JSON array of stacks removed from the configuration or the disk: never planned or destroyed automatically",
    },
    OutputDoc {
        name: "base",
        description: "changed: the base commit (empty for a first deploy)",
    },
    OutputDoc {
        name: "mode",
        description: "`stacks` when the configuration has `stacks:`/`stack-roots:`, `single` when the repository is one stack (`working-dir`, the template's own state key)",
    },
    OutputDoc {
        name: "layer-0",
        description: "The matrix (`{\"include\":[...]}`) of layer 0: the stacks with no dependency among the matrix; `{\"include\":[]}` when there is no such layer",
    },
    OutputDoc {
        name: "layer-1",
        description: "The matrix of layer 1 (applied after layer 0)",
    },
    OutputDoc {
        name: "layer-2",
        description: "The matrix of layer 2",
    },
    OutputDoc {
        name: "layer-3",
        description: "The matrix of layer 3",
    },
    OutputDoc {
        name: "layer-4",
        description: "The matrix of layer 4",
    },
    OutputDoc {
        name: "layer-5",
        description: "The matrix of layer 5",
    },
    OutputDoc {
        name: "head",
        description: "The head commit (with `deployed`: the commit behind `deploy/<env>/current`, empty when the environment was never deployed)",
    },
];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "stacks",
        description: "List the Terraform stacks of a repository and detect which changed",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// A revision as given by the user: a ref name or object id, checked before use.
fn validate_rev(field: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && !v.starts_with('-')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-~^@{}".contains(&b));
    stacks::require(field, v, ok, "is not a revision (a commit SHA or ref name)")
}

fn commit_of(repo: &Repository, field: &str, rev: &str) -> Result<Oid> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| {
            Failure::usage(
                field,
                format!(
                    "`{}` is not a commit of the local checkout; fetch it first (actions/checkout with `fetch-depth: 0`, or `git fetch origin <sha>`)",
                    single_line(rev)
                ),
            )
        })
}

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    if args.format == OutputFormat::Json {
        // stdout carries the one document; logs, warnings and masks go to stderr.
        runner.machine_output();
    }
    for (field, v) in [("base", &args.base), ("head", &args.head)] {
        if let Some(v) = v {
            validate_rev(field, v)?;
        }
    }
    if args.command != Command::Changed && args.base.is_some() {
        let verb = args
            .command
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        return Err(Failure::usage(
            "base",
            format!("does not apply to `{verb}`"),
        ));
    }
    match (args.command, &args.core_config) {
        (Command::CheckCore, None) => {
            return Err(Failure::usage(
                "core-config",
                "`check-core` needs `core-config`: Core's configuration file of this repository",
            ))
        }
        (Command::CheckCore, Some(_)) => {}
        (_, Some(_)) => {
            return Err(Failure::usage(
                "core-config",
                "applies to `check-core` only",
            ));
        }
        (_, None) => {}
    }
    if args.deployed {
        if args.command != Command::List {
            return Err(Failure::usage("deployed", "applies to `list` only"));
        }
        match args.environment.as_deref() {
            None => {
                return Err(Failure::usage(
                    "deployed",
                    "needs `environment`: the deploy tag read is `deploy/<environment>/current`",
                ))
            }
            // Checked before the remote is read; that it is an environment of the deployed
            // commit's configuration, once the commit is read.
            Some(e) => crate::envs::validate_env_name(e)?,
        }
        if args.head.is_some() {
            return Err(Failure::usage(
                "deployed",
                "and `head` both say which commit to read: give one of them",
            ));
        }
    }
    if args.command == Command::Changed && args.base.is_none() && args.environment.is_none() {
        return Err(Failure::usage(
            "base",
            "`changed` needs `base`, or `environment` to compare with its current deploy",
        ));
    }
    if args.include_undeployed
        && (args.command != Command::Changed || args.base.is_none() || args.environment.is_none())
    {
        return Err(Failure::usage(
            "include-undeployed",
            "applies to `changed` with both `base` and `environment`",
        ));
    }
    if let Some(r) = &args.remote {
        git::validate_remote_url("remote", r)?;
    }
    let max_layers = max_layers_input(&args)?;
    let token = args
        .github_token
        .clone()
        .or_else(|| runner.var("GITHUB_TOKEN").map(str::to_string))
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    if let Some(t) = &token {
        runner.mask(t);
    }
    let root = args
        .repo_path
        .clone()
        .or_else(|| runner.var("GITHUB_WORKSPACE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    // Reads only: libgit2 would hash every object it reads again (most of the time spent on a
    // large repository); the git CLI does not either. Objects fetched are still checked.
    git2::opts::strict_hash_verification(false);
    let repo = Repository::open(&root).map_err(|_| {
        Failure::usage(
            "repo-path",
            format!(
                "{} is not a git checkout; run actions/checkout first",
                root.display()
            ),
        )
    })?;
    let head = if args.deployed {
        let e = args.environment.as_deref().expect("checked above");
        match current_deploy(runner, &repo, &root, &args, token.clone(), e)? {
            Some(c) => c,
            None => {
                runner.info(&format!(
                    "`{e}` has no deploy yet ({} is not on the remote): no stacks are deployed there",
                    deploy::current_ref(e)
                ));
                // No commit to read a configuration from: no stacks, `head` and `mode` empty.
                let (none, nothing) = (Resolved::default(), Changes::default());
                return report(runner, &args, &none, &nothing, None, None);
            }
        }
    } else {
        commit_of(&repo, "head", args.head.as_deref().unwrap_or("HEAD"))?
    };
    let opts = Opts {
        config_path: &args.config,
        working_dir: &args.working_dir,
        environment: args.environment.as_deref(),
    };
    let env = args.environment.as_deref();

    let (resolved, changes, base) = match args.command {
        Command::CheckCore => {
            let core = args.core_config.as_deref().expect("checked above");
            let tree = repo
                .find_commit(head)
                .and_then(|c| c.tree())
                .map_err(|e| Failure::runtime(single_line(e.message())))?;
            let loaded = stacks::load(&GitTree::new(&repo, tree), &opts, "head")?;
            return check_core(runner, core, &loaded);
        }
        Command::List => {
            let tree = repo
                .find_commit(head)
                .and_then(|c| c.tree())
                .map_err(|e| Failure::runtime(single_line(e.message())))?;
            let loaded = stacks::load(&GitTree::new(&repo, tree), &opts, "head")?;
            let r = loaded.resolved;
            let changes = Changes {
                changed: (0..r.stacks.len())
                    .filter(|&i| env.is_none_or(|e| r.stacks[i].deploys_to(e)))
                    .filter(|&i| !r.missing.iter().any(|(n, _)| *n == r.stacks[i].name))
                    .map(|i| (i, stacks::Reason::Config))
                    .collect(),
                deleted: stacks::first_deploy(&r, env).deleted,
            };
            (r, changes, None)
        }
        Command::Changed => {
            let base = match (&args.base, env) {
                (Some(b), _) => Some(commit_of(&repo, "base", b)?),
                (None, Some(e)) => {
                    // Validate the head's configuration before the network call.
                    let tree = repo
                        .find_commit(head)
                        .and_then(|c| c.tree())
                        .map_err(|e| Failure::runtime(single_line(e.message())))?;
                    let loaded = stacks::load(&GitTree::new(&repo, tree), &opts, "head")?;
                    check_layers(max_layers, &loaded.resolved, env)?;
                    let base = current_deploy(runner, &repo, &root, &args, token.clone(), e)?;
                    if base.is_none() {
                        runner.info(&format!(
                            "`{e}` has no deploy yet ({} is not on the remote): every stack of `{e}` is changed",
                            deploy::current_ref(e)
                        ));
                    }
                    base
                }
                (None, None) => unreachable!("checked above"),
            };
            let d = stacks::detect(&repo, base, head, &opts)?;
            if let Some(w) = &d.warning {
                runner.warning(&single_line(w));
            }
            // One root: its plan job plans the whole root anyway, so no remote read.
            let join = args.include_undeployed && !d.head.is_single();
            let changes = match env.filter(|_| join) {
                None => d.changes,
                Some(e) => {
                    // The head was validated in full above: the remote is read only now.
                    check_layers(max_layers, &d.head, env)?;
                    let deployed = current_deploy(runner, &repo, &root, &args, token, e)?;
                    let since = stacks::detect(&repo, deployed, head, &opts)?;
                    if let Some(w) = &since.warning {
                        runner.warning(&single_line(w));
                    }
                    let sha = deployed.map(stacks::short);
                    stacks::with_undeployed(d.changes, since.changes, sha.as_deref())
                }
            };
            (d.head, changes, base)
        }
    };
    check_layers(max_layers, &resolved, env)?;
    report(runner, &args, &resolved, &changes, base, Some(head))
}

/// `max-layers`: 1 to [`LAYER_OUTPUTS`]; only for `list` and `changed`.
fn max_layers_input(args: &Args) -> Result<Option<usize>> {
    let Some(v) = args.max_layers.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if args.command == Command::CheckCore {
        return Err(Failure::usage(
            "max-layers",
            "applies to `list` and `changed` only",
        ));
    }
    match v.parse::<usize>() {
        Ok(n) if (1..=LAYER_OUTPUTS).contains(&n) => Ok(Some(n)),
        _ => Err(Failure::usage(
            "max-layers",
            format!(
                "`{}` is not a number of layers from 1 to {LAYER_OUTPUTS} (the `layer-<k>` outputs)",
                single_line(v)
            ),
        )),
    }
}

/// A workflow with `max` layer jobs cannot apply stacks (of `env`) that need more layers: exit
/// 2, decided on the whole configuration, not on what changed, so a deploy does not fail later
/// for a change deeper in the chain.
fn check_layers(max: Option<usize>, resolved: &Resolved, env: Option<&str>) -> Result<()> {
    let Some(max) = max else {
        return Ok(());
    };
    let layers: std::collections::BTreeSet<usize> = resolved
        .stacks
        .iter()
        .filter(|s| env.is_none_or(|e| s.deploys_to(e)))
        .map(|s| s.layer)
        .collect();
    if layers.len() <= max {
        return Ok(());
    }
    let deepest = resolved
        .stacks
        .iter()
        .filter(|s| env.is_none_or(|e| s.deploys_to(e)))
        .max_by_key(|s| s.layer)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    Err(Failure::usage(
        "max-layers",
        format!(
            "the stacks{} need {} dependency layers (stack `{deepest}` is in the last), but the workflow runs at most {max}: add layer jobs to the workflow and raise `max-layers` (at most {LAYER_OUTPUTS}), or flatten the `depends-on` chain",
            env.map(|e| format!(" of `{e}`")).unwrap_or_default(),
            layers.len()
        ),
    ))
}

/// The matrix of each layer (`layer-<k>`), with at most [`stacks::MATRIX_LIMIT`] entries each
/// (GitHub's limit for one matrix job): exit 2 beyond it, naming the layer.
fn layer_matrices(m: &stacks::Matrix) -> Result<Vec<stacks::Matrix>> {
    let mut out: Vec<stacks::Matrix> = (0..LAYER_OUTPUTS)
        .map(|_| stacks::Matrix {
            include: Vec::new(),
        })
        .collect();
    for e in &m.include {
        if let Some(l) = out.get_mut(e.layer) {
            l.include.push(e.clone());
        }
    }
    if let Some((k, l)) = out
        .iter()
        .enumerate()
        .find(|(_, l)| l.include.len() > stacks::MATRIX_LIMIT)
    {
        return Err(Failure::usage(
            "max-layers",
            format!(
                "layer {k} has {} stacks: more than one matrix job runs ({}); fan out the `chunks` output instead of `layer-<k>`",
                l.include.len(),
                stacks::MATRIX_LIMIT
            ),
        ));
    }
    Ok(out)
}

/// Core's configuration files are small; anything larger is not one.
const MAX_CORE_CONFIG: u64 = 1 << 20;

/// `check-core`: Core's file against the repository's configuration (already loaded and
/// validated); every disagreement is an error line, and any is exit 1.
fn check_core(runner: &Runner, core_path: &Path, loaded: &stacks::Loaded) -> Result<()> {
    let shown = single_line(&core_path.display().to_string());
    let meta = std::fs::metadata(core_path)
        .map_err(|e| Failure::usage("core-config", format!("cannot read {shown}: {}", e.kind())))?;
    if !meta.is_file() || meta.len() > MAX_CORE_CONFIG {
        return Err(Failure::usage(
            "core-config",
            format!("{shown} is not a regular file of at most 1 MiB"),
        ));
    }
    let text = std::fs::read_to_string(core_path)
        .map_err(|e| Failure::usage("core-config", format!("cannot read {shown}: {}", e.kind())))?;
    let core = crate::envs::Model::from_yaml(&text, &core_path.display().to_string())
        .map_err(|e| Failure::usage("core-config", e.message))?;
    let mut found = crate::envs::disagreements(&core, &loaded.model);
    // What Core grants: its state-prefixes, or its default `<repository>/` (the file is named
    // after the repository).
    let prefixes = core.state_prefixes.clone().unwrap_or_else(|| {
        let stem = core_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![format!("{stem}/")]
    });
    let envs: Vec<&str> = loaded
        .model
        .environments()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    // What Core grants per environment: its `stacks:` keys, or its prefixes (src/stacks.rs).
    let section = stacks::Section::from_yaml(&text, &core_path.display().to_string())
        .map_err(|e| Failure::usage("core-config", e.message))?;
    let core_envs: Vec<&str> = core
        .environments()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let grants = stacks::CoreGrants::from_core(section.stacks.as_deref(), &core_envs, &prefixes);
    let first = loaded
        .model
        .state_prefixes
        .as_ref()
        .and_then(|p| p.first().cloned())
        .or_else(|| prefixes.first().cloned())
        .unwrap_or_default();
    found.extend(stacks::core_disagreements(
        &loaded.resolved,
        &envs,
        &grants,
        core.state_prefixes.is_some(),
        &prefixes,
        &first,
    ));
    runner.info(&format!(
        "Core's configuration {shown} against {}",
        loaded.model.log_line()
    ));
    if found.is_empty() {
        runner.info("they agree: the environments, state-prefixes and registries Core creates are the repository's");
        return Ok(());
    }
    for f in &found {
        runner.error(&single_line(f));
    }
    Err(Failure::refused(format!(
        "Core's configuration and the repository's disagree in {} place(s): change one of them so both say the same",
        found.len()
    )))
}

/// The commit behind `deploy/<env>/current` on the remote (`None`: never deployed), made
/// readable in `repo` (fetched through the git session when it is not local).
fn current_deploy(
    runner: &Runner,
    repo: &Repository,
    root: &Path,
    args: &Args,
    token: Option<Secret>,
    env: &str,
) -> Result<Option<Oid>> {
    let current = deploy::current_ref(env);
    git::validate_full_ref("environment", &current)?;
    let spec = RemoteSpec {
        repo_path: Some(root.to_path_buf()),
        remote: args.remote.clone(),
        token,
        temp_dir: runner.var("RUNNER_TEMP").map(PathBuf::from),
    };
    let session = Session::open(&spec)?;
    if let Some(s) = session.auth().secret() {
        runner.mask(s);
    }
    let refs = session.ls_remote(&[&current])?;
    let Some(seen) = refs.get(&current) else {
        return Ok(None);
    };
    let base = seen.peeled;
    let odb = repo.odb().map_err(git::GitError::from)?;
    if odb.exists(base) {
        return Ok(Some(base));
    }
    session.ensure_with_depth(&[seen.oid], &[&current], Some(1))?;
    let mut dirs = vec![session.repo().path().join("objects")];
    dirs.extend(git::local_objects_dir(session.url()));
    for d in dirs {
        if d.is_dir() && !odb.exists(base) {
            odb.add_disk_alternate(&d.display().to_string())
                .map_err(git::GitError::from)?;
        }
    }
    if !odb.exists(base) {
        return Err(Failure::runtime(format!(
            "the deployed commit {base} of `{env}` could not be fetched into the checkout; fetch it (actions/checkout with `fetch-depth: 0`)"
        )));
    }
    Ok(Some(base))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Failure::runtime(format!("internal: {e}")))
}

fn report(
    runner: &Runner,
    args: &Args,
    resolved: &Resolved,
    changes: &Changes,
    base: Option<Oid>,
    head: Option<Oid>,
) -> Result<()> {
    let env = args.environment.as_deref();
    let selected: Vec<usize> = changes.changed.iter().map(|(i, _)| *i).collect();
    let out = stacks::matrix(&resolved.stacks, &selected, env, &changes.deleted);
    // In machine-output mode (--format json) the runner sends log lines to stderr itself.
    let log = |m: &str| runner.info(m);
    let what = if args.command != Command::Changed {
        "stacks"
    } else {
        "changed stacks"
    };
    log(&format!(
        "{} {what} in {} layer(s){}",
        out.matrix.include.len(),
        out.layers,
        env.map(|e| format!(" for `{e}`")).unwrap_or_default()
    ));
    if args.command == Command::Changed {
        for (i, reason) in &changes.changed {
            let s = &resolved.stacks[*i];
            log(&format!(
                "  {} ({}): {}",
                s.name,
                s.shown_path(),
                single_line(&reason.to_string())
            ));
        }
    }
    for name in &changes.deleted {
        runner.warning(&format!(
            "stack `{name}` was removed from the configuration or from disk: it is not planned or destroyed automatically. To destroy it deliberately, restore it, run `terraform destroy` in it with its state key, then remove it again."
        ));
    }
    let names: Vec<&str> = out
        .matrix
        .include
        .iter()
        .map(|e| e.stack.as_str())
        .collect();
    // Before any output: a layer too large for one matrix job is exit 2 with no outputs.
    let per_layer = match args.max_layers {
        Some(_) => layer_matrices(&out.matrix)?,
        None => Vec::new(),
    };
    runner.set_output("matrix", &json(&out.matrix)?)?;
    runner.set_output("chunks", &json(&out.chunks)?)?;
    runner.set_output("chunk-count", &out.chunks.len().to_string())?;
    runner.set_output("stacks", &json(&names)?)?;
    runner.set_output("count", &names.len().to_string())?;
    runner.set_output("layers", &out.layers.to_string())?;
    runner.set_output("deleted", &json(&out.deleted)?)?;
    runner.set_output("base", &base.map(|b| b.to_string()).unwrap_or_default())?;
    let mode = match head {
        None => "",
        Some(_) if resolved.is_single() => "single",
        Some(_) => "stacks",
    };
    runner.set_output("mode", mode)?;
    for (k, l) in per_layer.iter().enumerate() {
        runner.set_output(&format!("layer-{k}"), &json(l)?)?;
    }
    runner.set_output("head", &head.map(|h| h.to_string()).unwrap_or_default())?;
    if args.format == OutputFormat::Json || !runner.in_actions() {
        runner.finish(args.format);
    }
    Ok(())
}
