//! An OCI distribution client on reqwest (rustls): auth (anonymous, basic, bearer-token
//! challenge, ECR tokens), existence checks, whole-blob uploads with session restarts, cross-repo
//! mounts, manifest reads and writes with digest checks, retries that honour `Retry-After`, an
//! overall deadline, and redirect rules (never to another host for writes, never to link-local or
//! metadata addresses, never from https to http).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use url::Url;

use super::ecr::EcrAuth;
use super::reference::{is_loopback_host, is_metadata_or_link_local, Digest};
use super::source::{Blob, BlobLoc, Manifest, MAX_MANIFEST};
use super::types::ACCEPT_MANIFESTS;
use crate::exit::{Failure, Result};
use crate::runner::{cut, single_line, Runner};
use crate::secret::Secret;

/// Attempts per request (or per blob upload session) before giving up.
pub const MAX_ATTEMPTS: u32 = 6;
/// The longest `Retry-After` we honour in one wait.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Timeout for requests that carry no large body.
pub const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Chunk size for streaming blobs from disk.
pub const CHUNK: usize = 1 << 20;
/// Chunks read (and hashed) ahead of the socket per blob upload from disk.
pub const READ_AHEAD: usize = 2;

/// Credentials for one registry.
pub enum Creds {
    /// No credentials (anonymous, or bearer tokens without a login).
    Anonymous,
    /// Username and password (docker config, environment).
    Basic {
        /// Username.
        user: String,
        /// Password or token.
        pass: Secret,
    },
    /// ECR: GetAuthorizationToken, refreshed before expiry.
    Ecr(EcrAuth),
}

enum AuthState {
    Unknown,
    Open,
    Basic,
    Bearer {
        realm: Url,
        service: Option<String>,
        tokens: HashMap<String, Secret>,
    },
}

/// Counters shared by a transfer (progress lines and the final report).
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes sent in blob bodies (attempts that failed are subtracted).
    pub bytes_sent: AtomicU64,
    /// Blobs uploaded.
    pub blobs_uploaded: AtomicU64,
    /// Blobs found already present.
    pub blobs_present: AtomicU64,
    /// Blobs mounted from another repository.
    pub blobs_mounted: AtomicU64,
    /// Requests that were retried.
    pub retries: AtomicU64,
}

/// Outcome of a manifest PUT.
#[derive(Debug)]
pub enum PutManifest {
    /// Stored; the registry's digest matched ours.
    Ok,
    /// `MANIFEST_BLOB_UNKNOWN`: a blob the manifest names is missing.
    BlobUnknown,
    /// The tag exists and is immutable.
    TagImmutable(String),
}

/// The registry's answer to a cross-repository mount.
#[derive(Debug)]
pub enum Mount {
    /// `201`: the blob is now in the repository.
    Mounted,
    /// `202`: not mounted; upload into this session instead.
    Upload(Url),
}

enum SendError {
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Fatal(Failure),
}

/// A client for one registry endpoint.
pub struct Client<'a> {
    /// The registry host as written in references (for messages and outputs).
    pub host: String,
    base: Url,
    creds: Creds,
    http: reqwest::Client,
    http_follow: reqwest::Client,
    auth: tokio::sync::Mutex<AuthState>,
    force_next: AtomicBool,
    /// The overall deadline.
    pub deadline: Instant,
    /// Counters.
    pub stats: Arc<Stats>,
    runner: &'a Runner,
}

fn redirect_guard(allow_other_hosts: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let first = attempt.previous().first().cloned();
        let to = attempt.url().clone();
        let host = to.host_str().unwrap_or("").to_string();
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        if is_metadata_or_link_local(&host) {
            return attempt.error(format!(
                "refused a redirect to link-local/metadata address {}",
                single_line(&host)
            ));
        }
        if let Some(f) = first {
            if f.scheme() == "https" && to.scheme() != "https" {
                return attempt.error("refused a redirect from https to plain http");
            }
            let same = f.host_str() == to.host_str()
                && f.port_or_known_default() == to.port_or_known_default();
            if !same && !allow_other_hosts {
                return attempt.error(format!(
                    "refused a redirect to another host {}",
                    single_line(&host)
                ));
            }
            if !same
                && to.host_str().is_some_and(is_loopback_host)
                && !f.host_str().is_some_and(is_loopback_host)
            {
                return attempt.error("refused a redirect to a loopback address");
            }
        }
        attempt.follow()
    })
}

fn build_http(allow_other_hosts: bool) -> Result<reqwest::Client> {
    crate::net::client_builder(Duration::from_secs(15))?
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(redirect_guard(allow_other_hosts))
        .user_agent(concat!(
            "gitops-actions-ecr-push/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| Failure::runtime(format!("cannot build HTTP client: {e}")))
}

fn parse_retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    let d = t - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(d.as_seconds_f64().max(0.0)))
}

fn classify(e: &reqwest::Error) -> SendError {
    let chain = error_chain(e);
    if e.is_redirect() || chain.contains("refused a redirect") {
        return SendError::Fatal(Failure::refused(format!("registry request {chain}")));
    }
    if chain.contains("digest mismatch") || chain.contains("source changed") {
        return SendError::Fatal(Failure::runtime(chain));
    }
    SendError::Retry {
        why: chain,
        after: None,
    }
}

/// The error and its sources on one line, without URLs' query strings.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    single_line(&s)
}

fn is_retriable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT || s.is_server_error()
}

/// The error codes in a registry error body (`{"errors":[{"code":...}]}`), and a short text.
pub async fn error_body(resp: reqwest::Response) -> (Vec<String>, String) {
    let status = resp.status();
    let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
    let mut codes = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            for e in errs {
                if let Some(c) = e.get("code").and_then(|c| c.as_str()) {
                    codes.push(c.to_string());
                }
            }
        }
    }
    let text = cut(&String::from_utf8_lossy(&body), 300);
    (codes, single_line(&format!("HTTP {status}: {text}")))
}

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::runtime(format!("reading response: {}", error_chain(&e))))?
    {
        if out.len() + chunk.len() > limit {
            return Err(Failure::runtime(format!(
                "response larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn parse_challenge(h: &str) -> Option<(String, HashMap<String, String>)> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, v) = s.split_once('=')?;
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, rest) = if let Some(stripped) = v.strip_prefix('"') {
            let end = stripped.find('"')?;
            (&stripped[..end], &stripped[end + 1..])
        } else {
            match v.find(',') {
                Some(i) => (&v[..i], &v[i..]),
                None => (v, ""),
            }
        };
        params.insert(k, val.to_string());
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

/// What a client needs to reach a registry.
pub struct Endpoint {
    /// Host as written in references.
    pub host: String,
    /// Base URL actually contacted (`https://host`, or an override).
    pub base: Url,
}

impl Endpoint {
    /// `https://host`, or `http://host` with `plain_http` (loopback only; checked by the caller).
    pub fn for_host(host: &str, plain_http: bool) -> Result<Endpoint> {
        let scheme = if plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| Failure::usage("destination", format!("bad registry host: {e}")))?;
        Ok(Endpoint {
            host: host.to_string(),
            base,
        })
    }
}

impl<'a> Client<'a> {
    /// A client for one registry.
    pub fn new(
        runner: &'a Runner,
        ep: Endpoint,
        creds: Creds,
        deadline: Instant,
        stats: Arc<Stats>,
    ) -> Result<Client<'a>> {
        Ok(Client {
            host: ep.host,
            base: ep.base,
            creds,
            http: build_http(false)?,
            http_follow: build_http(true)?,
            auth: tokio::sync::Mutex::new(AuthState::Unknown),
            force_next: AtomicBool::new(false),
            deadline,
            stats,
            runner,
        })
    }

    /// True when both clients talk to the same registry endpoint (a mount is possible).
    pub fn same_registry(&self, other: &Client<'_>) -> bool {
        self.base == other.base
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("registry path")
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn deadline_failure(&self, what: &str) -> Failure {
        Failure::runtime(format!(
            "deadline reached while {what}: raise `timeout` or check the registry"
        ))
    }

    async fn basic_value(&self, force: bool) -> Result<Option<String>> {
        match &self.creds {
            Creds::Anonymous => Ok(None),
            Creds::Basic { user, pass } => Ok(Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", pass.expose()))
            ))),
            Creds::Ecr(e) => Ok(Some(format!(
                "Basic {}",
                e.token_b64(self.runner, force).await?.expose()
            ))),
        }
    }

    /// Discover how the registry wants to be authenticated (`GET /v2/`).
    async fn ensure_auth(&self) -> Result<()> {
        let mut st = self.auth.lock().await;
        if !matches!(*st, AuthState::Unknown) {
            return Ok(());
        }
        if matches!(self.creds, Creds::Ecr(_)) {
            *st = AuthState::Basic;
            return Ok(());
        }
        let url = self.url("v2/");
        let resp = self
            .retrying("checking the registry", || async {
                self.raw(self.http.get(url.clone()), SMALL_REQUEST_TIMEOUT)
                    .await
            })
            .await?;
        *st = match resp.status() {
            s if s.is_success() => AuthState::Open,
            StatusCode::UNAUTHORIZED => self.challenge_state(resp.headers())?,
            s => {
                return Err(Failure::runtime(format!(
                    "registry {} answered GET /v2/ with HTTP {s}: is it an OCI registry?",
                    self.host
                )))
            }
        };
        Ok(())
    }

    fn challenge_state(&self, h: &HeaderMap) -> Result<AuthState> {
        let ch = h
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        match ch {
            Some((scheme, _)) if scheme == "basic" => {
                if matches!(self.creds, Creds::Anonymous) {
                    Err(Failure::runtime(format!(
                        "registry {} requires a login and no credentials were found (docker config, `registry-username`/`registry-password`)",
                        self.host
                    )))
                } else {
                    Ok(AuthState::Basic)
                }
            }
            Some((scheme, p)) if scheme == "bearer" => {
                let realm = p
                    .get("realm")
                    .and_then(|r| Url::parse(r).ok())
                    .ok_or_else(|| {
                        Failure::runtime("registry sent a bearer challenge without a valid realm")
                    })?;
                let rh = realm.host_str().unwrap_or("");
                if is_metadata_or_link_local(rh) {
                    return Err(Failure::refused(
                        "registry's token realm points at a link-local/metadata address",
                    ));
                }
                // The registry credentials go to the realm: the one rule for such URLs.
                if crate::validate::credential_url("realm", realm.as_str()).is_err() {
                    return Err(Failure::refused(
                        "registry's token realm is not https (plain http only to loopback) or carries userinfo",
                    ));
                }
                Ok(AuthState::Bearer {
                    realm,
                    service: p.get("service").cloned(),
                    tokens: HashMap::new(),
                })
            }
            _ => Err(Failure::runtime(format!(
                "registry {} answered 401 without a usable challenge",
                self.host
            ))),
        }
    }

    async fn auth_value(&self, scope: &str, force: bool) -> Result<Option<String>> {
        self.ensure_auth().await?;
        let mut st = self.auth.lock().await;
        match &mut *st {
            AuthState::Unknown | AuthState::Open => Ok(None),
            AuthState::Basic => {
                drop(st);
                self.basic_value(force).await
            }
            AuthState::Bearer {
                realm,
                service,
                tokens,
            } => {
                if force {
                    tokens.remove(scope);
                }
                if let Some(t) = tokens.get(scope) {
                    return Ok(Some(format!("Bearer {}", t.expose())));
                }
                let mut u = realm.clone();
                {
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scope.split(' ').filter(|s| !s.is_empty()) {
                        q.append_pair("scope", s);
                    }
                }
                let mut rb = self.http.get(u);
                if let Some(b) = self.basic_value(false).await? {
                    rb = rb.header(AUTHORIZATION, b);
                }
                let resp = self
                    .retrying("fetching a registry token", || {
                        let rb = rb.try_clone().expect("GET clones");
                        async move { self.raw(rb, SMALL_REQUEST_TIMEOUT).await }
                    })
                    .await?;
                if !resp.status().is_success() {
                    return Err(Failure::runtime(format!(
                        "registry token service refused the login (HTTP {}): check the credentials",
                        resp.status()
                    )));
                }
                let body = read_limited(resp, 1 << 20).await?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|_| Failure::runtime("registry token service sent invalid JSON"))?;
                let tok = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Failure::runtime("registry token service sent no token"))?;
                let tok = Secret::new(tok);
                self.runner.mask(&tok);
                tokens.insert(scope.to_string(), tok.clone());
                Ok(Some(format!("Bearer {}", tok.expose())))
            }
        }
    }

    /// Send without auth or retries; map transport errors and retriable statuses.
    async fn raw(
        &self,
        rb: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> std::result::Result<reqwest::Response, SendError> {
        let limit = timeout.min(self.remaining());
        if limit.is_zero() {
            return Err(SendError::Fatal(self.deadline_failure("sending a request")));
        }
        match tokio::time::timeout(limit, rb.send()).await {
            Err(_) => Err(SendError::Retry {
                why: format!("no answer within {}s", limit.as_secs()),
                after: None,
            }),
            Ok(Err(e)) => Err(classify(&e)),
            Ok(Ok(r)) if is_retriable_status(r.status()) => Err(SendError::Retry {
                why: format!("HTTP {}", r.status()),
                after: parse_retry_after(r.headers()),
            }),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Retry `f` on retriable errors with backoff (honouring `Retry-After`) within the deadline.
    async fn retrying<F, Fut, T>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, SendError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(SendError::Fatal(f)) => return Err(f),
                Err(SendError::Retry { why, after }) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(Failure::runtime(format!(
                            "{what} failed after {attempt} attempts: {why}"
                        )));
                    }
                    let wait = backoff(attempt, after);
                    if wait >= self.remaining() {
                        return Err(self.deadline_failure(what));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.runner.info(&format!(
                        "retrying {what} in {:.1}s after {} (attempt {}/{MAX_ATTEMPTS})",
                        wait.as_secs_f64(),
                        single_line(&why),
                        attempt + 1
                    ));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One authenticated request: answers a 401 once by refreshing credentials.
    async fn authed(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: &Url,
        scope: &str,
        timeout: Duration,
        build: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
    ) -> std::result::Result<reqwest::Response, SendError> {
        self.authed_opt(client, method, url, scope, timeout, build, true)
            .await
    }

    /// As [`Client::authed`]; with `resend_on_401 == false` (a streamed body cannot be sent
    /// twice) a 401 becomes a retriable error and the next attempt refreshes the credentials.
    #[allow(clippy::too_many_arguments)]
    async fn authed_opt(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: &Url,
        scope: &str,
        timeout: Duration,
        build: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
        resend_on_401: bool,
    ) -> std::result::Result<reqwest::Response, SendError> {
        let mut force = self.force_next.swap(false, Ordering::Relaxed);
        loop {
            let auth = self
                .auth_value(scope, force)
                .await
                .map_err(SendError::Fatal)?;
            let mut rb = client.request(method.clone(), url.clone());
            if let Some(a) = auth {
                let mut v = HeaderValue::from_str(&a).map_err(|_| {
                    SendError::Fatal(Failure::runtime("credentials contain invalid characters"))
                })?;
                v.set_sensitive(true);
                rb = rb.header(AUTHORIZATION, v);
            }
            let resp = self.raw(build(rb), timeout).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && !resend_on_401 {
                self.force_next.store(true, Ordering::Relaxed);
                return Err(SendError::Retry {
                    why: "credentials rejected (HTTP 401) during an upload".into(),
                    after: Some(Duration::ZERO),
                });
            }
            if resp.status() == StatusCode::UNAUTHORIZED && !force {
                // A bearer challenge may name a scope we lack; re-read it, then retry once.
                if let Ok(st) = self.challenge_state(resp.headers()) {
                    let mut cur = self.auth.lock().await;
                    if matches!((&*cur, &st), (AuthState::Open, _))
                        || matches!((&*cur, &st), (AuthState::Basic, AuthState::Bearer { .. }))
                    {
                        *cur = st;
                    }
                }
                force = true;
                continue;
            }
            if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
                let (_, text) = error_body(resp).await;
                return Err(SendError::Fatal(Failure::runtime(format!(
                    "registry {} refused our credentials for {}: {text}",
                    self.host,
                    single_line(scope)
                ))));
            }
            return Ok(resp);
        }
    }

    fn scope(repo: &str, push: bool) -> String {
        if push {
            format!("repository:{repo}:pull,push")
        } else {
            format!("repository:{repo}:pull")
        }
    }

    /// HEAD a manifest: its digest, or `None` when absent.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
        push_scope: bool,
    ) -> Result<Option<Digest>> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let scope = Self::scope(repo, push_scope);
        let resp = self
            .retrying("checking a tag", || {
                self.authed(
                    &self.http,
                    Method::HEAD,
                    &url,
                    &scope,
                    SMALL_REQUEST_TIMEOUT,
                    &|rb| rb.header("accept", ACCEPT_MANIFESTS),
                )
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                if let Some(d) = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| Digest::parse("registry", v).ok())
                {
                    return Ok(Some(d));
                }
                Ok(Some(
                    self.get_manifest(repo, reference, push_scope).await?.digest,
                ))
            }
            s => Err(Failure::runtime(format!(
                "registry {} answered HEAD {repo}:{} with HTTP {s}",
                self.host,
                single_line(reference)
            ))),
        }
    }

    /// GET a manifest (at most 4 MiB). A digest reference is verified against the bytes.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        push_scope: bool,
    ) -> Result<Manifest> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let scope = Self::scope(repo, push_scope);
        let resp = self
            .retrying("reading a manifest", || {
                self.authed(
                    &self.http,
                    Method::GET,
                    &url,
                    &scope,
                    SMALL_REQUEST_TIMEOUT,
                    &|rb| rb.header("accept", ACCEPT_MANIFESTS),
                )
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Failure::runtime(format!(
                "{}/{repo}:{} does not exist",
                self.host,
                single_line(reference)
            )));
        }
        if !resp.status().is_success() {
            let (_, text) = error_body(resp).await;
            return Err(Failure::runtime(format!(
                "reading manifest {repo}:{}: {text}",
                single_line(reference)
            )));
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let bytes = read_limited(resp, MAX_MANIFEST as usize).await?;
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && digest.as_str() != reference {
            return Err(Failure::runtime(format!(
                "registry served manifest {} with content digest {digest}",
                single_line(reference)
            )));
        }
        Ok(Manifest {
            digest,
            media_type,
            bytes,
            blobs: Vec::new(),
        })
    }

    /// HEAD a blob.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let scope = Self::scope(repo, true);
        let resp = self
            .retrying("checking a blob", || {
                self.authed(
                    &self.http,
                    Method::HEAD,
                    &url,
                    &scope,
                    SMALL_REQUEST_TIMEOUT,
                    &|rb| rb,
                )
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(Failure::runtime(format!(
                "registry answered HEAD blob {digest} with HTTP {s}"
            ))),
        }
    }

    /// Cross-repository mount (`POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`).
    /// The protocol has two answers: `201` (mounted) and `202` (not mounted: here is an upload
    /// session instead). Any other answer is an error: nothing is uploaded on a guess.
    pub async fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount> {
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from);
        let scope = format!("{} {}", Self::scope(repo, true), Self::scope(from, false));
        let resp = self
            .retrying("mounting a blob", || {
                self.authed(
                    &self.http,
                    Method::POST,
                    &url,
                    &scope,
                    SMALL_REQUEST_TIMEOUT,
                    &|rb| rb.header(CONTENT_LENGTH, "0"),
                )
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => match self.check_location(&resp) {
                Ok(session) => Ok(Mount::Upload(session)),
                Err(SendError::Fatal(f)) => Err(f),
                Err(SendError::Retry { why, .. }) => Err(Failure::runtime(format!(
                    "registry answered 202 to mounting {digest} from {from} into {repo} but gave no usable upload session: {why}"
                ))),
            },
            s => {
                let (_, text) = error_body(resp).await;
                Err(Failure::runtime(format!(
                    "registry answered HTTP {s} to mounting {digest} from {} into {repo} (the protocol's answers are 201 mounted or 202 upload instead): not uploading on a guess: {text}",
                    single_line(from)
                )))
            }
        }
    }

    /// Give back an upload session we will not use (a refused mount when another repository is
    /// tried next). Best effort: the registry expires abandoned sessions anyway.
    pub async fn cancel_upload(&self, repo: &str, session: &Url) {
        let scope = Self::scope(repo, true);
        let r = self
            .authed(
                &self.http,
                Method::DELETE,
                session,
                &scope,
                SMALL_REQUEST_TIMEOUT,
                &|rb| rb,
            )
            .await;
        if let Ok(resp) = r {
            if !resp.status().is_success() && resp.status() != StatusCode::NOT_FOUND {
                self.runner.info(&format!(
                    "registry answered HTTP {} to cancelling an unused upload session (it expires on its own)",
                    resp.status()
                ));
            }
        }
    }

    fn check_location(&self, resp: &reqwest::Response) -> std::result::Result<Url, SendError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| SendError::Retry {
                why: "upload session without a Location".into(),
                after: None,
            })?;
        let url = self.base.join(loc).map_err(|_| {
            SendError::Fatal(Failure::refused(format!(
                "registry sent an unusable upload Location `{}`",
                single_line(loc)
            )))
        })?;
        let host = url.host_str().unwrap_or("");
        if is_metadata_or_link_local(host) {
            return Err(SendError::Fatal(Failure::refused(format!(
                "refused an upload Location that points at a link-local/metadata address ({}); nothing was sent there",
                single_line(host)
            ))));
        }
        if url.scheme() != self.base.scheme()
            || url.host_str() != self.base.host_str()
            || url.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(SendError::Fatal(Failure::refused(format!(
                "refused an upload Location on another host or scheme ({}); blobs only go to {}",
                single_line(&format!("{}://{}", url.scheme(), host)),
                self.host
            ))));
        }
        Ok(url)
    }

    /// Upload one blob whole (POST a session, PUT the whole body), restarting the session on
    /// 429/5xx/reset. `src` gives the bytes of `blob` (from disk, or from a source registry).
    pub async fn upload(&self, repo: &str, blob: &Blob, src: &BlobSource<'_>) -> Result<()> {
        self.upload_into(repo, blob, src, None).await
    }

    /// As [`Client::upload`], the first attempt into `session` (the upload session a registry
    /// opened when it answered a mount with 202); later attempts open their own.
    pub async fn upload_into(
        &self,
        repo: &str,
        blob: &Blob,
        src: &BlobSource<'_>,
        session: Option<Url>,
    ) -> Result<()> {
        let session = std::sync::Mutex::new(session);
        let scope = Self::scope(repo, true);
        let start_url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        // Generous per-request time for the body: at least 60 s, or 1 MiB/s.
        let put_timeout = SMALL_REQUEST_TIMEOUT.max(Duration::from_secs(blob.size / (1 << 20)));
        let what = format!("uploading blob {}", blob.digest);
        self.retrying(&what, || async {
            let opened = session.lock().expect("session").take();
            let mut put = match opened {
                Some(u) => u,
                None => {
                    let resp = self
                        .authed(&self.http, Method::POST, &start_url, &scope, SMALL_REQUEST_TIMEOUT, &|rb| {
                            rb.header(CONTENT_LENGTH, "0")
                        })
                        .await?;
                    if resp.status() != StatusCode::ACCEPTED {
                        let (_, text) = error_body(resp).await;
                        return Err(SendError::Fatal(Failure::runtime(format!(
                            "registry refused to start an upload of {}: {text}",
                            blob.digest
                        ))));
                    }
                    self.check_location(&resp)?
                }
            };
            put.query_pairs_mut().append_pair("digest", blob.digest.as_str());
            let sent = Arc::new(AtomicU64::new(0));
            let bad = Arc::new(AtomicBool::new(false));
            let body_src = src.open(blob, sent.clone(), bad.clone(), self.stats.clone()).await;
            let body = match body_src {
                Ok(b) => std::sync::Mutex::new(Some(b)),
                Err(SendError::Fatal(f)) => return Err(SendError::Fatal(f)),
                Err(e) => return Err(e),
            };
            let size = blob.size;
            let r = self
                .authed_opt(&self.http, Method::PUT, &put, &scope, put_timeout, &|rb| {
                    let rb = rb
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size.to_string());
                    match body.lock().expect("body").take() {
                        Some(b) => rb.body(b),
                        None => rb.body(reqwest::Body::from(Vec::new())),
                    }
                }, false)
                .await;
            let give_back = || {
                self.stats
                    .bytes_sent
                    .fetch_sub(sent.load(Ordering::Relaxed), Ordering::Relaxed);
            };
            if bad.load(Ordering::Relaxed) {
                give_back();
                return Err(SendError::Fatal(Failure::runtime(format!(
                    "blob {} changed or does not match its digest while it was read: nothing was pushed",
                    blob.digest
                ))));
            }
            let resp = match r {
                Ok(r) => r,
                Err(e) => {
                    give_back();
                    return Err(e);
                }
            };
            if !matches!(resp.status(), StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
                give_back();
                let (_, text) = error_body(resp).await;
                return Err(SendError::Fatal(Failure::runtime(format!(
                    "registry refused blob {}: {text}",
                    blob.digest
                ))));
            }
            if let Some(d) = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
            {
                if d != blob.digest.as_str() {
                    return Err(SendError::Fatal(Failure::runtime(format!(
                        "registry stored blob {} under digest {}",
                        blob.digest,
                        single_line(d)
                    ))));
                }
            }
            Ok(())
        })
        .await?;
        self.stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// PUT a manifest under `reference` (a tag or its digest) and check the registry's digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        m: &Manifest,
    ) -> Result<PutManifest> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"));
        let scope = Self::scope(repo, true);
        let build = |rb: reqwest::RequestBuilder| {
            rb.header(CONTENT_TYPE, m.media_type.as_str())
                .body(m.bytes.clone())
        };
        let resp = self
            .retrying("pushing a manifest", || {
                self.authed(
                    &self.http,
                    Method::PUT,
                    &url,
                    &scope,
                    SMALL_REQUEST_TIMEOUT,
                    &build,
                )
            })
            .await?;
        let status = resp.status();
        if status.is_success() {
            if let Some(d) = resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
            {
                if d != m.digest.as_str() {
                    return Err(Failure::runtime(format!(
                        "registry stored manifest {} under digest {}: refusing to report it",
                        m.digest,
                        single_line(d)
                    )));
                }
            }
            return Ok(PutManifest::Ok);
        }
        let (codes, text) = error_body(resp).await;
        if codes
            .iter()
            .any(|c| c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN")
        {
            return Ok(PutManifest::BlobUnknown);
        }
        if codes.iter().any(|c| {
            c == "TAG_INVALID" || c.contains("TagAlreadyExists") || c.contains("ImageAlreadyExists")
        }) || text.contains("ImageTagAlreadyExists")
            || text.contains("immutable")
        {
            return Ok(PutManifest::TagImmutable(text));
        }
        Err(Failure::runtime(format!(
            "registry refused manifest {} for {}: {text}",
            m.digest,
            single_line(reference)
        )))
    }

    /// Start streaming a blob from this (source) registry.
    async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
        timeout: Duration,
    ) -> std::result::Result<reqwest::Response, SendError> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"));
        let scope = Self::scope(repo, false);
        let resp = self
            .authed(
                &self.http_follow,
                Method::GET,
                &url,
                &scope,
                timeout,
                &|rb| rb,
            )
            .await?;
        if !resp.status().is_success() {
            let (_, text) = error_body(resp).await;
            return Err(SendError::Fatal(Failure::runtime(format!(
                "source registry could not serve blob {digest}: {text}"
            ))));
        }
        Ok(resp)
    }
}

/// Backoff before attempt `attempt + 1`: `Retry-After` (capped) or capped exponential with full jitter.
fn backoff(attempt: u32, after: Option<Duration>) -> Duration {
    if let Some(a) = after {
        return a.min(MAX_RETRY_AFTER);
    }
    let cap = Duration::from_millis(250 * (1u64 << attempt.min(6))).min(Duration::from_secs(10));
    let ms = rand::random_range(50..=cap.as_millis().max(51) as u64);
    Duration::from_millis(ms)
}

/// Where upload bytes come from.
pub enum BlobSource<'c> {
    /// Local files (the blob's [`BlobLoc::File`]).
    Disk,
    /// Another registry's repository.
    Registry(&'c Client<'c>, &'c str),
}

struct Verifier {
    hasher: Sha256,
    expect: Digest,
    size: u64,
    seen: u64,
    sent: Arc<AtomicU64>,
    stats: Arc<Stats>,
    bad: Arc<AtomicBool>,
}

impl Verifier {
    fn feed(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.seen += chunk.len() as u64;
        if self.seen > self.size {
            self.bad.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other(
                "source changed: more bytes than the descriptor says",
            ));
        }
        self.hasher.update(chunk);
        self.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes_sent
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if self.seen == self.size {
            let d = Digest::from_hasher(std::mem::take(&mut self.hasher));
            if d != self.expect {
                self.bad.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(format!("digest mismatch: read {d}")));
            }
        }
        Ok(())
    }
}

impl BlobSource<'_> {
    async fn open(
        &self,
        blob: &Blob,
        sent: Arc<AtomicU64>,
        bad: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> std::result::Result<reqwest::Body, SendError> {
        let mut v = Verifier {
            hasher: Sha256::new(),
            expect: blob.digest.clone(),
            size: blob.size,
            seen: 0,
            sent,
            stats,
            bad,
        };
        if blob.size == 0 {
            v.feed(&[])
                .map_err(|e| SendError::Fatal(Failure::runtime(e.to_string())))?;
        }
        match self {
            BlobSource::Disk => {
                let BlobLoc::File { path, offset } = &blob.loc else {
                    return Err(SendError::Fatal(Failure::runtime("blob has no local file")));
                };
                use std::io::{Read, Seek};
                let cant = |what: &str, e: std::io::Error| {
                    SendError::Fatal(Failure::runtime(format!(
                        "cannot {what} {}: {e}",
                        path.display()
                    )))
                };
                let mut f = std::fs::File::open(path).map_err(|e| cant("open", e))?;
                f.seek(std::io::SeekFrom::Start(*offset))
                    .map_err(|e| cant("seek", e))?;
                // One blocking thread per blob reads and hashes ahead of the socket (READ_AHEAD
                // chunks), so disk reads and hashing overlap with sending instead of taking
                // turns on the async workers; each byte is copied once from the page cache.
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
                let size = blob.size;
                tokio::task::spawn_blocking(move || {
                    let mut left = size;
                    while left > 0 {
                        let want = left.min(CHUNK as u64) as usize;
                        let mut buf = vec![0u8; want];
                        let item = match f.read_exact(&mut buf) {
                            Ok(()) => v.feed(&buf).map(|_| bytes::Bytes::from(buf)),
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                v.bad.store(true, Ordering::Relaxed);
                                Err(std::io::Error::other(
                                    "source changed: file shorter than the blob",
                                ))
                            }
                            Err(e) => Err(e),
                        };
                        let failed = item.is_err();
                        // A closed channel means the request is gone: stop reading.
                        if tx.blocking_send(item).is_err() || failed {
                            return;
                        }
                        left -= want as u64;
                    }
                });
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                Ok(reqwest::Body::wrap_stream(stream))
            }
            BlobSource::Registry(src, repo) => {
                let timeout = SMALL_REQUEST_TIMEOUT.max(Duration::from_secs(blob.size / (1 << 20)));
                let resp = src.get_blob(repo, &blob.digest, timeout).await?;
                let stream = resp.bytes_stream().map(move |r| match r {
                    Ok(b) => v.feed(&b).map(|_| b),
                    Err(e) => Err(std::io::Error::other(error_chain(&e))),
                });
                Ok(reqwest::Body::wrap_stream(stream))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        let (s, p) = parse_challenge(r#"Basic realm="test""#).unwrap();
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "test");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        assert_eq!(backoff(1, Some(Duration::from_secs(600))), MAX_RETRY_AFTER);
        assert!(backoff(3, None) <= Duration::from_secs(10));
    }
}
