//! Image references (`REGISTRY/REPO[:TAG][@sha256:...]`) and digests, parsed strictly.
//!
//! The grammar is the distribution project's, narrowed where a looser form only invites mistakes:
//! the registry host is always explicit (no implicit Docker Hub), no userinfo, repository path
//! components are lowercase, tags are at most 128 characters and cannot start with `.` or `-`,
//! and the only accepted digest algorithm is `sha256` with 64 lowercase hex digits.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest as _, Sha256};

use crate::exit::{Failure, Result};
use crate::runner::single_line;

/// A content digest: `sha256:` + 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse and validate a digest string.
    pub fn parse(field: &str, v: &str) -> Result<Digest> {
        let ok = v.len() == 71
            && v.starts_with("sha256:")
            && v[7..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Digest(v.to_string()))
        } else {
            Err(Failure::usage(
                field,
                format!(
                    "`{}` is not a digest (`sha256:` followed by 64 lowercase hex digits)",
                    single_line(v)
                ),
            ))
        }
    }
    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }
    /// The digest a finished hasher computed.
    pub fn from_hasher(h: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }
    /// `sha256:...`
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (lowercased).
    pub registry: String,
    /// The repository path, e.g. `team/app`.
    pub repository: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest, when given.
    pub digest: Option<Digest>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn bad(field: &str, v: &str, rule: &str) -> Failure {
    Failure::usage(
        field,
        format!(
            "`{}` is not a valid image reference: {rule}",
            single_line(v)
        ),
    )
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Validate a tag given on its own (`--tag`).
pub fn tag(field: &str, t: &str) -> Result<()> {
    if valid_tag(t) {
        Ok(())
    } else {
        Err(Failure::usage(
            field,
            format!(
                "`{}` is not a valid tag (1-128 of A-Z a-z 0-9 _ . -, not starting with `.` or `-`)",
                single_line(t)
            ),
        ))
    }
}

/// One repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: `.`, `_`, `__` or one or more `-`
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A repository name on its own (no host, tag or digest): 1-255 characters of `/`-separated
/// lowercase components.
pub fn valid_repository(r: &str) -> bool {
    !r.is_empty() && r.len() <= 255 && r.split('/').all(valid_component)
}

/// Validate a repository name given on its own (`--mount-from`).
pub fn repository(field: &str, r: &str) -> Result<()> {
    if valid_repository(r) {
        Ok(())
    } else {
        Err(Failure::usage(
            field,
            format!(
                "`{}` is not a repository name (lowercase components like `team/app`, without the registry host, tag or digest)",
                single_line(r)
            ),
        ))
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A registry host: DNS labels (letters, digits, `-`, not at label edges) or an IPv4/bracketed
/// IPv6 address, optionally `:port`.
pub fn valid_host(h: &str) -> bool {
    let (host, port) = split_host_port(h);
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535) {
            return false;
        }
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Split `host:port` (IPv6 in brackets) into host and optional port.
pub fn split_host_port(h: &str) -> (&str, Option<&str>) {
    if h.starts_with('[') {
        match h.find(']') {
            Some(i) => {
                let rest = &h[i + 1..];
                (&h[..=i], rest.strip_prefix(':'))
            }
            None => (h, None),
        }
    } else {
        match h.rsplit_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (h, None),
        }
    }
}

/// True for `localhost`, 127.0.0.0/8 and `::1` (with or without a port).
pub fn is_loopback_host(h: &str) -> bool {
    crate::validate::is_loopback_host(split_host_port(h).0)
}

/// True for link-local and cloud metadata addresses and names (169.254.0.0/16, fe80::/10,
/// fd00:ec2::254, `metadata.google.internal`, `instance-data`).
pub fn is_metadata_or_link_local(host: &str) -> bool {
    let (host, _) = split_host_port(host);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if matches!(
        host.as_str(),
        "metadata.google.internal" | "metadata" | "instance-data" | "instance-data.ec2.internal"
    ) {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_link_local() || v4.octets() == [100, 100, 100, 200],
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            (s[0] & 0xffc0) == 0xfe80
                || v6 == "fd00:ec2::254".parse::<std::net::Ipv6Addr>().unwrap()
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
        Err(_) => false,
    }
}

impl Reference {
    /// Parse a full reference. `field` names the input for error messages.
    pub fn parse(field: &str, v: &str) -> Result<Reference> {
        if v.is_empty() {
            return Err(Failure::usage(
                field,
                "is empty: expected REGISTRY/REPOSITORY[:TAG][@sha256:...]",
            ));
        }
        if v.len() > 512 {
            return Err(bad(field, v, "longer than 512 characters"));
        }
        if v.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || !b.is_ascii())
        {
            return Err(bad(
                field,
                v,
                "contains whitespace, control or non-ASCII characters",
            ));
        }
        if v.contains("://") {
            return Err(bad(
                field,
                v,
                "write it without a scheme (`host/repo:tag`, not `https://...`)",
            ));
        }
        let (registry, rest) = match v.split_once('/') {
            Some(x) => x,
            None => {
                return Err(bad(
                    field,
                    v,
                    "the registry host is missing (write `REGISTRY/REPOSITORY:TAG`)",
                ))
            }
        };
        if registry.contains('@') {
            return Err(bad(
                field,
                v,
                "credentials (userinfo) in a reference are refused",
            ));
        }
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad(
                field,
                v,
                "the first path component must be a registry host (with a `.` or a `:port`)",
            ));
        }
        if !valid_host(registry) {
            return Err(bad(
                field,
                v,
                "the registry host is not a valid host[:port]",
            ));
        }
        let (name_tag, digest) = match rest.split_once('@') {
            Some((a, d)) => (a, Some(Digest::parse(field, d)?)),
            None => (rest, None),
        };
        let (repository, tag) = match name_tag.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    field,
                    v,
                    "the tag must be 1-128 of A-Z a-z 0-9 _ . - and not start with `.` or `-`",
                ));
            }
        }
        if repository.is_empty() || repository.len() > 255 {
            return Err(bad(
                field,
                v,
                "the repository name is empty or longer than 255 characters",
            ));
        }
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                field,
                v,
                "repository components must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
            ));
        }
        Ok(Reference {
            registry: registry.to_ascii_lowercase(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `REGISTRY/REPO@sha256:...`
    pub fn with_digest(&self, d: &Digest) -> String {
        format!("{}/{}@{}", self.registry, self.repository, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_forms() {
        let r = Reference::parse(
            "d",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1.2",
        )
        .unwrap();
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse("d", &format!("127.0.0.1:5000/a/b_c__d-e--f.g@{d}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.digest.unwrap().as_str(), d);
        let r = Reference::parse("d", "localhost/x").unwrap();
        assert!(r.tag.is_none());
        let r = Reference::parse("d", "[::1]:5000/x:latest").unwrap();
        assert_eq!(r.registry, "[::1]:5000");
        assert!(is_loopback_host(&r.registry));
    }

    #[test]
    fn refuses_the_hardening_vectors() {
        let long_tag = format!("r.io/app:{}", "a".repeat(129));
        let upper_digest = format!("r.io/app@sha256:{}", "A".repeat(64));
        let short_digest = format!("r.io/app@sha256:{}", "a".repeat(63));
        let md5 = format!("r.io/app@md5:{}", "a".repeat(32));
        for v in [
            "",
            "app:latest",
            "r.io/App:1",
            "r.io/app:.hidden",
            "r.io/app:-x",
            long_tag.as_str(),
            upper_digest.as_str(),
            short_digest.as_str(),
            md5.as_str(),
            "user:pass@r.io/app:1",
            "https://r.io/app:1",
            "r.io/app:1 ",
            "r.io/app\n:1",
            "r.io//app",
            "r.io/app/",
            "r.io/a..b",
            "r.io/a___b",
            "r.io/-a",
            "r.io:99999/a",
            "r.io:/a",
            "-r.io/a",
            "r.io/a:b:c",
            "r.io/ä",
        ] {
            let e = Reference::parse("destination", v).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{v:?}");
            assert!(!e.message.contains('\n'), "{v:?}");
        }
    }

    #[test]
    fn metadata_and_link_local_hosts() {
        for h in [
            "169.254.169.254",
            "169.254.170.2:80",
            "[fe80::1]",
            "[fd00:ec2::254]",
            "metadata.google.internal",
        ] {
            assert!(is_metadata_or_link_local(h), "{h}");
        }
        for h in ["127.0.0.1:5000", "r.io", "10.0.0.1"] {
            assert!(!is_metadata_or_link_local(h), "{h}");
        }
        assert!(!is_loopback_host("127.0.0.1.evil.com"));
    }

    #[test]
    fn digest_of_bytes() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
