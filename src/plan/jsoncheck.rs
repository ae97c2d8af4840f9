//! Is this byte string exactly one valid JSON value? A validating scanner for the fast path of
//! [`super::load`], about four times quicker than letting serde skip the value.
//!
//! The contract is one-sided: `true` only for text that serde_json accepts as one value *and*
//! that plan-gate's reference reader would accept wherever the value sits in a plan. Where the
//! two readers could differ, this checker says `false` and the caller falls back to the reference
//! path, which then gives the real answer and owns every message. So it is deliberately stricter
//! than RFC 8259 in three corners: `\u` escapes of UTF-16 surrogates (serde refuses lone ones in
//! strings it decodes), numbers that might not fit an `f64` (serde refuses those where it parses
//! a number) and nesting deeper than [`MAX_DEPTH`]. UTF-8 is checked too, but only where a block has
//! bytes >= 0x80 (which are refused outside strings anyway).
//!
//! How: 64 bytes at a time, SSE2 compares give bit masks of quotes, backslashes, structural
//! characters, whitespace and control characters. Escaped bytes are found by walking the (rare)
//! backslashes, a prefix-XOR of the unescaped quotes marks the inside of strings, and control
//! characters inside strings are refused by one mask test. What is left outside strings becomes a
//! short list of tokens (structural characters, string starts, the first byte of each literal or
//! number), which a small state machine with a stack of open containers checks against the JSON
//! grammar. Literals and numbers are checked byte by byte where they start.

use super::scan::{escaped_bytes, masks, string_interior};

/// Deepest nesting accepted (the plan reader's own limit is lower and is enforced elsewhere).
pub(crate) const MAX_DEPTH: usize = STACK - 2;
/// Slots of the container stack (a power of two: indexes are masked, never out of bounds).
const STACK: usize = 256;

/// Where the grammar is between two tokens (`u8`s so that they index [`STEP`]). `ERR` is 0.
mod st {
    pub const ERR: u8 = 0;
    /// Just after `{`: a key or `}`.
    pub const OBJ_FIRST: u8 = 1;
    /// After `,` in an object: a key.
    pub const OBJ_KEY: u8 = 2;
    /// After a key: `:`.
    pub const OBJ_COLON: u8 = 3;
    /// After `:`: a value.
    pub const OBJ_VALUE: u8 = 4;
    /// After a member's value: `,` or `}`.
    pub const OBJ_NEXT: u8 = 5;
    /// Just after `[`: a value or `]`.
    pub const ARR_FIRST: u8 = 6;
    /// After `,` in an array: a value.
    pub const ARR_VALUE: u8 = 7;
    /// After an element: `,` or `]`.
    pub const ARR_NEXT: u8 = 8;
    /// The start: the top-level value.
    pub const TOP: u8 = 9;
    /// The top-level value is complete: nothing may follow.
    pub const DONE: u8 = 10;
    pub const COUNT: usize = 11;
}

/// Token classes (the byte at a token's position).
const C_OPEN_OBJ: u8 = 0;
const C_OPEN_ARR: u8 = 1;
const C_CLOSE_OBJ: u8 = 2;
const C_CLOSE_ARR: u8 = 3;
const C_COLON: u8 = 4;
const C_COMMA: u8 = 5;
const C_STRING: u8 = 6;
const C_SCALAR: u8 = 7;

const fn class_table() -> [u8; 256] {
    let mut t = [C_SCALAR; 256];
    t[b'{' as usize] = C_OPEN_OBJ;
    t[b'[' as usize] = C_OPEN_ARR;
    t[b'}' as usize] = C_CLOSE_OBJ;
    t[b']' as usize] = C_CLOSE_ARR;
    t[b':' as usize] = C_COLON;
    t[b',' as usize] = C_COMMA;
    t[b'"' as usize] = C_STRING;
    t
}
static CLASS: [u8; 256] = class_table();

/// Open a container: push the state to return to when it closes (bits 8-11).
const OP_PUSH: u16 = 1 << 4;
/// Close a container: the next state is the one pushed when it opened.
const OP_POP: u16 = 2 << 4;
/// A literal or number: check it.
const OP_SCALAR: u16 = 3 << 4;

/// The state after a value completes, for the states in which a value may start.
const fn after_value(state: u8) -> u8 {
    match state {
        st::OBJ_VALUE => st::OBJ_NEXT,
        st::ARR_FIRST | st::ARR_VALUE => st::ARR_NEXT,
        st::TOP => st::DONE,
        _ => st::ERR,
    }
}

/// `STEP[state * 8 + class]`: 0 when the token may not come here; else bits 0-3 the next state, bits 4-5 the operation,
/// bits 8-11 the state pushed by an opener.
const fn step_table() -> [u16; 16 * 8] {
    let mut t = [0u16; 16 * 8];
    let mut state = 1;
    while state < st::COUNT as u8 {
        let at = state as usize * 8;
        let after = after_value(state) as u16;
        if after != 0 {
            t[at + C_OPEN_OBJ as usize] = st::OBJ_FIRST as u16 | OP_PUSH | (after << 8);
            t[at + C_OPEN_ARR as usize] = st::ARR_FIRST as u16 | OP_PUSH | (after << 8);
            t[at + C_STRING as usize] = after;
            t[at + C_SCALAR as usize] = after | OP_SCALAR;
        }
        match state {
            // (The state comes from the stack; any non-zero value marks the entry valid.)
            st::OBJ_FIRST | st::OBJ_NEXT => t[at + C_CLOSE_OBJ as usize] = st::DONE as u16 | OP_POP,
            st::ARR_FIRST | st::ARR_NEXT => t[at + C_CLOSE_ARR as usize] = st::DONE as u16 | OP_POP,
            _ => {}
        }
        match state {
            st::OBJ_FIRST | st::OBJ_KEY => t[at + C_STRING as usize] = st::OBJ_COLON as u16,
            st::OBJ_COLON => t[at + C_COLON as usize] = st::OBJ_VALUE as u16,
            st::OBJ_NEXT => t[at + C_COMMA as usize] = st::OBJ_KEY as u16,
            st::ARR_NEXT => t[at + C_COMMA as usize] = st::ARR_VALUE as u16,
            _ => {}
        }
        state += 1;
    }
    t
}
static STEP: [u16; 16 * 8] = step_table();

/// The checker's state carried between blocks.
struct Checker {
    /// Deepest nesting accepted.
    limit: usize,
    state: u8,
    /// For each open container, the state to return to when it closes.
    stack: [u8; STACK],
    depth: usize,
    in_string: bool,
    /// The previous block ended with an escaping backslash.
    escape_pending: bool,
    /// The previous block ended inside a literal or number.
    in_scalar: bool,
    /// Where the backslash of the second half of the last surrogate pair is (already checked).
    low_half: usize,
    /// Start of the run of blocks with non-ASCII bytes whose UTF-8 is not checked yet.
    utf8_from: Option<usize>,
    /// Stop where the top-level value ends (the text goes on after it).
    stop: bool,
    /// Where it ended (with `stop`).
    end: Option<usize>,
}

/// `true` when `b` is exactly one JSON value, surrounded by nothing (not even whitespace), that
/// the reference reader accepts as well (see the module documentation for the strict corners).
#[cfg(test)]
pub(crate) fn is_valid_value(b: &[u8]) -> bool {
    is_valid_value_with_progress(b, MAX_DEPTH, &mut |_| {})
}

/// Bytes checked between two calls of the progress callback.
const PROGRESS_STEP: usize = 8 * 1024 * 1024;

/// [`is_valid_value`] with nesting limited to `limit` levels (the value's own brackets are level
/// 1; at most [`MAX_DEPTH`]), calling `progress(offset)` every few MiB with the offset checked
/// so far (the caller hands the pages behind it back to the kernel).
pub(crate) fn is_valid_value_with_progress(
    b: &[u8],
    limit: usize,
    progress: &mut dyn FnMut(usize),
) -> bool {
    if b.is_empty() || is_ws(b[0]) || is_ws(b[b.len() - 1]) {
        return false;
    }
    run(b, limit, false, progress) == Some(b.len())
}

/// The end of the valid object or array that starts at `b[0]`, where the text may go on after
/// it (the caller does not know yet where it ends); `None` when it is not valid (or when what
/// follows it in its last 64-byte block is not valid JSON text either: the caller then gives up,
/// as it would on the document anyway). Limits and progress as [`is_valid_value_with_progress`].
pub(crate) fn container_end(
    b: &[u8],
    limit: usize,
    progress: &mut dyn FnMut(usize),
) -> Option<usize> {
    if !matches!(b.first(), Some(b'{' | b'[')) {
        return None;
    }
    run(b, limit, true, progress)
}

/// The checker over `b`: with `stop`, until the top-level value is complete.
fn run(b: &[u8], limit: usize, stop: bool, progress: &mut dyn FnMut(usize)) -> Option<usize> {
    let mut next_progress = PROGRESS_STEP;
    let mut c = Checker {
        limit: limit.min(MAX_DEPTH),
        state: st::TOP,
        stack: [0; STACK],
        depth: 0,
        in_string: false,
        escape_pending: false,
        in_scalar: false,
        low_half: usize::MAX,
        utf8_from: None,
        stop,
        end: None,
    };
    let mut i = 0;
    while i + 64 <= b.len() && c.end.is_none() {
        let block = <&[u8; 64]>::try_from(&b[i..i + 64]).ok()?;
        if !c.block(b, i, block) {
            return None;
        }
        i += 64;
        if i >= next_progress {
            progress(i);
            next_progress = i + PROGRESS_STEP;
        }
    }
    if i < b.len() && c.end.is_none() {
        // The last partial block, padded with spaces (which end a literal and are allowed
        // after any value).
        let mut last = [b' '; 64];
        last[..b.len() - i].copy_from_slice(&b[i..]);
        if !c.block(b, i, &last) {
            return None;
        }
    }
    let end = c.end.unwrap_or(b.len());
    (c.state == st::DONE && (stop || (!c.in_string && !c.escape_pending)) && c.utf8_upto(b, end))
        .then_some(end)
}

fn is_ws(x: u8) -> bool {
    matches!(x, b' ' | b'\t' | b'\n' | b'\r')
}

/// Bytes that end a literal or number: whitespace, structural characters, quotes.
fn ends_scalar(x: Option<&u8>) -> bool {
    match x {
        None => true,
        Some(&x) => is_ws(x) || matches!(x, b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"'),
    }
}

impl Checker {
    /// Check one block that starts at `b[at]` (`block` is `b[at..at + 64]`, or the padded tail).
    /// `false`: not valid.
    fn block(&mut self, b: &[u8], at: usize, block: &[u8; 64]) -> bool {
        let m = masks(block);
        // UTF-8: a run of blocks with non-ASCII bytes is checked when an all-ASCII block (or the
        // end) follows it; both ends of the run are then next to ASCII bytes, so no character is
        // cut.
        if m.high != 0 {
            self.utf8_from.get_or_insert(at);
        } else if !self.utf8_upto(b, at) {
            return false;
        }
        // Escaped bytes: each unescaped backslash escapes the next byte, which must make a
        // valid escape (checked against the whole text, so block edges do not matter).
        let low_half = &mut self.low_half;
        let Some(escaped) = escaped_bytes(m.backslash, &mut self.escape_pending, |p| {
            let pos = at + p as usize;
            if pos == *low_half {
                return true;
            }
            match escape_at(b, pos) {
                None => false,
                Some(true) => {
                    *low_half = pos + 6;
                    true
                }
                Some(false) => true,
            }
        }) else {
            return false;
        };
        let quotes = m.quote & !escaped;
        let inside = string_interior(quotes, &mut self.in_string);
        if m.control & inside != 0 {
            return false;
        }
        let structural = m.structural & !inside;
        // Bytes of literals and numbers (and of anything invalid outside strings).
        let scalar = !(inside | m.whitespace | m.structural | quotes);
        let scalar_starts = scalar & !((scalar << 1) | u64::from(self.in_scalar));
        self.in_scalar = scalar >> 63 == 1;
        let mut tokens = structural | (quotes & inside) | scalar_starts;
        // Strings, colons and commas (most tokens) only change the state; openers push the
        // state to return to, closers pop it, literal/number positions are checked after the
        // loop.
        let mut state = self.state;
        let mut depth = self.depth;
        let mut scalars = [0u8; 64];
        let mut n_scalars = 0;
        while tokens != 0 {
            let p = tokens.trailing_zeros() as usize & 63;
            tokens &= tokens - 1;
            let step = STEP[(state as usize & 15) << 3 | CLASS[block[p] as usize] as usize];
            state = (step & 15) as u8;
            if step < 16 {
                if step == 0 {
                    return false;
                }
                continue;
            }
            match step & (3 << 4) {
                OP_PUSH => {
                    if depth >= self.limit {
                        return false;
                    }
                    self.stack[depth & (STACK - 1)] = (step >> 8) as u8;
                    depth += 1;
                }
                OP_POP => {
                    // Closers are only valid in states inside a container: depth >= 1.
                    depth = depth.saturating_sub(1);
                    state = self.stack[depth & (STACK - 1)];
                    if state == st::DONE && self.stop {
                        self.end = Some(at + p + 1);
                        break;
                    }
                }
                _ => {
                    scalars[n_scalars & 63] = p as u8;
                    n_scalars += 1;
                }
            }
        }
        self.depth = depth;
        for &p in &scalars[..n_scalars] {
            match scalar_end(b, at + p as usize) {
                Some(end) if ends_scalar(b.get(end)) => {}
                _ => return false,
            }
        }
        self.state = state;
        true
    }
}

/// True when the (valid) JSON text `b` is already in the digest's canonical form as far as
/// whitespace and escapes go: no backslash anywhere and no whitespace outside strings (which is
/// how Terraform writes most values).
pub(crate) fn is_compact_without_escapes(b: &[u8]) -> bool {
    if memchr::memchr(b'\\', b).is_some() {
        return false;
    }
    let mut in_string = false;
    let mut check = |block: &[u8; 64]| {
        let m = masks(block);
        m.whitespace & !string_interior(m.quote, &mut in_string) == 0
    };
    let mut chunks = b.chunks_exact(64);
    for c in &mut chunks {
        let Ok(block) = <&[u8; 64]>::try_from(c) else {
            return false;
        };
        if !check(block) {
            return false;
        }
    }
    let rest = chunks.remainder();
    let mut last = [b'a'; 64];
    last[..rest.len()].copy_from_slice(rest);
    check(&last)
}

impl Checker {
    /// Check the UTF-8 of the pending run of non-ASCII blocks, up to `end`.
    fn utf8_upto(&mut self, b: &[u8], end: usize) -> bool {
        match self.utf8_from.take() {
            Some(from) => std::str::from_utf8(&b[from..end.min(b.len())]).is_ok(),
            None => true,
        }
    }
}

/// The escape that the backslash at `b[i]` starts: `Some(true)` when it is valid and the first
/// half of a surrogate pair (`\ud83d\ude00`, whose second half is then valid too), `Some(false)`
/// when it is valid on its own, `None` when it is invalid or a lone surrogate.
fn escape_at(b: &[u8], i: usize) -> Option<bool> {
    match b.get(i + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(false),
        b'u' => match hex4(b, i + 2)? {
            0xD800..=0xDBFF => {
                let low = (b.get(i + 6..i + 8)? == b"\\u").then(|| hex4(b, i + 8))??;
                (0xDC00..=0xDFFF).contains(&low).then_some(true)
            }
            0xDC00..=0xDFFF => None,
            _ => Some(false),
        },
        _ => None,
    }
}

/// The four hex digits at `b[i..i + 4]`.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let mut v = 0u32;
    for &h in b.get(i..i + 4)? {
        let d = match h {
            b'0'..=b'9' => h - b'0',
            b'a'..=b'f' => h - b'a' + 10,
            b'A'..=b'F' => h - b'A' + 10,
            _ => return None,
        };
        v = v * 16 + u32::from(d);
    }
    Some(v)
}

/// End of the literal or number starting at `b[i]`; `None` when it is neither. Numbers follow
/// RFC 8259; those that might not fit an `f64` (integer digits plus exponent over 300) are
/// refused, as are exponents of more than four digits.
fn scalar_end(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i..)?;
    for lit in [&b"true"[..], b"false", b"null"] {
        if rest.starts_with(lit) {
            return Some(i + lit.len());
        }
    }
    let digit = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    let int_start = j;
    match b.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => {
            while digit(j) {
                j += 1;
            }
        }
        _ => return None,
    }
    let int_digits = (j - int_start) as i64;
    if b.get(j) == Some(&b'.') {
        j += 1;
        if !digit(j) {
            return None;
        }
        while digit(j) {
            j += 1;
        }
    }
    let mut exp = 0i64;
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        let negative = match b.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let from = j;
        while digit(j) {
            exp = exp * 10 + i64::from(b[j] - b'0');
            j += 1;
            if j - from > 4 {
                return None;
            }
        }
        if j == from {
            return None;
        }
        if negative {
            exp = -exp;
        }
    }
    (int_digits + exp <= 300).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reference reader would say: serde_json accepts the text as one value, and no
    /// number in it is out of `f64` range (serde parses numbers in the sections it skips near the
    /// top), and it has no surrogate escapes (serde refuses lone ones where it decodes strings).
    fn serde_ok(s: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(s).is_ok()
            && serde_json::from_slice::<serde_json::Value>(s).is_ok()
    }

    fn check(s: &str) -> bool {
        is_valid_value(s.as_bytes())
    }

    #[test]
    fn valid_documents_pass() {
        for s in [
            "{}",
            "[]",
            "0",
            "-0",
            "1.5e+10",
            "-12.25E-3",
            "true",
            "false",
            "null",
            r#""""#,
            r#""a\"b\\c\/\b\f\n\r\t\u00e9\u003C""#,
            r#"{"a":[1,2,{"b":null}],"c":{"d":"e"}, "f" : [ ] }"#,
            "[[[[[]]]]]",
            "{\"k\":\"caf\u{e9} \u{1F600}\"}",
            "[1,\n\t2\r\n]",
            r#""\ud83d\ude00 \uD83E\uDDEA""#,
        ] {
            assert!(check(s), "{s}");
            assert!(serde_ok(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn invalid_documents_fail() {
        for s in [
            "",
            " {}",
            "{} ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{\"a\":}",
            "{1:2}",
            "{\"a\":1 \"b\":2}",
            "[1 2]",
            "[1}",
            "{\"a\":1]",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "-",
            "--1",
            "tru",
            "truex",
            "nul",
            "[true false]",
            "\"abc",
            "\"a\\x\"",
            "\"a\\u12\"",
            "\"a\\u12G4\"",
            "\"tab\there\"",
            "\"nl\nhere\"",
            "[1]x",
            "[1]]",
            "{}{}",
            "1 2",
            "\"a\"\"b\"",
            "[\"a\"1]",
            "[1\"a\"]",
            "[\\\"a\"]",
            "NaN",
            "Infinity",
            "[1,\u{0}2]",
            "\u{feff}{}",
            "[\u{e9}]",
        ] {
            assert!(!check(s), "accepted {s:?}");
        }
    }

    #[test]
    fn compact_texts_without_escapes_are_recognised() {
        let pad = "p".repeat(70);
        for (s, want) in [
            (r#"{"a":"b c","d":[1,2]}"#.to_string(), true),
            (format!(r#"{{"{pad}":" {pad} 	"}}"#), true),
            (r#"{"a": 1}"#.to_string(), false),
            (format!(r#"{{"{pad}":1,"x":[1, 2]}}"#), false),
            (r#"{"a":"\n"}"#.to_string(), false),
            (format!("[\"{pad}\"\n]"), false),
            (String::new(), true),
        ] {
            assert_eq!(is_compact_without_escapes(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn container_end_stops_where_the_value_ends() {
        let end = |s: &str| container_end(s.as_bytes(), MAX_DEPTH, &mut |_| {});
        assert_eq!(end(r#"{"a":[1,2]},"next":1}"#), Some(11));
        assert_eq!(end(r#"[]"#), Some(2));
        let long = format!(
            r#"{{"k":"{}\u00e9","l":[{{}}]}}, "x": "\u00e9é"}}"#,
            "v".repeat(200)
        );
        assert_eq!(end(&long), long.find(", \"x\""));
        for bad in [
            r#"{"a":[1,2}"#,
            r#"{"a":01}"#,
            r#"{"a":1"#,
            "1",
            r#""s""#,
            r#"{"a":"\x"}"#,
        ] {
            assert_eq!(end(bad), None, "{bad}");
        }
        assert_eq!(container_end(b"[[[]]]", 2, &mut |_| {}), None);
        assert_eq!(container_end(b"[[[]]]", 3, &mut |_| {}), Some(6));
    }

    #[test]
    fn utf8_is_checked_across_block_edges() {
        for pad in 0..70 {
            let p = "p".repeat(pad);
            let ok = format!("[\"{p}\u{e9}\u{1F600}\",\"{}\"]", "\u{e9}".repeat(40));
            assert!(is_valid_value(ok.as_bytes()), "{ok}");
            for bad in [
                &[0xFFu8][..],
                &[0xC3],
                &[0xE2, 0x82],
                &[0xED, 0xA0, 0x80],
                &[0xC0, 0xAF],
            ] {
                let mut v = format!("[\"{p}").into_bytes();
                v.extend_from_slice(bad);
                v.extend_from_slice(b"\", \"x\"]");
                assert!(!is_valid_value(&v), "{v:?}");
                // Also at the very end of a string that ends the text.
                let mut w = format!("\"{p}").into_bytes();
                w.extend_from_slice(bad);
                w.push(b'"');
                assert!(!is_valid_value(&w), "{w:?}");
            }
        }
    }

    #[test]
    fn the_strict_corners_fall_back() {
        // Valid JSON that the reference reader may refuse: the checker says no, the caller then
        // asks the reference reader.
        for s in [
            r#""\uD800""#,
            r#""\ude00\ud83d""#,
            r#""\ud83d\u0041""#,
            r#""\\ud83d\ude00""#,
            r#""\ud83d""#,
            "1e400",
            "-2.5e301",
            "[1e99999]",
            &format!("1{}", "0".repeat(310)),
        ] {
            assert!(!check(s), "{s}");
        }
        // Deep nesting up to the limit is fine, beyond it falls back.
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(&ok));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!check(&deep));
    }

    #[test]
    fn simd_masks_equal_the_bytewise_masks() {
        use crate::plan::scan::{masks_bytewise, Masks};
        let t = |m: Masks| {
            (
                m.quote,
                m.backslash,
                m.structural,
                m.open,
                m.close,
                m.whitespace,
                m.control,
                m.high,
            )
        };
        let mut block = [0u8; 64];
        for round in 0..64u32 {
            for (j, x) in block.iter_mut().enumerate() {
                *x = (j as u32 * 37 + round * 101) as u8;
            }
            let want = t(masks_bytewise(&block));
            assert_eq!(t(masks(&block)), want);
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            #[allow(unsafe_code)]
            {
                // SAFETY: SSE2 is part of the x86_64 baseline.
                assert_eq!(t(unsafe { crate::plan::scan::masks_sse2(&block) }), want);
            }
        }
    }

    /// Random documents built from JSON-ish pieces (valid and broken), at every alignment around
    /// the 64-byte block edges: whenever the checker says yes, serde says yes too; and on the
    /// valid ones (no strict corners) the checker says yes.
    #[test]
    fn agrees_with_serde_on_random_documents() {
        let pieces: [&[u8]; 30] = [
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b" ",
            b"\n",
            b"\"k\"",
            b"\"a\\\"b\"",
            b"\"\\\\\"",
            b"\"\\u00e9x\"",
            b"\"\xc3\xa9\"",
            b"\"[{,:}]\"",
            b"1",
            b"-2.5e-3",
            b"0",
            b"01",
            b"true",
            b"fals",
            b"null",
            b"\"\\",
            b"\\",
            b"\"",
            b"\t",
            b"1.",
            b"x",
            b"\"\x01\"",
            b"\"a\\nb\"",
            b"[]",
        ];
        let mut rnd = crate::plan::scan::xorshift(0x2545_F491_4F6C_DD1D);
        let mut accepted = 0;
        for _ in 0..40_000 {
            let mut s = Vec::new();
            for _ in 0..rnd(40) {
                s.extend_from_slice(pieces[rnd(pieces.len())]);
            }
            let want = serde_ok(&s)
                && !s.first().is_some_and(|&x| is_ws(x))
                && !s.last().is_some_and(|&x| is_ws(x));
            assert_eq!(is_valid_value(&s), want, "{}", String::from_utf8_lossy(&s));
            accepted += usize::from(want);
        }
        // Valid documents, made long enough to cross block edges, shifted by padding keys.
        for n in 0..200 {
            let mut s = format!("{{\"pad\":\"{}\",\"v\":[", "p".repeat(n % 67));
            for k in 0..rnd(30) {
                let p = match rnd(8) {
                    0 => "\"a\\\\\\\"b\"".to_string(),
                    1 => format!("{{\"k{k}\":[1,-2.5,true,null]}}"),
                    2 => "\"\\u003c\\n\"".to_string(),
                    3 => "  \"x\"\n".to_string(),
                    4 => "0".to_string(),
                    5 => "\"\u{e9}\u{e9}\u{e9}\"".to_string(),
                    6 => "{}".to_string(),
                    _ => "[[],[{}]]".to_string(),
                };
                if k > 0 {
                    s.push(',');
                }
                s.push_str(&p);
            }
            s.push_str("]}");
            assert!(serde_ok(s.as_bytes()), "{s}");
            assert!(check(&s), "{s}");
            accepted += 1;
        }
        assert!(accepted > 300, "too few valid samples: {accepted}");
    }
}
