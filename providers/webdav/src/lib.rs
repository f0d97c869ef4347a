//! # syncfabric-webdav
//!
//! WebDAV (and Nextcloud/ownCloud) as syncfabric storage.
//!
//! (Skeleton: the implementation lands with its issue.)
#![deny(missing_docs)]
