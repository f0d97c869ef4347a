//! Bodies: an answer read up to a cap ([`read_capped`], [`read_json`]), an answer
//! streamed with its length checked ([`sized_stream`]), and a slice of a request
//! body read before it is sent ([`read_range`]).

use crate::{body_error, transport_error};
use bytes::Bytes;
use futures_util::StreamExt;
use syncfabric_core::{Body, ByteStream, Error};

/// The largest JSON answer [`read_json`] reads into memory.
pub const MAX_JSON: usize = 8 * 1024 * 1024;

/// Reads an answer's body, at most `cap` bytes: a longer one (by `Content-Length` or
/// as it streams) is [`Error::Corrupt`], a body that breaks off [`Error::Transient`].
/// `what` names the request in errors (a path, never a URL).
pub async fn read_capped(
    resp: reqwest::Response,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, Error> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Error::Corrupt {
            message: format!("{what}: answer larger than the {cap}-byte cap"),
        });
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(e, what))?;
        if out.len() + chunk.len() > cap {
            return Err(Error::Corrupt {
                message: format!("{what}: answer larger than the {cap}-byte cap"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads a JSON answer of at most [`MAX_JSON`] bytes as `T`; JSON of another shape
/// is [`Error::Corrupt`] ("{what}: {server} answered with unexpected JSON").
pub async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
    server: &str,
) -> Result<T, Error> {
    let raw = read_capped(resp, MAX_JSON, what).await?;
    serde_json::from_slice(&raw).map_err(|e| Error::Corrupt {
        message: format!("{what}: {server} answered with unexpected JSON: {e}"),
    })
}

/// An answer's bytes as a stream that fails ([`Error::Transient`]) when the body
/// breaks off, or when it ends short of (or past) `size`, when known: a caller
/// never takes a cut file for a whole one. Errors name `what`, never the URL.
pub fn sized_stream(resp: reqwest::Response, size: Option<u64>, what: String) -> ByteStream {
    let inner = resp.bytes_stream().boxed();
    Box::pin(futures_util::stream::unfold(
        (inner, 0u64, false),
        move |(mut inner, seen, done)| {
            let what = what.clone();
            async move {
                if done {
                    return None;
                }
                match inner.next().await {
                    Some(Ok(chunk)) => {
                        let seen = seen + chunk.len() as u64;
                        Some((Ok(chunk), (inner, seen, false)))
                    }
                    Some(Err(e)) => Some((Err(transport_error(e, &what)), (inner, seen, true))),
                    None if size.is_some_and(|n| n != seen) => {
                        let m = format!("{what}: the download ended early ({seen} bytes)");
                        Some((Err(Error::transient(m)), (inner, seen, true)))
                    }
                    None => None,
                }
            }
        },
    ))
}

/// Bytes `offset..offset + len` of `body`; a body that fails or holds fewer bytes
/// than declared fails here ([`body_length_error`]), before any request carries
/// it. A [`Body::Bytes`] is sliced without a copy; a file is read from `offset`; a
/// stream is opened and read from its start.
pub async fn read_range(body: &Body, offset: u64, len: u64, what: &str) -> Result<Bytes, Error> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |e| Error::from_io(e, what);
    let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
    match body {
        Body::Bytes(b) => {
            let end = offset.saturating_add(len).min(b.len() as u64);
            return Ok(b.slice(offset.min(end) as usize..end as usize));
        }
        Body::File { path, .. } => {
            let mut f = tokio::fs::File::open(path).await.map_err(io)?;
            f.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
            f.take(len).read_to_end(&mut out).await.map_err(io)?;
        }
        Body::Stream { .. } => {
            let mut r = body.open().await?;
            tokio::io::copy(&mut (&mut r).take(offset), &mut tokio::io::sink())
                .await
                .map_err(io)?;
            (&mut r).take(len).read_to_end(&mut out).await.map_err(io)?;
        }
    }
    if out.len() as u64 != len {
        return Err(body_length_error(
            what,
            body.len(),
            offset + out.len() as u64,
        ));
    }
    Ok(Bytes::from(out))
}

/// A request body that does not hold the bytes it declared (a file changed during
/// the write): [`Error::Io`], a failed write that is never retried.
pub fn body_length_error(what: &str, declared: u64, actual: u64) -> Error {
    Error::Io {
        path: what.to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the body holds {actual} bytes, {declared} were declared (it changed during the write)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranges_of_every_body() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let dir = std::env::temp_dir().join(format!("sf-http-range-{}", std::process::id()));
        std::fs::write(&dir, &data).unwrap();
        let file = Body::File {
            path: dir.clone(),
            len: 1000,
        };
        let bytes = Body::from(data.clone());
        for b in [&bytes, &file] {
            assert_eq!(read_range(b, 10, 20, "x").await.unwrap(), &data[10..30]);
            assert_eq!(read_range(b, 0, 1000, "x").await.unwrap(), &data[..]);
        }
        // The file shrank after the body was made: an error, not a short slice.
        std::fs::write(&dir, &data[..500]).unwrap();
        let e = read_range(&file, 400, 200, "f").await.unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("holds 500 bytes, 1000 were declared"),
            "{e}"
        );
        let _ = std::fs::remove_file(&dir);
    }
}
