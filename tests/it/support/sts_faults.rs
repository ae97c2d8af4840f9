//! A fault-injecting HTTP/1.1 proxy in front of moto's STS (faults F1–F5 of hardening.md).
//!
//! Each incoming request takes the next entry of a script: forward it to moto, answer with a
//! canned STS error (throttling, IDPCommunicationError, ExpiredTokenException, AccessDenied, 5xx)
//! or blackhole it (accept, read, never answer). When the script is empty every request is
//! forwarded (or answered 500 when there is no upstream). Every request is recorded (the STS
//! `Action` and the form body), so tests can count calls and compare the tokens that were sent.
//! Connections are closed after each response, which keeps the forwarding trivial.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What to do with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Pass it to moto unchanged.
    Forward,
    /// Answer with this status and body (an STS error document).
    Respond { status: u16, body: String },
    /// Accept, read, never answer (until the proxy stops).
    Blackhole,
    /// A misconfigured endpoint that echoes what it was sent: a `ValidationError` whose message
    /// is `pad` filler characters, then the request's `X-Amz-Security-Token` header and
    /// `WebIdentityToken` field -- so that a display cut falls inside the secret.
    Echo { pad: usize },
}

fn sts_error(status: u16, kind: &str, code: &str, message: &str) -> Fault {
    Fault::Respond {
        status,
        body: format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type>\
             <Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-fault</RequestId></ErrorResponse>"
        ),
    }
}

/// F2: throttling.
pub fn throttling() -> Fault {
    sts_error(400, "Sender", "Throttling", "Rate exceeded")
}
/// F1: STS could not reach the IdP's keys.
pub fn idp_communication_error() -> Fault {
    sts_error(
        400,
        "Sender",
        "IDPCommunicationError",
        "Couldn't retrieve verification key from your identity provider",
    )
}
/// F3: the token expired.
pub fn expired_token() -> Fault {
    sts_error(
        400,
        "Sender",
        "ExpiredTokenException",
        "Token expired: current date/time 1 must be before the expiration date/time 0",
    )
}
/// F3 variant: invalid identity token.
pub fn invalid_identity_token() -> Fault {
    sts_error(
        400,
        "Sender",
        "InvalidIdentityToken",
        "Incorrect token audience",
    )
}
/// F4: trust policy refusal.
pub fn access_denied() -> Fault {
    sts_error(
        403,
        "Sender",
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )
}
/// F5: fresh credentials not yet known everywhere.
pub fn invalid_client_token_id() -> Fault {
    sts_error(
        403,
        "Sender",
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
}
/// F2: a 5xx with a non-XML body.
pub fn server_error(status: u16) -> Fault {
    Fault::Respond {
        status,
        body: "<html>upstream unavailable</html>".into(),
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The STS `Action` form field.
    pub action: String,
    /// The decoded form fields.
    pub form: Vec<(String, String)>,
    /// The access key id the request was signed with (SigV4 `Credential=<id>/...`), if signed.
    pub signed_by: Option<String>,
}

impl Seen {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    script: Mutex<VecDeque<Fault>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    upstream: Option<u16>,
}

pub struct StsFaults {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StsFaults {
    /// Start on a free loopback port; `upstream` is moto's port (None: answer 500 once the script is done).
    pub fn start(upstream: Option<u16>, script: Vec<Fault>) -> StsFaults {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            upstream,
        });
        let s2 = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s3 = s2.clone();
                std::thread::spawn(move || handle(conn, &s3));
            }
        });
        super::standin_log(&format!("started sts-faults proxy on 127.0.0.1:{port}"));
        StsFaults {
            port,
            shared,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests for one STS action.
    pub fn count(&self, action: &str) -> usize {
        self.requests()
            .iter()
            .filter(|s| s.action == action)
            .count()
    }
}

impl Drop for StsFaults {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        super::standin_log(&format!(
            "stopped sts-faults proxy on 127.0.0.1:{}",
            self.port
        ));
    }
}

/// Read one HTTP/1.1 request: (head, body).
fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((head, body))
}

fn handle(mut conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, body)) = read_request(&mut conn) else {
        return;
    };
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let action = form
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let signed_by = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let cred = v.split("Credential=").nth(1)?;
        cred.split('/').next().map(str::to_string)
    });
    shared.seen.lock().unwrap().push(Seen {
        action,
        form: form.clone(),
        signed_by,
    });
    let fault = shared.script.lock().unwrap().pop_front();
    let fault = fault.unwrap_or(if shared.upstream.is_some() {
        Fault::Forward
    } else {
        server_error(500)
    });
    let fault = match fault {
        Fault::Echo { pad } => {
            let header = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-amz-security-token")
                    .then(|| v.trim().to_string())
            });
            let field = form
                .iter()
                .find(|(k, _)| k == "WebIdentityToken")
                .map(|(_, v)| v.clone());
            let mut msg = format!("{} you sent:", "x".repeat(pad));
            if let Some(h) = header {
                msg.push_str(&format!(" X-Amz-Security-Token: {h}"));
            }
            if let Some(f) = field {
                msg.push_str(&format!(" WebIdentityToken={f}"));
            }
            sts_error(400, "Sender", "ValidationError", &msg)
        }
        f => f,
    };
    match fault {
        Fault::Echo { .. } => unreachable!("answered above"),
        Fault::Blackhole => {
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Fault::Respond { status, body } => {
            let resp = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
            let _ = conn.shutdown(Shutdown::Write);
        }
        Fault::Forward => {
            let Some(port) = shared.upstream else { return };
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            // Rewrite the connection header so the upstream closes after answering.
            let mut new_head = String::new();
            for (i, line) in head.split("\r\n").enumerate() {
                if line.is_empty() {
                    continue;
                }
                if i > 0 {
                    if let Some((k, _)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("connection") {
                            continue;
                        }
                    }
                }
                new_head.push_str(line);
                new_head.push_str("\r\n");
            }
            new_head.push_str("Connection: close\r\n\r\n");
            let _ = up.write_all(new_head.as_bytes());
            let _ = up.write_all(&body);
            let mut resp = Vec::new();
            let _ = up.read_to_end(&mut resp);
            let _ = conn.write_all(&resp);
            let _ = conn.shutdown(Shutdown::Write);
        }
    }
}
