//! `protect-production` (on by default): nothing is destroyed (or replaced) in a production
//! environment (per the environments model) without an explicit, logged
//! `--allow protect-production --allow-reason "..."`.
//!
//! ```yaml
//! protect-production: false   # switch it off
//! ```

use crate::policy::{config, Context, Rule, RuleKind, Violation};

/// Registration.
pub const KIND: RuleKind = RuleKind {
    id: "protect-production",
    about: "nothing is destroyed in production without an explicit, logged override",
    build,
    default_on: true,
};

struct ProtectProduction;

fn build(v: &serde_yaml_ng::Value) -> Result<Option<Box<dyn Rule>>, String> {
    let on: bool = config(v).map_err(|_| "expected true or false".to_string())?;
    Ok(if on {
        Some(Box::new(ProtectProduction))
    } else {
        None
    })
}

impl Rule for ProtectProduction {
    fn id(&self) -> &'static str {
        KIND.id
    }
    fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        if !cx.production {
            return Vec::new();
        }
        cx.plan
            .changes
            .iter()
            .filter(|r| r.managed() && r.action.deletes())
            .map(|rc| Violation {
                rule: KIND.id.into(),
                address: Some(rc.address.clone()),
                message: format!(
                    "{} in production environment `{}`",
                    if rc.action.replaces() {
                        "replaces"
                    } else {
                        "destroys"
                    },
                    cx.environment.unwrap_or("?")
                ),
            })
            .collect()
    }
}
