//! The OCI distribution client (being written).
