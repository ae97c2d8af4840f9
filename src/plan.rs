//! Placeholder: filled in by its owner (see CONTRIBUTING.md).
