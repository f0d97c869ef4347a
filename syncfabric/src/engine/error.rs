//! Errors of a sync, each with what the person should do next, in words: the
//! commands that do it are the CLI's to name (`hint_for` in the CLI crate).

/// Why a sync did not complete. Nothing secret is ever put in a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The storage failed (network, permissions, quota, ...).
    #[error("storage: {0}")]
    Storage(#[from] syncfabric_core::Error),
    /// The local or the remote vault could not be read or written.
    #[error("vault: {0}")]
    Vault(#[from] syncfabric_vault::Error),
    /// The merge could not be computed.
    #[error("merge: {0}")]
    Merge(#[from] syncfabric_merge::MergeError),
    /// The remote database failed verification: it was not merged and not overwritten.
    #[error("the remote vault is corrupt or was tampered with ({0}); nothing was merged or overwritten. It can be replaced with this device's copy (whatever only the corrupt copy held is then lost) by a sync that recreates the remote copy")]
    RemoteCorrupt(String),
    /// A desktop client's conflict copy beside the remote database does not open as a
    /// copy of this vault (another vault, another master password, or damaged): it was
    /// not merged, and it is left where it is.
    #[error("{path} was left in place: it is not a readable copy of this vault ({reason}); check or remove it by hand")]
    CopyUnreadable {
        /// The copy's path on the remote.
        path: String,
        /// Why it does not open.
        reason: String,
    },
    /// The remote copy belongs to another vault.
    #[error("the remote folder holds another vault ({0}); check the remote's URL")]
    OtherVault(String),
    /// The remote copy was re-keyed (master password or keyfile changed elsewhere, or
    /// here after another device's last commit).
    #[error("the remote copy is encrypted with another master password or keyfile than this device's vault (its vault.json records a password change); nothing was merged or overwritten. Restore a fresh copy with the current password into a new folder and copy over any edit this device has not synced")]
    KeyChanged,
    /// The remote database this device synced with before is gone.
    #[error("the remote copy of this vault is gone ({path} was there at the last sync); nothing was changed. If it was removed by mistake, a sync that recreates the remote copy uploads this device's copy again; otherwise stop syncing with this remote")]
    RemoteGone {
        /// The database's path on the remote.
        path: String,
    },
    /// The merge would delete more of the vault than the guard allows.
    #[error("refusing to sync: the merge would delete {deleted} of {live} live items (more than the guard allows); check what it would do with a dry run, then allow the mass delete if that is really intended")]
    MassDelete {
        /// Items the merge would delete or trash.
        deleted: usize,
        /// Items live before the merge.
        live: usize,
    },
    /// Another device kept winning the race to commit; try again later.
    #[error("another device kept committing first ({attempts} attempts); try again")]
    TooManyRaces {
        /// How many attempts were made.
        attempts: u32,
    },
    /// A download went past one of the engine's limits (see `engine::limits`): a
    /// damaged or hostile remote. Stopped at the limit, nothing of it kept; never
    /// retried, since the same file would do the same again.
    #[error("refused to download {path}: {reason}; nothing of it was kept. The remote copy looks damaged or tampered with: check it, or replace it from a good device")]
    DownloadLimit {
        /// The remote file.
        path: String,
        /// Which limit, with its value.
        reason: String,
    },
    /// Another sync of the same vault with the same remote kept running on this
    /// device (it holds the state folder's local lock) for longer than the wait allowed.
    #[error("another sync of this vault with this remote is still running on this device ({path} is locked); let it finish, then sync again")]
    LocalBusy {
        /// The sync state folder.
        path: String,
    },
    /// The vault has attachments stored in their own files, which the Enpass apps'
    /// sync file cannot carry (whether and how the apps move them is not public):
    /// nothing was pushed.
    #[error("this vault has {files} attachment file(s), which an Enpass sync file cannot carry; nothing was pushed. Remove those attachments (small ones stay inside the database), or sync this vault through a remote in syncfabric's own layout")]
    AttachmentsInContainer {
        /// How many attachment files the vault references.
        files: usize,
    },
    /// The local sync state could not be read or written.
    #[error("local sync state: {0}")]
    State(#[from] std::io::Error),
}
