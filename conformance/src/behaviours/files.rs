//! Files: what a write stores, what a read and `stat` see after it, and that a failed write leaves the old file.

use super::*;

/// Files of 0 bytes to several MiB (capped by `max_single_write` unless the provider
/// chunks) are written — small ones as `Body::Bytes`, large ones as `Body::File` — and
/// read back byte for byte; the write's entry, `stat` and the read agree on size and
/// version.
pub async fn round_trips(s: &dyn Storage, dir: &RemotePath) -> Check {
    let caps = s.capabilities();
    let cap = match (caps.max_single_write, caps.chunked_upload) {
        (Some(m), false) => m,
        _ => u64::MAX,
    };
    let sizes = [
        0usize,
        1,
        100,
        65_535,
        65_536,
        65_537,
        (1 << 20) + 7,
        (4 << 20) + 3,
    ];
    for (i, &len) in sizes.iter().filter(|&&l| l as u64 <= cap).enumerate() {
        let path = p(dir, &format!("size-{len}.bin"))?;
        let data = pattern(len, i as u64 + 1);
        let (body, _tmp) = if len > 65_537 {
            let t = TempFile::new(&data)?;
            let b = Body::from_file(t.0.clone()).await?;
            (b, Some(t))
        } else {
            (Body::from(data.clone()), None)
        };
        let e = s.write(&path, body, Precondition::None).await?;
        ensure!(
            e.size == len as u64,
            "write of {len} bytes returned size {}",
            e.size
        );
        let v = e.version.clone();
        ensure!(v.is_some(), "write of {len} bytes returned no version");
        let st = s.stat(&path).await?;
        let st =
            st.ok_or_else(|| Failure::new(format!("stat {path} after writing it: nothing there")))?;
        ensure!(
            st.kind == EntryKind::File && st.size == len as u64,
            "stat {path}: {st:?}, expected a file of {len} bytes"
        );
        ensure!(
            st.version == v,
            "stat {path} version {:?} differs from the write's {:?}",
            st.version,
            v
        );
        let mut dl = s.read(&path).await?;
        if let Some(sz) = dl.size {
            ensure!(
                sz == len as u64,
                "read {path} announced {sz} bytes, expected {len}"
            );
        }
        if let Some(rv) = &dl.version {
            ensure!(
                Some(rv) == v.as_ref(),
                "read {path} reported version {rv:?}, the write returned {v:?}"
            );
        }
        let mut back = Vec::with_capacity(len);
        while let Some(chunk) = dl.stream.next().await {
            back.extend_from_slice(&chunk?);
        }
        ensure!(
            back == data,
            "{len}-byte round trip differs: read {} bytes, first difference at byte {}",
            back.len(),
            first_difference(&back, &data)
        );
    }
    Ok(Outcome::Passed)
}

/// An overwrite with shorter content is what the next read and `stat` see.
pub async fn overwrite_is_visible(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "overwrite.txt")?;
    put(s, &f, b"the old and longer content", Precondition::None).await?;
    let v = put(s, &f, b"new", Precondition::None).await?;
    let back = content(s, &f).await?;
    ensure!(
        back == b"new",
        "after an overwrite the read returned {:?}",
        String::from_utf8_lossy(&back)
    );
    let st = s
        .stat(&f)
        .await?
        .ok_or_else(|| Failure::new("stat after overwrite: nothing there"))?;
    ensure!(
        st.size == 3,
        "stat after overwrite reports {} bytes, expected 3",
        st.size
    );
    ensure!(
        st.version == Some(v),
        "stat after overwrite reports a different version than the write"
    );
    Ok(Outcome::Passed)
}

/// Every write of new content gives a new version, also two same-size writes in the
/// same second; `stat` reports the version the write returned.
pub async fn versions_change_on_every_write(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "versions.txt")?;
    let mut seen = Vec::new();
    for content in [b"aaaa", b"bbbb", b"cccc", b"dddd"] {
        let v = put(s, &f, content, Precondition::None).await?;
        ensure!(
            !seen.contains(&v),
            "two same-size writes in a row got the same version {v:?}"
        );
        let st = s.stat(&f).await?.and_then(|e| e.version);
        ensure!(
            st.as_ref() == Some(&v),
            "stat reports version {st:?}, the write returned {v:?}"
        );
        seen.push(v);
    }
    Ok(Outcome::Passed)
}

/// Writes that fail — a `Body::File` whose file is gone, or whose file is shorter than
/// the body declares (it changed mid-way) — return an error, leave the previous
/// version current (same bytes, same version), and leave no stray file in the listing.
pub async fn failed_write_keeps_previous(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "precious.txt")?;
    let v = put(s, &f, b"previous content", Precondition::None).await?;
    let before = names(&s.list(dir).await?);

    let gone = std::env::temp_dir().join(format!(
        "syncfabric-conformance-gone-{:016x}",
        fastrand::u64(..)
    ));
    let shrunk_data = pattern(100_000, 7);
    let shrunk = TempFile::new(&shrunk_data[..40_000])?;
    let cases = [
        (
            "a body file that does not exist",
            Body::File {
                path: gone,
                len: 100_000,
            },
        ),
        (
            "a body file shorter than declared",
            Body::File {
                path: shrunk.0.clone(),
                len: 100_000,
            },
        ),
    ];
    for (what, body) in cases {
        for pre in [Precondition::None, Precondition::IfMatch(v.clone())] {
            let r = s.write(&f, body.clone(), pre.clone()).await;
            ensure!(r.is_err(), "a write of {what} ({pre:?}) succeeded: {r:?}");
            let back = content(s, &f).await?;
            ensure!(
                back == b"previous content",
                "after a failed write of {what} the file holds {} other bytes",
                back.len()
            );
            let st = s.stat(&f).await?.and_then(|e| e.version);
            ensure!(
                st.as_ref() == Some(&v),
                "after a failed write of {what} the version changed"
            );
            let now = names(&s.list(dir).await?);
            ensure!(
                now == before,
                "a failed write of {what} left stray files: {:?}",
                now.difference(&before).collect::<Vec<_>>()
            );
        }
        let fresh = p(dir, "never-written.bin")?;
        let r = s.write(&fresh, body.clone(), Precondition::None).await;
        ensure!(r.is_err(), "a new-file write of {what} succeeded");
        ensure!(
            s.stat(&fresh).await?.is_none(),
            "a failed new-file write of {what} left the file"
        );
    }
    Ok(Outcome::Passed)
}

/// Where `read_after_write` is claimed, each read right after a write returns what was
/// written and each `stat` its version.
pub async fn read_after_write(s: &dyn Storage, dir: &RemotePath) -> Check {
    if !s.capabilities().read_after_write {
        return Ok(Outcome::Skipped(
            "read-after-write consistency is not claimed".into(),
        ));
    }
    let f = p(dir, "raw.txt")?;
    for i in 0..10u32 {
        let data = format!("generation {i}");
        let v = put(s, &f, data.as_bytes(), Precondition::None).await?;
        let (back, rv) = read_all(s, &f).await?;
        ensure!(
            back == data.as_bytes(),
            "read right after write {i} returned {:?}",
            String::from_utf8_lossy(&back)
        );
        if let Some(rv) = rv {
            ensure!(
                rv == v,
                "read right after write {i} reported an older version"
            );
        }
        let st = s.stat(&f).await?.and_then(|e| e.version);
        ensure!(
            st == Some(v),
            "stat right after write {i} reported another version"
        );
    }
    Ok(Outcome::Passed)
}
