//! Tests for `tag_deploy` (filled in by its owner).
