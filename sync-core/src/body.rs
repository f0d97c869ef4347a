//! What goes into a write and comes out of a read.

use crate::Error;
use bytes::Bytes;
use futures_core::Stream;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::Version;

/// A stream of bytes read from a storage. Errors carry the storage's [`Error`].
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send + 'static>>;

/// Makes the stream of a [`Body::Stream`] from its first byte; called once per open.
pub type StreamSource = Arc<dyn Fn() -> ByteStream + Send + Sync>;

/// The body of a write. It can be opened more than once, so a write can be retried
/// from the start without the caller keeping the whole file in memory.
#[derive(Clone)]
pub enum Body {
    /// Bytes held in memory (small files: vault.json, lock files, probes).
    Bytes(Bytes),
    /// A local file, streamed from disk; it must not change while the write runs.
    File {
        /// Where the file is.
        path: PathBuf,
        /// Its length in bytes, taken when the body was made.
        len: u64,
    },
    /// Bytes from a stream made on demand: `open` is called once per attempt and must
    /// start from the first byte. A stream that fails, or that yields another number
    /// of bytes than `len`, makes the write fail: a provider abandons its request
    /// mid-body and leaves the previous content current. The honesty probe uses one
    /// that fails half-way to see whether a cut upload truncates the file.
    Stream {
        /// The number of bytes the stream must yield.
        len: u64,
        /// Makes the stream.
        open: StreamSource,
    },
}

impl Body {
    /// A body from a local file; reads its length now.
    pub async fn from_file(path: impl Into<PathBuf>) -> Result<Body, Error> {
        let path = path.into();
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|e| Error::from_io(e, &path.display().to_string()))?
            .len();
        Ok(Body::File { path, len })
    }

    /// A body of `len` bytes read from the streams `open` makes (see [`Body::Stream`]).
    pub fn from_stream(len: u64, open: impl Fn() -> ByteStream + Send + Sync + 'static) -> Body {
        Body::Stream {
            len,
            open: Arc::new(open),
        }
    }

    /// The number of bytes the body holds.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } | Body::Stream { len, .. } => *len,
        }
    }

    /// True when the body holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens the body for reading from its first byte.
    ///
    /// Inside [`Meter::scope`](crate::progress::Meter::scope) (an upload whose progress
    /// is reported) the bytes read from the returned reader are counted on that meter,
    /// and every open after the first is reported as a restart.
    pub async fn open(
        &self,
    ) -> Result<Pin<Box<dyn tokio::io::AsyncRead + Send + Sync + 'static>>, Error> {
        let reader: Pin<Box<dyn tokio::io::AsyncRead + Send + Sync + 'static>> = match self {
            Body::Bytes(b) => Box::pin(std::io::Cursor::new(b.clone())),
            Body::File { path, .. } => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::from_io(e, &path.display().to_string()))?;
                Box::pin(f)
            }
            Body::Stream { open, .. } => Box::pin(StreamReader {
                stream: std::sync::Mutex::new(open()),
                chunk: Bytes::new(),
            }),
        };
        Ok(match crate::progress::Meter::current() {
            Some(meter) if meter.is_enabled() => {
                meter.body_opened(self.len());
                Box::pin(crate::progress::CountingReader {
                    inner: reader,
                    meter,
                })
            }
            _ => reader,
        })
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Body::File { path, len } => write!(f, "Body::File({}, {len} bytes)", path.display()),
            Body::Stream { len, .. } => write!(f, "Body::Stream({len} bytes)"),
        }
    }
}

/// A [`ByteStream`] as an `AsyncRead` (for [`Body::open`]). A stream error becomes an
/// I/O error carrying the storage error as its source.
struct StreamReader {
    /// In a mutex only to be `Sync` (as `open` promises); reached through `get_mut`,
    /// never locked.
    stream: std::sync::Mutex<ByteStream>,
    chunk: Bytes,
}

impl tokio::io::AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        use futures_util::StreamExt;
        let this = &mut *self;
        while this.chunk.is_empty() {
            let stream = this.stream.get_mut().unwrap_or_else(|p| p.into_inner());
            match stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(b))) => this.chunk = b,
                // `Other`, whatever the cause: a reader must not take it for a
                // passing `Interrupted` and read on.
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
        let n = this.chunk.len().min(buf.remaining());
        let head = this.chunk.split_to(n);
        buf.put_slice(&head);
        Poll::Ready(Ok(()))
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Bytes(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::Bytes(Bytes::from(b))
    }
}

/// An open read: the version of what is being read, when the storage tells it in the
/// same response, and the bytes.
pub struct Download {
    /// The version of the bytes in `stream`, if the storage reports it with the read
    /// (an ETag header, a Dropbox rev). `None` means: unknown, `stat` separately.
    pub version: Option<Version>,
    /// The size announced by the storage, if any.
    pub size: Option<u64>,
    /// The content.
    pub stream: ByteStream,
}

impl Download {
    /// A download of bytes already in memory (streamed in 64 KiB chunks), for
    /// providers that receive a whole body at once and for tests.
    pub fn from_bytes(bytes: Bytes, version: Option<Version>) -> Download {
        const CHUNK: usize = 64 * 1024;
        let size = bytes.len() as u64;
        let chunks: Vec<Result<Bytes, Error>> = (0..bytes.len())
            .step_by(CHUNK)
            .map(|i| Ok(bytes.slice(i..(i + CHUNK).min(bytes.len()))))
            .collect();
        Download {
            version,
            size: Some(size),
            stream: Box::pin(futures_util::stream::iter(chunks)),
        }
    }
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("version", &self.version)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn download_from_bytes_chunks_and_reassembles() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut d = Download::from_bytes(Bytes::from(data.clone()), Some(Version::new("v")));
        assert_eq!(d.size, Some(200_000));
        let mut back = Vec::new();
        let mut chunks = 0;
        while let Some(c) = d.stream.next().await {
            back.extend_from_slice(&c.unwrap());
            chunks += 1;
        }
        assert_eq!(back, data);
        assert_eq!(chunks, 4);
        let mut empty = Download::from_bytes(Bytes::new(), None);
        assert!(empty.stream.next().await.is_none());
    }
}
