//! The forms a registered secret takes once other code has transformed it: JSON-escaped,
//! URL-encoded, Markdown-escaped and base64 — also base64 of a longer value that contains the
//! secret at any byte offset (a `user:token` Basic-auth header, a docker config `auth` field).
//!
//! [`super::Runner::mask_str`] registers every form with the runner (`::add-mask::`) and with its
//! own scrubber, so neither the job log nor anything this process prints shows a secret in a
//! form that a plain search for the raw value would miss.

use base64::Engine;

/// A base64 piece shorter than this is not registered: it could match ordinary text by chance.
pub const MIN_FORM: usize = 8;

/// Every transformed form of `value` that differs from it (deduplicated, raw value excluded).
pub fn derived_forms(value: &str) -> Vec<String> {
    let mut forms = Vec::new();
    if let Ok(j) = serde_json::to_string(value) {
        forms.push(j[1..j.len() - 1].to_string());
    }
    forms.push(url_component(value));
    forms.push(super::markdown::escape_max(value, usize::MAX));
    let b = value.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        forms.push(engine.encode(b));
        forms.extend(embedded_base64(engine, b));
    }
    forms.retain(|f| f != value && f.len() >= MIN_FORM.min(value.len().max(1)));
    forms.sort_unstable();
    forms.dedup();
    forms
}

/// Percent-encoding as `encodeURIComponent` does it: everything but `A-Z a-z 0-9 - _ . ~`.
fn url_component(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

/// The part of base64 that stays the same whatever surrounds `value`, for each of the three
/// byte offsets it can start at inside a longer encoded value: only the 4-character groups
/// whose 3 bytes all belong to `value`.
fn embedded_base64(engine: &base64::engine::GeneralPurpose, value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(value);
        let enc = engine.encode(&padded);
        let first_group = offset.div_ceil(3);
        let end_group = padded.len() / 3;
        if end_group <= first_group {
            continue;
        }
        let piece = &enc[first_group * 4..end_group * 4];
        if piece.len() >= MIN_FORM {
            out.push(piece.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn escaped_encoded_and_embedded_forms_are_found() {
        let secret = "ghs_a\"b\\c/d+e f|g";
        let forms = derived_forms(secret);
        for needle in [
            r#"ghs_a\"b\\c/d+e f|g"#.to_string(),
            "ghs_a%22b%5Cc%2Fd%2Be%20f%7Cg".to_string(),
            b64(secret),
        ] {
            assert!(forms.contains(&needle), "{needle} not in {forms:?}");
        }
        // Inside a longer base64 value, at every offset, one registered piece occurs.
        for prefix in ["", "x", "xy", "x-access-token:", "user:"] {
            let whole = b64(&format!("{prefix}{secret}:tail"));
            assert!(
                forms
                    .iter()
                    .any(|f| f.len() >= MIN_FORM && whole.contains(f.as_str())),
                "prefix {prefix:?}: {whole}"
            );
        }
    }

    #[test]
    fn plain_values_add_only_their_base64_and_nothing_short() {
        let forms = derived_forms("AKIAIOSFODNN7EXAMPLE");
        assert!(forms.iter().all(|f| f != "AKIAIOSFODNN7EXAMPLE"));
        assert!(forms.iter().all(|f| f.len() >= MIN_FORM), "{forms:?}");
        assert!(forms.contains(&b64("AKIAIOSFODNN7EXAMPLE")));
        // A short value: no piece shorter than the value itself is registered.
        assert!(derived_forms("abc").iter().all(|f| f.len() >= 3));
    }
}
