//! An HTTP/1.1 proxy in front of a real registry that records every request and injects faults
//! on chosen requests: a canned status (429 with `Retry-After`, 503), a connection reset in the
//! middle of an upload body, or a rewritten `Location` header (redirect tests). It also counts
//! the request body bytes it relays (what a client really sent) and keeps each request's query
//! (cross-repository mounts are `POST .../blobs/uploads/?mount=...&from=...`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, headers and body without forwarding.
    Status(u16, Vec<(String, String)>, String),
    /// Read part of the request body, then drop the connection (reset).
    Reset,
    /// Forward, then replace the response's `Location` header.
    Location(String),
}

struct Rule {
    method: String,
    path_contains: String,
    times: usize,
    fault: Fault,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Request body bytes read from the client.
    pub body_bytes: usize,
}

pub struct FaultProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> FaultProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, seen2, rules2, stop2) = (log.clone(), seen.clone(), rules.clone(), stop.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (log, seen, rules) = (log2.clone(), seen2.clone(), rules2.clone());
                std::thread::spawn(move || {
                    let _ = serve(c, upstream, &log, &seen, &rules);
                });
            }
        });
        super::standin_log("started faultproxy");
        FaultProxy {
            port,
            log,
            seen,
            rules,
            stop,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Inject `fault` on the next `times` requests whose method is `method` and whose path (with
    /// its query) contains `path_contains`.
    pub fn add(&self, method: &str, path_contains: &str, times: usize, fault: Fault) {
        self.rules.lock().unwrap().push(Rule {
            method: method.into(),
            path_contains: path_contains.into(),
            times,
            fault,
        });
    }

    /// Drop every fault rule not used up yet.
    pub fn reset_rules(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Every request seen, as `METHOD /path` (no query).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")) && r.contains(path_contains))
            .count()
    }

    /// Every request seen, with its query and body size.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Request body bytes relayed for requests whose method is `method`.
    pub fn body_bytes(&self, method: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method)
            .map(|s| s.body_bytes)
            .sum()
    }

    /// Cross-repository mount requests (`POST ...?mount=...`).
    pub fn mounts(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "POST" && s.target.contains("mount="))
            .collect()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
        self.seen.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        super::standin_log("stopped faultproxy");
    }
}

struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

type Head = (String, Vec<(String, String)>);

pub(super) fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn read_body(
    r: &mut impl BufRead,
    h: &[(String, String)],
    until_eof: bool,
) -> std::io::Result<Vec<u8>> {
    if let Some(n) = header(h, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut b = vec![0; n];
        r.read_exact(&mut b)?;
        return Ok(b);
    }
    if header(h, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l)?;
            let n =
                usize::from_str_radix(l.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                return Ok(out);
            }
            let mut b = vec![0; n];
            r.read_exact(&mut b)?;
            out.extend(b);
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    }
    let mut out = Vec::new();
    if until_eof {
        r.read_to_end(&mut out)?;
    }
    Ok(out)
}

fn serve(
    c: TcpStream,
    upstream: u16,
    log: &Mutex<Vec<String>>,
    seen: &Mutex<Vec<Seen>>,
    rules: &Mutex<Vec<Rule>>,
) -> std::io::Result<()> {
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    loop {
        let Some((line, headers)) = read_head(&mut r)? else {
            return Ok(());
        };
        let mut parts = line.split(' ');
        let req = Req {
            method: parts.next().unwrap_or("").to_string(),
            target: parts.next().unwrap_or("").to_string(),
            headers,
        };
        let path = req.target.split('?').next().unwrap_or("").to_string();
        log.lock().unwrap().push(format!("{} {}", req.method, path));
        let fault = {
            let mut rs = rules.lock().unwrap();
            let hit = rs.iter_mut().find(|x| {
                x.times > 0 && x.method == req.method && req.target.contains(&x.path_contains)
            });
            hit.map(|x| {
                x.times -= 1;
                x.fault.clone()
            })
        };
        if let Some(Fault::Reset) = fault {
            // Read a little of the body, then drop the socket with data unread: the peer sees a reset.
            let mut some = vec![0u8; 1024];
            let _ = r.read(&mut some);
            return Ok(());
        }
        let body = read_body(&mut r, &req.headers, false)?;
        seen.lock().unwrap().push(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            body_bytes: body.len(),
        });
        if let Some(Fault::Status(code, hs, b)) = &fault {
            let mut out = format!("HTTP/1.1 {code} Fault\r\nContent-Length: {}\r\n", b.len());
            for (k, v) in hs {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            w.write_all(out.as_bytes())?;
            w.write_all(b.as_bytes())?;
            continue;
        }
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
        for (k, v) in &req.headers {
            if k.eq_ignore_ascii_case("connection") {
                continue;
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        up.write_all(head.as_bytes())?;
        up.write_all(&body)?;
        let mut ur = BufReader::new(up);
        let Some((status, mut rh)) = read_head(&mut ur)? else {
            return Ok(());
        };
        let code: u16 = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(502);
        let no_body = req.method == "HEAD" || code == 204 || code == 304;
        let rbody = if no_body {
            Vec::new()
        } else {
            read_body(&mut ur, &rh, true)?
        };
        if let Some(Fault::Location(l)) = &fault {
            rh.retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
            rh.push(("Location".into(), l.clone()));
        }
        let mut out = format!("{status}\r\n");
        for (k, v) in &rh {
            if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            if !no_body && k.eq_ignore_ascii_case("content-length") {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !no_body {
            out.push_str(&format!("Content-Length: {}\r\n", rbody.len()));
        }
        out.push_str("\r\n");
        w.write_all(out.as_bytes())?;
        w.write_all(&rbody)?;
    }
}
