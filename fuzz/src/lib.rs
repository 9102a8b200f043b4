//! Fuzz targets for every parser of outside input in wharf.
//!
//! Each target is a function `fn(&[u8])` that feeds the bytes to the real public parser and,
//! where the parse succeeds, takes the obvious next step — writes the value back and parses
//! it again (and checks it is the same value), verifies what can be verified against fixed
//! keys and trust roots from real fixtures (expecting an error, never a panic), walks a
//! layout or an audit log built around the input. A target panics only on a bug: a panic
//! in the code under test, or a broken round trip or invariant.
//!
//! Two drivers run them: `tests/fuzz.rs` (part of `cargo test`: the seed corpus in
//! `corpus/<target>/`, then seeded mutations for a bounded time, under a memory limit), and
//! the cargo-fuzz project in `libfuzzer/` for long coverage-guided runs. See the README.

pub mod mutate;

mod targets;

pub use targets::*;

use mutate::Grammar;

/// The largest input a target reads; longer inputs are ignored (the memory bound of a run).
pub const MAX_INPUT: usize = 1 << 20;

/// A fuzz target: its name (the corpus directory), its function and its input grammar.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name: `corpus/<name>/`, `libfuzzer/fuzz_targets/<name>.rs`.
    pub name: &'static str,
    /// What it runs on one input.
    pub run: fn(&[u8]),
    /// The grammar its inputs are written in (for the mutator).
    pub grammar: Grammar,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "model_manifest",
        run: model_manifest,
        grammar: Grammar::Yaml,
    },
    Target {
        name: "wharf_toml",
        run: wharf_toml,
        grammar: Grammar::Toml,
    },
    Target {
        name: "oci_manifest",
        run: oci_manifest,
        grammar: Grammar::Json,
    },
    Target {
        name: "oci_layout",
        run: oci_layout,
        grammar: Grammar::Json,
    },
    Target {
        name: "cosign_payload",
        run: cosign_payload,
        grammar: Grammar::Json,
    },
    Target {
        name: "cosign_signature",
        run: cosign_signature,
        grammar: Grammar::Json,
    },
    Target {
        name: "sigstore_bundle",
        run: sigstore_bundle,
        grammar: Grammar::Json,
    },
    Target {
        name: "trusted_root",
        run: trusted_root,
        grammar: Grammar::Json,
    },
    Target {
        name: "dsse",
        run: dsse,
        grammar: Grammar::Json,
    },
    Target {
        name: "audit_record",
        run: audit_record,
        grammar: Grammar::Json,
    },
    Target {
        name: "x509",
        run: x509,
        grammar: Grammar::Der,
    },
    Target {
        name: "reference",
        run: reference,
        grammar: Grammar::Text,
    },
];

/// A finding reported and awaiting its fix in code another change owns: while it is listed,
/// the target skips that check (and counts the inputs that would have failed it), so the
/// seed that shows it can sit in the corpus. Remove the entry with the fix.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// The target.
    pub target: &'static str,
    /// The check it skips.
    pub check: &'static str,
    /// Where the fix belongs, and what is wrong.
    pub owner: &'static str,
}

/// The findings awaiting a fix elsewhere (none now; the last, a manifest field name echoed
/// with its newline, is fixed in wharf-policy's error display).
pub const PENDING: &[Pending] = &[];

static PENDING_HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether `check` of `target` is [`PENDING`]; counts the hit when it is.
pub(crate) fn pending(target: &str, check: &str) -> bool {
    let hit = PENDING
        .iter()
        .any(|p| p.target == target && p.check == check);
    if hit {
        PENDING_HITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    hit
}

/// How many inputs met a [`PENDING`] check in this process.
pub fn pending_hits() -> u64 {
    PENDING_HITS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
