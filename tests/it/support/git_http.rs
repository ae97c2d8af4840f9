//! Git remotes for tests: a real smart-HTTP server with basic auth (nginx + fcgiwrap +
//! git-http-backend, `scripts/standins/git-http-server`), plain local bare repositories, and
//! helpers to seed environment branches (`dev`, `main`, `prod`) with commits.
//!
//! ```ignore
//! let srv = GitHttp::start("s3cr3t-token");
//! let bare = srv.create_repo("app");
//! let seeded = seed_env_branches(&bare, 3);
//! let url = srv.url("app");          // http://127.0.0.1:PORT/app.git, needs the token
//! let refs = ls_remote(&url, Some(srv.token()));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, root, wait_http, Proc};

/// The smart-HTTP server. Stopped (with fcgiwrap and its children) on drop.
pub struct GitHttp {
    pub port: u16,
    pub repos: tempfile::TempDir,
    token: String,
    scheme: &'static str,
    /// With TLS: the PEM file of the CA that issued the server's certificate.
    pub ca: Option<PathBuf>,
    _proc: Proc,
}

impl GitHttp {
    /// Start a server on a free 127.0.0.1 port serving a fresh, empty repos directory.
    pub fn start(token: &str) -> GitHttp {
        Self::start_with(token, false)
    }

    /// The same over https: a certificate for 127.0.0.1 issued by a CA made for this server
    /// ([`GitHttp::ca`]), which nothing trusts unless told to.
    pub fn start_tls(token: &str) -> GitHttp {
        Self::start_with(token, true)
    }

    fn start_with(token: &str, tls: bool) -> GitHttp {
        let repos = tempfile::tempdir().unwrap();
        let state = repos.path().join(".server");
        std::fs::create_dir_all(&state).unwrap();
        let port = free_port();
        let mut cmd = Command::new(root().join("scripts/standins/git-http-server"));
        let ca = tls.then(|| {
            let (ca, cert, key) = issue_localhost_cert(&state);
            cmd.env("GIT_HTTP_TLS_CERT", cert)
                .env("GIT_HTTP_TLS_KEY", key);
            ca
        });
        cmd.arg(port.to_string())
            .arg(repos.path())
            .arg(token)
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let proc = Proc::spawn("git-http-server", cmd);
        wait_http(port, "/", Duration::from_secs(10));
        GitHttp {
            port,
            repos,
            token: token.to_string(),
            scheme: if tls { "https" } else { "http" },
            ca,
            _proc: proc,
        }
    }

    /// The token the server accepts (password of user `x-access-token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `http(s)://127.0.0.1:PORT/<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!("{}://127.0.0.1:{}/{name}.git", self.scheme, self.port)
    }

    /// Create an empty bare repository `<name>.git` that accepts pushes over HTTP.
    pub fn create_repo(&self, name: &str) -> PathBuf {
        let p = self.repos.path().join(format!("{name}.git"));
        init_bare(&p);
        p
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1 it issued (openssl CLI):
/// returns (ca.pem, cert.pem, key.pem).
fn issue_localhost_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(f);
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::write(
        p("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=gitops-actions test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// `git` with a fixed identity and no user/system config.
pub fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .stdin(Stdio::null());
    c
}

/// Run git, panic with its output on failure, return stdout trimmed.
#[track_caller]
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let o = git(dir).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "git {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Create a bare repository that accepts pushes (also over HTTP).
pub fn init_bare(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git_ok(
        path,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    git_ok(path, &["config", "http.receivepack", "true"]);
    git_ok(path, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
}

/// The commits of a seeded repository.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// All commits on `dev`, oldest first (`main` and `prod` point into this list).
    pub dev: Vec<String>,
    /// Tip of `main`.
    pub main: String,
    /// Tip of `prod`.
    pub prod: String,
}

/// Seed a bare repository with a linear history of `n` (>= 3) commits: `dev` at the last,
/// `main` (staging) at the second to last, `prod` at the third to last.
pub fn seed_env_branches(bare: &Path, n: usize) -> Seeded {
    assert!(n >= 3);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git_ok(w, &["init", "--quiet", "--initial-branch=dev"]);
    let mut dev = Vec::new();
    for i in 0..n {
        std::fs::write(w.join("file.txt"), format!("change {i}\n")).unwrap();
        git_ok(w, &["add", "file.txt"]);
        git_ok(w, &["commit", "--quiet", "-m", &format!("change {i}")]);
        dev.push(git_ok(w, &["rev-parse", "HEAD"]));
    }
    let main = dev[n - 2].clone();
    let prod = dev[n - 3].clone();
    let dest = bare.display().to_string();
    git_ok(
        w,
        &[
            "push",
            "--quiet",
            &dest,
            &format!("{}:refs/heads/dev", dev[n - 1]),
            &format!("{main}:refs/heads/main"),
            &format!("{prod}:refs/heads/prod"),
        ],
    );
    Seeded { dev, main, prod }
}

/// Add `n` commits on top of `branch` in a bare repository; returns them oldest first.
pub fn add_commits(bare: &Path, branch: &str, n: usize) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let src = bare.display().to_string();
    git_ok(w, &["init", "--quiet"]);
    git_ok(
        w,
        &["fetch", "--quiet", &src, &format!("refs/heads/{branch}")],
    );
    git_ok(w, &["checkout", "--quiet", "FETCH_HEAD"]);
    let mut out = Vec::new();
    for i in 0..n {
        git_ok(
            w,
            &[
                "commit",
                "--quiet",
                "--allow-empty",
                "-m",
                &format!("more {i}"),
            ],
        );
        out.push(git_ok(w, &["rev-parse", "HEAD"]));
    }
    git_ok(
        w,
        &[
            "push",
            "--quiet",
            &src,
            &format!("HEAD:refs/heads/{branch}"),
        ],
    );
    out
}

/// Every ref of a remote (URL or path) as `git ls-remote` shows it, with the token if given.
/// The independent observer for "nothing was written" checks.
pub fn ls_remote(url: &str, token: Option<&str>) -> BTreeMap<String, String> {
    ls_remote_env(url, token, &[])
}

/// [`ls_remote`] with extra environment for git (`GIT_SSL_CAINFO` for an https server).
pub fn ls_remote_env(
    url: &str,
    token: Option<&str>,
    env: &[(&str, &Path)],
) -> BTreeMap<String, String> {
    let tmp = std::env::temp_dir();
    let mut c = git(&tmp);
    c.envs(env.iter().copied());
    if let Some(t) = token {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"));
        c.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraheader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {b64}"));
    }
    let o = c.args(["ls-remote", url]).output().unwrap();
    assert!(
        o.status.success(),
        "git ls-remote {url} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(oid, name)| (name.to_string(), oid.to_string()))
        .collect()
}
