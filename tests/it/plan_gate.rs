//! Tests for `plan_gate` (filled in by its owner).
