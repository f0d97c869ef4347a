//! # syncfabric-conformance
//!
//! The behaviour suite every syncfabric storage provider runs, and the test doubles it needs.
//!
//! (Skeleton: the implementation lands with its issue.)
#![deny(missing_docs)]

pub mod flaky_proxy;
