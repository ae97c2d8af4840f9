//! Prism (npm `@stoplight/prism-cli`) serving our committed subset of GitHub's official OpenAPI
//! description (`tests/fixtures/github-openapi/`, cut by `scripts/cut-openapi-subset`).
//!
//! Two modes, both on a free 127.0.0.1 port, stopped on drop:
//! - [`Prism::mock`]: a stateless GitHub. A request that breaks the description is answered
//!   `422` (with `--errors`), the violations in the `sl-violations` header and in [`Prism::log`];
//!   a valid one gets the description's example. Use it to prove what our code SENDS is valid.
//! - [`Prism::proxy`]: a validating proxy in front of a scenario fake (stateful behaviour such as
//!   409s, rate limits, a PR that becomes merged). Requests AND the fake's responses are checked
//!   against the same description; with `--errors` a violation becomes an error response.
//!
//! Prism echoes no request state: assert on what was sent (the fake's request log, or
//! [`Prism::violations`]) rather than on what Prism returns.
//!
//! ```ignore
//! let prism = support::prism::Prism::mock();
//! sandbox.set("GITHUB_API_URL", prism.url());
//! // ... run the binary ...
//! prism.assert_no_violations();
//! ```

use super::{free_port, root, Proc};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The committed subset of GitHub's REST description.
pub fn spec_path() -> PathBuf {
    root().join("tests/fixtures/github-openapi/api.github.com.subset.json")
}

/// The `prism` executable: `$GITOPS_STANDINS_NODE/.bin/prism`, the repo's
/// `.standins/node/node_modules/.bin/prism`, the main checkout's (for worktrees), then PATH.
pub fn prism_bin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("GITOPS_STANDINS_NODE") {
        candidates.push(PathBuf::from(dir).join(".bin/prism"));
    }
    candidates.push(root().join(".standins/node/node_modules/.bin/prism"));
    for c in candidates {
        if c.exists() {
            return c;
        }
    }
    super::tool("prism")
}

/// A running Prism.
pub struct Prism {
    pub port: u16,
    /// Log offset from which [`Prism::violations`] reads (see [`Prism::mark`]).
    mark: std::cell::Cell<usize>,
    log_dir: tempfile::TempDir,
    _proc: Proc,
}

impl Prism {
    /// `prism mock --errors` on the subset.
    pub fn mock() -> Prism {
        Prism::start(&["mock"], None)
    }

    /// `prism proxy --errors` on the subset, forwarding to `upstream` (e.g. `http://127.0.0.1:PORT`).
    pub fn proxy(upstream: &str) -> Prism {
        Prism::start(&["proxy"], Some(upstream))
    }

    fn start(mode: &[&str], upstream: Option<&str>) -> Prism {
        let port = free_port();
        let log_dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(log_dir.path().join("prism.log")).unwrap();
        let mut c = Command::new(prism_bin());
        c.args(mode).arg(spec_path());
        if let Some(u) = upstream {
            c.arg(u);
        }
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--errors"])
            .args(["--cors", "false"])
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let proc = Proc::spawn(&format!("prism {} on 127.0.0.1:{port}", mode[0]), c);
        let p = Prism {
            port,
            mark: std::cell::Cell::new(0),
            log_dir,
            _proc: proc,
        };
        p.wait_ready(Duration::from_secs(60));
        p
    }

    /// Prism prints `Prism is listening` once its routes are loaded; a TCP accept alone comes
    /// earlier, so wait for the log line, then for an HTTP answer.
    fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.log().contains("Prism is listening") && self.http_answers() {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "prism on port {} not ready within {timeout:?}; log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn http_answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = write!(
            s,
            "GET /__ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        let mut buf = [0u8; 12];
        s.read(&mut buf)
            .map(|n| n >= 12 && buf.starts_with(b"HTTP/"))
            .unwrap_or(false)
    }

    /// Base URL to use as `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Prism logged (one line per request, violations included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("prism.log")).unwrap_or_default()
    }

    /// Start a new scenario: [`Prism::violations`] only reports what is logged from now on.
    pub fn mark(&self) {
        self.mark.set(self.log().len());
    }

    /// Log lines (since the last [`Prism::mark`]) that report a request or response violation.
    pub fn violations(&self) -> Vec<String> {
        let log = self.log();
        log.get(self.mark.get()..)
            .unwrap_or("")
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("violation") && !l.contains("no violation")
                    || l.contains("[validator]") && (l.contains("error") || l.contains("warning"))
            })
            .map(str::to_string)
            .collect()
    }

    /// Fail the test when Prism saw any request or response that breaks the description.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        self.assert_no_violations_except(&[]);
    }

    /// As [`Prism::assert_no_violations`], ignoring lines that contain one of `allowed` (e.g.
    /// `"Unable to match the returned status code"` for a rate-limit 403/429, which GitHub
    /// sends on every endpoint but documents on few).
    #[track_caller]
    pub fn assert_no_violations_except(&self, allowed: &[&str]) {
        let v: Vec<String> = self
            .violations()
            .into_iter()
            .filter(|l| !allowed.iter().any(|a| l.contains(a)))
            .collect();
        assert!(
            v.is_empty(),
            "requests/responses broke GitHub's OpenAPI description:\n{}\n--- full prism log\n{}",
            v.join("\n"),
            self.log()
        );
    }

    /// Send one request straight to Prism (for harness tests and contract checks of fixtures).
    /// Returns status, headers (lowercased names) and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Vec<(String, String)>, String) {
        raw_request(self.port, method, path, body, &[])
    }
}

/// A minimal HTTP/1.1 client for harness code (one request per connection).
pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/vnd.github+json\r\nAuthorization: Bearer test-token\r\nUser-Agent: gitops-actions-tests\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let hdrs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = hdrs
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, hdrs, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
