#![doc = include_str!("../docs.md")]
#![deny(missing_docs)]

mod backend;
mod commit;
mod config;
pub mod conflict;
#[cfg(feature = "test-double")]
pub mod desktop_double;
mod error;
mod fsops;
pub mod icloud;
pub mod registry;
pub mod version;
mod watch;

pub use backend::FolderStorage;
pub use config::{FolderOptions, CHUNK_SIZE, STALE_TEMP_AGE};
pub use conflict::{conflict_copies, conflict_style, ConflictCopy, ConflictStyle};
pub use fsops::{is_internal_name, DirLock, TempFile, LOCK_NAME, TEMP_PREFIX};
pub use icloud::{not_downloaded, NotDownloaded};
pub use registry::{register, ICLOUD_SCHEMES, SCHEMES};
