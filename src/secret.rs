//! A value that must never be printed: credentials, tokens, JWTs, registry passwords.
//!
//! `Debug` and `Display` show `***`. The only way to get the bytes is [`Secret::expose`], which makes
//! every use greppable in review. Registering the value with the runner's masker (`Runner::mask`)
//! is what keeps it out of the job log even if some other code path prints it. [`Scrubber`]
//! replaces many such strings in a text in one pass.

use std::fmt;

/// A string that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value. Only call this to send it where it belongs (an HTTP header, a mask command).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// Replaces a set of sensitive strings in texts with a marker: one pass over the text for all of
/// them (Aho-Corasick, longest match first), rather than one search per string. Used for the
/// runner's masks (`***`) and a plan's sensitive values (`(sensitive)`).
#[derive(Debug, Clone)]
pub struct Scrubber {
    mark: &'static str,
    all: Option<aho_corasick::AhoCorasick>,
    /// The strings that are not part of the marker itself, for the rare second pass.
    again: Option<aho_corasick::AhoCorasick>,
    /// The strings, sorted and deduplicated, with an index of their prefixes of at least
    /// [`MIN_CUT_PREFIX`] bytes ([`Scrubber::scrub_cut`]; [`Scrubber::scrub_truncated`] walks the
    /// strings themselves).
    cut: CutIndex,
}

impl Scrubber {
    /// A scrubber for these strings (empty ones are ignored), replacing them with `mark`.
    pub fn new(strings: &[String], mark: &'static str) -> Scrubber {
        let build = |keep: &dyn Fn(&str) -> bool| {
            let pats: Vec<&str> = strings
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty() && keep(s))
                .collect();
            if pats.is_empty() {
                return None;
            }
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(pats)
                .ok()
        };
        Scrubber {
            mark,
            all: build(&|_| true),
            again: build(&|s| !mark.contains(s)),
            cut: CutIndex::new(strings),
        }
    }

    /// Whether `text` holds any of the strings (what [`Scrubber::scrub`] would change), without
    /// building a copy.
    pub fn matches(&self, text: &str) -> bool {
        self.all.as_ref().is_some_and(|all| all.is_match(text))
    }

    /// `text` with every occurrence of every string replaced by the marker.
    pub fn scrub(&self, text: &str) -> String {
        let Some(all) = &self.all else {
            return text.to_string();
        };
        let replace = |ac: &aho_corasick::AhoCorasick, t: &str| {
            let mut out = String::with_capacity(t.len());
            ac.replace_all_with(t, &mut out, |_, _, dst| {
                dst.push_str(self.mark);
                true
            });
            out
        };
        if !all.is_match(text) {
            return text.to_string();
        }
        let mut s = replace(all, text);
        // A marker next to text can complete another sensitive string (one that overlaps the
        // marker's own letters): go again, a bounded number of times.
        if let Some(again) = &self.again {
            for _ in 0..4 {
                if !again.is_match(&s) {
                    break;
                }
                s = replace(again, &s);
            }
        }
        s
    }

    /// [`Scrubber::scrub`] of a text that WE cut at its end (a plan value shortened for display):
    /// the start of a string left at its end (the part before the cut of an occurrence that went
    /// on past it) is replaced by the marker too, however short. For text that may merely carry
    /// cut marks somewhere (remote error bodies, log lines), use [`Scrubber::scrub_cut`], which
    /// only hides pieces long enough to tell from chance.
    pub fn scrub_truncated(&self, text: &str) -> String {
        let mut s = self.scrub(text);
        // The earliest position from which the rest of `s` starts one of the strings.
        let b = s.as_bytes();
        let mut cut = b.len();
        for p in self.cut.strings.iter() {
            let p = p.as_bytes();
            let from = b.len().saturating_sub(p.len() - 1);
            if from >= cut {
                continue;
            }
            // Only where the string's first byte stands (memchr finds those quickly).
            if let Some(at) = memchr::memchr_iter(p[0], &b[from..cut])
                .map(|k| from + k)
                .find(|&i| p.starts_with(&b[i..]))
            {
                cut = at;
            }
        }
        if cut < b.len() {
            s.truncate(cut);
            s.push_str(self.mark);
        }
        s
    }
}

/// The mark a display cut leaves where it cut (`runner::single_line`, `runner::cut`, Markdown).
pub const CUT_MARK: char = '…';

/// A cut-off secret of at least this many bytes is hidden by [`Scrubber::scrub_cut`]; a shorter
/// one cannot be told apart from chance (and gives away too little to matter).
pub const MIN_CUT_PREFIX: usize = 6;

/// The (non-empty) strings of a scrubber and, built on first use, where each of their prefixes
/// ends: for the last two bytes of every prefix of at least [`MIN_CUT_PREFIX`] bytes, which string
/// and which length. A cut position then costs a lookup, not a walk over every string.
/// The last two bytes of a prefix -> (which string, prefix length).
type PrefixEnds = std::collections::HashMap<[u8; 2], Vec<(usize, usize)>>;

#[derive(Debug, Clone, Default)]
struct CutIndex {
    strings: Vec<String>,
    ends: std::sync::OnceLock<PrefixEnds>,
}

impl CutIndex {
    fn new(strings: &[String]) -> CutIndex {
        let mut strings: Vec<String> = strings.iter().filter(|s| !s.is_empty()).cloned().collect();
        strings.sort();
        strings.dedup();
        CutIndex {
            strings,
            ends: std::sync::OnceLock::new(),
        }
    }

    fn ends(&self) -> &PrefixEnds {
        self.ends.get_or_init(|| {
            let mut m = PrefixEnds::new();
            for (i, s) in self.strings.iter().enumerate() {
                let b = s.as_bytes();
                for k in MIN_CUT_PREFIX..=b.len() {
                    if s.is_char_boundary(k) {
                        m.entry([b[k - 2], b[k - 1]]).or_default().push((i, k));
                    }
                }
            }
            m
        })
    }

    /// The length of the longest prefix of a string that `text[..pos]` ends with.
    fn longest_before(&self, text: &str, pos: usize) -> Option<usize> {
        let b = &text.as_bytes()[..pos];
        if b.len() < MIN_CUT_PREFIX {
            return None;
        }
        let key = [b[b.len() - 2], b[b.len() - 1]];
        self.ends()
            .get(&key)?
            .iter()
            .filter(|&&(i, k)| b.ends_with(&self.strings[i].as_bytes()[..k]))
            .map(|&(_, k)| k)
            .max()
    }
}

impl Scrubber {
    /// [`Scrubber::scrub`] for text that may have been cut for display: a string cut off by the
    /// cut is hidden too. Where the text ends, and right before every [`CUT_MARK`], the longest
    /// piece (at least [`MIN_CUT_PREFIX`] bytes) that is a prefix of one of the strings is
    /// replaced by the marker. A remote that echoes a request header and gets cut at a display
    /// limit thus shows neither the whole secret nor its first part.
    pub fn scrub_cut(&self, text: &str) -> String {
        let mut s = self.scrub(text);
        if self.cut.strings.is_empty() {
            return s;
        }
        let mut at: Vec<usize> = s.match_indices(CUT_MARK).map(|(i, _)| i).collect();
        at.push(s.len());
        // Right to left, so a replacement leaves the positions still to do where they were.
        for &pos in at.iter().rev() {
            if let Some(k) = self.cut.longest_before(&s, pos) {
                s.replace_range(pos - k..pos, self.mark);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_replaces_every_string_and_what_replacing_uncovers() {
        let sc = Scrubber::new(
            &[
                "hunter22".to_string(),
                "hunter2".to_string(),
                "e)zz".to_string(),
                "sitive".to_string(),
                String::new(),
            ],
            "(sensitive)",
        );
        assert_eq!(
            sc.scrub("a hunter22 b hunter2"),
            "a (sensitive) b (sensitive)"
        );
        // Replacing `hunter2` makes `(sensitive)zz`, which contains `e)zz`.
        assert_eq!(sc.scrub("hunter2zz"), "(sensitiv(sensitive)");
        // A string inside the marker is replaced where it stands in the text, and the marker
        // does not loop on itself.
        assert_eq!(sc.scrub("positive"), "po(sensitive)");
        assert_eq!(sc.scrub("nothing here"), "nothing here");
        assert_eq!(Scrubber::new(&[], "***").scrub("x"), "x");
        let sc = Scrubber::new(&["ab*".to_string(), "xyz".to_string()], "***");
        assert_eq!(sc.scrub("ab* xyz ab"), "*** *** ab");
    }

    #[test]
    fn a_cut_text_loses_the_start_of_a_string_it_ends_with() {
        let sc = Scrubber::new(
            &["hunter22".to_string(), "s3cr\\et".to_string()],
            "(sensitive)",
        );
        for (cut, want) in [
            ("pw=hunter22 and hun", "pw=(sensitive) and (sensitive)"),
            ("pw=h", "pw=(sensitive)"),
            ("x s3cr\\", "x (sensitive)"),
            ("pw=hunter2", "pw=(sensitive)"),
            ("nothing", "nothing"),
            ("", ""),
        ] {
            assert_eq!(sc.scrub_truncated(cut), want, "{cut}");
        }
        // Uncut text keeps what only starts a string.
        assert_eq!(sc.scrub("pw=hun"), "pw=hun");
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("AKIAEXAMPLESECRET");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:#?}", vec![s.clone()]).contains("AKIA"));
        assert_eq!(s.expose(), "AKIAEXAMPLESECRET");
    }
    #[test]
    fn scrub_cut_hides_a_secret_cut_off_at_the_end_or_before_a_cut_mark() {
        let token = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN".to_string();
        let sc = Scrubber::new(&[token.clone(), "short".to_string()], "***");
        let cases: [(String, &str); 8] = [
            // Whole: as `scrub`.
            (format!("echo: {token} end"), "echo: *** end"),
            // Cut at the end of the text, with or without a cut mark.
            (
                format!("X-Amz-Security-Token: {}", &token[..20]),
                "X-Amz-Security-Token: ***",
            ),
            (format!("header {}…", &token[..9]), "header ***…"),
            // A cut mark in the middle of a line (the cut text was followed by more).
            (
                format!("a {}… (HTTP 400)", &token[..7]),
                "a ***… (HTTP 400)",
            ),
            // Too short a piece to tell from chance, and a prefix not at a cut.
            (format!("a {}…", &token[..5]), "a IQoJb…"),
            (format!("{} b", &token[..12]), "IQoJb3JpZ2lu b"),
            // A string below the minimum is scrubbed whole but its pieces are not.
            ("shor…".to_string(), "shor…"),
            (format!("{token}{}…", &token[..10]), "******…"),
        ];
        for (text, want) in cases {
            assert_eq!(sc.scrub_cut(&text), want, "{text}");
        }
        assert_eq!(Scrubber::new(&[], "***").scrub_cut("abc…"), "abc…");
        // Multi-byte strings are cut at character boundaries only.
        let sc = Scrubber::new(&["ééééé-secret".to_string()], "***");
        assert_eq!(sc.scrub_cut("x ééé…"), "x ***…");
    }
}
