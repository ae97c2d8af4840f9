//! git's smart HTTP protocol on our HTTP stack ([`crate::net`]): libgit2 is built without any
//! HTTPS or TLS of its own, and every `http://` / `https://` remote goes through this
//! subtransport instead — the same rustls configuration, root store, proxy settings
//! (`HTTPS_PROXY`, `NO_PROXY`, ...) and timeouts as every other connection of the binaries.
//!
//! The protocol is git's stateless one: `GET <url>/info/refs?service=git-<svc>` for the
//! advertisement, `POST <url>/git-<svc>` with the request libgit2 wrote, whose answer libgit2
//! reads back. Credentials: while a [`Scope`] is alive (the git layer opens one around each
//! network operation), requests to exactly that remote carry its basic-auth header, sent on
//! the first request (one round trip less than waiting for a 401, and libgit2 is never asked
//! to loop on rejected credentials). Redirects are not followed (a redirect is reported with
//! its target), so credentials never travel to another URL.
//!
//! Blocking: libgit2 calls us synchronously. Requests run on one small runtime of this module
//! (one worker thread, started on first use) and the calling thread waits for their results,
//! which works whether or not the caller is itself inside an async runtime.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use git2::Error;

use super::Auth;
use crate::runner::single_line;
use crate::secret::Secret;

/// Connect timeout of git's HTTP requests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the next bytes of an answer (a stalled server fails, it does not hang).
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

thread_local! {
    static CREDENTIALS: RefCell<Option<(String, Secret)>> = const { RefCell::new(None) };
}

/// While alive, git operations of this thread send `auth` to `url` (and to nothing else).
pub(super) struct Scope {
    previous: Option<(String, Secret)>,
}

/// Open a credential scope for one network operation against `url`. Registers the transport
/// on first use.
pub(super) fn scope(url: &str, auth: &Auth) -> Scope {
    register();
    let header = auth
        .basic_header()
        .and_then(|h| h.split_once(": ").map(|(_, v)| Secret::new(v.to_string())));
    let previous =
        CREDENTIALS.with(|c| c.replace(header.map(|h| (url.trim_end_matches('/').to_string(), h))));
    Scope { previous }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CREDENTIALS.with(|c| *c.borrow_mut() = previous);
    }
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["http", "https"] {
            // SAFETY: libgit2's transport registry is a global list without a lock; registering
            // must not race with the creation of a transport. This runs exactly once per
            // process (`Once`), from the start of every network operation of the git layer,
            // and `call_once` makes every other such operation wait until it has returned, so
            // no transport of ours is being created meanwhile. The factory is 'static.
            #[allow(unsafe_code)]
            let done = unsafe {
                git2::transport::register(scheme, |remote| {
                    Transport::smart(remote, true, SmartHttp)
                })
            };
            // Only fails if the scheme is registered already, which `Once` rules out.
            debug_assert!(done.is_ok(), "{done:?}");
        }
    });
}

/// The header for a request to `remote`: only the remote the current scope was opened for.
fn credentials_for(remote: &str) -> Option<Secret> {
    CREDENTIALS.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(u, _)| u == remote)
            .map(|(_, h)| h.clone())
    })
}

/// The subtransport libgit2 asks for streams.
struct SmartHttp;

impl SmartSubtransport for SmartHttp {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, Error> {
        let base = url.trim_end_matches('/');
        let (service, ls) = match action {
            Service::UploadPackLs => ("upload-pack", true),
            Service::UploadPack => ("upload-pack", false),
            Service::ReceivePackLs => ("receive-pack", true),
            Service::ReceivePack => ("receive-pack", false),
        };
        let target = if ls {
            format!("{base}/info/refs?service=git-{service}")
        } else {
            format!("{base}/git-{service}")
        };
        Ok(Box::new(Stream {
            remote: base.to_string(),
            target,
            service,
            ls,
            auth: credentials_for(base),
            body: Vec::new(),
            answer: None,
            chunk: Bytes::new(),
        }))
    }

    fn close(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// The small runtime git's requests run on, and their client.
struct Bridge {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

fn bridge() -> Result<&'static Bridge, String> {
    static B: OnceLock<Result<Bridge, String>> = OnceLock::new();
    B.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("git-http")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start git's HTTP runtime: {e}"))?;
        let client = crate::net::client_builder(CONNECT_TIMEOUT)
            .and_then(|b| {
                crate::net::build(
                    b.read_timeout(READ_TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .pool_idle_timeout(Duration::from_secs(30))
                        .user_agent(concat!(
                            "git/2.0 (gitops-actions/",
                            env!("CARGO_PKG_VERSION"),
                            ")"
                        )),
                )
            })
            .map_err(|f| f.to_string())?;
        Ok(Bridge { rt, client })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The body of an answer, chunk by chunk, fed by a task on the bridge runtime.
type Chunks = tokio::sync::mpsc::Receiver<Result<Bytes, String>>;

/// One request/answer of the protocol: libgit2 writes the request body (POST), then reads.
struct Stream {
    remote: String,
    target: String,
    service: &'static str,
    ls: bool,
    auth: Option<Secret>,
    body: Vec<u8>,
    answer: Option<Chunks>,
    chunk: Bytes,
}

impl Stream {
    fn send(&mut self) -> io::Result<Chunks> {
        let bridge = bridge().map_err(io::Error::other)?;
        let mut req = if self.ls {
            bridge.client.get(&self.target).header("accept", "*/*")
        } else {
            bridge
                .client
                .post(&self.target)
                .header(
                    "content-type",
                    format!("application/x-git-{}-request", self.service),
                )
                .header(
                    "accept",
                    format!("application/x-git-{}-result", self.service),
                )
                .body(std::mem::take(&mut self.body))
        };
        if let Some(h) = &self.auth {
            let mut v = http::HeaderValue::from_str(h.expose())
                .map_err(|_| io::Error::other("the git credentials cannot be sent in a header"))?;
            v.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, v);
        }
        // The request future needs the runtime's timers from its creation: build it there.
        let sent = futures::executor::block_on(bridge.rt.spawn(async move { req.send().await }))
            .map_err(|e| io::Error::other(format!("git HTTP request did not complete: {e}")))?;
        let resp = sent.map_err(|e| io::Error::other(transport_error(&self.remote, e)))?;
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(strip_credentials);
        let verdict = answer_verdict(
            resp.status().as_u16(),
            &content_type,
            self.service,
            self.ls,
            self.auth.is_some(),
            location.as_deref(),
        );
        if let Err(msg) = verdict {
            return Err(io::Error::other(format!("{}: {msg}", self.remote)));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        bridge.rt.spawn(async move {
            let mut resp = resp;
            loop {
                let next = match resp.chunk().await {
                    Ok(Some(b)) => Ok(b),
                    Ok(None) => break,
                    Err(e) => Err(format!("reading the answer failed: {}", error_chain(&e))),
                };
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

impl Read for Stream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.answer.is_none() {
            let rx = self.send()?;
            self.answer = Some(rx);
        }
        while self.chunk.is_empty() {
            let Some(rx) = self.answer.as_mut() else {
                return Ok(0);
            };
            match futures::executor::block_on(rx.recv()) {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(io::Error::other(format!("{}: {e}", self.remote))),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.answer.is_some() {
            return Err(io::Error::other("git wrote after reading the answer"));
        }
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Is this answer the one git's smart protocol expects? The error says what went wrong in the
/// words the git layer classifies (`credentials`, `401`: an authentication failure).
pub(crate) fn answer_verdict(
    status: u16,
    content_type: &str,
    service: &str,
    ls: bool,
    sent_credentials: bool,
    location: Option<&str>,
) -> Result<(), String> {
    match status {
        200 => {
            let want = if ls {
                format!("application/x-git-{service}-advertisement")
            } else {
                format!("application/x-git-{service}-result")
            };
            let got = content_type.split(';').next().unwrap_or("").trim();
            if got.eq_ignore_ascii_case(&want) {
                Ok(())
            } else {
                Err(format!(
                    "not a git smart-HTTP answer (content type `{}`, expected `{want}`)",
                    single_line(got)
                ))
            }
        }
        401 if sent_credentials => {
            Err("HTTP 401: the remote rejected the credentials (authentication failed)".into())
        }
        401 => Err("HTTP 401: the remote requires credentials and none were given".into()),
        403 => Err("HTTP 403: access denied (the credentials lack permission)".into()),
        404 => Err("HTTP 404: repository not found".into()),
        300..=399 => Err(format!(
            "HTTP {status}: the remote redirects to {} (not followed; use that URL)",
            location
                .map(single_line)
                .unwrap_or_else(|| "<no location>".into())
        )),
        s => Err(format!("unexpected HTTP status {s}")),
    }
}

/// A redirect target without any userinfo, for messages.
fn strip_credentials(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => location.to_string(),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = single_line(&err.to_string());
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn transport_error(remote: &str, e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest names the URL; ours never carries credentials, but keep the message to the chain.
    format!("{remote}: {kind}: {}", error_chain(&e.without_url()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_git_accepts_and_refuses() {
        let adv = "application/x-git-upload-pack-advertisement";
        let res = "application/x-git-receive-pack-result";
        // (status, content type, service, ls, credentials sent, verdict)
        type Case<'a> = (u16, &'a str, &'a str, bool, bool, Result<(), &'a str>);
        let cases: &[Case] = &[
            (200, adv, "upload-pack", true, false, Ok(())),
            (
                200,
                "application/x-git-upload-pack-advertisement; charset=x",
                "upload-pack",
                true,
                true,
                Ok(()),
            ),
            (200, res, "receive-pack", false, true, Ok(())),
            (
                200,
                "text/plain",
                "upload-pack",
                true,
                false,
                Err("not a git smart-HTTP answer"),
            ),
            (
                200,
                adv,
                "receive-pack",
                true,
                false,
                Err("expected `application/x-git-receive-pack-advertisement`"),
            ),
            (
                401,
                "",
                "upload-pack",
                true,
                true,
                Err("rejected the credentials"),
            ),
            (
                401,
                "",
                "upload-pack",
                true,
                false,
                Err("requires credentials and none were given"),
            ),
            (403, "", "receive-pack", false, true, Err("HTTP 403")),
            (404, "", "upload-pack", true, false, Err("HTTP 404")),
            (
                301,
                "",
                "upload-pack",
                true,
                false,
                Err("redirects to https://elsewhere.example/x.git"),
            ),
            (
                500,
                "",
                "upload-pack",
                true,
                false,
                Err("unexpected HTTP status 500"),
            ),
        ];
        for (status, ct, svc, ls, creds, want) in cases {
            let loc = (*status == 301).then_some("https://elsewhere.example/x.git");
            let got = answer_verdict(*status, ct, svc, *ls, *creds, loc);
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(w), Err(g)) => assert!(g.contains(w), "{status} {ct}: {g}"),
                _ => panic!("{status} {ct}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn credentials_never_outlive_their_scope_or_leave_their_remote() {
        let auth = Auth::token(Secret::new("t0ken"));
        let header = |url: &str| credentials_for(url).map(|h| h.expose().to_string());
        assert_eq!(header("http://127.0.0.1:1/a.git"), None);
        {
            let _s = scope("http://127.0.0.1:1/a.git/", &auth);
            let h = header("http://127.0.0.1:1/a.git").expect("sent to its remote");
            assert!(h.starts_with("Basic "), "{h}");
            assert_eq!(header("http://127.0.0.1:1/other.git"), None);
            {
                let _inner = scope("http://127.0.0.1:1/b.git", &Auth::none());
                assert_eq!(header("http://127.0.0.1:1/a.git"), None);
            }
            assert!(
                header("http://127.0.0.1:1/a.git").is_some(),
                "outer scope restored"
            );
        }
        assert_eq!(header("http://127.0.0.1:1/a.git"), None);
    }

    #[test]
    fn redirect_targets_lose_their_userinfo() {
        assert_eq!(
            strip_credentials("https://u:p@example.com/x.git"),
            "https://example.com/x.git"
        );
    }
}
