//! Tests for `oidc_login` (filled in by its owner).
