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
//!     require-no-drift: true  # optional: no promotion into prod while it has drift
//! ```
//!
//! Unknown keys, bad names, duplicate names or branches are refused with a clear error (exit 2).

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
    /// `require-no-drift`: promotion into this environment is refused while it has an open
    /// drift issue (`plan-gate drift`, the `gitops-drift` label). Opt-in; default `false`.
    #[serde(default)]
    pub require_no_drift: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Absent: the built-in environments (a file may hold only `stacks:`).
    environments: Option<Vec<Environment>>,
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
    /// Where the model came from (a file path, or `built-in default`).
    pub source: String,
    /// The log line naming the model ([`Model::log_line`]).
    log: String,
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
            require_no_drift: false,
        };
        Model {
            envs: vec![
                e("dev", "dev", false),
                e("staging", "main", false),
                e("prod", "prod", true),
            ],
            source: "built-in default".into(),
            log: "built-in default model".into(),
        }
    }
}

impl Model {
    /// Parse and validate a model from YAML text.
    pub fn from_yaml(text: &str, source: &str) -> Result<Model> {
        let file: File = serde_yaml_ng::from_str(text)
            .map_err(|e| Failure::usage("config", validate::config_error(source, &e)))?;
        // A file that only lists stacks keeps the built-in environments -- said in the log, so
        // it is never a silent fallback.
        let Some(envs) = file.environments else {
            return Ok(Model {
                log: format!("built-in default model: {source} defines no `environments`"),
                ..Model::default()
            });
        };
        let model = Model {
            envs,
            source: source.to_string(),
            log: format!("environments from {source}"),
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
            if let Some(w) = &e.windows {
                crate::windows::Windows::new(w).map_err(|err| {
                    Failure::usage(
                        "config",
                        format!("{src}: environments[{i}].windows.{} {}", err.key, err.rule),
                    )
                })?;
            }
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
        Ok(())
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
    /// This environment's deploy windows, if configured (validated when the model loaded).
    pub fn windows(&self) -> Result<Option<crate::windows::Windows>> {
        self.windows
            .as_ref()
            .map(|c| {
                crate::windows::Windows::new(c).map_err(|err| {
                    Failure::usage(
                        "config",
                        format!("`{}`: windows.{} {}", self.name, err.key, err.rule),
                    )
                })
            })
            .transpose()
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
                "envs: []\n",
                "line 1, column 1: an unknown key; expected one of `environments`",
            ),
        ];
        for (yaml, needle) in cases {
            let e = Model::from_yaml(yaml, "t.yml").unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{yaml}");
            assert!(e.to_string().contains(needle), "{yaml}: {e}");
        }
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
