//! `gitops-dev`: developer tasks (generate action.yml files, check drift, the demo's GitHub API
//! fake). Not shipped in releases.
//!
//! `gitops-dev github-fake --spec FILE --port-file FILE`: the test suite's stateful GitHub fake
//! (`tests/it/support/github_fake.rs`, compiled here from that one file) on a free loopback
//! port, written to the port file; it serves until killed. `./scripts/demo` runs it behind
//! `prism proxy`, which checks every request and response against GitHub's description.

use std::path::PathBuf;
use std::process::ExitCode;

#[allow(dead_code)]
#[path = "../../tests/it/support/github_fake.rs"]
mod github_fake;

/// What the fake's `super::prism::spec_path()` resolves to here: the `--spec` file.
mod prism {
    pub static SPEC: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    pub fn spec_path() -> std::path::PathBuf {
        SPEC.get().cloned().unwrap_or_default()
    }
}

const FAKE_USAGE: &str =
    "usage: gitops-dev github-fake --spec <GitHub OpenAPI subset> --port-file <file> [--port <n>]";

fn github_fake_main(args: &[String]) -> ExitCode {
    let (mut spec, mut port_file, mut port) = (None, None, 0u16);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--spec", Some(v)) => spec = Some(PathBuf::from(v)),
            ("--port-file", Some(v)) => port_file = Some(PathBuf::from(v)),
            ("--port", Some(v)) if v.parse::<u16>().is_ok() => port = v.parse().unwrap_or(0),
            _ => {
                eprintln!("{FAKE_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(spec), Some(port_file)) = (spec, port_file) else {
        eprintln!("{FAKE_USAGE}");
        return ExitCode::from(2);
    };
    // The fake builds every answer from the description's examples: refuse a file without them
    // before listening, rather than answering `null`s.
    let examples_ok = std::fs::read_to_string(&spec)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["components"]["examples"].is_object());
    if !examples_ok {
        eprintln!(
            "gitops-dev github-fake: {} is not an OpenAPI description with components.examples",
            spec.display()
        );
        return ExitCode::from(2);
    }
    let _ = prism::SPEC.set(spec);
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        eprintln!("gitops-dev github-fake: cannot listen on 127.0.0.1:{port}");
        return ExitCode::from(3);
    }
    let fake = github_fake::GithubFake::start_on(port);
    if let Err(e) = std::fs::write(&port_file, fake.port.to_string()) {
        eprintln!(
            "gitops-dev github-fake: cannot write {}: {e}",
            port_file.display()
        );
        return ExitCode::from(3);
    }
    eprintln!("github fake listening on {}", fake.url());
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("github-fake") {
        return github_fake_main(&args[1..]);
    }
    gitops_actions::actiongen::dev_main()
}
