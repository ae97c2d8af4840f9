//! Container images for `ecr-push`: strict references, image sources on disk, an OCI
//! distribution client, push/copy orchestration, and ECR specifics.
//!
//! - [`reference`]: `REGISTRY/REPO[:TAG][@sha256:...]` and digests, parsed strictly.
//! - [`types`]: media types, descriptors, the manifest parser.
//! - [`source`]: OCI layout directories, OCI archives, `docker save` tarballs (layers compressed
//!   once, in parallel, cached).
//! - [`client`]: the HTTP client (auth, retries, uploads, mounts, manifests, redirect rules).
//! - [`transfer`]: idempotent push/copy with the manifest last.
//! - [`blobinfo`]: where blobs went (the blob-info cache) and which repositories to mount from.
//! - [`ecr`]: ECR hosts, GetAuthorizationToken, repository creation.
//! - [`dockerconfig`]: credentials from `~/.docker/config.json` and writing a login entry.

pub mod blobinfo;
pub mod client;
pub mod dockerconfig;
pub mod ecr;
pub mod reference;
pub mod source;
pub mod transfer;
pub mod types;

pub use reference::{Digest, Reference};
