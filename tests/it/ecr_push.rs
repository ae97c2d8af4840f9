//! Tests for `ecr_push` (filled in by its owner).
