//! What is kept of a plan's values: sensitivity masks, the distinct sensitive strings they mark
//! ([`Collected`], capped at [`SENSITIVE_MAX`]), the attribute diffs of an update, and value
//! texts (canonical, scrubbed of every sensitive string in their written form, then cut). Read
//! from the raw text (`plan::raw`), never from numbers serde would round.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::raw::{ChangeRaw, Members, Raw};
use super::{AttrDiff, Shown, Summary};

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

/// `Some(false)` for masks that mark nothing (`false`, `{}`, `[]`, `null`), `Some(true)` for
/// `true`; `None` when the mask needs a closer look.
pub(super) fn trivial_mask(raw: &[u8]) -> Option<bool> {
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
    pub(super) set: HashSet<String>,
    pub(super) overflow: bool,
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
pub(super) fn collect_all(raw: &[u8], out: &mut Collected) {
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

/// A mask (`*_sensitive`, `after_unknown`) as a `Value`, or `Null` when it has no `true` token
/// and so marks nothing (which is all `Null` means to every use of a mask).
pub(super) fn mask_of(r: Option<&[u8]>) -> Value {
    match r {
        Some(m) if memchr::memmem::find(m, b"true").is_some() => value_of(r),
        _ => Value::Null,
    }
}

/// The strings and numbers of a raw value that a mask marks, reading only the marked parts.
pub(super) fn collect_marked(raw: Option<&[u8]>, mask: &Value, out: &mut Collected) {
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
pub(super) fn attr_diffs_raw(ch: &ChangeRaw<'_>) -> Vec<AttrDiff> {
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

pub(super) fn shown_len(s: &Shown) -> usize {
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
pub(super) fn finish_values(s: &mut Summary) {
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
}
