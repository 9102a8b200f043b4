//! Shared helpers for the examples: where the example model lives.
