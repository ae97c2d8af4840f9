//! `forbid-providers`: refuse plans that change resources of given providers. A name matches the
//! full provider address (`registry.terraform.io/hashicorp/null`) or its trailing parts
//! (`hashicorp/null`, `null`).
//!
//! ```yaml
//! forbid-providers: [hashicorp/null, "registry.terraform.io/hashicorp/external"]
//! ```

use crate::policy::{config, Context, Rule, RuleKind, Violation};

/// Registration.
pub const KIND: RuleKind = RuleKind {
    id: "forbid-providers",
    about: "refuse plans that change resources of given providers",
    build,
    default_on: false,
};

struct ForbidProviders(Vec<String>);

fn build(v: &serde_yaml_ng::Value) -> Result<Option<Box<dyn Rule>>, String> {
    let list: Vec<String> =
        config(v).map_err(|_| "expected a list of provider names".to_string())?;
    if list.iter().any(|p| p.trim().is_empty()) {
        return Err("empty provider name".into());
    }
    Ok(Some(Box::new(ForbidProviders(list))))
}

/// True when `provider` (as written in the plan) is `name` or ends with `/name`.
pub fn provider_matches(provider: &str, name: &str) -> bool {
    provider == name
        || provider
            .strip_suffix(name)
            .is_some_and(|rest| rest.ends_with('/'))
}

impl Rule for ForbidProviders {
    fn id(&self) -> &'static str {
        KIND.id
    }
    fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        cx.plan
            .changes
            .iter()
            .filter(|rc| rc.action != crate::plan::Action::NoOp)
            .filter_map(|rc| {
                self.0
                    .iter()
                    .find(|n| provider_matches(&rc.provider, n))
                    .map(|n| Violation {
                        rule: KIND.id.into(),
                        address: Some(rc.address.clone()),
                        message: format!("resources of provider `{n}` may not be changed"),
                    })
            })
            .collect()
    }
}
