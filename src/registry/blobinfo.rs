//! Where blobs went: a small blob-info cache (as skopeo keeps one) that remembers, per registry
//! host, which repositories a blob was pushed to, so that the next push of the same layer to
//! another repository of that registry can *mount* it instead of uploading it again.
//!
//! The cache is a hint, never a fact:
//! - a blob is counted as present only when the registry answers `201 Created` to the mount (the
//!   registry itself checked it holds the blob in that repository); a `202 Accepted` (the
//!   protocol's "not mounted, upload instead") forgets the entry and the blob is uploaded;
//! - entries are keyed by the exact registry host and only ever offered to that host, so an ECR
//!   registry of another account (another host) never sees them;
//! - the file is untrusted input: at most [`MAX_FILE`] bytes, every host, digest and repository
//!   re-validated with the reference grammar (bad entries dropped and counted), bounded sizes;
//! - it holds no secret (hosts, repository names, digests) and is written atomically, mode 0600
//!   in a 0700 directory, through a fresh temporary file (a planted symlink is replaced, never
//!   followed).
//!
//! The decisions (which repositories to try, in which order; what to remember) are pure
//! functions with table tests below; the command owns the file's life (load, save).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reference::{valid_host, valid_repository, Digest};
use crate::exit::{Failure, Result};

/// The cache file's name inside the `cache-dir`.
pub const FILE_NAME: &str = "blob-info-v1.json";
/// A larger file is not read (it is ignored and rewritten).
pub const MAX_FILE: u64 = 4 << 20;
/// Registries remembered (most recently used first).
pub const MAX_REGISTRIES: usize = 32;
/// Blobs remembered per registry (most recently used first).
pub const MAX_BLOBS: usize = 4096;
/// Repositories remembered per blob.
pub const MAX_REPOS: usize = 4;
/// Mounts tried per blob before it is uploaded.
pub const MAX_MOUNT_TRIES: usize = 3;

/// Why a repository is offered as a mount source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The `mount-from` input.
    MountFrom,
    /// The blob-info cache.
    Cache,
    /// `copy` within one registry: the source repository.
    CopySource,
}

impl Origin {
    /// For log lines.
    pub fn describe(self) -> &'static str {
        match self {
            Origin::MountFrom => "`mount-from`",
            Origin::Cache => "the blob-info cache, `blob-info-v1.json` in `cache-dir`",
            Origin::CopySource => "the copy source",
        }
    }
}

/// A repository of the destination registry that may hold a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The repository to mount from.
    pub repo: String,
    /// Why it is tried.
    pub origin: Origin,
}

/// The repositories to try mounting one blob from, in order: `mount-from` as given, then the
/// cache's (most recent first); never the destination itself, no repository twice, at most
/// [`MAX_MOUNT_TRIES`].
pub fn candidates(dest_repo: &str, mount_from: &[String], cached: &[String]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let offered = mount_from
        .iter()
        .map(|r| (r, Origin::MountFrom))
        .chain(cached.iter().map(|r| (r, Origin::Cache)));
    for (repo, origin) in offered {
        if out.len() == MAX_MOUNT_TRIES {
            break;
        }
        if repo == dest_repo || out.iter().any(|c| &c.repo == repo) {
            continue;
        }
        out.push(Candidate {
            repo: repo.clone(),
            origin,
        });
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    digest: String,
    repos: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registry {
    host: String,
    blobs: Vec<Entry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    registries: Vec<Registry>,
}

/// The cache in memory.
#[derive(Debug, Default)]
pub struct BlobInfoCache {
    registries: Vec<Registry>,
}

impl BlobInfoCache {
    /// Parse a cache file's bytes. Returns the cache and what was wrong (dropped entries, or
    /// why the whole file was ignored), for one log line.
    pub fn parse(bytes: &[u8]) -> (BlobInfoCache, Option<String>) {
        let file: File = match serde_json::from_slice(bytes) {
            Ok(f) => f,
            Err(_) => {
                return (
                    BlobInfoCache::default(),
                    Some("is not a blob-info cache (invalid JSON): ignored".into()),
                )
            }
        };
        if file.version != 1 {
            return (
                BlobInfoCache::default(),
                Some(format!("has version {}, not 1: ignored", file.version)),
            );
        }
        let mut dropped = 0usize;
        let mut registries: Vec<Registry> = Vec::new();
        for r in file.registries {
            if !valid_host(&r.host)
                || registries.iter().any(|x| x.host == r.host)
                || registries.len() == MAX_REGISTRIES
            {
                dropped += 1 + r.blobs.len();
                continue;
            }
            let mut blobs: Vec<Entry> = Vec::new();
            for e in r.blobs {
                let ok = Digest::parse("cache", &e.digest).is_ok()
                    && !blobs.iter().any(|b| b.digest == e.digest)
                    && blobs.len() < MAX_BLOBS;
                if !ok {
                    dropped += 1;
                    continue;
                }
                let mut repos: Vec<String> = Vec::new();
                for repo in e.repos {
                    if valid_repository(&repo) && !repos.contains(&repo) && repos.len() < MAX_REPOS
                    {
                        repos.push(repo);
                    } else {
                        dropped += 1;
                    }
                }
                if !repos.is_empty() {
                    blobs.push(Entry {
                        digest: e.digest,
                        repos,
                    });
                }
            }
            registries.push(Registry {
                host: r.host,
                blobs,
            });
        }
        let note = (dropped > 0).then(|| format!("had {dropped} invalid entries: dropped"));
        (BlobInfoCache { registries }, note)
    }

    /// Read the cache at `path`. A missing file is an empty cache; an unreadable, oversized or
    /// malformed one is ignored, and the returned note says so (for the log).
    pub fn load(path: &Path) -> (BlobInfoCache, Option<String>) {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (BlobInfoCache::default(), None)
            }
            Err(e) => {
                return (
                    BlobInfoCache::default(),
                    Some(format!("cannot be read ({e}): ignored")),
                )
            }
        };
        if !meta.is_file() {
            return (
                BlobInfoCache::default(),
                Some("is not a regular file: ignored".into()),
            );
        }
        if meta.len() > MAX_FILE {
            return (
                BlobInfoCache::default(),
                Some(format!("is larger than {MAX_FILE} bytes: ignored")),
            );
        }
        match std::fs::read(path) {
            Ok(b) => BlobInfoCache::parse(&b),
            Err(e) => (
                BlobInfoCache::default(),
                Some(format!("cannot be read ({e}): ignored")),
            ),
        }
    }

    /// Repositories of `host` that `digest` was pushed to, most recent first.
    pub fn repos(&self, host: &str, digest: &Digest) -> &[String] {
        self.registries
            .iter()
            .find(|r| r.host == host)
            .and_then(|r| r.blobs.iter().find(|b| b.digest == digest.as_str()))
            .map_or(&[], |b| b.repos.as_slice())
    }

    /// Remember that `digest` is now in `repo` of `host` (moved to the front everywhere; the
    /// least recently used entries fall off past the limits).
    pub fn record(&mut self, host: &str, digest: &Digest, repo: &str) {
        let ri = match self.registries.iter().position(|r| r.host == host) {
            Some(i) => i,
            None => {
                self.registries.push(Registry {
                    host: host.to_string(),
                    blobs: Vec::new(),
                });
                self.registries.len() - 1
            }
        };
        let mut reg = self.registries.remove(ri);
        let mut entry = match reg.blobs.iter().position(|b| b.digest == digest.as_str()) {
            Some(i) => reg.blobs.remove(i),
            None => Entry {
                digest: digest.as_str().to_string(),
                repos: Vec::new(),
            },
        };
        entry.repos.retain(|r| r != repo);
        entry.repos.insert(0, repo.to_string());
        entry.repos.truncate(MAX_REPOS);
        reg.blobs.insert(0, entry);
        reg.blobs.truncate(MAX_BLOBS);
        self.registries.insert(0, reg);
        self.registries.truncate(MAX_REGISTRIES);
    }

    /// Forget that `digest` is in `repo` of `host` (the registry answered that it is not).
    pub fn forget(&mut self, host: &str, digest: &Digest, repo: &str) {
        if let Some(reg) = self.registries.iter_mut().find(|r| r.host == host) {
            if let Some(e) = reg.blobs.iter_mut().find(|b| b.digest == digest.as_str()) {
                e.repos.retain(|r| r != repo);
            }
            reg.blobs.retain(|b| !b.repos.is_empty());
        }
    }

    /// The file's bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&File {
            version: 1,
            registries: self.registries.clone(),
        })
        .expect("cache serialises")
    }

    /// Write the cache to `path` atomically (mode 0600, the directory created 0700).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_private(path, &self.to_json())
    }
}

/// The cache file under a `cache-dir`.
pub fn path_in(cache_dir: &Path) -> PathBuf {
    cache_dir.join(FILE_NAME)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let fail = |e: std::io::Error| {
        Failure::runtime(format!(
            "cannot write the blob-info cache {}: {e}",
            path.display()
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(fail)?;
    let tmp = dir.join(format!(
        ".{FILE_NAME}.{}.{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let written = o
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::parse("t", &format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// (destination, mount-from, cached, expected candidates)
    type CandidateCase<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
        &'a [(&'a str, Origin)],
    );

    #[test]
    fn candidates_in_order_without_the_destination_or_repeats_and_capped() {
        use Origin::*;
        let cases: &[CandidateCase] = &[
            ("app", &[], &[], &[]),
            ("app", &["base"], &[], &[("base", MountFrom)]),
            (
                "app",
                &[],
                &["old", "older"],
                &[("old", Cache), ("older", Cache)],
            ),
            // mount-from first, the cache after; the destination is never a source.
            (
                "app",
                &["base"],
                &["app", "base", "old"],
                &[("base", MountFrom), ("old", Cache)],
            ),
            ("app", &["app"], &[], &[]),
            // at most MAX_MOUNT_TRIES
            (
                "x",
                &["a", "b"],
                &["c", "d"],
                &[("a", MountFrom), ("b", MountFrom), ("c", Cache)],
            ),
        ];
        for (dest, from, cached, want) in cases {
            let got = candidates(dest, &strs(from), &strs(cached));
            let want: Vec<Candidate> = want
                .iter()
                .map(|(r, o)| Candidate {
                    repo: r.to_string(),
                    origin: *o,
                })
                .collect();
            assert_eq!(got, want, "{dest} {from:?} {cached:?}");
        }
    }

    #[test]
    fn record_moves_to_front_and_forget_removes() {
        let mut c = BlobInfoCache::default();
        c.record("r:5000", &d(1), "a");
        c.record("r:5000", &d(1), "b");
        c.record("r:5000", &d(1), "a");
        assert_eq!(c.repos("r:5000", &d(1)), ["a", "b"]);
        assert!(c.repos("other:5000", &d(1)).is_empty(), "keyed by host");
        for r in ["c", "d", "e", "f"] {
            c.record("r:5000", &d(1), r);
        }
        assert_eq!(c.repos("r:5000", &d(1)), ["f", "e", "d", "c"]);
        c.forget("r:5000", &d(1), "e");
        assert_eq!(c.repos("r:5000", &d(1)), ["f", "d", "c"]);
        for r in ["f", "d", "c"] {
            c.forget("r:5000", &d(1), r);
        }
        assert!(c.repos("r:5000", &d(1)).is_empty());
        assert!(!String::from_utf8(c.to_json()).unwrap().contains(d(1).hex()));
    }

    #[test]
    fn round_trip_and_bounded() {
        let mut c = BlobInfoCache::default();
        for i in 0..(MAX_REGISTRIES + 3) {
            c.record(&format!("h{i}.example:5000"), &d(1), "a/b");
        }
        let (back, note) = BlobInfoCache::parse(&c.to_json());
        assert_eq!(note, None);
        assert_eq!(back.registries.len(), MAX_REGISTRIES);
        assert_eq!(
            back.repos(&format!("h{}.example:5000", MAX_REGISTRIES + 2), &d(1)),
            ["a/b"]
        );
        assert!(
            back.repos("h0.example:5000", &d(1)).is_empty(),
            "oldest dropped"
        );
    }

    #[test]
    fn untrusted_entries_are_dropped_and_counted() {
        let good = d(2);
        let cases: &[(&str, Option<&str>, usize)] = &[
            ("not json", Some("invalid JSON"), 0),
            (r#"{"version":2,"registries":[]}"#, Some("version 2"), 0),
            (r#"{"version":1,"registries":[]}"#, None, 0),
            (
                &format!(
                    r#"{{"version":1,"registries":[{{"host":"r:5000","blobs":[{{"digest":"{good}","repos":["ok","../etc","UP","ok"]}}]}}]}}"#
                ),
                Some("had 3 invalid entries"),
                1,
            ),
            (
                &format!(
                    r#"{{"version":1,"registries":[{{"host":"r:5000/x","blobs":[{{"digest":"{good}","repos":["ok"]}}]}}]}}"#
                ),
                Some("had 2 invalid entries"),
                0,
            ),
            (
                r#"{"version":1,"registries":[{"host":"r:5000","blobs":[{"digest":"sha256:zz","repos":["ok"]}]}]}"#,
                Some("had 1 invalid entries"),
                0,
            ),
        ];
        for (text, note, n) in cases {
            let (c, got) = BlobInfoCache::parse(text.as_bytes());
            match note {
                Some(want) => assert!(
                    got.as_deref().unwrap_or("").contains(want),
                    "{text}: {got:?}"
                ),
                None => assert_eq!(got, None, "{text}"),
            }
            assert_eq!(c.repos("r:5000", &good).len(), *n, "{text}");
        }
    }

    #[test]
    fn load_ignores_what_it_cannot_trust_and_save_is_private() {
        let t = std::env::temp_dir().join(format!("blobinfo-{}", rand::random::<u64>()));
        let p = path_in(&t.join("sub"));
        assert!(
            BlobInfoCache::load(&p).1.is_none(),
            "missing file: empty, no note"
        );
        let mut c = BlobInfoCache::default();
        c.record("r:5000", &d(3), "team/app");
        c.save(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        assert_eq!(
            BlobInfoCache::load(&p).0.repos("r:5000", &d(3)),
            ["team/app"]
        );
        std::fs::write(&p, vec![b' '; MAX_FILE as usize + 1]).unwrap();
        assert!(BlobInfoCache::load(&p).1.unwrap().contains("larger"));
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(BlobInfoCache::load(&p)
            .1
            .unwrap()
            .contains("not a regular file"));
        std::fs::remove_dir_all(&t).unwrap();
    }
}
