//! The test harness: hermetic sandboxes for running our binaries, process guards, free ports,
//! secret scans, and the real stand-ins (one module each).
#![allow(dead_code)]

pub mod act;
pub mod faultproxy;
pub mod fwdproxy;
pub mod git_http;
pub mod github_comments_fake;
pub mod github_fake;
pub mod moto;
pub mod oci;
pub mod oidc;
pub mod prism;
pub mod registry;
pub mod sts_faults;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of one of our binaries, built by cargo for this test run.
pub fn bin(name: &str) -> PathBuf {
    PathBuf::from(match name {
        "oidc-login" => env!("CARGO_BIN_EXE_oidc-login"),
        "plan-gate" => env!("CARGO_BIN_EXE_plan-gate"),
        "ecr-push" => env!("CARGO_BIN_EXE_ecr-push"),
        "promote" => env!("CARGO_BIN_EXE_promote"),
        "tag-deploy" => env!("CARGO_BIN_EXE_tag-deploy"),
        "stacks" => env!("CARGO_BIN_EXE_stacks"),
        "gitops-dev" => env!("CARGO_BIN_EXE_gitops-dev"),
        other => panic!("unknown binary {other}"),
    })
}

/// Where `scripts/install-standins` puts the Python stand-ins (moto, awscli, act, zizmor).
pub fn standins_dir() -> PathBuf {
    std::env::var_os("GITOPS_STANDINS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-standins"))
}

/// Find a stand-in tool: the stand-ins venv first, then the system PATH. A missing stand-in is a
/// hard failure (the README test command installs them all), never a silent skip.
pub fn tool(name: &str) -> PathBuf {
    let venv = standins_dir().join("bin").join(name);
    if venv.exists() {
        return venv;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    for extra in ["/usr/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(extra).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("stand-in `{name}` is not installed: run ./scripts/install-standins (./scripts/test does this)");
}

/// True when `name` is available, for the few tools that may legitimately be absent (terraform).
pub fn has_tool(name: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(name).is_file())
}

/// Say loudly that a test is skipping part of its work and why.
pub fn skip_loudly(what: &str, why: &str) {
    eprintln!("\n!!!! SKIPPED: {what}: {why} !!!!\n");
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener on 127.0.0.1 that counts the connections it gets and answers none: the
/// "stand-in" a refused URL points at, to show that nothing was sent. Reachable on this machine
/// as `127.0.0.1`, and also as `0.0.0.0` and `[::ffff:127.0.0.1]`, which are not loopback names.
pub struct ConnCounter {
    pub port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ConnCounter {
    pub fn start() -> ConnCounter {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(c);
            }
        });
        ConnCounter { port, hits }
    }

    /// Connections so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Wait until `GET path` on 127.0.0.1:port answers with any HTTP status.
pub fn wait_http(port: u16, path: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read(&mut buf)
                .map(|n| n >= 12 && buf.starts_with(b"HTTP/"))
                .unwrap_or(false)
            {
                return;
            }
        }
        if start.elapsed() > timeout {
            panic!("stand-in on port {port} did not answer {path} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started process (in its own process group) that is killed, with its children, on drop —
/// also when the test panics.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).stdin(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start stand-in {name}: {e}"));
        eprintln!("[stand-in] started {name} (pid {})", child.id());
        standin_log(&format!("started {name}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pg = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &pg])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pg])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        eprintln!("[stand-in] stopped {}", self.name);
        standin_log(&format!("stopped {}", self.name));
    }
}

/// Every stand-in start/stop is appended to `target/tmp/standins.log`; `scripts/test` prints a
/// summary of it at the end, so a CI log shows which real stand-ins the run started.
pub fn standin_log(line: &str) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standins.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The result of running one of our binaries.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A hermetic place to run a binary: a temp dir with its own `GITHUB_OUTPUT`, `GITHUB_ENV`,
/// `GITHUB_PATH`, `GITHUB_STEP_SUMMARY`, `HOME`, and an environment that starts EMPTY (so no
/// ambient `GITHUB_*`, `RUNNER_*`, `ACTIONS_*` or `AWS_*` variable of the developer's machine or
/// of a real GitHub runner can leak in).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
}

impl Sandbox {
    /// A sandbox that looks like a GitHub Actions step.
    pub fn actions() -> Sandbox {
        let mut s = Sandbox::plain();
        let d = s.dir.path().to_path_buf();
        for (k, f) in [
            ("GITHUB_OUTPUT", "github_output"),
            ("GITHUB_ENV", "github_env"),
            ("GITHUB_PATH", "github_path"),
            ("GITHUB_STEP_SUMMARY", "github_step_summary"),
        ] {
            let p = d.join(f);
            std::fs::write(&p, "").unwrap();
            s.env.insert(k.into(), p.display().to_string());
        }
        s.env.insert("GITHUB_ACTIONS".into(), "true".into());
        s.env.insert("CI".into(), "true".into());
        s
    }

    /// A sandbox outside Actions (a developer's terminal).
    pub fn plain() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        env.insert("HOME".into(), home.display().to_string());
        env.insert("TMPDIR".into(), dir.path().display().to_string());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
        env.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
        // AWS SDK: never read the developer's ~/.aws or the instance metadata service.
        env.insert(
            "AWS_CONFIG_FILE".into(),
            dir.path().join("aws-config").display().to_string(),
        );
        env.insert(
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            dir.path().join("aws-credentials").display().to_string(),
        );
        env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        Sandbox { dir, env }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn set(&mut self, k: &str, v: impl AsRef<str>) -> &mut Self {
        self.env.insert(k.to_string(), v.as_ref().to_string());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self
    }

    /// A command for one of our binaries with exactly this sandbox's environment.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env_clear()
            .envs(&self.env)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// Run one of our binaries with arguments.
    pub fn run(&self, name: &str, args: &[&str]) -> Run {
        Run::from(self.cmd(name).args(args).output().unwrap())
    }

    /// Run a prepared command.
    pub fn run_cmd(&self, mut c: Command) -> Run {
        Run::from(c.output().unwrap())
    }

    fn file(&self, var: &str) -> String {
        self.env
            .get(var)
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Parsed `$GITHUB_OUTPUT`.
    pub fn outputs(&self) -> BTreeMap<String, String> {
        parse_command_file(&self.file("GITHUB_OUTPUT"))
            .into_iter()
            .collect()
    }

    /// Parsed `$GITHUB_ENV`.
    pub fn exported(&self) -> BTreeMap<String, String> {
        parse_command_file(&self.file("GITHUB_ENV"))
            .into_iter()
            .collect()
    }

    /// `$GITHUB_STEP_SUMMARY` contents.
    pub fn summary(&self) -> String {
        self.file("GITHUB_STEP_SUMMARY")
    }

    /// `$GITHUB_PATH` contents.
    pub fn github_path(&self) -> String {
        self.file("GITHUB_PATH")
    }

    /// Scan stdout, stderr and every `GITHUB_*` file for each secret in its raw, base64,
    /// URL-encoded and JSON-escaped forms. `::add-mask::` lines are the one allowed place.
    /// `allow_in_env` lists secrets that are meant to be exported to `GITHUB_ENV`
    /// (credentials for later steps).
    #[track_caller]
    pub fn assert_no_leak(&self, run: &Run, secrets: &[&str], allow_in_env: &[&str]) {
        let strip_masks = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut channels = vec![
            ("stdout", strip_masks(&run.stdout)),
            ("stderr", strip_masks(&run.stderr)),
        ];
        for v in [
            "GITHUB_OUTPUT",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_PATH",
            "GITHUB_ENV",
        ] {
            channels.push((v, self.file(v)));
        }
        for secret in secrets {
            for form in secret_forms(secret) {
                if form.len() < 6 {
                    continue;
                }
                for (name, text) in &channels {
                    if *name == "GITHUB_ENV" && allow_in_env.contains(secret) {
                        continue;
                    }
                    assert!(
                        !text.contains(&form),
                        "secret leaked into {name} (form {form:?})"
                    );
                }
            }
        }
    }
}

impl Sandbox {
    /// No piece of `window` characters of any secret on any channel (stdout and stderr without
    /// `::add-mask::` lines, every `GITHUB_*` file): what a display cut leaves of a secret is
    /// caught too.
    pub fn assert_no_piece_leaks(&self, run: &Run, secrets: &[&str], window: usize) {
        let mut channels = vec![
            ("stdout", run.stdout.clone()),
            ("stderr", run.stderr.clone()),
        ];
        for v in [
            "GITHUB_OUTPUT",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_PATH",
            "GITHUB_ENV",
        ] {
            channels.push((v, self.file(v)));
        }
        for (name, text) in &channels {
            let text: String = text
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .collect::<Vec<_>>()
                .join("\n");
            for s in secrets {
                let b = s.as_bytes();
                for w in b.windows(window.min(b.len())) {
                    let piece = String::from_utf8_lossy(w);
                    assert!(
                        !text.contains(piece.as_ref()),
                        "a piece of a secret ({piece:?}) leaked into {name}:\n{text}"
                    );
                }
            }
        }
    }
}

/// Write into `checkout` a model (`.github/gitops.yml`) whose `staging` is frozen from 2000
/// to 2100 (UTC): every run today is inside the freeze, whatever the clock says.
pub fn write_frozen_staging_model(checkout: &Path) {
    std::fs::create_dir_all(checkout.join(".github")).unwrap();
    std::fs::write(
        checkout.join(".github/gitops.yml"),
        "environments:\n  - name: dev\n    branch: dev\n  - name: staging\n    branch: main\n    windows:\n      time-zone: UTC\n      allow: [\"Mon-Sun 00:00-24:00\"]\n      freeze:\n        - { from: \"2000-01-01T00:00\", to: \"2100-01-01T00:00\", reason: \"century freeze\" }\n  - name: prod\n    branch: prod\n    production: true\n",
    )
    .unwrap();
}

/// The forms a secret can take when it leaks.
pub fn secret_forms(s: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(s);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let url: String =
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let json = serde_json::to_string(s).unwrap();
    let json = json.trim_matches('"').to_string();
    let mut v = vec![
        s.to_string(),
        b64.trim_end_matches('=').to_string(),
        b64url,
        url,
        json,
    ];
    v.sort();
    v.dedup();
    v
}

/// Parse a GITHUB_OUTPUT/GITHUB_ENV file (heredoc and k=v records).
pub fn parse_command_file(text: &str) -> Vec<(String, String)> {
    gitops_actions::runner::parse_command_file(text).expect("well-formed command file")
}
