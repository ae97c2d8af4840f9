//! The plan-gate policy: a small YAML file of rules platform teams ask for, checked against a
//! plan [`Summary`].
//!
//! One module per rule under [`rules`], each behind the [`Rule`] trait and registered with one
//! line in [`rules::REGISTRY`] (zizmor's audits are the model). A rule owns its configuration
//! type (`deny_unknown_fields`, so a typo is an error, not a silently disabled rule), its id, and
//! its check. A violation can be overridden with `--allow RULE_ID` plus a reason; overrides are
//! logged and shown in the summary, never silent.
//!
//! ```yaml
//! rules:
//!   forbid-destroy:
//!     - types: [aws_db_instance, aws_s3_bucket]
//!       environments: [prod]
//!     - addresses: ["module.network.*"]
//!   max-destroys: 5
//!   no-drift: true
//!   forbid-providers: ["registry.terraform.io/hashicorp/null"]
//!   protect-production: true
//! ```

pub mod rego;
pub mod rules;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::exit::{Failure, Result};
use crate::plan::Summary;
use crate::runner::single_line;

/// What a rule sees.
pub struct Context<'a> {
    /// The plan.
    pub plan: &'a Summary,
    /// The target environment, if given.
    pub environment: Option<&'a str>,
    /// Whether that environment is a production environment (environments model).
    pub production: bool,
    /// Whether the plan is a rollback's (`protect-stateful` applies to every rollback).
    pub rollback: bool,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The rule id (`forbid-destroy`).
    pub rule: String,
    /// The resource address concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// What is wrong, for humans.
    pub message: String,
}

/// A policy rule.
pub trait Rule {
    /// The rule id, as written in the policy file and in `--allow`.
    fn id(&self) -> &'static str;
    /// Check the plan.
    fn check(&self, cx: &Context<'_>) -> Vec<Violation>;
}

/// How one rule is built from its YAML value (`None`: the rule is switched off).
pub type Builder = fn(&serde_yaml_ng::Value) -> std::result::Result<Option<Box<dyn Rule>>, String>;

/// A rule kind: its id, a one-line description and its builder.
pub struct RuleKind {
    /// Id, as used in the policy file and `--allow`.
    pub id: &'static str,
    /// One line for docs and errors.
    pub about: &'static str,
    /// Builds the rule from its configuration.
    pub build: Builder,
    /// Whether it is on when no policy file is given.
    pub default_on: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    rules: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A loaded policy: the active rules.
pub struct Policy {
    rules: Vec<Box<dyn Rule>>,
    /// Where it came from.
    pub source: String,
}

impl Policy {
    /// The policy used without a file: the rules that are on by default.
    pub fn default_policy() -> Policy {
        let rules = rules::REGISTRY
            .iter()
            .filter(|k| k.default_on)
            .filter_map(|k| (k.build)(&serde_yaml_ng::Value::Bool(true)).ok().flatten())
            .collect();
        Policy {
            rules,
            source: "built-in default".into(),
        }
    }

    /// Parse a policy from YAML. Unknown keys and unknown rule ids are refused.
    pub fn from_yaml(text: &str, source: &str) -> Result<Policy> {
        let bad = |m: String| Failure::usage("policy", format!("{source}: {}", single_line(&m)));
        // Neither the parser's message nor ours repeats a value from the file: it may hold what
        // was pasted in the wrong place (a token). Place and kind only.
        let file: File = serde_yaml_ng::from_str(text)
            .map_err(|e| Failure::usage("policy", crate::validate::config_error(source, &e)))?;
        if let Some(v) = file.version {
            if v != 1 {
                return Err(bad(format!("unsupported policy version {v} (expected 1)")));
            }
        }
        let mut rules = Vec::new();
        for (id, value) in &file.rules {
            let Some(kind) = rules::REGISTRY.iter().find(|k| k.id == id) else {
                let hint = rules::REGISTRY
                    .iter()
                    .find(|k| close_to(k.id, id))
                    .map(|k| format!(" (did you mean `{}`?)", k.id))
                    .unwrap_or_default();
                return Err(bad(format!(
                    "`rules` has a key that is not a rule{hint}; known rules: {}",
                    rule_ids().join(", ")
                )));
            };
            match (kind.build)(value) {
                Ok(Some(r)) => rules.push(r),
                Ok(None) => {}
                Err(e) => return Err(bad(format!("rule `{id}`: {e}"))),
            }
        }
        // Rules that are on by default stay on unless the file mentions them.
        for kind in rules::REGISTRY.iter().filter(|k| k.default_on) {
            if !file.rules.contains_key(kind.id) {
                if let Ok(Some(r)) = (kind.build)(&serde_yaml_ng::Value::Bool(true)) {
                    rules.push(r);
                }
            }
        }
        Ok(Policy {
            rules,
            source: source.to_string(),
        })
    }

    /// Load from a file path.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(
                "policy",
                format!(
                    "cannot read {}: {}",
                    single_line(&path.display().to_string()),
                    e.kind()
                ),
            )
        })?;
        Policy::from_yaml(&text, &path.display().to_string())
    }

    /// Ids of the active rules.
    pub fn active(&self) -> Vec<&'static str> {
        self.rules.iter().map(|r| r.id()).collect()
    }

    /// Check every active rule.
    pub fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        self.rules.iter().flat_map(|r| r.check(cx)).collect()
    }
}

/// Every known rule id.
pub fn rule_ids() -> Vec<&'static str> {
    rules::REGISTRY.iter().map(|k| k.id).collect()
}

/// Deserialize a rule's YAML value into its config type, refusing unknown keys. The message
/// names the kind of error, never the value ([`crate::validate::yaml_error_kind`]).
pub fn config<T: serde::de::DeserializeOwned>(
    v: &serde_yaml_ng::Value,
) -> std::result::Result<T, String> {
    serde_yaml_ng::from_value(v.clone())
        .map_err(|e| crate::validate::yaml_error_kind(&e.to_string()))
}

/// True when `typed` is one edit (insert, delete, substitute) away from `id`: enough to suggest
/// the rule someone meant without repeating what they typed.
fn close_to(id: &str, typed: &str) -> bool {
    let (a, b) = (id.as_bytes(), typed.as_bytes());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    a.len().max(b.len()) - head - tail <= 1 && a != b
}

/// Glob matching for addresses and types (`*` matches anything, including `.` and `[`).
pub fn glob(pattern: &str) -> std::result::Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("a pattern is not a valid glob ({})", e.kind()))
}

#[cfg(test)]
mod tests;
