//! GitHub OIDC tokens: where a job gets one (the runner's token endpoint, or a web-identity token
//! file outside Actions), the audience rule, and decoding a token's claims to explain a refusal.
//!
//! A token is a [`Secret`]: nothing here formats it, and only its decoded *claims* are ever shown.
//! Tokens live about five minutes, so callers fetch a fresh one for every STS attempt
//! ([`TokenSource::fetch`] never caches).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::exit::{Failure, Result};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;

/// GitHub's OIDC issuer (the IAM OIDC provider's URL).
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The audience AWS expects by default.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// Validate an `audience` input: 1–255 printable ASCII characters, no whitespace, no comma.
pub fn validate_audience(v: &str) -> Result<()> {
    let ok =
        !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            "audience",
            format!(
                "`{}` is not a valid audience (1-255 printable ASCII characters, no spaces or commas)",
                single_line(v)
            ),
        ))
    }
}

/// Where OIDC tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The runner's endpoint: `ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    Actions {
        /// The request URL (already carries `api-version`).
        url: url::Url,
        /// The bearer token for the request (never printed).
        bearer: Secret,
    },
    /// A file that holds the token (re-read for every attempt, as EKS/IRSA-style rotators expect).
    File(PathBuf),
}

/// Why a token could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Worth another try (connection error, timeout, 5xx, 429).
    Transient(String),
    /// Retrying will not help (401/403, bad response, unreadable file).
    Fatal(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Transient(m) | TokenError::Fatal(m) => f.write_str(m),
        }
    }
}

/// The hint shown when a job has no token endpoint.
pub const ID_TOKEN_PERMISSION_HINT: &str = "ACTIONS_ID_TOKEN_REQUEST_URL is not set: the job cannot request an OIDC token. \
Add `permissions: id-token: write` to the job (or workflow), e.g.\n  permissions:\n    id-token: write\n    contents: read\n\
Pull requests from forks never get one. Outside GitHub Actions, pass `web-identity-token-file`.";

impl TokenSource {
    /// Decide where tokens come from, before any request: an explicit token file wins, else the
    /// runner's endpoint. Fails with exit 2 (and the `id-token: write` hint) when neither exists.
    pub fn from_runner(runner: &Runner, token_file: Option<&Path>) -> Result<TokenSource> {
        if let Some(p) = token_file {
            let meta = std::fs::metadata(p).map_err(|e| {
                Failure::usage(
                    "web-identity-token-file",
                    format!(
                        "cannot read `{}`: {e}",
                        single_line(&p.display().to_string())
                    ),
                )
            })?;
            if !meta.is_file() {
                return Err(Failure::usage(
                    "web-identity-token-file",
                    format!("`{}` is not a file", single_line(&p.display().to_string())),
                ));
            }
            return Ok(TokenSource::File(p.to_path_buf()));
        }
        let Some(raw) = runner.var("ACTIONS_ID_TOKEN_REQUEST_URL") else {
            return Err(Failure::usage_general(ID_TOKEN_PERMISSION_HINT));
        };
        // The runner's request token is sent to this URL.
        let url = crate::validate::credential_url("ACTIONS_ID_TOKEN_REQUEST_URL", raw)?;
        let Some(bearer) = runner.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN") else {
            return Err(Failure::usage_general(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set although ACTIONS_ID_TOKEN_REQUEST_URL is: \
                 add `permissions: id-token: write` to the job",
            ));
        };
        Ok(TokenSource::Actions {
            url,
            bearer: Secret::new(bearer),
        })
    }

    /// A short description for logs (never the token or bearer).
    pub fn describe(&self) -> String {
        match self {
            TokenSource::Actions { url, .. } => format!(
                "the runner's OIDC endpoint ({})",
                url.host_str().unwrap_or("?")
            ),
            TokenSource::File(p) => format!("token file {}", single_line(&p.display().to_string())),
        }
    }

    /// Get a fresh token for `audience` (no caching). `timeout` bounds the whole request.
    pub async fn fetch(
        &self,
        client: &reqwest::Client,
        audience: &str,
        timeout: Duration,
    ) -> std::result::Result<Secret, TokenError> {
        match self {
            TokenSource::File(p) => {
                let text = tokio::fs::read_to_string(p).await.map_err(|e| {
                    TokenError::Fatal(format!(
                        "cannot read web-identity-token-file {}: {e}",
                        single_line(&p.display().to_string())
                    ))
                })?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(TokenError::Fatal(
                        "web-identity-token-file is empty".to_string(),
                    ));
                }
                Ok(Secret::new(t))
            }
            TokenSource::Actions { url, bearer } => {
                let mut u = url.clone();
                u.query_pairs_mut().append_pair("audience", audience);
                let resp = client
                    .get(u)
                    .header(
                        reqwest::header::AUTHORIZATION,
                        format!("bearer {}", bearer.expose()),
                    )
                    .header(reqwest::header::ACCEPT, "application/json")
                    .timeout(timeout)
                    .send()
                    .await
                    .map_err(|e| {
                        // reqwest's error text holds the URL, never headers.
                        TokenError::Transient(format!(
                            "OIDC token request failed: {}",
                            describe_reqwest(&e)
                        ))
                    })?;
                let status = resp.status();
                if !status.is_success() {
                    let msg = format!("OIDC token endpoint answered HTTP {}", status.as_u16());
                    return Err(if status.is_server_error() || status.as_u16() == 429 {
                        TokenError::Transient(msg)
                    } else if status.as_u16() == 401 || status.as_u16() == 403 {
                        TokenError::Fatal(format!(
                                "{msg}: the request token was refused (does the job have `permissions: id-token: write`?)"
                            ))
                    } else {
                        TokenError::Fatal(msg)
                    });
                }
                let body = resp.bytes().await.map_err(|e| {
                    TokenError::Transient(format!(
                        "OIDC token response broke off: {}",
                        describe_reqwest(&e)
                    ))
                })?;
                let v: Value = serde_json::from_slice(&body).map_err(|_| {
                    TokenError::Fatal("OIDC token endpoint answered with invalid JSON".into())
                })?;
                match v.get("value").and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => Ok(Secret::new(t)),
                    _ => Err(TokenError::Fatal(
                        "OIDC token endpoint answered without a `value`".into(),
                    )),
                }
            }
        }
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({})", single_line(&detail))
    }
}

/// The claims of a token that matter for AWS trust policies. Decoded without verifying the
/// signature: they are only used to *explain* a refusal, never to decide anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// `sub`
    pub sub: Option<String>,
    /// `aud` (joined with `,` when it is a list)
    pub aud: Option<String>,
    /// `iss`
    pub iss: Option<String>,
    /// `repository` (`owner/name`)
    pub repository: Option<String>,
    /// `repository_id`
    pub repository_id: Option<String>,
    /// `repository_owner`
    pub repository_owner: Option<String>,
    /// `repository_owner_id`
    pub repository_owner_id: Option<String>,
    /// `environment`
    pub environment: Option<String>,
    /// `ref`
    pub git_ref: Option<String>,
    /// `job_workflow_ref`
    pub job_workflow_ref: Option<String>,
    /// `event_name`
    pub event_name: Option<String>,
    /// `exp` (seconds since the epoch)
    pub exp: Option<i64>,
    /// `iat`
    pub iat: Option<i64>,
}

fn claim_string(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) => Some(
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

impl Claims {
    /// Decode the payload (middle part) of a JWT. Returns `None` for anything that is not a
    /// three-part JWT with a JSON object payload.
    pub fn decode(token: &Secret) -> Option<Claims> {
        let mut parts = token.expose().split('.');
        let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.trim_end_matches('='))
            .ok()?;
        let v: Value = serde_json::from_slice(&raw).ok()?;
        if !v.is_object() {
            return None;
        }
        Some(Claims {
            sub: claim_string(&v, "sub"),
            aud: claim_string(&v, "aud"),
            iss: claim_string(&v, "iss"),
            repository: claim_string(&v, "repository"),
            repository_id: claim_string(&v, "repository_id"),
            repository_owner: claim_string(&v, "repository_owner"),
            repository_owner_id: claim_string(&v, "repository_owner_id"),
            environment: claim_string(&v, "environment"),
            git_ref: claim_string(&v, "ref"),
            job_workflow_ref: claim_string(&v, "job_workflow_ref"),
            event_name: claim_string(&v, "event_name"),
            exp: v.get("exp").and_then(Value::as_i64),
            iat: v.get("iat").and_then(Value::as_i64),
        })
    }

    /// The context part of `sub` (after `repo:<repository>:`), e.g. `environment:prod`,
    /// `ref:refs/heads/main`, `pull_request`. Derived from the other claims when `sub` is customised.
    pub fn sub_context(&self) -> Option<String> {
        if let Some(sub) = &self.sub {
            if let Some(rest) = sub.strip_prefix("repo:") {
                // `<owner>[@id]/<name>[@id]:<context>`: repository names cannot contain `:`.
                if let Some((_, ctx)) = rest.split_once(':') {
                    return Some(ctx.to_string());
                }
            }
        }
        if let Some(env) = &self.environment {
            return Some(format!("environment:{env}"));
        }
        if self.event_name.as_deref() == Some("pull_request") {
            return Some("pull_request".into());
        }
        self.git_ref.as_ref().map(|r| format!("ref:{r}"))
    }

    /// The `sub` a trust policy would match, in the legacy `repo:O/R:<ctx>` form.
    pub fn legacy_sub(&self) -> Option<String> {
        Some(format!(
            "repo:{}:{}",
            self.repository.as_deref()?,
            self.sub_context()?
        ))
    }

    /// The `sub` in GitHub's immutable form `repo:O@<owner id>/R@<repo id>:<ctx>`, which survives
    /// renames and cannot be claimed by a re-created repository of the same name.
    pub fn immutable_sub(&self) -> Option<String> {
        let repo = self.repository.as_deref()?;
        let (owner, name) = repo.split_once('/')?;
        Some(format!(
            "repo:{owner}@{}/{name}@{}:{}",
            self.repository_owner_id.as_deref()?,
            self.repository_id.as_deref()?,
            self.sub_context()?
        ))
    }

    /// Lines describing the claims (no token), for a refusal explanation.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut add = |k: &str, val: &Option<String>| {
            v.push(format!(
                "  {k:<20} {}",
                val.as_deref()
                    .map(single_line)
                    .unwrap_or_else(|| "(absent)".into())
            ))
        };
        add("sub", &self.sub);
        add("aud", &self.aud);
        add("iss", &self.iss);
        add("repository", &self.repository);
        add("repository_id", &self.repository_id);
        add("repository_owner_id", &self.repository_owner_id);
        add("environment", &self.environment);
        add("ref", &self.git_ref);
        add("job_workflow_ref", &self.job_workflow_ref);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> Secret {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        Secret::new(format!("{}.{}.sig", e(r#"{"alg":"RS256"}"#), e(payload)))
    }

    #[test]
    fn audiences() {
        validate_audience("sts.amazonaws.com").unwrap();
        validate_audience("https://github.com/octo-org").unwrap();
        for bad in [
            "",
            " sts",
            "sts.amazonaws.com ",
            "a,b",
            "a\nb",
            &"a".repeat(256),
            "ä",
        ] {
            let e = validate_audience(bad).unwrap_err();
            assert!(e.to_string().contains("`audience`"), "{e}");
        }
    }

    #[test]
    fn claims_and_both_sub_forms() {
        let t = jwt(
            r#"{"sub":"repo:octo-org/octo-repo:environment:prod","aud":"sts.amazonaws.com",
            "repository":"octo-org/octo-repo","repository_id":"123","repository_owner_id":456,
            "environment":"prod","ref":"refs/heads/main","exp":10}"#,
        );
        let c = Claims::decode(&t).unwrap();
        assert_eq!(c.repository_owner_id.as_deref(), Some("456"));
        assert_eq!(c.sub_context().as_deref(), Some("environment:prod"));
        assert_eq!(
            c.legacy_sub().as_deref(),
            Some("repo:octo-org/octo-repo:environment:prod")
        );
        assert_eq!(
            c.immutable_sub().as_deref(),
            Some("repo:octo-org@456/octo-repo@123:environment:prod")
        );
        // An immutable sub in the token still yields both forms.
        let t = jwt(
            r#"{"sub":"repo:o@1/r@2:ref:refs/heads/dev","repository":"o/r","repository_id":"2","repository_owner_id":"1"}"#,
        );
        let c = Claims::decode(&t).unwrap();
        assert_eq!(
            c.legacy_sub().as_deref(),
            Some("repo:o/r:ref:refs/heads/dev")
        );
        assert_eq!(
            c.immutable_sub().as_deref(),
            Some("repo:o@1/r@2:ref:refs/heads/dev")
        );
        for bad in ["", "a.b", "a.b.c.d", "x.!!!.y", "x.bnVsbA.y"] {
            assert!(Claims::decode(&Secret::new(bad)).is_none(), "{bad}");
        }
    }
}
