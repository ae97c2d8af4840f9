//! Pass one of the reference path: the document streamed through a 1 MiB buffer (BOMs,
//! emptiness, UTF-8, nesting depth), without holding it in memory.

use std::io::Read;

use super::{bom_start, Limits};
use crate::plan::PlanError;

/// Stream the document: BOMs, emptiness, UTF-8, nesting depth. Returns where the JSON starts
/// (after a UTF-8 BOM, which is tolerated).
pub(super) fn prescan(r: &mut impl Read, limits: &Limits) -> Result<usize, PlanError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
