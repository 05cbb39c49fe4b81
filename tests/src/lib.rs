//! Workspace-level integration tests of sluice live in `tests/`.
