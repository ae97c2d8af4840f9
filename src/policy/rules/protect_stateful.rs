//! `protect-stateful` (on by default, for rollbacks and production environments): refuse
//! destroying or replacing resources that hold data — databases and clusters, buckets, file
//! systems and volumes, KMS keys, DynamoDB tables, caches, search domains, secrets — unless the
//! run says `allow-data-loss` with a reason (logged, and kept in the deploy tag's
//! `Data-Loss-Allowed` trailer). Replacements in either order count (create-before-destroy
//! destroys the old object and its data too), and so does destroying a deposed object.
//!
//! ```yaml
//! protect-stateful: true                 # the default list, in rollbacks and production
//! protect-stateful: false                # off
//! protect-stateful:
//!   extra-types: ["aws_mq_*"]            # type globs added to the default list
//!   except-types: [aws_secretsmanager_secret]  # type globs taken out of it
//!   addresses: ["module.data.*"]         # address globs that are stateful whatever their type
//!   environments: [staging]              # also here (rollbacks and production always)
//! ```

use serde::Deserialize;

use crate::plan::{Action, ResourceChange};
use crate::policy::{config, glob, Context, Rule, RuleKind, Violation};

/// Registration.
pub const KIND: RuleKind = RuleKind {
    id: "protect-stateful",
    about: "refuse destroying or replacing resources that hold data (rollbacks and production) without `allow-data-loss`",
    build,
    default_on: true,
};

/// The resource types (globs) that hold data, before a policy file extends or reduces them.
pub const DEFAULT_TYPES: &[&str] = &[
    "aws_db_instance",
    "aws_rds_cluster",
    "aws_docdb_cluster",
    "aws_neptune_cluster",
    "aws_redshift_cluster",
    "aws_dynamodb_table",
    "aws_s3_bucket",
    "aws_efs_file_system",
    "aws_fsx_*_file_system",
    "aws_ebs_volume",
    "aws_kms_key",
    "aws_elasticache_cluster",
    "aws_elasticache_replication_group",
    "aws_elasticache_serverless_cache",
    "aws_memorydb_cluster",
    "aws_opensearch_domain",
    "aws_elasticsearch_domain",
    "aws_secretsmanager_secret",
];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Conf {
    On(bool),
    Full(Full),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Full {
    #[serde(default)]
    extra_types: Vec<String>,
    #[serde(default)]
    except_types: Vec<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    environments: Vec<String>,
}

struct ProtectStateful {
    types: Vec<globset::GlobMatcher>,
    except: Vec<globset::GlobMatcher>,
    addresses: Vec<globset::GlobMatcher>,
    environments: Vec<String>,
}

fn globs(list: &[String]) -> Result<Vec<globset::GlobMatcher>, String> {
    list.iter().map(|g| glob(g)).collect()
}

fn build(v: &serde_yaml_ng::Value) -> Result<Option<Box<dyn Rule>>, String> {
    let c: Conf = config(v).map_err(|_| {
        "expected true, false, or `{ extra-types, except-types, addresses, environments }` (no other keys)"
            .to_string()
    })?;
    let full = match c {
        Conf::On(false) => return Ok(None),
        Conf::On(true) => Full::default(),
        Conf::Full(f) => f,
    };
    let mut types: Vec<String> = DEFAULT_TYPES.iter().map(|t| t.to_string()).collect();
    types.extend(full.extra_types);
    Ok(Some(Box::new(ProtectStateful {
        types: globs(&types)?,
        except: globs(&full.except_types)?,
        addresses: globs(&full.addresses)?,
        environments: full.environments,
    })))
}

impl ProtectStateful {
    fn stateful(&self, rc: &ResourceChange) -> bool {
        let by_type = self.types.iter().any(|g| g.is_match(&rc.rtype))
            && !self.except.iter().any(|g| g.is_match(&rc.rtype));
        by_type || self.addresses.iter().any(|g| g.is_match(&rc.address))
    }
}

/// What the change does to the object's data, for the message.
fn loss(rc: &ResourceChange) -> String {
    let how = match rc.action {
        Action::DeleteThenCreate => "replaces (destroy, then create: a new, empty object)",
        Action::CreateThenDelete => {
            "replaces (create before destroy: the old object and its data are destroyed)"
        }
        _ => "destroys",
    };
    match &rc.deposed {
        Some(d) => format!(
            "{how} the deposed object {} of a stateful `{}`",
            crate::runner::single_line(d),
            rc.rtype
        ),
        None => format!("{how} a stateful `{}`: its data goes with it", rc.rtype),
    }
}

impl Rule for ProtectStateful {
    fn id(&self) -> &'static str {
        KIND.id
    }
    fn check(&self, cx: &Context<'_>) -> Vec<Violation> {
        let applies = cx.rollback
            || cx.production
            || (!self.environments.is_empty()
                && super::env_applies(&self.environments, cx.environment));
        if !applies {
            return Vec::new();
        }
        cx.plan
            .changes
            .iter()
            .filter(|rc| rc.managed() && rc.action.deletes() && self.stateful(rc))
            .map(|rc| Violation {
                rule: KIND.id.into(),
                address: Some(rc.address.clone()),
                message: format!(
                    "the plan {} (give `allow-data-loss` with a reason if that is intended)",
                    loss(rc)
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load::{load_bytes, Limits};
    use crate::policy::Policy;

    fn entry(address: &str, rtype: &str, actions: &str, deposed: Option<&str>) -> String {
        let module = address
            .rsplit_once(&format!(".{rtype}."))
            .map(|(m, _)| format!(r#""module_address":"{m}","#))
            .unwrap_or_default();
        let deposed = deposed
            .map(|d| format!(r#""deposed":"{d}","#))
            .unwrap_or_default();
        format!(
            r#"{{"address":"{address}",{module}{deposed}"mode":"managed","type":"{rtype}","name":"n","provider_name":"p","change":{{"actions":[{actions}]}}}}"#
        )
    }

    const DELETE: &str = r#""delete""#;
    const REPLACE: &str = r#""delete","create""#;
    const CBD: &str = r#""create","delete""#;
    const UPDATE: &str = r#""update""#;

    /// (name, policy, entry, rollback, production, environment, expected messages)
    #[test]
    fn the_rule_table() {
        let on = "rules: {}\n";
        let db = entry("aws_db_instance.main", "aws_db_instance", DELETE, None);
        type Row<'a> = (
            &'a str,
            &'a str,
            String,
            bool,
            bool,
            Option<&'a str>,
            &'a [&'a str],
        );
        let rows: &[Row] = &[
            ("delete in a rollback", on, db.clone(), true, false, Some("dev"), &["the plan destroys a stateful `aws_db_instance`: its data goes with it (give `allow-data-loss` with a reason if that is intended)"]),
            ("delete in production", on, db.clone(), false, true, Some("prod"), &["destroys a stateful `aws_db_instance`"]),
            ("a plain deploy of dev is not checked", on, db.clone(), false, false, Some("dev"), &[]),
            ("switched off", "rules:\n  protect-stateful: false\n", db.clone(), true, true, Some("prod"), &[]),
            ("replace", on, entry("aws_s3_bucket.b", "aws_s3_bucket", REPLACE, None), true, false, None, &["replaces (destroy, then create: a new, empty object) a stateful `aws_s3_bucket`"]),
            ("create before destroy", on, entry("aws_kms_key.k", "aws_kms_key", CBD, None), true, false, None, &["replaces (create before destroy: the old object and its data are destroyed) a stateful `aws_kms_key`"]),
            ("a deposed object", on, entry("aws_ebs_volume.v", "aws_ebs_volume", DELETE, Some("0a1b2c3d")), true, false, None, &["destroys the deposed object 0a1b2c3d of a stateful `aws_ebs_volume`"]),
            ("an update is no loss", on, entry("aws_db_instance.main", "aws_db_instance", UPDATE, None), true, true, None, &[]),
            ("a stateless type", on, entry("aws_iam_role.r", "aws_iam_role", DELETE, None), true, true, None, &[]),
            ("a module address, by type", on, entry("module.data.aws_dynamodb_table.t", "aws_dynamodb_table", DELETE, None), true, false, None, &["destroys a stateful `aws_dynamodb_table`"]),
            ("a type glob from the default list", on, entry("aws_fsx_lustre_file_system.f", "aws_fsx_lustre_file_system", DELETE, None), true, false, None, &["stateful `aws_fsx_lustre_file_system`"]),
            ("extended by a type glob", "rules:\n  protect-stateful:\n    extra-types: [\"terraform_*\"]\n", entry("terraform_data.db", "terraform_data", DELETE, None), true, false, None, &["stateful `terraform_data`"]),
            ("reduced", "rules:\n  protect-stateful:\n    except-types: [aws_db_instance]\n", db.clone(), true, true, None, &[]),
            ("an address glob", "rules:\n  protect-stateful:\n    addresses: [\"module.data.*\"]\n", entry("module.data.aws_iam_role.r", "aws_iam_role", DELETE, None), true, false, None, &["stateful `aws_iam_role`"]),
            ("an address glob outside", "rules:\n  protect-stateful:\n    addresses: [\"module.data.*\"]\n", entry("module.app.aws_iam_role.r", "aws_iam_role", DELETE, None), true, false, None, &[]),
            ("more environments", "rules:\n  protect-stateful:\n    environments: [staging]\n", db.clone(), false, false, Some("staging"), &["stateful `aws_db_instance`"]),
            ("more environments, not this one", "rules:\n  protect-stateful:\n    environments: [staging]\n", db.clone(), false, false, Some("dev"), &[]),
        ];
        for (name, policy, e, rollback, production, env, want) in rows {
            let doc = format!(r#"{{"format_version":"1.2","resource_changes":[{e}]}}"#);
            let plan = load_bytes(doc.as_bytes(), &Limits::default()).unwrap();
            let pol = Policy::from_yaml(policy, "p.yml").unwrap();
            let got: Vec<Violation> = pol
                .check(&Context {
                    plan: &plan,
                    environment: *env,
                    production: *production,
                    rollback: *rollback,
                })
                .into_iter()
                .filter(|v| v.rule == KIND.id)
                .collect();
            assert_eq!(got.len(), want.len(), "{name}: {got:?}");
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(g.message.contains(w), "{name}: {}", g.message);
            }
        }
    }

    #[test]
    fn misspelt_keys_are_refused() {
        for bad in [
            "rules:\n  protect-stateful:\n    extra_types: [x]\n",
            "rules:\n  protect-stateful: yes please\n",
            "rules:\n  protect-stateful:\n    addresses: [\"[\"]\n",
        ] {
            assert!(Policy::from_yaml(bad, "p.yml").is_err(), "{bad}");
        }
    }
}
