//! Cross-component end-to-end tests.
