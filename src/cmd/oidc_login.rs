//! `oidc-login`: keyless AWS credentials from GitHub OIDC.
//!
//! Order of work: validate every input (exit 2, nothing requested) -> a fresh OIDC token per
//! `AssumeRoleWithWebIdentity` attempt -> optional role chaining (`AssumeRole`) ->
//! `GetCallerIdentity` (short retry for eventual consistency) -> account check (exit 1) -> mask
//! the credentials before anything else is printed -> export to `$GITHUB_ENV`, set outputs.
//! A trust-policy refusal is never retried; it is explained from the token's claims.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser};

use super::{BinaryDoc, OutputDoc};
use crate::aws::{self, AssumeError, RetryPolicy, StsCredentials, StsSettings};
use crate::envs::Model;
use crate::exit::{Failure, Result};
use crate::oidc::{self, Claims, TokenSource};
use crate::runner::{single_line, Runner};

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

    /// ARN of a second role to assume with the first role's credentials (role chaining).
    #[arg(long, env = "GITOPS_ROLE_CHAINING")]
    pub role_chaining: Option<String>,

    /// External id for the chained `AssumeRole` (only with `role-chaining`).
    #[arg(long, env = "GITOPS_ROLE_EXTERNAL_ID")]
    pub role_external_id: Option<String>,

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

    /// Export the credentials to `$GITHUB_ENV` for later steps.
    #[arg(
        long,
        env = "GITOPS_OUTPUT_ENV_CREDENTIALS",
        default_value_t = true,
        action = ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub output_env_credentials: bool,

    /// Attempts per STS call for transient errors (1-50).
    #[arg(long, env = "GITOPS_RETRY_MAX_ATTEMPTS", default_value = "8")]
    pub retry_max_attempts: String,

    /// Overall deadline in seconds for the whole login (1-3600).
    #[arg(long, env = "GITOPS_TIMEOUT", default_value = "120")]
    pub timeout: String,

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

/// Everything validated, ready to run.
#[derive(Debug)]
pub struct Plan {
    role: aws::RoleArn,
    region: String,
    session_name: String,
    duration: i32,
    audience: String,
    chain: Option<aws::RoleArn>,
    external_id: Option<String>,
    policy: Option<String>,
    policy_arns: Vec<String>,
    allowed: Vec<String>,
    retry_max_attempts: u32,
    timeout: Duration,
    source: TokenSource,
    settings: StsSettings,
}

/// Validate every input and the runner environment. No network access.
pub fn plan(runner: &Runner, a: &Args) -> Result<Plan> {
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

    let chain = a
        .role_chaining
        .as_deref()
        .map(|v| aws::role_arn("role-chaining", v))
        .transpose()?;
    for (field, r) in [
        ("role-to-assume", Some(&role)),
        ("role-chaining", chain.as_ref()),
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
    let max_duration = if chain.is_some() { 3600 } else { 43200 };
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
            if chain.is_none() {
                return Err(Failure::usage(
                    "role-external-id",
                    "only applies to role chaining (set `role-chaining`); AssumeRoleWithWebIdentity takes no external id",
                ));
            }
            aws::external_id("role-external-id", e)?;
            Some(e.to_string())
        }
        None => None,
    };
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
    let timeout = match a.timeout.parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) && !a.timeout.starts_with('+') => Duration::from_secs(n),
        _ => {
            return Err(Failure::usage(
                "timeout",
                format!(
                    "`{}` is not a number of seconds between 1 and 3600",
                    single_line(&a.timeout)
                ),
            ))
        }
    };

    let final_role = chain.as_ref().unwrap_or(&role);
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
                    if chain.is_some() { "role-chaining" } else { "role-to-assume" },
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
            if chain.is_some() {
                "role-chaining"
            } else {
                "role-to-assume"
            },
            format!(
                "is in account {}, which is not in allowed-account-ids ({})",
                final_role.account,
                allowed.join(", ")
            ),
        ));
    }
    let source = TokenSource::from_runner(runner, a.web_identity_token_file.as_deref())?;
    let settings = StsSettings::from_env(runner, region)?;
    Ok(Plan {
        role,
        region: region.to_string(),
        session_name,
        duration,
        audience: a.audience.clone(),
        chain,
        external_id,
        policy,
        policy_arns,
        allowed,
        retry_max_attempts,
        timeout,
        source,
        settings,
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
    let plan = plan(runner, &args)?;
    if args.unset_current_credentials {
        for v in CREDENTIAL_VARS.iter().chain(&["AWS_PROFILE"]) {
            runner.export_env(v, "")?;
        }
    }
    let rt = crate::net::runtime()?;
    rt.block_on(login(runner, &args, plan))
}

async fn login(runner: &Runner, args: &Args, plan: Plan) -> Result<()> {
    let deadline = tokio::time::Instant::now() + plan.timeout;
    let policy = RetryPolicy {
        max_attempts: plan.retry_max_attempts,
        backoff: aws::Backoff::default(),
        deadline,
    };
    let http = crate::net::client_builder(plan.settings.connect_timeout)?
        .user_agent(concat!(
            "gitops-actions-oidc-login/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| Failure::runtime(format!("cannot build HTTP client: {e}")))?;
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
        &plan.source,
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
    let creds = match &plan.chain {
        None => creds,
        Some(chain_role) => {
            let req = aws::ChainRequest {
                role_arn: chain_role.arn(),
                session_name: plan.session_name.clone(),
                duration: plan.duration,
                external_id: plan.external_id.clone(),
                policy: plan.policy.clone(),
                policy_arns: plan.policy_arns.clone(),
            };
            match aws::assume_role(runner, &plan.settings, &creds, &req, &policy).await {
                Ok(c) => {
                    mask_credentials(runner, &c);
                    c
                }
                Err(AssumeError::NotAuthorized { message, .. }) => {
                    return Err(Failure::refused(format!(
                        "role chaining refused: {message}\n\
                         The session {} may not assume {}. The chained role's trust policy must allow \
                         `sts:AssumeRole` (and `sts:TagSession` if tags are used) for the first role's ARN {}{}, \
                         and the first role needs an identity policy allowing `sts:AssumeRole` on it.",
                        single_line(creds.assumed_role_arn.as_deref().unwrap_or("(unknown)")),
                        chain_role.arn(),
                        plan.role.arn(),
                        if plan.external_id.is_some() {
                            "; check that its `sts:ExternalId` condition matches role-external-id"
                        } else {
                            ""
                        }
                    )))
                }
                Err(AssumeError::Failed(f)) => return Err(f),
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
    if args.output_env_credentials {
        runner.export_env("AWS_ACCESS_KEY_ID", creds.access_key_id.expose())?;
        runner.export_env("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.expose())?;
        runner.export_env("AWS_SESSION_TOKEN", creds.session_token.expose())?;
    }
    runner.export_env("AWS_REGION", &plan.region)?;
    runner.export_env("AWS_DEFAULT_REGION", &plan.region)?;
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
    runner.info(&format!(
        "Assumed {} as {} (expires {}){}",
        plan.chain.as_ref().unwrap_or(&plan.role).arn(),
        single_line(&identity.arn),
        single_line(&creds.expiration),
        if args.output_env_credentials {
            "; credentials exported to later steps"
        } else {
            ""
        }
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
