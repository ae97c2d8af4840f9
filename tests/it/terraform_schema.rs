//! Every `resource`, `data` and `provider` block under `terraform/` checked against the real
//! provider schemas, without the providers: `tests/fixtures/provider-schemas/subset.json` is cut
//! by `scripts/cut-provider-schemas` from the CDK for Terraform bindings on the npm registry
//! (`@cdktf/provider-aws` 21.x = hashicorp/aws 6.25, `@cdktf/provider-github` 15.x =
//! integrations/github 6.9), which are generated from the providers' own schemas.
//!
//! What is refused: an unknown argument or block (with where the schema has that name, when it
//! is a nesting mistake), an argument written as a block or a block as an argument, a missing
//! required argument or block, two blocks where the schema allows one, a literal of the wrong
//! type (a string for a list, a word for a boolean ...), and a resource type the subset lacks
//! (re-run the script). Expressions are not evaluated: their types are Terraform's to check.
//!
//! Also: local module calls against their modules' variables, and Core's root logic evaluated
//! by `terraform apply` with a stand-in for the account modules' outputs (two accounts, two
//! repositories; and the committed one-account example).

use crate::e2e::tf_files;
use crate::support::root;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const FIXTURE: &str = "tests/fixtures/provider-schemas/subset.json";

#[derive(Debug, Deserialize)]
struct Fixture {
    packages: BTreeMap<String, Package>,
    provider: BTreeMap<String, Schema>,
    resource: BTreeMap<String, Schema>,
    data: BTreeMap<String, Schema>,
}

#[derive(Debug, Deserialize)]
struct Package {
    version: String,
    provider: String,
}

#[derive(Debug, Default, Deserialize)]
struct Schema {
    #[serde(default)]
    attributes: BTreeMap<String, Attr>,
    #[serde(default)]
    blocks: BTreeMap<String, Nested>,
}

#[derive(Debug, Deserialize)]
struct Attr {
    #[serde(rename = "type")]
    ty: String,
    required: bool,
}

#[derive(Debug, Deserialize)]
struct Nested {
    nesting: String,
    required: bool,
    #[serde(flatten)]
    schema: Schema,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(root().join(FIXTURE)).expect("the schema subset");
    serde_json::from_str(&text).expect("the schema subset is JSON of its shape")
}

/// Meta-arguments and meta-blocks Terraform itself handles, per top-level block kind.
fn meta(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        "resource" => (
            &["count", "for_each", "provider", "depends_on"],
            &["lifecycle", "provisioner", "connection"],
        ),
        "data" => (
            &["count", "for_each", "provider", "depends_on"],
            &["lifecycle"],
        ),
        _ => (&["version"], &[]),
    }
}

/// Where else in `schema` a name is an argument or block (`encryption_configuration`), for the
/// hint on a nesting mistake.
fn places(schema: &Schema, name: &str, at: &str, out: &mut Vec<String>) {
    for (b, n) in &schema.blocks {
        let here = if at.is_empty() {
            b.clone()
        } else {
            format!("{at}.{b}")
        };
        if n.schema.attributes.contains_key(name) || n.schema.blocks.contains_key(name) {
            out.push(here.clone());
        }
        places(&n.schema, name, &here, out);
    }
}

/// Why a literal cannot be a value of type `ty` (the storage class names of the bindings:
/// `string`, `number`, `boolean`, `stringList`, `stringMap`, ... `any`); `None`: it can, or it
/// is an expression whose type is Terraform's to check.
fn literal_mismatch(ty: &str, value: &Expression) -> Option<&'static str> {
    let list = ty.ends_with("List");
    let map = ty.ends_with("Map");
    let simple = matches!(ty, "string" | "number" | "boolean");
    match value {
        Expression::Array(_) if !list && (simple || map) => Some("a list"),
        Expression::Object(_) if simple || list => Some("an object"),
        Expression::String(s) if list || map => Some(if s.is_empty() {
            "an empty string"
        } else {
            "a string"
        }),
        Expression::String(s) if ty == "number" && s.trim().parse::<f64>().is_err() => {
            Some("a string that is not a number")
        }
        Expression::String(s) if ty == "boolean" && !matches!(s.as_str(), "true" | "false") => {
            Some("a string that is not true or false")
        }
        Expression::Bool(_) if ty == "number" || list || map => Some("a boolean"),
        Expression::Number(_) if ty == "boolean" || list || map => Some("a number"),
        _ => None,
    }
}

struct Checker<'a> {
    file: String,
    text: &'a str,
    out: Vec<String>,
}

impl Checker<'_> {
    fn line(&self, span: Option<std::ops::Range<usize>>) -> usize {
        span.map_or(0, |s| self.text[..s.start].matches('\n').count() + 1)
    }

    fn say(&mut self, span: Option<std::ops::Range<usize>>, what: &str, msg: String) {
        let line = self.line(span);
        self.out
            .push(format!("{}:{line}: {what}: {msg}", self.file));
    }

    /// Check one body against its schema; `top` is the resource's whole schema (for hints).
    fn body(
        &mut self,
        schema: &Schema,
        top: &Schema,
        body: &Body,
        what: &str,
        meta: (&[&str], &[&str]),
    ) {
        let mut seen_blocks: BTreeMap<String, usize> = BTreeMap::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let k = a.key.as_str();
                    if meta.0.contains(&k) {
                        continue;
                    }
                    if let Some(attr) = schema.attributes.get(k) {
                        if let Some(why) = literal_mismatch(&attr.ty, &a.value) {
                            self.say(
                                a.span(),
                                what,
                                format!("`{k}` is of type {} but is given {why}", attr.ty),
                            );
                        }
                    } else if schema.blocks.contains_key(k) {
                        self.say(
                            a.span(),
                            what,
                            format!("`{k}` is a block, written as an argument (`{k} = ...`)"),
                        );
                    } else {
                        let hint = self.hint(top, k);
                        self.say(a.span(), what, format!("unknown argument `{k}`{hint}"));
                    }
                }
                Structure::Block(b) => {
                    let k = b.ident.as_str();
                    if meta.1.contains(&k) {
                        continue;
                    }
                    let (name, dynamic) = if k == "dynamic" {
                        (b.labels.first().map_or("", |l| l.as_str()), true)
                    } else {
                        (k, false)
                    };
                    let Some(nested) = schema.blocks.get(name) else {
                        let msg = if schema.attributes.contains_key(name) {
                            format!(
                                "`{name}` is an argument, written as a block (use `{name} = ...`)"
                            )
                        } else {
                            let hint = self.hint(top, name);
                            format!("unknown block `{name}`{hint}")
                        };
                        self.say(b.span(), what, msg);
                        continue;
                    };
                    let inner = format!("{what} > {name}");
                    if dynamic {
                        let mut contents = 0;
                        for c in b.body.iter() {
                            match c {
                                Structure::Block(c) if c.ident.as_str() == "content" => {
                                    contents += 1;
                                    self.body(&nested.schema, top, &c.body, &inner, (&[], &[]));
                                }
                                Structure::Attribute(a)
                                    if matches!(
                                        a.key.as_str(),
                                        "for_each" | "iterator" | "labels"
                                    ) => {}
                                other => {
                                    self.say(
                                        other.span(),
                                        &inner,
                                        "a dynamic block holds only for_each, iterator, labels and one content block".into(),
                                    );
                                }
                            }
                        }
                        if contents != 1 {
                            self.say(
                                b.span(),
                                &inner,
                                "a dynamic block needs exactly one content block".into(),
                            );
                        }
                    } else {
                        *seen_blocks.entry(name.to_string()).or_default() += 1;
                        self.body(&nested.schema, top, &b.body, &inner, (&[], &[]));
                    }
                    *seen_blocks.entry(format!("any {name}")).or_default() += 1;
                }
            }
        }
        for (k, a) in &schema.attributes {
            if a.required && !body.has_attribute(k) {
                self.say(None, what, format!("missing required argument `{k}`"));
            }
        }
        for (k, n) in &schema.blocks {
            if n.required && !seen_blocks.contains_key(&format!("any {k}")) {
                self.say(None, what, format!("missing required block `{k}`"));
            }
            if n.nesting == "single" && seen_blocks.get(k).copied().unwrap_or(0) > 1 {
                self.say(None, what, format!("at most one `{k}` block is allowed"));
            }
        }
    }

    fn hint(&self, top: &Schema, name: &str) -> String {
        let mut at = Vec::new();
        if top.attributes.contains_key(name) || top.blocks.contains_key(name) {
            at.push("the top level".to_string());
        }
        places(top, name, "", &mut at);
        if at.is_empty() {
            String::new()
        } else {
            format!(" (the schema has it in {})", at.join(", "))
        }
    }
}

/// Every violation in one file's text, as `file:line: <block>: <what is wrong>`, and how many
/// resource/data/provider blocks were checked.
fn check(fx: &Fixture, file: &str, text: &str) -> (Vec<String>, usize) {
    let body = match hcl_edit::parser::parse_body(text) {
        Ok(b) => b,
        Err(e) => return (vec![format!("{file}: does not parse: {e}")], 0),
    };
    let mut c = Checker {
        file: file.to_string(),
        text,
        out: Vec::new(),
    };
    let mut checked = 0;
    for b in body.blocks() {
        let kind = b.ident.as_str();
        let table = match kind {
            "resource" => &fx.resource,
            "data" => &fx.data,
            "provider" => &fx.provider,
            _ => continue,
        };
        let ty = b.labels.first().map_or("", |l| l.as_str());
        let what = match b.labels.get(1) {
            Some(n) => format!("{kind} {ty}.{}", n.as_str()),
            None => format!("{kind} {ty}"),
        };
        let Some(schema) = table.get(ty) else {
            c.say(
                b.span(),
                &what,
                format!("`{ty}` is not in {FIXTURE}: re-run scripts/cut-provider-schemas"),
            );
            continue;
        };
        checked += 1;
        c.body(schema, schema, &b.body, &what, meta(kind));
    }
    (c.out, checked)
}

/// A local module call (`module "x" { source = "./..." }` in `dir`) against the module's own
/// `variable` blocks: every argument is a variable or a meta-argument, every variable without
/// a default is given. `(violations, calls checked)`.
fn check_module_calls(dir: &Path, file: &str, text: &str) -> (Vec<String>, usize) {
    let Ok(body) = hcl_edit::parser::parse_body(text) else {
        return (vec![], 0);
    };
    let (mut out, mut checked) = (Vec::new(), 0);
    for b in body.get_blocks("module") {
        let name = b.labels.first().map_or("", |l| l.as_str());
        let Some(source) = b
            .body
            .get_attribute("source")
            .and_then(|a| a.value.as_str())
        else {
            continue;
        };
        if !source.starts_with("./") && !source.starts_with("../") {
            continue;
        }
        let mdir = dir.join(source);
        let mut vars: BTreeMap<String, bool> = BTreeMap::new(); // name -> required
        let mut files = Vec::new();
        tf_files(&mdir, &mut files);
        files.retain(|f| f.parent() == Some(mdir.as_path()));
        for f in files {
            let t = std::fs::read_to_string(&f).unwrap();
            for v in hcl_edit::parser::parse_body(&t)
                .unwrap()
                .get_blocks("variable")
            {
                let n = v.labels.first().map_or("", |l| l.as_str()).to_string();
                vars.insert(n, !v.body.has_attribute("default"));
            }
        }
        checked += 1;
        let meta = [
            "source",
            "version",
            "providers",
            "count",
            "for_each",
            "depends_on",
        ];
        for a in b.body.attributes() {
            let k = a.key.as_str();
            if !meta.contains(&k) && !vars.contains_key(k) {
                let line = text[..a.span().map_or(0, |s| s.start)]
                    .matches('\n')
                    .count()
                    + 1;
                out.push(format!(
                    "{file}:{line}: module {name}: `{k}` is not a variable of {source}"
                ));
            }
        }
        for (v, required) in &vars {
            if *required && !b.body.has_attribute(v) {
                out.push(format!(
                    "{file}: module {name}: missing required variable `{v}` of {source}"
                ));
            }
        }
    }
    (out, checked)
}

// Every local module call under terraform/ (Core's account modules) passes exactly its module's
// variables; a misspelt or missing one (an account added by copying blocks) is caught.
#[test]
fn terraform_module_calls_match_their_modules_variables() {
    let mut files = Vec::new();
    tf_files(&root().join("terraform"), &mut files);
    let (mut all, mut checked) = (Vec::new(), 0);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let shown = f.strip_prefix(root()).unwrap().display().to_string();
        let (v, n) = check_module_calls(f.parent().unwrap(), &shown, &text);
        all.extend(v);
        checked += n;
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
    assert!(checked >= 1, "no module call checked");
    // Failing vectors against the real account module.
    let core = root().join("terraform/core");
    let accounts = std::fs::read_to_string(core.join("accounts.tf")).unwrap();
    for (from, to, want) in [
        ("  pullers ", "  puller ", "accounts.tf:"),
        (
            "  pullers ",
            "  puller ",
            "`puller` is not a variable of ./modules/environment-account",
        ),
        (
            "  account_id ",
            "  # account_id ",
            "missing required variable `account_id`",
        ),
    ] {
        let broken = accounts.replacen(from, to, 1);
        assert_ne!(broken, accounts, "{from}");
        let (v, _) = check_module_calls(&core, "accounts.tf", &broken);
        assert!(v.iter().any(|m| m.contains(want)), "{want}: {v:?}");
    }
}

#[test]
fn terraform_schema_subset_is_the_named_provider_releases() {
    let fx = fixture();
    let aws = &fx.packages["@cdktf/provider-aws"];
    let github = &fx.packages["@cdktf/provider-github"];
    assert!(aws.version.starts_with("21."), "{aws:?}");
    assert!(github.version.starts_with("15."), "{github:?}");
    assert!(
        aws.provider
            .starts_with("registry.terraform.io/hashicorp/aws 6."),
        "{aws:?}"
    );
    assert!(
        github
            .provider
            .starts_with("registry.terraform.io/integrations/github 6."),
        "{github:?}"
    );
}

// Every resource, data source and provider block of terraform/ (Core, its account module, the
// example app, the release stack) agrees with the providers' own schemas.
#[test]
fn terraform_every_block_matches_the_provider_schemas() {
    let fx = fixture();
    let mut files = Vec::new();
    tf_files(&root().join("terraform"), &mut files);
    files.sort();
    let mut all = Vec::new();
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let shown = f.strip_prefix(root()).unwrap().display().to_string();
        let (v, n) = check(&fx, &shown, &text);
        all.extend(v);
        checked += n;
    }
    assert!(all.is_empty(), "schema violations:\n{}", all.join("\n"));
    // Core (accounts, module, GitHub side) and the example app: far more than a handful.
    assert!(checked >= 60, "only {checked} blocks checked in {files:?}");
    for must in [
        "resource \"aws_ecr_account_setting\"",
        "resource \"aws_ecr_repository_policy\"",
        "provider \"aws\"",
    ] {
        assert!(
            files
                .iter()
                .any(|f| std::fs::read_to_string(f).unwrap().contains(must)),
            "terraform/ has no {must}"
        );
    }
}

// Failing vectors: each mistake is found, named, and placed on its line.
#[test]
fn terraform_schema_check_refuses_each_kind_of_mistake() {
    let fx = fixture();
    let cases: &[(&str, &str)] = &[
        (
            "resource \"aws_s3_bucket\" \"x\" {\n  bucket_name = \"b\"\n}\n",
            "t.tf:2: resource aws_s3_bucket.x: unknown argument `bucket_name`",
        ),
        (
            "resource \"aws_ecr_account_setting\" \"x\" {\n  name = \"BLOB_MOUNTING\"\n}\n",
            "resource aws_ecr_account_setting.x: missing required argument `value`",
        ),
        (
            "resource \"aws_ecr_repository\" \"x\" {\n  name    = \"n\"\n  kms_key = \"k\"\n}\n",
            "t.tf:3: resource aws_ecr_repository.x: unknown argument `kms_key` (the schema has it in encryption_configuration)",
        ),
        (
            "resource \"aws_ecr_repository\" \"x\" {\n  name = \"n\"\n  encryption_configuration {\n    scan_on_push = true\n  }\n}\n",
            "t.tf:4: resource aws_ecr_repository.x > encryption_configuration: unknown argument `scan_on_push` (the schema has it in image_scanning_configuration)",
        ),
        (
            "resource \"aws_s3_bucket_versioning\" \"x\" {\n  bucket                   = \"b\"\n  versioning_configuration = { status = \"Enabled\" }\n}\n",
            "`versioning_configuration` is a block, written as an argument",
        ),
        (
            "resource \"aws_kms_key\" \"x\" {\n  policy {\n  }\n}\n",
            "t.tf:2: resource aws_kms_key.x: `policy` is an argument, written as a block",
        ),
        (
            "resource \"aws_ecr_repository\" \"x\" {\n  name = \"n\"\n  image_scanning_configuration {\n    scan_on_push = true\n  }\n  image_scanning_configuration {\n    scan_on_push = false\n  }\n}\n",
            "at most one `image_scanning_configuration` block is allowed",
        ),
        (
            "resource \"aws_s3_bucket_ownership_controls\" \"x\" {\n  bucket = \"b\"\n}\n",
            "missing required block `rule`",
        ),
        (
            "resource \"aws_s3_bucket_ownership_controls\" \"x\" {\n  bucket = \"b\"\n  rule {\n  }\n}\n",
            "resource aws_s3_bucket_ownership_controls.x > rule: missing required argument `object_ownership`",
        ),
        (
            "data \"aws_iam_policy_document\" \"x\" {\n  dynamic \"statment\" {\n    for_each = []\n    content {}\n  }\n}\n",
            "t.tf:2: data aws_iam_policy_document.x: unknown block `statment`",
        ),
        (
            "data \"aws_iam_policy_document\" \"x\" {\n  dynamic \"statement\" {\n    for_each = [1]\n    content {\n      sids = \"a\"\n    }\n  }\n}\n",
            "t.tf:5: data aws_iam_policy_document.x > statement: unknown argument `sids`",
        ),
        (
            "data \"aws_iam_policy_document\" \"x\" {\n  statement {\n    condition {\n      test     = \"StringEquals\"\n      variable = \"v\"\n    }\n  }\n}\n",
            "data aws_iam_policy_document.x > statement > condition: missing required argument `values`",
        ),
        (
            "resource \"aws_ecr_repository\" \"x\" {\n  name         = \"n\"\n  force_delete = \"yes\"\n}\n",
            "`force_delete` is of type boolean but is given a string that is not true or false",
        ),
        (
            "resource \"aws_iam_openid_connect_provider\" \"x\" {\n  url            = \"u\"\n  client_id_list = \"sts.amazonaws.com\"\n}\n",
            "`client_id_list` is of type stringList but is given a string",
        ),
        (
            "resource \"aws_kms_key\" \"x\" {\n  deletion_window_in_days = true\n}\n",
            "`deletion_window_in_days` is of type number but is given a boolean",
        ),
        (
            "resource \"aws_s3_bukket\" \"x\" {\n}\n",
            "t.tf:1: resource aws_s3_bukket.x: `aws_s3_bukket` is not in tests/fixtures/provider-schemas/subset.json",
        ),
        (
            "provider \"aws\" {\n  regin = \"eu-west-1\"\n}\n",
            "t.tf:2: provider aws: unknown argument `regin`",
        ),
        (
            "provider \"aws\" {\n  assume_role = { role_arn = \"r\" }\n}\n",
            "`assume_role` is a block, written as an argument",
        ),
        (
            "resource \"github_repository_environment\" \"x\" {\n  repository  = \"r\"\n  environment = \"e\"\n  reviewers {\n    user = [1]\n  }\n}\n",
            "resource github_repository_environment.x > reviewers: unknown argument `user`",
        ),
        (
            "resource \"github_actions_environment_variable\" \"x\" {\n  repository    = \"r\"\n  environment   = \"e\"\n  variable_name = \"V\"\n}\n",
            "missing required argument `value`",
        ),
    ];
    for (text, want) in cases {
        let (v, _) = check(&fx, "t.tf", text);
        assert!(
            v.iter().any(|m| m.contains(want)),
            "{text}\nwanted `{want}`, got {v:#?}"
        );
    }
    // The same blocks written correctly pass, meta-arguments and dynamic blocks included.
    let good = "resource \"aws_ecr_repository\" \"x\" {\n  for_each = toset([\"a\"])\n  name     = each.key\n  image_scanning_configuration {\n    scan_on_push = true\n  }\n  encryption_configuration {\n    encryption_type = \"KMS\"\n    kms_key         = \"k\"\n  }\n  lifecycle {\n    precondition {\n      condition     = true\n      error_message = \"m\"\n    }\n  }\n}\n\
data \"aws_iam_policy_document\" \"x\" {\n  dynamic \"statement\" {\n    for_each = [1]\n    content {\n      sid     = \"a\"\n      actions = [\"s3:GetObject\"]\n      condition {\n        test     = \"StringEquals\"\n        variable = \"v\"\n        values   = [\"x\"]\n      }\n    }\n  }\n}\n\
provider \"aws\" {\n  alias               = \"dev\"\n  region              = \"eu-west-1\"\n  allowed_account_ids = [\"111111111111\"]\n  dynamic \"assume_role\" {\n    for_each = [\"arn\"]\n    content {\n      role_arn = assume_role.value\n    }\n  }\n}\n";
    let (v, n) = check(&fx, "good.tf", good);
    assert_eq!(v, Vec::<String>::new());
    assert_eq!(n, 3);
}

/// What the account modules output, computed from the configuration the way
/// modules/environment-account names its resources: the stand-in for the modules when Core's
/// root logic (locals.tf, the locals of github.tf, outputs.tf) is evaluated by Terraform itself
/// without the providers. An environment without an account is in no module (as
/// `account_envs` places it), so it has no outputs here either.
const MODULE_OUTPUTS_STANDIN: &str = r#"
locals {
  account_outputs  = { for a, _ in var.accounts : a => {} }
  deploy_role_arns = { for k, e in local.envs : k => "arn:aws:iam::${var.accounts[e.account].id}:role/${var.name_prefix}-${e.repository}-${e.name}-deploy" if e.account != null }
  plan_role_arns   = { for k, e in local.envs : k => "arn:aws:iam::${var.accounts[e.account].id}:role/${var.name_prefix}-${e.repository}-${e.name}-plan" if e.account != null }
  preview_role_arns = { for k, e in local.preview_envs : k => "arn:aws:iam::${var.accounts[e.account].id}:role/${var.name_prefix}-${e.repository}-${e.name}-preview" if e.account != null }
  registry_arns = merge([for k, e in local.envs : {
    for image, name in e.registries : "${k}/${image}" => "arn:aws:ecr:${var.aws_region}:${var.accounts[e.account].id}:repository/${name}"
  } if e.account != null]...)
  registry_urls = merge([for k, e in local.envs : {
    for image, name in e.registries : "${k}/${image}" => "${var.accounts[e.account].id}.dkr.ecr.${var.aws_region}.amazonaws.com/${name}"
  } if e.account != null]...)
  env_places     = distinct([for e in values(local.envs) : "${e.account}/${e.name}" if e.account != null])
  key_arns       = { for p in local.env_places : p => "arn:aws:kms:${var.aws_region}:${var.accounts[split("/", p)[0]].id}:key/${split("/", p)[1]}" }
  state_buckets  = { for p in local.env_places : p => "${var.name_prefix}-${var.accounts[split("/", p)[0]].id}-${var.aws_region}-${split("/", p)[1]}-tfstate" }
  registry_hosts = { for a, v in var.accounts : a => "${v.id}.dkr.ecr.${var.aws_region}.amazonaws.com" }
}
"#;

/// What [`evaluate_core`] outputs besides outputs.tf: the root's wiring, as the tests read it.
const WIRING_OUTPUTS: &str = r#"
output "t_account_envs" { value = local.account_envs }
output "t_account_pullers" { value = local.account_pullers }
output "t_account_pull_sources" { value = local.account_pull_sources }
output "t_deploy_variables" { value = { for k, v in local.deploy_variables : k => v.value } }
output "t_plan_variables" { value = { for k, v in local.plan_variables : k => v.value } }
output "t_preview_variables" { value = { for k, v in local.preview_variables : k => v.value } }
output "t_preview_envs" { value = keys(local.preview_envs) }
output "t_keys_outside_prefixes" { value = local.keys_outside_prefixes }
output "t_unknown_stack_envs" { value = local.unknown_stack_envs }
output "t_working_dirs" { value = { for r, c in var.repositories : r => c.terraform_working_dir } }
"#;

/// Core's root logic with `tfvars` and the repository files, evaluated by `terraform apply` (no
/// resource, no provider): the outputs, as JSON values. `None` without terraform.
pub(crate) fn evaluate_core(tfvars: &str, repos: &[(&str, &str)]) -> Option<serde_json::Value> {
    let core = root().join("terraform/core");
    // github.tf's locals (the GitHub variables), without its resources.
    let github = std::fs::read_to_string(core.join("github.tf")).unwrap();
    let body = hcl_edit::parser::parse_body(&github).unwrap();
    let locals: Vec<String> = body
        .blocks()
        .filter(|b| b.ident.as_str() == "locals")
        .map(|b| github[b.span().expect("parsed blocks have spans")].to_string())
        .collect();
    assert_eq!(locals.len(), 1, "github.tf's locals blocks");
    let outputs = std::fs::read_to_string(core.join("outputs.tf")).unwrap();
    evaluate_core_with(
        tfvars,
        repos,
        &[
            ("outputs.tf", outputs),
            ("github_locals.tf", locals.join("\n")),
            ("wiring.tf", WIRING_OUTPUTS.to_string()),
        ],
    )
}

/// What github.tf's preconditions refuse for `tfvars` and the repository files, evaluated by
/// `terraform apply` of locals.tf and the preconditions themselves (as outputs, see
/// [`preconditions_as_outputs`]), without the providers. `t_refusals`: per resource
/// (`<type>.<name>`), the instances that fail some precondition, each with the error messages
/// of those it fails in the file's order; `t_refusal_locals`: each local a precondition checks.
/// `None` without terraform.
pub(crate) fn evaluate_core_refusals(
    tfvars: &str,
    repos: &[(&str, &str)],
) -> Option<serde_json::Value> {
    let github = std::fs::read_to_string(root().join("terraform/core/github.tf")).unwrap();
    let mut o = evaluate_core_with(
        tfvars,
        repos,
        &[("refusals.tf", preconditions_as_outputs(&github))],
    )?;
    for instances in o["t_refusals"].as_object_mut().unwrap().values_mut() {
        let failing = instances.as_object().unwrap().iter();
        *instances = failing
            .filter(|(_, messages)| !messages.as_array().unwrap().is_empty())
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
    }
    Some(o)
}

/// Every `precondition` of `text`'s resources (github.tf) as Terraform outputs: per resource,
/// a for expression over its `for_each` (`each.key`, `each.value` become its variables) that
/// gives each instance the messages of the preconditions it fails (a message is evaluated only
/// where its condition fails, as Terraform does); and every local the conditions check. Each
/// condition must check a local (the rules live in locals.tf).
pub(crate) fn preconditions_as_outputs(text: &str) -> String {
    let each = regex_lite::Regex::new(r"\beach\.(key|value)\b").unwrap();
    let local = regex_lite::Regex::new(r"\blocal\.([a-z0-9_]+)").unwrap();
    let body = hcl_edit::parser::parse_body(text).unwrap();
    let src = |e: &Expression| {
        each.replace_all(&text[e.span().unwrap()], "each_$1")
            .into_owned()
    };
    let (mut refusals, mut locals) = (Vec::new(), BTreeSet::new());
    for b in body.get_blocks("resource") {
        let name: Vec<&str> = b.labels.iter().map(|l| l.as_str()).collect();
        let name = name.join(".");
        let mut rules = Vec::new();
        for lifecycle in b.body.get_blocks("lifecycle") {
            for p in lifecycle.body.get_blocks("precondition") {
                let expr = |a: &str| &p.body.get_attribute(a).unwrap().value;
                let condition = src(expr("condition"));
                let checked: Vec<&str> = local
                    .captures_iter(&condition)
                    .map(|c| c.get(1).unwrap().as_str())
                    .collect();
                assert!(
                    !checked.is_empty(),
                    "{name}: `{condition}` checks no local (the rule belongs in locals.tf)"
                );
                locals.extend(checked.into_iter().map(String::from));
                let message = src(expr("error_message"));
                rules.push(format!(
                    "      [for once in [0] : {message} if !({condition})],"
                ));
            }
        }
        if rules.is_empty() {
            continue;
        }
        let for_each = src(&b.body.get_attribute("for_each").unwrap().value);
        refusals.push(format!(
            "    \"{name}\" = {{ for each_key, each_value in {for_each} : each_key => concat(\n{}\n    ) }}",
            rules.join("\n")
        ));
    }
    assert!(!refusals.is_empty(), "no precondition found");
    let locals: Vec<String> = locals
        .iter()
        .map(|l| format!("    {l} = local.{l}"))
        .collect();
    format!(
        "output \"t_refusals\" {{\n  value = {{\n{}\n  }}\n}}\n\noutput \"t_refusal_locals\" {{\n  value = {{\n{}\n  }}\n}}\n",
        refusals.join("\n"),
        locals.join("\n")
    )
}

/// A scratch root of Core without resources or providers: variables.tf, locals.tf, the account
/// modules' stand-in, `files` (name, text), `tfvars` and the repository files; applied, its
/// outputs as JSON values. `None` without terraform.
fn evaluate_core_with(
    tfvars: &str,
    repos: &[(&str, &str)],
    files: &[(&str, String)],
) -> Option<serde_json::Value> {
    if !crate::support::has_tool("terraform") {
        crate::support::skip_loudly(
            "evaluating Core's wiring with terraform",
            "terraform is not installed (the schema and text checks still run)",
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let core = root().join("terraform/core");
    for f in ["variables.tf", "locals.tf"] {
        std::fs::copy(core.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("standin.tf"), MODULE_OUTPUTS_STANDIN).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("t.tfvars"), tfvars).unwrap();
    for (path, text) in repos {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    Some(apply_outputs(dir.path()))
}

/// `terraform init` + `apply` of the scratch root in `dir` (its `t.tfvars`), then its outputs
/// as one JSON object of values (the Core evaluation tests here and in e2e.rs).
pub(crate) fn apply_outputs(dir: &std::path::Path) -> serde_json::Value {
    let tf = |args: &[&str]| {
        let out = std::process::Command::new("terraform")
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    tf(&["init", "-input=false", "-no-color"]);
    tf(&[
        "apply",
        "-input=false",
        "-auto-approve",
        "-no-color",
        "-var-file=t.tfvars",
    ]);
    let out: serde_json::Value = serde_json::from_slice(&tf(&["output", "-json"])).unwrap();
    out.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["value"].clone()))
        .collect()
}

// Two accounts (dev; staging and prod) and two repositories (legacy and immutable `sub`, one
// with two images and its own state prefix, one with the defaults), evaluated by Terraform:
// each environment lands in the account its file names, each registry admits the NEXT
// environment's deploy role (in the other account), each deploy role pulls from the registries
// and key below, and the GitHub variables point into the environment's own account.
#[test]
fn terraform_core_places_environments_in_their_accounts_and_wires_the_pulls() {
    let tfvars = r#"
aws_region      = "eu-west-1"
github_owner    = "example-org"
github_owner_id = 7
accounts = {
  dev  = { id = "111111111111" }
  prod = { id = "222222222222", core_role_arn = "arn:aws:iam::222222222222:role/gitops-core" }
}
repositories = {
  app = { config = "repositories/app.yml", app_deploy_policy_arns = ["arn:aws:iam::111111111111:policy/app-stack"] }
  api = { config = "repositories/api.yml", repository_id = 42, sub_claim_format = "immutable", terraform_working_dir = "infra" }
}
"#;
    let app = "environments:\n  - { name: dev, branch: dev, aws-account-id: '111111111111' }\n  - { name: staging, branch: main, aws-account-id: '222222222222' }\n  - name: prod\n    branch: prod\n    production: true\n    aws-account-id: '222222222222'\n    reviewers: { teams: [5] }\nstate-prefixes: ['app/']\nregistries: ['app', 'worker']\n";
    let api = "environments:\n  - { name: dev, branch: dev, aws-account-id: '111111111111' }\n  - { name: prod, branch: main, aws-account-id: '222222222222' }\n";
    let Some(o) = evaluate_core(
        tfvars,
        &[("repositories/app.yml", app), ("repositories/api.yml", api)],
    ) else {
        return;
    };
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&o["t_account_envs"]["dev"]), ["api/dev", "app/dev"]);
    assert_eq!(
        keys(&o["t_account_envs"]["prod"]),
        ["api/prod", "app/prod", "app/staging"]
    );
    let env = |a: &str, k: &str, f: &str| o["t_account_envs"][a][k][f].clone();
    assert_eq!(
        env("dev", "app/dev", "deploy_sub"),
        "repo:example-org/app:environment:dev"
    );
    assert_eq!(
        env("prod", "app/staging", "plan_sub"),
        "repo:example-org/app:environment:staging-plan"
    );
    assert_eq!(
        env("prod", "api/prod", "deploy_sub"),
        "repo:example-org@7/api@42:environment:prod"
    );
    assert_eq!(
        env("dev", "api/dev", "plan_sub"),
        "repo:example-org@7/api@42:environment:dev-plan"
    );
    assert_eq!(env("dev", "app/dev", "plan_ref"), "refs/pull/*/merge");
    assert_eq!(
        env("prod", "api/prod", "plan_job_workflow_ref"),
        "example-org/api/.github/workflows/plan.yml@refs/pull/*/merge"
    );
    assert_eq!(
        env("dev", "app/dev", "state_prefixes"),
        serde_json::json!(["app/"])
    );
    assert_eq!(
        env("dev", "api/dev", "state_prefixes"),
        serde_json::json!(["api/"])
    );
    assert_eq!(
        env("prod", "app/prod", "registries"),
        serde_json::json!({"app": "gitops/app-prod", "worker": "gitops/worker-prod"})
    );

    // Registries admit the next environment's deploy role, across the account boundary.
    let role =
        |acct: &str, r: &str, e: &str| format!("arn:aws:iam::{acct}:role/gitops-{r}-{e}-deploy");
    assert_eq!(
        o["t_account_pullers"]["dev"],
        serde_json::json!({
            "api/dev/api": role("222222222222", "api", "prod"),
            "app/dev/app": role("222222222222", "app", "staging"),
            "app/dev/worker": role("222222222222", "app", "staging"),
        })
    );
    assert_eq!(
        o["t_account_pullers"]["prod"],
        serde_json::json!({
            "app/staging/app": role("222222222222", "app", "prod"),
            "app/staging/worker": role("222222222222", "app", "prod"),
        })
    );
    // Deploy roles pull from the registries and key of the environment below.
    assert_eq!(
        o["t_account_pull_sources"]["prod"]["app/staging"],
        serde_json::json!({
            "registry_arns": [
                "arn:aws:ecr:eu-west-1:111111111111:repository/gitops/app-dev",
                "arn:aws:ecr:eu-west-1:111111111111:repository/gitops/worker-dev",
            ],
            "key_arn": "arn:aws:kms:eu-west-1:111111111111:key/dev",
        })
    );
    assert_eq!(
        o["t_account_pull_sources"]["prod"]["api/prod"]["registry_arns"],
        serde_json::json!(["arn:aws:ecr:eu-west-1:111111111111:repository/gitops/api-dev"])
    );
    assert_eq!(o["t_account_pull_sources"]["dev"], serde_json::json!({}));

    // The GitHub variables: the environment's own account, the source in the one below.
    let var = |k: &str| o["t_deploy_variables"][k].clone();
    assert_eq!(
        var("app/staging/ECR_REGISTRY"),
        "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        var("app/staging/SOURCE_ECR_REGISTRY"),
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    );
    assert_eq!(var("app/staging/SOURCE_ECR_REPOSITORY"), "gitops/app-dev");
    assert_eq!(
        var("app/prod/SOURCE_ECR_REGISTRY"),
        "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        var("app/staging/AWS_DEPLOY_ROLE_ARN"),
        role("222222222222", "app", "staging")
    );
    assert_eq!(
        var("app/staging/TF_STATE_BUCKET"),
        "gitops-222222222222-eu-west-1-staging-tfstate"
    );
    assert_eq!(
        var("app/staging/TF_STATE_KEY"),
        "app/staging/terraform.tfstate"
    );
    assert_eq!(var("api/prod/TF_STATE_KEY"), "api/prod/terraform.tfstate");
    assert_eq!(var("api/prod/ECR_REPOSITORY"), "gitops/api-prod");
    assert!(o["t_deploy_variables"]
        .get("app/dev/SOURCE_ECR_REGISTRY")
        .is_none());
    assert_eq!(
        o["t_plan_variables"]["api/dev/AWS_PLAN_ROLE_ARN"],
        "arn:aws:iam::111111111111:role/gitops-api-dev-plan"
    );
    assert_eq!(
        o["t_working_dirs"],
        serde_json::json!({"api": "infra", "app": "terraform/app/release"})
    );
    // Previews (#18): only the first, non-production `dev` of each repository gets an
    // `<env>-preview` environment and role; its variables name the preview role (never a deploy
    // or plan role), dev's bucket and key, the workspace key prefix and dev's registry.
    assert_eq!(
        o["t_preview_envs"],
        serde_json::json!(["api/dev", "app/dev"])
    );
    let pv = |k: &str| o["t_preview_variables"][k].clone();
    assert_eq!(
        pv("app/dev/AWS_PREVIEW_ROLE_ARN"),
        "arn:aws:iam::111111111111:role/gitops-app-dev-preview"
    );
    assert_eq!(
        pv("app/dev/TF_STATE_BUCKET"),
        "gitops-111111111111-eu-west-1-dev-tfstate"
    );
    assert_eq!(pv("app/dev/TF_STATE_KEY"), "app/dev/terraform.tfstate");
    assert_eq!(pv("app/dev/TF_WORKSPACE_KEY_PREFIX"), "env:");
    assert_eq!(pv("app/dev/ECR_REPOSITORY"), "gitops/app-dev");
    assert_eq!(
        pv("api/dev/ECR_REGISTRY"),
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    );
    let preview_keys: Vec<String> = keys(&o["t_preview_variables"])
        .into_iter()
        .filter(|k| k.starts_with("app/dev/"))
        .collect();
    assert_eq!(
        preview_keys,
        [
            "app/dev/AWS_PREVIEW_ROLE_ARN",
            "app/dev/AWS_REGION",
            "app/dev/ECR_REGISTRY",
            "app/dev/ECR_REPOSITORY",
            "app/dev/TF_STATE_BUCKET",
            "app/dev/TF_STATE_KEY",
            "app/dev/TF_WORKSPACE_KEY_PREFIX",
        ]
    );
    assert_eq!(
        env("dev", "app/dev", "preview_sub"),
        "repo:example-org/app:environment:dev-preview"
    );
    assert_eq!(env("dev", "app/dev", "previews"), true);
    // The app stack's policies: by default the deploy role's.
    assert_eq!(
        env("dev", "app/dev", "preview_policy_arns"),
        serde_json::json!(["arn:aws:iam::111111111111:policy/app-stack"])
    );
    assert_eq!(env("prod", "app/staging", "previews"), false);
    assert_eq!(env("prod", "app/prod", "previews"), false);
    assert_eq!(
        env("dev", "api/dev", "preview_job_workflow_refs"),
        serde_json::json!([
            "example-org/api/.github/workflows/preview.yml@refs/pull/*/merge",
            "example-org/api/.github/workflows/preview.yml@refs/heads/main",
        ])
    );
    assert_eq!(
        env("dev", "app/dev", "preview_refs"),
        serde_json::json!(["refs/pull/*/merge", "refs/heads/main"])
    );
    assert_eq!(
        o["trusted_subjects"]["api/dev/preview"],
        "repo:example-org@7/api@42:environment:dev-preview"
    );
    assert!(o["trusted_subjects"].get("app/staging/preview").is_none());
    assert!(o["trusted_subjects"].get("app/prod/preview").is_none());
    // Core's own outputs evaluate too.
    assert_eq!(o["environment_accounts"]["app/staging"], "prod");
    assert_eq!(
        o["trusted_subjects"]["api/prod/plan"],
        "repo:example-org@7/api@42:environment:prod-plan"
    );
}

// One account for everything, as committed (terraform.tfvars.example and its repository file):
// every environment is in `main`, the registries still admit the next deploy role.
#[test]
fn terraform_core_one_account_for_all_as_committed() {
    let core = root().join("terraform/core");
    let tfvars = std::fs::read_to_string(core.join("terraform.tfvars.example")).unwrap();
    let example = std::fs::read_to_string(core.join("repositories/example-app.yml")).unwrap();
    // A second repository whose file names no account (with one account: that account), in
    // the legacy `sub` form while the default is immutable.
    let tfvars = tfvars.replace(
        "repositories = {\n",
        "repositories = {\n  tools = { config = \"repositories/tools.yml\", sub_claim_format = \"legacy\", workspace_key_prefix = \"previews\", preview_sweep_branch = \"dev\", preview_policy_arns = [] }\n",
    );
    assert!(tfvars.contains("tools = "), "{tfvars}");
    let tools = "environments:\n  - { name: dev, branch: dev }\n  - { name: prod, branch: main }\n";
    let Some(o) = evaluate_core(
        &tfvars,
        &[
            ("repositories/example-app.yml", &example),
            ("repositories/tools.yml", tools),
        ],
    ) else {
        return;
    };
    assert_eq!(
        o["environment_accounts"],
        serde_json::json!({"example-app/dev": "main", "example-app/staging": "main", "example-app/prod": "main", "tools/dev": "main", "tools/prod": "main"})
    );
    assert_eq!(
        o["t_deploy_variables"]["tools/prod/SOURCE_ECR_REPOSITORY"],
        "gitops/tools-dev"
    );
    assert_eq!(
        o["trusted_subjects"]["tools/dev/deploy"],
        "repo:example-org/tools:environment:dev"
    );
    assert_eq!(
        o["t_account_pullers"]["main"]["example-app/staging/example-app"],
        "arn:aws:iam::111111111111:role/gitops-example-app-prod-deploy"
    );
    assert_eq!(
        o["t_deploy_variables"]["example-app/dev/TF_STATE_KEY"],
        "app/dev/terraform.tfstate"
    );
    // A repository's own preview settings: the workspace key prefix its variables name, the
    // sweep branch its preview role trusts, and no app policy on the preview role.
    assert_eq!(
        o["t_preview_variables"]["tools/dev/TF_WORKSPACE_KEY_PREFIX"],
        "previews"
    );
    assert_eq!(
        o["t_account_envs"]["main"]["tools/dev"]["preview_refs"],
        serde_json::json!(["refs/pull/*/merge", "refs/heads/dev"])
    );
    assert_eq!(
        o["t_account_envs"]["main"]["tools/dev"]["preview_policy_arns"],
        serde_json::json!([])
    );
    assert_eq!(
        o["t_preview_variables"]["example-app/dev/TF_WORKSPACE_KEY_PREFIX"],
        "env:"
    );
    assert_eq!(
        o["trusted_subjects"]["example-app/dev/preview"],
        "repo:example-org@1234567/example-app@7654321:environment:dev-preview"
    );
    assert_eq!(
        o["trusted_subjects"]["example-app/prod/deploy"],
        "repo:example-org@1234567/example-app@7654321:environment:prod"
    );
}
