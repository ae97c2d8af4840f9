//! Unit tests of the runner protocol against the vectors in `hardening.md`.

use super::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::capture::Buf;

struct T {
    r: Runner,
    out: Buf,
    err: Buf,
    dir: tempfile::TempDir,
}

fn runner(actions: bool, extra: &[(&str, &str)]) -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut env = BTreeMap::new();
    if actions {
        env.insert("GITHUB_ACTIONS".into(), "true".into());
        for (k, f) in [
            ("GITHUB_OUTPUT", "out"),
            ("GITHUB_ENV", "env"),
            ("GITHUB_STEP_SUMMARY", "summary"),
        ] {
            env.insert(k.to_string(), dir.path().join(f).display().to_string());
        }
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let out = Buf::default();
    let err = Buf::default();
    let r = Runner::new(
        env,
        Arc::new(Mutex::new(out.clone())),
        Arc::new(Mutex::new(err.clone())),
    );
    T { r, out, err, dir }
}

fn read(t: &T, f: &str) -> String {
    std::fs::read_to_string(t.dir.path().join(f)).unwrap_or_default()
}

#[test]
fn outputs_use_heredocs_with_random_delimiters() {
    let t = runner(true, &[]);
    t.r.set_output("image", "reg/repo@sha256:abc").unwrap();
    t.r.set_output("multi", "line1\nline2\nEOF\nghadelimiter_x")
        .unwrap();
    let text = read(&t, "out");
    let parsed = parse_command_file(&text).unwrap();
    assert_eq!(parsed[0], ("image".into(), "reg/repo@sha256:abc".into()));
    assert_eq!(
        parsed[1],
        ("multi".into(), "line1\nline2\nEOF\nghadelimiter_x".into())
    );
    // Two records never share a delimiter.
    let delims: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("<<").map(|x| x.1))
        .collect();
    assert_eq!(delims.len(), 2);
    assert_ne!(delims[0], delims[1]);
    assert!(delims[0].len() > 40);
}

#[test]
fn delimiter_never_occurs_in_value() {
    for _ in 0..200 {
        let v = format!("x\n{}\ny", heredoc_delimiter(""));
        let d = heredoc_delimiter(&v);
        assert!(!v.contains(&d));
    }
}

#[test]
fn a_value_cannot_inject_another_output() {
    let t = runner(true, &[]);
    // Classic injection attempt: a value that tries to close a fixed delimiter.
    t.r.set_output("title", "x\nEOF\nevil<<EOF\npwned\nEOF")
        .unwrap();
    let parsed = parse_command_file(&read(&t, "out")).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].0, "title");
}

#[test]
fn exports_go_to_github_env_and_dangerous_names_are_refused() {
    let t = runner(true, &[]);
    t.r.export_env("AWS_REGION", "eu-west-1").unwrap();
    assert_eq!(
        parse_command_file(&read(&t, "env")).unwrap(),
        vec![("AWS_REGION".into(), "eu-west-1".into())]
    );
    for name in ["LD_PRELOAD", "NODE_OPTIONS", "BASH_ENV", "PATH"] {
        assert!(t.r.export_env(name, "x").is_err());
    }
    assert!(t.r.export_env("A=B", "x").is_err());
    assert!(t.r.set_output("bad\nname", "x").is_err());
}

#[test]
fn mask_comes_first_and_scrubs_everything_after() {
    let t = runner(true, &[]);
    let s = Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    t.r.mask(&s);
    t.r.info(&format!("leaked? {}", s.expose()));
    t.r.error(&format!("failed with {}", s.expose()));
    t.r.set_output("x", &format!("v={}", s.expose())).unwrap();
    t.r.summary(&format!("| {} |", s.expose())).unwrap();
    let out = t.out.text();
    let first = out.lines().next().unwrap();
    assert_eq!(first, format!("::add-mask::{}", s.expose()));
    assert_eq!(
        out.matches(s.expose()).count(),
        1,
        "only the mask line may carry it: {out}"
    );
    assert!(!read(&t, "out").contains(s.expose()));
    assert!(!read(&t, "summary").contains(s.expose()));
}

#[test]
fn multiline_secrets_are_masked_per_line() {
    let t = runner(true, &[]);
    t.r.mask_str("line-one-secret\nline-two-secret");
    let out = t.out.text();
    assert!(out.contains("::add-mask::line-one-secret\n"));
    assert!(out.contains("::add-mask::line-two-secret\n"));
    t.r.info("a line-two-secret b");
    assert!(t.out.text().ends_with("a *** b\n"));
}

#[test]
fn secret_outputs_are_masked_then_written() {
    let t = runner(true, &[]);
    t.r.set_secret_output("aws-secret-access-key", &Secret::new("SECRETVALUE123"))
        .unwrap();
    assert!(t.out.text().starts_with("::add-mask::SECRETVALUE123"));
    assert_eq!(
        parse_command_file(&read(&t, "out")).unwrap()[0].1,
        "SECRETVALUE123"
    );
}

#[test]
fn annotation_escaping_follows_the_runner_rules() {
    assert_eq!(escape_data("100% done\r\nnext"), "100%25 done%0D%0Anext");
    assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    let t = runner(true, &[]);
    t.r.annotate(
        Level::Warning,
        "first\n::error::pwned",
        &Annotation {
            title: Some("t:1,2".into()),
            file: Some("main.tf".into()),
            line: Some(3),
        },
    );
    let out = t.out.text();
    assert_eq!(
        out,
        "::warning title=t%3A1%2C2,file=main.tf,line=3::first%0A::error::pwned\n"
    );
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn log_injection_vectors_are_neutralised() {
    let vectors = [
        "::set-output name=x::y",
        "  ::error::x",
        "foo ##[error]bar",
        "::add-mask::",
        "::stop-commands::abc",
        "title\n::error::pwned",
        "\t::warning::tab",
    ];
    for v in vectors {
        for line in v.split('\n') {
            let n = neutralise_line(line);
            assert!(!n.trim_start().starts_with("::"), "{v:?} -> {n:?}");
            assert!(!n.contains("##["), "{v:?} -> {n:?}");
        }
        let one = single_line(v);
        assert!(!one.contains('\n') && !one.contains('\r'), "{one:?}");
    }
    let t = runner(true, &[]);
    t.r.info("PR title: x\n::error::pwned");
    for l in t.out.text().lines() {
        assert!(!l.trim_start().starts_with("::"), "{l}");
    }
}

#[test]
fn untrusted_blocks_stop_commands_with_a_fresh_token() {
    let t = runner(true, &[]);
    t.r.untrusted_block("commit message\n::set-env name=A::B\n##[error]x");
    t.r.untrusted_block("second");
    let out = t.out.text();
    let lines: Vec<&str> = out.lines().collect();
    let tok1 = lines[0].strip_prefix("::stop-commands::").unwrap();
    assert_eq!(lines[4], format!("::{tok1}::"));
    assert_eq!(tok1.len(), 32);
    assert!(lines[2].starts_with(NEUTRAL_MARKER));
    assert!(!lines[3].contains("##["));
    let tok2 = lines[5].strip_prefix("::stop-commands::").unwrap();
    assert_ne!(tok1, tok2, "every block gets a fresh token");
    // An attacker who guesses the closing form of an old token cannot resume commands early.
    let t = runner(true, &[]);
    t.r.untrusted_block(&format!("::{tok1}::\n::error::x"));
    for l in t.out.text().lines().skip(1) {
        if l.starts_with("::") {
            assert!(!l.contains(tok1), "{l}");
        }
    }
}

#[test]
fn debug_lines_only_with_runner_debug_and_never_secrets() {
    let t = runner(true, &[]);
    t.r.debug("hidden");
    assert_eq!(t.out.text(), "");
    let t = runner(true, &[("RUNNER_DEBUG", "1")]);
    t.r.mask_str("tok-123456");
    t.r.debug("Authorization: bearer tok-123456");
    let out = t.out.text();
    assert!(out.contains("::debug::Authorization: bearer ***"));
    assert_eq!(out.matches("tok-123456").count(), 1);
}

#[test]
fn groups_in_and_out_of_actions() {
    let t = runner(true, &[]);
    t.r.group("Upload\n::error::x");
    t.r.endgroup();
    assert_eq!(t.out.text(), "::group::Upload\\n::error::x\n::endgroup::\n");
    let t = runner(false, &[]);
    t.r.group("Upload");
    t.r.endgroup();
    assert_eq!(t.out.text(), "== Upload ==\n");
}

#[test]
fn outside_actions_outputs_print_readably_or_as_json() {
    let t = runner(false, &[]);
    t.r.set_output("b", "2").unwrap();
    t.r.set_output("a", "1\nnewline").unwrap();
    t.r.finish(OutputFormat::Text);
    assert_eq!(t.out.text(), "a: 1\\nnewline\nb: 2\n");
    let t = runner(false, &[]);
    t.r.set_output("a", "1").unwrap();
    t.r.finish(OutputFormat::Json);
    assert_eq!(t.out.text(), "{\"a\":\"1\"}\n");
    // Outside Actions, annotations are plain stderr lines.
    t.r.error("boom");
    assert_eq!(t.err.text(), "error: boom\n");
}

#[test]
fn step_summary_respects_the_limit() {
    let t = runner(true, &[]);
    let chunk = format!("{}\n", "x".repeat(1023));
    for _ in 0..1100 {
        t.r.summary(&chunk).unwrap();
    }
    let s = read(&t, "summary");
    assert!(s.len() <= STEP_SUMMARY_LIMIT, "{}", s.len());
    assert!(s.ends_with("see the job log for the rest.\n"));
    assert_eq!(s.matches("Summary truncated").count(), 1);
}

#[test]
fn markdown_escaping() {
    use markdown::*;
    assert_eq!(
        escape("<img src=x onerror=alert(1)>"),
        "&lt;img src=x onerror=alert\\(1\\)&gt;"
    );
    assert_eq!(escape("a|b\nc"), "a\\|b c");
    assert_eq!(
        escape("[x](javascript:alert)"),
        "\\[x\\]\\(javascript:alert\\)"
    );
    assert!(escape_max(&"y".repeat(1000), 10).ends_with('…'));
    assert_eq!(code("a`b"), "``a`b``");
    assert!(code_block("", "```\nx").starts_with("````\n"));
    let mut d = Doc::new();
    d.section("a".repeat(100)).section("b".repeat(100));
    let cut = d.render_limited(150, "TAIL");
    assert!(cut.len() <= 150);
    assert!(cut.ends_with("TAIL") && !cut.contains('b'));
}

// Machine output: stdout is exactly one JSON document in Actions too; masks, annotations, logs
// and untrusted blocks (with their stop-commands) go to stderr, where the runner reads them.
#[test]
fn machine_output_keeps_stdout_one_json_document() {
    for actions in [true, false] {
        let t = runner(actions, &[]);
        t.r.machine_output();
        let s = Secret::new("tok-0123456789abcdef");
        t.r.mask(&s);
        t.r.info("a log line");
        t.r.warning("a warning");
        t.r.group("g");
        t.r.endgroup();
        t.r.untrusted_block("::error::pwned\nsecond line");
        let doc = serde_json::json!({
            "title": "x\n::error::pwned ##[error]y \u{2028} z",
            "leak": format!("v={}", s.expose()),
            s.expose(): [1, "##[##["],
        });
        t.r.document(&doc).unwrap();
        let out = t.out.text();
        assert_eq!(out.lines().count(), 1, "{out}");
        let line = out.lines().next().unwrap();
        assert!(line.starts_with('{'), "{line}");
        assert!(!line.contains("##["), "{line}");
        assert!(!line.contains('\u{2028}'), "{line}");
        assert!(!line.contains(s.expose()), "{line}");
        let back: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(back["title"], "x\n::error::pwned ##[error]y \u{2028} z");
        assert_eq!(back["leak"], "v=***");
        assert_eq!(back["***"], serde_json::json!([1, "##[##["]));
        let err = t.err.text();
        if actions {
            assert!(
                err.starts_with(&format!("::add-mask::{}\n", s.expose())),
                "{err}"
            );
            assert!(err.contains("::warning::a warning"), "{err}");
            assert!(err.contains("::stop-commands::"), "{err}");
            assert!(err.contains("::group::g"), "{err}");
        } else {
            assert!(err.contains("warning: a warning"), "{err}");
        }
        assert!(err.contains("a log line"), "{err}");
        // exactly one document
        let e = t.r.document(&serde_json::json!({})).unwrap_err();
        assert!(e.message.contains("second"), "{e}");
        assert_eq!(t.out.text().lines().count(), 1);
    }
}

// finish(json) is the document in machine mode, and a second finish cannot add another.
#[test]
fn finish_json_is_the_one_document() {
    let t = runner(false, &[]);
    t.r.machine_output();
    t.r.set_output("status", "ok").unwrap();
    t.r.finish(OutputFormat::Json);
    t.r.finish(OutputFormat::Json);
    let out = t.out.text();
    assert_eq!(out, "{\"status\":\"ok\"}\n");
    // In Actions the document carries the outputs too (they are in GITHUB_OUTPUT as well);
    // `text` prints nothing there.
    let t = runner(true, &[]);
    t.r.set_output("status", "ok").unwrap();
    t.r.finish(OutputFormat::Text);
    assert_eq!(t.out.text(), "");
    t.r.machine_output();
    t.r.finish(OutputFormat::Json);
    assert_eq!(t.out.text(), "{\"status\":\"ok\"}\n");
    assert_eq!(
        parse_command_file(&read(&t, "out")).unwrap(),
        vec![("status".into(), "ok".into())]
    );
}

// Item 3 of #21: every display cut of remote text (`single_line`, `cut`) can fall inside a
// secret; what the runner prints hides the cut-off part too, on every channel.
#[test]
fn a_secret_cut_by_a_display_limit_is_hidden_on_every_channel() {
    let t = runner(true, &[]);
    let token = format!("IQoJb3JpZ2luX2Vj{}", "Zk9".repeat(200));
    t.r.mask_str(&token);
    for pad in [300, 480, 505] {
        let body = format!("{} echo: {token} (end)", "x".repeat(pad));
        let one = single_line(&body);
        assert!(one.ends_with(crate::secret::CUT_MARK), "{pad}");
        t.r.info(&format!("remote said: {one} (HTTP 400)"));
        t.r.error(&format!("STS: {one}"));
        t.r.eprint(&cut(&body, pad + 40));
        t.r.untrusted_block(&cut(&body, pad + 30));
        t.r.summary(&format!("> {}\n", cut(&body, pad + 20)))
            .unwrap();
    }
    let masks_stripped = |s: String| -> String {
        s.lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (name, text) in [
        ("stdout", masks_stripped(t.out.text())),
        ("stderr", t.err.text()),
        ("summary", read(&t, "summary")),
    ] {
        // 16 bytes: the token's constant start plus any piece of its body.
        for w in token.as_bytes().windows(16) {
            let piece = std::str::from_utf8(w).unwrap();
            assert!(!text.contains(piece), "{name} shows {piece:?}:\n{text}");
        }
        assert!(text.contains("echo: ***"), "{name}:\n{text}");
    }
    assert_eq!(cut("abcdef", 3), "abc…");
    assert_eq!(cut("abc", 3), "abc");
    assert_eq!(cut("ééé", 2), "éé…");
}

// A registered secret in a transformed form (JSON-escaped, URL-encoded, base64, base64 inside a
// Basic-auth header) is masked for the runner and scrubbed from everything this runner prints.
#[test]
fn transformed_forms_of_a_secret_are_masked_and_scrubbed() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let t = runner(true, &[]);
    let (runner, out) = (&t.r, &t.out);
    let secret = "ghs_q\"uo/te+d\\x";
    runner.mask_str(secret);
    let forms = [
        r#"ghs_q\"uo/te+d\\x"#.to_string(),
        "ghs_q%22uo%2Fte%2Bd%5Cx".to_string(),
        b64(secret),
    ];
    for f in &forms {
        runner.info(&format!("seen: {f}"));
    }
    let basic = b64(&format!("x-access-token:{secret}"));
    runner.info(&format!("Authorization: Basic {basic}"));
    let text = out.text();
    let (masks, rest): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("::add-mask::"));
    let rest = rest.join("\n");
    for f in &forms {
        assert!(!rest.contains(f.as_str()), "{f} printed: {rest}");
    }
    assert!(!rest.contains(&basic), "{rest}");
    assert!(rest.matches("***").count() >= 4, "{rest}");
    // The runner is told every form, so later steps' logs hide them too.
    assert!(masks.len() > 3, "{masks:?}");
    assert!(masks.iter().any(|m| m.ends_with(&b64(secret))), "{masks:?}");
}
