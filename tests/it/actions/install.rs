//! `scripts/install.sh` against a local release server (a tiny HTTP server in this process, on a
//! free 127.0.0.1 port): the verified install, the tool cache, and every way it must fail closed
//! (F19) — with nothing written to GITHUB_PATH or GITHUB_OUTPUT and nothing left in the cache.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::actions::write_exec;
use crate::support::{root, Run, Sandbox};

const VERSION: &str = "v0.1.0";
const REPO: &str = "acme/gitops-actions";
const X64: &str = "x86_64-unknown-linux-musl";
const ARM64: &str = "aarch64-unknown-linux-musl";

/// A release-asset server: serves `files` by path, answers 500 to the first `fail_first`
/// requests (or to every request while `always_fail`), and records every request path.
pub struct ReleaseServer {
    pub port: u16,
    pub files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub fail_first: Arc<AtomicUsize>,
    pub always_fail: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl ReleaseServer {
    pub fn start() -> ReleaseServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = ReleaseServer {
            port,
            files: Arc::default(),
            requests: Arc::default(),
            fail_first: Arc::default(),
            always_fail: Arc::default(),
            stop: Arc::default(),
        };
        let (files, requests, fail_first, always_fail, stop) = (
            s.files.clone(),
            s.requests.clone(),
            s.fail_first.clone(),
            s.always_fail.clone(),
            s.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                requests.lock().unwrap().push(path.clone());
                let fail = always_fail.load(Ordering::SeqCst)
                    || fail_first
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                let (status, body) = if fail {
                    ("500 Internal Server Error", b"boom".to_vec())
                } else if let Some(b) = files.lock().unwrap().get(&path) {
                    ("200 OK", b.clone())
                } else {
                    ("404 Not Found", b"not found".to_vec())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            }
        });
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn serve(&self, asset: &str, body: Vec<u8>) {
        self.files
            .lock()
            .unwrap()
            .insert(format!("/{REPO}/releases/download/{VERSION}/{asset}"), body);
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A stand-in "binary" for one target: a script that answers `--version` like clap does.
fn fake_binary(name: &str, target: &str, version: &str) -> Vec<u8> {
    format!("#!/bin/sh\n# {target}\necho \"{name} {version}\"\n").into_bytes()
}

/// A released action tree (install.sh + dist/ stamped files) and a server with its assets.
struct Release {
    sb: Sandbox,
    tree: PathBuf,
    server: ReleaseServer,
    /// asset name -> gz bytes, for both targets.
    assets: BTreeMap<String, Vec<u8>>,
}

impl Release {
    fn new() -> Release {
        let mut sb = Sandbox::actions();
        let tree = sb.path().join("action-tree");
        std::fs::create_dir_all(tree.join("scripts")).unwrap();
        std::fs::create_dir_all(tree.join("dist")).unwrap();
        std::fs::copy(
            root().join("scripts/install.sh"),
            tree.join("scripts/install.sh"),
        )
        .unwrap();
        std::fs::write(tree.join("dist/version"), format!("{VERSION}\n")).unwrap();
        std::fs::write(tree.join("dist/repository"), format!("{REPO}\n")).unwrap();
        let server = ReleaseServer::start();
        let mut assets = BTreeMap::new();
        let mut sums = String::new();
        for target in [X64, ARM64] {
            for b in [
                "oidc-login",
                "plan-gate",
                "ecr-push",
                "promote",
                "tag-deploy",
                "stacks",
            ] {
                let raw = fake_binary(b, target, VERSION.trim_start_matches('v'));
                let gz = gzip(&raw);
                sums.push_str(&format!("{}  {b}-{target}\n", sha256_hex(&raw)));
                sums.push_str(&format!("{}  {b}-{target}.gz\n", sha256_hex(&gz)));
                server.serve(&format!("{b}-{target}.gz"), gz.clone());
                assets.insert(format!("{b}-{target}.gz"), gz);
            }
        }
        std::fs::write(tree.join("dist/checksums.txt"), sums).unwrap();
        let cache = sb.path().join("toolcache");
        let temp = sb.path().display().to_string();
        sb.set("RUNNER_TOOL_CACHE", cache.display().to_string())
            .set("RUNNER_TEMP", temp)
            .set("RUNNER_OS", "Linux")
            .set("RUNNER_ARCH", "X64")
            .set("GITHUB_SERVER_URL", server.url())
            .set("GITOPS_ACTIONS_BINARIES", "oidc-login plan-gate")
            .set("GITOPS_ACTIONS_ADD_TO_PATH", "true");
        Release {
            sb,
            tree,
            server,
            assets,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.sb
            .path()
            .join("toolcache/gitops-actions")
            .join(VERSION)
            .join(X64)
    }

    fn install(&self) -> Run {
        let mut c = Command::new("bash");
        c.arg(self.tree.join("scripts/install.sh"))
            .env_clear()
            .envs(&self.sb.env)
            .current_dir(self.sb.path());
        self.sb.run_cmd(c)
    }

    fn edit_checksums(&self, f: impl Fn(&str) -> String) {
        let p = self.tree.join("dist/checksums.txt");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, f(&t)).unwrap();
    }

    /// Refusal: exit 1, the message, nothing published, no binary in the cache.
    #[track_caller]
    fn assert_refused(&self, run: &Run, message: &str) {
        run.expect_code(1);
        assert!(
            run.stdout
                .contains("::error title=gitops-actions install::"),
            "{}",
            run.all()
        );
        assert!(
            run.all().contains(message),
            "expected {message:?} in\n{}",
            run.all()
        );
        assert_eq!(self.sb.github_path(), "", "nothing may be put on PATH");
        assert!(self.sb.outputs().is_empty(), "no outputs on failure");
        for b in ["oidc-login", "plan-gate"] {
            assert!(
                !self.cache_dir().join(b).exists(),
                "unverified {b} left in the cache"
            );
        }
        assert_no_partial(&self.sb.path().join("toolcache/gitops-actions"));
        assert!(
            fresh_bin_dirs(self.sb.path()).is_empty(),
            "a refused install left its bin dir behind"
        );
    }

    /// Empty GITHUB_OUTPUT and GITHUB_PATH, as for the next job.
    fn clear_published(&self) {
        for k in ["GITHUB_OUTPUT", "GITHUB_PATH"] {
            std::fs::write(&self.sb.env[k], "").unwrap();
        }
    }

    /// Refusal of a tampered tool cache: exit 1, the message, nothing published, no new bin
    /// dir left, and nothing downloaded (`before`: requests and bin dirs before the run).
    #[track_caller]
    fn assert_cache_refused(&self, run: &Run, before: (usize, usize)) {
        run.expect_code(1);
        assert!(
            run.stdout
                .contains("::error title=gitops-actions install::the ")
                && run
                    .stdout
                    .contains("refusing (it may have been tampered with"),
            "{}",
            run.all()
        );
        assert_eq!(self.sb.github_path(), "", "nothing may be put on PATH");
        assert!(self.sb.outputs().is_empty(), "no outputs on failure");
        assert_eq!(
            fresh_bin_dirs(self.sb.path()).len(),
            before.1,
            "a bin dir left behind"
        );
        assert_eq!(self.server.request_count(), before.0, "nothing downloaded");
    }
}

/// The per-run bin dirs install.sh created under RUNNER_TEMP (the sandbox).
fn fresh_bin_dirs(temp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(temp)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("gitops-actions-bin.")
        })
        .map(|e| e.path().canonicalize().unwrap())
        .collect()
}

/// The names in a directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_no_partial(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            assert!(
                !e.file_name().to_string_lossy().starts_with(".partial"),
                "temporary download dir left behind: {}",
                e.path().display()
            );
        }
    }
}

#[test]
fn actions_install_verifies_caches_and_reverifies_the_cache() {
    let r = Release::new();
    let run = r.install();
    run.expect_code(0);
    let cache = r.cache_dir().canonicalize().unwrap();
    let outputs = r.sb.outputs();
    assert_eq!(outputs.get("version").map(String::as_str), Some(VERSION));
    // The published directory is a fresh one under RUNNER_TEMP, never the tool cache, and it
    // holds exactly the requested binaries.
    let bin = PathBuf::from(outputs.get("bin-dir").expect("bin-dir output"));
    assert_ne!(bin, cache, "the tool cache must never be published");
    assert_eq!(fresh_bin_dirs(r.sb.path()), std::slice::from_ref(&bin));
    assert_eq!(names_in(&bin), ["oidc-login", "plan-gate"]);
    assert_eq!(r.sb.github_path().trim(), bin.display().to_string());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the bin dir is its owner's alone");
    let mode = std::fs::metadata(bin.join("plan-gate"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o555, "the binaries are read-only");
    let out = Command::new(bin.join("oidc-login"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "oidc-login 0.1.0"
    );
    assert_eq!(
        names_in(&cache),
        ["oidc-login", "plan-gate"],
        "only the requested binaries are cached"
    );
    let mut reqs = r.server.requests.lock().unwrap().clone();
    reqs.sort();
    assert_eq!(
        reqs,
        [
            format!("/{REPO}/releases/download/{VERSION}/oidc-login-{X64}.gz"),
            format!("/{REPO}/releases/download/{VERSION}/plan-gate-{X64}.gz"),
        ]
    );

    // Second run: served from the tool cache, nothing downloaded, into another fresh dir.
    let before = r.server.request_count();
    let run = r.install();
    run.expect_code(0);
    assert!(
        run.stdout.contains("verified from the tool cache"),
        "{}",
        run.all()
    );
    assert_eq!(
        r.server.request_count(),
        before,
        "second run downloaded something"
    );
    let dirs = fresh_bin_dirs(r.sb.path());
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for d in &dirs {
        assert_eq!(names_in(d), ["oidc-login", "plan-gate"]);
    }

    // A cached binary altered on disk (a shared self-hosted runner) is not trusted: refused,
    // nothing published, nothing downloaded over it.
    std::fs::write(cache.join("plan-gate"), "#!/bin/sh\necho pwned\n").unwrap();
    r.clear_published();
    let run = r.install();
    r.assert_cache_refused(&run, (before, 2));
    assert!(
        run.stdout.contains("the cached plan-gate in"),
        "{}",
        run.all()
    );
    assert_no_partial(&r.sb.path().join("toolcache/gitops-actions"));
}

// Item 11: a file planted in the tool cache beside our verified binaries (a fake `git` that would
// shadow the real one, with the push token, for every later step) never reaches PATH: the install
// refuses, says why, and publishes nothing. Before the fix the cache itself went on PATH.
#[test]
fn actions_install_refuses_a_tool_cache_with_planted_files() {
    for planted in ["git", "terraform", ".hidden", "plan-gate.bak"] {
        let r = Release::new();
        r.install().expect_code(0);
        let before = (r.server.request_count(), 1);
        let cache = r.cache_dir();
        write_exec(&cache.join(planted), "#!/bin/sh\necho stolen >&2\nexit 0\n");
        r.clear_published();
        let run = r.install();
        r.assert_cache_refused(&run, before);
        assert!(
            run.stdout
                .contains("holds a file that is not one of our binaries"),
            "{planted}: {}",
            run.all()
        );
        assert!(
            !run.all().contains("stolen"),
            "the planted file must not run"
        );
    }

    // A directory or a link under a binary's name is refused too.
    let r = Release::new();
    r.install().expect_code(0);
    let before = (r.server.request_count(), 1);
    let cache = r.cache_dir();
    std::fs::remove_file(cache.join("plan-gate")).unwrap();
    std::os::unix::fs::symlink("/bin/true", cache.join("plan-gate")).unwrap();
    r.clear_published();
    let run = r.install();
    r.assert_cache_refused(&run, before);
}

// Local (and source-built) binaries are published the same way: copies in a fresh directory that
// holds nothing else, so a `git` beside them in the build directory never reaches PATH.
#[test]
fn actions_install_publishes_only_the_binaries_from_a_local_dir() {
    let mut r = Release::new();
    let local = r.sb.path().join("local-bin");
    std::fs::create_dir_all(&local).unwrap();
    for b in ["oidc-login", "plan-gate"] {
        write_exec(
            &local.join(b),
            std::str::from_utf8(&fake_binary(b, X64, "0.0.0")).unwrap(),
        );
    }
    write_exec(&local.join("git"), "#!/bin/sh\necho stolen\n");
    r.sb.set("GITOPS_ACTIONS_LOCAL_BIN_DIR", local.display().to_string());
    let run = r.install();
    run.expect_code(0);
    let bin = PathBuf::from(&r.sb.outputs()["bin-dir"]);
    assert_ne!(bin, local.canonicalize().unwrap());
    assert_eq!(names_in(&bin), ["oidc-login", "plan-gate"]);
    assert_eq!(r.sb.github_path().trim(), bin.display().to_string());
}

#[test]
fn actions_install_refuses_a_corrupted_asset() {
    let r = Release::new();
    let mut bad = r.assets[&format!("plan-gate-{X64}.gz")].clone();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    r.server.serve(&format!("plan-gate-{X64}.gz"), bad);
    let run = r.install();
    r.assert_refused(&run, &format!("checksum mismatch for plan-gate-{X64}.gz"));
}

#[test]
fn actions_install_refuses_without_a_checksum_entry_before_downloading() {
    let r = Release::new();
    r.edit_checksums(|t| {
        t.lines()
            .filter(|l| !l.ends_with(&format!("plan-gate-{X64}.gz")))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let run = r.install();
    r.assert_refused(&run, &format!("no valid entry for plan-gate-{X64}.gz"));
    assert_eq!(r.server.request_count(), 0, "nothing downloaded");

    // A duplicated (ambiguous) entry is refused the same way.
    let r = Release::new();
    r.edit_checksums(|t| format!("{t}{}  oidc-login-{X64}.gz\n", "0".repeat(64)));
    let run = r.install();
    r.assert_refused(&run, &format!("no valid entry for oidc-login-{X64}.gz"));

    // No checksum file at all at this ref.
    let r = Release::new();
    std::fs::remove_file(r.tree.join("dist/checksums.txt")).unwrap();
    let run = r.install();
    r.assert_refused(&run, "dist/checksums.txt is missing");
    assert_eq!(r.server.request_count(), 0);
}

#[test]
fn actions_install_refuses_the_wrong_architecture() {
    // The other architecture's asset served under this one's name.
    let r = Release::new();
    r.server.serve(
        &format!("oidc-login-{X64}.gz"),
        r.assets[&format!("oidc-login-{ARM64}.gz")].clone(),
    );
    let run = r.install();
    r.assert_refused(&run, &format!("checksum mismatch for oidc-login-{X64}.gz"));

    // A runner architecture we do not build for: refused before any request.
    let mut r = Release::new();
    r.sb.set("RUNNER_ARCH", "ARM");
    let run = r.install();
    r.assert_refused(&run, "unsupported runner architecture");
    let mut r2 = Release::new();
    r2.sb.set("RUNNER_OS", "Windows");
    let run = r2.install();
    r2.assert_refused(&run, "unsupported runner OS");
    assert_eq!(r.server.request_count() + r2.server.request_count(), 0);

    // arm64 runners get the arm64 asset.
    let mut r = Release::new();
    r.sb.set("RUNNER_ARCH", "ARM64");
    r.install().expect_code(0);
    assert!(r
        .server
        .requests
        .lock()
        .unwrap()
        .iter()
        .all(|p| p.contains(ARM64)));
}

#[test]
fn actions_install_retries_server_errors_then_fails_closed() {
    // Transient: one 500, then success.
    let mut r = Release::new();
    r.sb.set("GITOPS_ACTIONS_BINARIES", "promote");
    r.server.fail_first.store(1, Ordering::SeqCst);
    let run = r.install();
    run.expect_code(0);
    assert!(run.stdout.contains("attempt 1 of 4"), "{}", run.all());
    assert_eq!(r.server.request_count(), 2);

    // Persistent: bounded attempts, then refused.
    let mut r = Release::new();
    r.sb.set("GITOPS_ACTIONS_DOWNLOAD_ATTEMPTS", "2");
    r.server.always_fail.store(true, Ordering::SeqCst);
    let run = r.install();
    r.assert_refused(&run, "after 2 attempts");
    assert_eq!(r.server.request_count(), 2);

    // A missing asset (404) is a failure too.
    let mut r = Release::new();
    r.sb.set("GITOPS_ACTIONS_DOWNLOAD_ATTEMPTS", "1");
    r.server.files.lock().unwrap().clear();
    let run = r.install();
    r.assert_refused(&run, "could not download");
}

#[test]
fn actions_install_refuses_bad_stamps_and_plain_http_servers() {
    let r = Release::new();
    std::fs::write(r.tree.join("dist/version"), "main\n").unwrap();
    r.assert_refused(&r.install(), "dist/version is not a release tag");

    let r = Release::new();
    std::fs::write(r.tree.join("dist/repository"), "acme/x/../y\n").unwrap();
    r.assert_refused(&r.install(), "dist/repository is not owner/name");

    let mut r = Release::new();
    r.sb.set("GITHUB_SERVER_URL", "http://github.example.com");
    r.assert_refused(&r.install(), "GITHUB_SERVER_URL must be https");

    let mut r = Release::new();
    r.sb.set("GITOPS_ACTIONS_BINARIES", "oidc-login ../../evil");
    r.assert_refused(&r.install(), "unknown binary");
    assert_eq!(r.server.request_count(), 0);

    // A binary that passes its checksums but reports another version (a release built from
    // the wrong commit) is refused too.
    let r = Release::new();
    let raw = fake_binary("oidc-login", X64, "9.9.9");
    let gz = gzip(&raw);
    r.edit_checksums(|t| {
        t.lines()
            .map(|l| {
                if l.ends_with(&format!("  oidc-login-{X64}")) {
                    format!("{}  oidc-login-{X64}\n", sha256_hex(&raw))
                } else if l.ends_with(&format!("  oidc-login-{X64}.gz")) {
                    format!("{}  oidc-login-{X64}.gz\n", sha256_hex(&gz))
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    });
    r.server.serve(&format!("oidc-login-{X64}.gz"), gz);
    r.assert_refused(&r.install(), "--version does not report 0.1.0");
}

#[test]
fn actions_install_uses_local_binaries_only_when_asked_and_says_so() {
    let mut r = Release::new();
    let local = r.sb.path().join("local-bin");
    std::fs::create_dir_all(&local).unwrap();
    r.sb.set("GITOPS_ACTIONS_LOCAL_BIN_DIR", local.display().to_string());
    // Missing binary in the local dir: refused.
    r.assert_refused(&r.install(), "has no executable oidc-login");
    for b in ["oidc-login", "plan-gate"] {
        let p = local.join(b);
        std::fs::write(&p, fake_binary(b, X64, "0.0.0")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = r.install();
    run.expect_code(0);
    assert!(run
        .stdout
        .contains("::warning title=gitops-actions install::using local, UNVERIFIED"));
    assert_eq!(
        r.sb.outputs().get("version").map(String::as_str),
        Some("local")
    );
    assert_eq!(r.server.request_count(), 0);
}
