//! The change feed of a folder: `notify` (inotify, FSEvents, ReadDirectoryChangesW), or
//! its polling watcher for network shares, debounced into [`Change`]s.
//!
//! Raw events are collected until the folder has been quiet for
//! [`FolderOptions::debounce`](crate::FolderOptions::debounce) (at most ten times that
//! while events keep coming), then each touched child is reported once: `Changed` if
//! it exists at that moment, `Removed` if not (entries are `None`: stat to learn the
//! version). A write by this crate shows up as its final rename; its temp and lock
//! files are never reported. A placeholder `.name.icloud` appearing reports `name` as
//! changed. A notify overflow (or more than 4096 raw events waiting because the
//! consumer is slow), or the watched folder itself being moved or deleted, yields
//! [`Change::Rescan`].

use crate::{fsops, icloud, FolderStorage};
use notify::event::{AccessKind, EventKind};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Raw events buffered between the OS watcher and the debouncer.
const RAW_QUEUE: usize = 4096;
use syncfabric_core::watch::{Change, ChangeStream};
use syncfabric_core::{Error, RemotePath, Result};
use tokio::sync::mpsc;

fn notify_err(e: notify::Error, dir: &RemotePath) -> Error {
    match e.kind {
        notify::ErrorKind::PathNotFound => Error::NotFound {
            path: dir.as_str().to_string(),
        },
        notify::ErrorKind::Io(io) => Error::from_io(io, dir.as_str()),
        _ => Error::Transient {
            message: format!("watching {dir}: {e}"),
            source: None,
        },
    }
}

/// What the events gathered so far ask to report.
#[derive(Default)]
struct Pending {
    names: BTreeSet<String>,
    rescan: bool,
    errors: Vec<Error>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.rescan && self.errors.is_empty()
    }

    fn add(
        &mut self,
        ev: notify::Result<notify::Event>,
        local: &Path,
        dir: &RemotePath,
        placeholders: bool,
    ) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                self.errors.push(Error::Transient {
                    message: format!("watching {dir}: {e}"),
                    source: None,
                });
                self.rescan = true;
                return;
            }
        };
        if ev.need_rescan() {
            self.rescan = true;
        }
        if matches!(
            ev.kind,
            EventKind::Access(AccessKind::Open(_) | AccessKind::Read)
        ) {
            return;
        }
        for p in &ev.paths {
            if p == local {
                // The watched folder itself was removed, moved or re-attributed.
                if matches!(
                    ev.kind,
                    EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
                ) {
                    self.rescan = true;
                }
                continue;
            }
            let Ok(rel) = p.strip_prefix(local) else {
                continue;
            };
            let mut comps = rel.components();
            let (Some(first), None) = (comps.next(), comps.next()) else {
                continue;
            };
            let Some(name) = first.as_os_str().to_str() else {
                continue;
            };
            if fsops::is_internal_name(name) {
                continue;
            }
            let name = match icloud::placeholder_target(name) {
                Some(t) if placeholders => t,
                _ => name,
            };
            self.names.insert(name.to_string());
        }
    }
}

pub(crate) async fn watch(store: FolderStorage, dir: RemotePath) -> Result<ChangeStream> {
    let local = store.local_path(&dir);
    let meta = tokio::fs::metadata(&local)
        .await
        .map_err(|e| Error::from_io(e, dir.as_str()))?;
    if !meta.is_dir() {
        return Err(Error::InvalidInput {
            message: format!("{dir} is not a folder"),
        });
    }
    // Bounded: a stalled consumer must not make memory grow. Events that do not fit
    // are dropped and turned into one Rescan.
    let (raw_tx, raw_rx) = mpsc::channel::<notify::Result<notify::Event>>(RAW_QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let ov = Arc::clone(&overflow);
    let handler = move |res: notify::Result<notify::Event>| {
        if let Err(mpsc::error::TrySendError::Full(_)) = raw_tx.try_send(res) {
            ov.store(true, Ordering::Relaxed);
        }
    };
    let mut watcher: Box<dyn Watcher + Send> = match store.inner.options.poll_interval {
        Some(interval) => Box::new(
            notify::PollWatcher::new(
                handler,
                notify::Config::default()
                    .with_poll_interval(interval)
                    .with_compare_contents(true),
            )
            .map_err(|e| notify_err(e, &dir))?,
        ),
        None => Box::new(notify::recommended_watcher(handler).map_err(|e| notify_err(e, &dir))?),
    };
    watcher
        .watch(&local, RecursiveMode::NonRecursive)
        .map_err(|e| notify_err(e, &dir))?;
    let (tx, rx) = mpsc::channel(256);
    let debounce = store.inner.options.debounce;
    let placeholders = store.inner.options.icloud_placeholders;
    tokio::spawn(pump(
        watcher,
        raw_rx,
        overflow,
        tx,
        dir,
        local,
        debounce,
        placeholders,
    ));
    Ok(ChangeStream::from_receiver(rx))
}

/// Collects raw events, debounces them, and sends changes until the consumer drops
/// the stream (then the watcher is dropped with this task).
#[allow(clippy::too_many_arguments)]
async fn pump(
    watcher: Box<dyn Watcher + Send>,
    mut raw: mpsc::Receiver<notify::Result<notify::Event>>,
    overflow: Arc<AtomicBool>,
    tx: mpsc::Sender<Result<Change>>,
    dir: RemotePath,
    local: PathBuf,
    debounce: Duration,
    placeholders: bool,
) {
    let _watcher = watcher;
    loop {
        let mut pending = Pending::default();
        tokio::select! {
            _ = tx.closed() => return,
            ev = raw.recv() => match ev {
                None => return,
                Some(ev) => pending.add(ev, &local, &dir, placeholders),
            },
        }
        let max = tokio::time::Instant::now() + debounce * 10;
        loop {
            let now = tokio::time::Instant::now();
            if now >= max {
                break;
            }
            let wait = debounce.min(max - now);
            match tokio::time::timeout(wait, raw.recv()).await {
                Ok(Some(ev)) => pending.add(ev, &local, &dir, placeholders),
                Ok(None) | Err(_) => break,
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            pending.rescan = true;
        }
        if pending.is_empty() {
            continue;
        }
        let mut out: Vec<Result<Change>> = pending.errors.into_iter().map(Err).collect();
        if pending.rescan {
            out.push(Ok(Change::Rescan));
        }
        for name in pending.names {
            let Ok(path) = dir.join(&name) else { continue };
            let exists = tokio::fs::symlink_metadata(local.join(&name)).await.is_ok()
                || (placeholders
                    && tokio::fs::symlink_metadata(local.join(icloud::placeholder_name(&name)))
                        .await
                        .is_ok());
            out.push(Ok(if exists {
                Change::Changed { path, entry: None }
            } else {
                Change::Removed { path }
            }));
        }
        for item in out {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    }
}
