//! Permission store.
