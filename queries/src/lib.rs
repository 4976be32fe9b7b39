//! Queries and publishing (issue 5).
