//! moto server (STS, ECR API, S3) on a free loopback port.

use super::{free_port, tool, wait_http, Proc};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Moto {
    pub port: u16,
    _proc: Proc,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let mut c = Command::new(tool("moto_server"));
        c.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn(&format!("moto_server on 127.0.0.1:{port}"), c);
        wait_http(port, "/moto-api/", Duration::from_secs(30));
        Moto { port, _proc: proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wipe all state.
    pub fn reset(&self) {
        let _ = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("{}/moto-api/reset", self.endpoint()),
            ])
            .output();
    }
}
