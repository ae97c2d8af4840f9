//! The fast path of the plan reader, for plans that are well-formed: the top-level object cut
//! into sections on this core, `resource_changes` read by its own entry reader, and a work queue
//! that a second thread serves to validate sections and entries and to compute digest leaves.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::File;

use serde::de::DeserializeSeed;

use super::reference::KeySeed;
use super::{finish, mapped, take_change, Builder, Limits, RELEASE_STEP};
use crate::plan::digest::Leaves;
use crate::plan::raw::{ChangeRaw, Raw, RcRaw};
use crate::plan::{jsoncheck, scan, Action, Summary};

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
/// ([`scan`]); it reads `resource_changes` entry by entry with its own reader
/// ([`read_changes`]) and the other sections plan-gate reads with the reference path's serde
/// seeds. Work goes to a queue that a second thread serves (and this one too, when the queue
/// grows or its own reading is done): every other section (`prior_state`, `planned_values`,
/// `checks`, ...) is validated, JSON and UTF-8, by [`jsoncheck`], and each
/// `resource_changes` entry is validated the same way and digested. Given the file's mapping
/// and the file (`mapped`), the second thread maps the file again, and each thread hands the
/// pages behind it back to the kernel.
pub(super) fn fast(
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
pub(super) const DIGEST_BACKLOG: usize = 4096;
/// Digest jobs go to the second thread in batches of this many entries.
pub(super) const DIGEST_BATCH: usize = 64;

/// What both threads of the fast path share.
pub(super) struct Shared {
    /// The work queue; either thread takes from it.
    queue: Queue,
    /// A job found something wrong (or a thread gave up): the fast path gives up.
    failed: std::sync::atomic::AtomicBool,
    /// Digest leaves sent and not yet computed.
    pub(super) queued_digests: std::sync::atomic::AtomicUsize,
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
    pub(super) fn entry_is_valid(&self, entry: &[u8]) -> bool {
        jsoncheck::is_valid_value_with_progress(entry, self.entry_depth, &mut |_| {})
    }
}

/// Where the builder sends `resource_changes` entries for the digest (fast path).
pub(super) struct DigestTo<'s> {
    pub(super) shared: &'s Shared,
    /// The address of the document's first byte on this thread (offsets are relative to it).
    pub(super) origin: usize,
    /// Entries not sent yet.
    pub(super) batch: RefCell<Vec<DigestJob>>,
}

impl DigestTo<'_> {
    /// Queue the entries collected so far. `None`: the queue is unusable.
    pub(super) fn flush(&self) -> Option<()> {
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
pub(super) struct DigestJob {
    pub(super) address: String,
    pub(super) deposed: Option<String>,
    pub(super) previous_address: Option<String>,
    pub(super) action: Action,
    /// Byte ranges (offset, length) of the raw values, in [`ChangeRaw::raws`] order.
    pub(super) raws: [Option<(usize, usize)>; 7],
    /// The byte range of the whole entry, which the job validates first.
    pub(super) entry: (usize, usize),
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
            let end =
                jsoncheck::container_end(bytes.get(from..)?, shared.section_depth, &mut |at| {
                    if let Some(m) = map {
                        m.release_before(from + at, RELEASE_STEP);
                    }
                })?;
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
        let (v_end, too_deep) = scan::value_end(bytes, v, max_depth - 1, &mut |at| release(at))?;
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
        } else if !jsoncheck::is_valid_value_with_progress(value, 1, &mut |_| {}) {
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
/// [`jsoncheck`] when its digest is computed, and no result is used unless every check
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
        let key_end = scan::string_end(s, i)?;
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
                        let e = scan::string_end(s, i)?;
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
    scan::value_end(s, v, usize::MAX, &mut |_| {}).map(|(end, _)| end)
}

/// The second thread's half of [`fast`]: jobs from the queue: sections validated (JSON and UTF-8)
/// with [`jsoncheck`], and `resource_changes` entries validated and digested. `None`:
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
