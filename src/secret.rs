//! A value that must never be printed: credentials, tokens, JWTs, registry passwords.
//!
//! `Debug` and `Display` show `***`. The only way to get the bytes is [`Secret::expose`], which makes
//! every use greppable in review. Registering the value with the runner's masker (`Runner::mask`)
//! is what keeps it out of the job log even if some other code path prints it.

use std::fmt;

/// A string that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value. Only call this to send it where it belongs (an HTTP header, a mask command).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("AKIAEXAMPLESECRET");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:#?}", vec![s.clone()]).contains("AKIA"));
        assert_eq!(s.expose(), "AKIAEXAMPLESECRET");
    }
}
