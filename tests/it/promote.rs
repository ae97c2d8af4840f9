//! Tests for `promote` (filled in by its owner).
