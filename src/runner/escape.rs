//! Escaping rules of the runner protocol and neutralising of untrusted log text.

/// Escape an annotation/command message (`%`, CR, LF), as the runner expects.
pub fn escape_data(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => o.push_str("%25"),
            '\r' => o.push_str("%0D"),
            '\n' => o.push_str("%0A"),
            c => o.push(c),
        }
    }
    o
}

/// Escape an annotation property value (`title=`, `file=`): data rules plus `:` and `,`.
pub fn escape_property(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => o.push_str("%25"),
            '\r' => o.push_str("%0D"),
            '\n' => o.push_str("%0A"),
            ':' => o.push_str("%3A"),
            ',' => o.push_str("%2C"),
            c => o.push(c),
        }
    }
    o
}

/// The visible marker put in front of a line that would otherwise be a workflow command.
pub const NEUTRAL_MARKER: &str = "[untrusted] ";

/// Make one log line inert: a line whose trimmed start is `::` gets a visible marker, every
/// `##[` is broken up (`#\u{200b}#[`), and other control characters are shown escaped.
pub fn neutralise_line(line: &str) -> String {
    let mut s = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            '\r' => s.push_str("\\r"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push('\t'),
            c if c.is_control() => s.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => s.push(c),
        }
    }
    let s = s.replace("##[", "#\u{200b}#[");
    if s.trim_start().starts_with("::") {
        format!("{NEUTRAL_MARKER}{s}")
    } else {
        s
    }
}

/// Cut text to at most `max` characters for display, ending a cut with
/// [`crate::secret::CUT_MARK`] so that the runner's scrubber can tell a cut-off secret from the
/// rest. Every cut of untrusted or remote text goes through this or [`single_line`].
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}{}", &s[..i], crate::secret::CUT_MARK),
    }
}

/// Reduce untrusted text to one inert line (CR/LF escaped, control characters shown) and cut it
/// to a sane length, for single-line fields such as titles and branch names.
pub fn single_line(s: &str) -> String {
    const MAX: usize = 512;
    let mut o = String::new();
    for c in s.chars() {
        if o.len() >= MAX {
            o.push(crate::secret::CUT_MARK);
            break;
        }
        match c {
            '\r' => o.push_str("\\r"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => o.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => o.push(c),
        }
    }
    o
}
