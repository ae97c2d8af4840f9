//! A forward HTTP proxy on loopback that counts what it relays: plain requests in absolute form
//! (`POST http://127.0.0.1:5555/ HTTP/1.1`) are sent on to that host and port, `CONNECT` opens a
//! byte tunnel. Each relayed request is logged as `METHOD host:port` (for oidc-login's
//! `http-proxy` / `HTTPS_PROXY` tests: which requests went through the proxy and which did not).

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::faultproxy::{read_body, read_head};

pub struct FwdProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl FwdProxy {
    pub fn start() -> FwdProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let log = log2.clone();
                std::thread::spawn(move || {
                    let _ = serve(c, &log);
                });
            }
        });
        super::standin_log(&format!("started forward proxy on 127.0.0.1:{port}"));
        FwdProxy { port, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every relayed request, as `METHOD host:port`.
    pub fn relayed(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// `http://host:port/path?q` -> (`host:port`, `/path?q`).
fn split_absolute(target: &str) -> Option<(String, String)> {
    let rest = target.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Some((authority, path.to_string()))
}

fn serve(c: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    let Some((line, headers)) = read_head(&mut r)? else {
        return Ok(());
    };
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    if method == "CONNECT" {
        log.lock().unwrap().push(format!("CONNECT {target}"));
        let up = TcpStream::connect(&target)?;
        w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (mut up_r, mut up_w) = (up.try_clone()?, up);
        let mut down_w = w.try_clone()?;
        let t = std::thread::spawn(move || {
            let _ = std::io::copy(&mut up_r, &mut down_w);
            let _ = down_w.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
        let _ = t.join();
        return Ok(());
    }
    let Some((authority, path)) = split_absolute(&target) else {
        w.write_all(b"HTTP/1.1 400 Not a proxy request\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    };
    log.lock().unwrap().push(format!("{method} {authority}"));
    let body = read_body(&mut r, &headers, false)?;
    let mut up = TcpStream::connect(&authority)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("proxy-connection") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&body)?;
    // The upstream closes after one answer; the client's connection closes with it.
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let answer = answer.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    w.write_all(answer.as_bytes())?;
    let _ = w.shutdown(Shutdown::Both);
    Ok(())
}
