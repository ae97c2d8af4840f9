//! Input groups several commands share. Each is a `clap::Args` struct that a command flattens
//! into its arguments (`#[command(flatten)]`), so the flags, their `GITOPS_*` variables, their
//! help and therefore the action inputs exist once; each group has one `resolve` that applies
//! the one intake rule and the one fallback order, before any network call.
//!
//! - [`GithubTarget`]: `github-token`, `repository`, `github-api-url`.
//! - [`TokenAlias`]: the deprecated `token` spelling of `github-token` (tag-deploy only).
//! - [`Checkout`]: `repo-path`, `remote`.

use std::path::PathBuf;

use crate::exit::{Failure, Result};
use crate::github;
use crate::runner::Runner;
use crate::secret::Secret;

/// Where GitHub is and who we are there.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GithubTarget {
    /// Token for the GitHub API (and git over https as `x-access-token`); the action passes
    /// `github.token`. Default: `GITHUB_TOKEN` when set.
    #[arg(long, env = "GITOPS_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// `owner/repo` (default: `GITHUB_REPOSITORY`).
    #[arg(long, env = "GITOPS_REPOSITORY")]
    pub repository: Option<String>,
    /// GitHub REST API URL (default: `GITHUB_API_URL`, else https://api.github.com).
    #[arg(long, env = "GITOPS_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
}

/// The deprecated spelling `token` (flag `--token`, variable `GITOPS_TOKEN`) of `github-token`,
/// kept so that existing workflows do not break. Hidden from `--help`; the generated action
/// input carries a deprecation message.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenAlias {
    /// Deprecated: use `github-token`.
    #[arg(
        long = "token",
        env = "GITOPS_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// The one notice printed when the deprecated alias is used.
pub const TOKEN_ALIAS_NOTICE: &str =
    "input `token` is deprecated: use `github-token` (same meaning; `token` will be removed in a future major version)";

/// The GitHub side of a command after its inputs were checked.
#[derive(Debug, Clone)]
pub struct Github {
    /// The token, already registered with the runner's masks (`None`: none was given).
    pub token: Option<Secret>,
    /// Where the token came from (an input name or `GITHUB_TOKEN`), for messages.
    pub token_source: &'static str,
    /// The API configuration; `None` when the token or the repository is unknown.
    pub api: Option<github::Config>,
}

/// The one token intake rule: a token is a single printable line without whitespace; anything
/// else is refused (exit 2) without echoing it. `field` names where it came from.
pub fn check_token(field: &str, token: &str) -> Result<()> {
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::usage(
            field,
            "contains whitespace or control characters",
        ));
    }
    Ok(())
}

impl GithubTarget {
    /// The token and where it came from, in the one fallback order: the `github-token` input
    /// (or, in commands that still take it, the deprecated `token` alias, which then wins: it
    /// can only have been set on purpose), else `GITHUB_TOKEN`. Masked before it is checked,
    /// so not even a refusal can print it.
    fn token(
        &self,
        runner: &Runner,
        alias: Option<&TokenAlias>,
    ) -> Result<Option<(Secret, &'static str)>> {
        let given = |v: &Option<String>| v.as_deref().filter(|t| !t.is_empty()).map(str::to_string);
        let aliased = alias.and_then(|a| given(&a.token));
        let found = aliased
            .map(|t| (t, "token"))
            .or_else(|| given(&self.github_token).map(|t| (t, "github-token")))
            .or_else(|| {
                runner
                    .var("GITHUB_TOKEN")
                    .map(|t| (t.to_string(), "GITHUB_TOKEN"))
            });
        let Some((raw, source)) = found else {
            return Ok(None);
        };
        let token = Secret::new(raw);
        runner.mask(&token);
        if source == "token" {
            runner.warning(TOKEN_ALIAS_NOTICE);
        }
        check_token(source, token.expose())?;
        Ok(Some((token, source)))
    }

    /// Resolve and validate: the token (see [`GithubTarget::token`]), `repository` (else
    /// `GITHUB_REPOSITORY`, checked as `owner/repo`) and `github-api-url` (else `GITHUB_API_URL`,
    /// else `https://api.github.com`; https, or http to loopback only). No network access.
    pub fn resolve(&self, runner: &Runner) -> Result<Github> {
        self.resolve_with(runner, None)
    }

    /// As [`GithubTarget::resolve`], also taking the deprecated `token` alias.
    pub fn resolve_with(&self, runner: &Runner, alias: Option<&TokenAlias>) -> Result<Github> {
        let (token, token_source) = match self.token(runner, alias)? {
            Some((t, s)) => (Some(t), s),
            None => (None, "github-token"),
        };
        let api = github::config_from(
            runner,
            token.as_ref(),
            self.repository.as_deref(),
            self.github_api_url.as_deref(),
        )?;
        Ok(Github {
            token,
            token_source,
            api,
        })
    }
}

/// The local git checkout a command works in, and the remote it talks to.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Checkout {
    /// The checkout (default: `GITHUB_WORKSPACE`, else the current directory).
    #[arg(long, env = "GITOPS_REPO_PATH")]
    pub repo_path: Option<PathBuf>,
    /// The git remote (https URL or local path). Default: the checkout's `origin`.
    #[arg(long, env = "GITOPS_REMOTE")]
    pub remote: Option<String>,
}

/// A checkout after its inputs were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCheckout {
    /// The checkout's root: `repo-path`, else `GITHUB_WORKSPACE`, else `.`.
    pub root: PathBuf,
    /// The remote, validated (`None`: the checkout's `origin`).
    pub remote: Option<String>,
}

impl Checkout {
    /// The one default for the checkout root: `repo-path`, else `GITHUB_WORKSPACE`, else the
    /// current directory.
    pub fn root(&self, runner: &Runner) -> PathBuf {
        self.repo_path
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| runner.var("GITHUB_WORKSPACE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Resolve the root and validate the remote (https, or a local path; no credentials in it).
    pub fn resolve(&self, runner: &Runner) -> Result<ResolvedCheckout> {
        let remote = self.remote.clone().filter(|r| !r.is_empty());
        if let Some(r) = &remote {
            crate::git::validate_remote_url("remote", r)?;
        }
        Ok(ResolvedCheckout {
            root: self.root(runner),
            remote,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use crate::runner::capture::Buf;

    fn runner(env: &[(&str, &str)]) -> (Runner, Buf) {
        let out = Buf::default();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = Runner::new(
            env,
            Arc::new(Mutex::new(out.clone())),
            Arc::new(Mutex::new(out.clone())),
        );
        (r, out)
    }

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        github: GithubTarget,
        #[command(flatten)]
        alias: TokenAlias,
        #[command(flatten)]
        checkout: Checkout,
    }

    fn probe(argv: &[&str]) -> Probe {
        Probe::try_parse_from(std::iter::once("probe").chain(argv.iter().copied())).unwrap()
    }

    // The one fallback order, table-driven: (flags, env, token, where it came from).
    #[test]
    fn token_fallback_order() {
        type Case<'a> = (
            &'a [&'a str],
            &'a [(&'a str, &'a str)],
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case] = &[
            (&[], &[], None, "github-token"),
            (
                &[],
                &[("GITHUB_TOKEN", "ghs_env")],
                Some("ghs_env"),
                "GITHUB_TOKEN",
            ),
            (
                &["--github-token", "ghp_in"],
                &[("GITHUB_TOKEN", "ghs_env")],
                Some("ghp_in"),
                "github-token",
            ),
            (
                &["--github-token", ""],
                &[("GITHUB_TOKEN", "ghs_env")],
                Some("ghs_env"),
                "GITHUB_TOKEN",
            ),
            // The deprecated alias wins over github-token: in an action, github-token always
            // carries the workflow token by default, so only `token` can have been set on purpose.
            (
                &["--github-token", "ghs_default", "--token", "ghp_old"],
                &[],
                Some("ghp_old"),
                "token",
            ),
            (
                &["--token", "ghp_old"],
                &[("GITHUB_TOKEN", "ghs_env")],
                Some("ghp_old"),
                "token",
            ),
        ];
        for (argv, env, want, source) in cases {
            let (r, _) = runner(env);
            let p = probe(argv);
            let g = p.github.resolve_with(&r, Some(&p.alias)).unwrap();
            assert_eq!(
                g.token.as_ref().map(Secret::expose),
                *want,
                "{argv:?} {env:?}"
            );
            assert_eq!(g.token_source, *source, "{argv:?} {env:?}");
        }
    }

    #[test]
    fn the_alias_prints_one_deprecation_notice_and_only_when_used() {
        let (r, out) = runner(&[]);
        let p = probe(&["--token", "ghp_old"]);
        p.github.resolve_with(&r, Some(&p.alias)).unwrap();
        assert_eq!(
            out.text().matches(TOKEN_ALIAS_NOTICE).count(),
            1,
            "{}",
            out.text()
        );
        for l in out
            .text()
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
        {
            assert!(!l.contains("ghp_old"), "{l}");
        }
        let (r, out) = runner(&[]);
        let p = probe(&["--github-token", "ghp_new"]);
        p.github.resolve_with(&r, Some(&p.alias)).unwrap();
        assert!(!out.text().contains("deprecated"), "{}", out.text());
        // Hidden from help, still a flag.
        let help = {
            use clap::CommandFactory;
            Probe::command().render_help().to_string()
        };
        assert!(
            help.contains("--github-token") && !help.contains("--token "),
            "{help}"
        );
    }

    // One intake rule for every source: whitespace or control characters are refused, named by
    // where the token came from, the value never echoed, and masked before the refusal.
    #[test]
    fn one_token_intake_rule() {
        for bad in ["ghp_a b", "ghp_a\n", "ghp_a\tb", "ghp_\u{7}x", " ghp_a"] {
            for (argv, env, field) in [
                (vec!["--github-token", bad], vec![], "github-token"),
                (vec!["--token", bad], vec![], "token"),
                (vec![], vec![("GITHUB_TOKEN", bad)], "GITHUB_TOKEN"),
            ] {
                let (r, out) = runner(&env);
                let p = probe(&argv);
                let e = p.github.resolve_with(&r, Some(&p.alias)).unwrap_err();
                assert_eq!(e.field.as_deref(), Some(field), "{bad:?}");
                assert!(!e.message.contains(bad.trim()), "{bad:?}: {}", e.message);
                assert!(out.text().contains("::add-mask::"), "masked first: {bad:?}");
            }
        }
        check_token("github-token", "ghs_abcDEF123_-").unwrap();
    }

    #[test]
    fn repository_and_api_url_are_validated_with_their_fallbacks() {
        let (r, _) = runner(&[
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_API_URL", "https://ghe.example/api/v3"),
        ]);
        let g = probe(&["--github-token", "t"]).github.resolve(&r).unwrap();
        let api = g.api.unwrap();
        assert_eq!(
            (api.repository.as_str(), api.api_url.as_str()),
            ("o/r", "https://ghe.example/api/v3")
        );
        let (r, _) = runner(&[]);
        let g = probe(&["--github-token", "t", "--repository", "a/b"])
            .github
            .resolve(&r)
            .unwrap();
        assert_eq!(g.api.unwrap().api_url, "https://api.github.com");
        // No repository known: no API, no error.
        assert!(probe(&["--github-token", "t"])
            .github
            .resolve(&r)
            .unwrap()
            .api
            .is_none());
        for (argv, field) in [
            (vec!["--repository", "../x"], "repository"),
            (
                vec!["--github-api-url", "http://api.example.com"],
                "github-api-url",
            ),
            (
                vec!["--github-api-url", "https://u:p@api.example.com"],
                "github-api-url",
            ),
        ] {
            let e = probe(&argv).github.resolve(&r).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{argv:?}");
        }
    }

    #[test]
    fn checkout_root_has_one_default() {
        let (ws, _) = runner(&[("GITHUB_WORKSPACE", "/ws")]);
        let (none, _) = runner(&[]);
        let c = probe(&[]).checkout;
        assert_eq!(c.resolve(&ws).unwrap().root, PathBuf::from("/ws"));
        assert_eq!(c.resolve(&none).unwrap().root, PathBuf::from("."));
        let c = probe(&["--repo-path", "/here"]).checkout;
        assert_eq!(c.resolve(&ws).unwrap().root, PathBuf::from("/here"));
        let e = probe(&["--remote", "https://user:pw@example.com/r.git"])
            .checkout
            .resolve(&none)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("remote"));
        assert!(!e.message.contains("pw@"), "{}", e.message);
    }
}
