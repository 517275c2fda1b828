//! Workspace-level scenarios live in tests/tests/*.rs.
