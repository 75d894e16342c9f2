//! Unit tests: the per-broker delta.
