//! Validators for inputs shared by several binaries. Each returns a usage failure (exit 2) that
//! names the field and the rule, and shows the offending value only in neutralised form.
//!
//! Never turn a prefix check into "valid": every validator matches the whole value.

use crate::exit::{Failure, Result};
use crate::runner::single_line;

fn bad(field: &str, value: &str, rule: &str) -> Failure {
    Failure::usage(field, format!("`{}` {rule}", single_line(value)))
}

/// A 12-digit AWS account id.
pub fn account_id(v: &str) -> Result<()> {
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(bad(
            "aws-account-id",
            v,
            "is not an AWS account id (exactly 12 digits)",
        ))
    }
}

/// An AWS region code such as `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`,
/// `ap-southeast-5`, `us-isob-east-1`. Lowercase, no availability-zone suffix, no spaces.
pub fn region(v: &str) -> Result<()> {
    let parts: Vec<&str> = v.split('-').collect();
    let ok = parts.len() >= 3
        && parts.len() <= 4
        && parts.iter().all(|p| !p.is_empty())
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && parts[parts.len() - 1].len() <= 2;
    if ok {
        Ok(())
    } else {
        Err(bad(
            "aws-region",
            v,
            "is not an AWS region code (e.g. `us-east-1`; lowercase, no zone letter)",
        ))
    }
}

/// The AWS partition a region belongs to.
pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// A full 40-hex (SHA-1) or 64-hex (SHA-256) lowercase commit id.
pub fn full_sha(field: &str, v: &str) -> Result<()> {
    let ok = (v.len() == 40 || v.len() == 64)
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            v,
            "is not a full commit SHA (40 or 64 lowercase hex characters)",
        ))
    }
}

/// git's own ref-name rules (`git check-ref-format`), applied to a full or partial ref name.
pub fn git_ref_format(field: &str, v: &str) -> Result<()> {
    let rule = |r: &str| Err(bad(field, v, r));
    if v.is_empty() {
        return rule("is empty");
    }
    if v.len() > 255 {
        return rule("is longer than 255 characters");
    }
    if v == "@" {
        return rule("is `@`, which git reserves");
    }
    if v.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return rule("contains a control character");
    }
    for c in [' ', '~', '^', ':', '?', '*', '[', '\\'] {
        if v.contains(c) {
            return rule(&format!("contains `{c}`, which git forbids in ref names"));
        }
    }
    if v.contains("..") {
        return rule("contains `..`");
    }
    if v.contains("@{") {
        return rule("contains `@{`");
    }
    if v.contains("//") {
        return rule("contains `//`");
    }
    if v.starts_with('/') || v.ends_with('/') {
        return rule("starts or ends with `/`");
    }
    if v.ends_with('.') {
        return rule("ends with `.`");
    }
    for comp in v.split('/') {
        if comp.starts_with('.') {
            return rule("has a component starting with `.`");
        }
        if comp.ends_with(".lock") {
            return rule("has a component ending with `.lock`");
        }
    }
    Ok(())
}

/// A branch name: git's rules plus our stricter pattern (`[A-Za-z0-9._/-]`, not starting with `-`).
pub fn branch_name(v: &str) -> Result<()> {
    git_ref_format("branch", v)?;
    if v.starts_with('-')
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return Err(bad(
            "branch",
            v,
            "must use only letters, digits, `.`, `_`, `/`, `-` and not start with `-`",
        ));
    }
    if v.starts_with("refs/") || v == "HEAD" {
        return Err(bad(
            "branch",
            v,
            "must be a short branch name, not `HEAD` or a full ref",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-5",
            "us-isob-east-1",
        ] {
            region(ok).unwrap();
        }
        for bad in [
            "US-EAST-1",
            "us-east-1a",
            "us-east-1 ",
            "",
            "useast1",
            "us-east-",
            "-us-east-1",
            "us_east_1",
            "us-east-100",
        ] {
            assert!(region(bad).is_err(), "{bad:?}");
        }
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_for_region("eu-west-1"), "aws");
    }

    #[test]
    fn accounts_and_shas() {
        account_id("123456789012").unwrap();
        for bad in [
            "12345678901",
            "1234567890123",
            "12345678901a",
            " 123456789012",
            "",
        ] {
            assert!(account_id(bad).is_err(), "{bad:?}");
        }
        full_sha("sha", &"a".repeat(40)).unwrap();
        full_sha("sha", &"0".repeat(64)).unwrap();
        for bad in [
            "abc1234",
            &"A".repeat(40),
            &"g".repeat(40),
            &"a".repeat(41),
            "",
        ] {
            assert!(full_sha("sha", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ref_rules_from_hardening() {
        for bad in [
            "a..b",
            "a\u{1}b",
            "a b",
            "a~b",
            "a^b",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a\\b",
            "a//b",
            "a.",
            "a/",
            "/a",
            "a.lock",
            "a/b.lock/c",
            "a@{b",
            ".a",
            "a/.b",
            "",
            "@",
        ] {
            let e = git_ref_format("ref", bad).unwrap_err();
            assert!(e.to_string().contains("`ref`"), "{e}");
        }
        for ok in [
            "deploy/prod/current",
            "deploy/dev/history/20261126T120000Z-42-abcdef1",
            "main",
            "feature/x-1",
        ] {
            git_ref_format("ref", ok).unwrap();
        }
        assert!(branch_name("-main").is_err());
        assert!(branch_name("refs/heads/main").is_err());
        assert!(branch_name("ma$in").is_err());
        branch_name("release/v1.2").unwrap();
    }
}
