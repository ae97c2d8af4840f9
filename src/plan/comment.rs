//! The one pull-request comment per pull request and environment/stack: what it says and which
//! one is ours. The rules only; the HTTP calls (listing with same-origin pagination, `GET
//! /user`, PATCH, POST with the F15 look-before-posting-again) are `github::Client`'s
//! (`upsert_comment`), with the same retry, timeout, API-version and rate-limit rules as every
//! other GitHub call.
//!
//! The comment ends with a hidden marker (`<!-- gitops-actions:plan-gate key=... -->`). A re-run
//! finds the comment that ends with our marker *and was written by the token's own identity*
//! ([`pick`]) and updates it in place; anyone else's comment is never edited, whatever it says,
//! and when none is ours a new one is created (and the log says why: [`foreign_notes`]). The
//! marker text is neutralised inside the rendered report, so plan text (an address, a name)
//! cannot forge one. Bodies are kept under GitHub's 65,536-character limit by cutting at a
//! section boundary and pointing at the step summary ([`body`]).
//!
//! Who we are ([`identity`]): `comment-author` when given (a GitHub App's `<slug>[bot]`, or a
//! user); else `GET /user` answers for user tokens; installation tokens (`GITHUB_TOKEN`, a
//! GitHub App's) cannot ask (HTTP 403), and their comments are written by `github-actions[bot]`
//! for `GITHUB_TOKEN` — the identity assumed then (an App's own bot needs `comment-author`).

use crate::runner::markdown::Doc;
use crate::runner::single_line;

/// GitHub's limit on a comment body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;
/// What we aim for (bytes, which are never fewer than characters), leaving room for the marker.
pub const BODY_BUDGET: usize = 65_000;

/// The login `GITHUB_TOKEN`'s comments are written by.
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// Whose comments the upsert may edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The user `GET /user` named: matched by its numeric id.
    User {
        /// User id.
        id: u64,
        /// Login (for messages).
        login: String,
    },
    /// A login given or assumed: a `...[bot]` login must also be of type `Bot` (users cannot
    /// have `[` in a login, so such a login names one GitHub App).
    Login(String),
}

impl Identity {
    /// Is a comment by this author ours?
    pub fn wrote(&self, author: &Author) -> bool {
        match self {
            Identity::User { id, .. } => author.id == *id,
            Identity::Login(l) => {
                author.login.eq_ignore_ascii_case(l)
                    && (author.kind == "Bot") == l.to_ascii_lowercase().ends_with("[bot]")
            }
        }
    }
    /// The login, for messages.
    pub fn login(&self) -> &str {
        match self {
            Identity::User { login, .. } | Identity::Login(login) => login,
        }
    }
}

/// The author of a comment, as far as deciding whether it is ours goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// `user.login`.
    pub login: String,
    /// `user.id`.
    pub id: u64,
    /// `user.type` (`User`, `Bot`, `Organization`).
    pub kind: String,
}

/// What the listing holds for us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// The first comment that ends with our marker and that we wrote.
    pub ours: Option<u64>,
    /// Comments that end with our marker but were written by someone else: (id, login).
    pub foreign: Vec<(u64, String)>,
}

/// Does this body end with this marker (what [`body`] writes)? A marker anywhere else in a
/// body is not ours.
pub fn ends_with_marker(body: &str, marker: &str) -> bool {
    body.trim_end().ends_with(marker)
}

/// Pick our comment out of a page of `(id, author, body)`: the marker at the end and our
/// identity as the author, both.
pub fn pick<'a>(
    comments: impl IntoIterator<Item = (u64, &'a Author, &'a str)>,
    marker: &str,
    me: &Identity,
    found: &mut Found,
) {
    for (id, author, b) in comments {
        if found.ours.is_some() {
            return;
        }
        if !ends_with_marker(b, marker) {
            continue;
        }
        if me.wrote(author) {
            found.ours = Some(id);
        } else {
            found.foreign.push((id, author.login.clone()));
        }
    }
}

/// The text our markers start with; [`body`] breaks it up wherever the report contains it.
const MARKER_WORD: &str = "gitops-actions:plan-gate";

/// `text` with every occurrence of the marker's word broken by a zero-width space, so that
/// nothing in it reads as a marker.
pub fn neutralise_markers(text: &str) -> String {
    text.replace(MARKER_WORD, "gitops-actions:\u{200b}plan-gate")
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

/// The hidden marker for one key. The key is reduced to a safe alphabet so it cannot close the
/// HTML comment.
pub fn marker(key: &str) -> String {
    format!("<!-- gitops-actions:plan-gate key={} -->", marker_key(key))
}

/// A key reduced to the alphabet a hidden marker may carry (letters, digits, `-_./`; at most
/// 100 characters), so it can never close the HTML comment.
pub fn marker_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

/// The comment body: the report cut at a section boundary to fit, scrubbed by `scrub` and with
/// any marker text in it neutralised, then the marker.
pub fn body(
    doc: &Doc,
    key: &str,
    summary_url: Option<&str>,
    scrub: impl Fn(&str) -> String,
) -> String {
    let m = marker(key);
    let tail = match summary_url {
        Some(u) => format!(
            "> ✂️ This comment was cut to fit GitHub's 65,536-character limit. The full report is in the [step summary of the run]({u})."
        ),
        None => "> ✂️ This comment was cut to fit GitHub's 65,536-character limit. The full report is in the step summary of the run.".to_string(),
    };
    let budget = BODY_BUDGET - m.len() - 2;
    let mut limit = budget;
    let text = loop {
        let text = neutralise_markers(&scrub(&doc.render_limited(limit, &tail)));
        // Scrubbing can lengthen a text (a short secret becomes `(sensitive)`): cut more.
        if text.len() <= budget || limit < 4096 {
            break text;
        }
        limit -= (text.len() - budget).min(limit / 2);
    };
    format!("{text}\n{m}\n")
}

/// Who we are when the token's user is `user` (`GET /user`'s answer, `None` when the token
/// may not ask: HTTP 403, an installation token such as `GITHUB_TOKEN`, taken as
/// `github-actions[bot]`), and the note to log then.
pub fn identity(user: Option<Author>) -> (Identity, Option<String>) {
    match user {
        Some(u) => (
            Identity::User {
                id: u.id,
                login: u.login,
            },
            None,
        ),
        None => (
            Identity::Login(ACTIONS_BOT.to_string()),
            Some(format!(
                "the token cannot say who it is (`GET /user`: HTTP 403, as for GITHUB_TOKEN and GitHub App installation tokens): only comments by {ACTIONS_BOT} are edited (set `comment-author` to a GitHub App's `<slug>[bot]`)"
            )),
        ),
    }
}

/// One note per comment that carries our marker but that `me` did not write.
pub fn foreign_notes(found: &Found, me: &Identity) -> Vec<String> {
    found
        .foreign
        .iter()
        .map(|(id, login)| {
            format!(
                "comment {id} carries this plan comment's marker but was written by `{}`, not by us (`{}`): not editing it",
                single_line(login),
                single_line(me.login())
            )
        })
        .collect()
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
    fn only_our_identity_and_a_marker_at_the_end_make_a_comment_ours() {
        let a = |login: &str, id: u64, kind: &str| Author {
            login: login.into(),
            id,
            kind: kind.into(),
        };
        let m = marker("dev");
        let bot = Identity::Login(ACTIONS_BOT.into());
        let app = Identity::Login("deploy-app[bot]".into());
        let user = Identity::User {
            id: 7,
            login: "alice".into(),
        };
        let named = Identity::Login("Alice".into());
        let ours = format!("report\n{m}\n");
        let quoted = format!("> {m}\nI disagree");
        // (identity, author, body, ours?)
        let cases = [
            (&bot, a(ACTIONS_BOT, 41898282, "Bot"), &ours, true),
            (&bot, a("GitHub-Actions[bot]", 41898282, "Bot"), &ours, true),
            (&bot, a(ACTIONS_BOT, 1, "User"), &ours, false),
            (&bot, a("mallory", 9, "User"), &ours, false),
            (&bot, a("deploy-app[bot]", 5, "Bot"), &ours, false),
            (&bot, a(ACTIONS_BOT, 41898282, "Bot"), &quoted, false),
            (&app, a("deploy-app[bot]", 5, "Bot"), &ours, true),
            (&app, a(ACTIONS_BOT, 41898282, "Bot"), &ours, false),
            (&user, a("alice", 7, "User"), &ours, true),
            (&user, a("alice", 8, "User"), &ours, false),
            (&user, a("bob", 7, "User"), &ours, true),
            (&named, a("alice", 7, "User"), &ours, true),
            (&named, a("alice", 7, "Bot"), &ours, false),
        ];
        for (me, author, b, want) in cases {
            let mut f = Found::default();
            pick([(1, &author, b.as_str())], &m, me, &mut f);
            assert_eq!(f.ours.is_some(), want, "{me:?} {author:?} {b:?}");
            let foreign = ends_with_marker(b, &m) && !want;
            assert_eq!(f.foreign.len(), usize::from(foreign), "{me:?} {author:?}");
        }
    }

    #[test]
    fn marker_text_in_the_report_is_neutralised() {
        let mut d = Doc::new();
        d.section(format!("- `aws_s3_bucket.x[\"{}\"]`\n", marker("prod")));
        let b = body(&d, "dev", None, |s| s.replace("hunter22", "(sensitive)"));
        assert!(!b.contains(&marker("prod")), "{b}");
        assert_eq!(b.matches(MARKER_WORD).count(), 1, "{b}");
        assert!(ends_with_marker(&b, &marker("dev")));
        assert!(!ends_with_marker(&b, &marker("prod")));
    }

    #[test]
    fn long_bodies_are_cut_at_sections_with_a_pointer() {
        let mut d = Doc::new();
        d.section("# head\n");
        for i in 0..200 {
            d.section(format!("section {i}\n{}\n", "x".repeat(1000)));
        }
        let b = body(&d, "dev", Some("https://example.test/run"), str::to_string);
        assert!(b.len() < GITHUB_COMMENT_LIMIT);
        assert!(b.contains("step summary of the run](https://example.test/run)"));
        assert!(b.trim_end().ends_with(&marker("dev")));
        assert!(b.contains("section 10\n"));
        assert!(!b.contains("section 199"));
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
