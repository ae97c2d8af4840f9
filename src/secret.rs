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
    /// The strings (for [`Scrubber::scrub_cut`]).
    pats: std::sync::Arc<Vec<String>>,
    all: Option<aho_corasick::AhoCorasick>,
    /// The strings that are not part of the marker itself, for the rare second pass.
    again: Option<aho_corasick::AhoCorasick>,
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
        let mut pats: Vec<String> = strings.iter().filter(|s| !s.is_empty()).cloned().collect();
        pats.sort_unstable();
        pats.dedup();
        Scrubber {
            mark,
            pats: std::sync::Arc::new(pats),
            all: build(&|_| true),
            again: build(&|s| !mark.contains(s)),
        }
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

    /// [`Scrubber::scrub`] of a text that was cut from a longer one: the start of a string left
    /// at its end (the part before the cut of an occurrence that went on past it) is replaced
    /// by the marker too, however short.
    pub fn scrub_cut(&self, text: &str) -> String {
        let mut s = self.scrub(text);
        // The earliest position from which the rest of `s` starts one of the strings.
        let b = s.as_bytes();
        let mut cut = b.len();
        for p in self.pats.iter() {
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
            assert_eq!(sc.scrub_cut(cut), want, "{cut}");
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
}
