//! The environments model shared by every binary: which environments exist, their branches,
//! their promotion order, and what AWS account/region each one expects.
//!
//! With no configuration the seed's model applies: `dev` (branch `dev`) -> `staging` (branch
//! `main`) -> `prod` (branch `prod`, production). An app repository may override it in
//! `.github/gitops.yml`:
//!
//! ```yaml
//! environments:        # list order = promotion order
//!   - name: dev
//!     branch: dev
//!   - name: staging
//!     branch: main
//!   - name: prod
//!     branch: prod
//!     production: true
//!     aws-account-id: "123456789012"
//!     aws-region: eu-west-1
//!     windows:           # optional: when this environment may change (see `windows`)
//!       time-zone: Europe/Berlin
//!       allow: ["Mon-Thu 09:00-16:00"]
//!       freeze:
//!         - { from: "2026-12-20T00:00", to: "2027-01-04T00:00", reason: "year-end freeze" }
//!     verify:            # optional: checks after every deploy (see `verify`)
//!       window: 5m
//!       auto-rollback: true
//!       http:
//!         - { name: health, url: "https://app.example.com/health", body: ok }
//!     reviewers:         # optional: who approves a deploy (GitHub numeric ids; Core sets them)
//!       teams: [1111111]
//! state-prefixes: ["app/"]  # optional: the state keys this repository's stacks use (Core grants them)
//! registries: ["app"]       # optional: its images, one registry each per environment (Core creates them)
//! preview:             # optional: settings of preview environments (see below)
//!   label: preview     # only pull requests with this label get one (default: every same-repo PR)
//!   max-age: 7d        # the sweep destroys older previews (default 7d; 1h..90d)
//!   url-output: url    # the Terraform output holding a preview's URL (default `url`)
//!     require-no-drift: true  # optional: no promotion into prod while it has drift
//! ```
//!
//! The same schema is Core's configuration of the repository (`terraform/core/repositories/
//! <repository>.yml`): [`disagreements`] says where Core's file and the repository's differ.
//!
//! Unknown keys, bad names, duplicate names or branches are refused with a clear error (exit 2).
//!
//! ## Preview environments (Terraform workspaces)
//!
//! A pull request into an environment's branch may get a *preview*: the same Terraform root
//! applied into the workspace `pr-<number>` of that environment. Which environment allows it is
//! one rule, [`check_workspace`], that every binary taking a `workspace` input asks:
//! - a workspace name is `default` or `pr-<digits>` (no leading zero), else exit 2;
//! - a workspace other than `default` is refused (exit 1, naming the rule) unless the
//!   environment allows previews: `previews: true`, or, when the key is absent, the environment
//!   is named `dev` and is the first of the promotion order (the built-in default: only `dev`).
//!
//! By construction previews never reach staging or production: `previews: true` is refused when
//! loading the file (exit 2) on a `production: true` environment and on any environment that is
//! promoted into (every environment but the first of the promotion order).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::{Failure, Result};
use crate::runner::single_line;
use crate::validate;

/// Where an app repository keeps its override, relative to the repository root.
pub const CONFIG_PATH: &str = ".github/gitops.yml";

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Environment {
    /// Name, e.g. `staging`: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// The branch that *is* this environment, e.g. `main`.
    pub branch: String,
    /// Production environments get stricter rules (GitHub `production_environment`, policy).
    #[serde(default)]
    pub production: bool,
    /// The AWS account this environment must deploy into (12 digits), if pinned.
    #[serde(default)]
    pub aws_account_id: Option<String>,
    /// The AWS region this environment deploys into, if pinned.
    #[serde(default)]
    pub aws_region: Option<String>,
    /// Deploy windows and freezes ([`crate::windows`]); absent: any time.
    #[serde(default)]
    pub windows: Option<crate::windows::Config>,
    /// Who must approve a deploy (GitHub numeric ids), set on the GitHub environment by Core.
    #[serde(default)]
    pub reviewers: Option<Reviewers>,
    /// Verification after a deploy ([`crate::verify`]); absent: none.
    #[serde(default)]
    pub verify: Option<crate::verify::Config>,
    /// Whether pull requests get preview workspaces here ([`check_workspace`]); absent: only
    /// an environment named `dev`.
    #[serde(default)]
    pub previews: Option<bool>,
    /// What an absent `previews` means here: true only for a non-production `dev` that is the
    /// first environment of the promotion order (set when the model is built).
    #[serde(skip)]
    previews_default: bool,
    /// `require-no-drift`: promotion into this environment is refused while it has an open
    /// drift issue (`plan-gate drift`, the `gitops-drift` label). Opt-in; default `false`.
    #[serde(default)]
    pub require_no_drift: bool,
}

/// The `preview:` section as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PreviewFile {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
    #[serde(default)]
    url_output: Option<String>,
}

/// Preview settings, validated ([`Model::preview`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewSettings {
    /// Only pull requests carrying this label get a preview; `None`: every same-repository PR.
    pub label: Option<String>,
    /// The sweep destroys previews older than this.
    pub max_age: std::time::Duration,
    /// The Terraform output whose value is the preview's URL.
    pub url_output: String,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        PreviewSettings {
            label: None,
            max_age: std::time::Duration::from_secs(7 * 86400),
            url_output: "url".into(),
        }
    }
}

/// Why a pull request gets no preview ([`PreviewSettings::eligible`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// The head branch is in another repository: fork code never runs with the environment's
    /// deploy credentials.
    Fork,
    /// The configuration asks for a label the pull request does not carry.
    NoLabel(String),
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ineligible::Fork => write!(
                f,
                "this pull request comes from a fork: a preview runs the pull request's code with the environment's deploy credentials, which are never given to code from another repository"
            ),
            Ineligible::NoLabel(l) => write!(
                f,
                "previews are only for pull requests labelled `{l}` ({CONFIG_PATH} `preview.label`)"
            ),
        }
    }
}

impl PreviewSettings {
    /// Whether a pull request gets a preview: never from a fork (`same_repository` false), and
    /// only with the configured label when there is one. The fork rule comes first.
    pub fn eligible(
        &self,
        same_repository: bool,
        labels: &[String],
    ) -> std::result::Result<(), Ineligible> {
        if !same_repository {
            return Err(Ineligible::Fork);
        }
        match &self.label {
            Some(l) if !labels.iter().any(|x| x == l) => Err(Ineligible::NoLabel(l.clone())),
            _ => Ok(()),
        }
    }
}

/// The one rule for `max-age` (the config key and the `max-age` input of the sweep).
pub const MAX_AGE_RULE: validate::DurationRule = validate::DurationRule {
    min_secs: 3600,
    max_secs: 90 * 86400,
    days: true,
    rule: "between 1h and 90d (digits then `h` or `d`, e.g. `7d`)",
};

/// The workspace every ordinary deploy uses.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A validated workspace name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspace {
    /// `default`: the environment itself.
    Default,
    /// `pr-<number>`: the preview of pull request `number`.
    Preview(u64),
}

impl Workspace {
    /// Parse a workspace name: `default` or `pr-<digits>` (1-10 digits, no leading zero, not
    /// zero) — stricter than Terraform's own rules (no `/`, no spaces, not empty), so the name
    /// is safe in a state key, a tag name and a GitHub environment name. Exit 2 otherwise.
    pub fn parse(field: &str, v: &str) -> Result<Workspace> {
        if v == DEFAULT_WORKSPACE {
            return Ok(Workspace::Default);
        }
        let n = v.strip_prefix("pr-").filter(|d| {
            !d.is_empty()
                && d.len() <= 10
                && !d.starts_with('0')
                && d.bytes().all(|b| b.is_ascii_digit())
        });
        match n.and_then(|d| d.parse::<u64>().ok()) {
            Some(n) => Ok(Workspace::Preview(n)),
            None => Err(Failure::usage(
                field,
                format!(
                    "`{}` is not a workspace name: `default`, or `pr-<pull request number>` (digits, no leading zero)",
                    single_line(v)
                ),
            )),
        }
    }

    /// The preview workspace of pull request `pr`.
    pub fn of_pr(pr: u64) -> Result<Workspace> {
        Workspace::parse("pr-number", &format!("pr-{pr}"))
    }

    /// The name (`default`, `pr-12`).
    pub fn name(&self) -> String {
        match self {
            Workspace::Default => DEFAULT_WORKSPACE.into(),
            Workspace::Preview(n) => format!("pr-{n}"),
        }
    }

    /// The pull request of a preview workspace.
    pub fn pr(&self) -> Option<u64> {
        match self {
            Workspace::Default => None,
            Workspace::Preview(n) => Some(*n),
        }
    }
}

/// The one workspace rule every binary asks (plan-gate, tag-deploy, promote, oidc-login):
/// parse `workspace` (exit 2 when it is not `default` or `pr-<digits>`), then refuse a preview
/// workspace for an environment that does not allow previews (exit 1, naming the rule).
pub fn check_workspace(env: &Environment, field: &str, workspace: &str) -> Result<Workspace> {
    let ws = Workspace::parse(field, workspace)?;
    if ws == Workspace::Default || env.allows_previews() {
        return Ok(ws);
    }
    let why = if env.production {
        format!("`{}` is a production environment", env.name)
    } else if env.previews == Some(false) {
        format!("`{}` says `previews: false`", env.name)
    } else {
        format!("`{}` is not marked `previews: true`", env.name)
    };
    Err(Failure::refused(format!(
        "workspace `{}` refused for environment `{}`: preview workspaces are allowed only in an environment that allows previews ({CONFIG_PATH} `previews: true`; by default only `dev`), and {why}; a deploy of `{}` uses the `default` workspace",
        ws.name(),
        env.name,
        env.name
    )))
}

/// The required reviewers of an environment: GitHub numeric user and team ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewers {
    /// User ids.
    #[serde(default)]
    pub users: Vec<u64>,
    /// Team ids.
    #[serde(default)]
    pub teams: Vec<u64>,
}

/// GitHub accepts at most this many required reviewers (users and teams) per environment.
pub const MAX_REVIEWERS: usize = 6;

/// The configuration file as written: the parts this module owns (the stacks' keys are
/// accepted and left to [`crate::stacks`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Absent: the built-in environments (a file may hold only `stacks:`).
    pub environments: Option<Vec<Environment>>,
    /// The state key prefixes of the repository's stacks (Core grants its roles those only).
    #[serde(default, rename = "state-prefixes")]
    pub state_prefixes: Option<Vec<String>>,
    /// The repository's image names (Core creates one registry per image and environment).
    #[serde(default)]
    pub registries: Option<Vec<String>>,
    /// Preview settings ([`PreviewSettings`]).
    #[serde(default)]
    pub preview: Option<PreviewFile>,
    /// Owned and validated by [`crate::stacks`].
    #[serde(default, rename = "stacks")]
    _stacks: Option<serde::de::IgnoredAny>,
    /// Owned and validated by [`crate::stacks`].
    #[serde(default, rename = "stack-roots")]
    _stack_roots: Option<serde::de::IgnoredAny>,
}

/// The ordered list of environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    envs: Vec<Environment>,
    /// `state-prefixes`, as written (absent: Core's default `<repository>/`).
    pub state_prefixes: Option<Vec<String>>,
    /// `registries`, as written (absent: Core's default, the repository's name).
    pub registries: Option<Vec<String>>,
    /// Where the model came from (a file path, or `built-in default`).
    pub source: String,
    /// The log line naming the model ([`Model::log_line`]).
    log: String,
    /// Preview settings.
    preview: PreviewSettings,
}

impl Default for Model {
    fn default() -> Self {
        let e = |name: &str, branch: &str, production: bool| Environment {
            name: name.into(),
            branch: branch.into(),
            production,
            aws_account_id: None,
            aws_region: None,
            windows: None,
            reviewers: None,
            verify: None,
            previews: None,
            previews_default: name == "dev",
            require_no_drift: false,
        };
        Model {
            envs: vec![
                e("dev", "dev", false),
                e("staging", "main", false),
                e("prod", "prod", true),
            ],
            state_prefixes: None,
            registries: None,
            source: "built-in default".into(),
            log: "built-in default model".into(),
            preview: PreviewSettings::default(),
        }
    }
}

impl Model {
    /// Parse and validate a model from YAML text.
    pub fn from_yaml(text: &str, source: &str) -> Result<Model> {
        let file: File = serde_yaml_ng::from_str(text)
            .map_err(|e| Failure::usage("config", validate::config_error(source, &e)))?;
        Model::from_file(file, source)
    }

    /// A [`File`] from its parts, for a module that parsed them itself ([`crate::stacks`]).
    pub fn file(
        environments: Option<Vec<Environment>>,
        state_prefixes: Option<Vec<String>>,
        registries: Option<Vec<String>>,
        preview: Option<PreviewFile>,
    ) -> File {
        File {
            environments,
            state_prefixes,
            registries,
            preview,
            ..File::default()
        }
    }

    /// Validate a model from a configuration file that another module already parsed into a
    /// [`File`]: the same model and the same errors as [`Model::from_yaml`] of that file
    /// ([`crate::stacks`] parses the file once for its section and this one and hands this
    /// part over).
    pub fn from_file(file: File, source: &str) -> Result<Model> {
        let preview = preview_settings(source, file.preview.unwrap_or_default())?;
        // A file that only lists stacks keeps the built-in environments -- said in the log, so
        // it is never a silent fallback.
        let Some(envs) = file.environments else {
            let model = Model {
                log: format!("built-in default model: {source} defines no `environments`"),
                state_prefixes: file.state_prefixes,
                registries: file.registries,
                preview,
                ..Model::default()
            };
            model.validate_repository_keys(source)?;
            return Ok(model);
        };
        let mut envs = envs;
        for (i, e) in envs.iter_mut().enumerate() {
            e.previews_default = i == 0 && e.name == "dev" && !e.production;
        }
        let model = Model {
            envs,
            state_prefixes: file.state_prefixes,
            registries: file.registries,
            source: source.to_string(),
            log: format!("environments from {source}"),
            preview,
        };
        model.validate()?;
        Ok(model)
    }

    /// Load the model for a repository checkout: `explicit` (a `config` input) if given, else
    /// `<root>/.github/gitops.yml` if it exists, else the built-in default -- but only for a
    /// checkout that exists: a `root` that is not a directory is a usage error (exit 2), never
    /// the default model (a mistyped `repo-path` must not promote along the wrong stages).
    /// The default file must stay inside the checkout: a symlink that leads out of it is
    /// refused. [`Model::log_line`] says which model was used.
    pub fn load(root: &Path, explicit: Option<&Path>) -> Result<Model> {
        let shown = |p: &Path| single_line(&p.display().to_string());
        let real_root = std::fs::canonicalize(root)
            .ok()
            .filter(|r| r.is_dir())
            .ok_or_else(|| {
                Failure::usage(
                    "repo-path",
                    format!(
                        "`{}` is not an existing directory (the checkout whose {CONFIG_PATH} defines the environments)",
                        shown(root)
                    ),
                )
            })?;
        let path: PathBuf = match explicit {
            Some(p) => p.to_path_buf(),
            None => root.join(CONFIG_PATH),
        };
        if explicit.is_none() {
            match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Model {
                        log: format!(
                            "built-in default model: no {CONFIG_PATH} in {}",
                            shown(root)
                        ),
                        ..Model::default()
                    });
                }
                _ => {
                    let inside =
                        std::fs::canonicalize(&path).is_ok_and(|real| real.starts_with(&real_root));
                    if !inside {
                        return Err(Failure::usage(
                            "config",
                            format!(
                                "{} is a link that leads outside the checkout {} (or nowhere); the environments file must be part of the repository",
                                shown(&path),
                                shown(root)
                            ),
                        ));
                    }
                }
            }
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => Model::from_yaml(&text, &path.display().to_string()),
            Err(e) => Err(Failure::usage(
                "config",
                format!("cannot read {}: {}", shown(&path), e.kind()),
            )),
        }
    }

    /// One log line saying which model is in use: `environments from <path>` or
    /// `built-in default model: no .github/gitops.yml in <checkout>`.
    pub fn log_line(&self) -> &str {
        &self.log
    }

    fn validate(&self) -> Result<()> {
        let src = &self.source;
        if self.envs.is_empty() {
            return Err(Failure::usage(
                "config",
                format!("{src}: `environments` is empty"),
            ));
        }
        if self.envs.len() > 20 {
            return Err(Failure::usage(
                "config",
                format!("{src}: at most 20 environments are supported"),
            ));
        }
        for (i, e) in self.envs.iter().enumerate() {
            // The value is not repeated: a file may hold what was pasted in the wrong place.
            let bad = |key: &str, rule: &str| {
                Failure::usage("config", format!("{src}: environments[{i}].{key} {rule}"))
            };
            validate_env_name(&e.name).map_err(|_| {
                bad(
                    "name",
                    "is not a valid environment name (1-32 of a-z, 0-9, '-', starting with a letter)",
                )
            })?;
            validate::branch_name(&e.branch).map_err(|_| {
                bad(
                    "branch",
                    "is not a valid branch name (git's rules; letters, digits, `.`, `_`, `/`, `-`; not `HEAD` or a full ref)",
                )
            })?;
            if let Some(a) = &e.aws_account_id {
                validate::account_id(a).map_err(|_| {
                    bad(
                        "aws-account-id",
                        "is not an AWS account id (exactly 12 digits)",
                    )
                })?;
            }
            if let Some(r) = &e.aws_region {
                validate::region(r).map_err(|_| {
                    bad(
                        "aws-region",
                        "is not an AWS region code (e.g. `us-east-1`; lowercase, no zone letter)",
                    )
                })?;
            }
            if e.previews == Some(true) && e.production {
                return Err(bad(
                    "previews",
                    "is true on a production environment: previews are never for production",
                ));
            }
            if e.previews == Some(true) && i > 0 {
                return Err(bad(
                    "previews",
                    "is true on an environment that is promoted into: previews are only for the first environment of the promotion order",
                ));
            }
            if let Some(r) = &e.reviewers {
                if r.users.iter().chain(&r.teams).any(|&id| id == 0) {
                    return Err(bad(
                        "reviewers",
                        "holds an id that is not a GitHub numeric id (a positive number)",
                    ));
                }
                if r.users.len() + r.teams.len() > MAX_REVIEWERS {
                    return Err(bad(
                        "reviewers",
                        &format!(
                            "lists more than {MAX_REVIEWERS} users and teams (GitHub's limit)"
                        ),
                    ));
                }
            }
            let at = format!("{src}: environments[{i}].");
            e.windows_at(&at)?;
            e.checks_at(&at)?;
            for (j, other) in self.envs[..i].iter().enumerate() {
                if other.name == e.name {
                    return Err(Failure::usage(
                        "config",
                        format!(
                            "{src}: environment `{}` is listed twice (environments[{j}] and [{i}])",
                            e.name
                        ),
                    ));
                }
                if other.branch == e.branch {
                    return Err(Failure::usage(
                        "config",
                        format!(
                            "{src}: `{}` and `{}` use the same branch (environments[{j}] and [{i}])",
                            other.name, e.name
                        ),
                    ));
                }
            }
        }
        self.validate_repository_keys(src)
    }

    /// `state-prefixes` and `registries`: each a non-empty list of at most 20 distinct values
    /// of their own form; state prefixes may not contain one another (the roles of one prefix
    /// would reach into the other's state).
    fn validate_repository_keys(&self, src: &str) -> Result<()> {
        let bad = |key: &str, rule: &str| Failure::usage("config", format!("{src}: {key} {rule}"));
        for (key, list) in [
            ("state-prefixes", &self.state_prefixes),
            ("registries", &self.registries),
        ] {
            let Some(list) = list else { continue };
            if list.is_empty() || list.len() > 20 {
                return Err(bad(key, "needs 1 to 20 entries"));
            }
            for (i, v) in list.iter().enumerate() {
                let ok = if key == "registries" {
                    registry_name_ok(v)
                } else {
                    state_prefix_ok(v)
                };
                if !ok {
                    let rule = if key == "registries" {
                        "is not an image name (1-100 of a-z, 0-9, and '.', '_', '-' or '/' between them)"
                    } else {
                        "is not a state key prefix (relative, 1-200 of A-Z, a-z, 0-9, '.', '_', '-', '=', '/', ending with '/')"
                    };
                    return Err(bad(&format!("{key}[{i}]"), rule));
                }
                if let Some(j) = list[..i].iter().position(|o| o == v) {
                    return Err(bad(
                        key,
                        &format!("lists the same value twice ([{j}] and [{i}])"),
                    ));
                }
                if key == "state-prefixes" {
                    if let Some(j) = list[..i]
                        .iter()
                        .position(|o| o.starts_with(v.as_str()) || v.starts_with(o.as_str()))
                    {
                        return Err(bad(key, &format!("[{j}] and [{i}] contain one another")));
                    }
                }
            }
        }
        Ok(())
    }

    /// The preview settings (`preview:`; defaults when absent).
    pub fn preview(&self) -> &PreviewSettings {
        &self.preview
    }

    /// All environments in promotion order.
    pub fn environments(&self) -> &[Environment] {
        &self.envs
    }

    /// Look an environment up by its exact name. Near misses (`Prod`, `prod `) are refused with
    /// a hint; the field name is used in the message.
    pub fn get(&self, field: &str, name: &str) -> Result<&Environment> {
        if let Some(e) = self.envs.iter().find(|e| e.name == name) {
            return Ok(e);
        }
        let shown = single_line(name);
        let known: Vec<&str> = self.envs.iter().map(|e| e.name.as_str()).collect();
        let hint = self
            .envs
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name.trim()))
            .map(|e| {
                format!(
                    " (did you mean `{}`? names are exact and case-sensitive)",
                    e.name
                )
            })
            .unwrap_or_default();
        let what = if name.is_empty() {
            "is empty".to_string()
        } else {
            format!("`{shown}` is not a configured environment")
        };
        Err(Failure::usage(
            field,
            format!(
                "{what}{hint}; known: {} (from {})",
                known.join(", "),
                self.source
            ),
        ))
    }

    /// Position in the promotion order.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.envs.iter().position(|e| e.name == name)
    }

    /// The environment after `name`, if any.
    pub fn next(&self, name: &str) -> Option<&Environment> {
        self.index(name).and_then(|i| self.envs.get(i + 1))
    }

    /// The environment before `name`, if any.
    pub fn previous(&self, name: &str) -> Option<&Environment> {
        self.index(name)
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.envs.get(i))
    }

    /// The environment whose branch is `branch`.
    pub fn by_branch(&self, branch: &str) -> Option<&Environment> {
        self.envs.iter().find(|e| e.branch == branch)
    }
}

impl Environment {
    /// Whether this environment allows preview workspaces: `previews` as configured, else only
    /// a non-production environment named `dev` that is first in the promotion order (the
    /// built-in default).
    pub fn allows_previews(&self) -> bool {
        !self.production && self.previews.unwrap_or(self.previews_default)
    }

    /// This environment's deploy windows, if configured (validated when the model loaded).
    pub fn windows(&self) -> Result<Option<crate::windows::Windows>> {
        self.windows_at(&format!("`{}`: ", self.name))
    }

    /// This environment's verification checks, if declared (validated when the model loaded).
    pub fn checks(&self) -> Result<Option<crate::verify::Checks>> {
        self.checks_at(&format!("`{}`: ", self.name))
    }

    fn windows_at(&self, at: &str) -> Result<Option<crate::windows::Windows>> {
        block(at, "windows", self.windows.as_ref(), |c| {
            crate::windows::Windows::new(c).map_err(|e| (e.key, e.rule))
        })
    }

    fn checks_at(&self, at: &str) -> Result<Option<crate::verify::Checks>> {
        block(at, "verify", self.verify.as_ref(), |c| {
            crate::verify::Checks::new(c).map_err(|e| (e.key, e.rule))
        })
    }
}

/// A validated block of an environment; its error says where (`at`), the block and the key,
/// never the value.
fn block<C, T>(
    at: &str,
    name: &str,
    c: Option<&C>,
    new: impl Fn(&C) -> std::result::Result<T, (String, &'static str)>,
) -> Result<Option<T>> {
    c.map(|c| {
        new(c).map_err(|(key, rule)| Failure::usage("config", format!("{at}{name}.{key} {rule}")))
    })
    .transpose()
}

fn registry_name_ok(v: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    v.len() <= 100 && v.split('/').all(part)
}

fn state_prefix_ok(v: &str) -> bool {
    v.len() <= 200
        && v.ends_with('/')
        && !v.starts_with('/')
        && !v.contains("//")
        && !v.split('/').any(|p| p == "." || p == "..")
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-=/".contains(c))
}

/// Where Core's configuration of a repository (`core`) and the repository's own `.github/
/// gitops.yml` (`repo`) disagree on what Core creates: the environments (names and order,
/// branch, production, aws-account-id, aws-region, reviewers), `state-prefixes` and
/// `registries`. Deploy windows are the repository's alone and not compared. One line per
/// difference, naming the environment and key; empty: they agree. The values shown passed
/// validation (names, branches, ids), so they are safe to print.
pub fn disagreements(core: &Model, repo: &Model) -> Vec<String> {
    let mut out = Vec::new();
    let names = |m: &Model| m.envs.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    let (cn, rn) = (names(core), names(repo));
    if cn != rn {
        out.push(format!(
            "environments: Core has [{}], the repository [{}] (names and promotion order must match)",
            cn.join(", "),
            rn.join(", ")
        ));
    }
    let show = |v: Option<&str>| v.map_or("(not set)".to_string(), |v| format!("`{v}`"));
    for c in &core.envs {
        let Some(r) = repo.envs.iter().find(|r| r.name == c.name) else {
            continue;
        };
        let mut differ = |key: &str, a: String, b: String| {
            if a != b {
                out.push(format!(
                    "environment `{}`: {key} is {a} in Core, {b} in the repository",
                    c.name
                ));
            }
        };
        differ(
            "branch",
            show(Some(c.branch.as_str())),
            show(Some(r.branch.as_str())),
        );
        differ(
            "production",
            c.production.to_string(),
            r.production.to_string(),
        );
        differ(
            "aws-account-id",
            show(c.aws_account_id.as_deref()),
            show(r.aws_account_id.as_deref()),
        );
        differ(
            "aws-region",
            show(c.aws_region.as_deref()),
            show(r.aws_region.as_deref()),
        );
        let reviewers = |e: &Environment| {
            e.reviewers.as_ref().map_or("(not set)".to_string(), |r| {
                let mut u = r.users.clone();
                let mut t = r.teams.clone();
                u.sort_unstable();
                t.sort_unstable();
                format!("users {u:?}, teams {t:?}")
            })
        };
        differ("reviewers", reviewers(c), reviewers(r));
    }
    let list = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map_or("(not set)".to_string(), |v| format!("[{}]", v.join(", ")))
    };
    for (key, a, b) in [
        ("state-prefixes", &core.state_prefixes, &repo.state_prefixes),
        ("registries", &core.registries, &repo.registries),
    ] {
        if a != b {
            out.push(format!(
                "{key} is {} in Core, {} in the repository",
                list(a),
                list(b)
            ));
        }
    }
    out
}

/// Validate the `preview:` section (values never repeated: the file may hold a pasted secret).
fn preview_settings(src: &str, f: PreviewFile) -> Result<PreviewSettings> {
    let bad =
        |key: &str, rule: &str| Failure::usage("config", format!("{src}: preview.{key} {rule}"));
    let mut out = PreviewSettings::default();
    if let Some(l) = f.label {
        let ok = !l.is_empty()
            && l.chars().count() <= 50
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        if !ok {
            return Err(bad(
                "label",
                "is not a label name (1-50 of letters, digits, `-_.:/`)",
            ));
        }
        out.label = Some(l);
    }
    if let Some(m) = f.max_age {
        out.max_age = validate::duration("max-age", &m, &MAX_AGE_RULE).map_err(|_| {
            bad(
                "max-age",
                &format!("is not a duration {}", MAX_AGE_RULE.rule),
            )
        })?;
    }
    if let Some(u) = f.url_output {
        validate_output_name("url-output", &u)
            .map_err(|_| bad("url-output", "is not a Terraform output name (a letter or `_`, then letters, digits, `_`, `-`; at most 64)"))?;
        out.url_output = u;
    }
    Ok(out)
}

/// A Terraform output name: a letter or `_`, then letters, digits, `_` or `-` (at most 64).
pub fn validate_output_name(field: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            field,
            format!("`{}` is not a Terraform output name", single_line(v)),
        ))
    }
}

/// Environment names: 1–32 chars of `[a-z0-9-]`, starting with a letter, not ending with `-`.
pub fn validate_env_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            "environment",
            format!("`{}` is not a valid environment name (1-32 of a-z, 0-9, '-', starting with a letter)", single_line(name)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_seed_model() {
        let m = Model::default();
        let names: Vec<_> = m
            .environments()
            .iter()
            .map(|e| (e.name.as_str(), e.branch.as_str(), e.production))
            .collect();
        assert_eq!(
            names,
            vec![
                ("dev", "dev", false),
                ("staging", "main", false),
                ("prod", "prod", true)
            ]
        );
        assert_eq!(m.next("dev").unwrap().name, "staging");
        assert_eq!(m.next("staging").unwrap().name, "prod");
        assert!(m.next("prod").is_none());
        assert_eq!(m.previous("staging").unwrap().name, "dev");
        assert_eq!(m.by_branch("main").unwrap().name, "staging");
    }

    #[test]
    fn override_file_sets_order_and_fields() {
        let m = Model::from_yaml(
            "environments:\n  - name: qa\n    branch: qa\n  - name: live\n    branch: release\n    production: true\n    aws-account-id: \"123456789012\"\n    aws-region: eu-west-1\n",
            "t.yml",
        )
        .unwrap();
        assert_eq!(m.environments().len(), 2);
        let live = m.get("environment", "live").unwrap();
        assert!(live.production);
        assert_eq!(live.aws_account_id.as_deref(), Some("123456789012"));
        assert_eq!(m.next("qa").unwrap().name, "live");
    }

    #[test]
    fn refusals() {
        let cases = [
            (
                "environments:\n  - name: dev\n    branch: dev\n    prodution: true\n",
                "line 4, column 5: an unknown key; expected one of `name`, `branch`",
            ),
            ("environments: []\n", "is empty"),
            (
                "environments:\n  - name: Dev\n    branch: dev\n",
                "not a valid environment name",
            ),
            (
                "environments:\n  - name: dev\n    branch: dev\n  - name: dev\n    branch: x\n",
                "listed twice",
            ),
            (
                "environments:\n  - name: a\n    branch: dev\n  - name: b\n    branch: dev\n",
                "use the same branch",
            ),
            ("environments:\n  - name: a\n    branch: 'a..b'\n", "branch"),
            (
                "environments:\n  - name: a\n    branch: a\n    aws-account-id: '12345'\n",
                "12 digits",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    aws-region: US-EAST-1\n",
                "region",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    windows:\n      time-zone: Mars/Olympus\n",
                "t.yml: environments[0].windows.time-zone is not a known IANA time zone",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n  - name: b\n    branch: b\n    windows:\n      time-zone: UTC\n      allow: ['Mon 09:00-10:00', 'Tue 9-10']\n",
                "t.yml: environments[1].windows.allow[1] is not a window",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    windows:\n      time-zone: UTC\n      freeze:\n        - { from: '2027-01-04T00:00', to: '2026-12-20T00:00', reason: r }\n",
                "t.yml: environments[0].windows.freeze[0] ends before it begins",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    windows:\n      time-zone: UTC\n      alow: []\n",
                "line 6, column 7: an unknown key",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    verify:\n      window: 5s\n      http: [{ name: h, url: 'http://169.254.169.254/' }]\n",
                "t.yml: environments[0].verify.http[0].url is a link-local or cloud metadata address",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    verify:\n      window: 5s\n      htp: []\n",
                "line 6, column 7: an unknown key",
            ),
            (
                "envs: []\n",
                "line 1, column 1: an unknown key; expected one of `environments`",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    reviewers: { users: [0] }\n",
                "t.yml: environments[0].reviewers holds an id that is not a GitHub numeric id",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    reviewers: { users: [1, 2, 3], teams: [4, 5, 6, 7] }\n",
                "t.yml: environments[0].reviewers lists more than 6 users and teams",
            ),
            (
                "environments:\n  - name: a\n    branch: a\n    reviewers: { user: [1] }\n",
                "line 4, column 18: an unknown key; expected `users` or `teams`",
            ),
            ("state-prefixes: ['app']\n", "t.yml: state-prefixes[0] is not a state key prefix"),
            ("state-prefixes: ['/app/']\n", "t.yml: state-prefixes[0] is not a state key prefix"),
            ("state-prefixes: ['a/../b/']\n", "t.yml: state-prefixes[0] is not a state key prefix"),
            ("state-prefixes: []\n", "t.yml: state-prefixes needs 1 to 20 entries"),
            ("state-prefixes: ['app/', 'app/']\n", "t.yml: state-prefixes lists the same value twice ([0] and [1])"),
            ("state-prefixes: ['app/', 'app/net/']\n", "t.yml: state-prefixes [0] and [1] contain one another"),
            ("registries: ['App']\n", "t.yml: registries[0] is not an image name"),
            ("registries: ['a', 'b-']\n", "t.yml: registries[1] is not an image name"),
            ("registries: ['a', 'a']\n", "t.yml: registries lists the same value twice"),
            (
                "environments:\n  - name: a\n    branch: a\nregistries: ['a//b']\n",
                "t.yml: registries[0] is not an image name",
            ),
        ];
        for (yaml, needle) in cases {
            let e = Model::from_yaml(yaml, "t.yml").unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{yaml}");
            assert!(e.to_string().contains(needle), "{yaml}: {e}");
        }
    }

    #[test]
    fn repository_keys_and_reviewers_are_read() {
        let m = Model::from_yaml(
            "environments:\n  - name: prod\n    branch: prod\n    production: true\n    reviewers: { teams: [7] }\nstate-prefixes: ['app/', 'net/']\nregistries: ['api', 'web/worker']\n",
            "t.yml",
        )
        .unwrap();
        assert_eq!(
            m.environments()[0].reviewers,
            Some(Reviewers {
                users: vec![],
                teams: vec![7]
            })
        );
        assert_eq!(m.state_prefixes, Some(vec!["app/".into(), "net/".into()]));
        assert_eq!(m.registries, Some(vec!["api".into(), "web/worker".into()]));
        // Without `environments` the keys still count (and the built-in environments apply).
        let m = Model::from_yaml("registries: ['api']\n", "t.yml").unwrap();
        assert_eq!(m.registries, Some(vec!["api".into()]));
        assert_eq!(m.environments(), Model::default().environments());
    }

    // Core's file and the repository's: every key Core acts on is compared, windows are not.
    #[test]
    fn the_disagreement_table() {
        let base = "environments:\n  - name: dev\n    branch: dev\n    aws-account-id: '111111111111'\n  - name: prod\n    branch: prod\n    production: true\n    aws-account-id: '222222222222'\n    reviewers: { teams: [7, 8] }\nstate-prefixes: ['app/']\nregistries: ['app']\n";
        let core = Model::from_yaml(base, "core.yml").unwrap();
        let same = |repo: &str| disagreements(&core, &Model::from_yaml(repo, "repo.yml").unwrap());
        assert_eq!(same(base), Vec::<String>::new());
        // Reviewer order and deploy windows do not matter.
        assert_eq!(
            same(&base.replace("[7, 8]", "[8, 7]").replace(
                "    production: true\n",
                "    production: true\n    windows: { time-zone: UTC }\n"
            )),
            Vec::<String>::new()
        );
        let cases: &[(&str, &str, &str)] = &[
            ("branch: prod", "branch: release", "environment `prod`: branch is `prod` in Core, `release` in the repository"),
            ("    production: true\n", "", "environment `prod`: production is true in Core, false in the repository"),
            ("'222222222222'", "'333333333333'", "environment `prod`: aws-account-id is `222222222222` in Core, `333333333333` in the repository"),
            ("    aws-account-id: '111111111111'\n", "", "environment `dev`: aws-account-id is `111111111111` in Core, (not set) in the repository"),
            ("[7, 8]", "[7]", "environment `prod`: reviewers is users [], teams [7, 8] in Core, users [], teams [7] in the repository"),
            ("state-prefixes: ['app/']\n", "", "state-prefixes is [app/] in Core, (not set) in the repository"),
            ("registries: ['app']", "registries: ['app', 'worker']", "registries is [app] in Core, [app, worker] in the repository"),
            ("  - name: dev\n    branch: dev\n    aws-account-id: '111111111111'\n", "", "environments: Core has [dev, prod], the repository [prod]"),
            ("name: dev", "name: qa", "environments: Core has [dev, prod], the repository [qa, prod]"),
        ];
        for (from, to, want) in cases {
            let repo = base.replacen(from, to, 1);
            assert_ne!(repo, base, "{from}");
            let got = same(&repo);
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "{from} -> {to}: {got:#?}"
            );
        }
        // The built-in model against a file that pins accounts: every environment differs.
        let d = disagreements(&core, &Model::default());
        assert!(
            d[0].starts_with(
                "environments: Core has [dev, prod], the repository [dev, staging, prod]"
            ),
            "{d:?}"
        );
    }

    #[test]
    fn lookups_are_exact() {
        let m = Model::default();
        for bad in ["Prod", "prod ", "../prod", "", "PROD", "prod\n"] {
            let e = m.get("environment", bad).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage);
            assert!(e.to_string().contains("environment"), "{e}");
            assert!(
                !e.to_string().contains('\n'),
                "message must be one line: {e:?}"
            );
        }
        assert!(m
            .get("environment", "Prod")
            .unwrap_err()
            .to_string()
            .contains("did you mean `prod`"));
    }

    #[test]
    fn load_prefers_file_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let m = Model::load(dir.path(), None).unwrap();
        assert_eq!(m.environments(), Model::default().environments());
        assert_eq!(
            m.log_line(),
            format!(
                "built-in default model: no .github/gitops.yml in {}",
                dir.path().display()
            )
        );
        std::fs::create_dir_all(dir.path().join(".github")).unwrap();
        std::fs::write(
            dir.path().join(CONFIG_PATH),
            "environments:\n  - name: one\n    branch: one\n",
        )
        .unwrap();
        assert_eq!(
            Model::load(dir.path(), None).unwrap().environments()[0].name,
            "one"
        );
        let missing = dir.path().join("nope.yml");
        assert_eq!(
            Model::load(dir.path(), Some(&missing)).unwrap_err().class,
            crate::exit::ExitClass::Usage
        );
    }

    #[test]
    fn a_checkout_that_does_not_exist_is_not_the_default_model() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        for root in [dir.path().join("typo"), dir.path().join("file")] {
            let e = Model::load(&root, None).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage);
            assert_eq!(e.field.as_deref(), Some("repo-path"));
            assert!(e.message.contains(&root.display().to_string()), "{e}");
        }
        std::fs::create_dir_all(dir.path().join(".github")).unwrap();
        let cfg = dir.path().join(CONFIG_PATH);
        std::fs::write(&cfg, "environments:\n  - name: one\n    branch: one\n").unwrap();
        assert_eq!(
            Model::load(dir.path(), None).unwrap().log_line(),
            format!("environments from {}", cfg.display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_default_config_linked_out_of_the_checkout_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("gitops.yml");
        std::fs::write(&target, "environments:\n  - name: one\n    branch: one\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".github")).unwrap();
        let link = dir.path().join(CONFIG_PATH);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Model::load(dir.path(), None).unwrap_err();
        assert_eq!(e.class, crate::exit::ExitClass::Usage);
        assert!(e.message.contains(&link.display().to_string()), "{e}");
        assert!(e.message.contains("outside the checkout"), "{e}");
        // A dangling link is no default either; a link inside the checkout is fine.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nope.yml"), &link).unwrap();
        assert!(Model::load(dir.path(), None).is_err());
        std::fs::remove_file(&link).unwrap();
        std::fs::copy(&target, dir.path().join("real.yml")).unwrap();
        std::os::unix::fs::symlink("../real.yml", &link).unwrap();
        assert_eq!(
            Model::load(dir.path(), None).unwrap().environments()[0].name,
            "one"
        );
        // The `.github` directory itself linked out of the checkout.
        std::fs::remove_dir_all(dir.path().join(".github")).unwrap();
        std::fs::create_dir_all(outside.path().join(".github")).unwrap();
        std::fs::copy(&target, outside.path().join(CONFIG_PATH)).unwrap();
        std::os::unix::fs::symlink(outside.path().join(".github"), dir.path().join(".github"))
            .unwrap();
        assert!(Model::load(dir.path(), None)
            .unwrap_err()
            .message
            .contains("outside"));
    }

    // The workspace rule, for every environment and name: allowed, refused by policy (exit 1,
    // naming the rule) or not a workspace name (exit 2).
    #[test]
    fn the_workspace_table() {
        use crate::exit::ExitClass::{Refused, Usage};
        let custom = Model::from_yaml(
            "environments:\n  - { name: qa, branch: qa, previews: true }\n  - { name: dev, branch: dev }\n  - { name: live, branch: live, production: true }\n",
            "t.yml",
        )
        .unwrap();
        let off = Model::from_yaml(
            "environments:\n  - { name: dev, branch: dev, previews: false }\n  - { name: prod, branch: prod, production: true }\n",
            "o.yml",
        )
        .unwrap();
        let default = Model::default();
        type Want = std::result::Result<Workspace, (crate::exit::ExitClass, &'static str)>;
        let cases: Vec<(&Model, &str, &str, Want)> = vec![
            (&default, "dev", "default", Ok(Workspace::Default)),
            (&default, "dev", "pr-12", Ok(Workspace::Preview(12))),
            (&default, "dev", "pr-1", Ok(Workspace::Preview(1))),
            (&default, "staging", "default", Ok(Workspace::Default)),
            (&default, "prod", "default", Ok(Workspace::Default)),
            (
                &default,
                "staging",
                "pr-12",
                Err((Refused, "`staging` is not marked `previews: true`")),
            ),
            (
                &default,
                "prod",
                "pr-12",
                Err((Refused, "`prod` is a production environment")),
            ),
            (&custom, "qa", "pr-3", Ok(Workspace::Preview(3))),
            // Named `dev`, but in a file where it is promoted into and not marked: refused.
            (
                &custom,
                "dev",
                "pr-3",
                Err((Refused, "`dev` is not marked")),
            ),
            (&custom, "live", "pr-3", Err((Refused, "production"))),
            (
                &off,
                "dev",
                "pr-3",
                Err((Refused, "`dev` says `previews: false`")),
            ),
            (&off, "prod", "pr-3", Err((Refused, "production"))),
            // Names: checked before the rule, for every environment.
            (&default, "dev", "", Err((Usage, "is not a workspace name"))),
            (
                &default,
                "dev",
                "pr-",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-0",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-012",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-12a",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-12345678901",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "PR-12",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-12 ",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "feature",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-1/../prod",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "Default",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "prod",
                "pr-x",
                Err((Usage, "is not a workspace name")),
            ),
            (
                &default,
                "dev",
                "pr-1\n::error::x",
                Err((Usage, "is not a workspace name")),
            ),
        ];
        for (m, env, ws, want) in cases {
            let e = m.get("environment", env).unwrap();
            let got = check_workspace(e, "workspace", ws);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{env} {ws:?}"),
                (Err(f), Err((class, needle))) => {
                    assert_eq!(f.class, class, "{env} {ws:?}: {f}");
                    assert!(f.message.contains(needle), "{env} {ws:?}: {f}");
                    assert!(!f.message.contains('\n'), "{f:?}");
                    if class == Refused {
                        assert!(f.message.contains("previews: true"), "names the rule: {f}");
                    } else {
                        assert_eq!(f.field.as_deref(), Some("workspace"));
                    }
                }
                (g, w) => panic!("{env} {ws:?}: got {g:?}, want {w:?}"),
            }
        }
        assert_eq!(Workspace::Preview(7).name(), "pr-7");
        assert_eq!(Workspace::of_pr(7).unwrap(), Workspace::Preview(7));
        assert!(Workspace::of_pr(0).is_err());
    }

    #[test]
    fn the_eligibility_table() {
        let labelled = PreviewSettings {
            label: Some("preview".into()),
            ..PreviewSettings::default()
        };
        let any = PreviewSettings::default();
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (&any, true, l(&[]), Ok(())),
            (&any, true, l(&["x"]), Ok(())),
            (&any, false, l(&[]), Err(Ineligible::Fork)),
            (&labelled, true, l(&["preview"]), Ok(())),
            (&labelled, true, l(&["bug", "preview"]), Ok(())),
            (
                &labelled,
                true,
                l(&[]),
                Err(Ineligible::NoLabel("preview".into())),
            ),
            (
                &labelled,
                true,
                l(&["Preview"]),
                Err(Ineligible::NoLabel("preview".into())),
            ),
            // A fork is refused first, labelled or not.
            (&labelled, false, l(&["preview"]), Err(Ineligible::Fork)),
        ];
        for (s, same, labels, want) in cases {
            assert_eq!(s.eligible(same, &labels), want, "{s:?} {same} {labels:?}");
        }
        assert!(Ineligible::Fork.to_string().contains("fork"));
        assert!(Ineligible::NoLabel("preview".into())
            .to_string()
            .contains("labelled `preview`"));
    }

    #[test]
    fn previews_are_refused_by_construction_for_production_and_promoted_environments() {
        for (yaml, needle) in [
            (
                "environments:\n  - { name: dev, branch: dev, production: true, previews: true }\n",
                "environments[0].previews is true on a production environment",
            ),
            (
                "environments:\n  - { name: dev, branch: dev }\n  - { name: staging, branch: main, previews: true }\n",
                "environments[1].previews is true on an environment that is promoted into",
            ),
            ("environments:\n  - { name: dev, branch: dev, previews: yes-please }\n", "t.yml"),
            ("preview:\n  lable: x\n", "an unknown key"),
            ("preview:\n  label: 'a b'\n", "preview.label is not a label name"),
            ("preview:\n  max-age: 30m\n", "preview.max-age is not a duration between 1h and 90d"),
            ("preview:\n  max-age: 91d\n", "preview.max-age"),
            ("preview:\n  url-output: 'a.b'\n", "preview.url-output is not a Terraform output name"),
        ] {
            let e = Model::from_yaml(yaml, "t.yml").unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{yaml}");
            assert!(e.to_string().contains(needle), "{yaml}: {e}");
        }
        let m = Model::from_yaml(
            "preview:\n  label: preview\n  max-age: 2d\n  url-output: preview_url\n",
            "t.yml",
        )
        .unwrap();
        assert_eq!(
            m.preview(),
            &PreviewSettings {
                label: Some("preview".into()),
                max_age: std::time::Duration::from_secs(2 * 86400),
                url_output: "preview_url".into(),
            }
        );
        assert_eq!(Model::default().preview(), &PreviewSettings::default());
        let tok = "ghp_SECRET0123456789abcdefABCDEF";
        for yaml in [
            format!("preview:\n  label: '{tok} x'\n"),
            format!("preview:\n  max-age: {tok}\n"),
            format!("preview:\n  url-output: '{tok}.x'\n"),
        ] {
            let e = Model::from_yaml(&yaml, "g.yml").unwrap_err();
            assert!(!e.to_string().contains("SECRET"), "{yaml}: {e}");
        }
    }

    #[test]
    fn config_errors_never_repeat_the_value() {
        let tok = "ghp_SECRET0123456789abcdefABCDEF";
        for yaml in [
            format!("environments:\n  - name: dev\n    branch: dev\n    production: {tok}\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    {tok}: true\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    aws-account-id: {tok}\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    aws-region: {tok}\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    windows:\n      time-zone: {tok}\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    windows:\n      time-zone: UTC\n      allow: [{tok}]\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    windows:\n      time-zone: UTC\n      freeze: [{{ from: {tok}, to: x, reason: r }}]\n"),
            format!("environments:\n  - name: {tok}\n    branch: dev\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    verify:\n      window: {tok}\n"),
            format!("environments:\n  - name: dev\n    branch: dev\n    verify:\n      window: 5s\n      http: [{{ name: h, url: 'http://{tok}@x/' }}]\n"),
            format!("environments:\n  - name: dev\n    branch: '{tok}..x'\n"),
            format!("{tok}\n"),
            format!("environments: \"{tok}\n"),
        ] {
            let e = Model::from_yaml(&yaml, "g.yml").unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{yaml}");
            assert!(e.message.starts_with("g.yml"), "{e}");
            assert!(!e.to_string().contains("SECRET"), "{yaml}: {e}");
        }
    }
}
