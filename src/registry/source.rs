//! Image sources on disk: an OCI image layout directory, an OCI archive (a tar of a layout), or a
//! `docker save` tarball. Each becomes an [`Image`]: the manifests (small, held in memory, digests
//! verified) and the blobs as byte ranges of files, streamed at upload time.
//!
//! `docker save` layers are plain tars: each is gzip-compressed once (in parallel) into a cache
//! directory keyed by its uncompressed digest (the config's `diff_id`, verified while compressing)
//! so that a re-run pushes the very same bytes and digest without compressing again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::reference::{valid_tag, Digest};
use super::types::{self, Descriptor};
use crate::exit::{Failure, Result};
use crate::runner::single_line;

/// Manifests larger than this are refused (the distribution registry's limit is 4 MiB).
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// Where a blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLoc {
    /// A byte range of a local file.
    File {
        /// The file.
        path: PathBuf,
        /// Start of the blob.
        offset: u64,
    },
    /// In a source registry (copy).
    Remote,
}

/// One blob to transfer.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Where to read it.
    pub loc: BlobLoc,
}

/// A manifest or index, with its exact bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// Its media type (sent as `Content-Type`).
    pub media_type: String,
    /// The exact bytes (their digest is what gets deployed).
    pub bytes: Vec<u8>,
    /// Blobs this manifest names directly (config + layers; empty for an index).
    pub blobs: Vec<Digest>,
}

/// Everything needed to push one image or index.
#[derive(Debug, Clone)]
pub struct Image {
    /// What gets tagged: a manifest or an index.
    pub top: Manifest,
    /// Manifests an index names (pushed by digest, before the index), children before parents.
    pub children: Vec<Manifest>,
    /// Every distinct blob, in first-seen order.
    pub blobs: Vec<Blob>,
}

impl Image {
    /// Total bytes of all blobs.
    pub fn total_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
    /// Assemble an image from a top manifest, reading children and blob locations through
    /// `fetch` (local files or a registry).
    pub fn assemble(
        top: Manifest,
        fetch_child: &mut dyn FnMut(&Descriptor) -> Result<Manifest>,
        locate: &mut dyn FnMut(&Descriptor) -> Result<BlobLoc>,
    ) -> Result<Image> {
        let mut children = Vec::new();
        let mut blobs = Vec::new();
        let mut seen = BTreeSet::new();
        let mut top = top;
        collect(
            &mut top,
            0,
            fetch_child,
            locate,
            &mut children,
            &mut blobs,
            &mut seen,
        )?;
        Ok(Image {
            top,
            children,
            blobs,
        })
    }
}

fn collect(
    m: &mut Manifest,
    depth: usize,
    fetch_child: &mut dyn FnMut(&Descriptor) -> Result<Manifest>,
    locate: &mut dyn FnMut(&Descriptor) -> Result<BlobLoc>,
    children: &mut Vec<Manifest>,
    blobs: &mut Vec<Blob>,
    seen: &mut BTreeSet<Digest>,
) -> Result<()> {
    if depth > 4 {
        return Err(Failure::runtime("image index nesting deeper than 4 levels"));
    }
    let parsed = types::parse_manifest(&m.bytes, &m.media_type)?;
    m.media_type = parsed.media_type.clone();
    for d in &parsed.children {
        let mut child = fetch_child(d)?;
        if child.digest != d.digest {
            return Err(Failure::runtime(format!(
                "manifest {} does not match its digest (got {})",
                d.digest, child.digest
            )));
        }
        collect(
            &mut child,
            depth + 1,
            fetch_child,
            locate,
            children,
            blobs,
            seen,
        )?;
        if !children.iter().any(|c: &Manifest| c.digest == child.digest) {
            children.push(child);
        }
    }
    for d in &parsed.blobs {
        m.blobs.push(d.digest.clone());
        if types::is_foreign(&d.media_type) {
            continue;
        }
        if seen.insert(d.digest.clone()) {
            blobs.push(Blob {
                digest: d.digest.clone(),
                size: d.size,
                loc: locate(d)?,
            });
        }
    }
    Ok(())
}

/// What kind of source a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `oci:DIR[:ref]`
    OciLayout,
    /// `oci-archive:FILE[:ref]`
    OciArchive,
    /// `docker-archive:FILE[:repo:tag]`
    DockerArchive,
}

/// A parsed `--source` for `push`.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Kind (explicit prefix or detected).
    pub kind: SourceKind,
    /// The path.
    pub path: PathBuf,
    /// `:ref` selecting an entry.
    pub reference: Option<String>,
}

fn bad_source(v: &str, rule: &str) -> Failure {
    Failure::usage("source", format!("`{}` {rule}", single_line(v)))
}

/// Parse `--source`: `[oci:|oci-archive:|docker-archive:]PATH[:ref]`; the kind is detected when no
/// prefix is given. Only local checks (the path exists).
pub fn parse_source(v: &str) -> Result<SourceSpec> {
    if v.is_empty() {
        return Err(Failure::usage("source", "is empty"));
    }
    if v.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad_source(v, "contains control characters"));
    }
    let (explicit, rest) = if let Some(r) = v.strip_prefix("oci:") {
        (Some(SourceKind::OciLayout), r)
    } else if let Some(r) = v.strip_prefix("oci-archive:") {
        (Some(SourceKind::OciArchive), r)
    } else if let Some(r) = v.strip_prefix("docker-archive:") {
        (Some(SourceKind::DockerArchive), r)
    } else {
        (None, v)
    };
    // The path as given wins; otherwise split off `:ref` (a ref may itself contain `:`, e.g. a
    // docker archive's `repo:tag`, so try every split from the left).
    let mut candidates = vec![(rest.to_string(), None)];
    for (i, _) in rest.match_indices(':') {
        candidates.push((rest[..i].to_string(), Some(rest[i + 1..].to_string())));
    }
    let (path, reference) = candidates
        .into_iter()
        .find(|(p, _)| !p.is_empty() && Path::new(p).exists())
        .ok_or_else(|| bad_source(v, "does not exist (expected an OCI layout directory, an OCI archive or a docker save tarball)"))?;
    let path = PathBuf::from(path);
    if let Some(r) = &reference {
        if r.is_empty() || r.len() > 256 || r.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad_source(v, "has an empty or malformed `:ref` part"));
        }
    }
    let kind = match explicit {
        Some(k) => k,
        None => detect(&path).map_err(|m| bad_source(v, &m))?,
    };
    match kind {
        SourceKind::OciLayout if !path.join("oci-layout").is_file() => {
            return Err(bad_source(
                v,
                "is not an OCI image layout (no `oci-layout` file)",
            ))
        }
        SourceKind::OciArchive | SourceKind::DockerArchive if !path.is_file() => {
            return Err(bad_source(v, "is not a file"))
        }
        _ => {}
    }
    Ok(SourceSpec {
        kind,
        path,
        reference,
    })
}

fn detect(path: &Path) -> std::result::Result<SourceKind, String> {
    if path.is_dir() {
        return if path.join("oci-layout").is_file() {
            Ok(SourceKind::OciLayout)
        } else {
            Err("is a directory but not an OCI image layout (no `oci-layout` file)".into())
        };
    }
    let mut f = File::open(path).map_err(|e| format!("cannot be opened: {e}"))?;
    let mut magic = [0u8; 2];
    if f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b] {
        return Err(
            "is gzip-compressed: decompress it first (`gunzip`), archives are read in place".into(),
        );
    }
    let index = TarIndex::read(path).map_err(|e| format!("is not a readable tar archive: {e}"))?;
    if index.entries.contains_key("manifest.json") {
        Ok(SourceKind::DockerArchive)
    } else if index.entries.contains_key("index.json") {
        Ok(SourceKind::OciArchive)
    } else {
        Err(
            "is a tar archive with neither `index.json` (OCI) nor `manifest.json` (docker save)"
                .into(),
        )
    }
}

/// Byte ranges of the regular files of a tar archive.
struct TarIndex {
    path: PathBuf,
    entries: BTreeMap<String, (u64, u64)>,
}

fn clean(p: &str) -> String {
    let mut s = p.trim_start_matches("./").to_string();
    while s.contains("//") {
        s = s.replace("//", "/");
    }
    s
}

impl TarIndex {
    fn read(path: &Path) -> std::io::Result<TarIndex> {
        let f = File::open(path)?;
        let mut ar = tar::Archive::new(f);
        let mut entries = BTreeMap::new();
        for e in ar.entries_with_seek()? {
            let e = e?;
            if e.header().entry_type().is_file() {
                let name = clean(&e.path()?.to_string_lossy());
                entries.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            entries,
        })
    }
    fn get(&self, name: &str) -> Result<(u64, u64)> {
        self.entries.get(&clean(name)).copied().ok_or_else(|| {
            Failure::runtime(format!(
                "archive {} has no entry `{}`",
                self.path.display(),
                single_line(name)
            ))
        })
    }
    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (off, len) = self.get(name)?;
        read_range(&self.path, off, len)
    }
}

fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    if len > MAX_MANIFEST {
        return Err(Failure::runtime(format!(
            "{} is larger than the 4 MiB manifest limit",
            path.display()
        )));
    }
    let f = File::open(path)
        .map_err(|e| Failure::runtime(format!("cannot open {}: {e}", path.display())))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display())))?;
    Ok(buf)
}

/// Reads blobs of an OCI layout (directory or archive).
trait Layout {
    fn read_file(&self, name: &str) -> Result<Vec<u8>>;
    fn blob_loc(&self, d: &Descriptor) -> Result<BlobLoc>;
}

struct DirLayout(PathBuf);
impl Layout for DirLayout {
    fn read_file(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.0.join(name);
        let len = std::fs::metadata(&p)
            .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", p.display())))?
            .len();
        read_range(&p, 0, len)
    }
    fn blob_loc(&self, d: &Descriptor) -> Result<BlobLoc> {
        let p = self.0.join("blobs/sha256").join(d.digest.hex());
        let len = std::fs::metadata(&p)
            .map_err(|_| Failure::runtime(format!("blob {} is missing from the layout", d.digest)))?
            .len();
        if len != d.size {
            return Err(Failure::runtime(format!(
                "blob {} is {len} bytes on disk but {} in its descriptor",
                d.digest, d.size
            )));
        }
        Ok(BlobLoc::File { path: p, offset: 0 })
    }
}

impl Layout for TarIndex {
    fn read_file(&self, name: &str) -> Result<Vec<u8>> {
        self.read_small(name)
    }
    fn blob_loc(&self, d: &Descriptor) -> Result<BlobLoc> {
        let (off, len) = self
            .get(&format!("blobs/sha256/{}", d.digest.hex()))
            .map_err(|_| {
                Failure::runtime(format!("blob {} is missing from the archive", d.digest))
            })?;
        if len != d.size {
            return Err(Failure::runtime(format!(
                "blob {} is {len} bytes in the archive but {} in its descriptor",
                d.digest, d.size
            )));
        }
        Ok(BlobLoc::File {
            path: self.path.clone(),
            offset: off,
        })
    }
}

fn manifest_from_layout(l: &dyn Layout, d: &Descriptor) -> Result<Manifest> {
    if d.size > MAX_MANIFEST {
        return Err(Failure::runtime(format!(
            "manifest {} is larger than 4 MiB",
            d.digest
        )));
    }
    let bytes = l.read_file(&format!("blobs/sha256/{}", d.digest.hex()))?;
    let digest = Digest::of(&bytes);
    if digest != d.digest {
        return Err(Failure::runtime(format!(
            "manifest blob {} does not match its digest (content is {digest})",
            d.digest
        )));
    }
    Ok(Manifest {
        digest,
        media_type: d.media_type.clone(),
        bytes,
        blobs: Vec::new(),
    })
}

fn load_layout(l: &dyn Layout, reference: Option<&str>, what: &str) -> Result<Image> {
    let index_bytes = l.read_file("index.json")?;
    let index = types::parse_manifest(&index_bytes, types::OCI_INDEX)?;
    let entries = index.children;
    let chosen = match reference {
        Some(r) => {
            let hits: Vec<&Descriptor> = entries
                .iter()
                .filter(|d| d.ref_name.as_deref() == Some(r) || d.digest.as_str() == r)
                .collect();
            match hits.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(Failure::usage(
                        "source",
                        format!(
                            "{what} has no entry `{}` (entries: {})",
                            single_line(r),
                            names(&entries)
                        ),
                    ))
                }
                _ => {
                    return Err(Failure::usage(
                        "source",
                        format!("{what} has several entries named `{}`", single_line(r)),
                    ))
                }
            }
        }
        None => match entries.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(Failure::usage(
                    "source",
                    format!("{what} is empty (index.json lists no image)"),
                ))
            }
            _ => {
                return Err(Failure::usage(
                    "source",
                    format!(
                        "{what} holds several images: select one with `:ref` (entries: {})",
                        names(&entries)
                    ),
                ))
            }
        },
    };
    let top = manifest_from_layout(l, &chosen)?;
    Image::assemble(top, &mut |d| manifest_from_layout(l, d), &mut |d| {
        l.blob_loc(d)
    })
}

fn names(entries: &[Descriptor]) -> String {
    entries
        .iter()
        .map(|d| single_line(d.ref_name.as_deref().unwrap_or(d.digest.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Load an image from a parsed source. `cache_dir` keeps compressed `docker save` layers;
/// `parallelism` bounds concurrent compression.
pub fn load(spec: &SourceSpec, cache_dir: &Path, parallelism: usize) -> Result<Image> {
    match spec.kind {
        SourceKind::OciLayout => load_layout(
            &DirLayout(spec.path.clone()),
            spec.reference.as_deref(),
            "the OCI layout",
        ),
        SourceKind::OciArchive => {
            let idx = TarIndex::read(&spec.path)
                .map_err(|e| Failure::runtime(format!("cannot read archive: {e}")))?;
            load_layout(&idx, spec.reference.as_deref(), "the OCI archive")
        }
        SourceKind::DockerArchive => load_docker(spec, cache_dir, parallelism),
    }
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct DockerConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

fn load_docker(spec: &SourceSpec, cache_dir: &Path, parallelism: usize) -> Result<Image> {
    let idx = TarIndex::read(&spec.path)
        .map_err(|e| Failure::runtime(format!("cannot read archive: {e}")))?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&idx.read_small("manifest.json")?)
        .map_err(|e| {
            Failure::runtime(format!(
                "manifest.json of the docker archive is not valid: {e}"
            ))
        })?;
    let entry = match (&spec.reference, entries.len()) {
        (None, 1) => &entries[0],
        (None, 0) => {
            return Err(Failure::usage(
                "source",
                "the docker archive holds no image",
            ))
        }
        (None, _) => {
            return Err(Failure::usage(
                "source",
                "the docker archive holds several images: select one with `:repo:tag`",
            ))
        }
        (Some(r), _) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| t == r))
            .ok_or_else(|| {
                Failure::usage(
                    "source",
                    format!(
                        "the docker archive has no image tagged `{}`",
                        single_line(r)
                    ),
                )
            })?,
    };
    let config_bytes = idx.read_small(&entry.config)?;
    let config: DockerConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
        Failure::runtime(format!(
            "image config of the docker archive is not valid: {e}"
        ))
    })?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(Failure::runtime(format!(
            "the docker archive lists {} layers but its config {} diff_ids",
            entry.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| {
        Failure::runtime(format!(
            "cannot create cache dir {}: {e}",
            cache_dir.display()
        ))
    })?;
    let jobs: Vec<(String, (u64, u64), Digest)> = entry
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(l, d)| Ok((l.clone(), idx.get(l)?, Digest::parse("source", d)?)))
        .collect::<Result<_>>()?;
    let results = run_bounded(jobs.len(), parallelism, |i| {
        let (_, (off, len), diff) = &jobs[i];
        compressed_layer(&idx.path, *off, *len, diff, cache_dir)
    })?;
    let config_digest = Digest::of(&config_bytes);
    let config_path = cache_dir.join(format!("config-{}.json", config_digest.hex()));
    write_atomic(&config_path, &config_bytes)?;
    let mut blobs = vec![Blob {
        digest: config_digest.clone(),
        size: config_bytes.len() as u64,
        loc: BlobLoc::File {
            path: config_path,
            offset: 0,
        },
    }];
    let mut layers = Vec::new();
    for (digest, size, path) in results {
        layers.push(serde_json::json!({
            "mediaType": types::DOCKER_LAYER_GZIP, "size": size, "digest": digest.as_str()
        }));
        if !blobs.iter().any(|b| b.digest == digest) {
            blobs.push(Blob {
                digest,
                size,
                loc: BlobLoc::File { path, offset: 0 },
            });
        }
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": types::DOCKER_MANIFEST,
        "config": {"mediaType": types::DOCKER_CONFIG, "size": config_bytes.len(), "digest": config_digest.as_str()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let blob_digests = blobs.iter().map(|b| b.digest.clone()).collect();
    Ok(Image {
        top: Manifest {
            digest: Digest::of(&bytes),
            media_type: types::DOCKER_MANIFEST.into(),
            bytes,
            blobs: blob_digests,
        },
        children: Vec::new(),
        blobs,
    })
}

/// Run `n` jobs on at most `parallelism` threads, results in job order.
fn run_bounded<T: Send>(
    n: usize,
    parallelism: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<T>>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..parallelism.clamp(1, n.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let r = job(i);
                *slots[i].lock().expect("slot") = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().expect("slot").expect("job ran"))
        .collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))
}

/// The gzip form of one `docker save` layer: from the cache, or compressed now (verifying the
/// uncompressed bytes against `diff_id`). Returns (digest, size, path).
fn compressed_layer(
    archive: &Path,
    offset: u64,
    len: u64,
    diff_id: &Digest,
    cache_dir: &Path,
) -> Result<(Digest, u64, PathBuf)> {
    let gz = cache_dir.join(format!("{}.tar.gz", diff_id.hex()));
    let meta = cache_dir.join(format!("{}.digest", diff_id.hex()));
    if let (Ok(m), Ok(d)) = (std::fs::metadata(&gz), std::fs::read_to_string(&meta)) {
        if let Some((digest, size)) = d.trim().split_once(' ') {
            if let (Ok(digest), Ok(size)) = (Digest::parse("cache", digest), size.parse::<u64>()) {
                if size == m.len() {
                    return Ok((digest, size, gz));
                }
            }
        }
    }
    let f = File::open(archive)?;
    let mut head = [0u8; 2];
    let already_gzip =
        len >= 2 && f.read_exact_at(&mut head, offset).is_ok() && head == [0x1f, 0x8b];
    let mut reader = std::io::BufReader::with_capacity(
        1 << 20,
        RangeReader {
            f,
            pos: offset,
            end: offset + len,
        },
    );
    let tmp = gz.with_extension(format!("tmp{}", std::process::id()));
    let out = File::create(&tmp)?;
    let mut hashing = HashWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        n: 0,
    };
    let mut diff_hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    if already_gzip {
        // Already compressed: the diff_id is of the decompressed stream, checked by the registry
        // client at pull time; we keep the bytes as they are.
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hashing.write_all(&buf[..n])?;
        }
    } else {
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .write(&mut hashing, flate2::Compression::fast());
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            diff_hasher.update(&buf[..n]);
            enc.write_all(&buf[..n])?;
        }
        enc.finish()?;
        let got = Digest::from_hasher(diff_hasher);
        if &got != diff_id {
            let _ = std::fs::remove_file(&tmp);
            return Err(Failure::runtime(format!(
                "a layer of the docker archive does not match its diff_id {diff_id} (content is {got}): the archive is corrupt"
            )));
        }
    }
    hashing.inner.flush()?;
    let size = hashing.n;
    let digest = Digest::from_hasher(hashing.hasher);
    std::fs::rename(&tmp, &gz)?;
    write_atomic(&meta, format!("{digest} {size}\n").as_bytes())?;
    Ok((digest, size, gz))
}

struct RangeReader {
    f: File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = (self.end - self.pos) as usize;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left);
        let n = self.f.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "archive truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The default cache directory for compressed `docker save` layers.
pub fn default_cache_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(x) = env("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("gitops-actions/ecr-push");
    }
    if let Some(h) = env("HOME") {
        return PathBuf::from(h).join(".cache/gitops-actions/ecr-push");
    }
    std::env::temp_dir().join("gitops-actions-ecr-push")
}

/// A `:ref` of a docker archive looks like `repo:tag`; of a layout, a plain tag-like name.
pub fn ref_looks_sane(r: &str) -> bool {
    valid_tag(r) || r.contains(':')
}
