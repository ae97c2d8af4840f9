//! `ecr-push`: push and copy container images to ECR (or any OCI registry) without a Docker
//! daemon, idempotently, and log docker in to ECR for those who still need it.
//!
//! Subcommands (positional, the action's `command` input):
//! - `push`: an OCI layout, OCI archive or `docker save` tarball to `REGISTRY/REPO:TAG`;
//! - `copy`: registry to registry by digest (mount within one registry, streaming across);
//! - `login`: a docker config entry for an ECR registry.
//!
//! Every input is validated before the first network call (exit 2); an immutable tag at another
//! digest or a forbidden redirect is a refusal (exit 1); registry/network failures exit 3.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use super::{BinaryDoc, OutputDoc};
use crate::exit::{Failure, Result};
use crate::registry::blobinfo::{self, BlobInfoCache, Candidate, Origin};
use crate::registry::client::{BlobSource, Client, Creds, Endpoint, Stats};
use crate::registry::dockerconfig;
use crate::registry::ecr::{self, EcrAuth};
use crate::registry::reference::{self, is_loopback_host, Reference};
use crate::registry::source::{self, SourceSpec};
use crate::registry::transfer::{self, Destination, MountPlan};
use crate::runner::{single_line, OutputFormat, Runner};
use crate::secret::Secret;

/// Push and copy container images to ECR without a Docker daemon.
#[derive(Debug, Parser)]
#[command(
    name = "ecr-push",
    version,
    about = "Push and copy container images to ECR without a Docker daemon"
)]
pub struct Args {
    /// `push`, `copy` or `login`.
    #[command(subcommand)]
    pub command: Verb,
}

/// The verbs, each with its own inputs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Push an image from disk (OCI layout, OCI archive, docker save tarball).
    Push(PushArgs),
    /// Copy an image (or whole index) from one registry to another by digest.
    Copy(CopyArgs),
    /// Write a docker config entry for an ECR registry.
    Login(LoginArgs),
}

/// `push`: from disk to a registry.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub transfer: Transfer,
    /// Where compressed `docker save` layers and the blob-info cache (which repositories each blob went to, for mounts) are kept between runs.
    #[arg(long, env = "GITOPS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Repositories of the destination registry that may already hold the layers (repeatable; commas or whitespace separate several): a blob is mounted from there instead of uploaded when the registry holds it (ECR: account setting `BLOB_MOUNTING`).
    #[arg(long = "mount-from", env = "GITOPS_MOUNT_FROM", value_name = "REPO")]
    pub mount_from: Vec<String>,
}

/// `copy`: from a registry to a registry.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub transfer: Transfer,
}

/// `login`: a docker config entry for an ECR registry.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The ECR registry host (default: the host of `destination`).
    #[arg(long, env = "GITOPS_REGISTRY")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub destination: DestinationArg,
    #[command(flatten)]
    pub expected: Expected,
    #[command(flatten)]
    pub output: Output,
}

/// What is pushed or copied (`push`, `copy`).
#[derive(Debug, clap::Args)]
pub struct Source {
    /// push: `[oci:|oci-archive:|docker-archive:]PATH[:ref]`; copy: `REGISTRY/REPO@sha256:...` (or `:TAG`, resolved and reported).
    #[arg(long, env = "GITOPS_SOURCE")]
    pub source: Option<String>,
}

/// The destination and how blobs travel there (`push`, `copy`).
#[derive(Debug, clap::Args)]
pub struct Transfer {
    #[command(flatten)]
    pub destination: DestinationArg,

    /// More tags for the same image (repeatable; commas or whitespace separate several).
    #[arg(long = "tag", env = "GITOPS_TAG", value_name = "TAG")]
    pub tag: Vec<String>,

    /// Blobs transferred (and docker layers compressed) at once, 1-32.
    #[arg(long, env = "GITOPS_PARALLELISM", default_value_t = 6)]
    pub parallelism: usize,

    /// Create a missing ECR repository (immutable tags, scan on push).
    #[arg(long, env = "GITOPS_CREATE_REPOSITORY")]
    pub create_repository: bool,

    /// Treat tags as immutable on any registry: never move a tag that points at another digest (ECR IMMUTABLE repositories always are).
    #[arg(long, env = "GITOPS_IMMUTABLE_TAGS")]
    pub immutable_tags: bool,

    /// Talk plain HTTP to the registry; allowed only for loopback hosts (local registries, tests).
    #[arg(long, env = "GITOPS_PLAIN_HTTP")]
    pub plain_http: bool,

    /// Send registry traffic for an ECR destination to this loopback URL instead (tests, local mirrors): `http://127.0.0.1:PORT`.
    #[arg(long, env = "GITOPS_REGISTRY_ENDPOINT")]
    pub registry_endpoint: Option<String>,

    /// Overall deadline, e.g. `600`, `90s`, `30m`, `1h` (1 s to 24 h).
    #[arg(long, env = "GITOPS_TIMEOUT", default_value = "30m")]
    pub timeout: String,

    /// Username for a non-ECR destination registry (else the docker config, else anonymous).
    #[arg(long, env = "GITOPS_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,

    /// Password or token for `registry-username` (pass it through the environment, never on a command line).
    #[arg(long, env = "GITOPS_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,

    #[command(flatten)]
    pub expected: Expected,

    /// Seconds between progress lines on long transfers.
    #[arg(long, env = "GITOPS_PROGRESS_INTERVAL", default_value_t = 10)]
    pub progress_interval: u64,

    #[command(flatten)]
    pub output: Output,
}

/// Where the image goes (every verb; `login` takes its registry host).
#[derive(Debug, clap::Args)]
pub struct DestinationArg {
    /// `REGISTRY/REPO:TAG` to push or copy to (an ECR host, or any OCI registry).
    #[arg(long, env = "GITOPS_DESTINATION")]
    pub destination: Option<String>,
}

/// The account and region a destination must be in (every verb).
#[derive(Debug, clap::Args)]
pub struct Expected {
    /// Refuse any destination that is not an ECR registry of this 12-digit account.
    #[arg(long, env = "GITOPS_EXPECTED_ACCOUNT")]
    pub expected_account: Option<String>,

    /// Refuse any destination that is not an ECR registry in this region.
    #[arg(long, env = "GITOPS_EXPECTED_REGION")]
    pub expected_region: Option<String>,
}

impl Expected {
    /// The expected account and region are well formed.
    fn validate(&self) -> Result<()> {
        if let Some(acct) = &self.expected_account {
            crate::validate::account_id(acct)
                .map_err(|f| Failure::usage("expected-account", f.message))?;
        }
        if let Some(r) = &self.expected_region {
            crate::validate::region(r).map_err(|f| Failure::usage("expected-region", f.message))?;
        }
        Ok(())
    }
}

/// How outputs are printed (every verb).
#[derive(Debug, clap::Args)]
pub struct Output {
    /// How outputs are printed: `text` (outside GitHub Actions only), or `json`: stdout is
    /// exactly one JSON object of the outputs, in Actions too, and every log line goes to stderr.
    #[arg(long, env = "GITOPS_FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Repositories `mount-from` may name.
pub const MAX_MOUNT_FROM: usize = 16;

/// The rule of the `timeout` input.
pub const TIMEOUT: crate::validate::DurationRule = crate::validate::DurationRule {
    min_secs: 1,
    max_secs: 86400,
    days: false,
    rule: "between 1s and 24h (e.g. `600`, `90s`, `30m`, `1h`)",
};

/// Outputs this binary sets.
pub const OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "image",
        description: "`REGISTRY/REPO@sha256:...`: the pushed image by digest, the form to deploy",
    },
    OutputDoc {
        name: "digest",
        description: "The manifest (or index) digest, `sha256:...`",
    },
    OutputDoc {
        name: "tags",
        description: "Comma-separated tags that now point at the digest",
    },
    OutputDoc {
        name: "registry",
        description: "The registry host",
    },
];

/// Generator metadata.
pub fn doc() -> BinaryDoc {
    BinaryDoc {
        name: "ecr-push",
        description: "Push and copy container images to ECR without a Docker daemon",
        command: Args::command,
        outputs: OUTPUTS,
    }
}

/// Parse the `timeout` input (see [`TIMEOUT`]).
pub fn parse_duration(v: &str) -> Result<Duration> {
    crate::validate::duration("timeout", v, &TIMEOUT)
}

/// Where the image comes from, validated.
enum What {
    /// From disk.
    Push(SourceSpec),
    /// From a registry.
    Copy(Reference),
}

/// A push or copy with every input validated, before any network call.
struct Plan {
    what: What,
    mount_from: Vec<String>,
    dest: Reference,
    tags: Vec<String>,
    ecr: Option<ecr::EcrHost>,
    endpoint: Option<url::Url>,
    timeout: Duration,
    basic: Option<(String, Secret)>,
}

/// A login with its input validated: the ECR registry host.
struct LoginPlan {
    registry: String,
    ecr: ecr::EcrHost,
}

/// Values of a list input: repeatable, and commas or whitespace separate several.
fn split_list(raw: &[String]) -> Vec<String> {
    raw.iter()
        .flat_map(|t| t.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_host(
    field: &str,
    host: &str,
    plain_http: bool,
    endpoint: bool,
) -> Result<Option<ecr::EcrHost>> {
    if ecr::is_lookalike(host) {
        return Err(Failure::usage(
            field,
            format!(
                "`{}` looks like an AWS host but is not an ECR registry host (`<12 digits>.dkr.ecr.<region>.amazonaws.com`)",
                single_line(host)
            ),
        ));
    }
    let e = ecr::parse_host(host);
    if plain_http && !is_loopback_host(host) && !(e.is_some() && endpoint) {
        return Err(Failure::usage(
            "plain-http",
            format!(
                "plain HTTP is allowed only for loopback registries, not `{}`",
                single_line(host)
            ),
        ));
    }
    Ok(e)
}

fn validate_login(a: &LoginArgs) -> Result<LoginPlan> {
    a.expected.validate()?;
    let host = match (&a.registry, &a.destination.destination) {
        (Some(r), _) => r
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string(),
        (None, Some(d)) => Reference::parse("destination", d)?.registry,
        (None, None) => {
            return Err(Failure::usage(
                "registry",
                "login needs `registry` (an ECR host)",
            ))
        }
    };
    let e = check_host("registry", &host, false, false)?.ok_or_else(|| {
        Failure::usage(
            "registry",
            format!(
                "`{}` is not an ECR registry host: use `docker login` for other registries",
                single_line(&host)
            ),
        )
    })?;
    check_expected(&a.expected, &e)?;
    Ok(LoginPlan {
        registry: host,
        ecr: e,
    })
}

/// Validate a push or copy; `source` is parsed by `what` (a path on disk or a registry image).
fn validate(
    runner: &Runner,
    a: &Transfer,
    source: &Source,
    mount_from: &[String],
    push: bool,
) -> Result<Plan> {
    if let Some(p) = &a.registry_password {
        runner.mask(&Secret::new(p.as_str()));
    }
    let timeout = parse_duration(&a.timeout)?;
    if !(1..=32).contains(&a.parallelism) {
        return Err(Failure::usage(
            "parallelism",
            format!("`{}` is not between 1 and 32", a.parallelism),
        ));
    }
    if a.progress_interval == 0 || a.progress_interval > 3600 {
        return Err(Failure::usage(
            "progress-interval",
            "must be between 1 and 3600 seconds",
        ));
    }
    a.expected.validate()?;
    let endpoint = match &a.registry_endpoint {
        None => None,
        Some(e) => {
            let u = url::Url::parse(e).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.host_str().is_some_and(is_loopback_host)
                    && (u.path() == "/" || u.path().is_empty())
                    && u.query().is_none()
            });
            Some(u.ok_or_else(|| {
                Failure::usage(
                    "registry-endpoint",
                    format!(
                        "`{}` is not a loopback URL like `http://127.0.0.1:5000`",
                        single_line(e)
                    ),
                )
            })?)
        }
    };
    let (user, pass) = (
        a.registry_username.as_deref(),
        a.registry_password.as_deref(),
    );
    let basic = match (user, pass) {
        (Some(u), Some(p)) => Some((u.to_string(), Secret::new(p))),
        (None, None) => None,
        _ => {
            return Err(Failure::usage(
                "registry-username",
                "`registry-username` and `registry-password` go together",
            ))
        }
    };
    let dest_raw = a
        .destination
        .destination
        .as_deref()
        .ok_or_else(|| Failure::usage("destination", "is required: `REGISTRY/REPO:TAG`"))?;
    let dest = Reference::parse("destination", dest_raw)?;
    if dest.digest.is_some() {
        return Err(Failure::usage(
            "destination",
            "must not carry a digest: the digest comes from the image; give a tag",
        ));
    }
    let mut tags: Vec<String> = dest.tag.iter().cloned().collect();
    for t in split_list(&a.tag) {
        reference::tag("tag", &t)?;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    if tags.is_empty() {
        return Err(Failure::usage(
            "destination",
            "needs a tag (`REGISTRY/REPO:TAG`) or `tag`",
        ));
    }
    let ecr_host = check_host(
        "destination",
        &dest.registry,
        a.plain_http,
        endpoint.is_some(),
    )?;
    if endpoint.is_some() && ecr_host.is_none() {
        return Err(Failure::usage(
            "registry-endpoint",
            "applies only to an ECR destination (other registries are reached at their own host)",
        ));
    }
    if a.expected.expected_account.is_some() || a.expected.expected_region.is_some() {
        let e = ecr_host.as_ref().ok_or_else(|| {
            Failure::usage(
                "destination",
                format!(
                    "`{}` is not an ECR registry but `expected-account`/`expected-region` is set",
                    single_line(&dest.registry)
                ),
            )
        })?;
        check_expected(&a.expected, e)?;
    }
    if ecr_host.is_some() && basic.is_some() {
        return Err(Failure::usage(
            "registry-username",
            "ECR destinations use the ambient AWS credentials; do not pass registry credentials",
        ));
    }
    let what = if push {
        let raw = source.source.as_deref().ok_or_else(|| {
            Failure::usage(
                "source",
                "is required: an OCI layout dir, OCI archive or docker save tarball",
            )
        })?;
        What::Push(source::parse_source(raw)?)
    } else {
        let raw = source
            .source
            .as_deref()
            .ok_or_else(|| Failure::usage("source", "is required: `REGISTRY/REPO@sha256:...`"))?;
        let r = Reference::parse("source", raw)?;
        if r.tag.is_none() && r.digest.is_none() {
            return Err(Failure::usage(
                "source",
                "needs `@sha256:...` (or a tag, which is resolved to a digest)",
            ));
        }
        check_host("source", &r.registry, a.plain_http, false)?;
        What::Copy(r)
    };
    let mount_from = split_list(mount_from);
    if mount_from.len() > MAX_MOUNT_FROM {
        return Err(Failure::usage(
            "mount-from",
            format!(
                "names {} repositories; at most {MAX_MOUNT_FROM}",
                mount_from.len()
            ),
        ));
    }
    for r in &mount_from {
        reference::repository("mount-from", r)?;
    }
    if a.create_repository && ecr_host.is_none() {
        return Err(Failure::usage(
            "create-repository",
            "applies only to ECR destinations",
        ));
    }
    Ok(Plan {
        what,
        mount_from,
        dest,
        tags,
        ecr: ecr_host,
        endpoint,
        timeout,
        basic,
    })
}

fn check_expected(a: &Expected, e: &ecr::EcrHost) -> Result<()> {
    if let Some(acct) = &a.expected_account {
        if &e.account != acct {
            return Err(Failure::usage(
                "destination",
                format!(
                    "registry account {} is not the expected account {acct}",
                    e.account
                ),
            ));
        }
    }
    if let Some(r) = &a.expected_region {
        if &e.region != r {
            return Err(Failure::usage(
                "destination",
                format!(
                    "registry region {} is not the expected region {r}",
                    e.region
                ),
            ));
        }
    }
    Ok(())
}

/// Run the command.
pub fn run(runner: &Runner, args: Args) -> Result<()> {
    let format = match &args.command {
        Verb::Push(p) => p.transfer.output.format,
        Verb::Copy(c) => c.transfer.output.format,
        Verb::Login(l) => l.output.format,
    };
    if format == OutputFormat::Json {
        runner.machine_output();
    }
    match &args.command {
        Verb::Login(l) => {
            let plan = validate_login(l)?;
            crate::net::runtime()?.block_on(login(runner, &plan))?;
        }
        Verb::Push(p) => {
            let plan = validate(runner, &p.transfer, &p.source, &p.mount_from, true)?;
            let rt = crate::net::runtime()?;
            rt.block_on(execute(runner, &p.transfer, p.cache_dir.clone(), plan))?;
        }
        Verb::Copy(c) => {
            let plan = validate(runner, &c.transfer, &c.source, &[], false)?;
            let rt = crate::net::runtime()?;
            rt.block_on(execute(runner, &c.transfer, None, plan))?;
        }
    }
    runner.finish(format);
    Ok(())
}

async fn creds_for(
    runner: &Runner,
    host: &str,
    ecr_host: Option<&ecr::EcrHost>,
    explicit: Option<(String, Secret)>,
) -> Result<(Creds, Option<EcrAuth>)> {
    if let Some(e) = ecr_host {
        let auth = EcrAuth::new(runner, &e.region).await;
        let side = EcrAuth::new(runner, &e.region).await;
        return Ok((Creds::Ecr(auth), Some(side)));
    }
    if let Some((u, p)) = explicit {
        return Ok((Creds::Basic { user: u, pass: p }, None));
    }
    let env = |k: &str| runner.var(k).map(str::to_string);
    match dockerconfig::credentials(&env, host)? {
        Some((user, pass)) => {
            runner.mask(&pass);
            Ok((Creds::Basic { user, pass }, None))
        }
        None => Ok((Creds::Anonymous, None)),
    }
}

async fn execute(
    runner: &Runner,
    args: &Transfer,
    cache_dir: Option<PathBuf>,
    plan: Plan,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + plan.timeout;
    let stats = Arc::new(Stats::default());
    let mut ep = Endpoint::for_host(&plan.dest.registry, args.plain_http)?;
    if let Some(u) = &plan.endpoint {
        ep.base = u.clone();
    }
    let (creds, api) = creds_for(
        runner,
        &plan.dest.registry,
        plan.ecr.as_ref(),
        plan.basic.clone(),
    )
    .await?;
    let mut immutable = args.immutable_tags;
    if let (Some(e), Some(api)) = (&plan.ecr, &api) {
        if api
            .ensure_repository(
                runner,
                &e.account,
                &plan.dest.repository,
                args.create_repository,
            )
            .await?
        {
            immutable = true;
        }
    }
    let dst_client = Client::new(runner, ep, creds, deadline, stats.clone())?;
    let dst = Destination {
        client: &dst_client,
        repo: plan.dest.repository.clone(),
        tags: plan.tags.clone(),
        immutable,
    };
    let every = Duration::from_secs(args.progress_interval);
    let started = std::time::Instant::now();
    let parallelism = args.parallelism;
    let outcome = match &plan.what {
        What::Push(spec) => {
            let env = |k: &str| runner.var(k).map(str::to_string);
            let cache = cache_dir.unwrap_or_else(|| source::default_cache_dir(&env));
            let par = parallelism;
            let spec2 = spec.clone();
            let cache_file = blobinfo::path_in(&cache);
            let image = tokio::task::spawn_blocking(move || source::load(&spec2, &cache, par))
                .await
                .map_err(|e| Failure::runtime(format!("loading the image failed: {e}")))??;
            let (mut known, note) = BlobInfoCache::load(&cache_file);
            if let Some(n) = note {
                runner.info(&format!("blob-info cache {} {n}", cache_file.display()));
            }
            let mounts: MountPlan = image
                .blobs
                .iter()
                .map(|b| {
                    let cached = known.repos(&plan.dest.registry, &b.digest);
                    let c = blobinfo::candidates(&plan.dest.repository, &plan.mount_from, cached);
                    (b.digest.clone(), c)
                })
                .collect();
            runner.info(&format!(
                "pushing {} ({} blobs, {}) to {}/{}",
                image.top.digest,
                image.blobs.len(),
                transfer::human(image.total_bytes()),
                plan.dest.registry,
                plan.dest.repository
            ));
            let outcome = transfer::with_progress(
                runner,
                &dst_client,
                image.total_bytes(),
                image.blobs.len(),
                every,
                transfer::transfer(
                    runner,
                    &image,
                    &dst,
                    &BlobSource::Disk,
                    &mounts,
                    parallelism,
                ),
            )
            .await?;
            // Remember where the blobs are now; forget where the registry said they are not.
            for (d, repo) in &outcome.refused_mounts {
                known.forget(&plan.dest.registry, d, repo);
            }
            for b in &image.blobs {
                known.record(&plan.dest.registry, &b.digest, &plan.dest.repository);
            }
            if let Err(f) = known.save(&cache_file) {
                runner.warning(&format!(
                    "the image was pushed, but {}: the next push to another repository uploads its blobs again",
                    f.message
                ));
            }
            outcome
        }
        What::Copy(sref) => {
            let src_ecr = ecr::parse_host(&sref.registry);
            let (screds, _) = creds_for(runner, &sref.registry, src_ecr.as_ref(), None).await?;
            let sep = Endpoint::for_host(&sref.registry, args.plain_http)?;
            let src_client =
                Client::new(runner, sep, screds, deadline, Arc::new(Stats::default()))?;
            let reference = match (&sref.digest, &sref.tag) {
                (Some(d), _) => d.as_str().to_string(),
                (None, Some(t)) => t.clone(),
                (None, None) => unreachable!(),
            };
            let image = transfer::fetch_remote(&src_client, &sref.repository, &reference).await?;
            if sref.digest.is_none() {
                runner.info(&format!(
                    "source tag {} resolved to {}",
                    reference, image.top.digest
                ));
            }
            let same = dst_client.same_registry(&src_client);
            runner.info(&format!(
                "copying {} ({} blobs, {}) to {}/{}{}",
                sref.with_digest(&image.top.digest),
                image.blobs.len(),
                transfer::human(image.total_bytes()),
                plan.dest.registry,
                plan.dest.repository,
                if same {
                    " (same registry: mounting blobs)"
                } else {
                    ""
                }
            ));
            let src = BlobSource::Registry(&src_client, &sref.repository);
            let mounts: MountPlan = if same {
                let from = Candidate {
                    repo: sref.repository.clone(),
                    origin: Origin::CopySource,
                };
                let from = (from.repo != plan.dest.repository).then_some(from);
                image
                    .blobs
                    .iter()
                    .map(|b| (b.digest.clone(), from.iter().cloned().collect()))
                    .collect()
            } else {
                MountPlan::new()
            };
            transfer::with_progress(
                runner,
                &dst_client,
                image.total_bytes(),
                image.blobs.len(),
                every,
                transfer::transfer(runner, &image, &dst, &src, &mounts, parallelism),
            )
            .await?
        }
    };
    let s = &stats;
    use std::sync::atomic::Ordering::Relaxed;
    let (up, present, mounted) = (
        s.blobs_uploaded.load(Relaxed),
        s.blobs_present.load(Relaxed),
        s.blobs_mounted.load(Relaxed),
    );
    let image_ref = plan.dest.with_digest(&outcome.digest);
    runner.info(&format!(
        "done in {:.1}s: {image_ref}; blobs uploaded {up}, already present {present}, mounted {mounted}; {} sent{}",
        started.elapsed().as_secs_f64(),
        transfer::human(s.bytes_sent.load(Relaxed)),
        if outcome.already_present { " (re-run: nothing to do)" } else { "" }
    ));
    runner.set_output("image", &image_ref)?;
    runner.set_output("digest", outcome.digest.as_str())?;
    runner.set_output("tags", &plan.tags.join(","))?;
    runner.set_output("registry", &plan.dest.registry)?;
    let md = crate::runner::markdown::escape(&image_ref);
    runner.summary(&format!(
        "### ecr-push\n\n| image | tags | uploaded | present | mounted |\n|---|---|---|---|---|\n| `{md}` | {} | {up} | {present} | {mounted} |\n",
        crate::runner::markdown::escape(&plan.tags.join(", "))
    ))?;
    Ok(())
}

async fn login(runner: &Runner, plan: &LoginPlan) -> Result<()> {
    let e = &plan.ecr;
    let api = EcrAuth::new(runner, &e.region).await;
    let l = api.login(runner).await?;
    let env = |k: &str| runner.var(k).map(str::to_string);
    let path = dockerconfig::write_login(&env, &plan.registry, &l.b64)?;
    let _ = (&l.user, &l.password);
    let until = l
        .expires_at
        .and_then(|t| {
            time::OffsetDateTime::from(t)
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "unknown".into());
    runner.info(&format!(
        "logged in to {} for docker: credentials written to {} (token expires {until})",
        plan.registry,
        path.display()
    ));
    runner.set_output("registry", &plan.registry)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("600").unwrap(), Duration::from_secs(600));
        for bad in ["", "0", "25h", "1d", "-5s", "1.5m", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_split_on_commas_and_whitespace() {
        assert_eq!(
            split_list(&["a,b".into(), " c\nd ".into()]),
            vec!["a", "b", "c", "d"]
        );
    }
}
