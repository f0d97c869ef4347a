//! Preconditions: `IfAbsent`, `IfMatch` (stale and missing), conditional deletes, and the honesty probe.

use super::*;

/// What a precondition the provider does not claim must do: be refused with
/// `Unsupported`, or be honoured. Returns `Ok(true)` if refused as unsupported.
fn unsupported_or<T>(r: &Result<T, Error>, claimed: bool, what: &str) -> Result<bool, Failure> {
    match r {
        Err(Error::Unsupported { .. }) if !claimed => Ok(true),
        Err(Error::Unsupported { message }) => Err(Failure::new(format!(
            "{what}: claimed by the capabilities but refused as unsupported: {message}"
        ))),
        _ => Ok(false),
    }
}

/// `IfAbsent` twice on one path: the first creates the file, the second fails with
/// `AlreadyExists` and leaves the first content. (Not claimed: `Unsupported` is fine.)
pub async fn if_absent_twice(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().if_absent;
    let f = p(dir, "if-absent.txt")?;
    let first = s
        .write(&f, Body::from(b"first".to_vec()), Precondition::IfAbsent)
        .await;
    if unsupported_or(&first, claimed, "IfAbsent")? {
        return Ok(Outcome::Skipped(
            "IfAbsent is not supported (refused with Unsupported)".into(),
        ));
    }
    first.map_err(|e| Failure::new(format!("IfAbsent on a new file failed: {e}")))?;
    let second = s
        .write(&f, Body::from(b"SECOND".to_vec()), Precondition::IfAbsent)
        .await;
    match second {
        Err(Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(Failure::new(
                "the second IfAbsent write was accepted: IfAbsent is ignored",
            ))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "the second IfAbsent write failed with {e}, expected AlreadyExists"
            )))
        }
    }
    let back = content(s, &f).await?;
    ensure!(
        back == b"first",
        "a refused IfAbsent write changed the content to {:?}",
        String::from_utf8_lossy(&back)
    );
    Ok(Outcome::Passed)
}

/// `IfMatch` with a stale version fails with `PreconditionFailed` and leaves the
/// content; `IfMatch` with the current version succeeds. (Not claimed: `Unsupported`.)
pub async fn if_match_stale(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().if_match;
    let f = p(dir, "if-match.txt")?;
    let v1 = put(s, &f, b"one", Precondition::None).await?;
    let v2 = put(s, &f, b"two", Precondition::None).await?;
    let stale = s
        .write(&f, Body::from(b"lost".to_vec()), Precondition::IfMatch(v1))
        .await;
    if unsupported_or(&stale, claimed, "IfMatch")? {
        return Ok(Outcome::Skipped(
            "IfMatch is not supported (refused with Unsupported)".into(),
        ));
    }
    match stale {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(_) => {
            return Err(Failure::new(
                "a write with a stale IfMatch was accepted: IfMatch is ignored",
            ))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "a stale IfMatch write failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    let back = content(s, &f).await?;
    ensure!(
        back == b"two",
        "a refused IfMatch write changed the content to {:?}",
        String::from_utf8_lossy(&back)
    );
    let v3 = s
        .write(
            &f,
            Body::from(b"three".to_vec()),
            Precondition::IfMatch(v2.clone()),
        )
        .await
        .map_err(|e| Failure::new(format!("IfMatch with the current version was refused: {e}")))?;
    ensure!(
        v3.version.as_ref() != Some(&v2),
        "a successful IfMatch write kept the old version"
    );
    ensure!(
        content(s, &f).await? == b"three",
        "IfMatch write with the current version did not land"
    );
    Ok(Outcome::Passed)
}

/// `IfMatch` on a file that does not exist (never did, or was deleted) fails with
/// `PreconditionFailed` and creates nothing.
pub async fn if_match_missing(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().if_match;
    let f = p(dir, "never.txt")?;
    let donor = p(dir, "donor.txt")?;
    let v = put(s, &donor, b"donor", Precondition::None).await?;
    let r = s
        .write(
            &f,
            Body::from(b"x".to_vec()),
            Precondition::IfMatch(v.clone()),
        )
        .await;
    if unsupported_or(&r, claimed, "IfMatch")? {
        return Ok(Outcome::Skipped(
            "IfMatch is not supported (refused with Unsupported)".into(),
        ));
    }
    match r {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(_) => {
            return Err(Failure::new(
                "IfMatch on a missing file was accepted (it created the file)",
            ))
        }
        Err(e) => {
            return Err(Failure::new(format!(
                "IfMatch on a missing file failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        s.stat(&f).await?.is_none(),
        "a refused IfMatch write created the file"
    );
    s.delete(&donor, Precondition::None).await?;
    match s
        .write(&donor, Body::from(b"x".to_vec()), Precondition::IfMatch(v))
        .await
    {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(_) => return Err(Failure::new("IfMatch on a deleted file was accepted")),
        Err(e) => {
            return Err(Failure::new(format!(
                "IfMatch on a deleted file failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        s.stat(&donor).await?.is_none(),
        "a refused IfMatch write re-created a deleted file"
    );
    Ok(Outcome::Passed)
}

/// A delete with a stale `IfMatch` fails with `PreconditionFailed` and leaves the file;
/// with the current version it deletes; on a missing file it is `PreconditionFailed`.
/// (Conditional delete not claimed: `Unsupported`.)
pub async fn delete_stale_if_match(s: &dyn Storage, dir: &RemotePath) -> Check {
    let claimed = s.capabilities().conditional_delete;
    let f = p(dir, "delete-me.txt")?;
    let v1 = put(s, &f, b"one", Precondition::None).await?;
    let v2 = put(s, &f, b"two", Precondition::None).await?;
    let r = s.delete(&f, Precondition::IfMatch(v1.clone())).await;
    if unsupported_or(&r, claimed, "conditional delete")? {
        return Ok(Outcome::Skipped(
            "conditional delete is not supported (refused with Unsupported)".into(),
        ));
    }
    match r {
        Err(Error::PreconditionFailed { .. }) => {}
        Ok(()) => return Err(Failure::new("a delete with a stale IfMatch was accepted")),
        Err(e) => {
            return Err(Failure::new(format!(
                "a stale conditional delete failed with {e}, expected PreconditionFailed"
            )))
        }
    }
    ensure!(
        content(s, &f).await? == b"two",
        "a refused conditional delete changed the file"
    );
    s.delete(&f, Precondition::IfMatch(v2.clone()))
        .await
        .map_err(|e| Failure::new(format!("delete with the current version failed: {e}")))?;
    ensure!(
        s.stat(&f).await?.is_none(),
        "a conditional delete reported success but the file is still there"
    );
    match s.delete(&f, Precondition::IfMatch(v2)).await {
        Err(Error::PreconditionFailed { .. }) => {}
        other => {
            return Err(Failure::new(format!(
                "IfMatch delete of a missing file gave {other:?}, expected PreconditionFailed"
            )))
        }
    }
    Ok(Outcome::Passed)
}

/// The honesty probe finds every claim true, finds that a write cut mid-body leaves
/// the previous content whole, and leaves no probe file (nor a provider's temporary
/// upload) behind.
pub async fn honesty_probe(s: &dyn Storage, dir: &RemotePath) -> Check {
    s.create_dir(dir).await?;
    let before = names(&s.list(dir).await?);
    let report = syncfabric_core::probe::probe(s, dir).await?;
    ensure!(
        report.is_truthful(),
        "the honesty probe found false claims: {}",
        report.summary()
    );
    ensure!(
        report.atomic_writes,
        "a write cut mid-body did not leave the previous content whole: {}",
        report.summary()
    );
    let after = names(&s.list(dir).await?);
    ensure!(
        after == before,
        "the probe left files behind: {:?}",
        after.difference(&before).collect::<Vec<_>>()
    );
    Ok(Outcome::Passed)
}
