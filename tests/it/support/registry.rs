//! The CNCF distribution registry (Debian `docker-registry`) on a free loopback port, with an
//! optional htpasswd user.

use super::{free_port, tool, wait_http, Proc};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub auth: Option<(String, String)>,
    _proc: Proc,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    pub fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::start_with(Some((user.to_string(), pass.to_string())))
    }

    fn start_with(auth: Option<(String, String)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = &auth {
            let out = Command::new(tool("htpasswd"))
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut c = Command::new(tool("docker-registry"));
        c.arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn(&format!("docker-registry on 127.0.0.1:{port}"), c);
        wait_http(port, "/v2/", Duration::from_secs(20));
        Registry {
            port,
            dir,
            auth,
            _proc: proc,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
