//! `plan_digest`: a canonical SHA-256 of what a plan would change, so that an apply job can check
//! that it applies exactly what was reviewed (`plan-gate verify --plan FILE --digest D`).
//!
//! What goes in: every `resource_changes` entry (address, deposed key, actions, previous address,
//! and the canonical JSON of `before`, `after`, `after_unknown`, `before_sensitive`,
//! `after_sensitive`, `replace_paths`, `importing`) and every `output_changes` entry. What stays
//! out: timestamps, `terraform_version`, `prior_state`, `planned_values`, `configuration`, drift
//! and anything else that does not change what apply does.
//!
//! Canonical JSON here means: insignificant whitespace removed and string escapes normalised
//! (`"\u003c"` and `"<"` hash the same); object keys in document order (Terraform writes them
//! sorted). Each entry gets its own leaf hash; leaves are sorted by key, so entry order does not
//! matter either. The result is written `sha256:<64 hex>`.

use sha2::{Digest, Sha256};

use super::raw::ChangeRaw;
use super::{Action, ResourceChange};

/// A separator byte that never occurs in UTF-8 text.
const SEP: &[u8] = &[0xFF];

/// Leaf hashes of a plan's entries, keyed for sorting. The keys live in one buffer (tens of
/// thousands of small strings were allocated, sorted and freed one by one before).
#[derive(Default, Clone)]
pub struct Leaves {
    keys: Vec<u8>,
    /// (where the key starts in `keys`, its length, the leaf hash, the entry's action)
    leaves: Vec<(usize, usize, [u8; 32], Action)>,
}

/// The entries, not the buffer layout (which differs between the two readers).
impl std::fmt::Debug for Leaves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries().map(|e| {
                (
                    e.output,
                    e.address,
                    e.deposed,
                    e.action,
                    hex::encode(e.hash),
                )
            }))
            .finish()
    }
}

/// One entry of a plan as the digest saw it: what the change manifest lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafEntry<'a> {
    /// An `output_changes` entry (else a `resource_changes` entry).
    pub output: bool,
    /// The resource address or output name.
    pub address: &'a str,
    /// The deposed key (resources only; empty when none).
    pub deposed: &'a str,
    /// The entry's action.
    pub action: Action,
    /// The entry's leaf hash (covers every value of the entry, sensitive ones included).
    pub hash: &'a [u8; 32],
}

impl Leaves {
    /// Add one `resource_changes` entry.
    pub(crate) fn resource(&mut self, rc: &ResourceChange, ch: &ChangeRaw<'_>) {
        let raws = ch.raws();
        self.resource_parts(
            &rc.address,
            rc.deposed.as_deref(),
            rc.previous_address.as_deref(),
            rc.action,
            raws,
        );
    }

    /// Add one `resource_changes` entry from its parts; `raws` are the raw JSON texts of
    /// `before`, `after`, `after_unknown`, `before_sensitive`, `after_sensitive`,
    /// `replace_paths` and `importing`, in this order.
    pub(crate) fn resource_parts(
        &mut self,
        address: &str,
        deposed: Option<&str>,
        previous_address: Option<&str>,
        action: Action,
        raws: [Option<&[u8]>; 7],
    ) {
        let mut h = Sha256::new();
        h.update(b"resource");
        for part in [Some(address), deposed, previous_address] {
            h.update(SEP);
            h.update(part.unwrap_or("").as_bytes());
        }
        h.update(SEP);
        update_actions(&mut h, action);
        for raw in raws {
            h.update(SEP);
            if let Some(r) = raw {
                canonical(&mut h, r);
            }
        }
        let leaf = h.finalize().into();
        self.push(
            &[
                b"r\0",
                address.as_bytes(),
                b"\0",
                deposed.unwrap_or("").as_bytes(),
            ],
            leaf,
            action,
        );
    }

    fn push(&mut self, key: &[&[u8]], leaf: [u8; 32], action: Action) {
        let at = self.keys.len();
        for part in key {
            self.keys.extend_from_slice(part);
        }
        self.leaves.push((at, self.keys.len() - at, leaf, action));
    }

    fn key(&self, leaf: &(usize, usize, [u8; 32], Action)) -> &[u8] {
        &self.keys[leaf.0..leaf.0 + leaf.1]
    }

    /// Every entry, in key order (outputs after resources; call after [`Leaves::finish`]).
    pub fn entries(&self) -> impl Iterator<Item = LeafEntry<'_>> + '_ {
        self.leaves.iter().filter_map(move |l| {
            let key = std::str::from_utf8(self.key(l)).ok()?;
            let (output, address, deposed) = if let Some(rest) = key.strip_prefix("r\0") {
                let (a, d) = rest.rsplit_once('\0')?;
                (false, a, d)
            } else {
                (true, key.strip_prefix("o\0")?, "")
            };
            Some(LeafEntry {
                output,
                address,
                deposed,
                action: l.3,
                hash: &l.2,
            })
        })
    }

    /// Take over the leaves another reader computed (their order does not matter).
    pub(crate) fn merge(&mut self, other: Leaves) {
        let base = self.keys.len();
        self.keys.extend_from_slice(&other.keys);
        self.leaves.extend(
            other
                .leaves
                .into_iter()
                .map(|(at, len, leaf, action)| (at + base, len, leaf, action)),
        );
    }

    /// Add one `output_changes` entry (raw JSON texts of its values).
    pub(crate) fn output(&mut self, name: &str, action: Action, raws: &[&Option<String>]) {
        let mut h = Sha256::new();
        h.update(b"output");
        h.update(SEP);
        h.update(name.as_bytes());
        h.update(SEP);
        update_actions(&mut h, action);
        for raw in raws {
            h.update(SEP);
            if let Some(r) = raw {
                canonical(&mut h, r.as_bytes());
            }
        }
        let leaf = h.finalize().into();
        self.push(&[b"o\0", name.as_bytes()], leaf, action);
    }

    /// Sort the leaves and say whether two of them have the same key (two `resource_changes`
    /// entries for one address and deposed key, or, for the fast path's entry reader, an absent
    /// deposed key next to an empty one).
    pub(crate) fn has_duplicate_keys(&mut self) -> bool {
        self.sort();
        self.leaves
            .windows(2)
            .any(|w| self.key(&w[0]) == self.key(&w[1]))
    }

    /// By key, then by hash: entries with equal keys (which only the reference reader lets
    /// through: an absent deposed key and an empty one) still give one digest. A stable merge
    /// sort, which makes use of the runs of sorted entries plans usually have.
    fn sort(&mut self) {
        let keys = &self.keys;
        self.leaves.sort_by(|a, b| {
            keys[a.0..a.0 + a.1]
                .cmp(&keys[b.0..b.0 + b.1])
                .then(a.2.cmp(&b.2))
        });
    }

    /// The digest, `sha256:<hex>` (the leaves stay, sorted, for [`Leaves::entries`]).
    pub fn finish(&mut self) -> String {
        self.sort();
        let mut h = Sha256::new();
        h.update(b"gitops-actions plan digest v1\n");
        for l in &self.leaves {
            h.update(self.key(l));
            h.update(SEP);
            h.update(l.2);
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// The actions joined by commas (`delete,create`).
fn update_actions(h: &mut Sha256, action: Action) {
    for (i, a) in action.as_strs().iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        h.update(a.as_bytes());
    }
}

/// Feed the canonical form of one JSON value (already known to be valid) into `h`.
pub fn canonical(h: &mut impl Digest, s: &[u8]) {
    write_canonical(s, &mut |b: &[u8]| h.update(b));
}

/// Write the canonical form of one JSON value (already known to be valid) to `h`, piece by
/// piece (also what the report shows of a value: numbers stay exactly as written).
pub(crate) fn write_canonical(s: &[u8], h: &mut impl FnMut(&[u8])) {
    if super::jsoncheck::is_compact_without_escapes(s) {
        h(s);
        return;
    }
    let mut i = 0;
    let mut run = 0;
    while i < s.len() {
        match s[i] {
            b' ' | b'\n' | b'\r' | b'\t' => {
                h(&s[run..i]);
                i += 1;
                run = i;
            }
            b'"' => {
                let start = i;
                let mut j = i + 1;
                let mut escaped = false;
                loop {
                    match memchr::memchr2(b'"', b'\\', &s[j..]) {
                        Some(k) if s[j + k] == b'\\' => {
                            escaped = true;
                            j += k + 2;
                        }
                        Some(k) => {
                            j += k + 1;
                            break;
                        }
                        None => {
                            j = s.len();
                            break;
                        }
                    }
                }
                let j = j.min(s.len());
                if escaped {
                    h(&s[run..start]);
                    let mut out = Vec::with_capacity(j - start);
                    if canonical_string(&s[start..j], &mut out) {
                        h(&out);
                    } else {
                        let text: String = serde_json::from_slice(&s[start..j]).unwrap_or_default();
                        h(serde_json::to_string(&text).unwrap_or_default().as_bytes());
                    }
                    run = j;
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    h(&s[run..]);
}

/// The string token `s` (quotes included, valid JSON) the way serde_json writes the string it
/// stands for: escapes decoded, then only `"`, `\\` and control characters escaped (`\b \f \n
/// \r \t`, else `\u00xx`). `false` (and `out` unusable) for surrogate escapes, which the
/// caller leaves to serde.
fn canonical_string(s: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(inner) = s.strip_prefix(b"\"").and_then(|x| x.strip_suffix(b"\"")) else {
        return false;
    };
    out.push(b'"');
    let mut i = 0;
    while i < inner.len() {
        let Some(k) = memchr::memchr(b'\\', &inner[i..]) else {
            out.extend_from_slice(&inner[i..]);
            break;
        };
        out.extend_from_slice(&inner[i..i + k]);
        i += k;
        let c = match inner.get(i + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0C,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let Some(v) = inner
                    .get(i + 2..i + 6)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                else {
                    return false;
                };
                let Some(ch) = char::from_u32(v) else {
                    return false; // a surrogate
                };
                i += 6;
                if v < 0x80 {
                    push_escaped(out, v as u8);
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                continue;
            }
            _ => return false,
        };
        i += 2;
        push_escaped(out, c);
    }
    out.push(b'"');
    true
}

/// One ASCII character as serde_json writes it inside a string.
fn push_escaped(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0C => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0..=0x1F => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 15)],
        ]),
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        let mut h = Sha256::new();
        canonical(&mut h, s.as_bytes());
        hex::encode(h.finalize())
    }

    #[test]
    fn whitespace_and_escapes_do_not_change_the_digest() {
        assert_eq!(
            canon(r#"{"a":"x<y","b":[1,2]}"#),
            canon("{ \"a\" : \"x\\u003cy\",\n \"b\": [1, 2] }")
        );
        assert_ne!(canon(r#"{"a":"x y"}"#), canon(r#"{"a":"xy"}"#));
        assert_ne!(canon(r#"{"a":1}"#), canon(r#"{"a":2}"#));
    }

    #[test]
    fn strings_are_canonical_exactly_as_serde_writes_them() {
        let pieces = [
            "a",
            "\\\"",
            "\\\\",
            "\\/",
            "\\b",
            "\\f",
            "\\n",
            "\\r",
            "\\t",
            "\\u0000",
            "\\u001f",
            "\\u001F",
            "\\u0008",
            "\\u000a",
            "\\u0022",
            "\\u005c",
            "\\u002F",
            "\\u003c",
            "\\u007f",
            "\\u00e9",
            "\\u20AC",
            "\\uffff",
            "\\ud83d\\ude00",
            "é",
            "€",
            " ",
            "\u{7f}",
        ];
        let mut rnd = crate::plan::scan::xorshift(0x51A3_0C44_91E2_7B05);
        for _ in 0..5000 {
            let mut s = String::from("\"");
            for _ in 0..rnd(12) {
                s.push_str(pieces[rnd(pieces.len())]);
            }
            s.push('"');
            let text: String = serde_json::from_str(&s).unwrap();
            let want = serde_json::to_string(&text).unwrap();
            let mut out = Vec::new();
            if canonical_string(s.as_bytes(), &mut out) {
                assert_eq!(String::from_utf8(out).unwrap(), want, "{s}");
            } else {
                assert!(s.contains("\\ud83d"), "{s}");
            }
        }
    }
}
