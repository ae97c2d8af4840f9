//! The GitHub REST API, as `plan-gate`, `promote` and `tag-deploy` use it: one [`Client`]
//! (octocrab underneath; the only place an Octocrab client is built) made from a token and
//! `GITHUB_API_URL` (GitHub Enterprise Server works the same), and one bridge, [`Blocking`],
//! through which the synchronous commands run its calls and which prints its notices (waits,
//! unknown outcomes) to the runner's log as they happen. Every call has:
//!
//! - **Rate limits (F14)**: a 403/429 that is a rate limit is retried after `retry-after`, else
//!   after `x-ratelimit-reset`, else with a backoff starting at 60 s; at most
//!   [`RetryPolicy::max_attempts`] attempts and never a single wait above
//!   [`RetryPolicy::max_wait`] (a longer required wait fails at once, saying how long). octocrab's
//!   own blind retry is disabled: a POST must never be repeated behind our back.
//! - The API version header ([`API_VERSION`]) and one per-request timeout ([`Config::timeout`]).
//! - **Creates never duplicate (F15)**: when a create POST's outcome is unknown (timeout,
//!   connection lost) we look for what it would have made before posting again — the
//!   deployment carrying our run key, the plan comment carrying our marker and author.
//!
//! What it covers:
//!
//! - **Deployments**: created with `auto_merge: false`, explicit `required_contexts` and
//!   `production_environment`, and a payload carrying our run (`gitops.run_key`); statuses with
//!   `log_url`/`environment_url`; older successful deployments of a production environment marked
//!   `inactive`.
//! - **Pull requests** for promotions: find/open/update by head branch, approval state from
//!   reviews on the current head, combined checks (commit statuses + check runs).
//! - **The plan comment** ([`Client::upsert_comment`]): list a pull request's comments
//!   following `Link: rel="next"` only on the API's own origin ([`next_page`]), `GET /user`,
//!   PATCH ours or POST a new one. Which comment is ours, and what it says, are
//!   `plan::comment`'s rules.
//! - **Workflow dispatch** (F17) and [`TokenKind`]: does a push with this token start workflows?
//!
//! All text coming back from GitHub is untrusted: callers print it through the runner's
//! neutralising functions. The token never appears in errors (octocrab marks the header
//! sensitive; our messages carry only method, path and GitHub's `message`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::exit::{Failure, Result};
use crate::plan::comment::{self, Author, Found, Identity, Outcome};
use crate::plan::drift;
use crate::runner::{cut, single_line, Runner};
use crate::secret::Secret;
pub use crate::verify::ContextState;

/// How long one request may take before its outcome counts as unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The REST API version we are written against.
pub const API_VERSION: &str = "2022-11-28";

/// Retry policy for rate limits (F14) and unknown outcomes (F15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The longest single wait we accept; a rate limit asking for more fails at once.
    pub max_wait: Duration,
    /// First backoff when GitHub gives neither `retry-after` nor `x-ratelimit-reset` (doubles).
    pub base_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_wait: Duration::from_secs(15 * 60),
            base_backoff: Duration::from_secs(60),
        }
    }
}

/// Where and how to talk to GitHub.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GITHUB_API_URL` (e.g. `https://api.github.com`, `https://ghe.example.com/api/v3`).
    pub api_url: String,
    /// `owner/repo`.
    pub repository: String,
    /// The token (`github-token` input, else `GITHUB_TOKEN`).
    pub token: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Rate-limit and retry behaviour.
    pub retry: RetryPolicy,
}

/// Test knob: per-request GitHub timeout in milliseconds (default [`DEFAULT_TIMEOUT`]).
pub const TIMEOUT_VAR: &str = "GITOPS_GITHUB_TIMEOUT_MS";

/// The API side of a command, from its inputs and the run context, validated before any call:
/// `repository` (else `GITHUB_REPOSITORY`) and `github-api-url` (else `GITHUB_API_URL`, else
/// `https://api.github.com`). `None` when the token or the repository is missing.
pub fn config_from(
    runner: &crate::runner::Runner,
    token: Option<&Secret>,
    repository: Option<&str>,
    api_url: Option<&str>,
) -> Result<Option<Config>> {
    let repository = repository
        .filter(|r| !r.is_empty())
        .or_else(|| runner.var("GITHUB_REPOSITORY"));
    if let Some(r) = repository {
        validate_repository("repository", r)?;
    }
    let api_url = api_url
        .filter(|u| !u.is_empty())
        .or_else(|| runner.var("GITHUB_API_URL"))
        .unwrap_or("https://api.github.com");
    validate_api_url("github-api-url", api_url)?;
    let (Some(token), Some(repository)) = (token, repository) else {
        return Ok(None);
    };
    let timeout = runner
        .var(TIMEOUT_VAR)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);
    Ok(Some(Config {
        api_url: api_url.to_string(),
        repository: repository.to_string(),
        token: token.clone(),
        timeout,
        retry: RetryPolicy::default(),
    }))
}

/// Validate `GITHUB_API_URL`: https, or http only to a loopback host (tests); no credentials,
/// no query or fragment.
pub fn validate_api_url(field: &str, v: &str) -> Result<url::Url> {
    let u = crate::validate::credential_url(field, v)?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err(Failure::usage(
            field,
            format!(
                "`{}` must not have a query or fragment",
                crate::validate::url_for_display(v)
            ),
        ));
    }
    Ok(u)
}

/// Validate `owner/repo` (GitHub's character rules, no traversal).
pub fn validate_repository(field: &str, v: &str) -> Result<(String, String)> {
    let bad = || Failure::usage(field, format!("`{}` is not `owner/repo`", single_line(v)));
    let (o, r) = v.split_once('/').ok_or_else(bad)?;
    let part_ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if part_ok(o, 39) && part_ok(r, 100) && !o.contains('.') {
        Ok((o.to_string(), r.to_string()))
    } else {
        Err(bad())
    }
}

/// Failures of one API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// GitHub answered with an error status.
    #[error("GitHub {op} answered {status}: {message}")]
    Status {
        /// `METHOD path`.
        op: String,
        /// HTTP status.
        status: u16,
        /// GitHub's `message` (neutralised).
        message: String,
    },
    /// The outcome is unknown: timeout or connection lost after the request may have been sent.
    #[error("GitHub {op}: no answer ({detail}); the outcome is unknown")]
    Unknown {
        /// `METHOD path`.
        op: String,
        /// Transport detail.
        detail: String,
    },
    /// Still rate limited after the allowed attempts, or the required wait is too long.
    #[error("GitHub {op}: rate limited: {detail}")]
    RateLimited {
        /// `METHOD path`.
        op: String,
        /// What GitHub asked for.
        detail: String,
    },
    /// The answer was not what the API description promises.
    #[error("GitHub {op}: unexpected answer: {detail}")]
    Decode {
        /// `METHOD path`.
        op: String,
        /// What was wrong.
        detail: String,
    },
}

impl ApiError {
    /// The HTTP status, for status errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let hint = match e.status() {
            Some(401) => " (the token is invalid or expired)",
            Some(403) | Some(404) => {
                " (check the token's permissions: deployments: write, pull-requests: write, contents: write, actions: write as needed)"
            }
            _ => "",
        };
        Failure::runtime(format!("{e}{hint}"))
    }
}

/// How long to wait before retrying a response, if it is a rate limit (F14). Pure: `now` is
/// seconds since the epoch; `attempt` counts from 1.
pub fn rate_limit_wait(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    attempt: u32,
    now: u64,
    policy: &RetryPolicy,
) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_string)
    };
    let retry_after = h("retry-after").and_then(|v| v.parse::<u64>().ok());
    let remaining = h("x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
    let reset = h("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok());
    let lower = body.to_ascii_lowercase();
    let says_rate_limit = lower.contains("rate limit");
    let is_limit =
        status == 429 || retry_after.is_some() || remaining == Some(0) || says_rate_limit;
    if !is_limit {
        return None;
    }
    if let Some(s) = retry_after {
        return Some(Duration::from_secs(s));
    }
    if remaining == Some(0) {
        if let Some(r) = reset {
            return Some(Duration::from_secs(r.saturating_sub(now) + 1));
        }
    }
    let factor = 1u32 << attempt.saturating_sub(1).min(6);
    Some(policy.base_backoff * factor)
}

type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// A GitHub REST client bound to one repository.
pub struct Client {
    crab: octocrab::Octocrab,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    base_path: String,
    /// The API origin (scheme, host, port): the only one the token is sent to.
    origin: url::Url,
    policy: RetryPolicy,
    notify: Notify,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "github::Client({}/{})", self.owner, self.repo)
    }
}

/// One decoded answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed JSON body (`Null` when empty).
    pub body: Value,
    /// Response headers (`Link` for pagination).
    pub headers: HeaderMap,
}

impl Client {
    /// Build a client (no network). `notify` receives one line per retry/wait.
    pub fn new(cfg: &Config, notify: impl Fn(&str) + Send + Sync + 'static) -> Result<Client> {
        let url = validate_api_url("github-api-url", &cfg.api_url)?;
        let (owner, repo) = validate_repository("repository", &cfg.repository)?;
        if cfg.token.is_empty() {
            return Err(Failure::usage(
                "github-token",
                "is empty; pass a token or unset the GitHub features",
            ));
        }
        // octocrab joins request paths onto the base's path (GHES: `/api/v3`). Keep the origin as
        // the base and prefix the path ourselves, so both forms behave the same.
        let base_path = url.path().trim_end_matches('/').to_string();
        let origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
            + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
        // No octocrab retries: `call` owns the retry and rate-limit rules.
        let crab = crate::net::octocrab(&origin, cfg.token.expose(), cfg.timeout, cfg.timeout)?;
        let origin = url::Url::parse(&origin)
            .map_err(|_| Failure::usage("github-api-url", "is not a URL"))?;
        Ok(Client {
            crab,
            owner,
            repo,
            base_path,
            origin,
            policy: cfg.retry,
            notify: Arc::new(notify),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// One request with rate-limit handling. Non-2xx answers other than rate limits are
    /// returned as [`ApiError::Status`]; `accept` lists extra statuses to return as answers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        accept: &[u16],
    ) -> std::result::Result<Answer, ApiError> {
        let op = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let target = format!("{}{path}", self.base_path);
        self.call_at(method, &target, op, body, accept).await
    }

    /// [`Client::call`] on an origin-relative target (path and query, base path included), as a
    /// same-origin pagination link gives it; `op` names the call in messages.
    async fn call_at(
        &self,
        method: Method,
        target: &str,
        op: String,
        body: Option<&Value>,
        accept: &[u16],
    ) -> std::result::Result<Answer, ApiError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (status, headers, text) = self.send_once(&method, target, body, &op).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if let Some(wait) =
                rate_limit_wait(status.as_u16(), &headers, &text, attempt, now, &self.policy)
            {
                if attempt >= self.policy.max_attempts {
                    return Err(ApiError::RateLimited {
                        op,
                        detail: format!("still limited after {attempt} attempts"),
                    });
                }
                if wait > self.policy.max_wait {
                    return Err(ApiError::RateLimited {
                        op,
                        detail: format!(
                            "GitHub asks to wait {} s, more than the allowed {} s; try again later",
                            wait.as_secs(),
                            self.policy.max_wait.as_secs()
                        ),
                    });
                }
                (self.notify)(&format!(
                    "GitHub rate limit on {op} (HTTP {}): waiting {} s before attempt {}/{}",
                    status.as_u16(),
                    wait.as_secs(),
                    attempt + 1,
                    self.policy.max_attempts
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_success() || accept.contains(&status.as_u16()) {
                let body = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|e| ApiError::Decode {
                        op: op.clone(),
                        detail: format!("body is not JSON: {e}"),
                    })?
                };
                return Ok(Answer {
                    status,
                    body,
                    headers,
                });
            }
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| cut(&text, 200));
            return Err(ApiError::Status {
                op,
                status: status.as_u16(),
                message: single_line(&message),
            });
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        target: &str,
        body: Option<&Value>,
        op: &str,
    ) -> std::result::Result<(StatusCode, HeaderMap, String), ApiError> {
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(target)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION);
        let payload = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                b.to_string()
            }
            None => String::new(),
        };
        let req = req.body(payload).map_err(|e| ApiError::Decode {
            op: op.to_string(),
            detail: e.to_string(),
        })?;
        let resp = self
            .crab
            .execute(req)
            .await
            .map_err(|e| ApiError::Unknown {
                op: op.to_string(),
                detail: transport_detail(&e),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = self
            .crab
            .body_to_string(resp)
            .await
            .map_err(|e| ApiError::Unknown {
                op: op.to_string(),
                detail: transport_detail(&e),
            })?;
        Ok((status, headers, text))
    }

    // ---------------------------------------------------------------- deployments

    /// Create a deployment, or find the one our run already created (F15). Never duplicates:
    /// when a POST's outcome is unknown we look before posting again.
    pub async fn create_deployment(
        &self,
        d: &NewDeployment,
    ) -> std::result::Result<Deployment, ApiError> {
        let (body, path) = (&d.body(), &self.repo_path("/deployments"));
        let create = || async move {
            let a = self.call(Method::POST, path, Some(body), &[]).await?;
            if a.status.as_u16() == 202 {
                // GitHub answers 202 with a message when it merged the default branch into the
                // ref: we always send auto_merge: false, so this is a surprise.
                return Err(ApiError::Decode {
                    op: "POST /deployments".into(),
                    detail: format!(
                        "GitHub did not create the deployment: {}",
                        single_line(a.body.get("message").and_then(Value::as_str).unwrap_or(""))
                    ),
                });
            }
            Deployment::from_json(&a.body)
        };
        let find = || self.find_deployment_by_run(&d.sha, &d.environment, &d.run_key);
        let looking = format!("a deployment of run {}", d.run_key);
        let found = |x: &Deployment| format!("deployment {}", x.id);
        self.create_once(&looking, found, create, find).await
    }

    /// F15 for every create: POST through `create`; when its outcome is unknown (timeout,
    /// connection lost after sending), `find` what it would have created before posting again,
    /// so a retry never duplicates. At most [`RetryPolicy::max_attempts`] POSTs. `looking` and
    /// `found` word the notices.
    async fn create_once<T, C, F>(
        &self,
        looking: &str,
        found: impl Fn(&T) -> String,
        create: impl Fn() -> C,
        find: impl Fn() -> F,
    ) -> std::result::Result<T, ApiError>
    where
        C: Future<Output = std::result::Result<T, ApiError>>,
        F: Future<Output = std::result::Result<Option<T>, ApiError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match create().await {
                Err(ApiError::Unknown { op, detail }) => {
                    (self.notify)(&format!(
                        "{op}: outcome unknown ({detail}); looking for {looking} before trying again"
                    ));
                    if let Some(x) = find().await? {
                        (self.notify)(&format!(
                            "found {} created by this run; not creating another",
                            found(&x)
                        ));
                        return Ok(x);
                    }
                    if attempt >= self.policy.max_attempts {
                        return Err(ApiError::Unknown { op, detail });
                    }
                }
                other => return other,
            }
        }
    }

    /// The deployment of `sha` in `environment` whose payload carries `run_key`, if any.
    pub async fn find_deployment_by_run(
        &self,
        sha: &str,
        environment: &str,
        run_key: &str,
    ) -> std::result::Result<Option<Deployment>, ApiError> {
        let list = self.list_deployments(environment, Some(sha), 100).await?;
        Ok(list
            .into_iter()
            .find(|d| d.run_key.as_deref() == Some(run_key)))
    }

    /// Deployments of an environment, newest first (at most `limit`, up to 100 per page).
    pub async fn list_deployments(
        &self,
        environment: &str,
        sha: Option<&str>,
        limit: usize,
    ) -> std::result::Result<Vec<Deployment>, ApiError> {
        let mut out = Vec::new();
        let mut page = 1;
        while out.len() < limit && page <= 10 {
            let mut q = format!(
                "/deployments?environment={}&per_page=100&page={page}",
                enc(environment)
            );
            if let Some(s) = sha {
                q.push_str(&format!("&sha={}", enc(s)));
            }
            let a = self
                .call(Method::GET, &self.repo_path(&q), None, &[])
                .await?;
            let arr = a.body.as_array().cloned().unwrap_or_default();
            let n = arr.len();
            for v in arr {
                out.push(Deployment::from_json(&v)?);
            }
            if n < 100 {
                break;
            }
            page += 1;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One deployment by id.
    pub async fn get_deployment(&self, id: u64) -> std::result::Result<Deployment, ApiError> {
        let a = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/deployments/{id}")),
                None,
                &[],
            )
            .await?;
        Deployment::from_json(&a.body)
    }

    /// Post a deployment status.
    pub async fn set_deployment_status(
        &self,
        id: u64,
        status: &DeploymentStatus,
    ) -> std::result::Result<(), ApiError> {
        let mut body = json!({ "state": status.state.as_str() });
        let obj = body.as_object_mut().expect("object");
        if let Some(u) = &status.log_url {
            obj.insert("log_url".into(), json!(u));
        }
        if let Some(u) = &status.environment_url {
            obj.insert("environment_url".into(), json!(u));
        }
        if let Some(d) = &status.description {
            obj.insert("description".into(), json!(truncate(d, 140)));
        }
        if let Some(a) = status.auto_inactive {
            obj.insert("auto_inactive".into(), json!(a));
        }
        self.call(
            Method::POST,
            &self.repo_path(&format!("/deployments/{id}/statuses")),
            Some(&body),
            &[],
        )
        .await?;
        Ok(())
    }

    /// The latest status state of a deployment (`None` when it has no status).
    pub async fn latest_status(&self, id: u64) -> std::result::Result<Option<String>, ApiError> {
        let a = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/deployments/{id}/statuses?per_page=1")),
                None,
                &[],
            )
            .await?;
        Ok(a.body
            .as_array()
            .and_then(|v| v.first())
            .and_then(|s| s.get("state"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Mark older deployments of `environment` whose latest status is `success` as `inactive`
    /// (GitHub does this itself only for non-production environments). Looks at the newest
    /// `scan` deployments; returns the ids it marked.
    pub async fn mark_older_inactive(
        &self,
        environment: &str,
        keep: u64,
        scan: usize,
    ) -> std::result::Result<Vec<u64>, ApiError> {
        let list = self.list_deployments(environment, None, scan).await?;
        let mut marked = Vec::new();
        for d in list.iter().filter(|d| d.id != keep) {
            if self.latest_status(d.id).await?.as_deref() == Some("success") {
                self.set_inactive(d.id, &format!("superseded by deployment {keep}"))
                    .await?;
                marked.push(d.id);
            }
        }
        Ok(marked)
    }

    /// Post an `inactive` status on deployment `id`.
    async fn set_inactive(&self, id: u64, description: &str) -> std::result::Result<(), ApiError> {
        self.set_deployment_status(
            id,
            &DeploymentStatus {
                state: DeploymentState::Inactive,
                log_url: None,
                environment_url: None,
                description: Some(description.to_string()),
                auto_inactive: None,
            },
        )
        .await
    }

    /// Mark every deployment of `environment` (the newest `scan`) whose latest status is not
    /// already `inactive` as `inactive` (a preview that was destroyed). Returns the ids marked.
    pub async fn deactivate_environment(
        &self,
        environment: &str,
        description: &str,
        scan: usize,
    ) -> std::result::Result<Vec<u64>, ApiError> {
        let list = self.list_deployments(environment, None, scan).await?;
        let mut marked = Vec::new();
        for d in &list {
            if self.latest_status(d.id).await?.as_deref() == Some("inactive") {
                continue;
            }
            self.set_inactive(d.id, description).await?;
            marked.push(d.id);
        }
        Ok(marked)
    }

    // ---------------------------------------------------------------- pull requests

    /// The open pull request from `head` (a branch of this repository) into `base`, if any.
    pub async fn find_pull_request(
        &self,
        head: &str,
        base: &str,
        state: &str,
    ) -> std::result::Result<Option<PullRequest>, ApiError> {
        let q = format!(
            "/pulls?state={state}&head={}&base={}&per_page=100",
            enc(&format!("{}:{head}", self.owner)),
            enc(base)
        );
        let a = self
            .call(Method::GET, &self.repo_path(&q), None, &[])
            .await?;
        let arr = a.body.as_array().cloned().unwrap_or_default();
        for v in arr {
            let pr = PullRequest::from_json(&v)?;
            if pr.head_ref == head && pr.base_ref == base {
                return Ok(Some(pr));
            }
        }
        Ok(None)
    }

    /// Open a pull request.
    pub async fn create_pull_request(
        &self,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> std::result::Result<PullRequest, ApiError> {
        let b = json!({
            "title": truncate(title, 250),
            "head": head,
            "base": base,
            "body": truncate(body, 60_000),
            "maintainer_can_modify": false,
            "draft": false,
        });
        let a = self
            .call(Method::POST, &self.repo_path("/pulls"), Some(&b), &[])
            .await?;
        PullRequest::from_json(&a.body)
    }

    /// Update a pull request's title and body.
    pub async fn update_pull_request(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> std::result::Result<PullRequest, ApiError> {
        let b = json!({ "title": truncate(title, 250), "body": truncate(body, 60_000) });
        let a = self
            .call(
                Method::PATCH,
                &self.repo_path(&format!("/pulls/{number}")),
                Some(&b),
                &[],
            )
            .await?;
        PullRequest::from_json(&a.body)
    }

    /// Get one pull request.
    pub async fn get_pull_request(
        &self,
        number: u64,
    ) -> std::result::Result<PullRequest, ApiError> {
        let a = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/pulls/{number}")),
                None,
                &[],
            )
            .await?;
        PullRequest::from_json(&a.body)
    }

    /// Review state of a pull request on `head_sha` (reviews on older commits do not count).
    pub async fn approval(
        &self,
        number: u64,
        head_sha: &str,
    ) -> std::result::Result<Approval, ApiError> {
        let a = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/pulls/{number}/reviews?per_page=100")),
                None,
                &[],
            )
            .await?;
        let reviews: Vec<Review> =
            serde_json::from_value(a.body).map_err(|e| ApiError::Decode {
                op: "GET /pulls/reviews".into(),
                detail: e.to_string(),
            })?;
        Ok(approval_from_reviews(&reviews, head_sha))
    }

    /// Combined checks of a commit: commit statuses and check runs.
    pub async fn checks(&self, sha: &str) -> std::result::Result<Checks, ApiError> {
        let (st, runs) = self.statuses_and_runs(sha).await?;
        Ok(checks_from_json(&st, &runs))
    }

    /// Each commit status and check run of a commit, by name ([`context_states`]).
    pub async fn contexts(
        &self,
        sha: &str,
    ) -> std::result::Result<std::collections::BTreeMap<String, ContextState>, ApiError> {
        let (st, runs) = self.statuses_and_runs(sha).await?;
        Ok(context_states(&contexts_from_json(&st, &runs)))
    }

    async fn statuses_and_runs(&self, sha: &str) -> std::result::Result<(Value, Value), ApiError> {
        let st = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/commits/{sha}/status?per_page=100")),
                None,
                &[],
            )
            .await?;
        let runs = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/commits/{sha}/check-runs?per_page=100")),
                None,
                &[],
            )
            .await?;
        Ok((st.body, runs.body))
    }

    /// Post a commit status on `sha` (a plan job's record: `plan::review`'s context and
    /// description). A repeated post only adds a newer status of the same context.
    pub async fn create_commit_status(
        &self,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> std::result::Result<(), ApiError> {
        let mut body = json!({
            "state": state,
            "context": context,
            "description": truncate(description, 140),
        });
        if let Some(u) = target_url {
            body["target_url"] = json!(u);
        }
        self.call(
            Method::POST,
            &self.repo_path(&format!("/statuses/{sha}")),
            Some(&body),
            &[],
        )
        .await?;
        Ok(())
    }

    /// The commit statuses of `sha` (newest first as GitHub lists them; at most 100, which
    /// holds many plans of one commit).
    pub async fn commit_statuses(
        &self,
        sha: &str,
    ) -> std::result::Result<Vec<crate::plan::review::Status>, ApiError> {
        let a = self
            .call(
                Method::GET,
                &self.repo_path(&format!("/commits/{sha}/statuses?per_page=100")),
                None,
                &[],
            )
            .await?;
        let op = "GET commit statuses";
        let list = a.body.as_array().ok_or_else(|| ApiError::Decode {
            op: op.into(),
            detail: "not a list".into(),
        })?;
        list.iter()
            .map(|s| {
                let at = str_field(s, "created_at", op)?;
                Ok(crate::plan::review::Status {
                    context: str_field(s, "context", op)?,
                    state: str_field(s, "state", op)?,
                    description: s
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    target_url: s
                        .get("target_url")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    created_at: time::OffsetDateTime::parse(
                        &at,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| ApiError::Decode {
                        op: op.into(),
                        detail: "`created_at` is not a time".into(),
                    })?,
                })
            })
            .collect()
    }

    // ---------------------------------------------------------------- actions

    /// Dispatch a workflow (`workflow` = file name such as `deploy.yml`, or its id) on `git_ref`.
    pub async fn dispatch_workflow(
        &self,
        workflow: &str,
        git_ref: &str,
        inputs: &serde_json::Map<String, Value>,
    ) -> std::result::Result<(), ApiError> {
        let b = json!({ "ref": git_ref, "inputs": inputs });
        self.call(
            Method::POST,
            &self.repo_path(&format!(
                "/actions/workflows/{}/dispatches",
                path_segment(workflow)
            )),
            Some(&b),
            &[],
        )
        .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- pull request comments

    /// `GET /user`: the token's user, or `None` when the token may not ask (HTTP 403, as for
    /// `GITHUB_TOKEN` and GitHub App installation tokens).
    pub async fn authenticated_user(&self) -> std::result::Result<Option<Author>, ApiError> {
        let a = self.call(Method::GET, "/user", None, &[403]).await?;
        if a.status.as_u16() == 403 {
            return Ok(None);
        }
        Ok(Some(author_from_json(&a.body)))
    }

    /// One page (up to 100) of the comments of issue or pull request `number`: the first page
    /// when `next` is `None`, else the target a [`NextPage::Follow`] gave. Pagination links
    /// are followed only on the API origin ([`next_page`]).
    pub async fn issue_comments_page(
        &self,
        number: u64,
        next: Option<&str>,
    ) -> std::result::Result<(Vec<IssueComment>, NextPage), ApiError> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let a = match next {
            None => {
                let first = format!("{path}?per_page=100");
                self.call(Method::GET, &first, None, &[]).await?
            }
            Some(t) => {
                let op = format!("GET {path}");
                self.call_at(Method::GET, t, op, None, &[]).await?
            }
        };
        let items = a
            .body
            .as_array()
            .ok_or_else(|| ApiError::Decode {
                op: format!("GET {path}"),
                detail: "not a list of comments".into(),
            })?
            .iter()
            .map(IssueComment::from_json)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((items, next_page(&a.headers, &self.origin)))
    }

    /// Create a comment on issue or pull request `number`: one POST, never repeated here
    /// ([`Client::upsert_comment`] looks before posting again).
    pub async fn create_issue_comment(
        &self,
        number: u64,
        body: &str,
    ) -> std::result::Result<IssueComment, ApiError> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let a = self
            .call(Method::POST, &path, Some(&json!({ "body": body })), &[])
            .await?;
        IssueComment::from_json(&a.body)
    }

    /// Replace the body of comment `id` (PATCH, as GitHub documents it).
    pub async fn update_issue_comment(
        &self,
        id: u64,
        body: &str,
    ) -> std::result::Result<IssueComment, ApiError> {
        let path = self.repo_path(&format!("/issues/comments/{id}"));
        let a = self
            .call(Method::PATCH, &path, Some(&json!({ "body": body })), &[])
            .await?;
        IssueComment::from_json(&a.body)
    }

    /// Who our comments are written by: `author` when given, else `GET /user`
    /// ([`comment::identity`] decides what a 403 means).
    async fn comment_identity(
        &self,
        author: Option<&str>,
        notes: &mut Vec<String>,
    ) -> std::result::Result<Identity, ApiError> {
        if let Some(a) = author {
            return Ok(Identity::Login(a.to_string()));
        }
        let (me, note) = comment::identity(self.authenticated_user().await?);
        notes.extend(note);
        Ok(me)
    }

    /// Search pull request `pr`'s comments for ours ([`Client::find_marked`]).
    async fn find_comment(
        &self,
        pr: u64,
        marker: &str,
        author: Option<&str>,
        me: &mut Option<Identity>,
        notes: &mut Vec<String>,
    ) -> std::result::Result<(Option<IssueComment>, Found), ApiError> {
        let page = |next: Option<String>| async move {
            self.issue_comments_page(pr, next.as_deref()).await
        };
        self.find_marked(
            marker,
            author,
            me,
            notes,
            "comments",
            page,
            IssueComment::view,
        )
        .await
    }

    /// Search a listing, page by page (at most [`COMMENT_PAGES_MAX`]), for ours
    /// ([`comment::pick`]: our marker at the end, our identity as the author). The identity is
    /// asked for only once an item with our marker exists. `what` names the items in notes.
    #[allow(clippy::too_many_arguments)]
    async fn find_marked<T, P, F>(
        &self,
        marker: &str,
        author: Option<&str>,
        me: &mut Option<Identity>,
        notes: &mut Vec<String>,
        what: &str,
        page: P,
        view: for<'a> fn(&'a T) -> (u64, &'a Author, &'a str),
    ) -> std::result::Result<(Option<T>, Found), ApiError>
    where
        P: Fn(Option<String>) -> F,
        F: Future<Output = std::result::Result<(Vec<T>, NextPage), ApiError>>,
    {
        let mut found = Found::default();
        let mut next: Option<String> = None;
        for _ in 0..COMMENT_PAGES_MAX {
            let (items, after) = page(next.take()).await?;
            if items
                .iter()
                .any(|c| comment::ends_with_marker(view(c).2, marker))
            {
                if me.is_none() {
                    *me = Some(self.comment_identity(author, notes).await?);
                }
                if let Some(me) = me.as_ref() {
                    comment::pick(items.iter().map(view), marker, me, &mut found);
                }
                if let Some(id) = found.ours {
                    return Ok((items.into_iter().find(|c| view(c).0 == id), found));
                }
            }
            match after {
                NextPage::End => break,
                NextPage::Follow(t) => next = Some(t),
                NextPage::Foreign(origin) => {
                    notes.push(format!(
                        "GitHub's pagination link points to another origin ({origin}); not following it with the token, so older {what} were not searched"
                    ));
                    break;
                }
            }
        }
        Ok((None, found))
    }

    /// The one plan comment of pull request `pr` for `key`: ours (see [`Client::find_comment`])
    /// is updated in place, else one is created. Comments by anyone else are never edited.
    /// F15: when the create POST's outcome is unknown, the comments are searched for ours
    /// again before posting again (and a found one gets this body), so a lost answer never
    /// makes a second comment.
    pub async fn upsert_comment(
        &self,
        pr: u64,
        key: &str,
        author: Option<&str>,
        body: &str,
    ) -> std::result::Result<Outcome, ApiError> {
        let marker = &comment::marker(key);
        let mut notes = Vec::new();
        let mut me = None;
        let (ours, found) = self
            .find_comment(pr, marker, author, &mut me, &mut notes)
            .await?;
        if let Some(me) = &me {
            notes.extend(comment::foreign_notes(&found, me));
        }
        if let Some(c) = ours {
            let c = self.update_issue_comment(c.id, body).await?;
            return Ok(Outcome::Updated {
                id: c.id,
                url: c.html_url,
                notes,
            });
        }
        let create = || self.create_issue_comment(pr, body);
        let find = || async move {
            let (mut me, mut ignored) = (None, Vec::new());
            let (ours, _) = self
                .find_comment(pr, marker, author, &mut me, &mut ignored)
                .await?;
            match ours {
                Some(c) if c.body != body => self.update_issue_comment(c.id, body).await.map(Some),
                other => Ok(other),
            }
        };
        let looking = format!("our comment (`{}`)", single_line(key));
        let found = |c: &IssueComment| format!("comment {}", c.id);
        let c = self.create_once(&looking, found, create, find).await?;
        Ok(Outcome::Created {
            id: c.id,
            url: c.html_url,
            notes,
        })
    }
}

impl Client {
    // ---------------------------------------------------------------- drift issues

    /// One page (up to 100) of the repository's open issues carrying `label` (pull requests,
    /// which the endpoint lists too, are left out): the first page when `next` is `None`, else
    /// the target a [`NextPage::Follow`] gave.
    pub async fn open_issues_page(
        &self,
        label: &str,
        next: Option<&str>,
    ) -> std::result::Result<(Vec<Issue>, NextPage), ApiError> {
        let path = self.repo_path("/issues");
        let a = match next {
            None => {
                let first = format!("{path}?labels={}&state=open&per_page=100", enc(label));
                self.call(Method::GET, &first, None, &[]).await?
            }
            Some(t) => {
                let op = format!("GET {path}");
                self.call_at(Method::GET, t, op, None, &[]).await?
            }
        };
        let items = a
            .body
            .as_array()
            .ok_or_else(|| ApiError::Decode {
                op: format!("GET {path}"),
                detail: "not a list of issues".into(),
            })?
            .iter()
            .filter(|v| v.get("pull_request").is_none_or(Value::is_null))
            .map(Issue::from_json)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((items, next_page(&a.headers, &self.origin)))
    }

    /// Every open issue with `label` whose body `matches` (by anyone: a caller that blocks on
    /// it fails closed), at most [`COMMENT_PAGES_MAX`] pages; and whether the search ended
    /// early (a foreign pagination link).
    pub async fn open_issues_matching(
        &self,
        label: &str,
        matches: impl Fn(&str) -> bool,
    ) -> std::result::Result<(Vec<Issue>, bool), ApiError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..COMMENT_PAGES_MAX {
            let (items, after) = self.open_issues_page(label, next.as_deref()).await?;
            out.extend(items.into_iter().filter(|i| matches(&i.body)));
            match after {
                NextPage::End => return Ok((out, false)),
                NextPage::Follow(t) => next = Some(t),
                NextPage::Foreign(_) => return Ok((out, true)),
            }
        }
        Ok((out, true))
    }

    /// Open an issue: one POST, never repeated here ([`Client::sync_drift_issue`] looks
    /// before posting again).
    pub async fn create_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[&str],
    ) -> std::result::Result<Issue, ApiError> {
        let path = self.repo_path("/issues");
        let b = json!({ "title": title, "body": body, "labels": labels });
        let a = self.call(Method::POST, &path, Some(&b), &[]).await?;
        Issue::from_json(&a.body)
    }

    /// Change issue `number` (PATCH with the fields in `patch`: `title`, `body`, `state`,
    /// `state_reason`).
    pub async fn update_issue(
        &self,
        number: u64,
        patch: &Value,
    ) -> std::result::Result<Issue, ApiError> {
        let path = self.repo_path(&format!("/issues/{number}"));
        let a = self.call(Method::PATCH, &path, Some(patch), &[]).await?;
        Issue::from_json(&a.body)
    }

    /// Our open drift issue of `key`: the label, our marker at the end, our identity as author.
    async fn find_drift_issue(
        &self,
        marker: &str,
        author: Option<&str>,
        me: &mut Option<Identity>,
        notes: &mut Vec<String>,
    ) -> std::result::Result<(Option<Issue>, Found), ApiError> {
        let page = |next: Option<String>| async move {
            self.open_issues_page(drift::LABEL, next.as_deref()).await
        };
        self.find_marked(marker, author, me, notes, "issues", page, Issue::view)
            .await
    }

    /// The one drift issue of `place` ([`drift::next_step`]): opened when there is drift and
    /// none is open, updated in place while there is, commented on and closed when the drift
    /// is gone. Issues by anyone else are never edited. F15: when the create POST's outcome is
    /// unknown, the open issues are searched for ours before posting again.
    pub async fn sync_drift_issue(
        &self,
        place: &drift::Place,
        drifted: bool,
        body: &str,
        author: Option<&str>,
    ) -> std::result::Result<(drift::IssueOutcome, Vec<String>), ApiError> {
        let marker = &drift::issue_marker(&place.key());
        let title = &drift::issue_title(place);
        let mut notes = Vec::new();
        let mut me = None;
        let (ours, found) = self
            .find_drift_issue(marker, author, &mut me, &mut notes)
            .await?;
        if let Some(me) = &me {
            notes.extend(comment::foreign_notes(&found, me));
        }
        let outcome = match drift::next_step(drifted, ours.as_ref().map(|i| i.number)) {
            drift::Step::Nothing => drift::IssueOutcome::Nothing,
            drift::Step::Update(n) => {
                let i = self
                    .update_issue(n, &json!({ "title": title, "body": body }))
                    .await?;
                drift::IssueOutcome::Updated(i.number, i.html_url)
            }
            drift::Step::Close(n) => {
                self.create_issue_comment(n, &drift::close_comment(place))
                    .await?;
                let i = self
                    .update_issue(
                        n,
                        &json!({ "state": "closed", "state_reason": "completed" }),
                    )
                    .await?;
                drift::IssueOutcome::Closed(i.number, i.html_url)
            }
            drift::Step::Open => {
                let create = || self.create_issue(title, body, &[drift::LABEL]);
                let find = || async move {
                    let (mut me, mut ignored) = (None, Vec::new());
                    let (ours, _) = self
                        .find_drift_issue(marker, author, &mut me, &mut ignored)
                        .await?;
                    Ok(ours)
                };
                let looking = format!("our drift issue (`{}`)", single_line(&place.key()));
                let found = |i: &Issue| format!("issue #{}", i.number);
                let i = self.create_once(&looking, found, create, find).await?;
                drift::IssueOutcome::Opened(i.number, i.html_url)
            }
        };
        Ok((outcome, notes))
    }
}

/// An issue (the fields the drift issue uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Number.
    pub number: u64,
    /// Web URL.
    pub html_url: String,
    /// Body (empty when GitHub sends none).
    pub body: String,
    /// Who opened it.
    pub author: Author,
}

impl Issue {
    /// What [`comment::pick`] reads: number, author, body.
    fn view(&self) -> (u64, &Author, &str) {
        (self.number, &self.author, &self.body)
    }

    /// Decode from GitHub's JSON (`issue`).
    pub fn from_json(v: &Value) -> std::result::Result<Issue, ApiError> {
        let (number, html_url, body, author) = posted(v, "number", "issue")?;
        Ok(Issue {
            number,
            html_url,
            body,
            author,
        })
    }
}

/// At most this many pages of comments are searched for ours.
pub const COMMENT_PAGES_MAX: usize = 50;

/// A comment on an issue or pull request (the fields the upsert uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueComment {
    /// Id.
    pub id: u64,
    /// Web URL.
    pub html_url: String,
    /// Body (empty when GitHub sends none).
    pub body: String,
    /// Who wrote it.
    pub author: Author,
}

impl IssueComment {
    /// What [`comment::pick`] reads: id, author, body.
    fn view(&self) -> (u64, &Author, &str) {
        (self.id, &self.author, &self.body)
    }

    /// Decode from GitHub's JSON (`issue-comment`).
    pub fn from_json(v: &Value) -> std::result::Result<IssueComment, ApiError> {
        let (id, html_url, body, author) = posted(v, "id", "issue comment")?;
        Ok(IssueComment {
            id,
            html_url,
            body,
            author,
        })
    }
}

/// What an issue and a comment share: the `key` number, `html_url`, `body` (empty when GitHub
/// sends none) and `user`.
fn posted(
    v: &Value,
    key: &str,
    op: &str,
) -> std::result::Result<(u64, String, String, Author), ApiError> {
    Ok((
        u64_field(v, key, op)?,
        str_field(v, "html_url", op)?,
        v.get("body")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        author_from_json(v.get("user").unwrap_or(&Value::Null)),
    ))
}

/// A `simple-user` as far as authorship goes; a missing user (a deleted account) has an empty
/// login and id 0, which no identity matches.
fn author_from_json(v: &Value) -> Author {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Author {
        login: s("login"),
        id: v.get("id").and_then(Value::as_u64).unwrap_or(0),
        kind: s("type"),
    }
}

/// Where a listing's `Link: <...>; rel="next"` leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// No next page.
    End,
    /// The next page on the API origin: its path and query, to request as they are.
    Follow(String),
    /// A next page on another origin, never requested (the token would go with it):
    /// `scheme://authority`, for messages.
    Foreign(String),
}

/// Read the `rel="next"` target of a `Link` header and decide whether it may be followed:
/// only to the API's own origin ([`same_origin`]). Pure.
pub fn next_page(headers: &HeaderMap, origin: &url::Url) -> NextPage {
    let links = headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for link in links {
        let mut parts = link.split(';');
        let target = parts.next().unwrap_or("").trim();
        let is_next = parts.any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            continue;
        };
        if !is_next {
            continue;
        }
        let Ok(uri) = target.parse::<http::Uri>() else {
            return NextPage::Foreign(format!("an unreadable link `{}`", single_line(target)));
        };
        let rest = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if uri.scheme().is_none() && uri.authority().is_none() && rest.starts_with('/') {
            return NextPage::Follow(rest.to_string());
        }
        if same_origin(&uri, origin) {
            return NextPage::Follow(rest.to_string());
        }
        return NextPage::Foreign(format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            single_line(uri.authority().map(|a| a.as_str()).unwrap_or("?"))
        ));
    }
    NextPage::End
}

/// Is `next` (a `Link: rel="next"` target) on the same origin as the API base? The token goes
/// with every request the client sends, so a pagination link to any other scheme, host or port
/// (a hostile or misconfigured server, a proxy) is never followed.
pub fn same_origin(next: &http::Uri, base: &url::Url) -> bool {
    let scheme_ok = next.scheme_str() == Some(base.scheme());
    let host_ok = next
        .host()
        .zip(base.host_str())
        .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b));
    let default = |s: &str| match s {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    let port_ok = next
        .port_u16()
        .or_else(|| next.scheme_str().and_then(default))
        == base.port_or_known_default();
    scheme_ok && host_ok && port_ok
}

// -------------------------------------------------------------------- the blocking bridge

/// The one bridge from the (synchronous) commands to the GitHub API: a [`Client`] with its
/// own runtime. [`Blocking::block`] runs one of the client's futures to completion and
/// forwards the client's notices (rate-limit waits, unknown outcomes and what was found) to the
/// runner's log as they happen. Every command that calls GitHub goes through it.
pub struct Blocking<'r> {
    rt: tokio::runtime::Runtime,
    /// The client; run its futures with [`Blocking::block`].
    pub client: Client,
    notices: std::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    runner: &'r Runner,
}

impl std::fmt::Debug for Blocking<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "github::Blocking({:?})", self.client)
    }
}

impl<'r> Blocking<'r> {
    /// Start a runtime and build the client on it (no network).
    pub fn open(cfg: &Config, runner: &'r Runner) -> Result<Blocking<'r>> {
        let rt = crate::net::runtime()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let client = {
            // octocrab starts its workers when the client is built: build it inside the runtime.
            let _g = rt.enter();
            Client::new(cfg, move |m| {
                let _ = tx.send(m.to_string());
            })?
        };
        Ok(Blocking {
            rt,
            client,
            notices: std::sync::Mutex::new(rx),
            runner,
        })
    }

    /// Run `f` (a call on [`Blocking::client`]) to completion; each notice the client gives
    /// meanwhile is printed as one neutralised log line as soon as it is given.
    pub fn block<F: Future>(&self, f: F) -> F::Output {
        let mut guard = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        let rx: &mut tokio::sync::mpsc::UnboundedReceiver<String> = &mut guard;
        let runner = self.runner;
        let mut f = std::pin::pin!(f);
        self.rt.block_on(std::future::poll_fn(|cx| {
            while let std::task::Poll::Ready(Some(m)) = rx.poll_recv(cx) {
                runner.info(&single_line(&m));
            }
            let out = f.as_mut().poll(cx);
            if out.is_ready() {
                while let Ok(m) = rx.try_recv() {
                    runner.info(&single_line(&m));
                }
            }
            out
        }))
    }
}

fn transport_detail(e: &octocrab::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        let first = s.lines().next().unwrap_or("").to_string();
        if !first.is_empty() && !parts.contains(&first) {
            parts.push(first);
        }
        cur = err.source();
    }
    let d = parts.join(": ");
    let lower = d.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("timeout") || lower.contains("elapsed") {
        format!("timed out ({})", single_line(&d))
    } else {
        single_line(&d)
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Percent-encode a path segment, leaving git/workflow-name characters (`A-Za-z0-9._-`) readable.
fn path_segment(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'_')
        .remove(b'-');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn str_field(v: &Value, k: &str, op: &str) -> std::result::Result<String, ApiError> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::Decode {
            op: op.into(),
            detail: format!("missing `{k}`"),
        })
}

fn u64_field(v: &Value, k: &str, op: &str) -> std::result::Result<u64, ApiError> {
    v.get(k)
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::Decode {
            op: op.into(),
            detail: format!("missing `{k}`"),
        })
}

// -------------------------------------------------------------------- deployments model

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    /// Full commit sha.
    pub sha: String,
    /// Environment name.
    pub environment: String,
    /// GitHub's `production_environment` (always sent explicitly).
    pub production: bool,
    /// Status contexts that must pass (sent explicitly; empty = none, what a rollback needs).
    pub required_contexts: Vec<String>,
    /// Identifies our run (`<run_id>.<run_attempt>`), carried in the payload (F15).
    pub run_key: String,
    /// Short description.
    pub description: String,
    /// Extra payload fields (image, plan digest, run URL, ...).
    pub extra: serde_json::Map<String, Value>,
    /// GitHub's `transient_environment` (sent explicitly): a preview's environment
    /// (`<env>/pr-<n>`) goes away with its pull request.
    pub transient: bool,
}

impl NewDeployment {
    /// The request body: `auto_merge: false`, explicit `required_contexts` and
    /// `production_environment`, payload `{ "gitops": { "run_key": ..., ... } }`.
    pub fn body(&self) -> Value {
        let mut gitops = self.extra.clone();
        gitops.insert("run_key".into(), json!(self.run_key));
        json!({
            "ref": self.sha,
            "task": "deploy",
            "auto_merge": false,
            "required_contexts": self.required_contexts,
            "payload": { "gitops": gitops },
            "environment": self.environment,
            "description": truncate(&self.description, 140),
            "transient_environment": self.transient,
            "production_environment": self.production,
        })
    }
}

/// A deployment as GitHub returns it (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Id.
    pub id: u64,
    /// Commit.
    pub sha: String,
    /// Environment.
    pub environment: String,
    /// Our run key from the payload, when the deployment is ours.
    pub run_key: Option<String>,
    /// The payload's `gitops` object (untrusted).
    pub gitops: Value,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

impl Deployment {
    /// Decode from GitHub's JSON.
    pub fn from_json(v: &Value) -> std::result::Result<Deployment, ApiError> {
        let op = "deployment";
        let payload = v.get("payload").cloned().unwrap_or(Value::Null);
        // GitHub returns the payload as an object, or as a JSON string for old deployments.
        let payload = match payload {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
            p => p,
        };
        let gitops = payload.get("gitops").cloned().unwrap_or(Value::Null);
        Ok(Deployment {
            id: u64_field(v, "id", op)?,
            sha: str_field(v, "sha", op)?,
            environment: v
                .get("environment")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            run_key: gitops
                .get("run_key")
                .and_then(Value::as_str)
                .map(str::to_string),
            gitops,
            created_at: v
                .get("created_at")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }
}

/// Deployment status states we post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    /// Running.
    InProgress,
    /// Done.
    Success,
    /// Failed.
    Failure,
    /// Errored.
    Error,
    /// Superseded.
    Inactive,
}

impl DeploymentState {
    /// GitHub's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
        }
    }
}

/// One status to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// State.
    pub state: DeploymentState,
    /// The run's URL.
    pub log_url: Option<String>,
    /// Where the environment can be seen.
    pub environment_url: Option<String>,
    /// Short description.
    pub description: Option<String>,
    /// GitHub's `auto_inactive` (unset = GitHub's default).
    pub auto_inactive: Option<bool>,
}

// -------------------------------------------------------------------- pull requests model

/// A pull request (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Number.
    pub number: u64,
    /// Web URL.
    pub html_url: String,
    /// `open` or `closed`.
    pub state: String,
    /// Merged (GitHub marks a PR merged when its head lands on the base by a push).
    pub merged: bool,
    /// Draft.
    pub draft: bool,
    /// Head commit.
    pub head_sha: String,
    /// Head branch.
    pub head_ref: String,
    /// Base branch.
    pub base_ref: String,
}

impl PullRequest {
    /// Decode from GitHub's JSON.
    pub fn from_json(v: &Value) -> std::result::Result<PullRequest, ApiError> {
        let op = "pull request";
        let head = v.get("head").cloned().unwrap_or(Value::Null);
        let base = v.get("base").cloned().unwrap_or(Value::Null);
        Ok(PullRequest {
            number: u64_field(v, "number", op)?,
            html_url: str_field(v, "html_url", op)?,
            state: str_field(v, "state", op)?,
            merged: v.get("merged").and_then(Value::as_bool).unwrap_or(false)
                || v.get("merged_at").is_some_and(|m| !m.is_null()),
            draft: v.get("draft").and_then(Value::as_bool).unwrap_or(false),
            head_sha: str_field(&head, "sha", op)?,
            head_ref: str_field(&head, "ref", op)?,
            base_ref: str_field(&base, "ref", op)?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Review {
    #[serde(default)]
    user: Option<ReviewUser>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    commit_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReviewUser {
    login: String,
}

/// Review state of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// At least one approval on the head commit and no outstanding change request.
    Approved(Vec<String>),
    /// Someone's latest review requests changes.
    ChangesRequested(Vec<String>),
    /// No approval yet on the head commit.
    Pending,
}

fn approval_from_reviews(reviews: &[Review], head_sha: &str) -> Approval {
    use std::collections::BTreeMap;
    // Each reviewer's latest decisive review (COMMENTED does not change a decision).
    let mut latest: BTreeMap<String, (&str, Option<&str>)> = BTreeMap::new();
    for r in reviews {
        let Some(u) = &r.user else { continue };
        match r.state.as_str() {
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED" => {
                latest.insert(u.login.clone(), (r.state.as_str(), r.commit_id.as_deref()));
            }
            _ => {}
        }
    }
    let changes: Vec<String> = latest
        .iter()
        .filter(|(_, (s, _))| *s == "CHANGES_REQUESTED")
        .map(|(u, _)| u.clone())
        .collect();
    if !changes.is_empty() {
        return Approval::ChangesRequested(changes);
    }
    let approvers: Vec<String> = latest
        .iter()
        .filter(|(_, (s, c))| *s == "APPROVED" && *c == Some(head_sha))
        .map(|(u, _)| u.clone())
        .collect();
    if approvers.is_empty() {
        Approval::Pending
    } else {
        Approval::Approved(approvers)
    }
}

/// Combined checks of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checks {
    /// Everything reported passed (or nothing reports at all: `none` is true).
    Passed {
        /// No status and no check run exists.
        none: bool,
    },
    /// Some are still running.
    Pending(Vec<String>),
    /// Some failed.
    Failed(Vec<String>),
}

/// Every commit status and check run of a commit, by name, in the order GitHub lists them:
/// statuses first, then check runs. `success` (and a check run's `neutral` / `skipped`) is
/// green; a status `pending` or a check run not `completed` is pending; anything else is red.
fn contexts_from_json(status: &Value, runs: &Value) -> Vec<(String, ContextState)> {
    let mut out = Vec::new();
    let list = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    for s in list(status, "statuses") {
        let state = match text(&s, "state").as_str() {
            "success" => ContextState::Success,
            "pending" => ContextState::Pending,
            _ => ContextState::Failure,
        };
        let name = Some(text(&s, "context")).filter(|n| !n.is_empty());
        out.push((name.unwrap_or_else(|| "?".into()), state));
    }
    for r in list(runs, "check_runs") {
        let state = if text(&r, "status") != "completed" {
            ContextState::Pending
        } else {
            match text(&r, "conclusion").as_str() {
                "success" | "neutral" | "skipped" => ContextState::Success,
                _ => ContextState::Failure,
            }
        };
        let name = Some(text(&r, "name")).filter(|n| !n.is_empty());
        out.push((name.unwrap_or_else(|| "?".into()), state));
    }
    out
}

fn checks_from_json(status: &Value, runs: &Value) -> Checks {
    let all = contexts_from_json(status, runs);
    let named = |want: ContextState| -> Vec<String> {
        all.iter()
            .filter(|(_, s)| *s == want)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let (failed, pending) = (named(ContextState::Failure), named(ContextState::Pending));
    if !failed.is_empty() {
        Checks::Failed(failed)
    } else if !pending.is_empty() {
        Checks::Pending(pending)
    } else {
        Checks::Passed {
            none: all.is_empty(),
        }
    }
}

/// The state of each context of a commit, one per name: pending if any of that name is
/// pending, else red if any is red, else green.
pub fn context_states(
    all: &[(String, ContextState)],
) -> std::collections::BTreeMap<String, ContextState> {
    let mut out = std::collections::BTreeMap::new();
    for (n, s) in all {
        let e = out.entry(n.clone()).or_insert(*s);
        *e = match (*e, *s) {
            (ContextState::Pending, _) | (_, ContextState::Pending) => ContextState::Pending,
            (ContextState::Failure, _) | (_, ContextState::Failure) => ContextState::Failure,
            _ => ContextState::Success,
        };
    }
    out
}

// -------------------------------------------------------------------- tokens

/// What kind of token we hold, which decides whether a push starts workflows (F17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The workflow's `GITHUB_TOKEN`: its pushes start no workflow.
    GithubToken,
    /// A GitHub App installation token: its pushes start workflows.
    App,
    /// A personal access token or user token: its pushes start workflows.
    User,
}

impl TokenKind {
    /// Do pushes made with this token trigger `push` workflows?
    pub fn push_triggers_workflows(self) -> bool {
        !matches!(self, TokenKind::GithubToken)
    }
    /// Name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::GithubToken => "github-token",
            TokenKind::App => "app",
            TokenKind::User => "user",
        }
    }
}

/// Tell the token kind: an explicit `token-kind` input (`github-token`, `app`, `user`) wins;
/// `auto` looks at the prefix. `ghs_` is an installation token, which the workflow's
/// `GITHUB_TOKEN` also is: without an explicit kind we assume `GITHUB_TOKEN` (the safe side:
/// we dispatch the deploy workflow rather than risk no deploy at all).
pub fn token_kind(token: &str, explicit: &str) -> Result<TokenKind> {
    match explicit {
        "github-token" => return Ok(TokenKind::GithubToken),
        "app" => return Ok(TokenKind::App),
        "user" => return Ok(TokenKind::User),
        "auto" | "" => {}
        other => {
            return Err(Failure::usage(
                "token-kind",
                format!(
                    "`{}` is not one of auto, github-token, app, user",
                    single_line(other)
                ),
            ))
        }
    }
    Ok(
        if ["ghp_", "github_pat_", "gho_", "ghu_"]
            .iter()
            .any(|p| token.starts_with(p))
        {
            TokenKind::User
        } else {
            TokenKind::GithubToken
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn rate_limit_waits_follow_f14_order() {
        let p = RetryPolicy::default();
        // retry-after wins
        let h = hdrs(&[
            ("retry-after", "7"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2000"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &h, "", 1, 1000, &p),
            Some(Duration::from_secs(7))
        );
        // else until reset (+1 s)
        let h = hdrs(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &h, "", 1, 1000, &p),
            Some(Duration::from_secs(31))
        );
        // reset in the past: one second
        assert_eq!(
            rate_limit_wait(429, &h, "", 1, 5000, &p),
            Some(Duration::from_secs(1))
        );
        // else back off from 60 s, doubling
        let secondary = r#"{"message":"You have exceeded a secondary rate limit"}"#;
        assert_eq!(
            rate_limit_wait(403, &HeaderMap::new(), secondary, 1, 0, &p),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(403, &HeaderMap::new(), secondary, 2, 0, &p),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            rate_limit_wait(429, &HeaderMap::new(), "", 1, 0, &p),
            Some(Duration::from_secs(60))
        );
        // a plain permission 403 is not a rate limit
        assert_eq!(
            rate_limit_wait(
                403,
                &HeaderMap::new(),
                r#"{"message":"Resource not accessible by integration"}"#,
                1,
                0,
                &p
            ),
            None
        );
        assert_eq!(rate_limit_wait(500, &h, "", 1, 0, &p), None);
    }

    #[test]
    fn deployment_body_is_explicit() {
        let d = NewDeployment {
            sha: "a".repeat(40),
            environment: "prod".into(),
            production: true,
            required_contexts: vec![],
            run_key: "42.1".into(),
            description: "deploy".into(),
            extra: serde_json::Map::new(),
            transient: false,
        };
        let b = d.body();
        assert_eq!(b["transient_environment"], json!(false));
        assert_eq!(
            NewDeployment {
                transient: true,
                ..d.clone()
            }
            .body()["transient_environment"],
            json!(true)
        );
        assert_eq!(b["auto_merge"], json!(false));
        assert_eq!(b["required_contexts"], json!([]));
        assert_eq!(b["production_environment"], json!(true));
        assert_eq!(b["payload"]["gitops"]["run_key"], json!("42.1"));
        let back = Deployment::from_json(&json!({"id": 5, "sha": d.sha, "environment": "prod", "payload": b["payload"].to_string()})).unwrap();
        assert_eq!(back.run_key.as_deref(), Some("42.1"));
    }

    #[test]
    fn approvals_count_only_the_head_commit_and_latest_decision() {
        let r = |u: &str, s: &str, c: &str| Review {
            user: Some(ReviewUser { login: u.into() }),
            state: s.into(),
            commit_id: Some(c.into()),
        };
        assert_eq!(approval_from_reviews(&[], "h"), Approval::Pending);
        assert_eq!(
            approval_from_reviews(&[r("a", "APPROVED", "old")], "h"),
            Approval::Pending
        );
        assert_eq!(
            approval_from_reviews(&[r("a", "APPROVED", "h"), r("b", "COMMENTED", "h")], "h"),
            Approval::Approved(vec!["a".into()])
        );
        assert_eq!(
            approval_from_reviews(
                &[r("a", "APPROVED", "h"), r("b", "CHANGES_REQUESTED", "h")],
                "h"
            ),
            Approval::ChangesRequested(vec!["b".into()])
        );
        assert_eq!(
            approval_from_reviews(
                &[r("b", "CHANGES_REQUESTED", "h"), r("b", "APPROVED", "h")],
                "h"
            ),
            Approval::Approved(vec!["b".into()])
        );
    }

    #[test]
    fn contexts_are_named_with_their_state() {
        let st = json!({"statuses": [
            {"context": "smoke", "state": "success"},
            {"context": "lint", "state": "pending"},
            {"context": "e2e", "state": "error"}
        ]});
        let runs = json!({"check_runs": [
            {"name": "build", "status": "completed", "conclusion": "skipped"},
            {"name": "smoke", "status": "completed", "conclusion": "failure"},
            {"name": "deploy-check", "status": "queued", "conclusion": null}
        ]});
        let m = context_states(&contexts_from_json(&st, &runs));
        use ContextState::*;
        let want: Vec<(&str, ContextState)> = vec![
            ("build", Success),
            ("deploy-check", Pending),
            ("e2e", Failure),
            ("lint", Pending),
            // A status and a check run of the same name: red if either is.
            ("smoke", Failure),
        ];
        assert_eq!(
            m.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
            want
        );
    }

    #[test]
    fn checks_combine_statuses_and_runs() {
        let none = checks_from_json(
            &json!({"state":"pending","statuses":[]}),
            &json!({"check_runs":[]}),
        );
        assert_eq!(none, Checks::Passed { none: true });
        let ok = checks_from_json(
            &json!({"statuses":[{"context":"ci","state":"success"}]}),
            &json!({"check_runs":[{"name":"t","status":"completed","conclusion":"skipped"}]}),
        );
        assert_eq!(ok, Checks::Passed { none: false });
        let pend = checks_from_json(
            &json!({"statuses":[]}),
            &json!({"check_runs":[{"name":"t","status":"in_progress","conclusion":null}]}),
        );
        assert_eq!(pend, Checks::Pending(vec!["t".into()]));
        let bad = checks_from_json(
            &json!({"statuses":[{"context":"ci","state":"failure"}]}),
            &json!({"check_runs":[]}),
        );
        assert_eq!(bad, Checks::Failed(vec!["ci".into()]));
    }

    #[test]
    fn token_kinds() {
        assert_eq!(token_kind("ghs_x", "auto").unwrap(), TokenKind::GithubToken);
        assert_eq!(token_kind("ghs_x", "app").unwrap(), TokenKind::App);
        assert_eq!(token_kind("ghp_x", "").unwrap(), TokenKind::User);
        assert_eq!(token_kind("github_pat_x", "auto").unwrap(), TokenKind::User);
        assert!(!TokenKind::GithubToken.push_triggers_workflows());
        assert!(token_kind("x", "App").is_err());
    }

    #[test]
    fn urls_and_repositories() {
        validate_api_url("u", "https://api.github.com").unwrap();
        validate_api_url("u", "https://ghe.example.com/api/v3").unwrap();
        validate_api_url("u", "http://127.0.0.1:4010").unwrap();
        for bad in [
            "http://api.github.com",
            "https://u:p@api.github.com",
            "ftp://x",
            "https://x/?a=b",
            "",
            "api.github.com",
        ] {
            assert!(validate_api_url("u", bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_repository("r", "o/r.x").unwrap(),
            ("o".into(), "r.x".into())
        );
        for bad in ["o", "o/", "/r", "o/r/x", "o/..", "o/r x", "../r", "o.o/r"] {
            assert!(validate_repository("r", bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn pagination_links_are_followed_only_on_the_api_origin() {
        let base = url::Url::parse("https://ghe.example.com/api/v3").unwrap();
        let ok = |u: &str| same_origin(&u.parse().unwrap(), &base);
        assert!(ok(
            "https://ghe.example.com/api/v3/repos/o/r/issues/1/comments?page=2"
        ));
        assert!(ok("https://GHE.example.com:443/api/v3/x?page=2"));
        assert!(!ok("https://api.github.com/resource?page=2"));
        assert!(!ok("http://ghe.example.com/api/v3/x?page=2"));
        assert!(!ok("https://ghe.example.com:8443/x"));
        assert!(!ok("https://ghe.example.com.evil.test/x"));
        let local = url::Url::parse("http://127.0.0.1:8080").unwrap();
        assert!(same_origin(
            &"http://127.0.0.1:8080/x?page=2".parse().unwrap(),
            &local
        ));
        assert!(!same_origin(
            &"http://127.0.0.1:9090/x".parse().unwrap(),
            &local
        ));
    }

    #[test]
    fn next_page_follows_only_links_on_the_api_origin() {
        let base = url::Url::parse("https://ghe.example.com/api/v3").unwrap();
        let link = |v: &str| next_page(&hdrs(&[("link", v)]), &base);
        let here = "https://ghe.example.com/api/v3/repos/o/r/issues/1/comments?page=2";
        // (Link header, expected)
        let cases = [
            (
                format!(r#"<{here}>; rel="next", <https://ghe.example.com/x?page=9>; rel="last""#),
                NextPage::Follow("/api/v3/repos/o/r/issues/1/comments?page=2".into()),
            ),
            (
                format!(r#"<https://ghe.example.com/x?page=1>; rel="prev", <{here}>; rel="next""#),
                NextPage::Follow("/api/v3/repos/o/r/issues/1/comments?page=2".into()),
            ),
            (
                r#"<https://api.github.com/x?page=2>; rel="next""#.into(),
                NextPage::Foreign("https://api.github.com".into()),
            ),
            (
                r#"<http://ghe.example.com/x?page=2>; rel="next""#.into(),
                NextPage::Foreign("http://ghe.example.com".into()),
            ),
            (
                r#"<https://ghe.example.com:8443/x>; rel="next""#.into(),
                NextPage::Foreign("https://ghe.example.com:8443".into()),
            ),
            (
                r#"<https://ghe.example.com/x?page=9>; rel="last""#.into(),
                NextPage::End,
            ),
        ];
        for (header, want) in cases {
            assert_eq!(link(&header), want, "{header}");
        }
        assert_eq!(next_page(&HeaderMap::new(), &base), NextPage::End);
    }

    #[test]
    fn comments_decode_with_their_author() {
        let c = IssueComment::from_json(&json!({
            "id": 3, "html_url": "https://github.com/o/r/pull/1#issuecomment-3", "body": "b",
            "user": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
        }))
        .unwrap();
        assert_eq!(
            c.author,
            Author {
                login: "github-actions[bot]".into(),
                id: 41898282,
                kind: "Bot".into()
            }
        );
        // A deleted account (`user: null`) and a missing body: never ours, still listed.
        let ghost =
            IssueComment::from_json(&json!({"id": 4, "html_url": "u", "body": null, "user": null}))
                .unwrap();
        assert_eq!(
            (
                ghost.author.id,
                ghost.author.login.as_str(),
                ghost.body.as_str()
            ),
            (0, "", "")
        );
        assert!(IssueComment::from_json(&json!({"html_url": "u"})).is_err());
    }

    /// A `Write` that the test can read while the runner holds it.
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    // The one bridge prints a notice while the call is still running (a rate-limit wait is
    // seen when it starts, not after it), neutralised to one line, and returns the call's value.
    #[test]
    fn the_bridge_forwards_notices_as_they_happen() {
        let out = Log::default();
        let runner = Runner::new(
            Default::default(),
            Arc::new(std::sync::Mutex::new(out.clone())),
            Arc::new(std::sync::Mutex::new(Log::default())),
        );
        let cfg = Config {
            api_url: "http://127.0.0.1:9".into(),
            repository: "o/r".into(),
            token: Secret::new("ghs_bridge-test-token"),
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        };
        let b = Blocking::open(&cfg, &runner).unwrap();
        let seen_during = b.block(async {
            (b.client.notify)("waiting 1 s\n::error::forged");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let during = out.text();
            (b.client.notify)("after");
            during
        });
        assert!(seen_during.contains("waiting 1 s"), "{seen_during:?}");
        assert!(!seen_during.contains("after"));
        let all = out.text();
        assert!(
            all.contains("after"),
            "the last notice is printed before block returns"
        );
        assert_eq!(all.lines().count(), 2, "one line per notice: {all:?}");
        assert!(!all.contains("\n::error::"), "{all:?}");
    }
}
