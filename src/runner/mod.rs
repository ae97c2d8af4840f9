//! The GitHub Actions runner protocol, implemented once for every binary.
//!
//! What it owns:
//! - **outputs** (`$GITHUB_OUTPUT`) and **exports** (`$GITHUB_ENV`), written as heredocs with a fresh
//!   random delimiter that is checked not to occur in the value;
//! - **masking**: `::add-mask::` is printed for a secret before anything else could carry it, and
//!   every line this module prints is also scrubbed of registered secrets;
//! - **log hygiene** for untrusted text: `::stop-commands::<token>` around blocks, and per-line
//!   neutralising of workflow-command look-alikes;
//! - **annotations** (`::error` / `::warning` / `::notice`) with the runner's escaping rules,
//!   **log groups**, and `RUNNER_DEBUG` debug lines;
//! - the **step summary** (`$GITHUB_STEP_SUMMARY`), capped at the runner's 1 MiB limit.
//!
//! Outside Actions (no `GITHUB_OUTPUT`), outputs are collected and printed at the end, readably or
//! as one JSON object (`--format json`).
//!
//! **Machine output** ([`Runner::machine_output`], every `--format json`): stdout carries exactly
//! one document, one line of compact JSON written by [`Runner::document`], in every environment,
//! so `> out.json` and `| jq` work inside Actions too. Everything else this module prints —
//! `::add-mask::`, annotations, groups, log lines, untrusted blocks with their stop-commands —
//! goes to stderr, where the runner reads workflow commands just as on stdout (see
//! `docs/actions.md`). A line of compact JSON starts with `{` or `[`, so it cannot be a workflow
//! command and needs no stop-commands; the legacy `##[` form, which the runner finds anywhere in
//! a line, is broken up with a JSON escape (`#\u0023[`, the same text once parsed).
//!
//! Nothing here reads the process environment directly except [`Runner::from_process`]: tests
//! build a runner from an explicit map and capture its streams.

#[cfg(test)]
pub(crate) mod capture;
pub mod escape;
pub mod forms;
pub mod markdown;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rand::Rng;

use crate::exit::{Failure, Result};
use crate::secret::Secret;

pub use escape::{cut, escape_data, escape_property, neutralise_line, single_line, NEUTRAL_MARKER};

/// The step summary limit enforced by the runner (1 MiB per step).
pub const STEP_SUMMARY_LIMIT: usize = 1024 * 1024;

/// Where human-readable output goes.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// How collected outputs are printed outside Actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// `name: value` lines (default).
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// Severity of an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `::error`
    Error,
    /// `::warning`
    Warning,
    /// `::notice`
    Notice,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// Optional location properties of an annotation.
#[derive(Debug, Clone, Default)]
pub struct Annotation {
    /// `title=`
    pub title: Option<String>,
    /// `file=`
    pub file: Option<String>,
    /// `line=`
    pub line: Option<u32>,
}

struct State {
    masks: Vec<String>,
    /// Built from `masks` on first use after a change.
    scrubber: Option<crate::secret::Scrubber>,
    outputs: BTreeMap<String, String>,
    summary_bytes: usize,
    summary_truncated: bool,
    /// A machine-output document was written (there is only ever one).
    document_written: bool,
}

/// One step's view of the runner.
pub struct Runner {
    env: BTreeMap<String, String>,
    out: Sink,
    err: Sink,
    state: Mutex<State>,
    /// Machine output: stdout is reserved for the one document; logs go to stderr.
    machine: AtomicBool,
}

fn stdout_sink() -> Sink {
    Arc::new(Mutex::new(std::io::stdout()))
}

fn stderr_sink() -> Sink {
    Arc::new(Mutex::new(std::io::stderr()))
}

impl Runner {
    /// A runner reading the real process environment and writing to the real stdout/stderr.
    pub fn from_process() -> Self {
        Runner::new(std::env::vars().collect(), stdout_sink(), stderr_sink())
    }

    /// A runner over an explicit environment and explicit sinks (tests).
    pub fn new(env: BTreeMap<String, String>, out: Sink, err: Sink) -> Self {
        Runner {
            env,
            out,
            err,
            state: Mutex::new(State {
                masks: Vec::new(),
                scrubber: None,
                outputs: BTreeMap::new(),
                summary_bytes: 0,
                summary_truncated: false,
                document_written: false,
            }),
            machine: AtomicBool::new(false),
        }
    }

    /// Switch to machine output: from now on stdout carries only the one document written by
    /// [`Runner::document`], and every other line goes to stderr. Call it before any output
    /// (first thing in a command that was given `--format json`).
    pub fn machine_output(&self) {
        self.machine.store(true, Ordering::SeqCst);
    }

    /// True in machine-output mode.
    pub fn is_machine_output(&self) -> bool {
        self.machine.load(Ordering::SeqCst)
    }

    /// Where log lines go: stdout, or stderr in machine-output mode.
    fn log_sink(&self) -> &Sink {
        if self.is_machine_output() {
            &self.err
        } else {
            &self.out
        }
    }

    /// Write the machine-output document: one line of compact JSON on stdout, every string (and
    /// key) scrubbed of registered secrets, `##[` broken up. A second document is refused: the
    /// point is that stdout parses as exactly one.
    pub fn document(&self, doc: &serde_json::Value) -> Result<()> {
        {
            let mut st = self.state.lock().expect("runner state");
            if st.document_written {
                return Err(Failure::runtime(
                    "internal: a second machine-output document (stdout holds exactly one)",
                ));
            }
            st.document_written = true;
        }
        let mut doc = doc.clone();
        self.scrub_json(&mut doc);
        let line = machine_json(&doc);
        let mut out = self.out.lock().expect("stdout");
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        Ok(())
    }

    fn scrub_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = self.scrub(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.scrub_json(x)),
            serde_json::Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    self.scrub_json(&mut x);
                    o.insert(self.scrub(&k), x);
                }
            }
            _ => {}
        }
    }

    /// A value from the environment this runner was built with (empty counts as absent).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The whole environment this runner was built with.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// True inside a GitHub Actions job (or act).
    pub fn in_actions(&self) -> bool {
        self.var("GITHUB_ACTIONS") == Some("true") || self.var("GITHUB_OUTPUT").is_some()
    }

    /// True when `RUNNER_DEBUG=1` (step debug logging).
    pub fn debug_enabled(&self) -> bool {
        self.var("RUNNER_DEBUG") == Some("1")
    }

    /// True when there is a step summary file to write to (`GITHUB_STEP_SUMMARY`).
    pub fn has_step_summary(&self) -> bool {
        self.file_var("GITHUB_STEP_SUMMARY").is_some()
    }

    fn file_var(&self, name: &str) -> Option<PathBuf> {
        self.var(name).map(PathBuf::from)
    }

    // ----- masking -------------------------------------------------------------------------

    /// Register a secret: prints `::add-mask::` for every non-empty line of it (the runner masks
    /// per line) and scrubs it from everything this runner prints from now on. Call this before
    /// any output that could carry the value.
    pub fn mask(&self, secret: &Secret) {
        self.mask_str(secret.expose());
    }

    /// As [`Runner::mask`], for a value that is sensitive but not wrapped (e.g. an account id).
    pub fn mask_str(&self, value: &str) {
        let mut lines: Vec<&str> = value
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return;
        }
        if !lines.contains(&value) && !value.contains('\n') {
            lines.push(value);
        }
        // The same secret once JSON-escaped, URL-encoded, Markdown-escaped or base64-encoded
        // (alone or inside a longer value such as a Basic-auth header) is masked as well.
        let derived: Vec<String> = lines.iter().flat_map(|l| forms::derived_forms(l)).collect();
        let mut lines: Vec<&str> = lines;
        for d in &derived {
            if !lines.contains(&d.as_str()) {
                lines.push(d);
            }
        }
        {
            let mut st = self.state.lock().expect("runner state");
            for l in &lines {
                if !st.masks.iter().any(|m| m == l) {
                    st.masks.push((*l).to_string());
                }
            }
            st.scrubber = None;
        }
        let mut out = self.log_sink().lock().expect("stdout");
        for l in lines {
            // The mask command itself is the one place the value is written on purpose.
            let _ = writeln!(out, "::add-mask::{}", escape_data(l));
        }
        let _ = out.flush();
    }

    /// Replace every registered secret in `text` with `***` (one pass over the text for all of
    /// them, longest match first, so a secret that contains another is replaced whole). A secret
    /// cut off by a display limit (at the end of `text` or before a `…`) is hidden as well
    /// ([`crate::secret::Scrubber::scrub_cut`]).
    pub fn scrub(&self, text: &str) -> String {
        let mut st = self.state.lock().expect("runner state");
        if st.masks.is_empty() {
            return text.to_string();
        }
        let st = &mut *st;
        st.scrubber
            .get_or_insert_with(|| crate::secret::Scrubber::new(&st.masks, "***"))
            .scrub_cut(text)
    }

    // ----- plain log lines -----------------------------------------------------------------

    fn write_out(&self, line: &str) {
        let line = self.scrub(line);
        let mut out = self.log_sink().lock().expect("stdout");
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn write_err(&self, line: &str) {
        let line = self.scrub(line);
        let mut err = self.err.lock().expect("stderr");
        let _ = writeln!(err, "{line}");
        let _ = err.flush();
    }

    /// A log line written by us. Any untrusted parts must already be passed through
    /// [`single_line`]; this still neutralises the line as a whole, so that a value at its start
    /// cannot turn it into a workflow command.
    pub fn info(&self, msg: &str) {
        for l in msg.split('\n') {
            self.write_out(&neutralise_line(l.trim_end_matches('\r')));
        }
    }

    /// A log line on stderr (errors, warnings outside Actions).
    pub fn eprint(&self, msg: &str) {
        for l in msg.split('\n') {
            self.write_err(&neutralise_line(l.trim_end_matches('\r')));
        }
    }

    /// Print a block of untrusted text (a commit message, an error body, a plan excerpt) so that
    /// nothing in it is interpreted as a workflow command: command processing is stopped with a
    /// fresh random token for the block, and every line is neutralised as well.
    pub fn untrusted_block(&self, text: &str) {
        let token = random_token();
        let body = self.scrub(text);
        let mut out = self.log_sink().lock().expect("stdout");
        if self.in_actions() {
            let _ = writeln!(out, "::stop-commands::{token}");
        }
        for l in body.split('\n') {
            let _ = writeln!(out, "{}", neutralise_line(l.trim_end_matches('\r')));
        }
        if self.in_actions() {
            let _ = writeln!(out, "::{token}::");
        }
        let _ = out.flush();
    }

    /// A debug line, printed only with `RUNNER_DEBUG=1`. Secrets are scrubbed like everything else.
    pub fn debug(&self, msg: &str) {
        if !self.debug_enabled() {
            return;
        }
        for l in msg.split('\n') {
            let l = self.scrub(l);
            self.write_out(&format!("::debug::{}", escape_data(&l)));
        }
    }

    /// Start a collapsible log group.
    pub fn group(&self, title: &str) {
        if self.in_actions() {
            self.write_out(&format!("::group::{}", escape_data(&single_line(title))));
        } else {
            self.write_out(&format!("== {} ==", single_line(title)));
        }
    }

    /// End the current log group.
    pub fn endgroup(&self) {
        if self.in_actions() {
            self.write_out("::endgroup::");
        }
    }

    /// An annotation (`::error`, `::warning`, `::notice`). Outside Actions it is a plain stderr line.
    pub fn annotate(&self, level: Level, msg: &str, at: &Annotation) {
        let msg = self.scrub(msg);
        if !self.in_actions() {
            let prefix = match level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Notice => "notice",
            };
            self.write_err(&format!("{prefix}: {}", msg.replace('\n', "\n  ")));
            return;
        }
        let mut props = Vec::new();
        if let Some(t) = &at.title {
            props.push(format!("title={}", escape_property(&self.scrub(t))));
        }
        if let Some(f) = &at.file {
            props.push(format!("file={}", escape_property(f)));
        }
        if let Some(l) = at.line {
            props.push(format!("line={l}"));
        }
        let props = if props.is_empty() {
            String::new()
        } else {
            format!(" {}", props.join(","))
        };
        self.write_out(&format!(
            "::{}{}::{}",
            level.command(),
            props,
            escape_data(&msg)
        ));
    }

    /// Shorthand for an error annotation.
    pub fn error(&self, msg: &str) {
        self.annotate(Level::Error, msg, &Annotation::default());
    }
    /// Shorthand for a warning annotation.
    pub fn warning(&self, msg: &str) {
        self.annotate(Level::Warning, msg, &Annotation::default());
    }
    /// Shorthand for a notice annotation.
    pub fn notice(&self, msg: &str) {
        self.annotate(Level::Notice, msg, &Annotation::default());
    }

    // ----- outputs and exports -------------------------------------------------------------

    /// Set a step output. In Actions it is appended to `$GITHUB_OUTPUT`; outside, it is collected
    /// and printed by [`Runner::finish`]. Values are scrubbed of registered secrets unless the
    /// caller deliberately passes a secret through [`Runner::set_secret_output`].
    pub fn set_output(&self, name: &str, value: &str) -> Result<()> {
        let value = self.scrub(value);
        self.set_output_raw(name, &value)
    }

    /// Set a step output that is itself a secret (only when a user asked for it, e.g.
    /// `output-credentials`). The value is masked first.
    pub fn set_secret_output(&self, name: &str, value: &Secret) -> Result<()> {
        self.mask(value);
        self.set_output_raw(name, value.expose())
    }

    fn set_output_raw(&self, name: &str, value: &str) -> Result<()> {
        validate_key(name)?;
        // Kept in every environment: `finish(Json)` prints them in Actions too.
        self.state
            .lock()
            .expect("runner state")
            .outputs
            .insert(name.to_string(), value.to_string());
        match self.file_var("GITHUB_OUTPUT") {
            Some(path) => append_heredoc(&path, name, value),
            None => Ok(()),
        }
    }

    /// Export an environment variable to later steps through `$GITHUB_ENV`.
    ///
    /// Only for values we produced or validated (credentials, a region): an attacker-controlled
    /// value in `GITHUB_ENV` can take over later steps (`LD_PRELOAD`, `NODE_OPTIONS`, ...), so
    /// names on a deny list are refused and untrusted text must never be passed here.
    pub fn export_env(&self, name: &str, value: &str) -> Result<()> {
        validate_key(name)?;
        const DENY: &[&str] = &[
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "NODE_OPTIONS",
            "BASH_ENV",
            "ENV",
            "PATH",
            "GITHUB_ENV",
            "GITHUB_PATH",
            "GITHUB_OUTPUT",
        ];
        if DENY.contains(&name) {
            return Err(Failure::runtime(format!(
                "refusing to export {name} to GITHUB_ENV"
            )));
        }
        match self.file_var("GITHUB_ENV") {
            Some(path) => append_heredoc(&path, name, value),
            None => Ok(()),
        }
    }

    /// Append Markdown to the step summary, respecting the 1 MiB limit: what would not fit is
    /// replaced by one line saying so. Outside Actions this is a no-op.
    pub fn summary(&self, markdown: &str) -> Result<()> {
        let Some(path) = self.file_var("GITHUB_STEP_SUMMARY") else {
            return Ok(());
        };
        let text = self.scrub(markdown);
        let mut st = self.state.lock().expect("runner state");
        if st.summary_truncated {
            return Ok(());
        }
        let existing = std::fs::metadata(&path)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
            .max(st.summary_bytes);
        const NOTE: &str = "\n\n> **Summary truncated**: the step summary limit (1 MiB) was reached; see the job log for the rest.\n";
        // Room for content always leaves room for the truncation note.
        let room = STEP_SUMMARY_LIMIT
            .saturating_sub(NOTE.len())
            .saturating_sub(existing);
        let piece = if text.len() <= room {
            text
        } else {
            st.summary_truncated = true;
            let keep = room;
            let mut cut = keep.min(text.len());
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            // Cut at a line boundary so no Markdown construct is left half open.
            if let Some(nl) = text[..cut].rfind('\n') {
                cut = nl + 1;
            }
            format!("{}{}", &text[..cut], NOTE)
        };
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(piece.as_bytes())?;
        st.summary_bytes = existing + piece.len();
        Ok(())
    }

    /// Print collected outputs outside Actions: `name: value` lines on stdout, or one JSON object.
    /// In Actions the outputs are already in `$GITHUB_OUTPUT` and `json` still prints the object
    /// (as the machine-output document: scripts read it from stdout), `text` prints nothing more.
    pub fn finish(&self, format: OutputFormat) {
        let st = self.state.lock().expect("runner state");
        let outputs = st.outputs.clone();
        drop(st);
        match format {
            OutputFormat::Json => {
                let obj: serde_json::Map<String, serde_json::Value> = outputs
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                let _ = self.document(&serde_json::Value::Object(obj));
            }
            // In Actions the outputs are in `$GITHUB_OUTPUT` already.
            OutputFormat::Text if self.in_actions() => {}
            OutputFormat::Text => {
                for (k, v) in outputs {
                    self.write_out(&format!("{k}: {}", single_line(&v)));
                }
            }
        }
    }

    /// The outputs set so far (in Actions they are in `$GITHUB_OUTPUT` as well).
    pub fn collected_outputs(&self) -> BTreeMap<String, String> {
        self.state.lock().expect("runner state").outputs.clone()
    }
}

fn validate_key(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Failure::runtime(format!(
            "internal: invalid output/env name {:?}",
            single_line(name)
        )))
    }
}

/// Compact JSON on one line that no consumer can take for more than one line or for a workflow
/// command: `##[` (found by the runner anywhere in a line) and the Unicode line and paragraph
/// separators are written as JSON escapes. They only occur inside strings, where `#` and the
/// separators are never part of an escape, so the document parses to the same value.
pub fn machine_json(doc: &serde_json::Value) -> String {
    let s = serde_json::to_string(doc).unwrap_or_else(|_| "null".into());
    s.replace("##[", "#\\u0023[")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A fresh random token of 32 hex characters.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    hex::encode(bytes)
}

/// Choose a heredoc delimiter that does not occur in `value`.
pub fn heredoc_delimiter(value: &str) -> String {
    loop {
        let d = format!("ghadelimiter_{}", random_token());
        if !value.contains(&d) {
            return d;
        }
    }
}

/// Render one `name<<DELIM\nvalue\nDELIM\n` record.
pub fn heredoc_record(name: &str, value: &str) -> String {
    let d = heredoc_delimiter(value);
    format!("{name}<<{d}\n{value}\n{d}\n")
}

fn append_heredoc(path: &Path, name: &str, value: &str) -> Result<()> {
    let rec = heredoc_record(name, value);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure::runtime(format!("cannot open {}: {e}", path.display())))?;
    f.write_all(rec.as_bytes())?;
    Ok(())
}

/// Parse a `GITHUB_OUTPUT`/`GITHUB_ENV` file the way the runner does (heredoc and `k=v` lines).
/// Used by tests and by `gitops-dev`; returns an error on a malformed file.
pub fn parse_command_file(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delim)) = line.split_once("<<") {
            let mut val: Vec<&str> = Vec::new();
            let mut closed = false;
            for l in lines.by_ref() {
                if l == delim {
                    closed = true;
                    break;
                }
                val.push(l);
            }
            if !closed {
                return Err(format!("unterminated heredoc for {name}"));
            }
            out.push((name.to_string(), val.join("\n")));
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        } else {
            return Err(format!("malformed line {line:?}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
