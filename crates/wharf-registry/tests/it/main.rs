//! Integration tests of the distribution client against real registries (Debian's CNCF
//! distribution 2.8: plain, with htpasswd and with token auth), skopeo, and a misbehaving
//! fake. The backends come from `cargo xtask test` (or `cargo xtask backends up` and
//! `eval "$(cargo xtask backends env)"`); a missing variable fails the test.
#![cfg(feature = "distribution")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod auth;
mod distribution;
mod faults;
mod interop;
mod support;
