//! Tests for `actions` (filled in by its owner).
