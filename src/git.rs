//! The git layer `tag-deploy` and `promote` share: one [`Session`] per command against one remote.
//!
//! What it owns:
//! - **Where**: the checkout's `origin` (or an explicit remote URL / path), and a local object
//!   store to work in — the checkout itself when it has full history, otherwise a private scratch
//!   bare repository (deleted on drop). No local ref is ever written in the user's checkout:
//!   fetched objects are looked up by the ids the remote advertised.
//! - **Credentials**: `x-access-token:<token>` basic auth from a token, or the
//!   `http.<url>.extraheader` that `actions/checkout` leaves in the repository config
//!   (`AUTHORIZATION: basic <base64>`). libgit2 calls the credential callback again and again on
//!   rejected credentials; we answer at most [`MAX_CREDENTIAL_ATTEMPTS`] times, then fail.
//! - **State is read from the remote** ([`Session::ls_remote`]), never from local tags that may be
//!   stale.
//! - **History questions** on fetched objects: is-ancestor, merge-base, commits between two ids.
//! - **Writes**: annotated tag objects are created locally (objects only, no refs), then sent in
//!   ONE push in which every ref update carries a lease: the object id we expect on the remote, or
//!   "must not exist".
//!
//! ## How the compare-and-swap is made
//! The winner of a race is always decided by the remote's own ref update: `receive-pack` checks
//! the old id each command carries under its ref lock.
//!
//! A single ref update to an `http(s)` remote goes through libgit2: the push-negotiation callback
//! compares the values the remote advertised with our expectations and aborts before anything is
//! sent; the command libgit2 then sends carries the advertised old id, which `receive-pack` checks
//! again, so a change between advertisement and update is refused by the server too. A remote
//! that is a path goes through the `git` CLI (below): libgit2's local transport writes the ref
//! itself without checking its old value, so two racing pushes could both succeed.
//!
//! A ref the remote already holds at the new value is never sent (libgit2 and `git` both call it
//! up to date); unless that value is what we expected, someone else put it there, and the push
//! reports [`GitError::Lease`] rather than success: only the push that moved the ref won.
//!
//! Several ref updates must land all-or-nothing (a deploy's history tag together with the move of
//! `deploy/<env>/current`). libgit2 1.9 does not implement the `atomic` push capability (it
//! never sends it, so `receive-pack` applies each command on its own and a lost race would leave
//! a dangling history tag). For those pushes we invoke the `git` CLI:
//! `git push --atomic --porcelain --force-with-lease=<ref>:<expect> ...`, with the credentials
//! passed through `GIT_CONFIG_*` environment variables (never on the command line) and every
//! credential helper disabled. The server's atomic transaction then guarantees that either all
//! refs move or none does.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use git2::{
    AutotagOption, Cred, CredentialType, Direction, FetchOptions, Oid, PushOptions,
    RemoteCallbacks, Repository,
};

mod transport;

use crate::exit::Failure;
use crate::runner::single_line;
use crate::secret::Secret;
use crate::validate;

/// How many times we answer libgit2's credential callback before giving up (it loops on bad
/// credentials otherwise).
pub const MAX_CREDENTIAL_ATTEMPTS: u32 = 1;

/// Errors of the git layer. Convert into [`Failure`] with `?` (lease mismatches are refusals,
/// exit 1; bad names are usage errors, exit 2; the rest runtime failures, exit 3).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// An input (ref name, sha, URL) broke a rule; nothing was sent.
    #[error("{0}")]
    Invalid(Failure),
    /// The remote rejected our credentials (after one attempt, no loop).
    #[error("authentication to the git remote {url} failed: {detail} (check the `token` input or the checkout's persisted credentials; the token needs `contents: write` to push)")]
    Auth {
        /// The remote (no credentials in it).
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// A ref on the remote does not hold the value we based our decision on (someone else moved
    /// it); nothing was changed.
    #[error(
        "{refname} changed on the remote: expected {expected}, found {actual}; nothing was changed"
    )]
    Lease {
        /// The full ref name.
        refname: String,
        /// What we expected (`<none>` for "must not exist").
        expected: String,
        /// What the remote holds now (`<none>` when absent).
        actual: String,
    },
    /// The remote refused the push for another reason (hook, protection rule, permissions).
    #[error("the remote rejected the push of {refname}: {reason}; nothing was changed")]
    Rejected {
        /// The full ref name.
        refname: String,
        /// The server's reason.
        reason: String,
    },
    /// An object we need is not available locally even after fetching.
    #[error("object {0} is not available from the remote")]
    Missing(String),
    /// Any other git or transport failure.
    #[error("git: {0}")]
    Other(String),
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError::Other(single_line(e.message()))
    }
}

impl From<GitError> for Failure {
    fn from(e: GitError) -> Self {
        match e {
            GitError::Invalid(f) => f,
            GitError::Lease { .. } | GitError::Rejected { .. } => Failure::refused(e.to_string()),
            other => Failure::runtime(other.to_string()),
        }
    }
}

/// Shorthand.
pub type GitResult<T> = std::result::Result<T, GitError>;

/// Credentials for the remote.
#[derive(Clone, Default)]
pub struct Auth {
    user: String,
    password: Option<Secret>,
    /// Where they came from, for messages.
    pub source: &'static str,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({}, {})", self.user, self.source)
    }
}

impl Auth {
    /// No credentials (a local path, or a public remote for reads).
    pub fn none() -> Auth {
        Auth {
            user: String::new(),
            password: None,
            source: "none",
        }
    }
    /// `x-access-token:<token>`, as a workflow's `GITHUB_TOKEN` or an App token is used.
    pub fn token(token: Secret) -> Auth {
        Auth {
            user: "x-access-token".into(),
            password: Some(token),
            source: "token",
        }
    }
    /// True when there is something to send.
    pub fn is_some(&self) -> bool {
        self.password.is_some()
    }
    /// The password (token), to mask it.
    pub fn secret(&self) -> Option<&Secret> {
        self.password.as_ref()
    }
    /// Parse the value `actions/checkout` persists (`AUTHORIZATION: basic <base64(user:pass)>`).
    pub fn from_extraheader(value: &str) -> Option<Auth> {
        let (name, rest) = value.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return None;
        }
        let rest = rest.trim();
        let (scheme, b64) = rest.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        Some(Auth {
            user: user.to_string(),
            password: Some(Secret::new(pass.to_string())),
            source: "checkout credentials (http.extraheader)",
        })
    }
    /// Look for `actions/checkout`'s persisted header in a repository's config: `http.extraheader`
    /// or `http.<url>.extraheader` whose `<url>` is a prefix of the remote URL (longest wins).
    pub fn from_repo_config(repo: &Repository, url: &str) -> Option<Auth> {
        let cfg = repo.config().ok()?.snapshot().ok()?;
        let mut best: Option<(usize, Auth)> = None;
        let mut entries = cfg.entries(None).ok()?;
        while let Some(Ok(e)) = entries.next() {
            let Some(name) = e.name() else { continue };
            let lower = name.to_ascii_lowercase();
            if !lower.starts_with("http.") || !lower.ends_with(".extraheader") {
                continue;
            }
            let rank = if lower == "http.extraheader" {
                0
            } else if let Some(sub) = name
                .get("http.".len()..name.len() - ".extraheader".len())
                .filter(|sub| url.starts_with(sub) || url.starts_with(sub.trim_end_matches('/')))
            {
                sub.len()
            } else {
                continue;
            };
            if let Some(a) = e.value().and_then(Auth::from_extraheader) {
                if best.as_ref().is_none_or(|(r, _)| rank >= *r) {
                    best = Some((rank, a));
                }
            }
        }
        best.map(|(_, a)| a)
    }
    fn basic_header(&self) -> Option<String> {
        let p = self.password.as_ref()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.user,
            p.expose()
        ));
        Some(format!("Authorization: Basic {b64}"))
    }
}

/// Where to find the remote and its credentials.
#[derive(Debug, Clone, Default)]
pub struct RemoteSpec {
    /// The checkout (default: current directory). Used for `origin`, its persisted credentials
    /// and as the object store when it has full history.
    pub repo_path: Option<PathBuf>,
    /// An explicit remote URL or local path instead of the checkout's `origin`.
    pub remote: Option<String>,
    /// A token (`x-access-token` basic auth). Wins over the checkout's persisted header.
    pub token: Option<Secret>,
    /// Where to create a scratch repository when the checkout cannot be used.
    pub temp_dir: Option<PathBuf>,
}

/// Validate a remote URL before any call: a local path, or a URL a token may be sent to
/// ([`validate::credential_url`]: https, plain http to loopback only, no credentials in it).
pub fn validate_remote_url(field: &str, url: &str) -> Result<(), Failure> {
    let bad = |rule: &str| {
        Err(Failure::usage(
            field,
            format!("`{}` {rule}", validate::url_for_display(url)),
        ))
    };
    if url.is_empty() {
        return bad("is empty");
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return bad("contains spaces or control characters");
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return validate::credential_url(field, url).map(drop);
    }
    if url.contains("://") || url.starts_with('-') || url.contains("::") {
        return bad("is not an http(s) URL or a local path");
    }
    if url.contains('@') && url.contains(':') {
        return bad("looks like an ssh remote; use https with a token");
    }
    Ok(())
}

/// A full ref name we are about to touch: git's rules, under `refs/heads/` or `refs/tags/`, and
/// our stricter character set.
pub fn validate_full_ref(field: &str, name: &str) -> Result<(), Failure> {
    validate::git_ref_format(field, name)?;
    let short = name
        .strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"));
    let ok = short.is_some_and(|s| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    });
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            field,
            format!(
                "`{}` must be refs/heads/<name> or refs/tags/<name> using only letters, digits, `.`, `_`, `/`, `-`",
                single_line(name)
            ),
        ))
    }
}

/// Parse a full lowercase hex object id.
pub fn parse_oid(field: &str, v: &str) -> Result<Oid, Failure> {
    validate::full_sha(field, v)?;
    Oid::from_str(v)
        .map_err(|_| Failure::usage(field, format!("`{}` is not an object id", single_line(v))))
}

/// One ref as the remote advertised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteRef {
    /// The object the ref points at (a tag object for annotated tags).
    pub oid: Oid,
    /// The commit an annotated tag peels to (from the `^{}` advertisement), else `oid`.
    pub peeled: Oid,
}

/// The remote's refs (those matching the prefixes asked for).
#[derive(Debug, Clone, Default)]
pub struct RemoteRefs {
    /// Full ref name -> value.
    pub refs: BTreeMap<String, RemoteRef>,
}

impl RemoteRefs {
    /// The value of one ref.
    pub fn get(&self, name: &str) -> Option<RemoteRef> {
        self.refs.get(name).copied()
    }
    /// Refs under a prefix, in name order.
    pub fn under<'a>(&'a self, prefix: &str) -> Vec<(&'a str, RemoteRef)> {
        self.refs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}

/// What a ref must hold on the remote for an update to go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The ref must not exist.
    Absent,
    /// The ref must hold exactly this object.
    Oid(Oid),
}

impl Expect {
    /// From what `ls_remote` saw.
    pub fn from_seen(seen: Option<RemoteRef>) -> Expect {
        seen.map_or(Expect::Absent, |r| Expect::Oid(r.oid))
    }
    fn show(&self) -> String {
        match self {
            Expect::Absent => "<none>".into(),
            Expect::Oid(o) => o.to_string(),
        }
    }
}

/// One ref update of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// Full ref name (`refs/tags/...` or `refs/heads/...`).
    pub name: String,
    /// New value; `None` deletes the ref.
    pub new: Option<Oid>,
    /// The lease.
    pub expect: Expect,
}

/// A commit, for changelogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full id.
    pub id: Oid,
    /// First line of the message (untrusted text).
    pub summary: String,
    /// Author name (untrusted text).
    pub author: String,
    /// Author time, seconds since the epoch.
    pub time: i64,
}

/// A tagger identity.
#[derive(Debug, Clone)]
pub struct Tagger {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// A connection context for one command: the remote, its credentials, and a local object store.
pub struct Session {
    repo: Repository,
    url: String,
    auth: Auth,
    scratch: Option<PathBuf>,
    /// For a remote on this machine: its object directory, used as an alternate object store
    /// (read-only, in memory, never written to the checkout's config) so nothing is copied.
    local_objects: Option<PathBuf>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, {:?})", self.url, self.auth)
    }
}

fn callbacks<'a>(auth: &'a Auth, attempts: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, _user, allowed| {
        let n = attempts.get();
        attempts.set(n + 1);
        if n >= MAX_CREDENTIAL_ATTEMPTS {
            return Err(git2::Error::from_str(if auth.is_some() {
                "the remote rejected the credentials"
            } else {
                "the remote requires credentials and none were given"
            }));
        }
        match &auth.password {
            Some(p) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(&auth.user, p.expose())
            }
            Some(_) => Err(git2::Error::from_str(
                "the remote asked for a credential type other than basic auth",
            )),
            None => Err(git2::Error::from_str(
                "the remote requires credentials and none were given",
            )),
        }
    });
    cb
}

impl Session {
    /// Open a session: find the remote URL and credentials, pick the object store. No network.
    pub fn open(spec: &RemoteSpec) -> GitResult<Session> {
        let repo_path = spec.repo_path.clone().unwrap_or_else(|| PathBuf::from("."));
        let checkout = Repository::open(&repo_path).ok();
        let url = match (&spec.remote, &checkout) {
            (Some(u), _) => u.clone(),
            (None, Some(r)) => r
                .find_remote("origin")
                .ok()
                .and_then(|o| o.url().map(str::to_string))
                .ok_or_else(|| {
                    GitError::Invalid(Failure::usage(
                        "remote",
                        format!(
                            "the repository at {} has no `origin` remote; pass `remote`",
                            repo_path.display()
                        ),
                    ))
                })?,
            (None, None) => {
                return Err(GitError::Invalid(Failure::usage(
                    "remote",
                    format!(
                        "{} is not a git checkout; run actions/checkout first or pass `remote`",
                        repo_path.display()
                    ),
                )))
            }
        };
        validate_remote_url("remote", &url).map_err(GitError::Invalid)?;
        let auth = match (&spec.token, &checkout) {
            (Some(t), _) => Auth::token(t.clone()),
            (None, Some(r)) => Auth::from_repo_config(r, &url).unwrap_or_else(Auth::none),
            (None, None) => Auth::none(),
        };
        let usable = checkout.filter(|r| !r.is_shallow());
        let (repo, scratch) = match usable {
            Some(r) => (r, None),
            None => {
                let base = spec.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
                let dir = base.join(format!("gitops-actions-git-{:016x}", rand::random::<u64>()));
                let r = Repository::init_bare(&dir)?;
                (r, Some(dir))
            }
        };
        let local_objects = local_objects_dir(&url);
        if let Some(dir) = &local_objects {
            repo.odb()?.add_disk_alternate(&dir.display().to_string())?;
        }
        Ok(Session {
            repo,
            url,
            auth,
            scratch,
            local_objects,
        })
    }

    /// The remote URL (never carries credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The credentials in use (to mask the secret first thing).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The local repository objects are fetched into.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// True when working in a private scratch repository.
    pub fn is_scratch(&self) -> bool {
        self.scratch.is_some()
    }

    fn map_net(&self, e: git2::Error, attempts: &Cell<u32>) -> GitError {
        let msg = single_line(e.message());
        if attempts.get() > MAX_CREDENTIAL_ATTEMPTS
            || e.class() == git2::ErrorClass::Http && e.code() == git2::ErrorCode::Auth
            || msg.contains("credentials")
            || msg.contains("401")
            || msg.contains("authentication")
        {
            GitError::Auth {
                url: self.url.clone(),
                detail: msg,
            }
        } else {
            GitError::Other(format!("{}: {msg}", self.url))
        }
    }

    /// The remote's refs whose names start with one of `prefixes` (all refs when empty), with
    /// annotated tags peeled. One round trip.
    pub fn ls_remote(&self, prefixes: &[&str]) -> GitResult<RemoteRefs> {
        if self.local_objects.is_some() {
            // A remote on this machine: read its refs directly (libgit2's local transport would
            // open and peel every ref of the repository, ~1 s for 30,000 tags).
            if let Ok(remote) = Repository::open(&self.url) {
                return Self::ls_local(&remote, prefixes);
            }
        }
        let attempts = Cell::new(0);
        let _creds = transport::scope(&self.url, &self.auth);
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let cb = callbacks(&self.auth, &attempts);
        let conn = remote
            .connect_auth(Direction::Fetch, Some(cb), None)
            .map_err(|e| self.map_net(e, &attempts))?;
        let heads = conn.list().map_err(|e| self.map_net(e, &attempts))?;
        let wanted = |n: &str| prefixes.is_empty() || prefixes.iter().any(|p| n.starts_with(p));
        let mut out = RemoteRefs::default();
        let mut peeled: Vec<(String, Oid)> = Vec::new();
        for h in heads {
            let name = h.name();
            if let Some(base) = name.strip_suffix("^{}") {
                if wanted(base) {
                    peeled.push((base.to_string(), h.oid()));
                }
            } else if wanted(name) {
                out.refs.insert(
                    name.to_string(),
                    RemoteRef {
                        oid: h.oid(),
                        peeled: h.oid(),
                    },
                );
            }
        }
        for (name, oid) in peeled {
            if let Some(r) = out.refs.get_mut(&name) {
                r.peeled = oid;
            }
        }
        Ok(out)
    }

    fn ls_local(remote: &Repository, prefixes: &[&str]) -> GitResult<RemoteRefs> {
        if let Some(fast) = files_backend::read(remote, prefixes) {
            return fast;
        }
        Self::ls_local_libgit2(remote, prefixes)
    }

    fn ls_local_libgit2(remote: &Repository, prefixes: &[&str]) -> GitResult<RemoteRefs> {
        let mut out = RemoteRefs::default();
        for r in remote.references()? {
            let r = r?;
            let (Some(name), Some(oid)) = (r.name(), r.target()) else {
                continue;
            };
            if !prefixes.is_empty() && !prefixes.iter().any(|p| name.starts_with(p)) {
                continue;
            }
            // packed-refs carries the peeled value; otherwise peel through the tag objects.
            let peeled = match r.target_peel() {
                Some(p) => p,
                None => r.peel(git2::ObjectType::Any)?.id(),
            };
            out.refs.insert(name.to_string(), RemoteRef { oid, peeled });
        }
        Ok(out)
    }

    /// Fetch the objects behind these full ref names (and their history) into the local store.
    /// Writes no local ref and no FETCH_HEAD. `depth`: `None` for full history.
    pub fn fetch(&self, refs: &[&str], depth: Option<i32>) -> GitResult<()> {
        if refs.is_empty() {
            return Ok(());
        }
        for r in refs {
            validate::git_ref_format("ref", r).map_err(GitError::Invalid)?;
        }
        let attempts = Cell::new(0);
        let _creds = transport::scope(&self.url, &self.auth);
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(callbacks(&self.auth, &attempts))
            .download_tags(AutotagOption::None)
            .update_fetchhead(false);
        // libgit2's local transport cannot do shallow fetches (and needs none: it is a copy).
        let local = !self.url.starts_with("http://") && !self.url.starts_with("https://");
        if let (Some(d), false) = (depth, local) {
            fo.depth(d);
        }
        let specs: Vec<String> = refs.iter().map(|r| (*r).to_string()).collect();
        remote
            .download(&specs, Some(&mut fo))
            .map_err(|e| self.map_net(e, &attempts))?;
        let _ = remote.disconnect();
        Ok(())
    }

    /// Make sure `oids` (and, in a full repository, their history) are present locally,
    /// fetching `refs` if any is missing.
    pub fn ensure(&self, oids: &[Oid], refs: &[&str]) -> GitResult<()> {
        self.ensure_with_depth(oids, refs, None)
    }

    /// As [`Session::ensure`] with a fetch depth (`Some(1)`: just the objects, for reading tag
    /// messages in a scratch repository).
    pub fn ensure_with_depth(
        &self,
        oids: &[Oid],
        refs: &[&str],
        depth: Option<i32>,
    ) -> GitResult<()> {
        let odb = self.repo.odb()?;
        if oids.iter().all(|o| odb.exists(*o)) {
            return Ok(());
        }
        self.fetch(refs, depth)?;
        for o in oids {
            if !odb.exists(*o) {
                return Err(GitError::Missing(o.to_string()));
            }
        }
        Ok(())
    }

    /// True when `ancestor` is `descendant` or one of its ancestors (`git merge-base --is-ancestor`).
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> GitResult<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        let a = self.peel_commit(ancestor)?;
        let d = self.peel_commit(descendant)?;
        Ok(self.repo.graph_descendant_of(d, a)?)
    }

    /// The best common ancestor, if any.
    pub fn merge_base(&self, a: Oid, b: Oid) -> GitResult<Option<Oid>> {
        let a = self.peel_commit(a)?;
        let b = self.peel_commit(b)?;
        match self.repo.merge_base(a, b) {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Commits reachable from `to` but not from `from` (`git rev-list from..to`), newest first,
    /// at most `limit`; the bool says whether more were left out.
    pub fn commits_between(
        &self,
        from: Option<Oid>,
        to: Oid,
        limit: usize,
    ) -> GitResult<(Vec<CommitInfo>, bool)> {
        let mut walk = self.repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        walk.push(self.peel_commit(to)?)?;
        if let Some(f) = from {
            walk.hide(self.peel_commit(f)?)?;
        }
        let mut out = Vec::new();
        for id in walk {
            let id = id?;
            if out.len() == limit {
                return Ok((out, true));
            }
            let c = self.repo.find_commit(id)?;
            out.push(CommitInfo {
                id,
                summary: c.summary().unwrap_or("").to_string(),
                author: c.author().name().unwrap_or("").to_string(),
                time: c.time().seconds(),
            });
        }
        Ok((out, false))
    }

    /// The commit an object id (commit or annotated tag) peels to; the object must be local.
    pub fn peel_commit(&self, oid: Oid) -> GitResult<Oid> {
        let obj = self
            .repo
            .find_object(oid, None)
            .map_err(|_| GitError::Missing(oid.to_string()))?;
        Ok(obj.peel_to_commit()?.id())
    }

    /// The message of a local annotated tag object.
    pub fn tag_message(&self, oid: Oid) -> GitResult<String> {
        let t = self
            .repo
            .find_tag(oid)
            .map_err(|_| GitError::Missing(oid.to_string()))?;
        Ok(String::from_utf8_lossy(t.message_bytes().unwrap_or_default()).into_owned())
    }

    /// The tagger time (Unix seconds) of a local annotated tag object; `None` when `oid` is not a
    /// local annotated tag or the tag has no tagger.
    pub fn tag_time(&self, oid: Oid) -> Option<i64> {
        let t = self.repo.find_tag(oid).ok()?;
        t.tagger().map(|s| s.when().seconds())
    }

    /// Create an annotated tag object (no ref) named `name` (short, without `refs/tags/`)
    /// pointing at `target`. Returns the tag object's id.
    pub fn create_tag_object(
        &self,
        name: &str,
        target: Oid,
        tagger: &Tagger,
        message: &str,
    ) -> GitResult<Oid> {
        validate_full_ref("tag", &format!("refs/tags/{name}")).map_err(GitError::Invalid)?;
        let obj = self
            .repo
            .find_object(target, None)
            .map_err(|_| GitError::Missing(target.to_string()))?;
        let sig = git2::Signature::now(&tagger.name, &tagger.email)?;
        Ok(self.repo.tag_annotation_create(name, &obj, &sig, message)?)
    }

    /// Push `updates` as ONE all-or-nothing compare-and-swap (see the module docs). On a lease
    /// mismatch returns [`GitError::Lease`] with the remote's current value; nothing changed.
    /// A ref the remote already holds at its new value (not what we expected) is a lost lease
    /// too. In a multi-ref push `git` still sends the other refs in that case, so give every
    /// update of a multi-ref push a value no one else can have pushed (a fresh tag object, as
    /// `tag-deploy record` does).
    pub fn push(&self, updates: &[RefUpdate]) -> GitResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        for u in updates {
            validate_full_ref("ref", &u.name).map_err(GitError::Invalid)?;
        }
        // libgit2's local transport writes refs without checking their old value (the lease
        // would only be checked against what it listed when it connected, so two pushes could
        // both win); `git push` to a path runs `receive-pack`, which checks under its ref lock.
        if updates.len() == 1 && self.is_network() {
            self.push_libgit2(&updates[0])
        } else {
            self.push_atomic_cli(updates)
        }
    }

    fn push_libgit2(&self, u: &RefUpdate) -> GitResult<()> {
        let attempts = Cell::new(0);
        let lease: Cell<Option<GitError>> = Cell::new(None);
        let rejected: Cell<Option<(String, String)>> = Cell::new(None);
        let expect = u.expect;
        let name = u.name.clone();
        let _creds = transport::scope(&self.url, &self.auth);
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let mut cb = callbacks(&self.auth, &attempts);
        cb.push_negotiation(|updates| {
            for p in updates {
                if p.dst_refname() != Some(name.as_str()) {
                    continue;
                }
                let seen = p.src();
                let ok = match expect {
                    Expect::Absent => seen.is_zero(),
                    Expect::Oid(o) => seen == o,
                };
                if !ok {
                    lease.set(Some(GitError::Lease {
                        refname: name.clone(),
                        expected: expect.show(),
                        actual: if seen.is_zero() {
                            "<none>".into()
                        } else {
                            seen.to_string()
                        },
                    }));
                    return Err(git2::Error::from_str("lease check failed"));
                }
            }
            Ok(())
        });
        cb.push_update_reference(|refname, status| {
            if let Some(s) = status {
                rejected.set(Some((refname.to_string(), s.to_string())));
            }
            Ok(())
        });
        let mut po = PushOptions::new();
        po.remote_callbacks(cb);
        let spec = match u.new {
            Some(new) => format!("+{new}:{}", u.name),
            None => format!(":{}", u.name),
        };
        // A push of a raw object id needs the object locally (it is, we created or fetched it).
        let res = remote.push(&[spec.as_str()], Some(&mut po));
        drop(po);
        if let Some(l) = lease.take() {
            return Err(l);
        }
        if let Err(e) = res {
            return Err(self.map_net(e, &attempts));
        }
        if let Some((refname, reason)) = rejected.take() {
            if let Some(l) = self.find_broken_lease(std::slice::from_ref(u)) {
                return Err(l);
            }
            return Err(GitError::Rejected {
                refname,
                reason: single_line(&reason),
            });
        }
        Ok(())
    }

    /// True for an `http(s)` remote (a `receive-pack` behind a server checks every old value);
    /// false for a path on this machine.
    fn is_network(&self) -> bool {
        self.url.starts_with("http://") || self.url.starts_with("https://")
    }

    /// After a rejected push: the first update whose lease no longer holds on the remote.
    fn find_broken_lease(&self, updates: &[RefUpdate]) -> Option<GitError> {
        let names: Vec<&str> = updates.iter().map(|u| u.name.as_str()).collect();
        let now = self.ls_remote(&names).ok()?;
        updates.iter().find_map(|u| {
            let actual = now.get(&u.name).map(|r| r.oid);
            let holds = match u.expect {
                Expect::Absent => actual.is_none(),
                Expect::Oid(o) => actual == Some(o),
            };
            (!holds).then(|| GitError::Lease {
                refname: u.name.clone(),
                expected: u.expect.show(),
                actual: actual.map_or("<none>".into(), |o| o.to_string()),
            })
        })
    }

    fn push_atomic_cli(&self, updates: &[RefUpdate]) -> GitResult<()> {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir").arg(self.repo.path()).args([
            "push",
            "--atomic",
            "--porcelain",
            "--no-verify",
        ]);
        for u in updates {
            let e = match u.expect {
                Expect::Absent => String::new(),
                Expect::Oid(o) => o.to_string(),
            };
            cmd.arg(format!("--force-with-lease={}:{e}", u.name));
        }
        cmd.arg("--").arg(&self.url);
        for u in updates {
            cmd.arg(match u.new {
                Some(n) => format!("{n}:{}", u.name),
                None => format!(":{}", u.name),
            });
        }
        // Credentials through the environment (not visible in the process list); reset every
        // header and helper the user's or the checkout's config might add.
        let mut cfg: Vec<(String, String)> = vec![
            ("credential.helper".into(), String::new()),
            ("http.extraheader".into(), String::new()),
            ("core.askPass".into(), String::new()),
            ("push.gpgSign".into(), "false".into()),
        ];
        if let Some(h) = self.auth.basic_header() {
            cfg.push(("http.extraheader".into(), h));
        }
        for v in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "GIT_TRACE",
            "GIT_TRACE_CURL",
            "GIT_TRACE_PACKET",
            "GIT_CURL_VERBOSE",
        ] {
            cmd.env_remove(v);
        }
        match &self.local_objects {
            Some(dir) => cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", dir),
            None => cmd.env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES"),
        };
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_COUNT", cfg.len().to_string());
        for (i, (k, v)) in cfg.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        cmd.stdin(Stdio::null());
        let out = cmd.output().map_err(|e| {
            GitError::Other(format!(
                "cannot run `git` for the atomic push (libgit2 cannot push atomically): {e}"
            ))
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            return match already_there(updates, &stdout) {
                Some(l) => Err(l),
                None => Ok(()),
            };
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = match self.auth.secret() {
            Some(s) => stderr.replace(s.expose(), "***"),
            None => stderr.into_owned(),
        };
        // Porcelain: `<flag>\t<src>:<dst>\t<summary> (<reason>)`; `!` = rejected. In an atomic
        // push the refs that were fine say "atomic push failed"/"atomic transaction failed"; the
        // server does not always say which lease broke, so we re-read the remote to find out.
        let mut rejects: Vec<(String, String)> = Vec::new();
        for line in stdout.lines() {
            let mut parts = line.splitn(3, '\t');
            if let (Some("!"), Some(refs), rest) = (parts.next(), parts.next(), parts.next()) {
                let dst = refs.rsplit(':').next().unwrap_or("").to_string();
                rejects.push((dst, rest.unwrap_or("").to_string()));
            }
        }
        if !rejects.is_empty() {
            if let Some(l) = self.find_broken_lease(updates) {
                return Err(l);
            }
            let (refname, reason) = rejects
                .iter()
                .find(|(_, r)| !r.contains("atomic"))
                .unwrap_or(&rejects[0])
                .clone();
            return Err(GitError::Rejected {
                refname,
                reason: single_line(&reason),
            });
        }
        let detail = single_line(stderr.trim());
        if detail.contains("Authentication failed")
            || detail.contains("401")
            || detail.contains("could not read Username")
        {
            return Err(GitError::Auth {
                url: self.url.clone(),
                detail,
            });
        }
        Err(GitError::Other(format!(
            "git push to {} failed: {detail}",
            self.url
        )))
    }
}

/// The object directory of a remote given as a local path (bare or not), if it has one.
/// `git push` reports a ref that the remote already holds at the new value as up to date
/// (porcelain flag `=`) and sends nothing for it, without checking its lease. Unless we
/// expected that value, someone else put it there: our compare-and-swap did not happen, which
/// is a lost lease like any other (the caller re-evaluates; it did not win).
fn already_there(updates: &[RefUpdate], porcelain: &str) -> Option<GitError> {
    porcelain.lines().find_map(|line| {
        let mut parts = line.splitn(3, '\t');
        let (Some("="), Some(refs)) = (parts.next(), parts.next()) else {
            return None;
        };
        let dst = refs.rsplit(':').next().unwrap_or("");
        let u = updates.iter().find(|u| u.name == dst)?;
        let new = u.new?;
        (u.expect != Expect::Oid(new)).then(|| GitError::Lease {
            refname: u.name.clone(),
            expected: u.expect.show(),
            actual: new.to_string(),
        })
    })
}

pub fn local_objects_dir(url: &str) -> Option<PathBuf> {
    if url.contains("://") {
        return None;
    }
    let base = Path::new(url);
    [base.join("objects"), base.join(".git").join("objects")]
        .into_iter()
        .find(|d| d.is_dir())
        .and_then(|d| d.canonicalize().ok())
}

/// Is `path` inside a git checkout? (Used to pick defaults.)
pub fn is_checkout(path: &Path) -> bool {
    Repository::open(path).is_ok()
}

/// Refs of a repository on this machine, read from git's files backend without loading every
/// ref: libgit2 parses the whole `packed-refs` into a hash map (about 100 ms of CPU for 30,000
/// deploy tags) even for one prefix. Here `packed-refs` is scanned once for the wanted prefixes
/// and the loose refs under the prefixes' directories override it, as in git. Anything
/// unusual (reftable, SHA-256 object names, symbolic refs, no prefixes, an unreadable file)
/// returns `None`, and the caller asks libgit2.
mod files_backend {
    use super::{GitResult, RemoteRef, RemoteRefs};
    use git2::{Oid, Repository};
    use std::collections::BTreeMap;
    use std::path::Path;

    pub(super) fn read(repo: &Repository, prefixes: &[&str]) -> Option<GitResult<RemoteRefs>> {
        if prefixes.is_empty() || repo.is_worktree() {
            return None;
        }
        if let Ok(cfg) = repo.config() {
            if let Ok(v) = cfg.get_string("extensions.refstorage") {
                if !v.eq_ignore_ascii_case("files") {
                    return None;
                }
            }
            if let Ok(v) = cfg.get_string("extensions.objectformat") {
                if !v.eq_ignore_ascii_case("sha1") {
                    return None;
                }
            }
        }
        let dir = repo.commondir();
        let wanted = |n: &str| prefixes.iter().any(|p| n.starts_with(p));
        // name -> (oid, peeled if known, loose)
        let mut found: BTreeMap<String, (Oid, Option<Oid>, bool)> = BTreeMap::new();
        let mut fully_peeled = false;
        match std::fs::read(dir.join("packed-refs")) {
            Ok(bytes) => {
                let text = std::str::from_utf8(&bytes).ok()?;
                let mut last: Option<String> = None;
                for line in text.lines() {
                    if let Some(traits) = line.strip_prefix("# pack-refs with:") {
                        fully_peeled = traits.split_whitespace().any(|t| t == "fully-peeled");
                        continue;
                    }
                    if line.starts_with('#') || line.is_empty() {
                        continue;
                    }
                    if let Some(hex) = line.strip_prefix('^') {
                        if let Some(name) = last.take() {
                            let oid = parse_hex(hex)?;
                            found.get_mut(&name)?.1 = Some(oid);
                        }
                        continue;
                    }
                    let (hex, name) = line.split_once(' ')?;
                    last = None;
                    if wanted(name) {
                        found.insert(name.to_string(), (parse_hex(hex)?, None, false));
                        last = Some(name.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
        // Loose refs override packed ones (fully-peeled says nothing about them).
        let mut loose: BTreeMap<String, Oid> = BTreeMap::new();
        for p in prefixes {
            let base = match p.rfind('/') {
                Some(i) => &p[..i],
                None => return None,
            };
            walk(&dir.join(base), base, &wanted, &mut loose)?;
        }
        for (name, oid) in loose {
            found.insert(name, (oid, None, true));
        }
        let mut out = RemoteRefs::default();
        for (name, (oid, peeled, is_loose)) in found {
            let peeled = match peeled {
                Some(p) => p,
                None if fully_peeled && !is_loose => oid,
                None => match peel_tags(repo, oid) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e.into())),
                },
            };
            out.refs.insert(name, RemoteRef { oid, peeled });
        }
        Some(Ok(out))
    }

    /// Follow annotated tags to the first object that is not a tag (what `^{}` shows).
    fn peel_tags(repo: &Repository, oid: Oid) -> Result<Oid, git2::Error> {
        let mut o = repo.find_object(oid, None)?;
        while let Some(t) = o.as_tag() {
            o = t.target()?;
        }
        Ok(o.id())
    }

    fn parse_hex(hex: &str) -> Option<Oid> {
        let hex = hex.trim_end();
        (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Oid::from_str(hex).ok())
            .flatten()
    }

    /// Loose refs under `path` (= `name` in ref space). `None`: give up (symbolic ref,
    /// unreadable entry).
    fn walk(
        path: &Path,
        name: &str,
        wanted: &dyn Fn(&str) -> bool,
        out: &mut BTreeMap<String, Oid>,
    ) -> Option<()> {
        let rd = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Some(()),
            Err(_) => return None,
        };
        for entry in rd {
            let entry = entry.ok()?;
            let file = entry.file_name();
            let file = file.to_str()?;
            let child = format!("{name}/{file}");
            let ft = entry.file_type().ok()?;
            if ft.is_dir() {
                walk(&entry.path(), &child, wanted, out)?;
            } else if ft.is_file() && !file.ends_with(".lock") && wanted(&child) {
                let text = std::fs::read_to_string(entry.path()).ok()?;
                // A symbolic ref (`ref: ...`) or anything else: let libgit2 decide.
                out.insert(child, parse_hex(text.trim_end_matches('\n'))?);
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let o = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    // The files-backend reader agrees with libgit2 on packed refs (peeled or not), loose refs
    // that override packed ones, lightweight and annotated tags, nested names and prefixes
    // that are ref names rather than directories; and steps aside for symbolic refs.
    #[test]
    fn files_backend_reads_what_libgit2_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        git(d, &["init", "-q", "-b", "dev"]);
        for i in 0..4 {
            std::fs::write(d.join("f"), format!("{i}")).unwrap();
            git(d, &["add", "f"]);
            git(d, &["commit", "-qm", &format!("c{i}")]);
            git(
                d,
                &["tag", "-a", "-m", "m", &format!("deploy/dev/history/{i}")],
            );
        }
        git(d, &["tag", "deploy/dev/light"]);
        git(d, &["branch", "dev2"]);
        git(
            d,
            &["tag", "-a", "-m", "x", "deploy/prod/current", "HEAD~2"],
        );
        let prefixes: [&[&str]; 4] = [
            &["refs/tags/deploy/dev/"],
            &["refs/tags/deploy/", "refs/heads/dev"],
            &["refs/heads/dev2", "refs/tags/deploy/prod/current"],
            &["refs/tags/none/"],
        ];
        let check = |stage: &str| {
            let repo = Repository::open(d).unwrap();
            for p in prefixes {
                let fast = files_backend::read(&repo, p)
                    .unwrap_or_else(|| panic!("{stage}: fast path declined {p:?}"))
                    .unwrap();
                let slow = Session::ls_local_libgit2(&repo, p).unwrap();
                assert_eq!(fast.refs, slow.refs, "{stage}: {p:?}");
            }
        };
        check("all loose");
        git(d, &["pack-refs", "--all"]);
        check("packed");
        // A loose ref newer than its packed copy wins; a new loose tag beside packed ones.
        git(
            d,
            &[
                "tag",
                "-f",
                "-a",
                "-m",
                "moved",
                "deploy/dev/history/1",
                "HEAD",
            ],
        );
        git(
            d,
            &["tag", "-a", "-m", "n", "deploy/dev/history/9", "HEAD~3"],
        );
        check("packed + loose");
        let repo = Repository::open(d).unwrap();
        let r = files_backend::read(&repo, &["refs/tags/deploy/dev/history/1"])
            .unwrap()
            .unwrap();
        let head = repo.head().unwrap().target().unwrap();
        assert_eq!(r.refs["refs/tags/deploy/dev/history/1"].peeled, head);
        // Old-style packed-refs without peeled lines: peeled through the objects.
        let packed = std::fs::read_to_string(d.join(".git/packed-refs")).unwrap();
        let stripped: String = packed
            .lines()
            .filter(|l| !l.starts_with('^') && !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(d.join(".git/packed-refs"), stripped).unwrap();
        check("packed without peeled lines");
        // A symbolic ref under a wanted prefix: the fast path steps aside.
        std::fs::write(d.join(".git/refs/heads/devsym"), "ref: refs/heads/dev\n").unwrap();
        assert!(files_backend::read(&repo, &["refs/heads/dev"]).is_none());
        assert!(files_backend::read(&repo, &[]).is_none());
    }

    // `git push --porcelain` says `=` for a ref the remote already holds at our new value and
    // sends nothing for it, lease or not: unless we expected that value, it is a lost lease.
    #[test]
    fn up_to_date_refs_are_lost_leases_unless_expected() {
        let o = |c: char| Oid::from_str(&c.to_string().repeat(40)).unwrap();
        let upd = |name: &str, expect, new| RefUpdate {
            name: name.into(),
            new,
            expect,
        };
        let b = "refs/heads/main";
        let line = |flag: &str| format!("To /r.git\n{flag}\t{}:{b}\t[up to date]\nDone\n", o('b'));
        let cases = [
            // (update, porcelain flag, lost?)
            (upd(b, Expect::Oid(o('a')), Some(o('b'))), "=", true),
            (upd(b, Expect::Absent, Some(o('b'))), "=", true),
            (upd(b, Expect::Oid(o('b')), Some(o('b'))), "=", false),
            (upd(b, Expect::Oid(o('a')), Some(o('b'))), " ", false),
            (upd(b, Expect::Oid(o('a')), Some(o('b'))), "*", false),
            (
                upd("refs/heads/other", Expect::Oid(o('a')), Some(o('b'))),
                "=",
                false,
            ),
            (upd(b, Expect::Oid(o('a')), None), "=", false),
        ];
        for (u, flag, lost) in cases {
            let got = already_there(std::slice::from_ref(&u), &line(flag));
            assert_eq!(got.is_some(), lost, "{u:?} {flag:?}: {got:?}");
            if let Some(GitError::Lease { actual, .. }) = got {
                assert_eq!(actual, o('b').to_string());
            }
        }
    }

    #[test]
    fn extraheader_parsing() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghs_abc");
        let a = Auth::from_extraheader(&format!("AUTHORIZATION: basic {b64}")).unwrap();
        assert_eq!(a.user, "x-access-token");
        assert_eq!(a.secret().unwrap().expose(), "ghs_abc");
        assert!(Auth::from_extraheader("AUTHORIZATION: bearer xyz").is_none());
        assert!(Auth::from_extraheader("X-Other: basic abc").is_none());
        assert!(!format!("{a:?}").contains("ghs_abc"));
    }

    #[test]
    fn remote_urls() {
        for ok in [
            "https://github.com/o/r.git",
            "http://127.0.0.1:8080/r.git",
            "/tmp/x.git",
            "../r",
        ] {
            validate_remote_url("remote", ok).unwrap();
        }
        for bad in [
            "",
            "https://user:pw@github.com/o/r",
            "https://tok@github.com/o/r",
            "ext::sh -c x",
            "git@github.com:o/r.git",
            "ssh://github.com/o/r",
            "-uhelp",
            "https://github.com/o/r\n",
            "http://github.com/o/r.git",
            "HTTP://github.com/o/r.git",
            "http://0.0.0.0:8080/r.git",
            "http://[::ffff:127.0.0.1]:8080/r.git",
            "http://x-access-token:ghs_SECRET@127.0.0.1/r.git",
        ] {
            let e = validate_remote_url("remote", bad).unwrap_err();
            assert!(!e.message.contains("SECRET"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn full_refs() {
        validate_full_ref("r", "refs/tags/deploy/dev/current").unwrap();
        validate_full_ref("r", "refs/heads/main").unwrap();
        for bad in [
            "main",
            "refs/remotes/x",
            "refs/tags/a b",
            "refs/tags/-x",
            "refs/tags/a$b",
            "refs/tags/",
            "refs/heads/a..b",
        ] {
            assert!(validate_full_ref("r", bad).is_err(), "{bad:?}");
        }
    }
}
