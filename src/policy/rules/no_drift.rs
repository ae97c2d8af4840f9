//! `no-drift`: refuse plans made while the real infrastructure drifted from the state. Where the
//! plan lists `relevant_attributes`, only drift that affects this plan counts.
//!
//! ```yaml
//! no-drift: true
//! # or
//! no-drift: { environments: [prod] }
//! ```

use serde::Deserialize;

use crate::policy::{config, Context, Rule, RuleKind, Violation};

/// Registration.
pub const KIND: RuleKind = RuleKind {
    id: "no-drift",
    about: "refuse plans made while resources drifted outside Terraform",
    build,
    default_on: false,
};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Conf {
    On(bool),
    Full(Full),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    #[serde(default)]
    environments: Vec<String>,
}

struct NoDrift(Vec<String>);

fn build(v: &serde_yaml_ng::Value) -> Result<Option<Box<dyn Rule>>, String> {
    let c: Conf = config(v).map_err(|_| {
        "expected true/false, or `{ environments: [...] }` (no other keys)".to_string()
    })?;
    Ok(match c {
        Conf::On(false) => None,
        Conf::On(true) => Some(Box::new(NoDrift(Vec::new()))),
        Conf::Full(f) => Some(Box::new(NoDrift(f.environments))),
    })
}

impl Rule for NoDrift {
    fn id(&self) -> &'static str {
        KIND.id
    }
    fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        if !super::env_applies(&self.0, cx.environment) {
            return Vec::new();
        }
        cx.plan
            .drift
            .iter()
            .filter(|d| {
                cx.plan
                    .relevant
                    .as_ref()
                    .is_none_or(|r| r.contains(&d.address))
            })
            .map(|d| Violation {
                rule: KIND.id.into(),
                address: Some(d.address.clone()),
                message: "the resource changed outside Terraform (drift)".into(),
            })
            .collect()
    }
}
