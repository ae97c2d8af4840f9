//! ECR specifics: the registry host pattern (all partitions, nothing looser), registry
//! credentials from `GetAuthorizationToken` with the ambient AWS credentials (refreshed before
//! expiry, masked in every form before any other output), and repository checks/creation.
//!
//! The ECR API endpoint follows the SDK's standard variables (`AWS_ENDPOINT_URL_ECR`, then
//! `AWS_ENDPOINT_URL`), which is how tests point it at moto.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine;

use crate::exit::{Failure, Result};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;

/// Refresh a token this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// ECR tokens live 12 hours.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A parsed ECR registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    /// The 12-digit account id.
    pub account: String,
    /// The region code.
    pub region: String,
}

const SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
];

/// Parse `<12 digits>.dkr.ecr[-fips].<region>.<partition suffix>` exactly (no port).
pub fn parse_host(host: &str) -> Option<EcrHost> {
    let host = host.to_ascii_lowercase();
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest
        .strip_prefix("dkr.ecr.")
        .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
    let (region, suffix) = rest.split_once('.')?;
    if !SUFFIXES.contains(&suffix) || crate::validate::region(region).is_err() {
        return None;
    }
    let cn = region.starts_with("cn-");
    if cn != (suffix == "amazonaws.com.cn") {
        return None;
    }
    Some(EcrHost {
        account: account.to_string(),
        region: region.to_string(),
    })
}

/// True for hosts that look like ECR but are not exactly an ECR host (suffix tricks, ports,
/// lookalikes): these are refused rather than treated as some other registry.
pub fn is_lookalike(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    parse_host(&h).is_none()
        && (h.contains("amazonaws")
            || h.contains(".ecr.")
            || h.contains("dkr.ecr")
            || h.contains("ecr-fips"))
}

struct Token {
    b64: Secret,
    refresh_at: Instant,
}

/// What `GetAuthorizationToken` returned, already masked.
pub struct Login {
    /// Always `AWS`.
    pub user: String,
    /// The password.
    pub password: Secret,
    /// base64(`user:password`), the docker config `auth` value.
    pub b64: Secret,
    /// When the token expires (as reported).
    pub expires_at: Option<SystemTime>,
}

/// ECR API access for one region.
pub struct EcrAuth {
    client: aws_sdk_ecr::Client,
    cur: tokio::sync::Mutex<Option<Token>>,
}

fn sdk_err<E, R>(what: &str, e: &aws_sdk_ecr::error::SdkError<E, R>) -> Failure
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = single_line(&format!("{}", DisplayErrorContext(e)));
    let hint = if text.contains("AccessDenied") || text.contains("not authorized") {
        " (the role needs this ECR permission)"
    } else if text.contains("credentials") || text.contains("Credentials") {
        " (no AWS credentials: run oidc-login first)"
    } else {
        ""
    };
    Failure::runtime(format!("ECR {what} failed: {text}{hint}"))
}

impl EcrAuth {
    /// Build an ECR API client for `region` from the ambient configuration.
    pub async fn new(runner: &Runner, region: &str) -> EcrAuth {
        let endpoint = runner
            .var("AWS_ENDPOINT_URL_ECR")
            .or_else(|| runner.var("AWS_ENDPOINT_URL"));
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(60))
            .build();
        let conf = crate::aws::sdk_config(region, endpoint, timeouts).await;
        EcrAuth {
            client: aws_sdk_ecr::Client::new(&conf),
            cur: tokio::sync::Mutex::new(None),
        }
    }

    /// Fetch a fresh token; every form of the secret is masked before this returns.
    pub async fn login(&self, runner: &Runner) -> Result<Login> {
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| sdk_err("GetAuthorizationToken", &e))?;
        let data = out.authorization_data().first().ok_or_else(|| {
            Failure::runtime("ECR GetAuthorizationToken returned no authorization data")
        })?;
        let b64 = Secret::new(data.authorization_token().unwrap_or_default());
        runner.mask(&b64);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.expose())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| {
                Failure::runtime("ECR returned an authorization token that is not base64 text")
            })?;
        let (user, pass) = raw.split_once(':').ok_or_else(|| {
            Failure::runtime("ECR returned an authorization token without `user:password`")
        })?;
        let password = Secret::new(pass);
        runner.mask(&password);
        let expires_at = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok());
        Ok(Login {
            user: user.to_string(),
            password,
            b64,
            expires_at,
        })
    }

    /// The current basic-auth value (base64 `AWS:password`), refreshed ahead of expiry or when
    /// `force` (the registry said 401).
    pub async fn token_b64(&self, runner: &Runner, force: bool) -> Result<Secret> {
        let mut cur = self.cur.lock().await;
        if let Some(t) = cur.as_ref() {
            if !force && Instant::now() < t.refresh_at {
                return Ok(t.b64.clone());
            }
        }
        let l = self.login(runner).await?;
        let now_sys = SystemTime::now();
        // An expiry in the past (clock skew, or moto's fixed 2015 date) says nothing useful:
        // assume the documented 12 hours.
        let life = l
            .expires_at
            .and_then(|e| e.duration_since(now_sys).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(TOKEN_LIFETIME);
        let refresh_at = Instant::now()
            + life
                .saturating_sub(REFRESH_MARGIN)
                .max(Duration::from_secs(30));
        *cur = Some(Token {
            b64: l.b64.clone(),
            refresh_at,
        });
        Ok(l.b64)
    }

    /// Make sure `repo` exists in `account`. Returns whether its tags are immutable.
    /// With `create`, a missing repository is created with immutable tags and scan on push.
    pub async fn ensure_repository(
        &self,
        runner: &Runner,
        account: &str,
        repo: &str,
        create: bool,
    ) -> Result<bool> {
        let found = self
            .client
            .describe_repositories()
            .registry_id(account)
            .repository_names(repo)
            .send()
            .await;
        match found {
            Ok(o) => Ok(o.repositories().first().is_some_and(|r| {
                r.image_tag_mutability()
                    .is_some_and(|m| m.as_str().starts_with("IMMUTABLE"))
            })),
            Err(e) => {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception());
                if !not_found {
                    return Err(sdk_err("DescribeRepositories", &e));
                }
                if !create {
                    return Err(Failure::runtime(format!(
                        "ECR repository `{repo}` does not exist in account {account}: create it (Terraform core project) or set `create-repository: true`"
                    )));
                }
                let created = self
                    .client
                    .create_repository()
                    .registry_id(account)
                    .repository_name(repo)
                    .image_tag_mutability(ImageTagMutability::Immutable)
                    .image_scanning_configuration(
                        ImageScanningConfiguration::builder()
                            .scan_on_push(true)
                            .build(),
                    )
                    .send()
                    .await;
                match created {
                    Ok(_) => {
                        runner.info(&format!(
                            "created ECR repository {repo} (immutable tags, scan on push)"
                        ));
                        Ok(true)
                    }
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_repository_already_exists_exception()) =>
                    {
                        Ok(true)
                    }
                    Err(e) => Err(sdk_err("CreateRepository", &e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_exactly() {
        let h = parse_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(h.account, "123456789012");
        assert_eq!(h.region, "eu-west-1");
        assert!(parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        assert!(parse_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com").is_some());
        for bad in [
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com",
            "12345678901.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1a.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443",
            "evil.com/123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "x123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
        ] {
            assert!(parse_host(bad).is_none(), "{bad}");
            assert!(is_lookalike(bad), "{bad}");
        }
        assert!(!is_lookalike("ghcr.io"));
        assert!(!is_lookalike("127.0.0.1:5000"));
    }
}
