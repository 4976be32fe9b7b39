//! The office agent (issue 4).
