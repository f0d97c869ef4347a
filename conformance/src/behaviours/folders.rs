//! Folders: listing, idempotent deletes, parents created by a write.

use super::*;

/// `list` of an empty folder is empty, of a missing one is `NotFound`, and of nested
/// folders gives direct children only, with full paths, kinds, sizes, and versions on
/// files only. `stat` of a folder is a `Dir` entry without version; of nothing, `None`.
pub async fn list_folders(s: &dyn Storage, dir: &RemotePath) -> Check {
    let empty = p(dir, "empty")?;
    s.create_dir(&empty).await?;
    s.create_dir(&empty)
        .await
        .map_err(|e| Failure::new(format!("create_dir of an existing folder failed: {e}")))?;
    let l = s.list(&empty).await?;
    ensure!(l.is_empty(), "an empty folder lists {:?}", names(&l));
    match s.list(&p(dir, "missing")?).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(Failure::new(format!(
                "listing a missing folder gave {other:?}, expected NotFound"
            )))
        }
    }
    let a = p(dir, "a")?;
    let b = p(&a, "b")?;
    let c = p(&b, "c.txt")?;
    let top = p(&a, "top.txt")?;
    put(s, &c, b"deep", Precondition::None).await?;
    put(s, &top, b"top!!", Precondition::None).await?;
    let la = s.list(&a).await?;
    ensure!(
        la.len() == 2,
        "list {a} gave {} entries: {:?}",
        la.len(),
        names(&la)
    );
    for e in &la {
        if e.path == b {
            ensure!(
                e.kind == EntryKind::Dir && e.version.is_none(),
                "folder entry {e:?}"
            );
        } else if e.path == top {
            ensure!(
                e.kind == EntryKind::File && e.size == 5 && e.version.is_some(),
                "file entry {e:?}"
            );
        } else {
            return Err(Failure::new(format!(
                "list {a} gave an unexpected entry {e:?} (paths must be full)"
            )));
        }
    }
    let lb = s.list(&b).await?;
    ensure!(
        lb.len() == 1 && lb[0].path == c && lb[0].size == 4,
        "list {b} gave {lb:?}"
    );
    let ld = names(&s.list(dir).await?);
    ensure!(
        ld == ["a", "empty"].iter().map(|s| s.to_string()).collect(),
        "list {dir} gave {ld:?}"
    );
    match s.stat(&b).await? {
        Some(e) if e.kind == EntryKind::Dir && e.version.is_none() => {}
        other => return Err(Failure::new(format!("stat of a folder gave {other:?}"))),
    }
    ensure!(
        s.stat(&p(dir, "nothing")?).await?.is_none(),
        "stat of nothing is not None"
    );
    Ok(Outcome::Passed)
}

/// Deleting a missing file, or the same file twice, succeeds; afterwards it is gone
/// from `stat` and `list`.
pub async fn delete_is_idempotent(s: &dyn Storage, dir: &RemotePath) -> Check {
    let f = p(dir, "twice.txt")?;
    let keep = p(dir, "keep.txt")?;
    s.delete(&p(dir, "never-existed.txt")?, Precondition::None)
        .await
        .map_err(|e| Failure::new(format!("deleting a missing file failed: {e}")))?;
    put(s, &f, b"x", Precondition::None).await?;
    put(s, &keep, b"y", Precondition::None).await?;
    s.delete(&f, Precondition::None).await?;
    s.delete(&f, Precondition::None)
        .await
        .map_err(|e| Failure::new(format!("the second delete failed: {e}")))?;
    ensure!(s.stat(&f).await?.is_none(), "a deleted file is still there");
    let l = names(&s.list(dir).await?);
    ensure!(
        l == ["keep.txt".to_string()].into_iter().collect(),
        "after delete the folder lists {l:?}"
    );
    match s.read(&f).await {
        Err(Error::NotFound { .. }) => {}
        other => {
            return Err(Failure::new(format!(
                "reading a deleted file gave {:?}, expected NotFound",
                other.map(|_| ())
            )))
        }
    }
    Ok(Outcome::Passed)
}

/// A write into folders that do not exist yet creates them (parents included), and a
/// `Body::File` write stores the file's bytes.
pub async fn parents_are_created(s: &dyn Storage, dir: &RemotePath) -> Check {
    let deep = p(dir, "x/y/z/file.bin")?;
    put(s, &deep, b"deep", Precondition::None).await?;
    for d in ["x", "x/y", "x/y/z"] {
        match s.stat(&p(dir, d)?).await? {
            Some(e) if e.kind == EntryKind::Dir => {}
            other => {
                return Err(Failure::new(format!(
                    "parent {d} after a deep write: {other:?}"
                )))
            }
        }
    }
    let data = Bytes::from(pattern(5000, 99));
    let t = TempFile::new(&data)?;
    let from_file = p(dir, "from-file.bin")?;
    s.write(
        &from_file,
        Body::from_file(t.0.clone()).await?,
        Precondition::None,
    )
    .await
    .map_err(|e| Failure::new(format!("a write from a local file failed: {e}")))?;
    ensure!(
        content(s, &from_file).await? == data,
        "a Body::File write stored other bytes"
    );
    Ok(Outcome::Passed)
}
