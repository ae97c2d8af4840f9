//! The harness itself: sandboxes are hermetic, stand-ins really start on loopback and are really
//! stopped (also when a test panics).

use crate::support::{self, registry::Registry, Proc, Sandbox};
use std::process::Command;

#[test]
fn sandbox_starts_from_an_empty_environment() {
    let sb = Sandbox::actions();
    const ALLOWED: [&str; 8] = [
        "GITHUB_OUTPUT",
        "GITHUB_ENV",
        "GITHUB_PATH",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_ACTIONS",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_DISABLED",
    ];
    for k in sb.env.keys() {
        let scrubbed_family = ["RUNNER_", "ACTIONS_", "GITOPS_", "GITHUB_", "AWS_"]
            .iter()
            .any(|p| k.starts_with(p));
        assert!(
            !scrubbed_family || ALLOWED.contains(&k.as_str()),
            "ambient variable leaked into the sandbox: {k}"
        );
    }
    // The child sees exactly the sandbox environment, even if the test process has more.
    let out = Command::new("env")
        .env_clear()
        .envs(&sb.env)
        .output()
        .unwrap();
    let seen = String::from_utf8(out.stdout).unwrap();
    assert_eq!(seen.lines().count(), sb.env.len());
}

#[test]
fn moto_starts_answers_and_stops() {
    let port;
    {
        let moto = support::moto::Moto::start();
        port = moto.port;
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/moto-api/", moto.endpoint())])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto still listening after drop"
    );
}

#[test]
fn registry_with_htpasswd_requires_credentials() {
    let reg = Registry::start_with_auth("alice", "s3cret-pass");
    let url = format!("http://{}/v2/", reg.host());
    let code = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(code(&[]), "401");
    assert_eq!(code(&["-u", "alice:wrong"]), "401");
    assert_eq!(code(&["-u", "alice:s3cret-pass"]), "200");
}

#[test]
fn proc_guard_kills_the_whole_process_group_on_panic() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let pf = pidfile.clone();
    let r = std::panic::catch_unwind(move || {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(format!("sleep 300 & echo $! > {}; wait", pf.display()));
        let _p = Proc::spawn("bash with a grandchild", c);
        for _ in 0..100 {
            if pf.exists() && !std::fs::read_to_string(&pf).unwrap().trim().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("test failure while a stand-in runs");
    });
    assert!(r.is_err());
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    // Dead means gone, or a zombie waiting for a reaper that is not ours (PID 1 in a container).
    let alive = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(), "grandchild {pid} survived the guard");
}
