//! `oidc-login`: keyless AWS credentials from GitHub OIDC.
//!
//! Order of work: validate every input (exit 2, nothing requested) -> a fresh OIDC token per
//! `AssumeRoleWithWebIdentity` attempt -> optional role chaining (`AssumeRole`) ->
//! `GetCallerIdentity` (short retry for eventual consistency) -> account check (exit 1) -> mask
//! the credentials before anything else is printed -> export to `$GITHUB_ENV`, set outputs.
//! A trust-policy refusal is never retried; it is explained from the token's claims.
//!
//! Every input of aws-actions/configure-aws-credentials v6 is an input here with the same
//! meaning, or is refused with the reason (static keys, `force-skip-oidc`: this action is
//! keyless). `role-chaining: true` chains from credentials an earlier step left; the one-step
//! chain of this action is `chain-to-role`. `aws-profile` writes a named profile to job-private
//! files ([`crate::profiles`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::aws::{self, AssumeError, RetryPolicy, StsCredentials, StsSettings};
use crate::envs::Model;
use crate::exit::{Failure, Result};
use crate::oidc::{self, Claims, TokenSource};
use crate::profiles::{self, FoundCredentials, ProfileFiles};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;

/// Keyless AWS credentials from GitHub OIDC.
#[derive(Debug, Parser)]
#[command(
    name = "oidc-login",
    version,
    about = "Keyless AWS credentials from GitHub OIDC",
    long_about = "Exchanges the job's GitHub OIDC token for short-lived AWS credentials \
(STS AssumeRoleWithWebIdentity, optional role chaining), checks who they belong to, and exports \
them, masked, to later steps. No static keys."
)]
pub struct Args {
    /// ARN of the IAM role to assume with the OIDC token (`arn:aws:iam::123456789012:role/name`).
    #[arg(long, env = "GITOPS_ROLE_TO_ASSUME", required = true)]
    pub role_to_assume: Option<String>,

    /// AWS region, e.g. `eu-west-1` (also selects the partition's STS endpoint).
    #[arg(long, env = "GITOPS_AWS_REGION", required = true)]
    pub aws_region: Option<String>,

    /// Session name (2-64 of `[\w+=,.@-]`). Default: `GitHubActions-<run id>-<attempt>`.
    #[arg(long, env = "GITOPS_ROLE_SESSION_NAME")]
    pub role_session_name: Option<String>,

    /// Session duration in seconds (900-43200; at most 3600 with role chaining).
    #[arg(long, env = "GITOPS_ROLE_DURATION_SECONDS", default_value = "3600")]
    pub role_duration_seconds: String,

    /// Audience (`aud`) requested for the OIDC token.
    #[arg(long, env = "GITOPS_AUDIENCE", default_value = oidc::DEFAULT_AUDIENCE)]
    pub audience: String,

    /// As configure-aws-credentials: `true` assumes `role-to-assume` with the credentials an earlier
    /// step left (`AWS_ACCESS_KEY_ID`... or `AWS_PROFILE`) instead of the OIDC token. For a second role
    /// in one step use `chain-to-role`.
    #[arg(long, env = "GITOPS_ROLE_CHAINING")]
    pub role_chaining: Option<String>,

    /// ARN of a second role to assume, in the same step, with the first role's credentials
    /// (one-step role chaining; the session tag inputs apply to this hop).
    #[arg(long, env = "GITOPS_CHAIN_TO_ROLE")]
    pub chain_to_role: Option<String>,

    /// External id for the `AssumeRole` hop (with `chain-to-role` or `role-chaining`).
    #[arg(long, env = "GITOPS_ROLE_EXTERNAL_ID")]
    pub role_external_id: Option<String>,

    /// Send no session tags on the `AssumeRole` hop (by default it carries GitHub, Repository,
    /// Workflow, Action, Actor, Commit and Branch, as configure-aws-credentials does).
    #[arg(long, env = "GITOPS_ROLE_SKIP_SESSION_TAGGING")]
    pub role_skip_session_tagging: bool,

    /// Extra session tags for the `AssumeRole` hop, a JSON object (`{"Team": "payments"}`).
    #[arg(long, env = "GITOPS_CUSTOM_TAGS")]
    pub custom_tags: Option<String>,

    /// Keys of the hop's session tags that pass on to later sessions of the chain (newline- or
    /// comma-separated).
    #[arg(long, env = "GITOPS_TRANSITIVE_TAG_KEYS")]
    pub transitive_tag_keys: Option<String>,

    /// Inline session policy (JSON) applied to the final session.
    #[arg(long, env = "GITOPS_INLINE_SESSION_POLICY")]
    pub inline_session_policy: Option<String>,

    /// Managed session policy ARNs (comma- or newline-separated, at most 10) for the final session.
    #[arg(long, env = "GITOPS_MANAGED_SESSION_POLICIES")]
    pub managed_session_policies: Option<String>,

    /// Account ids the credentials may belong to (comma-separated). Checked before any request
    /// against the role ARN and after assuming against the caller identity.
    #[arg(long, env = "GITOPS_ALLOWED_ACCOUNT_IDS")]
    pub allowed_account_ids: Option<String>,

    /// Environment name from the environments model; its pinned account and region are enforced.
    #[arg(long, env = "GITOPS_ENVIRONMENT")]
    pub environment: Option<String>,

    /// Environments model file (default `.github/gitops.yml` if present, else the built-in model).
    #[arg(long, env = "GITOPS_CONFIG")]
    pub config: Option<PathBuf>,

    /// The Terraform workspace these credentials are for: `default`, or a preview's `pr-<n>`
    /// (refused, before any request, for an environment that does not allow previews).
    #[arg(long, env = "GITOPS_WORKSPACE", default_value = "default")]
    pub workspace: String,

    /// Mask the AWS account id in logs.
    #[arg(long, env = "GITOPS_MASK_AWS_ACCOUNT_ID")]
    pub mask_aws_account_id: bool,

    /// Also set the credentials as step outputs (masked).
    #[arg(long, env = "GITOPS_OUTPUT_CREDENTIALS")]
    pub output_credentials: bool,

    /// Export the credentials (and `AWS_REGION`, `AWS_DEFAULT_REGION`, with `aws-profile` also
    /// `AWS_PROFILE`) to `$GITHUB_ENV` for later steps. Default `true`, or `false` with `aws-profile`.
    #[arg(
        long,
        env = "GITOPS_OUTPUT_ENV_CREDENTIALS",
        action = ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub output_env_credentials: Option<bool>,

    /// Write the credentials as this named profile into job-private files under `RUNNER_TEMP`,
    /// exported as `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` (never `~/.aws`).
    #[arg(long, env = "GITOPS_AWS_PROFILE")]
    pub aws_profile: Option<String>,

    /// Replace `aws-profile` if it already exists (else that is refused before any request).
    #[arg(long, env = "GITOPS_OVERWRITE_AWS_PROFILE")]
    pub overwrite_aws_profile: bool,

    /// Attempts per STS call for transient errors (1-50).
    #[arg(long, env = "GITOPS_RETRY_MAX_ATTEMPTS", default_value = "8")]
    pub retry_max_attempts: String,

    /// One attempt per STS call: no retries (as `retry-max-attempts: 1`).
    #[arg(long, env = "GITOPS_DISABLE_RETRY")]
    pub disable_retry: bool,

    /// Overall deadline in seconds for the whole login (1-3600). Default 120.
    #[arg(long, env = "GITOPS_TIMEOUT")]
    pub timeout: Option<String>,

    /// configure-aws-credentials' name for `timeout`: the overall deadline in seconds (1-3600;
    /// `0` means no deadline there and the default `timeout` here).
    #[arg(long, env = "GITOPS_ACTION_TIMEOUT_S")]
    pub action_timeout_s: Option<String>,

    /// STS endpoint URL (regional, FIPS or VPC endpoint), e.g. `https://sts.eu-west-1.amazonaws.com`.
    /// Takes the place of `AWS_ENDPOINT_URL_STS`.
    #[arg(long, env = "GITOPS_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,

    /// Proxy for the token request and STS (`http://proxy:3128`). Default: `HTTPS_PROXY` /
    /// `HTTP_PROXY` / `ALL_PROXY` from the environment.
    #[arg(long, env = "GITOPS_HTTP_PROXY")]
    pub http_proxy: Option<String>,

    /// Hosts reached without the proxy (comma-separated, curl's `NO_PROXY` syntax). Default:
    /// `NO_PROXY` from the environment.
    #[arg(long, env = "GITOPS_NO_PROXY")]
    pub no_proxy: Option<String>,

    /// If credentials an earlier step left (environment keys or `AWS_PROFILE`) are valid, and
    /// of an allowed account, keep them and request no new ones.
    #[arg(long, env = "GITOPS_USE_EXISTING_CREDENTIALS")]
    pub use_existing_credentials: bool,

    /// Accepted for configure-aws-credentials compatibility; has no effect (credentials are never
    /// passed through a shell, URL or parser that special characters could break).
    #[arg(long, env = "GITOPS_SPECIAL_CHARACTERS_WORKAROUND")]
    pub special_characters_workaround: bool,

    /// Refused: static keys are not accepted (this action is keyless; see docs/oidc-login.md).
    #[arg(long, env = "GITOPS_AWS_ACCESS_KEY_ID")]
    pub aws_access_key_id: Option<String>,

    /// Refused: static keys are not accepted (this action is keyless; see docs/oidc-login.md).
    #[arg(long, env = "GITOPS_AWS_SECRET_ACCESS_KEY")]
    pub aws_secret_access_key: Option<String>,

    /// Refused: static keys are not accepted (this action is keyless; see docs/oidc-login.md).
    #[arg(long, env = "GITOPS_AWS_SESSION_TOKEN")]
    pub aws_session_token: Option<String>,

    /// Refused when `true`: the OIDC token is this action's only way in (see docs/oidc-login.md).
    #[arg(long, env = "GITOPS_FORCE_SKIP_OIDC")]
    pub force_skip_oidc: bool,

    /// Read the OIDC token from this file instead of the runner's endpoint (re-read per attempt).
    #[arg(long, env = "GITOPS_WEB_IDENTITY_TOKEN_FILE")]
    pub web_identity_token_file: Option<PathBuf>,

    /// First clear AWS credentials exported by earlier steps (so a failure leaves none behind).
    #[arg(long, env = "GITOPS_UNSET_CURRENT_CREDENTIALS")]
    pub unset_current_credentials: bool,
}

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "aws-account-id",
        description: "The AWS account id of the assumed role",
    },
    OutputDoc {
        name: "authenticated-arn",
        description: "The ARN of the assumed-role session (GetCallerIdentity)",
    },
    OutputDoc {
        name: "aws-expiration",
        description: "When the credentials expire (RFC 3339)",
    },
    OutputDoc {
        name: "aws-access-key-id",
        description: "Access key id (only with output-credentials; masked)",
    },
    OutputDoc {
        name: "aws-secret-access-key",
        description: "Secret access key (only with output-credentials; masked)",
    },
    OutputDoc {
        name: "aws-session-token",
        description: "Session token (only with output-credentials; masked)",
    },
];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "oidc-login",
        description: "Keyless AWS credentials from GitHub OIDC",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Where the first credentials come from.
#[derive(Debug)]
enum Source {
    /// The job's OIDC token (`AssumeRoleWithWebIdentity`).
    WebIdentity(TokenSource),
    /// `role-chaining: true`: credentials an earlier step left (`AssumeRole`).
    Existing(FoundCredentials),
}

/// Everything validated, ready to run.
#[derive(Debug)]
pub struct Plan {
    role: aws::RoleArn,
    region: String,
    session_name: String,
    duration: i32,
    audience: String,
    source: Source,
    /// `chain-to-role`: a second hop in this step.
    chain: Option<aws::RoleArn>,
    external_id: Option<String>,
    policy: Option<String>,
    policy_arns: Vec<String>,
    /// Session tags and transitive keys of the `AssumeRole` hop.
    tags: Vec<(String, String)>,
    transitive_tag_keys: Vec<String>,
    allowed: Vec<String>,
    retry_max_attempts: u32,
    timeout: Duration,
    settings: StsSettings,
    /// `aws-profile`: the name and the files it goes to.
    profile: Option<(String, ProfileFiles)>,
    output_env: bool,
    /// `use-existing-credentials`: what to try before asking for new ones.
    existing: Option<FoundCredentials>,
}

/// The inputs configure-aws-credentials takes for static keys, refused here (exit 2).
const STATIC_KEY_INPUTS: [&str; 3] = [
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-session-token",
];

/// Register every value given in a static-key input as a secret, before anything is printed.
fn mask_static_keys(runner: &Runner, a: &Args) {
    for v in [
        &a.aws_access_key_id,
        &a.aws_secret_access_key,
        &a.aws_session_token,
    ]
    .into_iter()
    .flatten()
    {
        runner.mask(&Secret::new(v.as_str()));
    }
}

/// Static keys and `force-skip-oidc`: refused, with the reason and the migration. The values are
/// never part of the message.
fn refuse_keyed_login(a: &Args) -> Result<()> {
    let given = STATIC_KEY_INPUTS
        .into_iter()
        .zip([
            &a.aws_access_key_id,
            &a.aws_secret_access_key,
            &a.aws_session_token,
        ])
        .find(|(_, v)| v.is_some());
    if let Some((field, _)) = given {
        return Err(Failure::usage(
            field,
            "is not accepted: oidc-login is keyless. It trades the job's GitHub OIDC token for \
             short-lived credentials, so no long-lived AWS key has to live in the repository's \
             secrets. To migrate: remove aws-access-key-id / aws-secret-access-key / \
             aws-session-token, add `permissions: id-token: write` to the job, and give \
             `role-to-assume` a role whose trust policy allows this repository's OIDC token \
             (docs/oidc-login.md, \"Migrating from configure-aws-credentials\"). The value given \
             was masked and never sent anywhere",
        ));
    }
    if a.force_skip_oidc {
        return Err(Failure::usage(
            "force-skip-oidc",
            "is not accepted: the job's OIDC token is oidc-login's only way in (it takes no \
             static keys). To assume a role with credentials an earlier step left, use \
             `role-chaining: true`; outside GitHub Actions use `web-identity-token-file`",
        ));
    }
    Ok(())
}

/// `role-chaining`: the peer's boolean. An ARN there is the old one-step form of this action:
/// refused with the new input's name.
fn role_chaining_flag(v: Option<&str>) -> Result<bool> {
    match v.map(str::trim) {
        None => Ok(false),
        Some(t) if t.eq_ignore_ascii_case("true") => Ok(true),
        Some(t) if t.eq_ignore_ascii_case("false") => Ok(false),
        Some(t) if t.starts_with("arn:") => Err(Failure::usage(
            "role-chaining",
            "takes `true` or `false` (as in configure-aws-credentials: chain from the credentials \
             already in the environment). The one-step form that took a second role's ARN here is \
             now `chain-to-role: <ARN>`; note its AssumeRole hop carries session tags unless \
             `role-skip-session-tagging: true` (the role's trust policy then needs sts:TagSession)",
        )),
        Some(t) => Err(Failure::usage(
            "role-chaining",
            format!("`{}` is not `true` or `false`", single_line(t)),
        )),
    }
}

/// A whole number of seconds in `lo..=hi` (no sign).
fn seconds(field: &str, v: &str, lo: u64, hi: u64) -> Result<u64> {
    match v.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) && !v.starts_with('+') => Ok(n),
        _ => Err(Failure::usage(
            field,
            format!(
                "`{}` is not a number of seconds between {lo} and {hi}",
                single_line(v)
            ),
        )),
    }
}

/// The overall deadline from `timeout` and its peer name `action-timeout-s` (0 there: none of
/// its own, so the default applies). Both given and different: exit 2.
fn deadline(timeout: Option<&str>, action_timeout_s: Option<&str>) -> Result<Duration> {
    let t = timeout
        .map(|v| seconds("timeout", v, 1, 3600))
        .transpose()?;
    let a = action_timeout_s
        .map(|v| seconds("action-timeout-s", v, 0, 3600))
        .transpose()?
        .filter(|n| *n > 0);
    match (t, a) {
        (Some(t), Some(a)) if t != a => Err(Failure::usage(
            "action-timeout-s",
            format!("is {a} but timeout is {t}; give one of the two (they are the same deadline)"),
        )),
        (t, a) => Ok(Duration::from_secs(t.or(a).unwrap_or(DEFAULT_TIMEOUT_S))),
    }
}

/// The default overall deadline, seconds.
const DEFAULT_TIMEOUT_S: u64 = 120;

/// `sts-endpoint`: a URL (a bare host name means `https://<host>`), held to the same rule as
/// `AWS_ENDPOINT_URL_STS` (the token and the credentials go there).
fn sts_endpoint(v: &str) -> Result<String> {
    let url = if v.contains("://") {
        v.to_string()
    } else {
        format!("https://{v}")
    };
    crate::validate::credential_url("sts-endpoint", &url)?;
    Ok(url)
}

/// The session tags of the `AssumeRole` hop: the run's GitHub tags (unless skipped), then
/// `custom-tags`; `transitive-tag-keys` must name some of them. Without a hop these inputs
/// have nothing to apply to: exit 2 (AssumeRoleWithWebIdentity takes its tags from the token).
/// Session tags (key, value) and the transitive keys among them.
type HopTags = (Vec<(String, String)>, Vec<String>);

fn hop_tags(runner: &Runner, a: &Args, has_hop: bool) -> Result<HopTags> {
    if !has_hop {
        for (field, given) in [
            ("custom-tags", a.custom_tags.is_some()),
            ("transitive-tag-keys", a.transitive_tag_keys.is_some()),
        ] {
            if given {
                return Err(Failure::usage(
                    field,
                    "applies to an AssumeRole hop (`chain-to-role` or `role-chaining: true`); \
                     AssumeRoleWithWebIdentity takes no session tags (they come from the OIDC \
                     token's claims), so they would be dropped",
                ));
            }
        }
        return Ok((Vec::new(), Vec::new()));
    }
    let mut tags = if a.role_skip_session_tagging {
        Vec::new()
    } else {
        aws::github_session_tags(&|n| runner.var(n).map(str::to_string))
    };
    if let Some(c) = a.custom_tags.as_deref() {
        tags.extend(aws::custom_tags("custom-tags", c)?);
    }
    aws::check_tag_keys("custom-tags", &tags)?;
    let transitive = match a.transitive_tag_keys.as_deref() {
        Some(v) => aws::transitive_tag_keys("transitive-tag-keys", v, &tags)?,
        None => Vec::new(),
    };
    Ok((tags, transitive))
}

/// Validate every input and the runner environment. No network access.
pub fn plan(runner: &Runner, a: &Args) -> Result<Plan> {
    refuse_keyed_login(a)?;
    let role_raw = a
        .role_to_assume
        .as_deref()
        .ok_or_else(|| Failure::usage("role-to-assume", "is required"))?;
    let role = aws::role_arn("role-to-assume", role_raw)?;
    let region = a
        .aws_region
        .as_deref()
        .ok_or_else(|| Failure::usage("aws-region", "is required"))?;
    crate::validate::region(region)?;
    let region_partition = crate::validate::partition_for_region(region);

    let from_existing = role_chaining_flag(a.role_chaining.as_deref())?;
    let chain = a
        .chain_to_role
        .as_deref()
        .map(|v| aws::role_arn("chain-to-role", v))
        .transpose()?;
    if from_existing {
        for (field, given) in [
            ("chain-to-role", chain.is_some()),
            (
                "web-identity-token-file",
                a.web_identity_token_file.is_some(),
            ),
        ] {
            if given {
                return Err(Failure::usage(
                    field,
                    "cannot be combined with `role-chaining: true`, which assumes role-to-assume \
                     with the credentials already in the environment (no OIDC token)",
                ));
            }
        }
    }
    for (field, r) in [
        ("role-to-assume", Some(&role)),
        ("chain-to-role", chain.as_ref()),
    ] {
        if let Some(r) = r {
            if r.partition != region_partition {
                return Err(Failure::usage(
                    field,
                    format!(
                        "is in partition `{}` but aws-region `{region}` is in `{region_partition}`",
                        r.partition
                    ),
                ));
            }
        }
    }
    if a.unset_current_credentials && (from_existing || a.use_existing_credentials) {
        return Err(Failure::usage(
            "unset-current-credentials",
            "clears the credentials an earlier step left, which `role-chaining: true` and \
             `use-existing-credentials` are asked to use; give one or the other",
        ));
    }
    // The credentials an earlier step left: the source of `role-chaining: true`, and what
    // `use-existing-credentials` tries first. Masked before anything else is printed.
    let found = if from_existing || a.use_existing_credentials {
        let f = match profiles::existing_credentials(runner) {
            // Only something to try first: a profile that is not there (yet) means "none".
            Err(e) if !from_existing => {
                runner.notice(&format!(
                    "use-existing-credentials: none usable ({}); requesting new ones",
                    e.message
                ));
                None
            }
            f => f?,
        };
        if let Some(f) = &f {
            runner.mask(&f.access_key_id);
            runner.mask(&f.secret_access_key);
            runner.mask(&f.session_token);
        }
        f
    } else {
        None
    };
    let has_hop = chain.is_some() || from_existing;
    // STS caps a session assumed with a role session's credentials at one hour.
    let chained_session = chain.is_some()
        || found
            .as_ref()
            .is_some_and(|f| from_existing && !f.session_token.expose().is_empty());
    let max_duration = if chained_session { 3600 } else { 43200 };
    let duration = aws::duration_seconds(
        "role-duration-seconds",
        &a.role_duration_seconds,
        max_duration,
    )?;
    oidc::validate_audience(&a.audience)?;

    let session_name = match a.role_session_name.as_deref() {
        Some(s) => {
            aws::session_name("role-session-name", s)?;
            s.to_string()
        }
        None => default_session_name(runner),
    };
    let external_id = match a.role_external_id.as_deref() {
        Some(e) => {
            if !has_hop {
                return Err(Failure::usage(
                    "role-external-id",
                    "only applies to an AssumeRole hop (set `chain-to-role`, or `role-chaining: true`); AssumeRoleWithWebIdentity takes no external id",
                ));
            }
            aws::external_id("role-external-id", e)?;
            Some(e.to_string())
        }
        None => None,
    };
    let (tags, transitive_tag_keys) = hop_tags(runner, a, has_hop)?;
    let policy = a
        .inline_session_policy
        .as_deref()
        .map(|p| aws::inline_policy("inline-session-policy", p))
        .transpose()?;
    let policy_arns = match a.managed_session_policies.as_deref() {
        Some(p) => aws::managed_policy_arns("managed-session-policies", p)?,
        None => Vec::new(),
    };
    let mut allowed = match a.allowed_account_ids.as_deref() {
        Some(v) => aws::account_list("allowed-account-ids", v)?,
        None => Vec::new(),
    };
    let retry_max_attempts = match a.retry_max_attempts.parse::<u32>() {
        Ok(n) if (1..=50).contains(&n) && !a.retry_max_attempts.starts_with('+') => n,
        _ => {
            return Err(Failure::usage(
                "retry-max-attempts",
                format!(
                    "`{}` is not a whole number between 1 and 50",
                    single_line(&a.retry_max_attempts)
                ),
            ))
        }
    };
    let retry_max_attempts = if a.disable_retry {
        1
    } else {
        retry_max_attempts
    };
    let timeout = deadline(a.timeout.as_deref(), a.action_timeout_s.as_deref())?;

    let final_role = chain.as_ref().unwrap_or(&role);
    let final_field = if chain.is_some() {
        "chain-to-role"
    } else {
        "role-to-assume"
    };
    if a.environment.is_none() && a.workspace != crate::envs::DEFAULT_WORKSPACE {
        crate::envs::Workspace::parse("workspace", &a.workspace)?;
        return Err(Failure::usage(
            "workspace",
            "a preview workspace needs `environment` (whether it may have previews is checked against it)",
        ));
    }
    if let Some(env_name) = a.environment.as_deref() {
        let model = Model::load(std::path::Path::new("."), a.config.as_deref())?;
        let env = model.get("environment", env_name)?;
        crate::envs::check_workspace(env, "workspace", &a.workspace)?;
        if let Some(acct) = &env.aws_account_id {
            if final_role.account != *acct {
                return Err(Failure::usage(
                    final_field,
                    format!(
                        "is in account {} but environment `{}` deploys only into account {acct} ({})",
                        final_role.account, env.name, model.source
                    ),
                ));
            }
            if !allowed.is_empty() && !allowed.contains(acct) {
                return Err(Failure::usage(
                    "allowed-account-ids",
                    format!(
                        "does not include account {acct}, which environment `{}` is pinned to",
                        env.name
                    ),
                ));
            }
            allowed = vec![acct.clone()];
        }
        if let Some(r) = &env.aws_region {
            if r != region {
                return Err(Failure::usage(
                    "aws-region",
                    format!(
                        "is `{region}` but environment `{}` is pinned to `{r}`",
                        env.name
                    ),
                ));
            }
        }
    }
    if !allowed.is_empty() && !allowed.contains(&final_role.account) {
        return Err(Failure::usage(
            final_field,
            format!(
                "is in account {}, which is not in allowed-account-ids ({})",
                final_role.account,
                allowed.join(", ")
            ),
        ));
    }
    let profile = match a.aws_profile.as_deref() {
        Some(name) => {
            profiles::profile_name("aws-profile", name)?;
            let files = ProfileFiles::locate(runner)?;
            if !a.overwrite_aws_profile && files.has(name)? {
                return Err(Failure::usage(
                    "aws-profile",
                    format!(
                        "`{name}` already exists in {} or {}; set `overwrite-aws-profile: true` to replace it",
                        files.credentials.display(),
                        files.config.display()
                    ),
                ));
            }
            Some((name.to_string(), files))
        }
        None => None,
    };
    let output_env = a.output_env_credentials.unwrap_or(profile.is_none());
    let source = if from_existing {
        Source::Existing(found.clone().ok_or_else(|| {
            Failure::usage(
                "role-chaining",
                "is `true`, which assumes role-to-assume with the credentials an earlier step left, \
                 but there are none: no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and no AWS_PROFILE \
                 (set `env: AWS_PROFILE: <profile>` on the step to chain from a profile)",
            )
        })?)
    } else {
        Source::WebIdentity(TokenSource::from_runner(
            runner,
            a.web_identity_token_file.as_deref(),
        )?)
    };
    let mut settings = StsSettings::from_env(runner, region)?;
    if let Some(e) = a.sts_endpoint.as_deref() {
        settings.endpoint = Some(sts_endpoint(e)?);
    }
    if let Some(p) = a.http_proxy.as_deref() {
        let u = crate::net::proxy_url("http-proxy", p)?;
        if let Some(pw) = u.password() {
            runner.mask_str(pw);
        }
    }
    settings.proxy = crate::net::proxy_choice(
        a.http_proxy.as_deref().map(str::trim),
        a.no_proxy.as_deref(),
        &|n| runner.var(n).map(str::to_string),
    );
    Ok(Plan {
        role,
        region: region.to_string(),
        session_name,
        duration,
        audience: a.audience.clone(),
        source,
        chain,
        external_id,
        policy,
        policy_arns,
        tags,
        transitive_tag_keys,
        allowed,
        retry_max_attempts,
        timeout,
        settings,
        profile,
        output_env,
        existing: if a.use_existing_credentials {
            found
        } else {
            None
        },
    })
}

/// `GitHubActions-<run id>-<attempt>` when the run is known, else `oidc-login`.
fn default_session_name(runner: &Runner) -> String {
    match runner.var("GITHUB_RUN_ID") {
        Some(id) => aws::sanitise_session_name(&format!(
            "GitHubActions-{id}-{}",
            runner.var("GITHUB_RUN_ATTEMPT").unwrap_or("1")
        )),
        None => "oidc-login".into(),
    }
}

const CREDENTIAL_VARS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    // Before anything else can print: a static key given by mistake is a secret.
    mask_static_keys(runner, &args);
    let plan = plan(runner, &args)?;
    if args.special_characters_workaround {
        runner.info(
            "special-characters-workaround has no effect here: oidc-login hands the secret key to \
             later steps verbatim (GITHUB_ENV heredoc, profile file) and signs with it itself, so \
             no shell, URL or parser sees it; it never re-asks STS for a different key.",
        );
    }
    if args.unset_current_credentials {
        for v in CREDENTIAL_VARS.iter().chain(&["AWS_PROFILE"]) {
            runner.export_env(v, "")?;
        }
    }
    let rt = crate::net::runtime()?;
    rt.block_on(login(runner, &args, plan))
}

fn as_sts(f: &FoundCredentials) -> StsCredentials {
    StsCredentials {
        access_key_id: f.access_key_id.clone(),
        secret_access_key: f.secret_access_key.clone(),
        session_token: f.session_token.clone(),
        expiration: String::new(),
        assumed_role_arn: None,
    }
}

/// `use-existing-credentials`: are the credentials an earlier step left valid (one
/// `GetCallerIdentity`) and of an allowed account? Then they stay, and the outputs describe them.
async fn keep_existing(
    runner: &Runner,
    plan: &Plan,
    found: &FoundCredentials,
    policy: &RetryPolicy,
) -> Result<bool> {
    let once = RetryPolicy {
        max_attempts: 1,
        ..*policy
    };
    match aws::caller_identity(runner, &plan.settings, &as_sts(found), &once).await {
        Ok(id) if plan.allowed.is_empty() || plan.allowed.contains(&id.account) => {
            runner.notice(&format!(
                "use-existing-credentials: the credentials from {} are valid ({}); no new ones requested",
                found.origin,
                single_line(&id.arn)
            ));
            runner.set_output("aws-account-id", &id.account)?;
            runner.set_output("authenticated-arn", &id.arn)?;
            Ok(true)
        }
        Ok(id) => {
            runner.notice(&format!(
                "use-existing-credentials: the credentials from {} belong to account {}, which is not allowed; requesting new ones",
                found.origin, id.account
            ));
            Ok(false)
        }
        Err(e) => {
            runner.notice(&format!(
                "use-existing-credentials: the credentials from {} are not usable ({}); requesting new ones",
                found.origin, e.message
            ));
            Ok(false)
        }
    }
}

/// The `AssumeRole` hop (`chain-to-role`, or `role-chaining: true`) with `source`'s credentials.
async fn assume_hop(
    runner: &Runner,
    plan: &Plan,
    source: &StsCredentials,
    target: &aws::RoleArn,
    source_role: &str,
    policy: &RetryPolicy,
) -> Result<StsCredentials> {
    let req = aws::ChainRequest {
        role_arn: target.arn(),
        session_name: plan.session_name.clone(),
        duration: plan.duration,
        external_id: plan.external_id.clone(),
        policy: plan.policy.clone(),
        policy_arns: plan.policy_arns.clone(),
        tags: plan.tags.clone(),
        transitive_tag_keys: plan.transitive_tag_keys.clone(),
    };
    match aws::assume_role(runner, &plan.settings, source, &req, policy).await {
        Ok(c) => {
            mask_credentials(runner, &c);
            Ok(c)
        }
        Err(AssumeError::NotAuthorized { message, .. }) => Err(Failure::refused(format!(
            "role chaining refused: {message}\n\
             The session {} may not assume {}. The chained role's trust policy must allow \
             `sts:AssumeRole`{} for {source_role}{}, and that principal needs an identity policy \
             allowing `sts:AssumeRole` on it.",
            single_line(source.assumed_role_arn.as_deref().unwrap_or("(unknown)")),
            target.arn(),
            if plan.tags.is_empty() {
                ""
            } else {
                " and `sts:TagSession` (this hop carries session tags; role-skip-session-tagging turns the default ones off)"
            },
            if plan.external_id.is_some() {
                "; check that its `sts:ExternalId` condition matches role-external-id"
            } else {
                ""
            }
        ))),
        Err(AssumeError::Failed(f)) => Err(f),
    }
}

async fn login(runner: &Runner, args: &Args, plan: Plan) -> Result<()> {
    let deadline = tokio::time::Instant::now() + plan.timeout;
    let policy = RetryPolicy {
        max_attempts: plan.retry_max_attempts,
        backoff: aws::Backoff::default(),
        deadline,
    };
    if let Some(found) = &plan.existing {
        if keep_existing(runner, &plan, found, &policy).await? {
            runner.finish(crate::runner::OutputFormat::Text);
            return Ok(());
        }
    }
    let http = crate::net::client_builder_via(
        plan.settings.connect_timeout,
        plan.settings.proxy.as_ref(),
    )?
    .user_agent(concat!(
        "gitops-actions-oidc-login/",
        env!("CARGO_PKG_VERSION")
    ))
    .build()
    .map_err(|e| Failure::runtime(format!("cannot build HTTP client: {e}")))?;
    let creds = match &plan.source {
        Source::Existing(found) => {
            let origin = format!("the credentials from {}", found.origin);
            assume_hop(runner, &plan, &as_sts(found), &plan.role, &origin, &policy).await?
        }
        Source::WebIdentity(token_source) => {
            let chained = plan.chain.is_some();
            let first = aws::WebIdentityRequest {
                role_arn: plan.role.arn(),
                session_name: plan.session_name.clone(),
                // The first session only has to live long enough to chain.
                duration: if chained { 900 } else { plan.duration },
                policy: if chained { None } else { plan.policy.clone() },
                policy_arns: if chained {
                    Vec::new()
                } else {
                    plan.policy_arns.clone()
                },
                audience: plan.audience.clone(),
            };
            let creds = match aws::assume_role_with_web_identity(
                runner,
                &plan.settings,
                token_source,
                &http,
                &first,
                &policy,
            )
            .await
            {
                Ok(c) => c,
                Err(AssumeError::NotAuthorized { message, claims }) => {
                    return Err(explain_not_authorized(
                        runner,
                        &plan,
                        &message,
                        claims.as_deref(),
                    ))
                }
                Err(AssumeError::Failed(f)) => return Err(f),
            };
            mask_credentials(runner, &creds);
            match &plan.chain {
                None => creds,
                Some(chain_role) => {
                    let origin = format!("the first role's ARN {}", plan.role.arn());
                    assume_hop(runner, &plan, &creds, chain_role, &origin, &policy).await?
                }
            }
        }
    };
    let identity = aws::caller_identity(runner, &plan.settings, &creds, &policy).await?;
    if args.mask_aws_account_id {
        runner.mask_str(&identity.account);
    }
    if !plan.allowed.is_empty() && !plan.allowed.contains(&identity.account) {
        return Err(Failure::refused(format!(
            "the credentials belong to account {}, which is not allowed (allowed: {}); nothing was exported",
            identity.account,
            plan.allowed.join(", ")
        )));
    }
    if let Some((name, files)) = &plan.profile {
        let found = FoundCredentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.clone(),
            session_token: creds.session_token.clone(),
            origin: String::new(),
        };
        files.write(name, &found, &plan.region)?;
        runner.export_env("AWS_CONFIG_FILE", &files.config.display().to_string())?;
        runner.export_env(
            "AWS_SHARED_CREDENTIALS_FILE",
            &files.credentials.display().to_string(),
        )?;
        if plan.output_env {
            runner.export_env("AWS_PROFILE", name)?;
        }
    }
    if plan.output_env {
        runner.export_env("AWS_ACCESS_KEY_ID", creds.access_key_id.expose())?;
        runner.export_env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.expose())?;
        runner.export_env("AWS_SESSION_TOKEN", creds.session_token.expose())?;
        runner.export_env("AWS_REGION", &plan.region)?;
        runner.export_env("AWS_DEFAULT_REGION", &plan.region)?;
    }
    if args.mask_aws_account_id {
        runner.set_secret_output("aws-account-id", &identity.account.clone().into())?;
        runner.set_secret_output("authenticated-arn", &identity.arn.clone().into())?;
    } else {
        runner.set_output("aws-account-id", &identity.account)?;
        runner.set_output("authenticated-arn", &identity.arn)?;
    }
    runner.set_output("aws-expiration", &creds.expiration)?;
    if args.output_credentials {
        runner.set_secret_output("aws-access-key-id", &creds.access_key_id)?;
        runner.set_secret_output("aws-secret-access-key", &creds.secret_access_key)?;
        runner.set_secret_output("aws-session-token", &creds.session_token)?;
    }
    let final_role = plan.chain.as_ref().unwrap_or(&plan.role).arn();
    let whereto = match (&plan.profile, plan.output_env) {
        (Some((name, files)), true) => format!(
            "; profile `{name}` written to {} and credentials exported to later steps",
            files.credentials.display()
        ),
        (Some((name, files)), false) => {
            format!(
                "; profile `{name}` written to {}",
                files.credentials.display()
            )
        }
        (None, true) => "; credentials exported to later steps".into(),
        (None, false) => String::new(),
    };
    runner.info(&format!(
        "Assumed {final_role} as {} (expires {}){whereto}",
        single_line(&identity.arn),
        single_line(&creds.expiration),
    ));
    runner.finish(crate::runner::OutputFormat::Text);
    Ok(())
}

fn mask_credentials(runner: &Runner, c: &StsCredentials) {
    runner.mask(&c.access_key_id);
    runner.mask(&c.secret_access_key);
    runner.mask(&c.session_token);
}

/// The explanation for "Not authorized to perform sts:AssumeRoleWithWebIdentity": the token's
/// claims next to the role, and the trust-policy conditions that would match it.
fn explain_not_authorized(
    runner: &Runner,
    plan: &Plan,
    message: &str,
    claims: Option<&Claims>,
) -> Failure {
    let role = plan.role.arn();
    let mut text = vec![
        format!("STS refused to let this job assume {role}: {message}"),
        "Not retried: a trust-policy refusal does not go away by asking again.".to_string(),
    ];
    match claims {
        Some(c) => {
            text.push(
                "The OIDC token presented (claims only; the token itself is never shown):".into(),
            );
            text.extend(c.describe());
            text.push(format!(
                "The role's trust policy must allow `sts:AssumeRoleWithWebIdentity` for the federated principal \
                 arn:{}:iam::{}:oidc-provider/token.actions.githubusercontent.com with conditions such as:",
                plan.role.partition, plan.role.account
            ));
            text.push(format!(
                "  \"StringEquals\": {{ \"token.actions.githubusercontent.com:aud\": \"{}\" }}",
                single_line(c.aud.as_deref().unwrap_or(&plan.audience))
            ));
            if let Some(s) = c.legacy_sub() {
                text.push(format!(
                    "  \"StringEquals\": {{ \"token.actions.githubusercontent.com:sub\": \"{}\" }}   (legacy form)",
                    single_line(&s)
                ));
            }
            if let Some(s) = c.immutable_sub() {
                text.push(format!(
                    "  \"StringEquals\": {{ \"token.actions.githubusercontent.com:sub\": \"{}\" }}   (immutable form: owner and repository ids)",
                    single_line(&s)
                ));
            }
            if c.environment.is_none() {
                text.push(
                    "The job has no `environment:`, so `sub` names the ref or event; a trust policy that expects \
                     `...:environment:<name>` needs the job to declare that environment."
                        .into(),
                );
            }
            if c.aud.as_deref().is_some_and(|a| a != plan.audience) {
                text.push(format!(
                    "Note: the token's aud differs from the requested audience `{}`.",
                    single_line(&plan.audience)
                ));
            }
        }
        None => text.push("The token's claims could not be decoded (not a JWT?).".into()),
    }
    // Claims carry user-controlled text (branch names): print them inert.
    runner.untrusted_block(&text.join("\n"));
    Failure::refused(format!(
        "not authorized to assume {role} with this job's OIDC token (sub {}); see the explanation above",
        claims
            .and_then(|c| c.sub.as_deref())
            .map(single_line)
            .unwrap_or_else(|| "unknown".into())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_chaining_is_the_peers_boolean() {
        for (v, want) in [
            (None, Some(false)),
            (Some("true"), Some(true)),
            (Some(" TRUE "), Some(true)),
            (Some("false"), Some(false)),
            (Some("arn:aws:iam::123456789012:role/second"), None),
            (Some("yes"), None),
            (Some(""), None),
        ] {
            match (role_chaining_flag(v), want) {
                (Ok(got), Some(w)) => assert_eq!(got, w, "{v:?}"),
                (Err(e), None) => {
                    assert_eq!(e.field.as_deref(), Some("role-chaining"), "{v:?}");
                    if v.is_some_and(|v| v.starts_with("arn:")) {
                        assert!(e.message.contains("chain-to-role: <ARN>"), "{e}");
                    }
                }
                (got, w) => panic!("{v:?}: {got:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn one_deadline_under_two_names() {
        let s = |n| Duration::from_secs(n);
        for (t, a, want) in [
            (None, None, Some(s(120))),
            (Some("30"), None, Some(s(30))),
            (None, Some("45"), Some(s(45))),
            // 0 is the peer's "no deadline": here "not given", the default still applies.
            (None, Some("0"), Some(s(120))),
            (Some("30"), Some("0"), Some(s(30))),
            (Some("30"), Some("30"), Some(s(30))),
            (Some("30"), Some("31"), None),
            (Some("0"), None, None),
            (None, Some("3601"), None),
            (None, Some("+5"), None),
            (None, Some("5s"), None),
        ] {
            let got = deadline(t, a).ok();
            assert_eq!(got, want, "timeout {t:?} action-timeout-s {a:?}");
        }
    }

    #[test]
    fn sts_endpoints_are_held_to_the_credential_url_rule() {
        assert_eq!(
            sts_endpoint("sts.eu-west-1.amazonaws.com").unwrap(),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            sts_endpoint("https://vpce-1.sts.eu-west-1.vpce.amazonaws.com").unwrap(),
            "https://vpce-1.sts.eu-west-1.vpce.amazonaws.com"
        );
        sts_endpoint("http://127.0.0.1:5555").unwrap();
        for bad in [
            "http://sts.amazonaws.com",
            "https://AKIA:SECRETx@sts.amazonaws.com",
            "ftp://sts.amazonaws.com",
        ] {
            let e = sts_endpoint(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("sts-endpoint"), "{bad}");
            assert!(!e.message.contains("SECRETx"), "{e}");
        }
    }
}
