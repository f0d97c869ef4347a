//! # syncfabric-merge
//!
//! Pure three-way merge of decrypted Enpass vault snapshots.
//!
//! (Skeleton: the implementation lands with its issue.)
#![deny(missing_docs)]
