//! A stateful scenario fake of the few GitHub REST operations promote and tag-deploy call, for
//! what Prism (stateless) cannot show: deployments that exist after a timed-out POST (F15), rate
//! limits (F14), 409s, a promotion PR that becomes merged when its head lands on the base.
//!
//! Response shapes are not hand-written: every object starts from the example GitHub's own
//! OpenAPI description gives for that operation (our committed subset) and only the fields a
//! scenario needs are changed. Run it behind [`super::prism::Prism::proxy`] to have Prism check
//! both our requests and the fake's responses against the description.
//!
//! Scripted faults: [`GithubFake::script`] queues a canned answer (status, headers, body, delay)
//! for the next request matching a method and path prefix; `delay_then_apply` lets the real
//! handler change state and then answers late, so the client times out on a request that did
//! take effect (F15).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// A canned answer for the next request matching `method` and a path prefix.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub method: String,
    pub path_prefix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// Sleep before answering.
    pub delay: Duration,
    /// Let the normal handler run (and change state) and send ITS answer after `delay`
    /// (`status`/`body` are then unused).
    pub apply: bool,
}

/// The fake's state; tests may read and change it through [`GithubFake::state`].
#[derive(Debug, Default)]
pub struct State {
    pub requests: Vec<Recorded>,
    pub deployments: Vec<Value>,
    pub statuses: BTreeMap<u64, Vec<Value>>,
    pub pulls: Vec<Value>,
    pub reviews: BTreeMap<u64, Vec<Value>>,
    /// Commit statuses by sha: (context, state).
    pub commit_statuses: BTreeMap<String, Vec<(String, String)>>,
    /// Commit statuses posted (`POST /statuses/{sha}`) by sha, newest first, as GitHub lists them.
    pub posted_statuses: BTreeMap<String, Vec<Value>>,
    /// Check runs by sha: (name, status, conclusion).
    pub check_runs: BTreeMap<String, Vec<(String, String, Option<String>)>>,
    pub dispatches: Vec<Value>,
    /// Issue comments: (issue number, comment), oldest first; written as `github-actions[bot]`.
    pub comments: Vec<(u64, Value)>,
    /// Issues (pull requests are in `pulls`), each from GitHub's `issue` example.
    pub issues: Vec<Value>,
    /// Comments by issue number.
    pub issue_comments: BTreeMap<u64, Vec<Value>>,
    /// `GET /user` answers 200 with this login and id; `None`: 403, as for `GITHUB_TOKEN`
    /// (whose writes are then by `github-actions[bot]`).
    pub user: Option<(String, u64)>,
    pub script: VecDeque<Scripted>,
    pub next_id: u64,
}

/// The running fake (a thread on a free loopback port; it dies with the test process).
pub struct GithubFake {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    examples: Arc<Value>,
}

fn examples() -> Value {
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(super::prism::spec_path()).unwrap()).unwrap();
    spec["components"]["examples"].clone()
}

impl GithubFake {
    pub fn start() -> GithubFake {
        GithubFake::start_on(0)
    }

    /// On a given loopback port (`0`: a free one).
    pub fn start_on(port: u16) -> GithubFake {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..State::default()
        }));
        let ex = Arc::new(examples());
        let (st, exx) = (state.clone(), ex.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (st, exx) = (st.clone(), exx.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &st, &exx);
                });
            }
        });
        GithubFake {
            port,
            state,
            examples: ex,
        }
    }

    /// Forget all state, scripts and recorded requests (between scenarios sharing one fake).
    pub fn reset(&self) {
        *self.state.lock().unwrap() = State {
            next_id: 1000,
            ..State::default()
        };
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Add an issue as `login` wrote it; returns its number.
    pub fn add_issue(&self, title: &str, body: &str, labels: &[&str], login: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let n = s.next_id;
        let mut i = self.example("issue");
        set_issue(&mut i, n, title, body, labels, login, 1);
        s.issues.push(i);
        n
    }

    /// The issues as they are now.
    pub fn issues(&self) -> Vec<Value> {
        self.state.lock().unwrap().issues.clone()
    }

    /// The example GitHub's description gives for a component (e.g. `pull-request`).
    pub fn example(&self, name: &str) -> Value {
        self.examples[name]["value"].clone()
    }

    pub fn script(&self, s: Scripted) {
        self.state.lock().unwrap().script.push_back(s);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests matching a method and path prefix.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .collect()
    }

    /// Add an existing deployment (as if created earlier) with one status.
    pub fn add_deployment(&self, sha: &str, env: &str, production: bool, status: &str) -> u64 {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = st.next_id;
        let mut d = self.example("deployment");
        d["id"] = json!(id);
        d["sha"] = json!(sha);
        d["environment"] = json!(env);
        d["original_environment"] = json!(env);
        d["production_environment"] = json!(production);
        d["payload"] = json!({});
        st.deployments.insert(0, d);
        let mut s = self.example("deployment-status");
        s["id"] = json!(id * 10);
        s["state"] = json!(status);
        st.statuses.insert(id, vec![s]);
        id
    }

    /// Latest status state of a deployment.
    pub fn latest_status(&self, id: u64) -> Option<String> {
        self.state.lock().unwrap().statuses.get(&id).and_then(|v| {
            v.first()
                .and_then(|s| s["state"].as_str())
                .map(str::to_string)
        })
    }

    /// Add an open pull request from `head` into `base` at `head_sha`; returns its number.
    pub fn add_pull(&self, head: &str, base: &str, head_sha: &str) -> u64 {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let n = st.next_id;
        let mut p = self.example("pull-request");
        set_pull(&mut p, n, head, base, head_sha);
        st.pulls.push(p);
        n
    }

    /// Add a review on a pull request.
    pub fn add_review(&self, number: u64, login: &str, state: &str, commit: &str) {
        let mut st = self.state.lock().unwrap();
        let mut r = self.examples["pull-request-review-items"]["value"][0].clone();
        st.next_id += 1;
        r["id"] = json!(st.next_id);
        r["user"]["login"] = json!(login);
        r["state"] = json!(state);
        r["commit_id"] = json!(commit);
        st.reviews.entry(number).or_default().push(r);
    }

    /// Close pull request `n` (merged or not).
    pub fn close_pull(&self, n: u64) {
        let mut st = self.state.lock().unwrap();
        for p in st.pulls.iter_mut().filter(|p| p["number"] == json!(n)) {
            p["state"] = json!("closed");
            p["closed_at"] = json!("2026-11-26T00:00:00Z");
        }
    }

    /// The bodies of the comments on issue or pull request `n`, oldest first.
    pub fn comments_on(&self, n: u64) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.comments
            .iter()
            .filter(|(i, _)| *i == n)
            .map(|(_, c)| c["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// What GitHub does when a PR's head lands on its base by a push: mark it merged.
    pub fn mark_merged_if_landed(&self, base_tip: &str) {
        let mut st = self.state.lock().unwrap();
        for p in st.pulls.iter_mut() {
            if p["head"]["sha"] == json!(base_tip) && p["state"] == json!("open") {
                p["state"] = json!("closed");
                p["merged"] = json!(true);
                p["merged_at"] = json!("2026-11-26T00:00:00Z");
            }
        }
    }
}

fn set_pull(p: &mut Value, n: u64, head: &str, base: &str, head_sha: &str) {
    p["id"] = json!(n);
    p["number"] = json!(n);
    p["html_url"] = json!(format!("https://github.com/o/r/pull/{n}"));
    p["url"] = json!(format!("https://api.github.com/repos/o/r/pulls/{n}"));
    p["state"] = json!("open");
    p["merged"] = json!(false);
    p["merged_at"] = Value::Null;
    p["closed_at"] = Value::Null;
    p["draft"] = json!(false);
    p["head"]["ref"] = json!(head);
    p["head"]["sha"] = json!(head_sha);
    p["head"]["label"] = json!(format!("o:{head}"));
    p["base"]["ref"] = json!(base);
    p["base"]["label"] = json!(format!("o:{base}"));
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn set_issue(
    i: &mut Value,
    n: u64,
    title: &str,
    body: &str,
    labels: &[&str],
    login: &str,
    id: u64,
) {
    i["id"] = json!(n);
    i["number"] = json!(n);
    i["title"] = json!(title);
    i["body"] = json!(body);
    i["state"] = json!("open");
    i["state_reason"] = Value::Null;
    i["closed_at"] = Value::Null;
    i["html_url"] = json!(format!("https://github.com/o/r/issues/{n}"));
    let tmpl = i["labels"][0].clone();
    i["labels"] = Value::Array(
        labels
            .iter()
            .map(|l| {
                let mut x = tmpl.clone();
                x["name"] = json!(l);
                x
            })
            .collect(),
    );
    i["user"]["login"] = json!(login);
    i["user"]["id"] = json!(id);
    i["user"]["type"] = json!(if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    });
    if let Some(o) = i.as_object_mut() {
        o.remove("pull_request");
    }
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![],
        body,
    }
}

fn serve(conn: TcpStream, st: &Mutex<State>, ex: &Value) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut buf = vec![0u8; len];
        reader.read_exact(&mut buf)?;
        let body: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
        let close = headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let rec = Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body.clone(),
        };
        let scripted = {
            let mut s = st.lock().unwrap();
            s.requests.push(rec);
            let pos = s
                .script
                .iter()
                .position(|x| x.method == method && path.starts_with(&x.path_prefix));
            pos.and_then(|i| s.script.remove(i))
        };
        let r = match scripted {
            Some(s) if s.apply => {
                // The request takes effect, the (real) answer comes late.
                let r = handle(&method, &path, &body, st, ex);
                std::thread::sleep(s.delay);
                r
            }
            Some(s) => {
                std::thread::sleep(s.delay);
                Reply {
                    status: s.status,
                    headers: s.headers,
                    body: s.body,
                }
            }
            None => handle(&method, &path, &body, st, ex),
        };
        let text = if r.body.is_null() {
            String::new()
        } else {
            r.body.to_string()
        };
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            r.status,
            text.len()
        );
        for (k, v) in &r.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&text);
        let mut w = conn.try_clone()?;
        if w.write_all(out.as_bytes()).is_err() || close {
            return Ok(());
        }
    }
}

fn query(path: &str) -> (String, BTreeMap<String, String>) {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let params = q
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect();
    (p.to_string(), params)
}

fn handle(method: &str, path: &str, body: &Value, st: &Mutex<State>, ex: &Value) -> Reply {
    let (p, q) = query(path);
    let seg: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    let mut s = st.lock().unwrap();
    let example = |n: &str| ex[n]["value"].clone();
    match (method, &seg[..]) {
        ("GET", ["repos", _, _]) => reply(200, example("full-repository-default-response")),
        ("POST", ["repos", _, _, "deployments"]) => {
            s.next_id += 1;
            let id = s.next_id;
            let mut d = example("deployment");
            d["id"] = json!(id);
            d["sha"] = body["ref"].clone();
            d["ref"] = body["ref"].clone();
            d["environment"] = body["environment"].clone();
            d["original_environment"] = body["environment"].clone();
            d["production_environment"] = body["production_environment"].clone();
            d["payload"] = body["payload"].clone();
            d["description"] = body["description"].clone();
            s.deployments.insert(0, d.clone());
            reply(201, d)
        }
        ("GET", ["repos", _, _, "deployments"]) => {
            let list: Vec<Value> = s
                .deployments
                .iter()
                .filter(|d| {
                    q.get("environment")
                        .is_none_or(|e| d["environment"] == json!(e))
                        && q.get("sha").is_none_or(|x| d["sha"] == json!(x))
                })
                .cloned()
                .collect();
            reply(200, Value::Array(list))
        }
        ("GET", ["repos", _, _, "deployments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match s.deployments.iter().find(|d| d["id"] == json!(id)) {
                Some(d) => reply(200, d.clone()),
                None => reply(
                    404,
                    json!({"message": "Not Found", "documentation_url": "x"}),
                ),
            }
        }
        ("POST", ["repos", _, _, "deployments", id, "statuses"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            if !s.deployments.iter().any(|d| d["id"] == json!(id)) {
                return reply(
                    404,
                    json!({"message": "Not Found", "documentation_url": "x"}),
                );
            }
            let mut x = example("deployment-status");
            s.next_id += 1;
            x["id"] = json!(s.next_id);
            x["state"] = body["state"].clone();
            for k in ["log_url", "environment_url", "description"] {
                if !body[k].is_null() {
                    x[k] = body[k].clone();
                }
            }
            s.statuses.entry(id).or_default().insert(0, x.clone());
            reply(201, x)
        }
        ("GET", ["repos", _, _, "deployments", id, "statuses"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let per: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30);
            let v: Vec<Value> = s
                .statuses
                .get(&id)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .take(per)
                .collect();
            reply(200, Value::Array(v))
        }
        ("GET", ["repos", owner, _, "pulls"]) => {
            let head = q.get("head").cloned();
            let base = q.get("base").cloned();
            let state = q.get("state").cloned().unwrap_or("open".into());
            let list: Vec<Value> = s
                .pulls
                .iter()
                .filter(|p| {
                    (state == "all" || p["state"] == json!(state))
                        && head.as_ref().is_none_or(|h| {
                            *h == format!("{owner}:{}", p["head"]["ref"].as_str().unwrap_or(""))
                        })
                        && base.as_ref().is_none_or(|b| p["base"]["ref"] == json!(b))
                })
                .map(|full| {
                    // List items use the pull-request-simple shape.
                    let mut x = ex["pull-request-simple-items"]["value"][0].clone();
                    for k in [
                        "id",
                        "number",
                        "html_url",
                        "url",
                        "state",
                        "title",
                        "body",
                        "draft",
                        "merged_at",
                        "closed_at",
                    ] {
                        x[k] = full[k].clone();
                    }
                    for side in ["head", "base"] {
                        for k in ["ref", "sha", "label"] {
                            x[side][k] = full[side][k].clone();
                        }
                    }
                    x
                })
                .collect();
            reply(200, Value::Array(list))
        }
        ("POST", ["repos", _, _, "pulls"]) => {
            let head = body["head"].as_str().unwrap_or("").to_string();
            let base = body["base"].as_str().unwrap_or("").to_string();
            if s.pulls.iter().any(|p| {
                p["state"] == json!("open")
                    && p["head"]["ref"] == json!(head)
                    && p["base"]["ref"] == json!(base)
            }) {
                return reply(
                    422,
                    json!({"message": "Validation Failed", "documentation_url": "x", "errors": [{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists"}]}),
                );
            }
            s.next_id += 1;
            let n = s.next_id;
            let mut pr = example("pull-request");
            // The head sha is whatever the branch points at: tests set it with `head_sha` in
            // the state afterwards if it matters; default to the body's `head` name.
            set_pull(
                &mut pr,
                n,
                &head,
                &base,
                "0000000000000000000000000000000000000000",
            );
            pr["title"] = body["title"].clone();
            pr["body"] = body["body"].clone();
            s.pulls.push(pr.clone());
            reply(201, pr)
        }
        ("GET" | "PATCH", ["repos", _, _, "pulls", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(pr) = s.pulls.iter_mut().find(|p| p["number"] == json!(n)) else {
                return reply(
                    404,
                    json!({"message": "Not Found", "documentation_url": "x"}),
                );
            };
            if method == "PATCH" {
                for k in ["title", "body", "state"] {
                    if !body[k].is_null() {
                        pr[k] = body[k].clone();
                    }
                }
            }
            reply(200, pr.clone())
        }
        ("GET", ["repos", _, _, "pulls", n, "reviews"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            reply(
                200,
                Value::Array(s.reviews.get(&n).cloned().unwrap_or_default()),
            )
        }
        ("POST", ["repos", _, _, "statuses", sha]) => {
            let mut x = example("status");
            s.next_id += 1;
            x["id"] = json!(s.next_id);
            for k in ["state", "context", "description", "target_url"] {
                x[k] = body.get(k).cloned().unwrap_or(Value::Null);
            }
            // Newer statuses get later times (one second apart), as GitHub's would.
            let n = s.posted_statuses.values().map(Vec::len).sum::<usize>();
            let at = format!("2026-12-01T12:{:02}:{:02}Z", (n / 60) % 60, n % 60);
            x["created_at"] = json!(at);
            x["updated_at"] = json!(at);
            let entry = (
                body["context"].as_str().unwrap_or("").to_string(),
                body["state"].as_str().unwrap_or("").to_string(),
            );
            let list = s.commit_statuses.entry(sha.to_string()).or_default();
            list.retain(|(c, _)| *c != entry.0);
            list.push(entry);
            s.posted_statuses
                .entry(sha.to_string())
                .or_default()
                .insert(0, x.clone());
            reply(201, x)
        }
        ("GET", ["repos", _, _, "commits", sha, "statuses"]) => reply(
            200,
            Value::Array(s.posted_statuses.get(*sha).cloned().unwrap_or_default()),
        ),
        ("GET", ["repos", _, _, "commits", sha, "status"]) => {
            let mut c = example("combined-commit-status");
            let list = s.commit_statuses.get(*sha).cloned().unwrap_or_default();
            let tmpl = c["statuses"][0].clone();
            let sts: Vec<Value> = list
                .iter()
                .map(|(ctx, state)| {
                    let mut x = tmpl.clone();
                    x["context"] = json!(ctx);
                    x["state"] = json!(state);
                    x
                })
                .collect();
            c["total_count"] = json!(sts.len());
            c["statuses"] = Value::Array(sts);
            c["sha"] = json!(sha);
            reply(200, c)
        }
        ("GET", ["repos", _, _, "commits", sha, "check-runs"]) => {
            let mut c = example("check-run-paginated");
            let tmpl = c["check_runs"][0].clone();
            let list = s.check_runs.get(*sha).cloned().unwrap_or_default();
            let runs: Vec<Value> = list
                .iter()
                .map(|(name, status, concl)| {
                    let mut x = tmpl.clone();
                    x["name"] = json!(name);
                    x["status"] = json!(status);
                    x["conclusion"] = json!(concl);
                    x["head_sha"] = json!(sha);
                    x
                })
                .collect();
            c["total_count"] = json!(runs.len());
            c["check_runs"] = Value::Array(runs);
            reply(200, c)
        }
        ("GET", ["repos", _, _, "issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let list: Vec<Value> = s
                .comments
                .iter()
                .filter(|(i, _)| *i == n)
                .map(|(_, c)| c.clone())
                .collect();
            reply(200, Value::Array(list))
        }
        ("POST", ["repos", _, _, "issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            s.next_id += 1;
            let mut c = example("issue-comment");
            c["id"] = json!(s.next_id);
            c["body"] = body["body"].clone();
            // A comment on one of the fake's issues (drift) is kept with that issue; any other
            // number is a pull request (plan and preview comments).
            if s.issues.iter().any(|i| i["number"] == json!(n)) {
                s.issue_comments.entry(n).or_default().push(c.clone());
                return reply(201, c);
            }
            c["user"]["login"] = json!("github-actions[bot]");
            c["user"]["type"] = json!("Bot");
            c["html_url"] = json!(format!(
                "https://github.com/o/r/pull/{n}#issuecomment-{}",
                s.next_id
            ));
            s.comments.push((n, c.clone()));
            reply(201, c)
        }
        ("PATCH", ["repos", _, _, "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match s.comments.iter_mut().find(|(_, c)| c["id"] == json!(id)) {
                Some((_, c)) => {
                    c["body"] = body["body"].clone();
                    reply(200, c.clone())
                }
                None => reply(
                    404,
                    json!({"message": "Not Found", "documentation_url": "x"}),
                ),
            }
        }
        ("GET", ["user"]) => match s.user.clone() {
            Some((login, id)) => {
                let mut u = example("private-user-response-with-public-profile-information");
                u["login"] = json!(login);
                u["id"] = json!(id);
                reply(200, u)
            }
            None => reply(
                403,
                json!({"message": "Resource not accessible by integration", "documentation_url": "x"}),
            ),
        },
        ("GET", ["repos", _, _, "issues"]) => {
            let state = q.get("state").cloned().unwrap_or("open".into());
            let label = q.get("labels").cloned();
            let list: Vec<Value> = s
                .issues
                .iter()
                .filter(|i| {
                    (state == "all" || i["state"] == json!(state))
                        && label.as_ref().is_none_or(|l| {
                            i["labels"]
                                .as_array()
                                .is_some_and(|ls| ls.iter().any(|x| x["name"] == json!(l)))
                        })
                })
                .cloned()
                .collect();
            reply(200, Value::Array(list))
        }
        ("POST", ["repos", _, _, "issues"]) => {
            s.next_id += 1;
            let n = s.next_id;
            let mut i = example("issue");
            let labels: Vec<&str> = body["labels"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let (login, id) = s
                .user
                .clone()
                .unwrap_or(("github-actions[bot]".into(), 41898282));
            set_issue(
                &mut i,
                n,
                body["title"].as_str().unwrap_or(""),
                body["body"].as_str().unwrap_or(""),
                &labels,
                &login,
                id,
            );
            s.issues.push(i.clone());
            reply(201, i)
        }
        ("PATCH", ["repos", _, _, "issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(i) = s.issues.iter_mut().find(|i| i["number"] == json!(n)) else {
                return reply(
                    404,
                    json!({"message": "Not Found", "documentation_url": "x"}),
                );
            };
            for k in ["title", "body", "state", "state_reason"] {
                if !body[k].is_null() {
                    i[k] = body[k].clone();
                }
            }
            reply(200, i.clone())
        }
        ("POST", ["repos", _, _, "actions", "workflows", _, "dispatches"]) => {
            s.dispatches.push(json!({"path": p, "body": body}));
            reply(204, Value::Null)
        }
        // The fake's own routes (not GitHub's; called directly, never through Prism): the state
        // for a scenario's assertions (the demo's), and a pull request the scenario simulates.
        ("GET", ["__fake", "state"]) => {
            let comments_of = |m: &BTreeMap<u64, Vec<Value>>| -> Value {
                m.iter()
                    .map(|(n, v)| (n.to_string(), Value::Array(v.clone())))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            reply(
                200,
                json!({
                    "issues": s.issues,
                    "issue_comments": comments_of(&s.issue_comments),
                    "comments": s.comments.iter().map(|(n, c)| json!({"number": n, "comment": c})).collect::<Vec<_>>(),
                    "deployments": s.deployments,
                    "statuses": s.statuses.iter().map(|(id, v)| (id.to_string(), Value::Array(v.clone()))).collect::<serde_json::Map<_, _>>(),
                    "pulls": s.pulls,
                    "dispatches": s.dispatches,
                    "requests": s.requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect::<Vec<_>>(),
                }),
            )
        }
        ("POST", ["__fake", "pulls"]) => {
            let n = body["number"].as_u64().unwrap_or(0);
            let mut pr = example("pull-request");
            set_pull(
                &mut pr,
                n,
                body["head"].as_str().unwrap_or(""),
                body["base"].as_str().unwrap_or(""),
                body["head_sha"].as_str().unwrap_or(""),
            );
            s.pulls.retain(|p| p["number"] != json!(n));
            s.pulls.push(pr.clone());
            reply(201, pr)
        }
        _ => reply(
            404,
            json!({"message": format!("fake: no route for {method} {p}"), "documentation_url": "x"}),
        ),
    }
}
