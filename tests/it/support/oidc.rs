//! Our GitHub OIDC token endpoint stand-in (`scripts/standins/oidc-server.py`) on a free loopback
//! port: real RS256 JWTs with GitHub's claim set, a request log the tests count.

use super::{root, standins_dir, wait_http, Proc};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The bearer token the stand-in expects (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
pub const REQUEST_TOKEN: &str = "oidc-request-token-for-tests";

pub struct OidcServer {
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl OidcServer {
    /// Start with default claims (repository `octo-org/octo-repo`, ref `refs/heads/main`).
    pub fn start() -> OidcServer {
        OidcServer::start_with(&[])
    }

    /// Start with extra flags, e.g. `["--environment", "prod", "--fail-first", "1"]`.
    pub fn start_with(args: &[&str]) -> OidcServer {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let log = dir.path().join("requests.jsonl");
        std::fs::write(&log, "").unwrap();
        let py = standins_dir().join("bin").join("python");
        assert!(
            py.exists(),
            "stand-ins venv missing ({}): run ./scripts/install-standins",
            py.display()
        );
        let mut c = Command::new(py);
        c.arg(root().join("scripts/standins/oidc-server.py"))
            .args(["--port", "0", "--request-token", REQUEST_TOKEN])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn("oidc-server.py", c);
        let start = Instant::now();
        let port = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                if let Ok(p) = s.trim().parse::<u16>() {
                    break p;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "oidc-server.py did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        wait_http(
            port,
            "/.well-known/openid-configuration",
            Duration::from_secs(30),
        );
        OidcServer {
            port,
            log,
            _dir: dir,
            _proc: proc,
        }
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL` as the runner sets it (already carrying a query string).
    pub fn request_url(&self) -> String {
        format!("http://127.0.0.1:{}/token?api-version=2.0", self.port)
    }

    /// Token requests received so far (any status), with the audience each asked for.
    pub fn token_requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Number of token requests received so far.
    pub fn count(&self) -> usize {
        self.token_requests().len()
    }

    /// The JWKS document (the public signing key).
    pub fn jwks(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-sf",
                &format!("http://127.0.0.1:{}/.well-known/jwks", self.port),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "jwks fetch failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Fetch a token directly (for tests that need one outside the binary).
    pub fn fetch_token(&self, audience: &str) -> String {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-H",
                &format!("Authorization: bearer {REQUEST_TOKEN}"),
                &format!("{}&audience={audience}", self.request_url()),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "token fetch failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["value"].as_str().unwrap().to_string()
    }
}
