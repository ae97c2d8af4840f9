//! Exit codes and the one error type every binary returns.
//!
//! The classes are part of the public contract (README, action docs) and identical in every binary:
//!
//! | code | class | meaning |
//! |---|---|---|
//! | 0 | success | the work was done, or there was nothing to do |
//! | 1 | refused | a policy, gate or safety rule refused the operation; nothing was changed |
//! | 2 | usage | bad input or usage; found before any network call; the message names the field |
//! | 3 | runtime | a network, remote or local runtime failure |

use std::fmt;

/// The documented classes of process exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 0: success.
    Success = 0,
    /// 1: refused by a policy or gate.
    Refused = 1,
    /// 2: bad input or usage.
    Usage = 2,
    /// 3: runtime failure (network, remote error, I/O).
    Runtime = 3,
}

impl ExitClass {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure with its exit class. The message is written for the user: what failed and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which exit code this maps to.
    pub class: ExitClass,
    /// The field (input name) at fault, for usage errors.
    pub field: Option<String>,
    /// A human explanation. Must never contain a secret.
    pub message: String,
}

impl Failure {
    /// Bad input in a named field (exit 2).
    pub fn usage(field: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            class: ExitClass::Usage,
            field: Some(field.into()),
            message: message.into(),
        }
    }
    /// Bad usage not tied to one field (exit 2).
    pub fn usage_general(message: impl Into<String>) -> Self {
        Failure {
            class: ExitClass::Usage,
            field: None,
            message: message.into(),
        }
    }
    /// Refused by a policy, gate or safety rule (exit 1).
    pub fn refused(message: impl Into<String>) -> Self {
        Failure {
            class: ExitClass::Refused,
            field: None,
            message: message.into(),
        }
    }
    /// Runtime failure (exit 3).
    pub fn runtime(message: impl Into<String>) -> Self {
        Failure {
            class: ExitClass::Runtime,
            field: None,
            message: message.into(),
        }
    }
    /// Prefix context to the message, keeping class and field.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "invalid input `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Failure {}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::runtime(format!("I/O error: {e}"))
    }
}

/// Shorthand result type used across the library.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
