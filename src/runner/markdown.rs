//! A small Markdown builder for step summaries and PR comments, with escaping of untrusted text.
//!
//! Every piece of text that did not come from us goes through [`escape`] (inline) or
//! [`code_block`] (verbatim, with a fence longer than any run of backticks inside).

/// Escape untrusted text for inline Markdown: HTML is entity-encoded, Markdown control
/// characters are backslash-escaped, newlines become spaces, and the text is cut at `max` chars.
pub fn escape_max(s: &str, max: usize) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            o.push('…');
            break;
        }
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '@' => {
                o.push('\\');
                o.push(c);
            }
            '\r' | '\n' => o.push(' '),
            c if c.is_control() => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// [`escape_max`] with a default cut of 300 characters.
pub fn escape(s: &str) -> String {
    escape_max(s, 300)
}

/// Inline code for untrusted text: backticks in the text are handled by a longer fence and
/// HTML-looking text stays literal because code spans are not parsed for HTML.
pub fn code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .take(300)
        .collect();
    let mut run = 0;
    let mut longest = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    if s.starts_with('`') || s.ends_with('`') {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A fenced code block for untrusted multi-line text.
pub fn code_block(lang: &str, s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}{lang}\n{s}\n{fence}\n")
}

/// A Markdown document built section by section; sections let a long document be cut at a
/// section boundary (PR comments are limited to 65,536 characters).
#[derive(Debug, Default, Clone)]
pub struct Doc {
    sections: Vec<String>,
}

impl Doc {
    /// An empty document.
    pub fn new() -> Self {
        Doc::default()
    }
    /// Add a section (already escaped Markdown).
    pub fn section(&mut self, md: impl Into<String>) -> &mut Self {
        self.sections.push(md.into());
        self
    }
    /// Add a heading line.
    pub fn heading(&mut self, level: usize, text_escaped: &str) -> &mut Self {
        self.sections.push(format!(
            "{} {}\n",
            "#".repeat(level.clamp(1, 6)),
            text_escaped
        ));
        self
    }
    /// Add a table. Cells must already be escaped.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) -> &mut Self {
        let mut s = String::new();
        s.push_str(&format!("| {} |\n", header.join(" | ")));
        s.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for r in rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        self.sections.push(s);
        self
    }
    /// Render everything.
    pub fn render(&self) -> String {
        self.sections.join("\n")
    }
    /// Render at most `limit` bytes, cutting at a section boundary and ending with `tail`
    /// (e.g. a pointer to the full step summary) when something was cut.
    pub fn render_limited(&self, limit: usize, tail: &str) -> String {
        let full = self.render();
        if full.len() <= limit {
            return full;
        }
        let budget = limit.saturating_sub(tail.len() + 2);
        let mut out = String::new();
        for s in &self.sections {
            if out.len() + s.len() + 1 > budget {
                break;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        out.push('\n');
        out.push_str(tail);
        out
    }
}
