//! The behaviours, one public async function each. Every function works in the scratch
//! folder it is given (which it may assume is empty or missing) and returns a
//! [`Check`]: `Ok(Outcome::Passed)`, `Ok(Outcome::Skipped(why))` when the capabilities
//! say it does not apply, or `Err(Failure)` saying what broke the contract.

use crate::{Check, ClientFactory, Failure, Outcome};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use syncfabric_core::lock::{LeaseLock, LeaseOptions};
use syncfabric_core::server_lock::ServerLockGuard;
use syncfabric_core::{Body, EntryKind, Error, Precondition, RemotePath, Storage, Version};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure::new(format!($($fmt)+)));
        }
    };
}

mod conditions;
mod files;
mod folders;
mod locks;
mod names;
mod race;

pub use conditions::*;
pub use files::*;
pub use folders::*;
pub use locks::*;
pub use names::*;
pub use race::*;

fn p(dir: &RemotePath, name: &str) -> Result<RemotePath, Failure> {
    dir.join(name)
        .map_err(|e| Failure::new(format!("bad test path {name:?}: {e}")))
}

/// Reads a whole file and the version the read reported.
pub async fn read_all(
    s: &dyn Storage,
    path: &RemotePath,
) -> Result<(Vec<u8>, Option<Version>), Error> {
    let mut dl = s.read(path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = dl.stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok((out, dl.version))
}

async fn content(s: &dyn Storage, path: &RemotePath) -> Result<Vec<u8>, Failure> {
    read_all(s, path)
        .await
        .map(|(b, _)| b)
        .map_err(|e| Failure::new(format!("reading {path}: {e}")))
}

async fn put(
    s: &dyn Storage,
    path: &RemotePath,
    data: &[u8],
    pre: Precondition,
) -> Result<Version, Failure> {
    let e = s
        .write(path, Body::from(data.to_vec()), pre.clone())
        .await
        .map_err(|e| Failure::new(format!("write {path} ({pre:?}): {e}")))?;
    ensure!(
        e.path == *path,
        "write {path} returned an entry for {}",
        e.path
    );
    ensure!(
        e.kind == EntryKind::File,
        "write {path} returned a {:?} entry",
        e.kind
    );
    ensure!(
        e.size == data.len() as u64,
        "write {path} returned size {} for {} bytes",
        e.size,
        data.len()
    );
    e.version
        .ok_or_else(|| Failure::new(format!("write {path} returned no version")))
}

fn names(entries: &[syncfabric_core::Entry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| e.path.file_name().map(str::to_string))
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Pseudo-random bytes from a seed (reproducible failures).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// A local temporary file that is removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(data: &[u8]) -> Result<TempFile, Failure> {
        let path =
            std::env::temp_dir().join(format!("syncfabric-conformance-{:016x}", fastrand::u64(..)));
        std::fs::write(&path, data)
            .map_err(|e| Failure::new(format!("temp file {}: {e}", path.display())))?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
