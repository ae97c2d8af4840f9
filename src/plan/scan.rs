//! Structural scanning: where does a JSON value end, and how deep does it nest?
//!
//! The fast path of [`super::load`] uses this to cut a plan into its top-level sections without
//! interpreting them, so that the sections plan-gate only has to *validate* (`prior_state`,
//! `planned_values`, ...) can be checked by serde on the second core while this core parses
//! `resource_changes`. The scanner does not validate anything: on malformed text its answer is
//! meaningless (but never out of bounds), and the caller always validates every byte with serde
//! before trusting a result.
//!
//! Containers are scanned 64 bytes at a time: SIMD compares ([`masks`], AVX2 where the CPU has
//! it, else SSE2; shared with [`super::jsoncheck`]) give bit masks of quotes, backslashes,
//! openers and closers; escaped quotes are removed, a prefix-XOR of the remaining quotes marks
//! the bytes inside strings, and only openers/closers outside strings count. A block is walked
//! bit by bit only when the value might end in it or might exceed the depth limit.

/// Bytes scanned between two calls of the progress callback of [`value_end`].
const PROGRESS_STEP: usize = 8 * 1024 * 1024;

/// Where the JSON value starting at `b[start]` (its first byte, not whitespace) ends, and
/// whether it nests deeper than `limit` levels (the value's own brackets count as level 1).
///
/// `None` when the text ends before the value does (or the value starts with a byte no JSON
/// value starts with). `progress(offset)` is called every few MiB with the offset scanned so far.
pub(crate) fn value_end(
    b: &[u8],
    start: usize,
    limit: usize,
    progress: &mut dyn FnMut(usize),
) -> Option<(usize, bool)> {
    match *b.get(start)? {
        b'"' => string_end(b, start).map(|e| (e, false)),
        b'{' | b'[' => container_end(b, start, limit, progress),
        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
            let rest = &b[start..];
            let n = rest
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(rest.len());
            Some((start + n, false))
        }
        _ => None,
    }
}

/// End (one past the closing quote) of the string whose opening quote is at `b[start]`.
pub(crate) fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let k = memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i + k] == b'\\' {
            i += k + 2;
        } else {
            return Some(i + k + 1);
        }
    }
}

/// The state carried from one 64-byte block to the next.
#[derive(Debug, Default, Clone, Copy)]
struct Carry {
    depth: usize,
    in_string: bool,
    escaped: bool,
    exceeded: bool,
}

fn container_end(
    b: &[u8],
    start: usize,
    limit: usize,
    progress: &mut dyn FnMut(usize),
) -> Option<(usize, bool)> {
    let mut c = Carry::default();
    let mut i = start;
    let mut next_progress = start + PROGRESS_STEP;
    while i + 64 <= b.len() {
        let block: &[u8; 64] = b[i..i + 64].try_into().ok()?;
        if let Some(end) = block_step(block, &mut c, limit) {
            return Some((i + end, c.exceeded));
        }
        i += 64;
        if i >= next_progress {
            progress(i);
            next_progress = i + PROGRESS_STEP;
        }
    }
    scalar_tail(b, i, &mut c, limit).map(|e| (e, c.exceeded))
}

/// Byte-at-a-time scanning (the last partial block, and the reference the tests compare with).
fn scalar_tail(b: &[u8], mut i: usize, c: &mut Carry, limit: usize) -> Option<usize> {
    while i < b.len() {
        let x = b[i];
        if c.escaped {
            c.escaped = false;
        } else if c.in_string {
            match x {
                b'\\' => c.escaped = true,
                b'"' => c.in_string = false,
                _ => {}
            }
        } else {
            match x {
                b'"' => c.in_string = true,
                b'{' | b'[' => {
                    c.depth += 1;
                    if c.depth > limit {
                        c.exceeded = true;
                    }
                }
                b'}' | b']' => {
                    c.depth = c.depth.checked_sub(1)?;
                    if c.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Bit masks of one block.
#[derive(Default)]
pub(crate) struct Masks {
    pub(crate) quote: u64,
    pub(crate) backslash: u64,
    /// `{ } [ ] : ,`
    pub(crate) structural: u64,
    /// `{ [`
    pub(crate) open: u64,
    /// `} ]`
    pub(crate) close: u64,
    /// Space, tab, line feed, carriage return.
    pub(crate) whitespace: u64,
    /// Bytes below 0x20.
    pub(crate) control: u64,
    /// Bytes of 0x80 and above (not ASCII).
    pub(crate) high: u64,
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(crate) fn masks(block: &[u8; 64]) -> Masks {
    #[allow(unsafe_code)]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above; std caches the answer). `masks_avx2`
        // reads nothing but the block it is given, through safe slice indexing.
        unsafe { masks_avx2(block) }
    } else {
        // SAFETY: `masks_sse2` only needs SSE2, which every x86_64 CPU has (it is part of the
        // x86_64 baseline, and this function is compiled only when the target enables it). It
        // reads nothing but the block it is given, through safe slice indexing.
        unsafe { masks_sse2(block) }
    }
}

/// [`masks_sse2`] 32 bytes at a time.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "avx2")]
fn masks_avx2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_max_epu8, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8, _mm256_set_epi64x,
    };
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let case = _mm256_set1_epi8(0x20);
    let open = _mm256_set1_epi8(b'{' as i8);
    let close = _mm256_set1_epi8(b'}' as i8);
    let colon = _mm256_set1_epi8(b':' as i8);
    let comma = _mm256_set1_epi8(b',' as i8);
    let space = _mm256_set1_epi8(b' ' as i8);
    let tab = _mm256_set1_epi8(b'\t' as i8);
    let lf = _mm256_set1_epi8(b'\n' as i8);
    let cr = _mm256_set1_epi8(b'\r' as i8);
    let x1f = _mm256_set1_epi8(0x1F);
    let mut m = Masks::default();
    for k in 0..2 {
        let w = |j: usize| {
            let at = k * 32 + j * 8;
            u64::from_le_bytes(block[at..at + 8].try_into().unwrap_or_default()) as i64
        };
        let x = _mm256_set_epi64x(w(3), w(2), w(1), w(0));
        let folded = _mm256_or_si256(x, case);
        let bits = |v| u64::from(_mm256_movemask_epi8(v) as u32) << (32 * k);
        m.quote |= bits(_mm256_cmpeq_epi8(x, quote));
        m.backslash |= bits(_mm256_cmpeq_epi8(x, backslash));
        let opens = _mm256_cmpeq_epi8(folded, open);
        let closes = _mm256_cmpeq_epi8(folded, close);
        m.open |= bits(opens);
        m.close |= bits(closes);
        let punct = _mm256_or_si256(_mm256_cmpeq_epi8(x, colon), _mm256_cmpeq_epi8(x, comma));
        m.structural |= bits(_mm256_or_si256(_mm256_or_si256(opens, closes), punct));
        let ws = _mm256_or_si256(
            _mm256_or_si256(_mm256_cmpeq_epi8(x, space), _mm256_cmpeq_epi8(x, tab)),
            _mm256_or_si256(_mm256_cmpeq_epi8(x, lf), _mm256_cmpeq_epi8(x, cr)),
        );
        m.whitespace |= bits(ws);
        let ctrl = _mm256_cmpeq_epi8(_mm256_max_epu8(x, x1f), x1f);
        m.control |= bits(ctrl);
        m.high |= bits(x);
    }
    m
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
pub(crate) fn masks_sse2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_set_epi64x,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let case = _mm_set1_epi8(0x20);
    // `[` | 0x20 == `{` and `]` | 0x20 == `}`; no other byte maps onto them.
    let open = _mm_set1_epi8(b'{' as i8);
    let close = _mm_set1_epi8(b'}' as i8);
    let colon = _mm_set1_epi8(b':' as i8);
    let comma = _mm_set1_epi8(b',' as i8);
    let space = _mm_set1_epi8(b' ' as i8);
    let tab = _mm_set1_epi8(b'\t' as i8);
    let lf = _mm_set1_epi8(b'\n' as i8);
    let cr = _mm_set1_epi8(b'\r' as i8);
    let x1f = _mm_set1_epi8(0x1F);
    let mut m = Masks::default();
    for k in 0..4 {
        let lo = u64::from_le_bytes(block[k * 16..k * 16 + 8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(
            block[k * 16 + 8..k * 16 + 16]
                .try_into()
                .unwrap_or_default(),
        );
        let x = _mm_set_epi64x(hi as i64, lo as i64);
        let folded = _mm_or_si128(x, case);
        let bits = |v| u64::from(_mm_movemask_epi8(v) as u16) << (16 * k);
        m.quote |= bits(_mm_cmpeq_epi8(x, quote));
        m.backslash |= bits(_mm_cmpeq_epi8(x, backslash));
        let (opens, closes) = (_mm_cmpeq_epi8(folded, open), _mm_cmpeq_epi8(folded, close));
        m.open |= bits(opens);
        m.close |= bits(closes);
        let punct = _mm_or_si128(_mm_cmpeq_epi8(x, colon), _mm_cmpeq_epi8(x, comma));
        m.structural |= bits(_mm_or_si128(_mm_or_si128(opens, closes), punct));
        let ws = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(x, space), _mm_cmpeq_epi8(x, tab)),
            _mm_or_si128(_mm_cmpeq_epi8(x, lf), _mm_cmpeq_epi8(x, cr)),
        );
        m.whitespace |= bits(ws);
        // x <= 0x1F (unsigned): max(x, 0x1F) == 0x1F.
        let ctrl = _mm_cmpeq_epi8(_mm_max_epu8(x, x1f), x1f);
        m.control |= bits(ctrl);
        m.high |= bits(x);
    }
    m
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub(crate) fn masks(block: &[u8; 64]) -> Masks {
    masks_bytewise(block)
}

/// The byte-at-a-time masks (other architectures; the reference the tests compare with).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
pub(crate) fn masks_bytewise(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (j, &x) in block.iter().enumerate() {
        let bit = 1u64 << j;
        if x >= 0x80 {
            m.high |= bit;
        }
        match x {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'[' => {
                m.structural |= bit;
                m.open |= bit;
            }
            b'}' | b']' => {
                m.structural |= bit;
                m.close |= bit;
            }
            b':' | b',' => m.structural |= bit,
            b' ' => m.whitespace |= bit,
            _ => {}
        }
        if x < 0x20 {
            m.control |= bit;
            if matches!(x, b'\t' | b'\n' | b'\r') {
                m.whitespace |= bit;
            }
        }
    }
    m
}

/// Bit j set when an odd number of quote bits are at positions <= j.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Which bytes of a block are escaped (follow an unescaped backslash), given its backslash mask.
/// `pending`: the previous block ended with an escaping backslash (updated for the next block).
/// `escaper(p)` is called for each escaping backslash, at bit `p`; `None` as soon as it says no.
#[inline]
pub(crate) fn escaped_bytes(
    backslash: u64,
    pending: &mut bool,
    mut escaper: impl FnMut(u32) -> bool,
) -> Option<u64> {
    let mut escaped = 0u64;
    if backslash == 0 && !*pending {
        return Some(0);
    }
    let mut rest = backslash;
    if *pending {
        escaped |= 1;
        rest &= !1;
    }
    *pending = false;
    while rest != 0 {
        let p = rest.trailing_zeros();
        if !escaper(p) {
            return None;
        }
        if p == 63 {
            *pending = true;
            break;
        }
        escaped |= 1u64 << (p + 1);
        rest &= !(1u64 << (p + 1));
        rest &= rest - 1;
    }
    Some(escaped)
}

/// Bits from each opening quote (included) to its closing quote (excluded), given the
/// unescaped quotes of a block; `in_string` carries the state from one block to the next.
#[inline]
pub(crate) fn string_interior(quotes: u64, in_string: &mut bool) -> u64 {
    let inside = prefix_xor(quotes) ^ if *in_string { u64::MAX } else { 0 };
    *in_string = inside >> 63 == 1;
    inside
}

/// Scan one block; `Some(index + 1)` of the closer that ends the value.
fn block_step(block: &[u8; 64], c: &mut Carry, limit: usize) -> Option<usize> {
    let m = masks(block);
    let (quotes, backslashes, opens, closes) = (m.quote, m.backslash, m.open, m.close);
    let escaped = escaped_bytes(backslashes, &mut c.escaped, |_| true)?;
    let inside = string_interior(quotes & !escaped, &mut c.in_string);
    let opens = opens & !inside;
    let closes = closes & !inside;
    let n_open = opens.count_ones() as usize;
    let n_close = closes.count_ones() as usize;
    if c.depth + n_open <= limit && n_close < c.depth {
        c.depth = c.depth + n_open - n_close;
        return None;
    }
    let mut bits = opens | closes;
    while bits != 0 {
        let p = bits.trailing_zeros();
        if opens & (1u64 << p) != 0 {
            c.depth += 1;
            if c.depth > limit {
                c.exceeded = true;
            }
        } else {
            c.depth = c.depth.saturating_sub(1);
            if c.depth == 0 {
                return Some(p as usize + 1);
            }
        }
        bits &= bits - 1;
    }
    None
}

/// A small deterministic random source for the tests: `rnd(n)` is in `0..n`.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar scanner over the whole text: the reference for the block scanner.
    fn reference(b: &[u8], start: usize, limit: usize) -> Option<(usize, bool)> {
        let mut c = Carry::default();
        scalar_tail(b, start, &mut c, limit).map(|e| (e, c.exceeded))
    }

    fn end(s: &[u8], limit: usize) -> Option<(usize, bool)> {
        value_end(s, 0, limit, &mut |_| {})
    }

    #[test]
    fn values_end_where_they_should() {
        assert_eq!(end(br#""a\"b" x"#, 9), Some((6, false)));
        assert_eq!(end(br#"123,"#, 9), Some((3, false)));
        assert_eq!(end(br#"true}"#, 9), Some((4, false)));
        assert_eq!(end(br#"{"a":"}"}, 1"#, 9), Some((9, false)));
        assert_eq!(end(br#"[[["]]]\\"]]]]"#, 3), Some((13, false)));
        assert_eq!(end(br#"[[["]]]\\"]]]]"#, 2), Some((13, true)));
        assert_eq!(end(br#"{"a":"\\\"}"}"#, 9), Some((13, false)));
        assert_eq!(end(br#"{"a":[1,2"#, 9), None);
        assert_eq!(end(br#""abc"#, 9), None);
        assert_eq!(end(b"x", 9), None);
    }

    #[test]
    fn depth_inside_strings_does_not_count() {
        let s = format!("[\"{}\"]", "[".repeat(500));
        assert_eq!(end(s.as_bytes(), 1), Some((s.len(), false)));
        let s = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(end(s.as_bytes(), 100), Some((200, false)));
        assert_eq!(end(s.as_bytes(), 99), Some((200, true)));
    }

    /// Strings with backslash runs, escaped quotes and brackets, at every position around the
    /// 64-byte block edges (lexically valid JSON: backslashes only inside strings).
    #[test]
    fn block_scanner_agrees_with_the_byte_scanner_across_block_edges() {
        let outside: [&[u8]; 8] = [b"[", b"]", b"{", b"}", b",", b" ", b"1", b"\"\""];
        let inside: [&[u8]; 9] = [
            b"\\\\",
            b"\\\"",
            b"a",
            b"[",
            b"]",
            b"{",
            b"}",
            b"\xc3\xa9",
            b"\\n",
        ];
        let mut rnd = xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let mut s = vec![b'['];
            for _ in 0..rnd(300) {
                if rnd(3) == 0 {
                    s.push(b'"');
                    for _ in 0..rnd(40) {
                        s.extend_from_slice(inside[rnd(inside.len())]);
                    }
                    s.push(b'"');
                } else {
                    s.extend_from_slice(outside[rnd(outside.len())]);
                }
            }
            // Sometimes close everything that is open, so that the value ends.
            if round % 2 == 0 {
                let mut c = Carry::default();
                let _ = scalar_tail(&s, 0, &mut c, usize::MAX);
                s.extend(std::iter::repeat_n(b']', c.depth));
                s.extend_from_slice(b" , ]]");
            }
            for limit in [1, 3, 8, 1000] {
                assert_eq!(
                    end(&s, limit),
                    reference(&s, 0, limit),
                    "round {round} limit {limit}: {}",
                    String::from_utf8_lossy(&s)
                );
            }
        }
    }

    #[test]
    fn progress_is_reported_on_long_values() {
        let s = format!("[{}]", "1,".repeat(PROGRESS_STEP) + "1");
        let mut calls = Vec::new();
        let r = value_end(s.as_bytes(), 0, 10, &mut |p| calls.push(p));
        assert_eq!(r, Some((s.len(), false)));
        assert!(!calls.is_empty());
        assert!(calls.windows(2).all(|w| w[0] < w[1]));
    }
}
