//! Reading `terraform show -json` output: both cores, bounded memory, one answer.
//!
//! The size limit is checked on the file's metadata before a byte is read; UTF-16 is recognised
//! from the first bytes. Then the file is memory-mapped and read by the **fast path**
//! (`fast`); for any document the fast path does not fully accept, the **reference path**
//! (`reference`) runs and owns every refusal and its message, so the fast path cannot change
//! what is refused or how; tests and the fuzz target check that both paths give the same answer.
//!
//! What this folder owns, by concern:
//! - this file: the entry points ([`load`], [`load_bytes`] and the two paths alone for tests),
//!   the [`Limits`], and what both readers keep of a plan: the `Builder`, `take_change` (one
//!   `resource_changes` entry counted, remembered and digested, or queued for the digest) and
//!   `finish` (the checks on the whole document, outputs, sensitive strings, the digest).
//! - `fast.rs`: the fast path. This core cuts the top-level object into its sections with the
//!   structural scanner (`plan::scan`, which also enforces the depth limit), reads
//!   `resource_changes` entry by entry with its own small reader (raw values are byte ranges of
//!   the mapping, nothing is validated yet) and deserializes the other sections plan-gate reads
//!   with the reference path's serde seeds. Validation runs on a work queue that a second thread
//!   serves (and this one, once it has read everything): the sections plan-gate does not read
//!   and every `resource_changes` entry are checked by the validating JSON checker
//!   (`plan::jsoncheck`: JSON grammar, UTF-8, depth), and each entry's digest leaf is computed
//!   there too.
//! - `prescan.rs`: pass one of the reference path, streaming the file through a 1 MiB buffer
//!   (empty file, UTF-8, nesting depth).
//! - `reference.rs`: the reference path: pass one on a second core while pass two deserializes
//!   the whole document with serde seeds (`TopSeed`, `KeySeed`, ...).
//! - `mapped.rs`: the read-only file mapping (the one place with unsafe code). Each thread hands
//!   the pages behind it back to the kernel (`MADV_DONTNEED`), so resident memory stays bounded
//!   by a few steps of `RELEASE_STEP` rather than the file size.
//!
//! Outside this folder: the borrowed shapes of entries and raw values are `plan::raw` (the
//! digest reads them too); masks, sensitive strings, attribute diffs and value texts are
//! `plan::values`. Each entry is reduced to a small [`ResourceChange`], and `Value`s are built
//! only where a sensitivity mask marks something or an updated attribute differs.

mod fast;
#[allow(unsafe_code)]
mod mapped;
mod prescan;
mod reference;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::path::Path;

use serde::de;

use super::digest::Leaves;
use super::raw::RcRaw;
use super::values::{
    attr_diffs_raw, collect_all, collect_marked, compact_raw, finish_values, mask_any, mask_of,
    shown_len, trivial_mask, Collected,
};
use super::{Action, OutputChange, PlanError, ResourceChange, Shown, Summary};
use fast::{fast, DigestJob, DigestTo, DIGEST_BACKLOG, DIGEST_BATCH};
use prescan::prescan;
use reference::{parse_slice, reference};

pub use super::values::SENSITIVE_MAX;

/// Limits applied before and while reading.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted file, in bytes (checked before reading).
    pub max_bytes: u64,
    /// Deepest accepted nesting of arrays/objects (at most 128, serde_json's own limit).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024 * 1024,
            max_depth: 100,
        }
    }
}

/// Attribute diffs are kept for at most this many bytes in total (rendering cuts long before).
const ATTR_BUDGET: usize = 4 * 1024 * 1024;
/// Consumed pages are released in steps of this size.
const RELEASE_STEP: usize = 8 * 1024 * 1024;

/// Read, validate, count and digest a plan file.
pub fn load(path: &Path, limits: &Limits) -> Result<Summary, PlanError> {
    let file = File::open(path).map_err(|e| PlanError::Io(e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| PlanError::Io(e.to_string()))?
        .len();
    if size > limits.max_bytes {
        return Err(PlanError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    if size == 0 {
        return Err(PlanError::Empty);
    }
    let map = mapped::Map::new(&file).map_err(|e| PlanError::Io(e.to_string()))?;
    let bytes = map.bytes();
    if bytes.len() as u64 != size {
        return Err(PlanError::Io(
            "the file changed while it was being read".into(),
        ));
    }
    let start = bom_start(bytes)?;
    if let Some(mut summary) = fast(bytes, start, limits, Some((&map, &file))) {
        summary.bytes = size;
        return Ok(summary);
    }
    // The fast path gave up: the reference path finds out why (and owns every message).
    map.rewind(0);
    reference(&file, &map, start, limits, size)
}

/// Where the JSON starts: refuses UTF-16 (BOM, or NULs between ASCII), skips a UTF-8 BOM.
fn bom_start(head: &[u8]) -> Result<usize, PlanError> {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(PlanError::Utf16Bom);
    }
    let start = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    };
    let h = &head[start..head.len().min(start + 4)];
    if h.len() >= 2 && h.contains(&0) {
        return Err(PlanError::Utf16NoBom);
    }
    Ok(start)
}

/// Parse a plan held in memory (tests, fuzzing). Runs the same checks as [`load`].
pub fn load_bytes(bytes: &[u8], limits: &Limits) -> Result<Summary, PlanError> {
    if bytes.len() as u64 <= limits.max_bytes {
        if let Ok(start) = bom_start(bytes) {
            if let Some(mut s) = fast(bytes, start, limits, None) {
                s.bytes = bytes.len() as u64;
                return Ok(s);
            }
        }
    }
    load_bytes_reference(bytes, limits)
}

/// The fast path alone: `None` where it leaves the answer to the reference path (tests check
/// that it answers for well-formed plans, and answers exactly as the reference path does).
#[doc(hidden)]
pub fn load_bytes_fast(bytes: &[u8], limits: &Limits) -> Option<Summary> {
    if bytes.len() as u64 > limits.max_bytes {
        return None;
    }
    let start = bom_start(bytes).ok()?;
    let mut s = fast(bytes, start, limits, None)?;
    s.bytes = bytes.len() as u64;
    Some(s)
}

/// [`load_bytes`] without the fast path: the reference every result of the fast path must equal
/// (tests and the fuzz target compare the two).
#[doc(hidden)]
pub fn load_bytes_reference(bytes: &[u8], limits: &Limits) -> Result<Summary, PlanError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(PlanError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(PlanError::Empty);
    }
    let start = prescan(&mut &bytes[..], limits)?;
    let mut s = parse_slice(&bytes[start..], None)?;
    s.bytes = bytes.len() as u64;
    Ok(s)
}

// ----- what both readers keep ------------------------------------------------------------------

/// Sentinel message of a serde error raised by our own checks (the reason is in `Builder::fail`).
const REFUSED: &str = "\u{1}plan-gate refusal";

/// Hands the pages behind a reader back to the kernel (nothing to do without a mapping).
#[derive(Clone, Copy)]
struct Release<'m> {
    base: usize,
    map: Option<&'m mapped::Map>,
}

impl<'m> Release<'m> {
    fn new(map: Option<&'m mapped::Map>) -> Self {
        Release {
            base: map.map(|m| m.bytes().as_ptr() as usize).unwrap_or(0),
            map,
        }
    }

    fn after(&self, s: &str) {
        self.after_bytes(s.as_bytes());
    }

    fn after_bytes(&self, s: &[u8]) {
        if let Some(m) = self.map {
            let end = (s.as_ptr() as usize + s.len()).saturating_sub(self.base);
            m.release_before(end, RELEASE_STEP);
        }
    }
}

struct Builder<'m> {
    rel: Release<'m>,
    fail: RefCell<Option<PlanError>>,
    summary: RefCell<Summary>,
    seen_keys: RefCell<BTreeSet<String>>,
    addresses: RefCell<HashSet<String>>,
    leaves: RefCell<Leaves>,
    attr_bytes: Cell<usize>,
    sensitive: RefCell<Collected>,
    variables: RefCell<BTreeMap<String, String>>,
    sensitive_vars: RefCell<BTreeSet<String>>,
    sensitive_outputs_cfg: RefCell<BTreeSet<String>>,
    pending_outputs: RefCell<Vec<PendingOutput>>,
    format_seen: Cell<bool>,
    /// Fast path: digest leaves are computed by the second thread, from offsets relative to
    /// `origin` (the address of the document's first byte on this thread).
    digest_to: Option<DigestTo<'m>>,
}

struct PendingOutput {
    name: String,
    action: Action,
    before: Option<String>,
    after: Option<String>,
    after_unknown: Option<String>,
    before_sensitive: Option<String>,
    after_sensitive: Option<String>,
}

impl Builder<'_> {
    fn refuse<E: de::Error>(&self, e: PlanError) -> E {
        let mut f = self.fail.borrow_mut();
        if f.is_none() {
            *f = Some(e);
        }
        E::custom(REFUSED)
    }
}

impl<'m> Builder<'m> {
    fn new(map: Option<&'m mapped::Map>) -> Self {
        Builder {
            rel: Release::new(map),
            fail: RefCell::new(None),
            summary: RefCell::new(Summary::default()),
            seen_keys: RefCell::new(BTreeSet::new()),
            addresses: RefCell::new(HashSet::new()),
            leaves: RefCell::new(Leaves::default()),
            attr_bytes: Cell::new(0),
            sensitive: RefCell::new(Collected::default()),
            variables: RefCell::new(BTreeMap::new()),
            sensitive_vars: RefCell::new(BTreeSet::new()),
            sensitive_outputs_cfg: RefCell::new(BTreeSet::new()),
            pending_outputs: RefCell::new(Vec::new()),
            format_seen: Cell::new(false),
            digest_to: None,
        }
    }
}

fn finish(b: Builder<'_>) -> Result<Summary, PlanError> {
    let keys = b.seen_keys.into_inner();
    let plan_like = [
        "resource_changes",
        "planned_values",
        "output_changes",
        "resource_drift",
    ]
    .iter()
    .any(|k| keys.contains(*k));
    // OpenTofu's encrypted files wrap state or plan and name their scheme's version.
    if keys.contains("encryption_version") && keys.contains("encrypted_data") {
        return Err(PlanError::Encrypted);
    }
    let state_like = keys.contains("lineage")
        || keys.contains("serial")
        || (keys.contains("values") && !plan_like);
    if !b.format_seen.get() {
        if state_like {
            return Err(PlanError::StateFile);
        }
        return Err(PlanError::FormatVersionMissing);
    }
    if state_like {
        return Err(PlanError::StateFile);
    }
    if !plan_like {
        return Err(PlanError::NotAPlan);
    }
    let mut s = b.summary.into_inner();
    if s.engine == super::Engine::OpenTofu && !opentofu_version(&s.terraform_version) {
        return Err(PlanError::UnsupportedEngineVersion {
            engine: "OpenTofu",
            version: s.terraform_version.clone(),
        });
    }
    let mut sens = b.sensitive.into_inner();
    // Sensitive variables: their values are scrubbed from everything rendered.
    let sens_vars = b.sensitive_vars.into_inner();
    for (name, raw) in b.variables.into_inner() {
        if sens_vars.contains(&name) {
            collect_all(raw.as_bytes(), &mut sens);
        }
    }
    // Outputs: sensitivity from the change's masks or the configuration.
    let cfg_sens = b.sensitive_outputs_cfg.into_inner();
    let mut leaves = b.leaves.into_inner();
    for p in b.pending_outputs.into_inner() {
        fn raw(r: &Option<String>) -> Option<&[u8]> {
            r.as_deref().map(str::as_bytes)
        }
        let (au, bs, asn) = (
            mask_of(raw(&p.after_unknown)),
            mask_of(raw(&p.before_sensitive)),
            mask_of(raw(&p.after_sensitive)),
        );
        let sensitive = cfg_sens.contains(&p.name) || mask_any(&bs) || mask_any(&asn);
        if sensitive {
            for r in [raw(&p.before), raw(&p.after)].into_iter().flatten() {
                collect_all(r, &mut sens);
            }
        }
        let shown = |r: Option<&[u8]>, unknown: bool| {
            if sensitive {
                Shown::Sensitive
            } else if unknown {
                Shown::Unknown
            } else {
                match r.map(<[u8]>::trim_ascii) {
                    None | Some(b"null") => Shown::Null,
                    Some(r) => Shown::Value(compact_raw(r)),
                }
            }
        };
        let o = OutputChange {
            name: p.name.clone(),
            action: p.action,
            sensitive,
            before: shown(raw(&p.before), false),
            after: shown(raw(&p.after), mask_any(&au)),
        };
        if o.action != Action::NoOp {
            s.counts.output_changes += 1;
        }
        leaves.output(
            &p.name,
            p.action,
            &[
                &p.before,
                &p.after,
                &p.after_unknown,
                &p.before_sensitive,
                &p.after_sensitive,
            ],
        );
        s.outputs.push(o);
    }
    s.sensitive_overflow = sens.overflow;
    s.sensitive_strings = sens.set.into_iter().collect();
    s.sensitive_strings
        .sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    finish_values(&mut s);
    s.digest = leaves.finish();
    s.leaves = leaves;
    Ok(s)
}

/// An OpenTofu version as its plans write it: `1.<minor>.<patch>`, maybe with a pre-release
/// suffix (`1.9.0-beta1`). (OpenTofu's releases start at 1.6.0; an older 1.x here is Terraform
/// using OpenTofu's registry, which writes the same format.)
fn opentofu_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let num = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|c| c.is_ascii_digit());
    parts.len() == 3 && parts.iter().all(|p| num(p)) && parts[0] == "1"
}

fn actions_of(address: &str, actions: &[Cow<'_, str>]) -> Result<Action, PlanError> {
    Action::from_strs(actions).ok_or_else(|| PlanError::UnknownAction {
        address: address.to_string(),
        actions: format!(
            "[{}]",
            actions
                .iter()
                .map(|a| format!("{:?}", crate::runner::single_line(a)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Count, remember, digest (or queue for the digest) one `resource_changes` (or, with `drift`,
/// `resource_drift`) entry.
///
/// `entry` (the fast path's entry reader only): the entry's text, not validated yet; it is
/// validated with its digest.
fn take_change(
    b: &Builder<'_>,
    rc: RcRaw<'_>,
    drift: bool,
    entry: Option<&[u8]>,
) -> Result<(), PlanError> {
    let address = match (&rc.address, drift) {
        (Some(a), _) => a.to_string(),
        // Terraform 1.0.x wrote drift entries without `address`: rebuild it.
        (None, true) => {
            let mut a = String::new();
            if let Some(m) = rc.module_address.as_deref().filter(|m| !m.is_empty()) {
                a.push_str(m);
                a.push('.');
            }
            if rc.mode.as_deref() == Some("data") {
                a.push_str("data.");
            }
            a.push_str(rc.rtype.as_deref().unwrap_or("?"));
            a.push('.');
            a.push_str(rc.name.as_deref().unwrap_or("?"));
            a
        }
        (None, false) => {
            return Err(PlanError::Syntax(
                "a `resource_changes` entry has no `address`".into(),
            ))
        }
    };
    let mode = match rc.mode.as_deref() {
        None | Some("managed") => "managed",
        Some("data") => "data",
        Some(other) => {
            return Err(PlanError::UnknownMode {
                address,
                mode: other.to_string(),
            })
        }
    }
    .to_string();
    let action = actions_of(&address, &rc.change.actions)?;
    let mut out = ResourceChange {
        address,
        module: rc.module_address.as_deref().unwrap_or("").to_string(),
        mode,
        rtype: rc.rtype.as_deref().unwrap_or("").to_string(),
        provider: rc.provider_name.as_deref().unwrap_or("").to_string(),
        deposed: rc.deposed.as_ref().map(|d| d.to_string()),
        action,
        previous_address: rc.previous_address.as_ref().map(|d| d.to_string()),
        importing: rc.change.importing.is_some(),
        action_reason: rc.action_reason.as_ref().map(|d| d.to_string()),
        attrs: Vec::new(),
        attrs_omitted: false,
    };
    // Sensitive values: remember their strings (for scrubbing) when a mask marks any.
    let bs = rc.change.before_sensitive.map(|r| r.0).unwrap_or(b"false");
    let asn = rc.change.after_sensitive.map(|r| r.0).unwrap_or(b"false");
    // (A mask of `true` marks the whole value.)
    let has_sensitive = trivial_mask(bs) != Some(false) || trivial_mask(asn) != Some(false);
    let needs_diff = matches!(
        action,
        Action::Update | Action::DeleteThenCreate | Action::CreateThenDelete
    ) || drift;
    // Values are built only where a mask marks something or an attribute differs (both readers
    // share this code: they differ in how they find the entry, not in what they keep of it).
    if has_sensitive {
        let mut sens = b.sensitive.borrow_mut();
        for (v, mask) in [
            (rc.change.before, rc.change.before_sensitive),
            (rc.change.after, rc.change.after_sensitive),
        ] {
            // A mask without the token `true` marks nothing: no need to parse it.
            let (v, mask) = (v.map(|r| r.0), mask.map(|r| r.0));
            if mask.is_some_and(|m| memchr::memmem::find(m, b"true").is_some()) {
                collect_marked(v, &mask_of(mask), &mut sens);
            }
        }
    }
    if needs_diff {
        if b.attr_bytes.get() < ATTR_BUDGET {
            out.attrs = attr_diffs_raw(&rc.change);
            let used: usize = out
                .attrs
                .iter()
                .map(|a| a.name.len() + shown_len(&a.before) + shown_len(&a.after))
                .sum();
            b.attr_bytes.set(b.attr_bytes.get() + used + 64);
        } else {
            out.attrs_omitted = true;
        }
    }
    if drift {
        b.summary.borrow_mut().counts.drift += 1;
        b.summary.borrow_mut().drift.push(out);
    } else {
        // (The fast path finds duplicates among the digest's leaves, at the end.)
        if b.digest_to.is_none() {
            let key = match &out.deposed {
                Some(d) => format!("{}\u{0}{d}", out.address),
                None => out.address.clone(),
            };
            if !b.addresses.borrow_mut().insert(key) {
                return Err(PlanError::DuplicateAddress(out.address));
            }
        }
        match entry {
            None => b.leaves.borrow_mut().resource(&out, &rc.change),
            Some(entry) => {
                // The entry reader runs only on the fast path, which always has a queue.
                let to = b
                    .digest_to
                    .as_ref()
                    .ok_or_else(|| PlanError::Io("no digest queue".into()))?;
                let waiting = to
                    .shared
                    .queued_digests
                    .load(std::sync::atomic::Ordering::Relaxed);
                if waiting < DIGEST_BACKLOG {
                    let at = |r: &[u8]| (r.as_ptr() as usize - to.origin, r.len());
                    let job = DigestJob {
                        address: out.address.clone(),
                        deposed: out.deposed.clone(),
                        previous_address: out.previous_address.clone(),
                        action: out.action,
                        raws: rc.change.raws().map(|r| r.map(at)),
                        entry: at(entry),
                    };
                    let full = {
                        let mut batch = to.batch.borrow_mut();
                        batch.push(job);
                        batch.len() >= DIGEST_BATCH
                    };
                    if full && to.flush().is_none() {
                        return Err(PlanError::Io("the checker thread stopped".into()));
                    }
                } else {
                    // The queue is long: validate and digest here.
                    if !to.shared.entry_is_valid(entry) {
                        return Err(PlanError::Syntax("not valid JSON".into()));
                    }
                    b.leaves.borrow_mut().resource(&out, &rc.change);
                }
            }
        }
        let mut s = b.summary.borrow_mut();
        s.counts.count(&out);
        if !out.provider.is_empty() && !s.providers.contains(&out.provider) {
            s.providers.insert(out.provider.clone());
        }
        if out.action != Action::NoOp || out.moved() || out.importing {
            s.changes.push(out);
        }
    }
    if let Some(last) = rc.change.last_raw() {
        b.rel.after_bytes(last);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn refusals_have_their_own_reasons() {
        let r = |b: &[u8]| load_bytes(b, &lim()).unwrap_err();
        assert_eq!(r(b""), PlanError::Empty);
        assert_eq!(r(b"  \n"), PlanError::Empty);
        assert_eq!(r(b"\xff\xfe{\0}\0"), PlanError::Utf16Bom);
        assert_eq!(r(b"{\0\"\0"), PlanError::Utf16NoBom);
        assert!(matches!(
            r(b"{\"a\":\"\xc3\x28\"}"),
            PlanError::NotUtf8 { offset: 6 }
        ));
        assert_eq!(
            r(br#"{"format_version":"1.2","resource_changes":[]} x"#),
            PlanError::TrailingGarbage {
                line: 1,
                column: 48
            }
        );
        assert_eq!(
            r(br#"{"resource_changes":[]}"#),
            PlanError::FormatVersionMissing
        );
        assert_eq!(
            r(br#"{"format_version":1.2,"resource_changes":[]}"#),
            PlanError::FormatVersionNotString
        );
        assert_eq!(
            r(br#"{"format_version":"2.0","resource_changes":[]}"#),
            PlanError::UnsupportedVersion("2.0".into())
        );
        assert_eq!(
            r(br#"{"version":4,"serial":3,"lineage":"x","resources":[]}"#),
            PlanError::StateFile
        );
        assert_eq!(
            r(br#"{"format_version":"1.0","values":{}}"#),
            PlanError::StateFile
        );
        assert_eq!(r(br#"{"format_version":"1.0"}"#), PlanError::NotAPlan);
        assert_eq!(r(b"[1]"), PlanError::NotAnObject);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(r(deep.as_bytes()), PlanError::TooDeep { .. }));
        let dup = br#"{"format_version":"1.2","resource_changes":[
            {"address":"a.b","change":{"actions":["create"]}},
            {"address":"a.b","change":{"actions":["create"]}}]}"#;
        assert_eq!(r(dup), PlanError::DuplicateAddress("a.b".into()));
        let unk = br#"{"format_version":"1.2","resource_changes":[
            {"address":"a.b","change":{"actions":["explode"]}}]}"#;
        assert!(matches!(r(unk), PlanError::UnknownAction { .. }));
        let dupkey = br#"{"format_version":"1.2","resource_changes":[],"resource_changes":[]}"#;
        assert!(matches!(r(dupkey), PlanError::DuplicateKey(_)));
    }

    /// The engine comes from the providers' registry; an OpenTofu plan's `terraform_version` is
    /// OpenTofu's own 1.x version; both readers agree on it.
    #[test]
    fn opentofu_plans_name_their_engine_and_other_versions_are_refused() {
        let plan = |host: &str, v: &str| {
            format!(
                r#"{{"format_version":"1.2","terraform_version":"{v}","resource_changes":[],"configuration":{{"provider_config":{{"a":{{"name":"aws","full_name":"{host}/hashicorp/aws"}}}}}}}}"#
            )
        };
        for (host, v, want) in [
            (
                "registry.opentofu.org",
                "1.8.3",
                Some(crate::plan::Engine::OpenTofu),
            ),
            (
                "registry.opentofu.org",
                "1.10.0-beta1",
                Some(crate::plan::Engine::OpenTofu),
            ),
            (
                "registry.opentofu.org",
                "1.5.7",
                Some(crate::plan::Engine::OpenTofu),
            ),
            (
                "registry.terraform.io",
                "1.11.4",
                Some(crate::plan::Engine::Terraform),
            ),
            (
                "terraform.io/builtin",
                "1.11.4",
                Some(crate::plan::Engine::Either),
            ),
            ("registry.opentofu.org", "2.0.0", None),
            ("registry.opentofu.org", "1.8", None),
            ("registry.opentofu.org", "", None),
        ] {
            let p = plan(host, v);
            let fast = load_bytes_fast(p.as_bytes(), &lim()).map(|s| s.engine);
            let r = load_bytes_reference(p.as_bytes(), &lim());
            match want {
                Some(e) => {
                    assert_eq!(r.unwrap().engine, e, "{host} {v}");
                    assert_eq!(fast, Some(e), "{host} {v}");
                }
                None => assert!(
                    matches!(r, Err(PlanError::UnsupportedEngineVersion { .. })),
                    "{host} {v}: {r:?}"
                ),
            }
        }
        let enc = br#"{"meta":{},"encrypted_data":"eA==","encryption_version":"v0"}"#;
        assert_eq!(load_bytes(enc, &lim()).unwrap_err(), PlanError::Encrypted);
    }

    #[test]
    fn deposed_objects_are_their_own_entries_and_higher_minors_are_accepted() {
        let p = br#"{"format_version":"1.9","future_key":{"x":[1,2]},"resource_changes":[
            {"address":"a.b","mode":"managed","change":{"actions":["delete","create"]}},
            {"address":"a.b","deposed":"00aa","change":{"actions":["delete"]}},
            {"address":"data.c.d","mode":"data","change":{"actions":["read"]}},
            {"address":"a.e","previous_address":"a.f","change":{"actions":["no-op"]}},
            {"address":"a.g","change":{"actions":["forget"]}}]}"#;
        let s = load_bytes(p, &lim()).unwrap();
        assert_eq!(s.counts.add, 1);
        assert_eq!(s.counts.destroy, 2);
        assert_eq!(s.counts.replace, 1);
        assert_eq!(s.counts.read, 1);
        assert_eq!(s.counts.moves, 1);
        assert_eq!(s.counts.forget, 1);
        assert_eq!(s.counts.no_op, 1);
        assert!(s.digest.starts_with("sha256:"));
    }

    /// The cap counts distinct strings: a thousand copies of one value do not push a later,
    /// different one out; past the cap, every value is withheld and the summary says so.
    #[test]
    fn the_sensitive_cap_counts_distinct_strings_and_fails_closed() {
        let entry = |i: usize, pw: &str| {
            format!(
                r#"{{"address":"a.b{i}","mode":"managed","type":"a","name":"b{i}","change":{{"actions":["update"],"before":{{"pw":"x","d":"old"}},"after":{{"pw":"{pw}","d":"new"}},"after_sensitive":{{"pw":true}}}}}}"#
            )
        };
        let plan = |entries: Vec<String>| {
            format!(
                r#"{{"format_version":"1.2","resource_changes":[{}]}}"#,
                entries.join(",")
            )
        };
        let mut es: Vec<String> = (0..SENSITIVE_MAX + 10)
            .map(|i| entry(i, "shared-secret-value"))
            .collect();
        es.push(entry(99_999, "the-later-secret"));
        let s = load_bytes(plan(es).as_bytes(), &lim()).unwrap();
        assert!(!s.sensitive_overflow);
        assert_eq!(s.sensitive_strings.len(), 2);
        assert_eq!(s.scrub("the-later-secret"), "(sensitive)");
        assert_eq!(s.changes[0].attrs[0].after, Shown::Value("\"new\"".into()));

        let es: Vec<String> = (0..SENSITIVE_MAX + 1)
            .map(|i| entry(i, &format!("distinct-secret-{i:05}")))
            .collect();
        let bytes = plan(es);
        let s = load_bytes(bytes.as_bytes(), &lim()).unwrap();
        assert!(s.sensitive_overflow);
        assert_eq!(s.sensitive_strings.len(), SENSITIVE_MAX);
        assert_eq!(s.changes[0].attrs[0].after, Shown::Withheld);
        assert!(s.changes.iter().flat_map(|rc| &rc.attrs).all(|a| !matches!(
            (&a.before, &a.after),
            (Shown::Value(_), _) | (_, Shown::Value(_))
        )));
        assert_eq!(
            format!(
                "{:?}",
                load_bytes_reference(bytes.as_bytes(), &lim()).unwrap()
            ),
            format!("{s:?}")
        );
    }

    /// A value is scrubbed in its written (JSON-escaped) form before it is cut, and a cut
    /// value loses the start of a sensitive string it ends with.
    #[test]
    fn values_are_scrubbed_in_their_written_form_before_the_cut() {
        let secret = "q\"u\\o\tt|e-\u{1}-secret";
        let long = format!("L{}", "0123456789".repeat(130));
        let esc = |s: &str| serde_json::to_string(s).unwrap();
        let p = format!(
            r#"{{"format_version":"1.2","resource_changes":[
            {{"address":"a.marked","change":{{"actions":["create"],"before":null,"after":{{"pw":{s},"l":{l}}},"after_sensitive":{{"pw":true,"l":true}}}}}},
            {{"address":"a.open","change":{{"actions":["update"],"before":{{"d":"x","e":"x","f":"x"}},
              "after":{{"d":{s},"e":{l},"f":{late}}}}}}}]}}"#,
            s = esc(secret),
            l = esc(&long),
            late = esc(&format!("{}{}", "z".repeat(190), long)),
        );
        for s in [
            load_bytes(p.as_bytes(), &lim()).unwrap(),
            load_bytes_reference(p.as_bytes(), &lim()).unwrap(),
        ] {
            let rc = s.changes.iter().find(|c| c.address == "a.open").unwrap();
            let shown: Vec<String> = rc
                .attrs
                .iter()
                .map(|a| match &a.after {
                    Shown::Value(v) => v.clone(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(shown[0], "\"(sensitive)\"");
            // Cut while reading (over 400 characters): what is left of the secret is hidden.
            assert_eq!(shown[1], "\"(sensitive)…");
            // The marker itself may be cut for display, never the secret.
            assert_eq!(shown[2], format!("\"{}(sensitiv…", "z".repeat(190)));
        }
    }

    #[test]
    fn sensitive_values_are_collected_and_never_shown() {
        let p = br#"{"format_version":"1.2","resource_changes":[
            {"address":"a.b","change":{"actions":["update"],
             "before":{"pw":"hunter2-old","n":"x"},"after":{"pw":"hunter2-new","n":"y"},
             "before_sensitive":{"pw":true},"after_sensitive":{"pw":true}}}],
            "output_changes":{"o":{"actions":["create"],"before":null,"after":"out-secret","after_sensitive":true}},
            "variables":{"v":{"value":"var-secret"}},
            "configuration":{"root_module":{"variables":{"v":{"sensitive":true}}}}}"#;
        let s = load_bytes(p, &lim()).unwrap();
        let rc = &s.changes[0];
        assert_eq!(rc.attrs.len(), 2);
        assert_eq!(rc.attrs[1].name, "pw");
        assert_eq!(rc.attrs[1].after, Shown::Sensitive);
        assert_eq!(s.outputs[0].after, Shown::Sensitive);
        for secret in ["hunter2-old", "hunter2-new", "out-secret", "var-secret"] {
            assert!(s.sensitive_strings.iter().any(|x| x == secret), "{secret}");
        }
        assert_eq!(s.scrub("x var-secret y"), "x (sensitive) y");
    }
}
