//! The change manifest: a compact, value-free list of what a plan does, one line per entry
//! (kind, address, deposed key, actions, a short salted hash of the entry), which the plan job
//! hands to the apply job next to the digest. When the fresh plan's digest is not the reviewed
//! one, [`compare`] says *what* differs: entries added, removed, with other actions, or with
//! other values (never which values: the manifest holds none).
//!
//! What leaves the plan job: resource addresses and output names (scrubbed of the plan's
//! sensitive strings, as in the report), actions, and per entry the first 64 bits of
//! `SHA-256("gitops-actions change manifest v1" | salt | leaf)`, where `leaf` is the entry's
//! digest leaf (its canonical content, sensitive values included) and `salt` the reviewed plan's
//! digest. Like the digest itself, such a hash lets someone who can guess *every* value of an
//! entry confirm the guess offline; it says nothing about a value with real entropy (a generated
//! password), and the salt keeps equal entries of different plans from being linked. Entries
//! without changes are folded into one count and hash. The gate never trusts the manifest: the
//! decision is the full digest's; the manifest only explains a mismatch.
//!
//! The text is one line of JSON, at most [`MAX_BYTES`] (it travels as a job output and an
//! environment variable); past that, the remaining changes are counted, not listed (`cut`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Action, Summary};
use crate::runner::single_line;

/// Largest manifest text written (and, with room to spare, read).
pub const MAX_BYTES: usize = 64 * 1024;

/// The format version.
const VERSION: u32 = 1;

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// An output change (else a resource change).
    pub output: bool,
    /// Address or output name (scrubbed).
    pub address: String,
    /// Deposed key, empty when none.
    pub deposed: String,
    /// The actions.
    pub action: Action,
    /// 16 hex digits.
    pub hash: String,
}

impl Entry {
    /// The order of the digest's leaves: outputs (`o`) before resources (`r`).
    fn key(&self) -> (bool, &str, &str) {
        (!self.output, &self.address, &self.deposed)
    }
}

/// A plan's change manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The digest of the plan it describes (also the salt of its hashes).
    pub digest: String,
    /// Entries with a change (not `no-op`), in key order.
    pub entries: Vec<Entry>,
    /// How many changed entries were not listed (size cap).
    pub cut: usize,
    /// Entries without change: how many, and one hash over all of them.
    pub no_ops: (usize, String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    digest: String,
    cut: usize,
    noop: (usize, String),
    entries: Vec<(String, String, String, String, String)>,
}

fn short(salt: &str, leaf: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"gitops-actions change manifest v1\xff");
    h.update(salt.as_bytes());
    h.update(b"\xff");
    h.update(leaf);
    hex::encode(&h.finalize()[..8])
}

fn actions_text(a: Action) -> String {
    a.as_strs().join(",")
}

impl Manifest {
    /// The manifest of `plan`, its hashes salted with `salt` (the plan job: the plan's own
    /// digest; the apply job: the reviewed digest, so both sides' hashes compare), listing at
    /// most `max_bytes` of text (`None`: everything).
    pub fn build(plan: &Summary, salt: &str, max_bytes: Option<usize>) -> Manifest {
        let scrubber = plan.scrubber();
        let mut entries = Vec::new();
        let mut no_op = Sha256::new();
        let mut no_ops = 0;
        let mut cut = 0;
        // The envelope's size, with room for the counts.
        let mut size = 160 + salt.len();
        for e in plan.leaves.entries() {
            if e.action == Action::NoOp {
                no_ops += 1;
                no_op.update(if e.output { b"o" } else { b"r" });
                no_op.update(e.address.as_bytes());
                no_op.update(b"\xff");
                no_op.update(e.deposed.as_bytes());
                no_op.update(b"\xff");
                no_op.update(e.hash);
                continue;
            }
            let entry = Entry {
                output: e.output,
                address: scrubber.scrub(e.address),
                deposed: e.deposed.to_string(),
                action: e.action,
                hash: short(salt, e.hash),
            };
            // Its JSON: the strings escaped, five quoted fields, commas and brackets.
            let len = serde_json::to_string(&entry.address).map_or(0, |s| s.len())
                + entry.deposed.len()
                + 48;
            if cut > 0 || max_bytes.is_some_and(|m| size + len > m) {
                cut += 1;
                continue;
            }
            size += len;
            entries.push(entry);
        }
        entries.sort_by(|a, b| a.key().cmp(&b.key()));
        let no_op_hash = short(salt, &no_op.finalize());
        Manifest {
            digest: plan.digest.clone(),
            entries,
            cut,
            no_ops: (no_ops, no_op_hash),
        }
    }

    /// One line of JSON.
    pub fn to_text(&self) -> String {
        let wire = Wire {
            v: VERSION,
            digest: self.digest.clone(),
            cut: self.cut,
            noop: self.no_ops.clone(),
            entries: self
                .entries
                .iter()
                .map(|e| {
                    (
                        if e.output { "o" } else { "r" }.to_string(),
                        e.address.clone(),
                        e.deposed.clone(),
                        actions_text(e.action),
                        e.hash.clone(),
                    )
                })
                .collect(),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Read a manifest (the apply job's `reviewed-changes` input). The error names what is
    /// wrong, never a value from the text.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        if text.len() > 2 * MAX_BYTES {
            return Err(format!(
                "is {} bytes, more than a change manifest can be ({} at most)",
                text.len(),
                2 * MAX_BYTES
            ));
        }
        let wire: Wire = serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "is not a change manifest (plan-gate's `changes` output): {} at line {} column {}",
                match e.classify() {
                    serde_json::error::Category::Io => "unreadable",
                    serde_json::error::Category::Syntax => "not JSON",
                    serde_json::error::Category::Data => "JSON of another shape",
                    serde_json::error::Category::Eof => "cut short",
                },
                e.line(),
                e.column()
            )
        })?;
        if wire.v != VERSION {
            return Err(format!(
                "has format version {}, this plan-gate reads {VERSION}",
                wire.v
            ));
        }
        let hash_ok = |h: &str| {
            h.len() == 16
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        crate::validate::sha256_digest("reviewed-changes", &wire.digest)
            .map_err(|_| "has no valid `digest`".to_string())?;
        if !hash_ok(&wire.noop.1) {
            return Err("has a malformed hash".into());
        }
        let mut entries = Vec::with_capacity(wire.entries.len());
        for (i, (kind, address, deposed, actions, hash)) in wire.entries.into_iter().enumerate() {
            let n = i + 1;
            let output = match kind.as_str() {
                "r" => false,
                "o" => true,
                _ => return Err(format!("entry {n} has an unknown kind")),
            };
            let parts: Vec<&str> = actions.split(',').collect();
            let action = Action::from_strs(&parts)
                .filter(|a| *a != Action::NoOp)
                .ok_or_else(|| format!("entry {n} has actions Terraform does not define"))?;
            if !hash_ok(&hash) {
                return Err(format!("entry {n} has a malformed hash"));
            }
            entries.push(Entry {
                output,
                address,
                deposed,
                action,
                hash,
            });
        }
        entries.sort_by(|a, b| a.key().cmp(&b.key()));
        if entries.windows(2).any(|w| w[0].key() == w[1].key()) {
            return Err("lists one entry twice".into());
        }
        Ok(Manifest {
            digest: wire.digest,
            entries,
            cut: wire.cut,
            no_ops: wire.noop,
        })
    }
}

/// One difference between the reviewed plan and the fresh one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// In the fresh plan only.
    Added(Entry),
    /// In the reviewed plan only.
    Removed(Entry),
    /// Both plan a change to the entry, with other actions.
    ActionChanged {
        /// The entry as reviewed.
        reviewed: Entry,
        /// The fresh actions.
        now: Action,
    },
    /// Same actions, other values (which ones is not said: the manifest holds no values).
    ValuesChanged(Entry),
    /// The entries without change differ (count, or their recorded values).
    NoOps {
        /// How many the reviewed plan had.
        reviewed: usize,
        /// How many the fresh plan has.
        now: usize,
    },
    /// The reviewed manifest did not list every change (size cap): those are not compared.
    Unlisted {
        /// Changes of the reviewed plan that were not listed.
        reviewed: usize,
    },
}

fn what(e: &Entry) -> String {
    let mut s = if e.output {
        format!("output {}", single_line(&e.address))
    } else {
        single_line(&e.address)
    };
    if !e.deposed.is_empty() {
        s.push_str(&format!(" (deposed object {})", single_line(&e.deposed)));
    }
    s
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Added(e) => write!(
                f,
                "+ {}: {} (not in the reviewed plan)",
                what(e),
                e.action.word()
            ),
            Difference::Removed(e) => write!(
                f,
                "- {}: {} (reviewed, no longer planned)",
                what(e),
                e.action.word()
            ),
            Difference::ActionChanged { reviewed, now } => write!(
                f,
                "~ {}: reviewed {}, now {}",
                what(reviewed),
                reviewed.action.word(),
                now.word()
            ),
            Difference::ValuesChanged(e) => write!(
                f,
                "~ {}: {}, with other values than reviewed",
                what(e),
                e.action.word()
            ),
            Difference::NoOps { reviewed, now } => write!(
                f,
                "~ entries without changes: {reviewed} reviewed, {now} now, or their recorded state differs"
            ),
            Difference::Unlisted { reviewed } => write!(
                f,
                "  ({reviewed} reviewed changes were not listed in the manifest, which has a size cap: they are not compared one by one)"
            ),
        }
    }
}

/// What differs between the reviewed manifest and the fresh one (built with the reviewed
/// digest as its salt). Empty when they agree entry by entry (then the digests differ only in
/// what the manifest folds: nothing, since it covers every entry).
pub fn compare(reviewed: &Manifest, fresh: &Manifest) -> Vec<Difference> {
    let mut out = Vec::new();
    let now: BTreeMap<_, &Entry> = fresh.entries.iter().map(|e| (e.key(), e)).collect();
    let was: BTreeMap<_, &Entry> = reviewed.entries.iter().map(|e| (e.key(), e)).collect();
    // With a cut manifest, fresh changes past the last listed key may be among the unlisted.
    let last = reviewed.entries.last().map(Entry::key);
    for r in &reviewed.entries {
        match now.get(&r.key()) {
            None => out.push(Difference::Removed(r.clone())),
            Some(n) if n.action != r.action => out.push(Difference::ActionChanged {
                reviewed: r.clone(),
                now: n.action,
            }),
            Some(n) if n.hash != r.hash => out.push(Difference::ValuesChanged(r.clone())),
            Some(_) => {}
        }
    }
    for n in &fresh.entries {
        let beyond = reviewed.cut > 0 && last.is_none_or(|l| n.key() > l);
        if !was.contains_key(&n.key()) && !beyond {
            out.push(Difference::Added(n.clone()));
        }
    }
    if reviewed.no_ops != fresh.no_ops {
        out.push(Difference::NoOps {
            reviewed: reviewed.no_ops.0,
            now: fresh.no_ops.0,
        });
    }
    if reviewed.cut > 0 {
        out.push(Difference::Unlisted {
            reviewed: reviewed.cut,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(entries: &str) -> Summary {
        let doc = format!(
            r#"{{"format_version":"1.2","terraform_version":"1.11.4","resource_changes":[{entries}]}}"#
        );
        crate::plan::load::load_bytes_reference(doc.as_bytes(), &Default::default()).unwrap()
    }

    fn rc(address: &str, actions: &str, after: &str) -> String {
        let (module, rest) = match address.rsplit_once(".terraform_data.") {
            Some((m, n)) => (format!(r#""module_address":"{m}","#), n.to_string()),
            None => (
                String::new(),
                address.trim_start_matches("terraform_data.").to_string(),
            ),
        };
        format!(
            r#"{{"address":"{address}",{module}"mode":"managed","type":"terraform_data","name":"{rest}","provider_name":"terraform.io/builtin/terraform","change":{{"actions":[{actions}],"before":null,"after":{after},"after_unknown":{{}}}}}}"#
        )
    }

    const A: &str = r#""create""#;
    const U: &str = r#""update""#;
    const N: &str = r#""no-op""#;
    const R: &str = r#""delete","create""#;

    fn diff(reviewed: &[String], fresh: &[String]) -> Vec<String> {
        let r = plan(&reviewed.join(","));
        let f = plan(&fresh.join(","));
        let m = Manifest::build(&r, &r.digest, Some(MAX_BYTES));
        let round = Manifest::parse(&m.to_text()).unwrap();
        assert_eq!(round, m, "the text reads back as written");
        let d = compare(&round, &Manifest::build(&f, &r.digest, None));
        assert_eq!(d.is_empty(), r.digest == f.digest, "{d:?}");
        d.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_kind_of_difference_is_named_by_address_and_action() {
        let a = rc("terraform_data.a", A, r#"{"input":"1"}"#);
        let b = rc("terraform_data.b", U, r#"{"input":"2"}"#);
        let c = rc("terraform_data.c", N, r#"{"input":"3"}"#);
        type Case<'a> = (&'a str, Vec<String>, Vec<String>, &'a [&'a str]);
        let cases: &[Case] = &[
            (
                "same plan",
                vec![a.clone(), b.clone()],
                vec![b.clone(), a.clone()],
                &[],
            ),
            (
                "added",
                vec![a.clone()],
                vec![a.clone(), b.clone()],
                &["+ terraform_data.b: update (not in the reviewed plan)"],
            ),
            (
                "removed",
                vec![a.clone(), b.clone()],
                vec![b.clone()],
                &["- terraform_data.a: create (reviewed, no longer planned)"],
            ),
            (
                "action changed",
                vec![b.clone()],
                vec![rc("terraform_data.b", R, r#"{"input":"2"}"#)],
                &["~ terraform_data.b: reviewed update, now replace (destroy, then create)"],
            ),
            (
                "values changed",
                vec![b.clone()],
                vec![rc("terraform_data.b", U, r#"{"input":"9"}"#)],
                &["~ terraform_data.b: update, with other values than reviewed"],
            ),
            (
                "a no-op that changed state",
                vec![a.clone(), c.clone()],
                vec![a.clone(), rc("terraform_data.c", N, r#"{"input":"4"}"#)],
                &["~ entries without changes: 1 reviewed, 1 now, or their recorded state differs"],
            ),
            (
                "a module address",
                vec![rc("module.db.terraform_data.x", A, "{}")],
                vec![],
                &["- module.db.terraform_data.x: create (reviewed, no longer planned)"],
            ),
        ];
        for (name, reviewed, fresh, want) in cases {
            assert_eq!(diff(reviewed, fresh), *want, "{name}");
        }
    }

    #[test]
    fn the_manifest_holds_no_value_and_no_sensitive_address() {
        let secret = "s3cr3t-value-xyz";
        let p = plan(&format!(
            r#"{{"address":"terraform_data.a","mode":"managed","type":"terraform_data","name":"a","provider_name":"p","change":{{"actions":["create"],"before":null,"after":{{"input":"{secret}"}},"after_unknown":{{}},"after_sensitive":{{"input":true}}}}}},
              {{"address":"terraform_data.b[\"{secret}\"]","mode":"managed","type":"terraform_data","name":"b","provider_name":"p","change":{{"actions":["create"],"before":null,"after":{{}},"after_unknown":{{}}}}}}"#
        ));
        let text = Manifest::build(&p, &p.digest, Some(MAX_BYTES)).to_text();
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("terraform_data.a"), "{text}");
    }

    #[test]
    fn a_manifest_over_the_cap_counts_what_it_does_not_list() {
        let many: Vec<String> = (0..3000)
            .map(|i| rc(&format!("terraform_data.r{i:05}"), A, "{}"))
            .collect();
        let p = plan(&many.join(","));
        let m = Manifest::build(&p, &p.digest, Some(MAX_BYTES));
        let text = m.to_text();
        assert!(text.len() <= MAX_BYTES, "{}", text.len());
        assert!(m.cut > 0 && m.entries.len() + m.cut == 3000);
        // A change among the unlisted ones is not claimed as added; the note says why.
        let mut fresh = many.clone();
        fresh[2999] = rc("terraform_data.r02999", U, "{}");
        let f = plan(&fresh.join(","));
        let d = compare(&m, &Manifest::build(&f, &p.digest, None));
        assert!(
            matches!(d.last(), Some(Difference::Unlisted { .. })),
            "{d:?}"
        );
        assert!(
            !d.iter().any(|x| matches!(x, Difference::Added(_))),
            "{d:?}"
        );
    }

    #[test]
    fn malformed_manifests_are_refused_without_echoing_them() {
        let p = plan(&rc("terraform_data.a", A, "{}"));
        let good = Manifest::build(&p, &p.digest, None).to_text();
        let cases = [
            ("ghp_tokenpasted", "not JSON"),
            (r#"{"v":1}"#, "another shape"),
            (&good.replace(r#""v":1"#, r#""v":2"#), "format version 2"),
            (
                &good.replace(r#""create""#, r#""explode""#),
                "entry 1 has actions",
            ),
            (
                &good.replace(r#"["r","#, r#"["x","#),
                "entry 1 has an unknown kind",
            ),
            (
                &good.replace(r#""digest":"sha256:"#, r#""digest":"md5:"#),
                "no valid `digest`",
            ),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("ghp_"), "{e}");
        }
        let twice = good.replace(
            "]]}",
            &format!(
                "],{}]}}",
                &good[good.find("[\"r\"").unwrap()..good.len() - 2]
            ),
        );
        assert_eq!(
            Manifest::parse(&twice).unwrap_err(),
            "lists one entry twice"
        );
    }
}
