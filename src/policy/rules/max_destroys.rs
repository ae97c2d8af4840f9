//! `max-destroys`: cap the number of destroyed resources (replacements count: they destroy).
//!
//! ```yaml
//! max-destroys: 5
//! # or
//! max-destroys: { limit: 5, environments: [staging, prod] }
//! ```

use serde::Deserialize;

use crate::policy::{config, Context, Rule, RuleKind, Violation};

/// Registration.
pub const KIND: RuleKind = RuleKind {
    id: "max-destroys",
    about: "refuse plans that destroy more than N resources",
    build,
    default_on: false,
};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Conf {
    Limit(usize),
    Full(Full),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    limit: usize,
    #[serde(default)]
    environments: Vec<String>,
}

struct MaxDestroys(Full);

fn build(v: &serde_yaml_ng::Value) -> Result<Option<Box<dyn Rule>>, String> {
    let c: Conf = config(v).map_err(|_| {
        "expected a number, or `{ limit: N, environments: [...] }` (no other keys)".to_string()
    })?;
    Ok(Some(Box::new(MaxDestroys(match c {
        Conf::Limit(limit) => Full {
            limit,
            environments: Vec::new(),
        },
        Conf::Full(f) => f,
    }))))
}

impl Rule for MaxDestroys {
    fn id(&self) -> &'static str {
        KIND.id
    }
    fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        let n = cx.plan.counts.destroy;
        if !super::env_applies(&self.0.environments, cx.environment) || n <= self.0.limit {
            return Vec::new();
        }
        vec![Violation {
            rule: KIND.id.into(),
            address: None,
            message: format!(
                "the plan destroys {n} resources, more than the limit of {}",
                self.0.limit
            ),
        }]
    }
}
