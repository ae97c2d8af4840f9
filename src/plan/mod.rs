//! Terraform plan JSON (`terraform show -json`): reading it safely and fast, counting it exactly as
//! Terraform does, keeping its values without leaking sensitive ones, and digesting its changes.
//! Rendering the report is `crate::plan_report`, above this module and `crate::policy`.
//!
//! What this module owns:
//! - [`load`](mod@load): the reader, one file per concern: the entry points and what both
//!   readers keep (`load/mod.rs`), the fast path on both cores with its work queue (`fast.rs`), the
//!   reference two-pass reader for anything the fast path does not fully accept (`prescan.rs`:
//!   UTF-8, UTF-16 BOM, nesting depth; `reference.rs`: the serde seeds), and the file mapping
//!   whose consumed pages are handed back to the kernel so a 200 MB plan stays far below
//!   150 MB of RSS (`mapped.rs`).
//! - `raw`: the borrowed shapes of entries and raw values, which the reader produces and the
//!   digest and `values` read (so neither of them depends on the reader).
//! - `values`: sensitivity masks, the capped set of distinct sensitive strings, attribute diffs,
//!   and value texts scrubbed before they are cut.
//! - `jsoncheck`: the validating JSON checker of the fast path; `scan`: the structural
//!   scanner and the SIMD block masks both use.
//! - [`Summary`] (this file): what is kept of a plan, and the counting rules.
//! - [`digest`]: `plan_digest`, a canonical SHA-256 of the plan's changes.
//! - [`comment`]: the one upserted pull-request comment.
//! - [`review`]: the plan statuses on a commit and `require-reviewed-plan`; [`record`]: the
//!   value-free record a pull request's plan leaves and the rules of its recorder.
//! - [`drift`]: drift classification (refresh-only plan, optional normal plan), the drift report
//!   and the rules of the one drift issue per environment (`plan-gate drift`).
//! - [`Engine`]: Terraform or OpenTofu, from the providers' registry (both write this format).
//!
//! Every refusal is a [`PlanError`], mapped to exit 2 by [`PlanError::into_failure`].

pub mod comment;
pub mod digest;
pub mod drift;
pub(crate) mod jsoncheck;
pub mod load;
pub mod manifest;
mod raw;
pub mod record;
pub mod review;
pub(crate) mod scan;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::exit::Failure;
use crate::runner::single_line;

pub use crate::secret::Scrubber;
pub use load::{load, Limits};

/// Why a document is not a plan we can trust (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The file could not be opened or read.
    Io(String),
    /// The file is empty (or only whitespace).
    Empty,
    /// The file is larger than the configured limit (checked before reading).
    TooLarge {
        /// Size of the file in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file starts with a UTF-16 byte order mark.
    Utf16Bom,
    /// The file looks like UTF-16 without a byte order mark (NUL bytes between ASCII).
    Utf16NoBom,
    /// Invalid UTF-8 at a byte offset.
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: u64,
    },
    /// Nesting deeper than the limit.
    TooDeep {
        /// The configured limit.
        limit: usize,
        /// Byte offset where it was exceeded.
        offset: u64,
    },
    /// Bytes after the end of the JSON document.
    TrailingGarbage {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Not valid JSON, or a known field has the wrong type.
    Syntax(String),
    /// The top level is not a JSON object.
    NotAnObject,
    /// `format_version` is absent.
    FormatVersionMissing,
    /// `format_version` is not a string.
    FormatVersionNotString,
    /// `format_version` has a major version we do not support (or is not a version).
    UnsupportedVersion(String),
    /// A Terraform state file (raw `terraform.tfstate`, or `terraform show -json` of a state).
    StateFile,
    /// An OpenTofu encrypted state or plan (top-level `encryption_version`): nothing in it can
    /// be read without the key.
    Encrypted,
    /// An OpenTofu plan whose `terraform_version` (OpenTofu's own version there) is not an
    /// OpenTofu 1.x version.
    UnsupportedEngineVersion {
        /// The engine.
        engine: &'static str,
        /// The version as written.
        version: String,
    },
    /// JSON, but not a plan.
    NotAPlan,
    /// The same top-level key twice (parsers would disagree on which one counts).
    DuplicateKey(String),
    /// Two `resource_changes` entries with the same address (and deposed key).
    DuplicateAddress(String),
    /// An action string or action combination Terraform does not define.
    UnknownAction {
        /// The resource (or output) it belongs to.
        address: String,
        /// The actions as written.
        actions: String,
    },
    /// A `resource_changes` (or `resource_drift`) entry whose `mode` is neither `managed` nor
    /// `data` (`Managed`, `managed `, ...): counting it as either would be a guess.
    UnknownMode {
        /// The entry's address.
        address: String,
        /// The mode as written.
        mode: String,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Io(e) => write!(f, "cannot read the plan file: {e}"),
            PlanError::Empty => f.write_str(
                "the plan file is empty; run `terraform show -json PLANFILE > plan.json` and pass that file",
            ),
            PlanError::TooLarge { size, limit } => write!(
                f,
                "the plan file is {size} bytes, over the limit of {limit} bytes (raise `max-plan-bytes` if this plan is expected)"
            ),
            PlanError::Utf16Bom => f.write_str(
                "the plan file is UTF-16 (it starts with a UTF-16 byte order mark), typically from a PowerShell `>` redirect; write it as UTF-8, e.g. `terraform show -json tfplan | Out-File -Encoding utf8NoBOM plan.json`",
            ),
            PlanError::Utf16NoBom => f.write_str(
                "the plan file looks like UTF-16 (NUL bytes between characters); Terraform writes UTF-8: re-create it with `terraform show -json`",
            ),
            PlanError::NotUtf8 { offset } => write!(
                f,
                "the plan file is not valid UTF-8 (first invalid byte at offset {offset}); Terraform writes UTF-8 JSON"
            ),
            PlanError::TooDeep { limit, offset } => write!(
                f,
                "the plan JSON nests deeper than {limit} levels (at byte offset {offset}); refusing to process it"
            ),
            PlanError::TrailingGarbage { line, column } => write!(
                f,
                "unexpected data after the end of the JSON document at line {line} column {column} (two documents concatenated, or log output mixed in?)"
            ),
            PlanError::Syntax(e) => write!(f, "the plan file is not valid plan JSON: {e}"),
            PlanError::NotAnObject => f.write_str("the plan file is JSON but not a JSON object; expected `terraform show -json` output of a saved plan"),
            PlanError::FormatVersionMissing => f.write_str(
                "`format_version` is missing: this is not `terraform show -json` output (or it was trimmed)",
            ),
            PlanError::FormatVersionNotString => {
                f.write_str("`format_version` is not a string (Terraform writes e.g. \"1.2\")")
            }
            PlanError::UnsupportedVersion(v) => write!(
                f,
                "unsupported plan `format_version` `{}`: this plan-gate reads major versions 0 and 1",
                single_line(v)
            ),
            PlanError::StateFile => f.write_str(
                "this is a Terraform state, not a plan: run `terraform plan -out tfplan` and `terraform show -json tfplan`",
            ),
            PlanError::Encrypted => f.write_str(
                "this is an OpenTofu encrypted state or plan (it has `encryption_version`): plan-gate reads plan JSON, so run `tofu show -json tfplan` with the encryption configured and pass its output",
            ),
            PlanError::UnsupportedEngineVersion { engine, version } => write!(
                f,
                "this plan names {engine} providers but its `terraform_version` (the {engine} version) is {:?}, not a 1.x version this plan-gate knows (OpenTofu {OPENTOFU_COVERED}); refusing to guess its format",
                single_line(&version.chars().take(40).collect::<String>())
            ),
            PlanError::NotAPlan => f.write_str(
                "this JSON has a `format_version` but none of a plan's sections (`resource_changes`, `planned_values`, `output_changes`, `resource_drift`)",
            ),
            PlanError::DuplicateKey(k) => write!(
                f,
                "the top-level key `{}` occurs twice; refusing an ambiguous document",
                single_line(k)
            ),
            PlanError::DuplicateAddress(a) => write!(
                f,
                "resource address `{}` occurs twice in `resource_changes`; refusing an ambiguous plan",
                single_line(a)
            ),
            PlanError::UnknownAction { address, actions } => write!(
                f,
                "`{}` has actions {} which Terraform does not define; refusing to guess what this plan does",
                single_line(address),
                single_line(actions)
            ),
            PlanError::UnknownMode { address, mode } => write!(
                f,
                "`{}` has mode {:?}, which Terraform does not define (it writes `managed` or `data`); refusing to guess what this plan does",
                single_line(address),
                single_line(&mode.chars().take(40).collect::<String>())
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl PlanError {
    /// Map to the bad-input exit class (2), naming the `plan` input.
    pub fn into_failure(self) -> Failure {
        Failure::usage("plan", self.to_string())
    }
}

/// The engine that wrote a plan: OpenTofu and Terraform write the same JSON format
/// (`format_version` 1.x) and the same key `terraform_version`, each with its own version
/// numbering; the providers' registry host tells them apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// Only built-in providers (`terraform.io/builtin/...`) or none: either engine.
    #[default]
    Either,
    /// Providers from `registry.terraform.io`.
    Terraform,
    /// Providers from `registry.opentofu.org`.
    OpenTofu,
}

impl Engine {
    /// From the `full_name`s in `configuration.provider_config` (`registry.opentofu.org/...`).
    pub fn from_provider_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Engine {
        let mut e = Engine::Either;
        for n in names {
            let host = n.split('/').next().unwrap_or("").to_ascii_lowercase();
            match host.as_str() {
                "registry.opentofu.org" => return Engine::OpenTofu,
                "registry.terraform.io" => e = Engine::Terraform,
                _ => {}
            }
        }
        e
    }
    /// For humans and the report.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Either => "Terraform/OpenTofu",
            Engine::Terraform => "Terraform",
            Engine::OpenTofu => "OpenTofu",
        }
    }
}

/// The OpenTofu releases whose JSON output format this reader follows (its "JSON Output
/// Format" documentation, format_version 1.x): 1.6 to 1.10.
pub const OPENTOFU_COVERED: &str = "1.6 to 1.10";

/// The action set of one change, as Terraform defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `["no-op"]`
    NoOp,
    /// `["create"]`
    Create,
    /// `["read"]`
    Read,
    /// `["update"]`
    Update,
    /// `["delete"]`
    Delete,
    /// `["delete","create"]`
    DeleteThenCreate,
    /// `["create","delete"]` (create_before_destroy)
    CreateThenDelete,
    /// `["forget"]` (`removed` with `destroy = false`)
    Forget,
    /// `["create","forget"]`
    CreateThenForget,
}

impl Action {
    /// Parse an `actions` array. `None` for anything Terraform does not write.
    pub fn from_strs<S: AsRef<str>>(actions: &[S]) -> Option<Action> {
        let a: Vec<&str> = actions.iter().map(AsRef::as_ref).collect();
        Some(match a.as_slice() {
            ["no-op"] => Action::NoOp,
            ["create"] => Action::Create,
            ["read"] => Action::Read,
            ["update"] => Action::Update,
            ["delete"] => Action::Delete,
            ["delete", "create"] => Action::DeleteThenCreate,
            ["create", "delete"] => Action::CreateThenDelete,
            ["forget"] => Action::Forget,
            ["create", "forget"] => Action::CreateThenForget,
            _ => return None,
        })
    }
    /// The `actions` array as Terraform writes it.
    pub fn as_strs(self) -> &'static [&'static str] {
        match self {
            Action::NoOp => &["no-op"],
            Action::Create => &["create"],
            Action::Read => &["read"],
            Action::Update => &["update"],
            Action::Delete => &["delete"],
            Action::DeleteThenCreate => &["delete", "create"],
            Action::CreateThenDelete => &["create", "delete"],
            Action::Forget => &["forget"],
            Action::CreateThenForget => &["create", "forget"],
        }
    }
    /// Contains `create`.
    pub fn creates(self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::DeleteThenCreate
                | Action::CreateThenDelete
                | Action::CreateThenForget
        )
    }
    /// Contains `delete`.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::DeleteThenCreate | Action::CreateThenDelete
        )
    }
    /// A replacement, in either order.
    pub fn replaces(self) -> bool {
        matches!(self, Action::DeleteThenCreate | Action::CreateThenDelete)
    }
    /// Contains `forget`.
    pub fn forgets(self) -> bool {
        matches!(self, Action::Forget | Action::CreateThenForget)
    }
    /// A short word for humans.
    pub fn word(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "destroy",
            Action::DeleteThenCreate => "replace (destroy, then create)",
            Action::CreateThenDelete => "replace (create, then destroy)",
            Action::Forget => "forget (removed from state, not destroyed)",
            Action::CreateThenForget => "create, then forget",
        }
    }
}

/// How one attribute value is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// Absent / null.
    Null,
    /// Marked sensitive: never shown.
    Sensitive,
    /// Not known until apply.
    Unknown,
    /// Compact JSON as the plan wrote it (numbers included), already scrubbed of every
    /// sensitive string and then cut to a sane length.
    Value(String),
    /// Not shown: the plan has more distinct sensitive values than plan-gate remembers
    /// ([`load::SENSITIVE_MAX`]), so a value could hold one that cannot be scrubbed.
    Withheld,
}

/// One changed top-level attribute of an updated or replaced resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDiff {
    /// Attribute name.
    pub name: String,
    /// Before.
    pub before: Shown,
    /// After.
    pub after: Shown,
    /// This attribute forces the replacement.
    pub forces_replacement: bool,
}

/// What is kept of one `resource_changes` (or `resource_drift`) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    /// Full address, e.g. `module.a.aws_s3_bucket.b["x"]`.
    pub address: String,
    /// Module address (`module.a`), empty for the root module.
    pub module: String,
    /// `managed` or `data` (absent = `managed`; any other mode is refused).
    pub mode: String,
    /// Resource type.
    pub rtype: String,
    /// Provider name.
    pub provider: String,
    /// Deposed object key, when this entry is a deposed object.
    pub deposed: Option<String>,
    /// The action.
    pub action: Action,
    /// Address before a `moved` block.
    pub previous_address: Option<String>,
    /// Being imported.
    pub importing: bool,
    /// Terraform's reason for the action, if given.
    pub action_reason: Option<String>,
    /// Changed attributes (updates and replaces; may be cut for very large plans).
    pub attrs: Vec<AttrDiff>,
    /// True when attribute details were dropped to bound memory.
    pub attrs_omitted: bool,
}

impl ResourceChange {
    /// Managed resource (mode absent counts as managed).
    pub fn managed(&self) -> bool {
        self.mode == "managed"
    }
    /// Moved by a `moved` block.
    pub fn moved(&self) -> bool {
        self.previous_address
            .as_deref()
            .is_some_and(|p| p != self.address)
    }
}

/// What is kept of one `output_changes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChange {
    /// Output name.
    pub name: String,
    /// The action.
    pub action: Action,
    /// Marked sensitive (in the change or in the configuration).
    pub sensitive: bool,
    /// Before.
    pub before: Shown,
    /// After.
    pub after: Shown,
}

/// The figures of a plan, by Terraform's counting rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Managed resources whose actions contain `create`.
    pub add: usize,
    /// Managed resources with `["update"]`.
    pub change: usize,
    /// Managed resources whose actions contain `delete`.
    pub destroy: usize,
    /// Managed resources replaced (either order).
    pub replace: usize,
    /// Entries with `importing`.
    pub import: usize,
    /// Entries with a `previous_address` different from `address`.
    #[serde(rename = "move")]
    pub moves: usize,
    /// Entries whose actions contain `forget`.
    pub forget: usize,
    /// Entries with `["read"]`.
    pub read: usize,
    /// Entries with `["no-op"]`.
    pub no_op: usize,
    /// Entries in `resource_drift`.
    pub drift: usize,
    /// Output changes that are not no-ops.
    pub output_changes: usize,
}

impl Counts {
    /// Add one resource change to the figures.
    pub fn count(&mut self, rc: &ResourceChange) {
        let a = rc.action;
        if rc.managed() {
            if a.creates() {
                self.add += 1;
            }
            if a == Action::Update {
                self.change += 1;
            }
            if a.deletes() {
                self.destroy += 1;
            }
            if a.replaces() {
                self.replace += 1;
            }
        }
        if a.forgets() {
            self.forget += 1;
        }
        if a == Action::Read {
            self.read += 1;
        }
        if a == Action::NoOp {
            self.no_op += 1;
        }
        if rc.importing {
            self.import += 1;
        }
        if rc.moved() {
            self.moves += 1;
        }
    }

    /// True when applying the plan would change something (resources, state or outputs).
    pub fn has_changes(&self) -> bool {
        self.add + self.change + self.destroy + self.import + self.moves + self.forget + self.read
            > 0
            || self.output_changes > 0
    }

    /// Terraform's own summary line.
    pub fn terraform_line(&self) -> String {
        let mut s = String::new();
        if self.import > 0 {
            s.push_str(&format!("Plan: {} to import, ", self.import));
        } else {
            s.push_str("Plan: ");
        }
        s.push_str(&format!(
            "{} to add, {} to change, {} to destroy.",
            self.add, self.change, self.destroy
        ));
        s
    }
}

/// Everything kept of a plan.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// `format_version`.
    pub format_version: String,
    /// `terraform_version` (empty when absent): OpenTofu writes its own version under this key.
    pub terraform_version: String,
    /// Which engine wrote the plan, as far as its providers' registry tells.
    pub engine: Engine,
    /// `errored` (absent = false).
    pub errored: bool,
    /// `applyable` (absent = unknown).
    pub applyable: Option<bool>,
    /// The figures.
    pub counts: Counts,
    /// Every resource change that is not a plain no-op (and no-ops that move or import).
    pub changes: Vec<ResourceChange>,
    /// Drifted resources (`resource_drift`).
    pub drift: Vec<ResourceChange>,
    /// Resource addresses named in `relevant_attributes` (None when the key is absent).
    pub relevant: Option<BTreeSet<String>>,
    /// Output changes (all of them, no-ops included).
    pub outputs: Vec<OutputChange>,
    /// Provider names seen in `resource_changes` (for policy).
    pub providers: BTreeSet<String>,
    /// Sensitive strings found in the plan (variables, outputs, masked attributes), distinct,
    /// longest first, used to scrub everything rendered. At most [`load::SENSITIVE_MAX`].
    pub sensitive_strings: Vec<String>,
    /// More distinct sensitive strings than [`load::SENSITIVE_MAX`]: some are not in
    /// `sensitive_strings`, so no value is shown ([`Shown::Withheld`]) and the report says so.
    pub sensitive_overflow: bool,
    /// `plan_digest` (`sha256:<hex>`).
    pub digest: String,
    /// The digest's leaves, one per entry (what [`manifest`] lists).
    pub leaves: digest::Leaves,
    /// Size of the document in bytes.
    pub bytes: u64,
}

impl Summary {
    /// Replace every known sensitive string in `text` with `(sensitive)`. For many texts, build
    /// one [`Scrubber`] with [`Summary::scrubber`] instead.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber().scrub(text)
    }

    /// A scrubber for this plan's sensitive strings, as written and JSON-escaped. Renderers
    /// scrub each piece of plan text with it *before* escaping or cutting it, and the finished
    /// text once more.
    pub fn scrubber(&self) -> Scrubber {
        let mut all = self.sensitive_strings.clone();
        all.extend(json_forms(&self.sensitive_strings));
        all.sort_unstable();
        all.dedup();
        Scrubber::new(&all, "(sensitive)")
    }

    /// Changes grouped by module (root first), in address order within a module.
    pub fn by_module(&self) -> BTreeMap<&str, Vec<&ResourceChange>> {
        let mut m: BTreeMap<&str, Vec<&ResourceChange>> = BTreeMap::new();
        for rc in &self.changes {
            m.entry(rc.module.as_str()).or_default().push(rc);
        }
        m
    }
}

/// Each string as it appears inside a JSON string (escaped as serde_json and the canonical
/// writer escape it: `"`, `\\` and control characters), without the quotes.
pub(crate) fn json_forms(strings: &[String]) -> Vec<String> {
    strings
        .iter()
        .map(|s| {
            let j = serde_json::to_string(s).unwrap_or_default();
            j[1..j.len().saturating_sub(1).max(1)].to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_and_unknown_combinations_are_refused() {
        for a in [
            Action::NoOp,
            Action::Create,
            Action::Read,
            Action::Update,
            Action::Delete,
            Action::DeleteThenCreate,
            Action::CreateThenDelete,
            Action::Forget,
            Action::CreateThenForget,
        ] {
            assert_eq!(Action::from_strs(a.as_strs()), Some(a));
        }
        assert_eq!(Action::from_strs::<&str>(&[]), None);
        assert_eq!(Action::from_strs(&["create", "update"]), None);
        assert_eq!(Action::from_strs(&["destroy"]), None);
    }

    #[test]
    fn terraform_line_matches_terraform_wording() {
        let c = Counts {
            add: 2,
            change: 1,
            destroy: 3,
            ..Counts::default()
        };
        assert_eq!(
            c.terraform_line(),
            "Plan: 2 to add, 1 to change, 3 to destroy."
        );
        let c = Counts {
            import: 1,
            ..Counts::default()
        };
        assert_eq!(
            c.terraform_line(),
            "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."
        );
    }
}
