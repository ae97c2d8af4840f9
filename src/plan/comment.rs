//! The one pull-request comment per pull request and environment/stack, upserted through octocrab.
//!
//! The comment carries a hidden marker (`<!-- gitops-actions:plan-gate key=... -->`). A re-run
//! finds the comment with our marker and updates it in place; only when there is none is a new
//! one created, so a PR never collects a pile of plan comments. Bodies are kept under GitHub's
//! 65,536-character limit by cutting at a section boundary and pointing at the step summary.

use std::time::Duration;

use octocrab::models::CommentId;
use octocrab::Octocrab;

use crate::exit::{Failure, Result};
use crate::runner::markdown::Doc;
use crate::runner::single_line;
use crate::secret::Secret;

/// GitHub's limit on a comment body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;
/// What we aim for (bytes, which are never fewer than characters), leaving room for the marker.
pub const BODY_BUDGET: usize = 65_000;

/// Where the comment goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// REST API base, e.g. `https://api.github.com`.
    pub api_url: String,
    /// Token with `pull-requests: write` (or `issues: write`).
    pub token: Secret,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Pull request number.
    pub pr: u64,
    /// Environment/stack key: one comment per key.
    pub key: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new comment was created.
    Created {
        /// Comment id.
        id: u64,
        /// Its URL.
        url: String,
        /// Things worth a warning (e.g. a pagination link that was not followed).
        notes: Vec<String>,
    },
    /// Our existing comment was updated in place.
    Updated {
        /// Comment id.
        id: u64,
        /// Its URL.
        url: String,
        /// Things worth a warning.
        notes: Vec<String>,
    },
}

/// Is `next` (a `Link: rel="next"` target) on the same origin as the API base? The token goes
/// with every request octocrab sends, so a pagination link to any other scheme, host or port
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

/// The hidden marker for one key. The key is reduced to a safe alphabet so it cannot close the
/// HTML comment.
pub fn marker(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("<!-- gitops-actions:plan-gate key={safe} -->")
}

/// The comment body: the report cut at a section boundary to fit, then the marker.
pub fn body(doc: &Doc, key: &str, summary_url: Option<&str>) -> String {
    let m = marker(key);
    let tail = match summary_url {
        Some(u) => format!(
            "> ✂️ This comment was cut to fit GitHub's 65,536-character limit. The full report is in the [step summary of the run]({u})."
        ),
        None => "> ✂️ This comment was cut to fit GitHub's 65,536-character limit. The full report is in the step summary of the run.".to_string(),
    };
    let text = doc.render_limited(BODY_BUDGET - m.len() - 2, &tail);
    format!("{text}\n{m}\n")
}

fn client(t: &Target) -> Result<Octocrab> {
    // Three retries of a 5xx, 429 or transport failure, as octocrab's default client did.
    let (connect, read) = (Duration::from_secs(10), Duration::from_secs(30));
    crate::net::octocrab(t.api_url.as_str(), t.token.expose(), connect, read, 3)
}

fn api_error(what: &str, e: octocrab::Error) -> Failure {
    let detail = match &e {
        octocrab::Error::GitHub { source, .. } => format!(
            "HTTP {}: {}",
            source.status_code.as_u16(),
            single_line(&source.message)
        ),
        // octocrab appends a backtrace ("Found at ...") to some errors: keep the first line.
        other => single_line(other.to_string().lines().next().unwrap_or("")),
    };
    Failure::runtime(format!("GitHub API: {what} failed: {detail}"))
}

/// Find our comment (first one carrying the marker) and update it, or create one.
pub async fn upsert(t: &Target, body: &str) -> Result<Outcome> {
    let oc = client(t)?;
    let m = marker(&t.key);
    let issues = oc.issues(&t.owner, &t.repo);
    let mut page = issues
        .list_comments(t.pr)
        .per_page(100)
        .send()
        .await
        .map_err(|e| api_error("listing pull request comments", e))?;
    let mut found: Option<CommentId> = None;
    let mut pages = 0;
    let mut notes = Vec::new();
    let base = url::Url::parse(&t.api_url)
        .map_err(|_| Failure::usage("github-api-url", "is not a URL"))?;
    loop {
        if let Some(c) = page
            .items
            .iter()
            .find(|c| c.body.as_deref().is_some_and(|b| b.contains(&m)))
        {
            found = Some(c.id);
            break;
        }
        pages += 1;
        if pages >= 50 {
            break;
        }
        if let Some(next) = &page.next {
            if !same_origin(next, &base) {
                notes.push(format!(
                    "GitHub's pagination link points to another origin ({}://{}); not following it with the token, so older comments were not searched",
                    next.scheme_str().unwrap_or("?"),
                    single_line(next.authority().map(|a| a.as_str()).unwrap_or("?"))
                ));
                break;
            }
        }
        match oc
            .get_page::<octocrab::models::issues::Comment>(&page.next)
            .await
            .map_err(|e| api_error("listing pull request comments", e))?
        {
            Some(p) => page = p,
            None => break,
        }
    }
    match found {
        Some(id) => {
            // PATCH, as GitHub documents it (octocrab's `update_comment` sends POST).
            let route = format!("/repos/{}/{}/issues/comments/{}", t.owner, t.repo, id.0);
            let c: octocrab::models::issues::Comment = oc
                .patch(route, Some(&serde_json::json!({ "body": body })))
                .await
                .map_err(|e| api_error("updating the plan comment", e))?;
            Ok(Outcome::Updated {
                id: c.id.0,
                url: c.html_url.to_string(),
                notes,
            })
        }
        None => {
            let c = issues
                .create_comment(t.pr, body)
                .await
                .map_err(|e| api_error("creating the plan comment", e))?;
            Ok(Outcome::Created {
                id: c.id.0,
                url: c.html_url.to_string(),
                notes,
            })
        }
    }
}

/// The pull request number of the triggering event (`pull_request`, `pull_request_target`), if any.
pub fn pr_from_event(event_json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(event_json).ok()?;
    v.get("pull_request")
        .and_then(|p| p.get("number"))
        .and_then(serde_json::Value::as_u64)
        .or_else(|| {
            // issue_comment on a PR
            v.get("issue")
                .filter(|i| i.get("pull_request").is_some())
                .and_then(|i| i.get("number"))
                .and_then(serde_json::Value::as_u64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_cannot_be_broken_out_of() {
        assert_eq!(
            marker("prod/app"),
            "<!-- gitops-actions:plan-gate key=prod/app -->"
        );
        assert_eq!(
            marker("x --> <script>"),
            "<!-- gitops-actions:plan-gate key=x_--___script_ -->"
        );
    }

    #[test]
    fn long_bodies_are_cut_at_sections_with_a_pointer() {
        let mut d = Doc::new();
        d.section("# head\n");
        for i in 0..200 {
            d.section(format!("section {i}\n{}\n", "x".repeat(1000)));
        }
        let b = body(&d, "dev", Some("https://example.test/run"));
        assert!(b.len() < GITHUB_COMMENT_LIMIT);
        assert!(b.contains("step summary of the run](https://example.test/run)"));
        assert!(b.trim_end().ends_with(&marker("dev")));
        assert!(b.contains("section 10\n"));
        assert!(!b.contains("section 199"));
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
    fn pr_number_comes_from_the_event() {
        assert_eq!(pr_from_event(r#"{"pull_request":{"number":7}}"#), Some(7));
        assert_eq!(
            pr_from_event(r#"{"issue":{"number":8,"pull_request":{}}}"#),
            Some(8)
        );
        assert_eq!(pr_from_event(r#"{"issue":{"number":8}}"#), None);
        assert_eq!(pr_from_event(r#"{"ref":"refs/heads/main"}"#), None);
    }
}
