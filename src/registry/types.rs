//! OCI and Docker media types, descriptors, and the one manifest parser (index or image manifest).

use serde::Deserialize;

use super::reference::Digest;
use crate::exit::{Failure, Result};
use crate::runner::single_line;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header for manifest reads.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// True for index / manifest-list media types.
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// True for any manifest media type we push.
pub fn is_manifest(mt: &str) -> bool {
    matches!(mt, OCI_INDEX | OCI_MANIFEST | DOCKER_LIST | DOCKER_MANIFEST)
}

/// Layers that must not be pushed (foreign / non-distributable).
pub fn is_foreign(mt: &str) -> bool {
    mt.contains("foreign") || mt.contains("nondistributable")
}

/// A content descriptor.
#[derive(Debug, Clone)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// `org.opencontainers.image.ref.name` annotation (layout index entries).
    pub ref_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDesc {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<RawDesc>>,
    #[serde(default)]
    config: Option<RawDesc>,
    #[serde(default)]
    layers: Option<Vec<RawDesc>>,
}

/// A parsed manifest: its effective media type, child manifests (index) and blobs (manifest).
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The media type (from the document, else from `hint`).
    pub media_type: String,
    /// Child manifests (for an index).
    pub children: Vec<Descriptor>,
    /// Config + layers (for an image manifest).
    pub blobs: Vec<Descriptor>,
}

fn desc(r: RawDesc) -> Result<Descriptor> {
    let digest = Digest::parse("manifest", &r.digest).map_err(|_| {
        Failure::runtime(format!(
            "manifest names a bad digest `{}`",
            single_line(&r.digest)
        ))
    })?;
    if r.size < 0 {
        return Err(Failure::runtime(format!(
            "descriptor {digest} has a negative size"
        )));
    }
    Ok(Descriptor {
        media_type: r.media_type,
        digest,
        size: r.size as u64,
        ref_name: r
            .annotations
            .and_then(|a| a.get("org.opencontainers.image.ref.name").cloned()),
    })
}

/// Parse a manifest or index. `hint` is the media type from a descriptor or `Content-Type`.
pub fn parse_manifest(bytes: &[u8], hint: &str) -> Result<Parsed> {
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| Failure::runtime(format!("manifest is not valid JSON: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(Failure::runtime(
            "only schemaVersion 2 manifests are supported",
        ));
    }
    let media_type = match raw.media_type.filter(|m| !m.is_empty()) {
        Some(m) => m,
        None if raw.manifests.is_some() => OCI_INDEX.to_string(),
        None if is_manifest(hint) => hint.to_string(),
        None => OCI_MANIFEST.to_string(),
    };
    if !is_manifest(&media_type) {
        return Err(Failure::runtime(format!(
            "unsupported manifest media type `{}`",
            single_line(&media_type)
        )));
    }
    let mut p = Parsed {
        media_type: media_type.clone(),
        children: Vec::new(),
        blobs: Vec::new(),
    };
    if is_index(&media_type) {
        for d in raw.manifests.unwrap_or_default() {
            let mut d = desc(d)?;
            if d.media_type.is_empty() {
                d.media_type = OCI_MANIFEST.into();
            }
            p.children.push(d);
        }
    } else {
        let c = raw
            .config
            .ok_or_else(|| Failure::runtime("image manifest without a config"))?;
        p.blobs.push(desc(c)?);
        for l in raw.layers.unwrap_or_default() {
            p.blobs.push(desc(l)?);
        }
    }
    Ok(p)
}
