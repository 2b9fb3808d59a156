//! Helpers of the compat tests: the shared ones from ferry-testkit.
#![allow(dead_code)]

#[allow(unused_imports)] // each test binary uses a different subset
pub use ferry_testkit::{
    drain, errno, fd_count, file_with, read_n, reset_on_close, serial, tcp_pair,
};

/// Deterministic bytes that differ at every offset.
pub fn pattern(len: usize) -> Vec<u8> {
    ferry_testkit::pattern(len, 0)
}
