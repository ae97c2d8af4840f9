//! AWS STS for `oidc-login`: input validators (role ARNs, session names, durations, policies),
//! endpoint and partition handling, error classification, capped exponential backoff with full
//! jitter, and the three calls: `AssumeRoleWithWebIdentity` (a fresh OIDC token per attempt),
//! `AssumeRole` (role chaining) and `GetCallerIdentity` (with a short retry for IAM's eventual
//! consistency right after assuming).
//!
//! The SDK's own retries are disabled: every retry decision is made here, where it can refetch
//! the token, log one line per retry and honour one overall deadline.

use std::time::Duration;

use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use rand::Rng;
use tokio::time::Instant;

use crate::exit::{Failure, Result};
use crate::oidc::{Claims, TokenError, TokenSource};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;

// ----- validators --------------------------------------------------------------------------

fn bad(field: &str, value: &str, rule: &str) -> Failure {
    Failure::usage(field, format!("`{}` {rule}", single_line(value)))
}

/// A parsed IAM role ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// 12-digit account id.
    pub account: String,
    /// The role's path (`/` or `/a/b/`).
    pub path: String,
    /// The role's name.
    pub name: String,
}

impl RoleArn {
    /// The ARN text.
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.path, self.name
        )
    }
}

const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// An IAM role ARN: `arn:<aws|aws-cn|aws-us-gov>:iam::<12 digits>:role/<path><name>`, matched
/// whole (no region, no `user/` or `assumed-role/`, name of 1–64 `[\w+=,.@-]`, no spaces).
pub fn role_arn(field: &str, v: &str) -> Result<RoleArn> {
    const RULE: &str = "is not an IAM role ARN (`arn:aws:iam::123456789012:role/name`; partitions aws, aws-cn, aws-us-gov)";
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" {
        return Err(bad(field, v, RULE));
    }
    if !PARTITIONS.contains(&parts[1]) {
        return Err(bad(
            field,
            v,
            "names an unknown partition (aws, aws-cn or aws-us-gov)",
        ));
    }
    if !parts[3].is_empty() {
        return Err(bad(field, v, "has a region, but IAM ARNs have none"));
    }
    let account = parts[4];
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(field, v, "does not name a 12-digit account id"));
    }
    let Some(resource) = parts[5].strip_prefix("role/") else {
        return Err(bad(field, v, "is not a role ARN (`...:role/<name>`)"));
    };
    let (path, name) = match resource.rfind('/') {
        Some(i) => (format!("/{}", &resource[..=i]), &resource[i + 1..]),
        None => ("/".to_string(), resource),
    };
    if name.is_empty() || name.len() > 64 || !name.chars().all(is_iam_name_char) {
        return Err(bad(
            field,
            v,
            "has an invalid role name (1-64 of letters, digits and `_+=,.@-`)",
        ));
    }
    if path.len() > 512
        || path.contains("//")
        || !path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c))
    {
        return Err(bad(field, v, "has an invalid role path"));
    }
    Ok(RoleArn {
        partition: parts[1].into(),
        account: account.into(),
        path,
        name: name.into(),
    })
}

/// A role session name: 2–64 characters of `[\w+=,.@-]`.
pub fn session_name(field: &str, v: &str) -> Result<()> {
    if (2..=64).contains(&v.len()) && v.chars().all(is_iam_name_char) {
        Ok(())
    } else {
        Err(bad(
            field,
            v,
            "is not a valid session name (2-64 of letters, digits and `_+=,.@-`)",
        ))
    }
}

/// Turn arbitrary run metadata into a valid session name (invalid characters become `-`).
pub fn sanitise_session_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| if is_iam_name_char(c) { c } else { '-' })
        .take(64)
        .collect();
    while s.len() < 2 {
        s.push('-');
    }
    s
}

/// Session duration in seconds: an integer in `min..=max` (STS allows 900–43200; a chained
/// role session at most 3600).
pub fn duration_seconds(field: &str, v: &str, max: i32) -> Result<i32> {
    match v.parse::<i32>() {
        Ok(n) if (900..=max).contains(&n) && !v.starts_with('+') => Ok(n),
        _ => Err(bad(
            field,
            v,
            &format!("is not a duration in seconds between 900 and {max}"),
        )),
    }
}

/// An external id for `AssumeRole`: 2–1224 of `[\w+=,.@:/-]`.
pub fn external_id(field: &str, v: &str) -> Result<()> {
    if (2..=1224).contains(&v.len())
        && v.chars()
            .all(|c| is_iam_name_char(c) || c == ':' || c == '/')
    {
        Ok(())
    } else {
        Err(bad(
            field,
            v,
            "is not a valid external id (2-1224 of letters, digits and `_+=,.@:/-`)",
        ))
    }
}

/// Managed session policy ARNs, separated by commas or newlines; at most 10.
pub fn managed_policy_arns(field: &str, v: &str) -> Result<Vec<String>> {
    let items: Vec<&str> = v
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.len() > 10 {
        return Err(bad(field, v, "lists more than 10 policies (the STS limit)"));
    }
    for it in &items {
        let parts: Vec<&str> = it.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && PARTITIONS.contains(&parts[1])
            && parts[2] == "iam"
            && parts[3].is_empty()
            && (parts[4] == "aws"
                || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())))
            && parts[5].strip_prefix("policy/").is_some_and(|r| {
                let name = r.rsplit('/').next().unwrap_or("");
                !name.is_empty()
                    && name.len() <= 128
                    && r.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c))
                    && !r.contains("//")
            });
        if !ok {
            return Err(bad(
                field,
                it,
                "is not an IAM managed policy ARN (`arn:aws:iam::aws:policy/ReadOnlyAccess`)",
            ));
        }
    }
    Ok(items.into_iter().map(str::to_string).collect())
}

/// An inline session policy: a JSON object of at most 2048 characters once minified.
pub fn inline_policy(field: &str, v: &str) -> Result<String> {
    let parsed: serde_json::Value = serde_json::from_str(v).map_err(|e| {
        Failure::usage(
            field,
            format!("is not valid JSON: {}", single_line(&e.to_string())),
        )
    })?;
    if !parsed.is_object() {
        return Err(Failure::usage(field, "must be a JSON policy object"));
    }
    let min = parsed.to_string();
    if min.len() > 2048 {
        return Err(Failure::usage(
            field,
            format!(
                "is {} characters long minified; STS accepts at most 2048",
                min.len()
            ),
        ));
    }
    Ok(min)
}

/// Account ids separated by commas, spaces or newlines; each exactly 12 digits.
pub fn account_list(field: &str, v: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for it in v.split([',', '\n', ' ']).filter(|s| !s.is_empty()) {
        if it.len() != 12 || !it.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                field,
                it,
                "is not an AWS account id (exactly 12 digits)",
            ));
        }
        out.push(it.to_string());
    }
    if out.is_empty() {
        return Err(Failure::usage(field, "lists no account id"));
    }
    Ok(out)
}

/// A character STS accepts in a session tag key or value: letters, digits, spaces and `_.:/=+-@`.
fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

/// STS's limit on the number of session tags of one request.
pub const MAX_SESSION_TAGS: usize = 50;

/// One session tag: key 1-128 and value 0-256 of [`is_tag_char`], key not under `aws:`.
pub fn session_tag(field: &str, key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > 128 || !key.chars().all(is_tag_char) {
        return Err(bad(
            field,
            key,
            "is not a session tag key (1-128 of letters, digits, spaces and `_.:/=+-@`)",
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(bad(
            field,
            key,
            "is a tag key under `aws:`, which AWS reserves",
        ));
    }
    if value.chars().count() > 256 || !value.chars().all(is_tag_char) {
        return Err(Failure::usage(
            field,
            format!(
                "the value of tag `{}` is not a session tag value (0-256 of letters, digits, spaces and `_.:/=+-@`)",
                single_line(key)
            ),
        ));
    }
    Ok(())
}

/// `custom-tags`: a JSON object of string values (`{"Team": "payments"}`), each a valid
/// [`session_tag`], at most [`MAX_SESSION_TAGS`], keys distinct ignoring case (STS's rule).
pub fn custom_tags(field: &str, v: &str) -> Result<Vec<(String, String)>> {
    let parsed: serde_json::Value = serde_json::from_str(v).map_err(|e| {
        Failure::usage(
            field,
            format!(
                "is not a JSON object of tags (`{{\"Team\": \"payments\"}}`): {}",
                single_line(&e.to_string())
            ),
        )
    })?;
    let Some(obj) = parsed.as_object() else {
        return Err(Failure::usage(
            field,
            "must be a JSON object of tags (`{\"Team\": \"payments\"}`)",
        ));
    };
    let mut out = Vec::new();
    for (k, val) in obj {
        let Some(val) = val.as_str() else {
            return Err(Failure::usage(
                field,
                format!(
                    "the value of tag `{}` must be a JSON string",
                    single_line(k)
                ),
            ));
        };
        session_tag(field, k, val)?;
        out.push((k.clone(), val.to_string()));
    }
    check_tag_keys(field, &out)?;
    Ok(out)
}

/// At most [`MAX_SESSION_TAGS`] tags, no key twice (ignoring case).
pub fn check_tag_keys(field: &str, tags: &[(String, String)]) -> Result<()> {
    if tags.len() > MAX_SESSION_TAGS {
        return Err(Failure::usage(
            field,
            format!(
                "makes {} session tags; STS accepts at most {MAX_SESSION_TAGS}",
                tags.len()
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in tags {
        if !seen.insert(k.to_lowercase()) {
            return Err(Failure::usage(
                field,
                format!(
                    "sets tag `{}` twice (tag keys are compared ignoring case; oidc-login's \
                     default tags are GitHub, Repository, Workflow, Action, Actor, Commit and \
                     Branch unless role-skip-session-tagging is true)",
                    single_line(k)
                ),
            ));
        }
    }
    Ok(())
}

/// Make run metadata a valid tag value: characters STS refuses become `_`, cut to 256.
pub fn sanitise_tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| if is_tag_char(c) { c } else { '_' })
        .take(256)
        .collect()
}

/// The session tags configure-aws-credentials puts on an `AssumeRole` session, from the run's
/// metadata: `GitHub=Actions`, `Repository`, `Workflow`, `Action`, `Actor`, `Commit`, `Branch`
/// (those whose variable is set).
pub fn github_session_tags(var: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut tags = vec![("GitHub".to_string(), "Actions".to_string())];
    for (key, name) in [
        ("Repository", "GITHUB_REPOSITORY"),
        ("Workflow", "GITHUB_WORKFLOW"),
        ("Action", "GITHUB_ACTION"),
        ("Actor", "GITHUB_ACTOR"),
        ("Commit", "GITHUB_SHA"),
        ("Branch", "GITHUB_REF"),
    ] {
        if let Some(v) = var(name).filter(|v| !v.is_empty()) {
            tags.push((key.to_string(), sanitise_tag_value(&v)));
        }
    }
    tags
}

/// `transitive-tag-keys`: keys (newline- or comma-separated) among the tags the hop sends.
pub fn transitive_tag_keys(field: &str, v: &str, tags: &[(String, String)]) -> Result<Vec<String>> {
    let keys: Vec<String> = v
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(Failure::usage(field, "lists no tag key"));
    }
    for k in &keys {
        if !tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(k)) {
            return Err(bad(
                field,
                k,
                "is not the key of a session tag this call sends (the default tags unless \
                 role-skip-session-tagging, and custom-tags)",
            ));
        }
    }
    Ok(keys)
}

/// The account id inside an STS ARN (`arn:aws:sts::123456789012:assumed-role/...`).
pub fn account_of_arn(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

// ----- endpoints, timeouts, retries --------------------------------------------------------

/// How to reach STS.
#[derive(Debug, Clone)]
pub struct StsSettings {
    /// Region (also selects the partition's endpoint when none is configured).
    pub region: String,
    /// `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL`, when set.
    pub endpoint: Option<String>,
    /// `AWS_USE_FIPS_ENDPOINT=true`.
    pub use_fips: bool,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one request (also capped by the deadline).
    pub attempt_timeout: Duration,
    /// The command's own proxy choice (`http-proxy` / `no-proxy`), else the environment's.
    pub proxy: Option<crate::net::ProxyChoice>,
}

impl StsSettings {
    /// Read the standard endpoint configuration from the runner's environment. Validated before
    /// any request: a malformed URL is a usage error.
    pub fn from_env(runner: &Runner, region: &str) -> Result<StsSettings> {
        let ignore = runner
            .var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut endpoint = None;
        if !ignore {
            for var in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
                if let Some(v) = runner.var(var) {
                    // The OIDC token and the session credentials go to this URL.
                    crate::validate::credential_url(var, v)?;
                    endpoint = Some(v.to_string());
                    break;
                }
            }
        }
        Ok(StsSettings {
            region: region.to_string(),
            endpoint,
            use_fips: runner
                .var("AWS_USE_FIPS_ENDPOINT")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(20),
            proxy: None,
        })
    }

    /// An STS client with SDK retries disabled and explicit timeouts.
    pub fn client(&self, creds: Option<&StsCredentials>) -> aws_sdk_sts::Client {
        let mut b = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .http_client(crate::net::sdk_http_client_via(self.proxy.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .build(),
            )
            .use_fips(self.use_fips);
        if let Some(e) = &self.endpoint {
            b = b.endpoint_url(e.clone());
        }
        if let Some(c) = creds {
            b = b.credentials_provider(Credentials::new(
                c.access_key_id.expose(),
                c.secret_access_key.expose(),
                // Long-lived IAM user keys (a source for role chaining) carry no session token.
                Some(c.session_token.expose())
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                None,
                "oidc-login",
            ));
        }
        aws_sdk_sts::Client::from_conf(b.build())
    }
}

/// Capped exponential backoff with full jitter: attempt `n` (1-based) sleeps a uniformly random
/// time in `[0, min(cap, base * 2^(n-1))]`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First ceiling.
    pub base: Duration,
    /// Highest ceiling.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(300),
            cap: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The ceiling for attempt `n`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(20)));
        exp.min(self.cap)
    }
    /// A full-jitter delay for attempt `n`.
    pub fn delay(&self, n: u32) -> Duration {
        let c = self.ceiling(n).as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=c))
    }
}

/// What to do about a failed STS call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: throttling, 5xx, IDP communication error, connection error, timeout.
    Retry,
    /// The token was rejected as expired/invalid: fetch a new one, then retry.
    RefetchToken,
    /// The trust policy (or a permission) refused: never retried, explained.
    NotAuthorized,
    /// Anything else that retrying cannot fix (validation errors, malformed policy, ...).
    Fatal,
}

/// A classified STS failure.
#[derive(Debug, Clone)]
pub struct StsError {
    /// What to do.
    pub class: ErrorClass,
    /// The AWS error code, if there was one.
    pub code: Option<String>,
    /// One line for the log (neutralised).
    pub message: String,
}

const RETRY_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "PriorRequestNotComplete",
    "IDPCommunicationError",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

const REFETCH_CODES: &[&str] = &[
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidIdentityToken",
];

const NOT_AUTHORIZED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "IDPRejectedClaim",
    "RegionDisabledException",
];

/// Classify an SDK error (service error codes, HTTP status, transport failures).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> StsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err {
        SdkError::TimeoutError(_) => StsError {
            class: ErrorClass::Retry,
            code: None,
            message: "request timed out".into(),
        },
        SdkError::DispatchFailure(d) => StsError {
            class: if d.is_user() {
                ErrorClass::Fatal
            } else {
                ErrorClass::Retry
            },
            code: None,
            message: format!(
                "{}: {}",
                if d.is_timeout() {
                    "connection timed out"
                } else {
                    "connection failed"
                },
                single_line(&deepest_source(err))
            ),
        },
        SdkError::ConstructionFailure(_) => StsError {
            class: ErrorClass::Fatal,
            code: None,
            message: format!(
                "cannot build request: {}",
                single_line(&deepest_source(err))
            ),
        },
        _ => {
            let code = err.code().map(str::to_string);
            let msg = err.message().unwrap_or("").to_string();
            let class = match code.as_deref() {
                Some(c) if NOT_AUTHORIZED_CODES.contains(&c) => ErrorClass::NotAuthorized,
                Some(c) if REFETCH_CODES.contains(&c) => {
                    // A missing identity provider is configuration, not a stale token.
                    if msg.contains("No OpenIDConnect provider found") {
                        ErrorClass::NotAuthorized
                    } else {
                        ErrorClass::RefetchToken
                    }
                }
                Some(c) if RETRY_CODES.contains(&c) => ErrorClass::Retry,
                _ if status.is_some_and(|s| s >= 500 || s == 429) => ErrorClass::Retry,
                _ => ErrorClass::Fatal,
            };
            let mut message = match (&code, status) {
                (Some(c), Some(s)) => format!("{c} (HTTP {s})"),
                (Some(c), None) => c.clone(),
                (None, Some(s)) => format!("HTTP {s}"),
                (None, None) => "unreadable response".into(),
            };
            if !msg.is_empty() {
                message.push_str(": ");
                message.push_str(&single_line(&msg));
            }
            StsError {
                class,
                code,
                message,
            }
        }
    }
}

fn deepest_source(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// Temporary credentials from STS.
#[derive(Debug, Clone)]
pub struct StsCredentials {
    /// `AWS_ACCESS_KEY_ID`
    pub access_key_id: Secret,
    /// `AWS_SECRET_ACCESS_KEY`
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`
    pub session_token: Secret,
    /// Expiry, RFC 3339.
    pub expiration: String,
    /// The assumed-role ARN STS reported, if any.
    pub assumed_role_arn: Option<String>,
}

fn convert(
    c: Option<&aws_sdk_sts::types::Credentials>,
    arn: Option<String>,
) -> Option<StsCredentials> {
    let c = c?;
    Some(StsCredentials {
        access_key_id: Secret::new(c.access_key_id()),
        secret_access_key: Secret::new(c.secret_access_key()),
        session_token: Secret::new(c.session_token()),
        expiration: c
            .expiration()
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default(),
        assumed_role_arn: arn,
    })
}

/// Retry limits shared by every call of one run.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call (>= 1).
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// The overall deadline of the whole run.
    pub deadline: Instant,
}

impl RetryPolicy {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Why assuming a role failed.
#[derive(Debug)]
pub enum AssumeError {
    /// Refused by a trust policy or permission: explain, do not retry. Carries the claims of the
    /// last token presented (web identity only).
    NotAuthorized {
        /// The STS message.
        message: String,
        /// The last token's claims.
        claims: Option<Box<Claims>>,
    },
    /// Gave up (fatal error, attempts exhausted, deadline).
    Failed(Failure),
}

/// The web-identity call's parameters.
#[derive(Debug, Clone)]
pub struct WebIdentityRequest {
    /// Role to assume.
    pub role_arn: String,
    /// Session name.
    pub session_name: String,
    /// Duration in seconds.
    pub duration: i32,
    /// Inline session policy (minified JSON).
    pub policy: Option<String>,
    /// Managed session policy ARNs.
    pub policy_arns: Vec<String>,
    /// Token audience.
    pub audience: String,
}

fn session_tag_list(tags: &[(String, String)]) -> Option<Vec<aws_sdk_sts::types::Tag>> {
    if tags.is_empty() {
        return None;
    }
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

fn policy_arns(v: &[String]) -> Option<Vec<aws_sdk_sts::types::PolicyDescriptorType>> {
    if v.is_empty() {
        return None;
    }
    Some(
        v.iter()
            .map(|a| {
                aws_sdk_sts::types::PolicyDescriptorType::builder()
                    .arn(a)
                    .build()
            })
            .collect(),
    )
}

async fn sleep_before_retry(
    runner: &Runner,
    what: &str,
    attempt: u32,
    policy: &RetryPolicy,
    reason: &str,
) -> std::result::Result<(), Failure> {
    if attempt >= policy.max_attempts {
        return Err(Failure::runtime(format!(
            "{what}: giving up after {attempt} attempt(s); last error: {reason}"
        )));
    }
    let remaining = policy.remaining();
    if remaining.is_zero() {
        return Err(Failure::runtime(format!(
            "{what}: overall timeout reached after {attempt} attempt(s); last error: {reason}"
        )));
    }
    let d = policy.backoff.delay(attempt).min(remaining);
    runner.info(&format!(
        "{what}: attempt {attempt}/{} failed: {reason}; retrying in {} ms",
        policy.max_attempts,
        d.as_millis()
    ));
    tokio::time::sleep(d).await;
    Ok(())
}

/// `AssumeRoleWithWebIdentity`, fetching a fresh token for every attempt.
pub async fn assume_role_with_web_identity(
    runner: &Runner,
    settings: &StsSettings,
    source: &TokenSource,
    http: &reqwest::Client,
    req: &WebIdentityRequest,
    policy: &RetryPolicy,
) -> std::result::Result<StsCredentials, AssumeError> {
    const WHAT: &str = "AssumeRoleWithWebIdentity";
    let client = settings.client(None);
    let mut invalid_token_seen = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let remaining = policy.remaining();
        if remaining.is_zero() {
            return Err(AssumeError::Failed(Failure::runtime(format!(
                "{WHAT}: overall timeout reached before attempt {attempt}"
            ))));
        }
        let per_try = remaining.min(settings.attempt_timeout);
        let token = match source.fetch(http, &req.audience, per_try).await {
            Ok(t) => t,
            Err(TokenError::Fatal(m)) => {
                return Err(AssumeError::Failed(Failure::runtime(format!(
                    "cannot get an OIDC token: {m}"
                ))))
            }
            Err(TokenError::Transient(m)) => {
                sleep_before_retry(runner, "OIDC token", attempt, policy, &m)
                    .await
                    .map_err(AssumeError::Failed)?;
                continue;
            }
        };
        if runner.in_actions() {
            runner.mask(&token);
        }
        let claims = Claims::decode(&token);
        let call = client
            .assume_role_with_web_identity()
            .role_arn(&req.role_arn)
            .role_session_name(&req.session_name)
            .duration_seconds(req.duration)
            .web_identity_token(token.expose())
            .set_policy(req.policy.clone())
            .set_policy_arns(policy_arns(&req.policy_arns))
            .send();
        let remaining = policy.remaining();
        let result = match tokio::time::timeout(remaining.min(settings.attempt_timeout), call).await
        {
            Ok(r) => r,
            Err(_) => {
                let e = "request timed out".to_string();
                sleep_before_retry(runner, WHAT, attempt, policy, &e)
                    .await
                    .map_err(AssumeError::Failed)?;
                continue;
            }
        };
        drop(token);
        match result {
            Ok(out) => {
                let arn = out.assumed_role_user().map(|u| u.arn().to_string());
                return convert(out.credentials(), arn).ok_or_else(|| {
                    AssumeError::Failed(Failure::runtime(format!(
                        "{WHAT}: the response carried no credentials"
                    )))
                });
            }
            Err(e) => {
                let c = classify(&e);
                match c.class {
                    ErrorClass::NotAuthorized => {
                        return Err(AssumeError::NotAuthorized {
                            message: c.message,
                            claims: claims.map(Box::new),
                        })
                    }
                    ErrorClass::Fatal => {
                        return Err(AssumeError::Failed(Failure::runtime(format!(
                            "{WHAT} failed: {}",
                            c.message
                        ))))
                    }
                    ErrorClass::RefetchToken => {
                        if c.code.as_deref() == Some("InvalidIdentityToken") {
                            invalid_token_seen += 1;
                            if invalid_token_seen > 2 {
                                return Err(AssumeError::NotAuthorized {
                                    message: c.message,
                                    claims: claims.map(Box::new),
                                });
                            }
                        }
                        let reason = format!("{}; a fresh OIDC token will be used", c.message);
                        sleep_before_retry(runner, WHAT, attempt, policy, &reason)
                            .await
                            .map_err(AssumeError::Failed)?;
                    }
                    ErrorClass::Retry => {
                        sleep_before_retry(runner, WHAT, attempt, policy, &c.message)
                            .await
                            .map_err(AssumeError::Failed)?;
                    }
                }
            }
        }
    }
}

/// The chained `AssumeRole` call's parameters.
#[derive(Debug, Clone)]
pub struct ChainRequest {
    /// Role to assume with the first role's credentials.
    pub role_arn: String,
    /// Session name.
    pub session_name: String,
    /// Duration in seconds (<= 3600 for chained sessions).
    pub duration: i32,
    /// External id.
    pub external_id: Option<String>,
    /// Inline session policy.
    pub policy: Option<String>,
    /// Managed session policy ARNs.
    pub policy_arns: Vec<String>,
    /// Session tags (key, value).
    pub tags: Vec<(String, String)>,
    /// Keys of `tags` that pass on to later sessions of a role chain.
    pub transitive_tag_keys: Vec<String>,
}

/// `AssumeRole` with existing credentials (role chaining). Retries transient errors and, a few
/// times, a rejection of the brand-new source credentials (IAM eventual consistency).
pub async fn assume_role(
    runner: &Runner,
    settings: &StsSettings,
    source: &StsCredentials,
    req: &ChainRequest,
    policy: &RetryPolicy,
) -> std::result::Result<StsCredentials, AssumeError> {
    const WHAT: &str = "AssumeRole (role chaining)";
    let client = settings.client(Some(source));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let call = client
            .assume_role()
            .role_arn(&req.role_arn)
            .role_session_name(&req.session_name)
            .duration_seconds(req.duration)
            .set_external_id(req.external_id.clone())
            .set_policy(req.policy.clone())
            .set_policy_arns(policy_arns(&req.policy_arns))
            .set_tags(session_tag_list(&req.tags))
            .set_transitive_tag_keys(
                Some(req.transitive_tag_keys.clone()).filter(|k| !k.is_empty()),
            )
            .send();
        let remaining = policy.remaining();
        let result = match tokio::time::timeout(remaining.min(settings.attempt_timeout), call).await
        {
            Ok(r) => r,
            Err(_) => {
                sleep_before_retry(runner, WHAT, attempt, policy, "request timed out")
                    .await
                    .map_err(AssumeError::Failed)?;
                continue;
            }
        };
        match result {
            Ok(out) => {
                let arn = out.assumed_role_user().map(|u| u.arn().to_string());
                return convert(out.credentials(), arn).ok_or_else(|| {
                    AssumeError::Failed(Failure::runtime(format!(
                        "{WHAT}: the response carried no credentials"
                    )))
                });
            }
            Err(e) => {
                let c = classify(&e);
                let fresh_creds_rejected = matches!(
                    c.code.as_deref(),
                    Some("InvalidClientTokenId") | Some("ExpiredToken")
                ) && attempt < 4;
                match c.class {
                    _ if fresh_creds_rejected => {
                        sleep_before_retry(runner, WHAT, attempt, policy, &c.message)
                            .await
                            .map_err(AssumeError::Failed)?;
                    }
                    ErrorClass::NotAuthorized => {
                        return Err(AssumeError::NotAuthorized {
                            message: c.message,
                            claims: None,
                        })
                    }
                    ErrorClass::Fatal | ErrorClass::RefetchToken => {
                        return Err(AssumeError::Failed(Failure::runtime(format!(
                            "{WHAT} failed: {}",
                            c.message
                        ))))
                    }
                    ErrorClass::Retry => {
                        sleep_before_retry(runner, WHAT, attempt, policy, &c.message)
                            .await
                            .map_err(AssumeError::Failed)?;
                    }
                }
            }
        }
    }
}

/// Who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Account id.
    pub account: String,
    /// The caller ARN (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`).
    pub arn: String,
}

/// `GetCallerIdentity` with the new credentials. Freshly issued credentials are sometimes briefly
/// rejected (`InvalidClientTokenId`, `AccessDenied`): those are retried up to five times with a
/// short backoff, as are transient errors.
pub async fn caller_identity(
    runner: &Runner,
    settings: &StsSettings,
    creds: &StsCredentials,
    policy: &RetryPolicy,
) -> Result<Identity> {
    const WHAT: &str = "GetCallerIdentity";
    let client = settings.client(Some(creds));
    let short = RetryPolicy {
        max_attempts: policy.max_attempts.clamp(1, 5),
        backoff: Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
        },
        deadline: policy.deadline,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let remaining = short.remaining();
        let call = client.get_caller_identity().send();
        let result = match tokio::time::timeout(remaining.min(settings.attempt_timeout), call).await
        {
            Ok(r) => r,
            Err(_) => {
                sleep_before_retry(runner, WHAT, attempt, &short, "request timed out").await?;
                continue;
            }
        };
        match result {
            Ok(out) => {
                return match (out.account(), out.arn()) {
                    (Some(a), Some(arn)) => Ok(Identity {
                        account: a.to_string(),
                        arn: arn.to_string(),
                    }),
                    _ => Err(Failure::runtime(format!(
                        "{WHAT}: the response carried no account/ARN"
                    ))),
                }
            }
            Err(e) => {
                let c = classify(&e);
                let eventual = matches!(
                    c.code.as_deref(),
                    Some("InvalidClientTokenId") | Some("AccessDenied") | Some("ExpiredToken")
                );
                if c.class == ErrorClass::Retry || eventual {
                    sleep_before_retry(runner, WHAT, attempt, &short, &c.message).await?;
                } else {
                    return Err(Failure::runtime(format!("{WHAT} failed: {}", c.message)));
                }
            }
        }
    }
}

// ----- CloudWatch alarms (tag-deploy verify) -----------------------------------------------

/// A CloudWatch client for `region`, built like every SDK client: the ambient credentials
/// (oidc-login's), the one HTTP stack ([`crate::net::sdk_http_client`]), and the standard
/// endpoint variables (`AWS_ENDPOINT_URL_CLOUDWATCH`, else `AWS_ENDPOINT_URL`), validated by
/// the caller before any call.
pub async fn cloudwatch(region: &str, endpoint: Option<&str>) -> aws_sdk_cloudwatch::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(30))
        .build();
    aws_sdk_cloudwatch::Client::new(&sdk_config(region, endpoint, timeouts).await)
}

/// The ambient SDK configuration (credentials from the environment) for `region`, on the one
/// HTTP stack, with `timeouts` and an optional endpoint override: what every SDK client but
/// STS (which oidc-login configures call by call) is built from.
pub async fn sdk_config(
    region: &str,
    endpoint: Option<&str>,
    timeouts: TimeoutConfig,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .http_client(crate::net::sdk_http_client())
        .timeout_config(timeouts);
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
    }
    loader.load().await
}

/// The CloudWatch endpoint override from the runner's environment, validated (exit 2).
pub fn cloudwatch_endpoint(runner: &Runner) -> Result<Option<String>> {
    if runner
        .var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(None);
    }
    for var in ["AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL"] {
        if let Some(v) = runner.var(var).filter(|v| !v.is_empty()) {
            // Signed requests with the session credentials go to this URL.
            crate::validate::credential_url(var, v)?;
            return Ok(Some(v.to_string()));
        }
    }
    Ok(None)
}

/// At most this many alarms are read for a tag selector; more is refused (never a partial look).
const MAX_TAGGED_ALARMS: usize = 200;

fn cloudwatch_failure<E>(what: &str, e: &SdkError<E, HttpResponse>) -> Failure
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string)
        .unwrap_or_else(|| match e {
            SdkError::TimeoutError(_) => "timeout".into(),
            SdkError::DispatchFailure(_) => "connection failed".into(),
            _ => "no response".into(),
        });
    let hint = if code.contains("AccessDenied") {
        " (the deploy role needs cloudwatch:DescribeAlarms and cloudwatch:ListTagsForResource)"
    } else {
        ""
    };
    Failure::runtime(format!(
        "CloudWatch {what} failed: {}{hint}",
        single_line(&code)
    ))
}

fn alarm_state(v: Option<&aws_sdk_cloudwatch::types::StateValue>) -> crate::verify::AlarmState {
    use crate::verify::AlarmState;
    use aws_sdk_cloudwatch::types::StateValue;
    match v {
        Some(StateValue::Ok) => AlarmState::Ok,
        Some(StateValue::InsufficientData) => AlarmState::InsufficientData,
        // ALARM, and any state this client does not know, count as in ALARM (fail closed).
        _ => AlarmState::Alarm,
    }
}

/// One round of alarm states: the named alarms (a missing one is listed as missing) and every
/// alarm carrying the tag.
pub async fn alarm_round(
    cw: &aws_sdk_cloudwatch::Client,
    sel: &crate::verify::Alarms,
) -> Result<crate::verify::AlarmRound> {
    use aws_sdk_cloudwatch::types::AlarmType;
    let mut round = crate::verify::AlarmRound::default();
    // (name, arn, state) of every alarm read.
    let mut seen: Vec<(String, String, crate::verify::AlarmState)> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = cw
            .describe_alarms()
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .set_next_token(token.clone());
        if sel.tag.is_none() {
            req = req.set_alarm_names(Some(sel.names.clone()));
        }
        let out = req
            .send()
            .await
            .map_err(|e| cloudwatch_failure("DescribeAlarms", &e))?;
        for a in out.metric_alarms() {
            seen.push((
                a.alarm_name().unwrap_or_default().to_string(),
                a.alarm_arn().unwrap_or_default().to_string(),
                alarm_state(a.state_value()),
            ));
        }
        for a in out.composite_alarms() {
            seen.push((
                a.alarm_name().unwrap_or_default().to_string(),
                a.alarm_arn().unwrap_or_default().to_string(),
                alarm_state(a.state_value()),
            ));
        }
        if seen.len() > MAX_TAGGED_ALARMS {
            return Err(Failure::runtime(format!(
                "CloudWatch lists more than {MAX_TAGGED_ALARMS} alarms; name the alarms to watch instead of a tag"
            )));
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for n in &sel.names {
        match seen.iter().find(|(name, _, _)| name == n) {
            Some((name, _, st)) => round.alarms.push((name.clone(), *st)),
            None => round.missing.push(n.clone()),
        }
    }
    if let Some((key, value)) = &sel.tag {
        for (name, arn, st) in &seen {
            if sel.names.contains(name) || arn.is_empty() {
                continue;
            }
            let tags = cw
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(|e| cloudwatch_failure("ListTagsForResource", &e))?;
            let carries = tags
                .tags()
                .iter()
                .any(|t| t.key() == Some(key.as_str()) && t.value() == Some(value.as_str()));
            if carries {
                round.alarms.push((name.clone(), *st));
            }
        }
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_from_hardening() {
        let r = role_arn("role-to-assume", "arn:aws:iam::123456789012:role/deploy").unwrap();
        assert_eq!(
            (r.account.as_str(), r.path.as_str(), r.name.as_str()),
            ("123456789012", "/", "deploy")
        );
        let r = role_arn(
            "r",
            "arn:aws-us-gov:iam::123456789012:role/a/b/gh-deploy_1+=,.@-",
        )
        .unwrap();
        assert_eq!(r.path, "/a/b/");
        assert_eq!(
            r.arn(),
            "arn:aws-us-gov:iam::123456789012:role/a/b/gh-deploy_1+=,.@-"
        );
        role_arn("r", "arn:aws-cn:iam::123456789012:role/x").unwrap();
        for bad in [
            "arn:aws:iam::12345678901:role/deploy",
            "arn:aws:iam::1234567890123:role/deploy",
            "arn:aws:iam:us-east-1:123456789012:role/deploy",
            "arn:aws:iam::123456789012:user/deploy",
            "arn:aws:sts::123456789012:assumed-role/deploy/s",
            "arn:aws:iam::123456789012:assumed-role/deploy",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/deploy ",
            " arn:aws:iam::123456789012:role/deploy",
            "arn:aws:iam::123456789012:role/dep loy",
            "arn:aws:iam::123456789012:role//deploy",
            "arn:aws:iam::123456789012:role/deploy\n",
            "arn:aws-xx:iam::123456789012:role/deploy",
            "arn:aws:iam::123456789012:role",
            "arn:aws:iam::123456789012:role/deploy::error::x",
            &format!("arn:aws:iam::123456789012:role/{}", "a".repeat(65)),
            "arn:aws:iam::123456789012",
            "deploy",
            "",
        ] {
            let e = role_arn("role-to-assume", bad).unwrap_err();
            assert!(e.to_string().contains("`role-to-assume`"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn session_names_durations_policies() {
        session_name("s", "ab").unwrap();
        session_name("s", &"a".repeat(64)).unwrap();
        for bad in ["a", "", &"a".repeat(65), "a b", "a/b", "a:b", "ä1"] {
            assert!(session_name("role-session-name", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            sanitise_session_name("GitHubActions-1 2/x"),
            "GitHubActions-1-2-x"
        );
        assert_eq!(sanitise_session_name("a").len(), 2);
        assert_eq!(duration_seconds("d", "900", 43200).unwrap(), 900);
        assert_eq!(duration_seconds("d", "43200", 43200).unwrap(), 43200);
        for bad in ["899", "43201", "", "1h", "+900", "-1", "3600.0", "3601"] {
            assert!(
                duration_seconds("d", bad, if bad == "3601" { 3600 } else { 43200 }).is_err(),
                "{bad:?}"
            );
        }
        external_id("e", "abc:/=").unwrap();
        assert!(external_id("e", "a").is_err());
        assert!(external_id("e", "a b").is_err());
        assert_eq!(
            managed_policy_arns(
                "m",
                "arn:aws:iam::aws:policy/ReadOnlyAccess,\narn:aws:iam::123456789012:policy/x/y"
            )
            .unwrap()
            .len(),
            2
        );
        assert!(managed_policy_arns("m", "arn:aws:iam::aws:role/x").is_err());
        assert!(managed_policy_arns("m", &["arn:aws:iam::aws:policy/A"; 11].join(",")).is_err());
        assert_eq!(
            inline_policy("p", "{ \"Version\": \"2012-10-17\" }").unwrap(),
            "{\"Version\":\"2012-10-17\"}"
        );
        assert!(inline_policy("p", "[]").is_err());
        assert!(inline_policy("p", "{").is_err());
        assert_eq!(
            account_list("a", "123456789012, 210987654321")
                .unwrap()
                .len(),
            2
        );
        assert!(account_list("a", "12345678901").is_err());
        assert!(account_list("a", " , ").is_err());
        assert_eq!(
            account_of_arn("arn:aws:sts::123456789012:assumed-role/x/y"),
            Some("123456789012")
        );
    }

    #[test]
    fn session_tags_table() {
        assert_eq!(
            custom_tags(
                "custom-tags",
                r#"{"Team": "pay ments", "Cost:Centre": "a/b=c+d-@_."}"#
            )
            .unwrap(),
            vec![
                ("Cost:Centre".to_string(), "a/b=c+d-@_.".to_string()),
                ("Team".to_string(), "pay ments".to_string())
            ]
        );
        assert!(custom_tags("c", "{}").unwrap().is_empty());
        let many = format!(
            "{{{}}}",
            (0..51)
                .map(|i| format!("\"k{i}\": \"v\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let long_key = format!("{{\"{}\": \"v\"}}", "k".repeat(129));
        let long_val = format!("{{\"k\": \"{}\"}}", "v".repeat(257));
        for bad in [
            "[]",
            "{",
            r#"{"k": 1}"#,
            r#"{"": "v"}"#,
            r#"{"a*b": "v"}"#,
            r#"{"k": "v;rm"}"#,
            r#"{"aws:x": "v"}"#,
            r#"{"Team": "a", "team": "b"}"#,
            &many,
            &long_key,
            &long_val,
        ] {
            let e = custom_tags("custom-tags", bad).unwrap_err();
            assert!(e.to_string().contains("`custom-tags`"), "{bad}: {e}");
        }
        let vars = |k: &str| match k {
            "GITHUB_REPOSITORY" => Some("octo/repo".to_string()),
            "GITHUB_WORKFLOW" => Some("deploy <prod> ✓".to_string()),
            "GITHUB_REF" => Some("refs/heads/main".to_string()),
            _ => None,
        };
        let tags = github_session_tags(&vars);
        assert_eq!(
            tags,
            [
                ("GitHub", "Actions"),
                ("Repository", "octo/repo"),
                ("Workflow", "deploy _prod_ _"),
                ("Branch", "refs/heads/main")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(sanitise_tag_value(&"x".repeat(300)).len(), 256);
        assert_eq!(
            transitive_tag_keys("t", "Repository\n branch ,", &tags).unwrap(),
            ["Repository", "branch"]
        );
        assert!(transitive_tag_keys("t", "Team", &tags).is_err());
        assert!(transitive_tag_keys("t", " ,\n", &tags).is_err());
        let mut dup = tags.clone();
        dup.push(("repository".into(), "x".into()));
        assert!(check_tag_keys("custom-tags", &dup).is_err());
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(30), Duration::from_secs(1));
        for n in 1..40 {
            assert!(b.delay(n) <= b.ceiling(n));
        }
    }
}
