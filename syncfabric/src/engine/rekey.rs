//! After a master-password change: the local copies a sync keeps move to the new key.

use super::state::StateDir;
use super::SyncError;
use std::path::PathBuf;
use syncfabric_vault::{Error as VaultError, VaultKey};

/// What [`rekey_state`] did with each local copy of one remote's state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RekeyReport {
    /// Copies now encrypted with the new key (the base, journal entries).
    pub rekeyed: usize,
    /// Copies that did not open with the old key (damaged, or from an older key) and
    /// were deleted instead: none of them may keep opening with an old password.
    pub removed: Vec<PathBuf>,
}

/// Re-encrypts every database copy in `state` (the base and each journal entry) from
/// `old` to `new`, after the vault's master password or keyfile changed from `old` to
/// `new`. A copy that does not open with `old` is deleted. The sync state itself
/// (remote version, local hash) is left as it is: the local database changed, so the
/// next sync sees a local change and pushes the re-keyed vault (or, when another
/// device committed under the old key meanwhile, reports that the keys differ).
pub fn rekey_state(
    state: &StateDir,
    old: &VaultKey,
    new: &VaultKey,
) -> Result<RekeyReport, SyncError> {
    let st = state.load()?;
    let mut files = vec![state.base_db()];
    files.extend(st.journal.iter().map(|e| state.journal_file(e)));
    let mut report = RekeyReport::default();
    for f in files {
        if std::fs::symlink_metadata(&f).is_err() {
            continue;
        }
        match syncfabric_vault::verify_database_file(&f, old) {
            Ok(()) => {
                syncfabric_vault::rekey_database_file(&f, old, new)?;
                report.rekeyed += 1;
            }
            Err(e) if unreadable(&e) => {
                std::fs::remove_file(&f)?;
                tracing::warn!(file = %f.display(), "a sync copy did not open with the old key ({e}); deleted");
                report.removed.push(f);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// A copy that cannot be opened with the old key: another key, or damaged.
fn unreadable(e: &VaultError) -> bool {
    matches!(e, VaultError::WrongKey | VaultError::KeyChanged) || e.is_damage()
}
