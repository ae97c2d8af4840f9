//! Push and copy orchestration: idempotency checks first (a tag already at our digest means no
//! upload at all; an immutable tag at another digest is refused before anything is sent), blobs
//! in parallel (HEAD, then mount or whole upload), child manifests by digest, and the tagged
//! manifest last, only after every blob it names is confirmed present.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::TryStreamExt;

use super::blobinfo::Candidate;
use super::client::{BlobSource, Client, Mount, PutManifest};
use super::reference::Digest;
use super::source::{Blob, BlobLoc, Image, Manifest};
use super::types;
use crate::exit::{Failure, Result};
use crate::runner::{single_line, Runner};

/// Where an image goes.
pub struct Destination<'a> {
    /// The destination registry.
    pub client: &'a Client<'a>,
    /// Repository.
    pub repo: String,
    /// Tags to point at the image (may be empty: pushed by digest only).
    pub tags: Vec<String>,
    /// Tags must never move (ECR IMMUTABLE repositories, `immutable-tags`).
    pub immutable: bool,
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    /// The digest of the tagged manifest or index.
    pub digest: Digest,
    /// True when every tag already pointed at the digest and nothing was sent.
    pub already_present: bool,
    /// Mounts the registry answered with 202 (it does not hold the blob in that repository):
    /// (blob, repository), so that a cache can forget them.
    pub refused_mounts: Vec<(Digest, String)>,
}

/// Per blob, the repositories of the destination registry to try mounting it from, in order
/// ([`super::blobinfo::candidates`]); a blob without an entry is checked and uploaded.
pub type MountPlan = HashMap<Digest, Vec<Candidate>>;

/// Push (or copy) `image` to `dst`. `mounts` names, per blob, repositories of the destination
/// registry that may hold it.
pub async fn transfer(
    runner: &Runner,
    image: &Image,
    dst: &Destination<'_>,
    src: &BlobSource<'_>,
    mounts: &MountPlan,
    parallelism: usize,
) -> Result<Outcome> {
    let c = dst.client;
    let digest = image.top.digest.clone();
    // 1. Tags first: idempotent re-runs and immutable conflicts are decided before any upload.
    let mut pending_tags = Vec::new();
    for tag in &dst.tags {
        match c.manifest_digest(&dst.repo, tag, true).await? {
            Some(d) if d == digest => {
                runner.info(&format!("tag {tag} already points at {digest}"));
            }
            Some(other) if dst.immutable => {
                return Err(immutable_conflict(c, &dst.repo, tag, &other, &digest));
            }
            Some(other) => {
                runner.info(&format!(
                    "tag {tag} points at {other}; it will be moved to {digest}"
                ));
                pending_tags.push(tag.clone());
            }
            None => pending_tags.push(tag.clone()),
        }
    }
    if !dst.tags.is_empty() && pending_tags.is_empty() {
        runner.info("every tag already points at this image: nothing to upload");
        return Ok(Outcome {
            digest,
            already_present: true,
            refused_mounts: Vec::new(),
        });
    }
    if dst.tags.is_empty()
        && c.manifest_digest(&dst.repo, digest.as_str(), true)
            .await?
            .is_some()
    {
        runner.info("the image is already present: nothing to upload");
        return Ok(Outcome {
            digest,
            already_present: true,
            refused_mounts: Vec::new(),
        });
    }
    // 2. Blobs, in parallel, largest first: with more blobs than `parallelism`, a big layer
    // started last would run alone at the end.
    let refused = std::sync::Mutex::new(Vec::new());
    futures::stream::iter(
        largest_first(&image.blobs)
            .into_iter()
            .map(Ok::<&Blob, Failure>),
    )
    .try_for_each_concurrent(parallelism.max(1), |b| {
        let cands = mounts.get(&b.digest).map_or(&[][..], Vec::as_slice);
        ensure_blob(runner, c, &dst.repo, b, src, cands, &refused)
    })
    .await?;
    // 3. Child manifests by digest, leaves first; then the tagged one.
    for m in &image.children {
        put_checked(
            runner,
            c,
            &dst.repo,
            m.digest.as_str(),
            m,
            image,
            src,
            dst.immutable,
        )
        .await?;
    }
    if pending_tags.is_empty() {
        put_checked(
            runner,
            c,
            &dst.repo,
            digest.as_str(),
            &image.top,
            image,
            src,
            false,
        )
        .await?;
    }
    for tag in &pending_tags {
        put_checked(
            runner,
            c,
            &dst.repo,
            tag,
            &image.top,
            image,
            src,
            dst.immutable,
        )
        .await?;
        runner.info(&format!("tagged {}/{}:{tag} -> {digest}", c.host, dst.repo));
    }
    Ok(Outcome {
        digest,
        already_present: false,
        refused_mounts: refused.into_inner().expect("refused mounts"),
    })
}

fn immutable_conflict(
    c: &Client<'_>,
    repo: &str,
    tag: &str,
    existing: &Digest,
    ours: &Digest,
) -> Failure {
    Failure::refused(format!(
        "immutable tag {}/{repo}:{tag} already points at {existing}, not at this image {ours}: refusing to move it (nothing was uploaded, nothing deleted); push under a new tag",
        c.host
    ))
}

/// The upload order: largest first (ties keep the image's order).
fn largest_first(blobs: &[Blob]) -> Vec<&Blob> {
    let mut v: Vec<&Blob> = blobs.iter().collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.size));
    v
}

async fn ensure_blob(
    runner: &Runner,
    c: &Client<'_>,
    repo: &str,
    b: &Blob,
    src: &BlobSource<'_>,
    candidates: &[Candidate],
    refused: &std::sync::Mutex<Vec<(Digest, String)>>,
) -> Result<()> {
    // A mount is tried first when a repository of this registry may hold the blob: one request,
    // whether or not the blob is already linked into the destination repository.
    for (i, cand) in candidates.iter().enumerate() {
        let answer = c.mount(repo, &b.digest, &cand.repo).await.map_err(|f| {
            f.context(format!(
                "mounting {} from {} (named by {}; drop it there, or give these credentials pull on it)",
                b.digest,
                cand.repo,
                cand.origin.describe()
            ))
        })?;
        match answer {
            Mount::Mounted => {
                c.stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
                runner.info(&format!(
                    "mounted {} from {} (named by {})",
                    b.digest,
                    cand.repo,
                    cand.origin.describe()
                ));
                return Ok(());
            }
            Mount::Upload(session) => {
                refused
                    .lock()
                    .expect("refused mounts")
                    .push((b.digest.clone(), cand.repo.clone()));
                let last = i + 1 == candidates.len();
                runner.info(&format!(
                    "registry answered 202 (upload instead) to mounting {} from {} (named by {}): the protocol's answer when that repository does not hold it; {}",
                    b.digest,
                    cand.repo,
                    cand.origin.describe(),
                    if last {
                        "uploading it into the session the registry opened"
                    } else {
                        "trying the next repository"
                    }
                ));
                if last {
                    return c.upload_into(repo, b, src, Some(session)).await;
                }
                c.cancel_upload(repo, &session).await;
            }
        }
    }
    if c.blob_exists(repo, &b.digest).await? {
        c.stats.blobs_present.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    c.upload(repo, b, src).await
}

#[allow(clippy::too_many_arguments)]
async fn put_checked(
    runner: &Runner,
    c: &Client<'_>,
    repo: &str,
    reference: &str,
    m: &Manifest,
    image: &Image,
    src: &BlobSource<'_>,
    immutable: bool,
) -> Result<()> {
    for round in 0..2 {
        match c.put_manifest(repo, reference, m).await? {
            PutManifest::Ok => return Ok(()),
            PutManifest::BlobUnknown if round == 0 => {
                runner.info(&format!(
                    "registry says a blob of manifest {} is missing: checking and uploading again",
                    m.digest
                ));
                for d in &m.blobs {
                    if let Some(b) = image.blobs.iter().find(|b| &b.digest == d) {
                        if !c.blob_exists(repo, d).await? {
                            c.upload(repo, b, src).await?;
                        }
                    }
                }
            }
            PutManifest::BlobUnknown => {
                return Err(Failure::runtime(format!(
                    "registry still reports a missing blob for manifest {} after re-uploading",
                    m.digest
                )))
            }
            PutManifest::TagImmutable(text) => {
                return match c.manifest_digest(repo, reference, true).await? {
                    Some(d) if d == m.digest => Ok(()),
                    Some(d) => Err(immutable_conflict(c, repo, reference, &d, &m.digest)),
                    None => Err(Failure::refused(format!(
                        "registry refused tag {}: {text}",
                        single_line(reference)
                    ))),
                };
            }
        }
    }
    let _ = immutable;
    Ok(())
}

/// Read an image (manifest or whole index) from a registry.
pub async fn fetch_remote(src: &Client<'_>, repo: &str, reference: &str) -> Result<Image> {
    let top = src.get_manifest(repo, reference, false).await?;
    let mut fetched: HashMap<Digest, Manifest> = HashMap::new();
    let mut queue = vec![top.clone()];
    while let Some(m) = queue.pop() {
        let parsed = types::parse_manifest(&m.bytes, &m.media_type)?;
        for d in parsed.children {
            if fetched.contains_key(&d.digest) {
                continue;
            }
            if fetched.len() > 256 {
                return Err(Failure::runtime(
                    "source index names more than 256 manifests",
                ));
            }
            let mut child = src.get_manifest(repo, d.digest.as_str(), false).await?;
            if child.media_type.is_empty() || !types::is_manifest(&child.media_type) {
                child.media_type = d.media_type.clone();
            }
            fetched.insert(d.digest.clone(), child.clone());
            queue.push(child);
        }
    }
    Image::assemble(
        top,
        &mut |d| {
            fetched
                .get(&d.digest)
                .cloned()
                .ok_or_else(|| Failure::runtime(format!("manifest {} was not fetched", d.digest)))
        },
        &mut |_| Ok(BlobLoc::Remote),
    )
}

/// Run `fut` while printing one progress line every `every` (runners have no TTY).
pub async fn with_progress<T>(
    runner: &Runner,
    c: &Client<'_>,
    total_bytes: u64,
    total_blobs: usize,
    every: Duration,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start + every, every);
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = tick.tick() => {
                let s = &c.stats;
                let sent = s.bytes_sent.load(Ordering::Relaxed);
                let done = s.blobs_uploaded.load(Ordering::Relaxed)
                    + s.blobs_present.load(Ordering::Relaxed)
                    + s.blobs_mounted.load(Ordering::Relaxed);
                let secs = start.elapsed().as_secs_f64().max(0.001);
                runner.info(&format!(
                    "progress: {} sent of {} ({:.0}%), {}/s, blobs {done}/{total_blobs} done",
                    human(sent),
                    human(total_bytes),
                    if total_bytes == 0 { 100.0 } else { sent as f64 * 100.0 / total_bytes as f64 },
                    human((sent as f64 / secs) as u64),
                ));
            }
        }
    }
}

/// `123.4 MiB`
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_start_with_the_largest_blob() {
        let blob = |n: u8, size: u64| Blob {
            digest: Digest::of(&[n]),
            size,
            loc: BlobLoc::Remote,
        };
        let cases: &[(&[u64], &[u64])] = &[
            (&[], &[]),
            (&[10, 500, 3], &[500, 10, 3]),
            (&[7, 7, 9, 7], &[9, 7, 7, 7]),
        ];
        for (sizes, want) in cases {
            let blobs: Vec<Blob> = sizes
                .iter()
                .enumerate()
                .map(|(i, s)| blob(i as u8, *s))
                .collect();
            let got: Vec<u64> = largest_first(&blobs).iter().map(|b| b.size).collect();
            assert_eq!(&got, want);
        }
        // ties keep the image's order
        let blobs = vec![blob(1, 5), blob(2, 5)];
        assert_eq!(largest_first(&blobs)[0].digest, Digest::of(&[1]));
    }
}
