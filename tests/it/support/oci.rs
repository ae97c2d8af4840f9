//! Build OCI image layouts, OCI archives and `docker save` tarballs without a daemon, from
//! deterministic pseudo-random bytes, for the ecr-push tests.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Deterministic incompressible bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut ctr = 0u64;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        h.update(ctr.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        ctr += 1;
    }
    out.truncate(len);
    out
}

pub fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Write a blob into `layout/blobs/sha256/`; returns (digest, size).
pub fn put_blob(layout: &Path, b: &[u8]) -> (String, u64) {
    let d = digest(b);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&d[7..]), b).unwrap();
    (d, b.len() as u64)
}

/// A descriptor as JSON.
pub fn desc(mt: &str, d: &(String, u64)) -> serde_json::Value {
    serde_json::json!({"mediaType": mt, "digest": d.0, "size": d.1})
}

/// Write one image manifest (config + layers of the given sizes) into the layout; returns the
/// manifest descriptor (digest, size) and every blob digest.
pub fn put_image(
    layout: &Path,
    seed: u64,
    layer_sizes: &[usize],
    arch: &str,
) -> ((String, u64), Vec<String>) {
    let mut blobs = Vec::new();
    let layers: Vec<serde_json::Value> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let d = put_blob(layout, &bytes(seed * 1000 + i as u64, *n));
            blobs.push(d.0.clone());
            desc("application/vnd.oci.image.layer.v1.tar+gzip", &d)
        })
        .collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"seed": seed.to_string()}}
    });
    let c = put_blob(layout, &serde_json::to_vec(&config).unwrap());
    blobs.insert(0, c.0.clone());
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &c),
        "layers": layers,
    });
    (put_blob(layout, &serde_json::to_vec(&m).unwrap()), blobs)
}

fn write_index(layout: &Path, entries: &[serde_json::Value]) {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}

/// A built layout.
pub struct Layout {
    pub dir: PathBuf,
    /// Digest of what gets tagged (manifest or index).
    pub digest: String,
    /// Every blob (configs and layers).
    pub blobs: Vec<String>,
}

/// A single-platform image layout with entry `ref_name`.
pub fn single(dir: &Path, seed: u64, layer_sizes: &[usize], ref_name: &str) -> Layout {
    std::fs::create_dir_all(dir).unwrap();
    let (m, blobs) = put_image(dir, seed, layer_sizes, "amd64");
    let mut e = desc("application/vnd.oci.image.manifest.v1+json", &m);
    e["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": ref_name});
    write_index(dir, &[e]);
    Layout {
        dir: dir.to_path_buf(),
        digest: m.0,
        blobs,
    }
}

/// A two-platform index (amd64, arm64) sharing one layer, as entry `ref_name`.
pub fn multi(dir: &Path, seed: u64, ref_name: &str) -> Layout {
    std::fs::create_dir_all(dir).unwrap();
    let (a, mut blobs) = put_image(dir, seed, &[3000, 2000], "amd64");
    let (b, b_blobs) = put_image(dir, seed + 1, &[2500], "arm64");
    blobs.extend(b_blobs);
    let mut ma = desc("application/vnd.oci.image.manifest.v1+json", &a);
    ma["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let mut mb = desc("application/vnd.oci.image.manifest.v1+json", &b);
    mb["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux"});
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [ma, mb]});
    let i = put_blob(dir, &serde_json::to_vec(&idx).unwrap());
    let mut e = desc("application/vnd.oci.image.index.v1+json", &i);
    e["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": ref_name});
    write_index(dir, &[e]);
    Layout {
        dir: dir.to_path_buf(),
        digest: i.0,
        blobs,
    }
}

/// Tar a directory's files (relative paths) into `out`.
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

/// A `docker save` style tarball (legacy layout: `<id>/layer.tar`, `<hex>.json`,
/// `manifest.json`) with uncompressed layers. Returns the uncompressed layer digests.
pub fn docker_archive(out: &Path, seed: u64, layer_sizes: &[usize], repo_tag: &str) -> Vec<String> {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut diff_ids = Vec::new();
    let mut layer_paths = Vec::new();
    for (i, n) in layer_sizes.iter().enumerate() {
        // Compressible content, so that compression is visible.
        let mut data = bytes(seed * 77 + i as u64, n / 4);
        data.extend(std::iter::repeat_n(b'x', n - n / 4));
        let d = digest(&data);
        let p = format!("{}/layer.tar", &d[7..19]);
        add(&p, &data);
        diff_ids.push(d);
        layer_paths.push(p);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Labels": {"seed": seed.to_string()}}
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let cname = format!("{}.json", &digest(&cb)[7..]);
    add(&cname, &cb);
    let manifest =
        serde_json::json!([{"Config": cname, "RepoTags": [repo_tag], "Layers": layer_paths}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
    diff_ids
}
