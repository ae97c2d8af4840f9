//! A scenario fake of GitHub's issue-comment endpoints (list, create, update) and `GET /user`,
//! for plan-gate's PR comment upsert. Responses follow GitHub's documented shapes
//! (`issue-comment`, `simple-user`, `private-user`, `basic-error`); it keeps state across
//! requests (which Prism cannot) and records every request. The token is an installation token
//! (`GET /user` answers 403, comments are written by `github-actions[bot]`) unless
//! [`GithubFake::set_user`] makes it a user's.
//! Served from a thread on a free 127.0.0.1 port; stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub body: String,
    pub login: String,
}

#[derive(Default)]
struct State {
    comments: Vec<Comment>,
    requests: Vec<Request>,
    next_id: u64,
    /// A `Link: <..>; rel="next"` target sent with every comments listing (pagination).
    link_next: Option<String>,
    /// The user the token belongs to (`None`: an installation token).
    user: Option<String>,
    /// Apply the next comment create, then close the connection without answering.
    lose_create_answer: bool,
}

pub struct GithubFake {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl GithubFake {
    pub fn start() -> GithubFake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = handle(c, &st, port);
                }
            }
        });
        GithubFake {
            port,
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// Answer every comments listing with a `rel="next"` link to `url`.
    pub fn set_link_next(&self, url: &str) {
        self.state.lock().unwrap().link_next = Some(url.to_string());
    }

    /// Make the token a user's token: `GET /user` names `login`, and comments are written by it.
    pub fn set_user(&self, login: &str) {
        self.state.lock().unwrap().user = Some(login.to_string());
    }

    /// The next comment create takes effect, but its answer is lost (the connection closes).
    pub fn lose_next_create_answer(&self) {
        self.state.lock().unwrap().lose_create_answer = true;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Pre-existing comment (someone else's, or ours from an earlier run).
    pub fn add_comment(&self, body: &str, login: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.comments.push(Comment {
            id,
            body: body.into(),
            login: login.into(),
        });
        id
    }

    pub fn comments(&self) -> Vec<Comment> {
        self.state.lock().unwrap().comments.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for GithubFake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A stable id per login (`github-actions[bot]` has GitHub's real one).
fn user_id(login: &str) -> u64 {
    if login == "github-actions[bot]" {
        return 41898282;
    }
    login
        .bytes()
        .fold(1000u64, |h, b| (h * 31 + u64::from(b)) % 1_000_000_007)
}

fn user(login: &str, port: u16) -> serde_json::Value {
    // As GitHub does: `github-actions[bot]` is percent-encoded in URLs.
    let enc = login.replace('[', "%5B").replace(']', "%5D");
    let base = format!("http://127.0.0.1:{port}/users/{enc}");
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    serde_json::json!({
        "login": login, "id": user_id(login), "node_id": "MDM6Qm90NDE4OTgyODI=",
        "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4", "gravatar_id": "",
        "url": base, "html_url": format!("https://github.com/{enc}"),
        "followers_url": format!("{base}/followers"), "following_url": format!("{base}/following{{/other_user}}"),
        "gists_url": format!("{base}/gists{{/gist_id}}"), "starred_url": format!("{base}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{base}/subscriptions"), "organizations_url": format!("{base}/orgs"),
        "repos_url": format!("{base}/repos"), "events_url": format!("{base}/events{{/privacy}}"),
        "received_events_url": format!("{base}/received_events"), "type": kind, "site_admin": false
    })
}

/// `GET /user` for a user token: GitHub's `private-user`.
fn private_user(login: &str, port: u16) -> serde_json::Value {
    let mut u = user(login, port);
    let more = serde_json::json!({
        "name": null, "company": null, "blog": "", "location": null, "email": null,
        "hireable": null, "bio": null, "public_repos": 1, "public_gists": 0, "followers": 0,
        "following": 0, "created_at": "2020-01-01T00:00:00Z", "updated_at": "2026-11-26T05:00:00Z",
        "private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0, "disk_usage": 0,
        "collaborators": 0, "two_factor_authentication": true, "user_view_type": "private"
    });
    for (k, v) in more.as_object().unwrap() {
        u[k] = v.clone();
    }
    u
}

fn comment_json(c: &Comment, owner_repo: &str, pr: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "id": c.id, "node_id": format!("IC_kw{}", c.id),
        "url": format!("http://127.0.0.1:{port}/repos/{owner_repo}/issues/comments/{}", c.id),
        "html_url": format!("https://github.com/{owner_repo}/pull/{pr}#issuecomment-{}", c.id),
        "issue_url": format!("http://127.0.0.1:{port}/repos/{owner_repo}/issues/{pr}"),
        "body": c.body, "user": user(&c.login, port),
        "created_at": "2026-11-26T05:00:00Z", "updated_at": "2026-11-26T05:00:00Z",
        "author_association": "NONE"
    })
}

fn handle(mut c: TcpStream, st: &Arc<Mutex<State>>, port: u16) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut len = 0usize;
    let mut auth = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut s = st.lock().unwrap();
    s.requests.push(Request {
        method: method.clone(),
        path: path.clone(),
        authorization: auth.clone(),
        body: body.clone(),
    });
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut extra = String::new();
    let (status, resp) = if auth.is_none() {
        (
            401,
            serde_json::json!({"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest"}),
        )
    } else {
        match (method.as_str(), seg.as_slice()) {
            ("GET", ["user"]) => match &s.user {
                Some(login) => (200, private_user(login, port)),
                None => (
                    403,
                    serde_json::json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user", "status": "403"}),
                ),
            },
            ("GET", ["repos", o, r, "issues", pr, "comments"]) => {
                let or = format!("{o}/{r}");
                let list: Vec<_> = s
                    .comments
                    .iter()
                    .map(|c| comment_json(c, &or, pr, port))
                    .collect();
                if let Some(n) = &s.link_next {
                    extra = format!("Link: <{n}>; rel=\"next\"\r\n");
                }
                (200, serde_json::Value::Array(list))
            }
            ("POST", ["repos", o, r, "issues", pr, "comments"]) => {
                let b: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                s.next_id += 1;
                let c = Comment {
                    id: s.next_id,
                    body: b["body"].as_str().unwrap_or("").to_string(),
                    login: s
                        .user
                        .clone()
                        .unwrap_or_else(|| "github-actions[bot]".into()),
                };
                s.comments.push(c.clone());
                if std::mem::take(&mut s.lose_create_answer) {
                    return Ok(());
                }
                (201, comment_json(&c, &format!("{o}/{r}"), pr, port))
            }
            ("PATCH", ["repos", o, r, "issues", "comments", id]) => {
                let b: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let id: u64 = id.parse().unwrap_or(0);
                match s.comments.iter_mut().find(|c| c.id == id) {
                    Some(c) => {
                        c.body = b["body"].as_str().unwrap_or("").to_string();
                        let c = c.clone();
                        (200, comment_json(&c, &format!("{o}/{r}"), "1", port))
                    }
                    None => (
                        404,
                        serde_json::json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
                    ),
                }
            }
            _ => (
                404,
                serde_json::json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
            ),
        }
    };
    drop(s);
    let text = resp.to_string();
    write!(
        c,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    c.flush()
}
