//! `forbid-destroy`: refuse plans that destroy or replace given resource types or addresses.
//!
//! ```yaml
//! forbid-destroy:
//!   - types: [aws_db_instance]        # resource types (globs)
//!     addresses: ["module.db.*"]      # address globs; with `types`, both must match
//!     environments: [prod]            # optional: only in these environments
//!     actions: [delete, replace]      # optional: default both
//! ```

use serde::Deserialize;

use crate::plan::Action;
use crate::policy::{config, glob, Context, Rule, RuleKind, Violation};

/// Registration.
pub const KIND: RuleKind = RuleKind {
    id: "forbid-destroy",
    about: "refuse destroying or replacing given resource types or address globs",
    build,
    default_on: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Delete,
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    environments: Vec<String>,
    #[serde(default)]
    actions: Vec<Kind>,
}

struct Compiled {
    types: Vec<globset::GlobMatcher>,
    addresses: Vec<globset::GlobMatcher>,
    environments: Vec<String>,
    actions: Vec<Kind>,
    label: String,
}

struct ForbidDestroy(Vec<Compiled>);

fn build(v: &serde_yaml_ng::Value) -> Result<Option<Box<dyn Rule>>, String> {
    let entries: Vec<Entry> = config(v)?;
    let mut out = Vec::new();
    for e in entries {
        if e.types.is_empty() && e.addresses.is_empty() {
            return Err("each entry needs `types` or `addresses`".into());
        }
        let label = [e.types.join(", "), e.addresses.join(", ")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        out.push(Compiled {
            types: e.types.iter().map(|t| glob(t)).collect::<Result<_, _>>()?,
            addresses: e
                .addresses
                .iter()
                .map(|t| glob(t))
                .collect::<Result<_, _>>()?,
            environments: e.environments,
            actions: if e.actions.is_empty() {
                vec![Kind::Delete, Kind::Replace]
            } else {
                e.actions
            },
            label,
        });
    }
    Ok(Some(Box::new(ForbidDestroy(out))))
}

impl Rule for ForbidDestroy {
    fn id(&self) -> &'static str {
        KIND.id
    }
    fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        let mut v = Vec::new();
        for rc in cx
            .plan
            .changes
            .iter()
            .filter(|r| r.managed() && r.action.deletes())
        {
            let kind = if rc.action.replaces() {
                Kind::Replace
            } else {
                Kind::Delete
            };
            for c in &self.0 {
                if !super::env_applies(&c.environments, cx.environment)
                    || !c.actions.contains(&kind)
                {
                    continue;
                }
                let t = c.types.is_empty() || c.types.iter().any(|g| g.is_match(&rc.rtype));
                let a =
                    c.addresses.is_empty() || c.addresses.iter().any(|g| g.is_match(&rc.address));
                if t && a {
                    let what = if rc.action == Action::Delete {
                        "destroys"
                    } else {
                        "replaces"
                    };
                    v.push(Violation {
                        rule: KIND.id.into(),
                        address: Some(rc.address.clone()),
                        message: format!("the plan {what} a protected resource ({})", c.label),
                    });
                    break;
                }
            }
        }
        v
    }
}
