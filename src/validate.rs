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

/// True for `localhost`, 127.0.0.0/8 and `::1` (a bare host; IPv6 with or without brackets).
/// The one loopback rule: plain `http://` may carry a credential only to these hosts.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `v` as it may be shown in a refusal: anything between `://` and the last `@` of the
/// authority (userinfo: a user, a password, a token) is replaced by `***`.
pub fn url_for_display(v: &str) -> String {
    let Some(start) = v.find("://").map(|i| i + 3) else {
        return single_line(v);
    };
    let rest = &v[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => single_line(&format!("{}***{}", &v[..start], &rest[at..])),
        None => single_line(v),
    }
}

/// A URL that a credential will be sent to (a token in a header, Basic auth, an OIDC token in a
/// form): `https://`, or `http://` only to a loopback host ([`is_loopback_host`]); a host; no
/// userinfo (credentials travel in the inputs made for them, never in a URL). Every intake of
/// such a URL uses this rule, before any request. A refusal never shows the userinfo.
pub fn credential_url(field: &str, v: &str) -> Result<url::Url> {
    let bad = |rule: &str| Failure::usage(field, format!("`{}` {rule}", url_for_display(v)));
    let u = url::Url::parse(v).map_err(|_| bad("is not a valid URL"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "must not carry credentials (user or password in the URL); pass them in their own input",
        ));
    }
    let host = u.host_str().filter(|h| !h.is_empty());
    match (u.scheme(), host) {
        (_, None) if matches!(u.scheme(), "http" | "https") => Err(bad("has no host")),
        ("https", Some(_)) => Ok(u),
        ("http", Some(h)) if is_loopback_host(h) => Ok(u),
        ("http", Some(_)) => Err(bad(
            "must use https: plain http is allowed only to a loopback host (127.0.0.0/8, ::1, \
             localhost), the credential would travel in clear text",
        )),
        _ => Err(bad("is not an https URL")),
    }
}

/// How a YAML configuration file failed to load, for the user: the file, the line and column,
/// and the kind of error -- never the offending value. serde's and the YAML parser's messages
/// quote what they could not use (`invalid type: string "ghp_..."`, ``unknown field `...` ``),
/// which prints whatever was pasted into the wrong place; only fixed vocabulary is kept: the
/// kind, what was expected (it comes from our schema), and parser messages that quote nothing.
pub fn config_error(source: &str, e: &serde_yaml_ng::Error) -> String {
    let at = e
        .location()
        .map(|l| format!(" line {}, column {}:", l.line(), l.column()))
        .unwrap_or_default();
    format!("{source}:{at} {}", yaml_error_kind(&e.to_string()))
}

/// The value-free part of a serde/YAML error message (see [`config_error`]).
pub fn yaml_error_kind(msg: &str) -> String {
    // The location is reported separately; everything before the kind is a key path, which
    // may hold a user's key.
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    const KINDS: [(&str, &str, bool); 8] = [
        ("invalid type: ", "a value of the wrong type", true),
        ("invalid value: ", "an invalid value", true),
        ("invalid length ", "a list of the wrong length", true),
        ("unknown variant ", "an unknown value", true),
        ("unknown field ", "an unknown key", true),
        ("missing field ", "a required key is missing", false),
        ("duplicate field ", "a key is given twice", false),
        ("duplicate entry with key", "a key is given twice", false),
    ];
    let found = KINDS
        .iter()
        .filter_map(|k| msg.find(k.0).map(|i| (i, k)))
        .min_by_key(|(i, _)| *i);
    if let Some((i, &(phrase, kind, expected))) = found {
        let mut out = kind.to_string();
        if phrase.starts_with("missing field ") {
            // The name comes from our schema (a `&'static str` in serde), not from the file.
            if let Some(name) = msg[i + phrase.len()..].split_whitespace().next() {
                out = format!("{kind}: {}", single_line(name));
            }
        }
        if expected {
            // What was expected is the last clause, written from our schema; the value is before it.
            if let Some(j) = msg.rfind(", expected ").filter(|&j| j > i) {
                out.push_str(&format!("; {}", single_line(&msg[j + 2..])));
            }
        }
        return out;
    }
    // The parser's own messages ("mapping values are not allowed in this context") are fixed
    // text: keep the message without the key path before it (`a.b: ...`, a user's keys) and
    // without its locations; one that quotes something is reduced to the kind.
    let msg = msg.rsplit(": ").next().unwrap_or(msg);
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if msg.contains(['"', '`', '\'']) {
        "not valid YAML for this file".to_string()
    } else {
        format!("not valid YAML: {}", single_line(msg))
    }
}

/// The rule one duration input follows: its range and the units it takes. The one duration
/// parser ([`duration`]) serves every duration input (`timeout`, `min-soak`, ...).
#[derive(Debug, Clone, Copy)]
pub struct DurationRule {
    /// Shortest accepted, in seconds.
    pub min_secs: u64,
    /// Longest accepted, in seconds.
    pub max_secs: u64,
    /// Whether `d` (days) is a unit; `s`, `m`, `h` always are, and a bare number is seconds.
    pub days: bool,
    /// How the rule reads in a refusal, after "is not a duration ".
    pub rule: &'static str,
}

/// Parse a duration: digits, then optionally `s`, `m`, `h` (or `d` when the rule allows it).
/// No sign, no fraction, no space; the value must lie within the rule's range.
pub fn duration(field: &str, v: &str, r: &DurationRule) -> Result<std::time::Duration> {
    let refuse = || bad(field, v, &format!("is not a duration {}", r.rule));
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, "s"),
    };
    if num.is_empty() || num.len() > 7 {
        return Err(refuse());
    }
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" if r.days => 86400,
        _ => return Err(refuse()),
    };
    let secs = num.parse::<u64>().map_err(|_| refuse())? * mult;
    if !(r.min_secs..=r.max_secs).contains(&secs) {
        return Err(refuse());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// True when `v` is `sha256:` followed by exactly 64 lowercase hex characters.
pub fn is_sha256_digest(v: &str) -> bool {
    v.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A digest input (`digest`, `plan-digest`): `sha256:` + 64 lowercase hex characters.
pub fn sha256_digest(field: &str, v: &str) -> Result<()> {
    if is_sha256_digest(v) {
        Ok(())
    } else {
        Err(bad(
            field,
            v,
            "is not `sha256:` followed by 64 lowercase hex characters",
        ))
    }
}

/// A reason kept in a deploy tag's trailer (`override-window-reason`, `data-loss-reason`):
/// trimmed, one line of at most 200 characters; empty or absent = none (exit 2 otherwise).
pub fn recorded_reason(field: &str, v: Option<&str>) -> Result<Option<String>> {
    let Some(t) = v.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(Failure::usage(
            field,
            "must be one line of at most 200 characters (it is recorded in the deploy tag)",
        ));
    }
    Ok(Some(t.to_string()))
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
    #[test]
    fn credential_urls_are_https_or_loopback_http_without_userinfo() {
        for ok in [
            "https://api.github.com",
            "https://sts.eu-west-1.amazonaws.com/",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/",
            "http://[::1]:9000/",
            "http://localhost:5000",
            "http://LOCALHOST/",
        ] {
            assert!(credential_url("f", ok).is_ok(), "{ok}");
        }
        let cases = [
            ("http://sts.amazonaws.com", "plain http"),
            ("http://127.0.0.1.evil.com/", "plain http"),
            ("http://localhost.evil.com/", "plain http"),
            ("http://10.0.0.1/", "plain http"),
            ("http://[::2]/", "plain http"),
            ("http://0.0.0.0/", "plain http"),
            (
                "https://x-access-token:ghp_SECRETvalue@github.com/o/r",
                "credentials",
            ),
            ("https://ghp_SECRETvalue@github.com/o/r", "credentials"),
            ("http://u:ghp_SECRETvalue@127.0.0.1/", "credentials"),
            ("ftp://example.com/", "not an https URL"),
            ("file:///etc/passwd", "not an https URL"),
            ("https://", "not a valid URL"),
            ("not a url", "not a valid URL"),
        ];
        for (v, rule) in cases {
            let e = credential_url("endpoint", v).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage, "{v}");
            assert_eq!(e.field.as_deref(), Some("endpoint"));
            assert!(e.message.contains(rule), "{v}: {e}");
            assert!(!e.message.contains("SECRETvalue"), "{v}: {e}");
        }
        assert!(!is_loopback_host("127.0.0.1.evil.com"));
        assert!(is_loopback_host("[::1]"));
        assert_eq!(
            url_for_display("https://a:b@h/p@q"),
            "https://***@h/p@q".to_string()
        );
        assert_eq!(url_for_display("h:b@c"), "h:b@c");
    }

    #[test]
    fn config_errors_name_place_and_kind_never_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            name: String,
            on: Option<bool>,
            list: Option<Vec<u8>>,
            mode: Option<Mode>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Mode {
            A,
        }
        let tok = "ghp_SECRET0123456789abcdef";
        let cases = [
            (
                format!("name: x\non: {tok}\n"),
                "line 2, column 5: a value of the wrong type; expected a boolean",
            ),
            (
                format!("name: x\n{tok}: 1\n"),
                "line 2, column 1: an unknown key; expected one of `name`, `on`, `list`, `mode`",
            ),
            (
                format!("name: x\nmode: {tok}\n"),
                "an unknown value; expected `A`",
            ),
            (
                format!("name: x\nlist: [1, {tok}]\n"),
                "a value of the wrong type",
            ),
            (
                format!("on: true\nlist: []\n# {tok}\n"),
                "a required key is missing: `name`",
            ),
            (
                format!("name: x: \"{tok}\"\n"),
                "not valid YAML: mapping values are not allowed",
            ),
            (format!("name: \"{tok}\nx"), "not valid YAML"),
            (format!("name: x\nname: {tok}\n"), "given twice"),
            (format!("- {tok}\n"), "a value of the wrong type"),
            (format!("name: *{tok}\n"), "not valid YAML: unknown anchor"),
        ];
        for (text, want) in cases {
            let e = serde_yaml_ng::from_str::<T>(&text).unwrap_err();
            let m = config_error("f.yml", &e);
            assert!(m.starts_with("f.yml:"), "{m}");
            assert!(m.contains(want), "{text:?}: {m} (serde: {e})");
            assert!(!m.contains("SECRET"), "{text:?}: {m}");
        }
        assert_eq!(
            yaml_error_kind("did not find expected key"),
            "not valid YAML: did not find expected key"
        );
    }
    const UP_TO_A_DAY: DurationRule = DurationRule {
        min_secs: 1,
        max_secs: 86400,
        days: false,
        rule: "between 1s and 24h",
    };
    const UP_TO_30_DAYS: DurationRule = DurationRule {
        min_secs: 0,
        max_secs: 30 * 86400,
        days: true,
        rule: "like `1d` (at most 30 days)",
    };

    #[test]
    fn one_duration_parser_for_every_rule() {
        let secs = |v: &str, r: &DurationRule| duration("t", v, r).map(|d| d.as_secs());
        for (v, want) in [
            ("600", 600),
            ("90s", 90),
            ("30m", 1800),
            ("1h", 3600),
            ("24h", 86400),
        ] {
            assert_eq!(secs(v, &UP_TO_A_DAY).unwrap(), want, "{v}");
        }
        for v in [
            "",
            "0",
            "25h",
            "1d",
            "-5s",
            "1.5m",
            "m",
            "30mm",
            " 5s",
            "5s ",
            "+5",
            "99999999s",
        ] {
            let e = duration("timeout", v, &UP_TO_A_DAY).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("timeout"), "{v}");
            assert!(
                e.message.contains("is not a duration between 1s and 24h"),
                "{v}: {}",
                e.message
            );
        }
        for (v, want) in [("0", 0), ("1d", 86400), ("2h", 7200), ("30d", 30 * 86400)] {
            assert_eq!(secs(v, &UP_TO_30_DAYS).unwrap(), want, "{v}");
        }
        for v in ["31d", "1w", "d"] {
            assert!(duration("min-soak", v, &UP_TO_30_DAYS).is_err(), "{v}");
        }
        // The value is echoed only neutralised.
        let e = duration("t", "5\n::error::x", &UP_TO_A_DAY).unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
    }

    #[test]
    fn one_digest_validator() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(is_sha256_digest(&good));
        sha256_digest("digest", &good).unwrap();
        for bad in [
            String::new(),
            "sha256:abc".into(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha512:{}", "a".repeat(64)),
            "a".repeat(64),
            format!(" sha256:{}", "a".repeat(64)),
            format!("sha256:{}g", "a".repeat(63)),
        ] {
            assert!(!is_sha256_digest(&bad), "{bad:?}");
            let e = sha256_digest("plan-digest", &bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("plan-digest"));
            assert!(e.message.contains("64 lowercase hex"), "{}", e.message);
        }
    }
}
