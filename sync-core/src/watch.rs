//! Change feeds: being told when someone else changed a folder.
//!
//! [`Storage::watch`] returns a [`ChangeStream`] of [`Change`]s
//! for the direct children of one folder. Providers with a native feed (inotify/FSEvents
//! for folders, Graph delta, Drive changes, Dropbox longpoll) implement `watch`; every
//! other provider leaves the default, which returns [`Error::Unsupported`], and callers
//! fall back to [`poll`] (list the folder every interval and diff versions), most simply
//! through [`watch_or_poll`].
//!
//! The feed is a *hint*, delivered at least once: a change may be reported that turns
//! out to be no change (the consumer compares versions with `stat`), but a change is
//! never silently lost — when a provider may have missed events (a queue overflowed, a
//! cursor expired, the connection dropped) it yields [`Change::Rescan`], and the
//! consumer re-reads everything it cares about.
//!
//! ```no_run
//! # async fn demo(storage: std::sync::Arc<dyn syncfabric_core::Storage>) -> syncfabric_core::Result<()> {
//! use syncfabric_core::{watch::{watch_or_poll, Change}, RemotePath};
//! let dir = RemotePath::parse("vaults/primary")?;
//! let mut changes = watch_or_poll(storage, &dir, std::time::Duration::from_secs(30)).await?;
//! while let Some(change) = changes.next().await {
//!     match change? {
//!         Change::Changed { path, .. } | Change::Removed { path } => println!("{path} changed"),
//!         Change::Rescan => println!("re-read everything"),
//!     }
//! }
//! # Ok(()) }
//! ```

use crate::{Entry, Error, RemotePath, Result, Storage};
use futures_core::Stream;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// One change in a watched folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Something at `path` (a direct child of the watched folder) was created or
    /// modified. `entry` is its new entry when the provider knows it without asking
    /// (a polling feed always does; a file-system event may not): `None` means "stat it".
    Changed {
        /// The path that changed, relative to the storage root.
        path: RemotePath,
        /// The new entry, if known.
        entry: Option<Entry>,
    },
    /// The entry at `path` (a direct child of the watched folder) is gone.
    Removed {
        /// The path that was removed, relative to the storage root.
        path: RemotePath,
    },
    /// Changes may have been missed (overflow, expired cursor, reconnect): the consumer
    /// must re-read the whole folder. Never a reason to stop watching.
    Rescan,
}

impl Change {
    /// The path the change is about; `None` for [`Change::Rescan`].
    pub fn path(&self) -> Option<&RemotePath> {
        match self {
            Change::Changed { path, .. } | Change::Removed { path } => Some(path),
            Change::Rescan => None,
        }
    }
}

type BoxedChanges = Pin<Box<dyn Stream<Item = Result<Change>> + Send + 'static>>;

/// A stream of [`Change`]s of one folder. Watching stops when the stream is dropped.
///
/// An `Err` item reports a failure of the feed (e.g. a transient network error); the
/// stream goes on after it unless it then ends (`None`). A consumer that wants to stop
/// on errors simply drops the stream.
pub struct ChangeStream {
    inner: BoxedChanges,
}

impl ChangeStream {
    /// Wraps any stream of changes (what a provider with a native feed returns).
    pub fn new(stream: impl Stream<Item = Result<Change>> + Send + 'static) -> Self {
        ChangeStream {
            inner: Box::pin(stream),
        }
    }

    /// A stream fed through a channel: the provider keeps the [`tokio::sync::mpsc::Sender`]
    /// in its watcher callback (e.g. a `notify` handler) and sends changes; the stream
    /// ends when every sender is dropped. Use a bounded channel and send
    /// [`Change::Rescan`] when `try_send` finds it full.
    pub fn from_receiver(mut rx: tokio::sync::mpsc::Receiver<Result<Change>>) -> Self {
        ChangeStream::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    /// The next change, or `None` when the feed has ended.
    pub async fn next(&mut self) -> Option<Result<Change>> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

impl Stream for ChangeStream {
    type Item = Result<Change>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeStream")
    }
}

/// Key of a listing snapshot: what identifies "the same state" of one child.
fn fingerprint(e: &Entry) -> (Option<crate::Version>, u64, crate::EntryKind) {
    (e.version.clone(), e.size, e.kind)
}

async fn snapshot(storage: &dyn Storage, dir: &RemotePath) -> Result<HashMap<RemotePath, Entry>> {
    match storage.list(dir).await {
        Ok(entries) => Ok(entries.into_iter().map(|e| (e.path.clone(), e)).collect()),
        // A folder that does not exist (yet) is watched as an empty one, so its
        // creation shows up as additions.
        Err(Error::NotFound { .. }) => Ok(HashMap::new()),
        Err(e) => Err(e),
    }
}

fn diff(old: &HashMap<RemotePath, Entry>, new: &HashMap<RemotePath, Entry>) -> Vec<Change> {
    let mut out = Vec::new();
    for (p, e) in new {
        let changed = match old.get(p) {
            None => true,
            Some(o) => fingerprint(o) != fingerprint(e),
        };
        if changed {
            out.push(Change::Changed {
                path: p.clone(),
                entry: Some(e.clone()),
            });
        }
    }
    for p in old.keys() {
        if !new.contains_key(p) {
            out.push(Change::Removed { path: p.clone() });
        }
    }
    // Deterministic order for consumers and tests.
    out.sort_by(|a, b| a.path().cmp(&b.path()));
    out
}

/// A polling feed for any storage: lists `dir` now (the baseline, not reported), then
/// every `interval` lists it again and yields one [`Change`] per child whose version,
/// size or kind differ from the previous listing, and per child that disappeared.
///
/// A missing folder counts as empty. A failed listing yields the error as one `Err`
/// item and polling goes on at the next tick (the baseline is kept). The first listing
/// failing (other than `NotFound`) fails this call. Uses tokio's timer, so it needs a
/// tokio runtime with time enabled.
pub async fn poll(
    storage: Arc<dyn Storage>,
    dir: &RemotePath,
    interval: Duration,
) -> Result<ChangeStream> {
    let baseline = snapshot(storage.as_ref(), dir).await?;
    struct State {
        storage: Arc<dyn Storage>,
        dir: RemotePath,
        last: HashMap<RemotePath, Entry>,
        pending: std::collections::VecDeque<Change>,
        ticker: tokio::time::Interval,
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = State {
        storage,
        dir: dir.clone(),
        last: baseline,
        pending: Default::default(),
        ticker,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(c) = st.pending.pop_front() {
                return Some((Ok(c), st));
            }
            st.ticker.tick().await;
            match snapshot(st.storage.as_ref(), &st.dir).await {
                Ok(now) => {
                    st.pending.extend(diff(&st.last, &now));
                    st.last = now;
                }
                Err(e) => return Some((Err(e), st)),
            }
        }
    });
    Ok(ChangeStream::new(stream))
}

/// [`Storage::watch`] if the provider has a native feed, else [`poll`] every `interval`.
/// Any error from `watch` other than [`Error::Unsupported`] is returned as is.
pub async fn watch_or_poll(
    storage: Arc<dyn Storage>,
    dir: &RemotePath,
    interval: Duration,
) -> Result<ChangeStream> {
    match storage.watch(dir).await {
        Err(Error::Unsupported { .. }) => poll(storage, dir, interval).await,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store::MemStore;
    use crate::{Body, Precondition};

    fn p(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    #[tokio::test]
    async fn default_watch_is_unsupported() {
        let s = MemStore::new();
        assert!(matches!(
            s.watch(&p("d")).await,
            Err(Error::Unsupported { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_reports_add_modify_remove_not_baseline() {
        let s = Arc::new(MemStore::new());
        s.write(&p("d/old"), Body::from(b"x".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.write(&p("d/gone"), Body::from(b"x".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.write(&p("other/f"), Body::from(b"x".to_vec()), Precondition::None)
            .await
            .unwrap();
        let mut feed = watch_or_poll(s.clone(), &p("d"), Duration::from_secs(5))
            .await
            .unwrap();
        s.write(&p("d/old"), Body::from(b"y".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.write(&p("d/new"), Body::from(b"z".to_vec()), Precondition::None)
            .await
            .unwrap();
        s.delete(&p("d/gone"), Precondition::None).await.unwrap();
        s.write(&p("other/f"), Body::from(b"y".to_vec()), Precondition::None)
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(feed.next().await.unwrap().unwrap());
        }
        assert!(matches!(&got[0], Change::Removed { path } if path == &p("d/gone")));
        assert!(
            matches!(&got[1], Change::Changed { path, entry: Some(e) } if path == &p("d/new") && e.size == 1)
        );
        assert!(matches!(&got[2], Change::Changed { path, .. } if path == &p("d/old")));
        // Nothing else changes: the next poll yields nothing, so `next` waits.
        let quiet = tokio::time::timeout(Duration::from_secs(60), feed.next()).await;
        assert!(quiet.is_err(), "unexpected change: {quiet:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn poll_missing_dir_reports_creation() {
        let s = Arc::new(MemStore::new());
        let mut feed = poll(s.clone(), &p("later"), Duration::from_secs(1))
            .await
            .unwrap();
        s.write(&p("later/a"), Body::from(Vec::new()), Precondition::None)
            .await
            .unwrap();
        assert_eq!(
            feed.next().await.unwrap().unwrap().path(),
            Some(&p("later/a"))
        );
    }

    #[tokio::test]
    async fn channel_stream_ends_with_senders() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut feed = ChangeStream::from_receiver(rx);
        tx.send(Ok(Change::Rescan)).await.unwrap();
        drop(tx);
        assert_eq!(feed.next().await.unwrap().unwrap(), Change::Rescan);
        assert!(feed.next().await.is_none());
    }
}
