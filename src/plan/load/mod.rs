//! Reading `terraform show -json` output: both cores, bounded memory, one answer.
//!
//! The size limit is checked on the file's metadata before a byte is read; UTF-16 is recognised
//! from the first bytes. Then the file is memory-mapped and read by the **fast path** (`fast`):
//! this core cuts the top-level object into its sections with the structural scanner (`scan`,
//! which also enforces the depth limit), reads `resource_changes` entry by entry with its own
//! small reader (`read_changes`: raw values are byte ranges of the mapping, nothing is
//! validated yet) and deserializes the other sections plan-gate reads (`resource_drift`,
//! `output_changes`, `variables`, ...) with serde. Validation runs on a work queue that a second
//! thread serves (and this one, once it has read everything): the sections plan-gate does not
//! read (`prior_state`, `planned_values`, ...) and every `resource_changes` entry are checked
//! by the validating JSON checker (`jsoncheck`: JSON grammar, UTF-8, depth), and each entry's
//! digest leaf is computed there too. Each entry is reduced to a small [`ResourceChange`], and
//! `Value`s are built only where a sensitivity mask marks something or an updated attribute
//! differs. Each thread hands the pages behind it back to the kernel (`MADV_DONTNEED`), so
//! resident memory stays bounded by a few steps of `RELEASE_STEP` rather than the file size.
//!
//! The fast path answers only when everything checked out; for any other document it gives up
//! and the **reference path** runs: pass one (`prescan`) streams the file through a 1 MiB
//! buffer (empty file, UTF-8, nesting depth) while pass two deserializes the whole document with
//! serde. The reference path owns every refusal and its message, so the fast path cannot change
//! what is refused or how; tests and the fuzz target check that both paths give the same answer.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::digest::Leaves;
use super::{Action, AttrDiff, OutputChange, PlanError, ResourceChange, Shown, Summary};

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
/// At most this many attributes per resource.
const ATTRS_PER_RESOURCE: usize = 60;
/// Longest value shown for one attribute (cut after scrubbing, never before).
const VALUE_MAX: usize = 200;
/// Longest value text kept while reading (scrubbed, then cut to [`VALUE_MAX`], at the end).
const VALUE_KEEP: usize = 2 * VALUE_MAX;
/// At most this many distinct sensitive strings are remembered for scrubbing; past it, no
/// value is shown at all ([`Shown::Withheld`]).
pub const SENSITIVE_MAX: usize = 2000;
/// Sensitive strings shorter than this are not used for scrubbing (they would mangle text).
const SENSITIVE_MIN_LEN: usize = 4;
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

/// The reference reader: pass one streams the file while pass two parses the mapping.
fn reference(
    file: &File,
    map: &mapped::Map,
    start: usize,
    limits: &Limits,
    size: u64,
) -> Result<Summary, PlanError> {
    let bytes = map.bytes();
    // Pass one (streamed checks) runs on a second core while pass two parses. Pass two is safe
    // on any input (serde_json validates what it reads and has its own recursion limit); when
    // pass one refuses the file, its reason wins and pass two's result is dropped.
    let (pre, parsed) = std::thread::scope(|sc| {
        let h = sc.spawn(|| prescan(&mut &*file, limits));
        let parsed = parse_slice(&bytes[start..], Some(map));
        (h.join(), parsed)
    });
    match pre {
        Ok(r) => r?,
        Err(_) => return Err(PlanError::Io("the reader thread failed".into())),
    };
    let mut summary = parsed?;
    summary.bytes = size;
    Ok(summary)
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

// ----- the fast path -----------------------------------------------------------------------------

/// Deepest nesting the fast path takes on (the reference path handles anything deeper, so that
/// serde's own recursion limit never sees a difference between a section and the whole document).
const FAST_MAX_DEPTH: usize = 120;

/// Top-level keys whose values plan-gate reads; every other section is only validated.
const READ_KEYS: &[&str] = &[
    "format_version",
    "terraform_version",
    "errored",
    "applyable",
    "resource_changes",
    "resource_drift",
    "output_changes",
    "variables",
    "configuration",
    "relevant_attributes",
];

fn json_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The fast path, for plans that are well-formed: `Some` only when the document is valid UTF-8
/// and valid JSON, within the depth limit, and accepted by exactly the same deserialization code
/// as the reference path — then the summary is the one the reference path computes. `None`
/// for anything else, and the caller runs the reference path, which finds and words the reason.
///
/// This core cuts the top-level object into sections with the structural scanner
/// ([`super::scan`]); it reads `resource_changes` entry by entry with its own reader
/// ([`read_changes`]) and the other sections plan-gate reads with the reference path's serde
/// seeds. Work goes to a queue that a second thread serves (and this one too, when the queue
/// grows or its own reading is done): every other section (`prior_state`, `planned_values`,
/// `checks`, ...) is validated, JSON and UTF-8, by [`super::jsoncheck`], and each
/// `resource_changes` entry is validated the same way and digested. Given the file's mapping
/// and the file (`mapped`), the second thread maps the file again, and each thread hands the
/// pages behind it back to the kernel.
fn fast(
    bytes: &[u8],
    start: usize,
    limits: &Limits,
    mapped: Option<(&mapped::Map, &File)>,
) -> Option<Summary> {
    use std::sync::atomic::Ordering;

    let max_depth = limits.max_depth.min(128);
    if !(2..=FAST_MAX_DEPTH).contains(&max_depth) {
        return None;
    }
    let (main_map, file) = match mapped {
        Some((m, f)) => (Some(m), Some(f)),
        None => (None, None),
    };
    let shared = Shared {
        queue: Queue::default(),
        failed: Default::default(),
        queued_digests: Default::default(),
        entry_depth: max_depth - 2,
        section_depth: max_depth - 1,
        checked: Default::default(),
    };
    std::thread::scope(|sc| {
        let checker = sc.spawn(|| match file {
            Some(f) => match mapped::Map::new(f) {
                Ok(m) if m.bytes().len() == bytes.len() => {
                    check_sections(m.bytes(), Some(&m), &shared)
                }
                _ => None,
            },
            None => check_sections(bytes, None, &shared),
        });
        let mut b = Builder::new(main_map);
        b.digest_to = Some(DigestTo {
            shared: &shared,
            origin: bytes.as_ptr() as usize,
            batch: RefCell::new(Vec::new()),
        });
        let mut checked_from = Vec::new();
        let read = read_sections(bytes, start, max_depth, &b, main_map, &mut checked_from)
            .and_then(|()| b.digest_to.as_ref()?.flush());
        shared.queue.close();
        b.digest_to = None;
        if read.is_none() {
            shared.failed.store(true, Ordering::Relaxed);
        } else {
            // Help with what is left in the queue (typically the last big section).
            let mut leaves = b.leaves.borrow_mut();
            while !shared.failed.load(Ordering::Relaxed) {
                let Some(job) = shared.queue.try_take() else {
                    break;
                };
                if do_job(job, bytes, main_map, &mut leaves, &shared).is_none() {
                    shared.failed.store(true, Ordering::Relaxed);
                }
            }
        }
        let leaves = checker.join().ok().flatten();
        let (Some(()), Some(leaves), false) = (read, leaves, shared.failed.load(Ordering::Relaxed))
        else {
            return None;
        };
        // Sections checked from their start ended where the scanner said they end.
        let mut found = std::mem::take(&mut *shared.checked.lock().ok()?);
        found.sort_unstable();
        if found != checked_from {
            return None;
        }
        b.leaves.borrow_mut().merge(leaves);
        if b.leaves.borrow_mut().has_duplicate_keys() {
            // Two entries for one address: the reference path words the refusal.
            return None;
        }
        finish(b).ok()
    })
}

/// Digest leaves beyond this many waiting for the second thread are computed on this one.
const DIGEST_BACKLOG: usize = 4096;
/// Digest jobs go to the second thread in batches of this many entries.
const DIGEST_BATCH: usize = 64;

/// What both threads of the fast path share.
struct Shared {
    /// The work queue; either thread takes from it.
    queue: Queue,
    /// A job found something wrong (or a thread gave up): the fast path gives up.
    failed: std::sync::atomic::AtomicBool,
    /// Digest leaves sent and not yet computed.
    queued_digests: std::sync::atomic::AtomicUsize,
    /// How deep a `resource_changes` entry may nest (the entry's own braces are level 1).
    entry_depth: usize,
    /// The same for a top-level section.
    section_depth: usize,
    /// Sections validated from their start only ([`Job::CheckFrom`]): (start, end) as the
    /// checker found them; they must be where the structural scanner found them.
    checked: std::sync::Mutex<Vec<(usize, usize)>>,
}

impl Shared {
    /// A `resource_changes` entry (read but not validated by the entry reader) is valid JSON,
    /// UTF-8 and within the depth limit.
    fn entry_is_valid(&self, entry: &[u8]) -> bool {
        super::jsoncheck::is_valid_value_with_progress(entry, self.entry_depth, &mut |_| {})
    }
}

/// Where the builder sends `resource_changes` entries for the digest (fast path).
struct DigestTo<'s> {
    shared: &'s Shared,
    /// The address of the document's first byte on this thread (offsets are relative to it).
    origin: usize,
    /// Entries not sent yet.
    batch: RefCell<Vec<DigestJob>>,
}

impl DigestTo<'_> {
    /// Queue the entries collected so far. `None`: the queue is unusable.
    fn flush(&self) -> Option<()> {
        let batch = std::mem::take(&mut *self.batch.borrow_mut());
        if batch.is_empty() {
            return Some(());
        }
        self.shared
            .queued_digests
            .fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
        self.shared.queue.push(Job::Digest(batch))
    }
}

/// The fast path's work queue. Section checks go to the front: they are big and only one thread
/// can do each, so the second thread should start them as early as it can; digest batches go to
/// the back, and whichever thread is free takes them (so both threads finish together).
#[derive(Default)]
struct Queue {
    /// The jobs, and whether more can come.
    jobs: std::sync::Mutex<(std::collections::VecDeque<Job>, bool)>,
    ready: std::sync::Condvar,
}

impl Queue {
    /// Queue a job. `None`: the queue is unusable (a thread panicked holding it); the caller
    /// gives up, since a lost check must never pass for a done one.
    fn push(&self, job: Job) -> Option<()> {
        let mut q = self.jobs.lock().ok()?;
        let was_empty = q.0.is_empty();
        match job {
            Job::Digest(_) => q.0.push_back(job),
            _ => q.0.push_front(job),
        }
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
        Some(())
    }

    /// No more jobs will come.
    fn close(&self) {
        if let Ok(mut q) = self.jobs.lock() {
            q.1 = true;
        }
        self.ready.notify_all();
    }

    /// The next job, waiting for one; `None` once the queue is closed and empty.
    fn take(&self) -> Option<Job> {
        let mut q = self.jobs.lock().ok()?;
        loop {
            if let Some(job) = q.0.pop_front() {
                return Some(job);
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait(q).ok()?;
        }
    }

    /// The next job if there is one now.
    fn try_take(&self) -> Option<Job> {
        self.jobs.lock().ok()?.0.pop_front()
    }
}

/// Work on the fast path's queue (either thread does it).
enum Job {
    /// Validate the object or array section that starts here (its end is not known yet).
    CheckFrom(usize),
    /// Compute the digest leaves of these `resource_changes` entries.
    Digest(Vec<DigestJob>),
}

/// One `resource_changes` entry for the digest: its parts and where its raw values are.
struct DigestJob {
    address: String,
    deposed: Option<String>,
    previous_address: Option<String>,
    action: Action,
    /// Byte ranges (offset, length) of the raw values, in [`ChangeRaw::raws`] order.
    raws: [Option<(usize, usize)>; 7],
    /// The byte range of the whole entry, which the job validates first.
    entry: (usize, usize),
}

/// Do one job on either thread (`bytes` and `map` are that thread's view of the file).
/// `None`: the section is not valid.
fn do_job(
    job: Job,
    bytes: &[u8],
    map: Option<&mapped::Map>,
    leaves: &mut Leaves,
    shared: &Shared,
) -> Option<()> {
    use std::sync::atomic::Ordering;
    match job {
        Job::CheckFrom(from) => {
            if let Some(m) = map {
                m.rewind(from);
            }
            let end = super::jsoncheck::container_end(
                bytes.get(from..)?,
                shared.section_depth,
                &mut |at| {
                    if let Some(m) = map {
                        m.release_before(from + at, RELEASE_STEP);
                    }
                },
            )?;
            shared.checked.lock().ok()?.push((from, from + end));
            if let Some(m) = map {
                m.release_before(from + end, 0);
            }
        }
        Job::Digest(batch) => {
            shared
                .queued_digests
                .fetch_sub(batch.len(), Ordering::Relaxed);
            for d in batch {
                let (off, len) = d.entry;
                if let Some(m) = map {
                    m.rewind(off);
                }
                if !shared.entry_is_valid(bytes.get(off..off + len)?) {
                    return None;
                }
                let mut raws: [Option<&[u8]>; 7] = [None; 7];
                for (slot, r) in raws.iter_mut().zip(d.raws) {
                    if let Some((off, len)) = r {
                        *slot = Some(bytes.get(off..off + len)?);
                    }
                }
                leaves.resource_parts(
                    &d.address,
                    d.deposed.as_deref(),
                    d.previous_address.as_deref(),
                    d.action,
                    raws,
                );
                if let Some(m) = map {
                    m.release_before(off + len, RELEASE_STEP);
                }
            }
        }
    }
    Some(())
}

/// This core's half of [`fast`]: the top-level object, key by key. `None`: give up.
fn read_sections(
    bytes: &[u8],
    start: usize,
    max_depth: usize,
    b: &Builder<'_>,
    map: Option<&mapped::Map>,
    checked_from: &mut Vec<(usize, usize)>,
) -> Option<()> {
    let release = |upto: usize| {
        if let Some(m) = map {
            m.release_before(upto, RELEASE_STEP);
        }
    };
    let rewind = |at: usize| {
        if let Some(m) = map {
            m.rewind(at);
        }
    };
    let queue = &b.digest_to.as_ref()?.shared.queue;
    let top = json_ws(bytes, start);
    let end = read_members(bytes, top, |raw_key, v| {
        // Nothing else looks at top-level keys: no control characters, valid UTF-8.
        if raw_key.iter().any(|&c| c < 0x20) {
            return None;
        }
        let key = std::str::from_utf8(raw_key).ok()?;
        if !b.seen_keys.borrow_mut().insert(key.to_string()) {
            return None;
        }
        if key == "resource_changes" {
            // The biggest section: this thread reads its entries with its own reader (which
            // does not validate); each entry is validated with its digest job, on whichever
            // thread takes the job.
            rewind(v);
            return read_changes(bytes, v, b);
        }
        // A big section that is only validated: the other thread starts on it now, while this
        // one looks for its end.
        let read = READ_KEYS.contains(&key);
        let early = !read && matches!(bytes.get(v), Some(b'{' | b'['));
        if early {
            queue.push(Job::CheckFrom(v))?;
        }
        // The top-level object is level 1.
        let (v_end, too_deep) =
            super::scan::value_end(bytes, v, max_depth - 1, &mut |at| release(at))?;
        if too_deep {
            return None;
        }
        let value = &bytes[v..v_end];
        if read {
            rewind(v);
            // (serde does not check the UTF-8 of what it skips; the other sections' UTF-8 is
            // checked by `jsoncheck`.)
            std::str::from_utf8(value).ok()?;
            let mut de = serde_json::Deserializer::from_slice(value);
            KeySeed { b, key }.deserialize(&mut de).ok()?;
            de.end().ok()?;
        } else if early {
            checked_from.push((v, v_end));
        } else if !super::jsoncheck::is_valid_value_with_progress(value, 1, &mut |_| {}) {
            // A small string or scalar section (`timestamp`, `complete`, ...).
            return None;
        }
        release(v_end);
        Some(v_end)
    })?;
    (json_ws(bytes, end) == bytes.len()).then_some(())
}

/// The fast path's reader of `resource_changes` (the value at `s[v..]`; returns where it ends):
/// the entries as serde would deserialize them, for documents that serde accepts. It checks the
/// array's own punctuation but not the entries: each entry is validated with
/// [`super::jsoncheck`] when its digest is computed, and no result is used unless every check
/// passed. It gives up (`None`) wherever serde's answer could differ: escaped keys, duplicate or
/// mistyped fields, a missing `change`. It never reads out of bounds, whatever the input.
fn read_changes(s: &[u8], v: usize, b: &Builder<'_>) -> Option<usize> {
    if s.get(v..v + 4) == Some(b"null") {
        return Some(v + 4);
    }
    if s.get(v) != Some(&b'[') {
        return None;
    }
    let mut i = json_ws(s, v + 1);
    if s.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        let (rc, end) = read_entry(s, i)?;
        take_change(b, rc, false, Some(&s[i..end])).ok()?;
        i = json_ws(s, end);
        match s.get(i)? {
            b',' => i = json_ws(s, i + 1),
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The members of the object at `s[i]`: calls `f(key, value start)` for each, which returns
/// where the value ends, and returns the end of the object. Keys with escapes give up (`None`).
fn read_members<'a>(
    s: &'a [u8],
    i: usize,
    mut f: impl FnMut(&'a [u8], usize) -> Option<usize>,
) -> Option<usize> {
    if s.get(i) != Some(&b'{') {
        return None;
    }
    let mut i = json_ws(s, i + 1);
    if s.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if s.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = super::scan::string_end(s, i)?;
        let key = &s[i + 1..key_end - 1];
        if memchr::memchr(b'\\', key).is_some() {
            return None;
        }
        i = json_ws(s, key_end);
        if s.get(i) != Some(&b':') {
            return None;
        }
        let v = json_ws(s, i + 1);
        i = json_ws(s, f(key, v)?);
        match s.get(i)? {
            b',' => i = json_ws(s, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// A string or `null` field, as serde gives an `Option<Cow<str>>` (set once: a second
/// occurrence gives up, as serde refuses duplicate fields).
fn str_field<'a>(slot: &mut Option<Option<Cow<'a, str>>>, raw: &'a [u8]) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(match raw {
        b"null" => None,
        [b'"', inner @ .., b'"'] if memchr::memchr(b'\\', inner).is_none() => {
            Some(Cow::Borrowed(std::str::from_utf8(inner).ok()?))
        }
        [b'"', ..] => Some(Cow::Owned(serde_json::from_slice::<String>(raw).ok()?)),
        _ => return None,
    });
    Some(())
}

/// A raw field (`Option<&RawValue>` in serde terms: `null` is `None`), set once.
fn raw_field<'a>(slot: &mut Option<Option<Raw<'a>>>, raw: &'a [u8]) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some((raw != b"null").then_some(Raw(raw)));
    Some(())
}

/// One `resource_changes` entry at `s[i]` and where it ends (see [`read_changes`]).
fn read_entry(s: &[u8], i: usize) -> Option<(RcRaw<'_>, usize)> {
    let mut f: [Option<Option<Cow<'_, str>>>; 9] = Default::default();
    let mut change = None;
    let end = read_members(s, i, |key, v| {
        let slot = match key {
            b"address" => 0,
            b"name" => 1,
            b"module_address" => 2,
            b"mode" => 3,
            b"type" => 4,
            b"provider_name" => 5,
            b"deposed" => 6,
            b"previous_address" => 7,
            b"action_reason" => 8,
            b"change" => {
                if change.is_some() {
                    return None;
                }
                let (ch, end) = read_change(s, v)?;
                change = Some(ch);
                return Some(end);
            }
            _ => return value_end(s, v),
        };
        let end = value_end(s, v)?;
        let raw = &s[v..end];
        str_field(&mut f[slot], raw)?;
        Some(end)
    })?;
    let [address, name, module_address, mode, rtype, provider_name, deposed, previous_address, action_reason] =
        f.map(Option::flatten);
    Some((
        RcRaw {
            address,
            name,
            module_address,
            mode,
            rtype,
            provider_name,
            deposed,
            previous_address,
            action_reason,
            change: change?,
        },
        end,
    ))
}

/// The `change` object at `s[v]` and where it ends.
fn read_change(s: &[u8], v: usize) -> Option<(ChangeRaw<'_>, usize)> {
    let mut actions: Option<Vec<Cow<'_, str>>> = None;
    let mut r: [Option<Option<Raw<'_>>>; 7] = Default::default();
    let close = read_members(s, v, |key, v| {
        let slot = match key {
            b"actions" => {
                if actions.is_some() || s.get(v) != Some(&b'[') {
                    return None;
                }
                let mut list = Vec::new();
                let mut i = json_ws(s, v + 1);
                if s.get(i) != Some(&b']') {
                    loop {
                        if s.get(i) != Some(&b'"') {
                            return None;
                        }
                        let e = super::scan::string_end(s, i)?;
                        let mut one = None;
                        str_field(&mut one, &s[i..e])?;
                        list.push(one.flatten()?);
                        i = json_ws(s, e);
                        match s.get(i)? {
                            b',' => i = json_ws(s, i + 1),
                            b']' => break,
                            _ => return None,
                        }
                    }
                }
                actions = Some(list);
                return Some(i + 1);
            }
            b"before" => 0,
            b"after" => 1,
            b"after_unknown" => 2,
            b"before_sensitive" => 3,
            b"after_sensitive" => 4,
            b"replace_paths" => 5,
            b"importing" => 6,
            _ => return value_end(s, v),
        };
        let end = value_end(s, v)?;
        raw_field(&mut r[slot], &s[v..end])?;
        Some(end)
    })?;
    let [before, after, after_unknown, before_sensitive, after_sensitive, replace_paths, importing] =
        r.map(Option::flatten);
    let change = ChangeRaw {
        actions: actions?,
        before,
        after,
        after_unknown,
        before_sensitive,
        after_sensitive,
        replace_paths,
        importing,
    };
    Some((change, close))
}

/// Where the value at `s[v]` ends (structurally; not validated).
fn value_end(s: &[u8], v: usize) -> Option<usize> {
    super::scan::value_end(s, v, usize::MAX, &mut |_| {}).map(|(end, _)| end)
}

/// The second thread's half of [`fast`]: jobs from the queue: sections validated (JSON and UTF-8)
/// with [`super::jsoncheck`], and `resource_changes` entries validated and digested. `None`:
/// give up.
fn check_sections(bytes: &[u8], map: Option<&mapped::Map>, shared: &Shared) -> Option<Leaves> {
    use std::sync::atomic::Ordering;
    let give_up = || {
        shared.failed.store(true, Ordering::Relaxed);
        None
    };
    let mut leaves = Leaves::default();
    loop {
        if shared.failed.load(Ordering::Relaxed) {
            return None;
        }
        let Some(job) = shared.queue.take() else {
            break;
        };
        if do_job(job, bytes, map, &mut leaves, shared).is_none() {
            return give_up();
        }
    }
    Some(leaves)
}

// ----- pass one --------------------------------------------------------------------------------

/// Stream the document: BOMs, emptiness, UTF-8, nesting depth. Returns where the JSON starts
/// (after a UTF-8 BOM, which is tolerated).
fn prescan(r: &mut impl Read, limits: &Limits) -> Result<usize, PlanError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0usize; // bytes of an incomplete UTF-8 sequence kept at buf[..carry]
    let mut offset: u64 = 0; // file offset of buf[0]
    let mut first = true;
    let mut start = 0usize;
    let mut non_ws = false;
    let mut sc = Scanner::default();
    let max_depth = limits.max_depth.min(128);
    loop {
        let n = read_full(r, &mut buf[carry..]).map_err(|e| PlanError::Io(e.to_string()))?;
        let len = carry + n;
        let eof = n == 0 || len < buf.len();
        let chunk = &buf[..len];
        if first {
            first = false;
            start = bom_start(chunk)?;
        }
        let from = if offset == 0 { start } else { 0 };
        let (valid, rest) = match std::str::from_utf8(&chunk[from..]) {
            Ok(_) => (len, 0),
            Err(e) => {
                let good = from + e.valid_up_to();
                if e.error_len().is_none() && !eof {
                    (good, len - good)
                } else {
                    return Err(PlanError::NotUtf8 {
                        offset: offset + good as u64,
                    });
                }
            }
        };
        let part = &chunk[from..valid];
        if !non_ws {
            non_ws = part.iter().any(|b| !b.is_ascii_whitespace());
        }
        if let Some(at) = sc.scan(part, max_depth) {
            return Err(PlanError::TooDeep {
                limit: max_depth,
                offset: offset + (from + at) as u64,
            });
        }
        if eof && rest == 0 {
            break;
        }
        buf.copy_within(valid..len, 0);
        offset += valid as u64;
        carry = rest;
        if n == 0 {
            break;
        }
    }
    if !non_ws {
        return Err(PlanError::Empty);
    }
    Ok(start)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A resumable structural scanner: tracks strings and bracket depth across chunks.
#[derive(Default)]
struct Scanner {
    in_string: bool,
    escape: bool,
    depth: usize,
}

impl Scanner {
    /// Scan a chunk; `Some(index)` where the depth limit was exceeded.
    fn scan(&mut self, b: &[u8], max_depth: usize) -> Option<usize> {
        let mut i = 0;
        if self.escape && !b.is_empty() {
            self.escape = false;
            i = 1;
        }
        while i < b.len() {
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &b[i..]) {
                    None => return None,
                    Some(j) => {
                        let k = i + j;
                        if b[k] == b'\\' {
                            if k + 1 < b.len() {
                                i = k + 2;
                            } else {
                                self.escape = true;
                                return None;
                            }
                        } else {
                            self.in_string = false;
                            i = k + 1;
                        }
                    }
                }
            } else {
                match b[i] {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        self.depth += 1;
                        if self.depth > max_depth {
                            return Some(i);
                        }
                    }
                    b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                }
                i += 1;
            }
        }
        None
    }
}

// ----- the memory map (the one place with unsafe code) -------------------------------------------

#[allow(unsafe_code)]
mod mapped {
    //! A read-only private file mapping whose consumed pages can be handed back to the kernel.
    use std::cell::Cell;
    use std::fs::File;

    use memmap2::{Mmap, UncheckedAdvice};

    pub struct Map {
        map: Mmap,
        released: Cell<usize>,
    }

    impl Map {
        pub fn new(file: &File) -> std::io::Result<Map> {
            // SAFETY: the mapping is read-only and private. Like every reader of a file, we
            // assume nobody truncates the plan file while plan-gate reads it (a truncation would
            // raise SIGBUS, not corrupt memory silently). Pass one already read it whole.
            let map = unsafe { Mmap::map(file)? };
            let _ = map.advise(memmap2::Advice::Sequential);
            Ok(Map {
                map,
                released: Cell::new(0),
            })
        }

        pub fn bytes(&self) -> &[u8] {
            &self.map
        }

        /// The next release starts at `at` again (a reader went back to bytes it released).
        pub fn rewind(&self, at: usize) {
            self.released.set(at.min(self.released.get()));
        }

        /// Everything before `upto` (an offset into the mapping) has been consumed.
        pub fn release_before(&self, upto: usize, step: usize) {
            let done = self.released.get();
            if upto <= done + step || upto > self.map.len() {
                return;
            }
            let page = 4096;
            let done = done.div_ceil(page) * page;
            let end = (upto / page) * page;
            if end <= done {
                return;
            }
            // SAFETY: MADV_DONTNEED on a private, read-only, never-written file mapping only
            // drops clean pages; touching them again re-reads identical bytes from the file, so
            // any reference into the range stays valid.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, done, end - done)
            };
            self.released.set(end);
        }
    }
}

// ----- pass two ---------------------------------------------------------------------------------

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

fn parse_slice(bytes: &[u8], map: Option<&mapped::Map>) -> Result<Summary, PlanError> {
    let b = Builder::new(map);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r = TopSeed(&b).deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = r {
        if let Some(f) = b.fail.borrow_mut().take() {
            return Err(f);
        }
        let msg = e.to_string();
        if msg.contains("recursion limit exceeded") {
            return Err(PlanError::TooDeep {
                limit: 128,
                offset: 0,
            });
        }
        if msg.starts_with("trailing characters") {
            return Err(PlanError::TrailingGarbage {
                line: e.line(),
                column: e.column(),
            });
        }
        if msg.starts_with("invalid type") && e.line() == 1 && e.column() <= 1 {
            return Err(PlanError::NotAnObject);
        }
        return Err(PlanError::Syntax(sanitize_serde(&msg)));
    }
    finish(b)
}

/// serde messages quote offending values (`invalid type: string "..."`): drop the quoted parts so
/// that no byte of the document (which may be a secret) reaches the log.
fn sanitize_serde(msg: &str) -> String {
    let mut out = String::new();
    let mut in_q = false;
    for c in msg.chars() {
        if c == '"' {
            in_q = !in_q;
            if in_q {
                out.push_str("(value)");
            }
            continue;
        }
        if !in_q {
            out.push(c);
        }
    }
    crate::runner::single_line(&out)
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
    Ok(s)
}

struct TopSeed<'b, 'm>(&'b Builder<'m>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Terraform plan JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let b = self.0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !b.seen_keys.borrow_mut().insert(key.to_string()) {
                return Err(b.refuse(PlanError::DuplicateKey(key.into_owned())));
            }
            map.next_value_seed(KeySeed {
                b,
                key: key.as_ref(),
            })?;
        }
        Ok(())
    }
}

/// The value of one top-level key.
struct KeySeed<'b, 'm, 'k> {
    b: &'b Builder<'m>,
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let b = self.b;
        match self.key {
            "format_version" => {
                let raw: &RawValue = Deserialize::deserialize(d)?;
                let v = match serde_json::from_str::<Value>(raw.get()) {
                    Ok(Value::String(s)) => s,
                    _ => return Err(b.refuse::<D::Error>(PlanError::FormatVersionNotString)),
                };
                check_version(&v).map_err(|e| b.refuse::<D::Error>(e))?;
                b.format_seen.set(true);
                b.summary.borrow_mut().format_version = v;
            }
            "terraform_version" => {
                let v: Value = Deserialize::deserialize(d)?;
                if let Value::String(s) = v {
                    b.summary.borrow_mut().terraform_version = s;
                }
            }
            "errored" => {
                let v: Option<bool> = Deserialize::deserialize(d)?;
                b.summary.borrow_mut().errored = v.unwrap_or(false);
            }
            "applyable" => {
                let v: Option<bool> = Deserialize::deserialize(d)?;
                b.summary.borrow_mut().applyable = v;
            }
            "resource_changes" => ChangesSeed { b, drift: false }.deserialize(d)?,
            "resource_drift" => ChangesSeed { b, drift: true }.deserialize(d)?,
            "output_changes" => OutputsSeed(b).deserialize(d)?,
            "variables" => {
                let v: Option<BTreeMap<String, VarRaw<'de>>> = Deserialize::deserialize(d)?;
                let mut vars = b.variables.borrow_mut();
                for (k, var) in v.unwrap_or_default() {
                    if let Some(raw) = var.value {
                        vars.insert(k, raw.get().to_string());
                    }
                }
            }
            "configuration" => {
                let c: Option<ConfigRaw> = Deserialize::deserialize(d)?;
                if let Some(root) = c.and_then(|c| c.root_module) {
                    let mut sv = b.sensitive_vars.borrow_mut();
                    for (k, v) in root.variables.unwrap_or_default() {
                        if v.sensitive {
                            sv.insert(k);
                        }
                    }
                    let mut so = b.sensitive_outputs_cfg.borrow_mut();
                    for (k, v) in root.outputs.unwrap_or_default() {
                        if v.sensitive {
                            so.insert(k);
                        }
                    }
                }
            }
            "relevant_attributes" => {
                let v: Option<Vec<RelAttr>> = Deserialize::deserialize(d)?;
                b.summary.borrow_mut().relevant = Some(
                    v.unwrap_or_default()
                        .into_iter()
                        .map(|r| r.resource)
                        .collect(),
                );
            }
            _ => Skip {
                rel: &b.rel,
                depth: 1,
            }
            .deserialize(d)?,
        }
        Ok(())
    }
}

fn check_version(v: &str) -> Result<(), PlanError> {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|c| c.is_ascii_digit()));
    if !numeric || !(parts[0] == "0" || parts[0] == "1") {
        return Err(PlanError::UnsupportedVersion(v.to_string()));
    }
    Ok(())
}

#[derive(Deserialize)]
struct VarRaw<'a> {
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ConfigRaw {
    #[serde(default)]
    root_module: Option<ConfigModule>,
}

#[derive(Deserialize)]
struct ConfigModule {
    #[serde(default)]
    variables: Option<BTreeMap<String, ConfigSensitive>>,
    #[serde(default)]
    outputs: Option<BTreeMap<String, ConfigSensitive>>,
}

#[derive(Deserialize)]
struct ConfigSensitive {
    #[serde(default)]
    sensitive: bool,
}

#[derive(Deserialize)]
struct RelAttr {
    #[serde(default)]
    resource: String,
}

/// Skips a value, releasing consumed pages as it goes (big sections: `prior_state`,
/// `planned_values`, `configuration`, `checks`).
struct Skip<'r, 'm> {
    rel: &'r Release<'m>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Skip<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth >= 7 || self.rel.map.is_none() {
            let raw: &RawValue = Deserialize::deserialize(d)?;
            self.rel.after(raw.get());
            Ok(())
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Skip<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip {
                rel: self.rel,
                depth: self.depth + 1,
            })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Skip {
                rel: self.rel,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        self.rel.after(s);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One `resource_changes` / `resource_drift` entry, borrowed from the document.
#[derive(Deserialize)]
struct RcRaw<'a> {
    #[serde(borrow, default)]
    address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    module_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    mode: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    rtype: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    provider_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    deposed: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    previous_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    change: ChangeRaw<'a>,
}

/// A `change` object, borrowed.
#[derive(Deserialize)]
pub(crate) struct ChangeRaw<'a> {
    #[serde(borrow)]
    pub actions: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub before: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub after: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub after_unknown: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub before_sensitive: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub after_sensitive: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub replace_paths: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub importing: Option<Raw<'a>>,
}

impl<'a> ChangeRaw<'a> {
    /// The raw values the digest covers, in its order.
    pub(crate) fn raws(&self) -> [Option<&'a [u8]>; 7] {
        [
            self.before,
            self.after,
            self.after_unknown,
            self.before_sensitive,
            self.after_sensitive,
            self.replace_paths,
            self.importing,
        ]
        .map(|r| r.map(|r| r.0))
    }

    /// The raw value that ends last in the document.
    fn last_raw(&self) -> Option<&'a [u8]> {
        self.raws()
            .into_iter()
            .flatten()
            .max_by_key(|s| s.as_ptr() as usize)
    }
}

/// The raw JSON text of a value in the document, not parsed. From serde it is valid JSON; from
/// the fast path's own entry reader it is checked (with the rest of the section) before any
/// result that depends on it is used.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r: &'de RawValue = Deserialize::deserialize(d)?;
        Ok(Raw(r.get().as_bytes()))
    }
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

struct ChangesSeed<'b, 'm> {
    b: &'b Builder<'m>,
    drift: bool,
}

impl<'de> DeserializeSeed<'de> for ChangesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ChangesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of resource changes")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(rc) = seq.next_element::<RcRaw<'de>>()? {
            take_change(self.b, rc, self.drift, None).map_err(|e| self.b.refuse::<A::Error>(e))?;
        }
        Ok(())
    }
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

struct OutputsSeed<'b, 'm>(&'b Builder<'m>);

impl<'de> DeserializeSeed<'de> for OutputsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let m: Option<BTreeMap<String, ChangeRaw<'de>>> = Deserialize::deserialize(d)?;
        let b = self.0;
        for (name, ch) in m.unwrap_or_default() {
            let action = actions_of(&format!("output.{name}"), &ch.actions)
                .map_err(|e| b.refuse::<D::Error>(e))?;
            let own = |r: Option<Raw<'_>>| r.map(|r| String::from_utf8_lossy(r.0).into_owned());
            b.pending_outputs.borrow_mut().push(PendingOutput {
                name,
                action,
                before: own(ch.before),
                after: own(ch.after),
                after_unknown: own(ch.after_unknown),
                before_sensitive: own(ch.before_sensitive),
                after_sensitive: own(ch.after_sensitive),
            });
        }
        Ok(())
    }
}

// ----- values, masks and diffs ------------------------------------------------------------------

/// `Some(false)` for masks that mark nothing (`false`, `{}`, `[]`, `null`), `Some(true)` for
/// `true`; `None` when the mask needs a closer look.
fn trivial_mask(raw: &[u8]) -> Option<bool> {
    match raw.trim_ascii() {
        b"false" | b"{}" | b"[]" | b"null" | b"" => Some(false),
        b"true" => Some(true),
        _ => None,
    }
}

/// True when a mask marks anything (itself `true`, or any `true` inside).
pub(crate) fn mask_any(mask: &Value) -> bool {
    match mask {
        Value::Bool(b) => *b,
        Value::Array(a) => a.iter().any(mask_any),
        Value::Object(o) => o.values().any(mask_any),
        _ => false,
    }
}

/// The distinct sensitive strings found while reading. At most [`SENSITIVE_MAX`] are kept
/// (duplicates do not count); one more sets `overflow`, and then no value is shown at all.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    set: HashSet<String>,
    overflow: bool,
}

impl Collected {
    fn push(&mut self, s: &str) {
        if s.chars().count() < SENSITIVE_MIN_LEN || self.set.contains(s) {
            return;
        }
        if self.set.len() >= SENSITIVE_MAX {
            self.overflow = true;
            return;
        }
        self.set.insert(s.to_string());
    }

    fn string(&mut self, s: &str) {
        self.push(s);
        // Multi-line secrets (keys, certificates) are also scrubbed line by line.
        for l in s.lines().map(str::trim) {
            if l.len() >= 8 && l != s {
                self.push(l);
            }
        }
    }
}

/// Every string and number in a raw JSON value, numbers as written (the text every renderer
/// shows), read without parsing numbers (`1e400` is valid JSON that serde cannot hold).
fn collect_all(raw: &[u8], out: &mut Collected) {
    let raw = raw.trim_ascii();
    match raw.first() {
        Some(b'"') => {
            if let Ok(s) = serde_json::from_slice::<String>(raw) {
                out.string(&s);
            }
        }
        Some(b'{') => {
            if let Ok(Members(m)) = serde_json::from_slice(raw) {
                for (_, v) in m {
                    collect_all(v, out);
                }
            }
        }
        Some(b'[') => {
            for x in serde_json::from_slice::<Vec<Raw<'_>>>(raw).unwrap_or_default() {
                collect_all(x.0, out);
            }
        }
        Some(b't' | b'f' | b'n') | None => {}
        Some(_) => {
            if let Ok(t) = std::str::from_utf8(raw) {
                out.push(t);
            }
        }
    }
}

/// A raw value as a `Value` (`Null` when absent). Valid JSON that serde cannot hold (a number
/// out of `f64`'s range such as `1e400`) is read with every number as a string of its text,
/// rather than as `null` (which compared equal to any other such number and marked nothing).
fn value_of(r: Option<&[u8]>) -> Value {
    let Some(r) = r else { return Value::Null };
    serde_json::from_slice::<Value>(r)
        .or_else(|_| serde_json::from_slice::<Value>(&numbers_as_strings(r)))
        .unwrap_or(Value::Null)
}

/// A raw value to compare with another: numbers compare by their text (as `f64`s,
/// `0.1000000000000000000001` and `0.1000000000000000000002` are equal, and `1e400` is no
/// number at all), and a number never equals a string (numbers become strings that start with
/// U+0000). Key order and insignificant whitespace do not count.
fn comparable(r: Option<&[u8]>) -> Value {
    r.and_then(|r| serde_json::from_slice::<Value>(&numbers_as_strings(r)).ok())
        .unwrap_or(Value::Null)
}

/// `r` (valid JSON) with every number token turned into a string holding its text, after a
/// U+0000 (which tells it from a string that held the same text).
fn numbers_as_strings(r: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.len() + 16);
    let mut i = 0;
    while i < r.len() {
        match r[i] {
            b'"' => {
                let end = super::scan::string_end(r, i).unwrap_or(r.len());
                out.extend_from_slice(&r[i..end]);
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < r.len() && matches!(r[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                out.extend_from_slice(b"\"\\u0000");
                out.extend_from_slice(&r[start..i]);
                out.push(b'"');
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The members of a raw JSON object in `Value`'s order (sorted keys, the last duplicate wins);
/// empty for anything that is not an object. Keys are borrowed where they have no escapes.
fn raw_members(r: Option<&[u8]>) -> Vec<(Cow<'_, str>, &[u8])> {
    let Some(Members(mut m)) = r.and_then(|r| serde_json::from_slice(r).ok()) else {
        return Vec::new();
    };
    if !m.windows(2).all(|w| w[0].0 < w[1].0) {
        // Not sorted (Terraform sorts) or duplicate keys: sort, keeping the last of equal keys.
        m.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Cow<'_, str>, &[u8])> = Vec::with_capacity(m.len());
        for kv in m {
            match out.last_mut() {
                Some(last) if last.0 == kv.0 => *last = kv,
                _ => out.push(kv),
            }
        }
        m = out;
    }
    m
}

/// The members of a JSON object in document order, values raw.
struct Members<'a>(Vec<(Cow<'a, str>, &'a [u8])>);

/// An object key, borrowed from the document when it has no escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut m = Vec::new();
                while let Some(Key(k)) = map.next_key()? {
                    let Raw(v) = map.next_value()?;
                    m.push((k, v));
                }
                Ok(Members(m))
            }
        }
        d.deserialize_map(V)
    }
}

/// A mask (`*_sensitive`, `after_unknown`) as a `Value`, or `Null` when it has no `true` token
/// and so marks nothing (which is all `Null` means to every use of a mask).
fn mask_of(r: Option<&[u8]>) -> Value {
    match r {
        Some(m) if memchr::memmem::find(m, b"true").is_some() => value_of(r),
        _ => Value::Null,
    }
}

/// The strings and numbers of a raw value that a mask marks, reading only the marked parts.
fn collect_marked(raw: Option<&[u8]>, mask: &Value, out: &mut Collected) {
    let Some(raw) = raw else { return };
    if !mask_any(mask) {
        // Nothing is collected where no mask marks anything.
        return;
    }
    match mask {
        Value::Bool(true) => collect_all(raw, out),
        Value::Object(mo) => {
            for (k, x) in raw_members(Some(raw)) {
                if let Some(m) = mo.get(k.as_ref()) {
                    collect_marked(Some(x), m, out);
                }
            }
        }
        Value::Array(ma) => {
            let items: Vec<Raw<'_>> = serde_json::from_slice(raw).unwrap_or_default();
            for (x, m) in items.into_iter().zip(ma) {
                collect_marked(Some(x.0), m, out);
            }
        }
        _ => {}
    }
}

/// [`attr_diffs`] from the raw change: attributes whose texts are identical are equal without
/// being parsed; only differing ones become `Value`s (and are compared as such).
fn attr_diffs_raw(ch: &ChangeRaw<'_>) -> Vec<AttrDiff> {
    fn raw(r: Option<Raw<'_>>) -> Option<&[u8]> {
        r.map(|r| r.0)
    }
    let bo = raw_members(raw(ch.before));
    let ao = raw_members(raw(ch.after));
    let after_unknown = mask_of(raw(ch.after_unknown));
    let before_sensitive = mask_of(raw(ch.before_sensitive));
    let after_sensitive = mask_of(raw(ch.after_sensitive));
    let replace_paths = value_of(raw(ch.replace_paths));
    let all_bs = matches!(before_sensitive, Value::Bool(true));
    let all_as = matches!(after_sensitive, Value::Bool(true));
    let all_unknown = matches!(after_unknown, Value::Bool(true));
    let forced = forced_attributes(&replace_paths);
    // Both member lists are sorted: walk their union in key order.
    let (mut bi, mut ai) = (bo.iter().peekable(), ao.iter().peekable());
    let mut out = Vec::new();
    loop {
        let (k, rb, ra) = match (bi.peek(), ai.peek()) {
            (None, None) => break,
            (Some(b), Some(a)) if b.0 == a.0 => {
                let r = (&b.0, Some(b.1), Some(a.1));
                bi.next();
                ai.next();
                r
            }
            (Some(b), a) if a.is_none_or(|a| b.0 < a.0) => {
                let r = (&b.0, Some(b.1), None);
                bi.next();
                r
            }
            (_, Some(a)) => {
                let r = (&a.0, None, Some(a.1));
                ai.next();
                r
            }
            (Some(b), None) => {
                let r = (&b.0, Some(b.1), None);
                bi.next();
                r
            }
        };
        let k: &str = k;
        let unknown = all_unknown || after_unknown.get(k).is_some_and(mask_any);
        let same_text = matches!((rb, ra), (Some(x), Some(y)) if x == y);
        if (same_text || comparable(rb) == comparable(ra)) && !unknown {
            continue;
        }
        if out.len() >= ATTRS_PER_RESOURCE {
            out.push(AttrDiff {
                name: "…".into(),
                before: Shown::Null,
                after: Shown::Value("(more attributes not shown)".into()),
                forces_replacement: false,
            });
            break;
        }
        let sb = all_bs || before_sensitive.get(k).is_some_and(mask_any);
        let sa = all_as || after_sensitive.get(k).is_some_and(mask_any);
        let show = |r: Option<&[u8]>, sens: bool, unk: bool| {
            if sens {
                Shown::Sensitive
            } else if unk {
                Shown::Unknown
            } else {
                match r.map(<[u8]>::trim_ascii) {
                    None | Some(b"null") => Shown::Null,
                    Some(r) => Shown::Value(compact_raw(r)),
                }
            }
        };
        out.push(AttrDiff {
            name: k.to_string(),
            before: show(rb, sb, false),
            after: show(ra, sa, unknown),
            forces_replacement: forced.contains(k),
        });
    }
    out
}

/// The top-level attributes named by `replace_paths` (the ones that force a replacement).
fn forced_attributes(replace_paths: &Value) -> BTreeSet<&str> {
    replace_paths
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.as_array().and_then(|p| p.first()).and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

fn shown_len(s: &Shown) -> usize {
    match s {
        Shown::Value(v) => v.len(),
        _ => 8,
    }
}

/// The canonical text of a raw value (whitespace dropped, string escapes as serde writes them,
/// numbers exactly as written), kept to [`VALUE_KEEP`] characters; a cut text ends with `…`
/// (which no JSON text ends with). [`finish_values`] scrubs it and cuts it for display.
pub(crate) fn compact_raw(raw: &[u8]) -> String {
    let mut out = Vec::new();
    super::digest::write_canonical(raw, &mut |b: &[u8]| {
        if out.len() < VALUE_KEEP * 4 {
            out.extend_from_slice(b);
        }
    });
    let s = String::from_utf8_lossy(&out);
    if s.chars().count() > VALUE_KEEP || out.len() >= VALUE_KEEP * 4 {
        let mut t: String = s.chars().take(VALUE_KEEP).collect();
        t.push('…');
        t
    } else {
        s.into_owned()
    }
}

/// Once every sensitive string is known: each value text is scrubbed of them in the form it is
/// written in (JSON-escaped), a text cut while reading also of a sensitive string's start left
/// at its end, and only then cut to [`VALUE_MAX`] characters. Past [`SENSITIVE_MAX`] distinct
/// sensitive strings (some were not remembered) no value is shown at all.
fn finish_values(s: &mut Summary) {
    let overflow = s.sensitive_overflow;
    let sc = crate::secret::Scrubber::new(&super::json_forms(&s.sensitive_strings), "(sensitive)");
    let fix = |v: &mut Shown| {
        let Shown::Value(t) = v else { return };
        if overflow {
            *v = Shown::Withheld;
            return;
        }
        let (body, cut) = match t.strip_suffix('…') {
            Some(b) => (b, true),
            None => (t.as_str(), false),
        };
        let clean = if cut {
            sc.scrub_truncated(body)
        } else {
            sc.scrub(body)
        };
        *t = if cut || clean.chars().count() > VALUE_MAX {
            let mut c: String = clean.chars().take(VALUE_MAX).collect();
            c.push('…');
            c
        } else {
            clean
        };
    };
    for rc in s.changes.iter_mut().chain(s.drift.iter_mut()) {
        for a in &mut rc.attrs {
            fix(&mut a.before);
            fix(&mut a.after);
        }
    }
    for o in &mut s.outputs {
        fix(&mut o.before);
        fix(&mut o.after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn scanner_tracks_strings_escapes_and_depth_across_chunks() {
        let mut sc = Scanner::default();
        assert_eq!(sc.scan(br#"{"a\"[[[": ["#, 3), None);
        assert_eq!(sc.depth, 2);
        let mut sc = Scanner::default();
        assert_eq!(sc.scan(br#"{"x\"#, 3), None);
        assert!(sc.escape);
        assert_eq!(sc.scan(br#"[" [["#, 3), None);
        assert_eq!(sc.depth, 3);
        assert_eq!(sc.scan(br#"]"[" [["#, 3), Some(6));
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

    /// Attribute diffs and sensitive strings straight from the raw text: numbers as written
    /// (out of `f64`'s range, or more digits than it holds), duplicate keys (the last wins),
    /// a whole-value mask, masks that mark nothing.
    #[test]
    fn diffs_and_sensitive_strings_come_from_the_text_as_written() {
        let value = |s: &str| Shown::Value(s.to_string());
        /// (before, after, after_sensitive, the diffs, the sensitive strings)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [(&'a str, Shown, Shown)],
            &'a [&'a str],
        );
        let cases: &[Case<'_>] = &[
            (
                r#"{"n":1e400,"m":0.1000000000000000000001,"same":2e400}"#,
                r#"{"n":2e400,"m":0.1000000000000000000002,"same":2e400}"#,
                "{}",
                &[
                    (
                        "m",
                        value("0.1000000000000000000001"),
                        value("0.1000000000000000000002"),
                    ),
                    ("n", value("1e400"), value("2e400")),
                ],
                &[],
            ),
            (
                r#"{"b":1,"a":"x","b":2}"#,
                r#"{"a":"x","b":2.0,"c":{ "k" : [1, "\u0078"] }}"#,
                "{}",
                &[
                    ("b", value("2"), value("2.0")),
                    ("c", Shown::Null, value(r#"{"k":[1,"x"]}"#)),
                ],
                &[],
            ),
            (
                r#"{"pw":"old-secret","n":123456,"x":1e400}"#,
                r#"{"pw":"new-secret","n":12345678901234567890123,"x":1e400}"#,
                "true",
                &[
                    ("n", value("123456"), Shown::Sensitive),
                    ("pw", value("\"old-secret\""), Shown::Sensitive),
                ],
                &["12345678901234567890123", "1e400", "new-secret"],
            ),
            (
                r#"{"pw":"old-secret","l":["aaaa","bbbbbbbb\ncccccccc"]}"#,
                r#"{"pw":"new-secret","l":["aaaa"]}"#,
                r#"{"l":[false,true],"pw":true,"n":1e400}"#,
                &[
                    (
                        "l",
                        value(r#"["aaaa","bbbbbbbb\ncccccccc"]"#),
                        Shown::Sensitive,
                    ),
                    ("pw", value("\"old-secret\""), Shown::Sensitive),
                ],
                &["new-secret"],
            ),
        ];
        for (before, after, asn, want_attrs, want_sens) in cases {
            let ch = ChangeRaw {
                actions: vec![Cow::Borrowed("update")],
                before: Some(Raw(before.as_bytes())),
                after: Some(Raw(after.as_bytes())),
                after_unknown: None,
                before_sensitive: None,
                after_sensitive: Some(Raw(asn.as_bytes())),
                replace_paths: None,
                importing: None,
            };
            let got: Vec<(&str, Shown, Shown)> = attr_diffs_raw(&ch)
                .iter()
                .map(|a| {
                    let name: &str = want_attrs
                        .iter()
                        .find(|w| w.0 == a.name)
                        .map_or("?", |w| w.0);
                    (name, a.before.clone(), a.after.clone())
                })
                .collect();
            assert_eq!(&got, want_attrs, "{before} {after} {asn}");
            let mut c = Collected::default();
            collect_marked(
                Some(after.as_bytes()),
                &mask_of(Some(asn.as_bytes())),
                &mut c,
            );
            let mut got: Vec<String> = c.set.into_iter().collect();
            got.sort();
            assert_eq!(got, *want_sens, "{after} {asn}");
        }
        // Multi-line secrets are remembered line by line too; short ones are not remembered.
        let mut c = Collected::default();
        collect_all(
            br#"{"k":"line-one-x\nline-two-y","s":"abc","n":[1234, true, null]}"#,
            &mut c,
        );
        let mut got: Vec<String> = c.set.into_iter().collect();
        got.sort();
        assert_eq!(
            got,
            ["1234", "line-one-x", "line-one-x\nline-two-y", "line-two-y"]
        );
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
