//! # syncfabric-folder
//!
//! A local or network folder as syncfabric storage (also iCloud Drive and desktop-client folders).
//!
//! (Skeleton: the implementation lands with its issue.)
#![deny(missing_docs)]
