//! Progress of transfers: how many bytes of which file have moved so far, for a person
//! watching a large upload or download.
//!
//! The caller of a transfer (the sync engine) makes a [`Meter`] per file from a
//! [`ProgressHook`] and drives it; the hook receives [`Update`]s. A meter made from no
//! hook ([`Meter::disabled`]) does nothing, so the transfer code is written once.
//!
//! What a hook sees for one transfer, in this order:
//!
//! 1. [`Phase::Started`], `attempt` 1, `done` 0, `total` when known;
//! 2. any number of [`Phase::Advanced`], `done` never decreasing within an attempt;
//! 3. when the transfer starts again from its first byte (a download that broke off,
//!    a write the retry layer replays): [`Phase::Restarted`] with `attempt` one higher
//!    and `done` back at 0, then 2. again. Counts restart because the bytes do: the
//!    file is transferred again from the beginning;
//! 4. exactly one of [`Phase::Finished`] (`done` = the file's size) or
//!    [`Phase::Failed`] (`done` = what the last attempt moved), unless the transfer
//!    never started (then the hook hears nothing at all). A meter dropped while its
//!    transfer runs (the future was cancelled) reports `Failed`.
//!
//! Downloads are counted by their caller as the stream yields chunks. Uploads are
//! counted where the provider reads the [`Body`](crate::Body): run the write inside
//! [`Meter::scope`], and every [`Body::open`](crate::Body::open) in it counts the bytes
//! read from it (each open after the first is a restart). A provider that reads a
//! body file through its own path gives no counts between `Started` and `Finished`,
//! unless it reports them itself through [`Meter::current`], [`Meter::begin_attempt`]
//! and [`Meter::advance`] (the WebDAV and OneDrive providers do).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use syncfabric_core::progress::{Direction, Phase, ProgressHook, Transfer, Update};
//! use syncfabric_core::RemotePath;
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = seen.clone();
//! let hook = ProgressHook::new(move |u: &Update<'_>| log.lock().unwrap().push((u.phase, u.done)));
//! let meter = hook.meter(Transfer {
//!     direction: Direction::Download,
//!     path: RemotePath::parse("v/vault.enpassdb").unwrap(),
//!     label: "database".into(),
//! });
//! meter.start(Some(10));
//! meter.advance(4);
//! meter.advance(6);
//! meter.finish();
//! assert_eq!(
//!     *seen.lock().unwrap(),
//!     [(Phase::Started, 0), (Phase::Advanced, 4), (Phase::Advanced, 10), (Phase::Finished, 10)]
//! );
//! ```

use crate::RemotePath;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Which way the bytes move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From this device to the storage.
    Upload,
    /// From the storage to this device.
    Download,
}

/// One file being transferred, as the caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Which way.
    pub direction: Direction,
    /// The file's path on the storage.
    pub path: RemotePath,
    /// What it is, in words for a person (`"database"`, `"attachment 2 of 5"`); set by
    /// the caller, who must put nothing secret in it.
    pub label: String,
}

/// Where a transfer is. See the [module documentation](self) for the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The first attempt began; `done` is 0.
    Started,
    /// More bytes moved; `done` is the running count of this attempt.
    Advanced,
    /// The transfer began again from its first byte; `done` is 0, `attempt` went up.
    Restarted,
    /// The transfer completed; `done` is the file's size.
    Finished,
    /// The transfer gave up (or its future was dropped); no more updates follow.
    Failed,
}

/// One report to a [`Progress`] hook.
#[derive(Clone, Copy, Debug)]
pub struct Update<'a> {
    /// The file.
    pub transfer: &'a Transfer,
    /// What happened.
    pub phase: Phase,
    /// 1 for the first attempt, one more for each restart.
    pub attempt: u32,
    /// Bytes moved in this attempt.
    pub done: u64,
    /// The file's size, when the storage (download) or the body (upload) tells it.
    pub total: Option<u64>,
}

/// Receives progress updates. Called on the task doing the transfer, in order, once
/// per chunk moved: it must be quick, must not block, and must not call back into the
/// [`Meter`] that called it. Any `Fn(&Update) + Send + Sync` closure is one.
pub trait Progress: Send + Sync {
    /// One update.
    fn update(&self, update: &Update<'_>);
}

impl<F> Progress for F
where
    F: Fn(&Update<'_>) + Send + Sync,
{
    fn update(&self, update: &Update<'_>) {
        self(update)
    }
}

/// A shareable [`Progress`] hook, the form options carry it in (`Clone`, and `Debug`
/// without showing anything of the hook).
#[derive(Clone)]
pub struct ProgressHook(Arc<dyn Progress>);

impl ProgressHook {
    /// Wraps a hook.
    pub fn new(progress: impl Progress + 'static) -> Self {
        ProgressHook(Arc::new(progress))
    }

    /// A meter for one transfer, reporting to this hook. Nothing is reported until
    /// [`Meter::start`].
    pub fn meter(&self, transfer: Transfer) -> Meter {
        Meter(Some(Arc::new(MeterInner {
            hook: self.clone(),
            transfer,
            state: Mutex::new(MeterState::default()),
        })))
    }
}

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook")
    }
}

/// Counts one transfer and reports it to a hook (see the [module documentation](self)
/// for what the hook sees). Clones share the count. A disabled meter does nothing.
#[derive(Clone, Debug)]
pub struct Meter(Option<Arc<MeterInner>>);

struct MeterInner {
    hook: ProgressHook,
    transfer: Transfer,
    state: Mutex<MeterState>,
}

#[derive(Default)]
struct MeterState {
    /// 0 until started.
    attempt: u32,
    done: u64,
    total: Option<u64>,
    ended: bool,
    /// How many times a body was opened in this meter's scope.
    opens: u32,
}

impl std::fmt::Debug for MeterInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("transfer", &self.transfer)
            .finish_non_exhaustive()
    }
}

impl MeterInner {
    /// Runs `change` on the state and reports the phase it returns, under the lock
    /// (so updates reach the hook in the order they happened).
    fn report(&self, change: impl FnOnce(&mut MeterState) -> Option<Phase>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(phase) = change(&mut st) {
            self.hook.0.update(&Update {
                transfer: &self.transfer,
                phase,
                attempt: st.attempt,
                done: st.done,
                total: st.total,
            });
        }
    }
}

impl Drop for MeterInner {
    fn drop(&mut self) {
        self.report(|st| (st.attempt > 0 && !st.ended).then_some(Phase::Failed));
    }
}

tokio::task_local! {
    static CURRENT_UPLOAD: Meter;
}

impl Meter {
    /// A meter that reports nothing (no hook was given).
    pub fn disabled() -> Meter {
        Meter(None)
    }

    /// Whether this meter reports to a hook.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The transfer this meter counts (`None` when disabled).
    pub fn transfer(&self) -> Option<&Transfer> {
        self.0.as_ref().map(|m| &m.transfer)
    }

    /// Begins an attempt from the first byte: `Started` the first time, `Restarted`
    /// after that; `done` goes back to 0 and `total` becomes the one given. Ignored
    /// once the meter finished or failed.
    pub fn start(&self, total: Option<u64>) {
        if let Some(m) = &self.0 {
            m.report(|st| {
                if st.ended {
                    return None;
                }
                st.attempt += 1;
                st.done = 0;
                st.total = total;
                Some(if st.attempt == 1 {
                    Phase::Started
                } else {
                    Phase::Restarted
                })
            });
        }
    }

    /// `bytes` more moved in this attempt. Ignored before [`start`](Self::start),
    /// after the end, and for 0 bytes.
    pub fn advance(&self, bytes: u64) {
        if let Some(m) = &self.0 {
            m.report(|st| {
                if st.attempt == 0 || st.ended || bytes == 0 {
                    return None;
                }
                st.done = st.done.saturating_add(bytes);
                Some(Phase::Advanced)
            });
        }
    }

    /// The transfer completed. A successful transfer moved every byte, so `done`
    /// becomes the total when one is known (a provider that read the body its own
    /// way counted nothing), else stays the count. Ignored before `start` and after
    /// the end.
    pub fn finish(&self) {
        if let Some(m) = &self.0 {
            m.report(|st| {
                if st.attempt == 0 || st.ended {
                    return None;
                }
                st.ended = true;
                if let Some(t) = st.total {
                    st.done = st.done.max(t);
                }
                Some(Phase::Finished)
            });
        }
    }

    /// The transfer gave up. Ignored before `start` (a transfer that never began,
    /// such as a read of a missing file, is not reported at all) and after the end.
    pub fn fail(&self) {
        if let Some(m) = &self.0 {
            m.report(|st| {
                if st.attempt == 0 || st.ended {
                    return None;
                }
                st.ended = true;
                Some(Phase::Failed)
            });
        }
    }

    /// Runs `fut` (a storage write) with this meter as the current upload meter, so
    /// every [`Body::open`](crate::Body::open) inside it counts the bytes read from
    /// the body. The first open continues the attempt begun by [`start`](Self::start)
    /// (or starts one with the body's length); each later open is a restart.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        if self.0.is_none() {
            return fut.await;
        }
        CURRENT_UPLOAD.scope(self.clone(), fut).await
    }

    /// The meter of the upload the calling task is in (see [`scope`](Self::scope)), for
    /// a provider that reads a body file its own way (e.g. on a blocking thread) and
    /// wants to report its progress with [`advance`](Self::advance).
    pub fn current() -> Option<Meter> {
        CURRENT_UPLOAD.try_with(|m| m.clone()).ok()
    }

    /// For a provider that sends a body its own way (see [`current`](Self::current)):
    /// an attempt starts sending `len` bytes from the first one. The first call
    /// continues the attempt the caller began with [`start`](Self::start); each later
    /// call is a restart (`done` back to 0), as a later [`Body::open`](crate::Body::open)
    /// would be.
    pub fn begin_attempt(&self, len: u64) {
        self.body_opened(len)
    }

    /// Called by `Body::open` inside a scope: see [`scope`](Self::scope).
    pub(crate) fn body_opened(&self, len: u64) {
        let Some(m) = &self.0 else {
            return;
        };
        let restart = match m.state.lock() {
            Ok(mut st) => {
                st.opens += 1;
                st.attempt == 0 || st.opens > 1
            }
            Err(_) => false,
        };
        if restart {
            self.start(Some(len));
        }
    }
}

/// A reader that reports the bytes read through it to a meter.
pub(crate) struct CountingReader {
    pub(crate) inner: Pin<Box<dyn AsyncRead + Send + Sync + 'static>>,
    pub(crate) meter: Meter,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let n = buf.filled().len().saturating_sub(before);
            self.meter.advance(n as u64);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store::MemStore;
    use crate::{Body, Precondition, Storage};
    use bytes::Bytes;

    type Log = Arc<Mutex<Vec<(Phase, u32, u64, Option<u64>)>>>;

    fn recording() -> (ProgressHook, Log) {
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let hook = ProgressHook::new(move |u: &Update<'_>| {
            l.lock()
                .unwrap()
                .push((u.phase, u.attempt, u.done, u.total));
        });
        (hook, log)
    }

    fn transfer(direction: Direction) -> Transfer {
        Transfer {
            direction,
            path: RemotePath::parse("v/file").unwrap(),
            label: "file".into(),
        }
    }

    /// Checks the documented order: Started first, counts never fall within an
    /// attempt, restarts go back to 0 with the attempt one up, one terminal update.
    fn check_order(log: &[(Phase, u32, u64, Option<u64>)]) {
        assert_eq!(
            log.first().map(|e| (e.0, e.1, e.2)),
            Some((Phase::Started, 1, 0))
        );
        let mut last = 0;
        let mut attempt = 1;
        for (i, &(phase, a, done, _)) in log.iter().enumerate().skip(1) {
            match phase {
                Phase::Advanced => assert!(done > last && a == attempt, "{log:?}"),
                Phase::Restarted => {
                    assert_eq!((a, done), (attempt + 1, 0), "{log:?}");
                    attempt = a;
                }
                Phase::Finished | Phase::Failed => assert_eq!(i, log.len() - 1, "{log:?}"),
                Phase::Started => panic!("second Started: {log:?}"),
            }
            last = done;
        }
    }

    #[tokio::test]
    async fn upload_through_body_open_counts_every_byte() {
        let store = MemStore::new();
        let (hook, log) = recording();
        let data = Bytes::from(vec![7u8; 300_000]);
        let body = Body::from(data.clone());
        let meter = hook.meter(transfer(Direction::Upload));
        meter.start(Some(body.len()));
        let path = RemotePath::parse("v/file").unwrap();
        meter
            .scope(store.write(&path, body, Precondition::None))
            .await
            .unwrap();
        meter.finish();
        let log = log.lock().unwrap().clone();
        check_order(&log);
        assert!(
            log.iter().filter(|e| e.0 == Phase::Advanced).count() >= 1,
            "{log:?}"
        );
        let advanced: Vec<u64> = log
            .iter()
            .filter(|e| e.0 == Phase::Advanced)
            .map(|e| e.2)
            .collect();
        assert_eq!(advanced.last(), Some(&300_000));
        assert_eq!(
            log.last(),
            Some(&(Phase::Finished, 1, 300_000, Some(300_000)))
        );
    }

    #[tokio::test]
    async fn a_second_open_is_a_restart_and_opens_outside_a_scope_count_nothing() {
        let (hook, log) = recording();
        let body = Body::from(vec![1u8; 1000]);
        let meter = hook.meter(transfer(Direction::Upload));
        meter.start(Some(1000));
        meter
            .scope(async {
                for _ in 0..2 {
                    let mut r = body.open().await.unwrap();
                    let mut sink = Vec::new();
                    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut sink)
                        .await
                        .unwrap();
                }
            })
            .await;
        // Outside the scope: not counted.
        let mut r = body.open().await.unwrap();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut Vec::new())
            .await
            .unwrap();
        meter.finish();
        let log = log.lock().unwrap().clone();
        check_order(&log);
        let restarts: Vec<_> = log.iter().filter(|e| e.0 == Phase::Restarted).collect();
        assert_eq!(restarts, [&(Phase::Restarted, 2, 0, Some(1000))]);
        assert_eq!(log.last(), Some(&(Phase::Finished, 2, 1000, Some(1000))));
        let total_advanced: u64 = log
            .iter()
            .filter(|e| e.0 == Phase::Advanced && e.1 == 2)
            .map(|e| e.2)
            .max()
            .unwrap();
        assert_eq!(total_advanced, 1000);
    }

    #[test]
    fn dropped_mid_transfer_is_failed_and_unstarted_says_nothing() {
        let (hook, log) = recording();
        let m = hook.meter(transfer(Direction::Download));
        m.fail();
        drop(m);
        assert!(log.lock().unwrap().is_empty());
        let m = hook.meter(transfer(Direction::Download));
        m.start(None);
        m.advance(5);
        let m2 = m.clone();
        drop(m);
        assert_eq!(log.lock().unwrap().len(), 2, "a clone keeps it running");
        drop(m2);
        let log = log.lock().unwrap().clone();
        check_order(&log);
        assert_eq!(log.last(), Some(&(Phase::Failed, 1, 5, None)));
        // After the end nothing more is reported.
        let (hook, log) = recording();
        let m = hook.meter(transfer(Direction::Download));
        m.start(Some(3));
        m.finish();
        m.advance(9);
        m.start(Some(3));
        m.fail();
        assert_eq!(log.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_disabled_meter_is_inert() {
        let m = Meter::disabled();
        assert!(!m.is_enabled() && m.transfer().is_none());
        m.start(Some(1));
        m.advance(1);
        m.finish();
        assert!(Meter::current().is_none());
        assert_eq!(
            format!("{:?}", ProgressHook::new(|_: &Update<'_>| {})),
            "ProgressHook"
        );
    }
}
