//! # syncfabric-merge
//!
//! A pure three-way merge of decrypted Enpass vault content: given the content of the
//! last successful sync (the *base*, optional), the local one and the remote one, it
//! returns the rows each side must write, the conflicts, a readable report, and the few
//! facts the sync engine needs about the result (live items, attachment files). No
//! clock, no randomness: the same inputs always give the same output, and swapping
//! local and remote gives the same merged content.
//!
//! Inputs are [`RowSource`]s: an in-memory [`Snapshot`], a vault
//! (`Vault::rows`) or a verified database file (`open_snapshot_file`), each read table
//! by table as key-sorted rows. The sync engine streams the three databases:
//!
//! ```no_run
//! use syncfabric_merge::{merge_sources, MergeOptions};
//! # fn run(mut vault: syncfabric_vault::Vault, base: &std::path::Path, remote: &std::path::Path)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let base = syncfabric_vault::open_snapshot_file(base, vault.key())?; // last synced
//! let remote = syncfabric_vault::open_snapshot_file(remote, vault.key())?; // downloaded
//! let local = vault.rows()?;
//! let out = merge_sources(Some(&base), &local, &remote, &MergeOptions::default())?;
//! drop((base, local, remote)); // end the read transactions before writing
//! vault.apply(&out.to_local)?; // the rows the local vault lacks, in one transaction
//! if out.remote_needs_upload() { /* upload the local database: it now holds the merge */ }
//! println!("{}", out.report); // titles, labels, column names: no secret values
//! # Ok(()) }
//! ```
//!
//! Tests and small inputs can call [`merge`] on snapshots, which also returns the whole
//! merged content ([`MergeOutcome::merged`]).
//!
//! ## Rules
//!
//! Every table present on any side is merged, known or not, by the same rules; rows are
//! matched by the table's key columns (`item.uuid`, `itemfield(item_uuid,
//! item_field_uid)`, `folder_items(folder_uuid, item_uuid)`, ...). For one key:
//!
//! 1. **Missing is unchanged.** A row missing on a side but present in base counts as
//!    unchanged on that side (never as a delete). A row only one side has is added to
//!    the other. Nothing is ever removed: deletes are tombstones (`deleted = 1`).
//! 2. **One-side changes win**, whatever the clocks say: if a side's row equals base,
//!    the other side's row is taken (a device whose clock is behind still wins when
//!    only it changed). Clock columns are then raised to the other side's (see 5).
//! 3. **Both sides changed the row** (or there is no base and they differ): the row is
//!    merged *column group by column group*, three-way. A group changed on one side
//!    only is taken from that side; a group both sides changed to the same value is
//!    kept; a group both changed differently is a conflict, won by the side whose row
//!    `updated_at` is later. Equal `updated_at`: the greater group content wins (in
//!    the SQLite value order), which is deterministic and symmetric, never arrival.
//!    So an item renamed on one device and trashed on the other keeps both changes;
//!    whole-row last-writer-wins would silently drop one of them.
//!    Groups: every column is its own group except those that describe one value
//!    together: `value, hash, initial, strength, algo_version, pwned_check_time` (a
//!    field's value and what is derived from it: a hash never pairs with another
//!    side's value) and, in tables with a `data` column, `data, password, size, mime,
//!    type, internal` (an attachment or icon payload).
//! 4. **No lost field value.** In a table with both `value` and `history` columns
//!    (`itemfield`), the losing non-empty value of a conflict is added to the field's
//!    history as `{"updated_at": <loser's value_updated_at>, "value": ...}`, and when
//!    both sides changed the history the result is the union of both, deduplicated and
//!    sorted by `(updated_at, value)`. This applies to every field, `historical` or
//!    not. (A history that is not a JSON list cannot be merged: it is then treated as a
//!    plain column and the conflict says the losing value could not be kept.)
//! 5. **Clocks only move forward.** Columns named `updated_at` or `*_updated_at` take
//!    the maximum of both sides, so the merged row is never older than either side and
//!    propagates to the other devices.
//! 6. **Delete vs edit.** When one side set `deleted` (0 → non-zero) and the other
//!    side edited the row, the edit revives the row only if its `updated_at` is
//!    strictly later than the delete's; otherwise the tombstone wins (the edit's other
//!    columns are still merged into the tombstone, so nothing is lost). A stale device
//!    (whose row equals base) therefore never undoes a delete, by rule 2. An undelete
//!    on one side only wins by rule 3, unless the other side changed its tombstone too
//!    (a later delete of its own, folded into a base that held an older one): that is
//!    delete against edit again, by the clocks.
//! 7. **No base** (first sync of two copies): the same rules with every differing
//!    group a conflict, decided by `updated_at`.
//!
//! Rules are per row; the merge does not couple tables (reviving an item does not
//! revive `folder_items` rows the delete tombstoned on the other side).
//! Tables whose column lists differ between sides are merged over the union of
//! columns; a side lacking a column reads it as NULL. Tables are matched by name and
//! must have the same key columns on every side ([`MergeError::KeyMismatch`]).
//!
//! ## Cost, and why the merge streams
//!
//! One lockstep walk over the three sources' key-sorted rows: linear in the number of
//! rows, no hashing, no sorting. Each source lends one row at a time from a reused
//! buffer; the walk copies only what it must keep: rows a side must write, conflicts,
//! the first 100 report lines, the titles those lines name. Memory is therefore
//! proportional to what changed, not to the vault (a first sync into an empty vault
//! still holds every row in `to_local`).
//!
//! Measured on this 2-core machine (under load from other builds) with two
//! 100,000-item vaults, 10 fields per item, 10% of the items edited on each side and 1%
//! on both (`examples/merge_100k.rs`, `benches/merge.rs`): the streaming merge takes
//! 0.99 s (criterion median; 1.0–1.2 s single runs) with 48 MB peak memory, about
//! 0.6 s of it producing the 3.3 million input rows. Held as whole [`Snapshot`]s (a 32-byte [`Value`] per cell, a `Vec` per row, a
//! `String` per text: about 1.1 KB per field row), the three inputs alone took
//! 3.6–4.8 GB and the merge 2–5 s. Two designs could meet the 500 MB target: a compact
//! snapshot (rows as byte slices in per-table arenas) or streaming. A compact row of
//! this schema still takes about 120 bytes, so three 1.1-million-row inputs need about
//! 400 MB before the merge holds anything, and the engine would still read each
//! database whole. Streaming needs no new row model, keeps [`Snapshot`] as the simple
//! form for tests and `Vault::apply`, and bounds memory by the size of the change, so
//! it was chosen. The benchmark calls the same function with the same options as the
//! sync engine ([`merge_sources`], no merged content kept); only the sources differ
//! (generated rows there, SQLCipher cursors in the engine, where page decryption
//! dominates: see `examples/merge_vaults.rs`).
//!
#![deny(missing_docs)]

mod descent;
mod engine;
mod history;
mod plan;
mod report;
mod row;

pub use descent::descends_from;
pub use history::history_values;
pub use report::{MergeReport, TableSummary};
pub use syncfabric_vault::{
    Row, RowCursor, RowKey, RowSource, Snapshot, Table, TableSchema, Value,
};

/// One side of a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// This device's vault.
    Local,
    /// The copy downloaded from the storage.
    Remote,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Local => Side::Remote,
            Side::Remote => Side::Local,
        }
    }
}

/// Which side won the conflicting columns of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winner {
    /// Local's `updated_at` was later: local's values were taken for every conflicting
    /// column group.
    Local,
    /// Remote's `updated_at` was later: remote's values were taken.
    Remote,
    /// Equal `updated_at` (or the table has none): for each conflicting column group,
    /// the side with the greater content (SQLite value order) won.
    Tie,
}

/// How a delete on one side met an edit on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The edit was strictly later than the delete: the row is live.
    Revived {
        /// The side that had deleted the row.
        deleted_by: Side,
    },
    /// The edit was not later: the row stays deleted (its other columns still merged).
    StayedDeleted {
        /// The side that deleted the row.
        deleted_by: Side,
    },
}

/// A row both sides changed in a way that needed a rule to settle.
///
/// `Debug` shows the key's values only as sizes (see [`Value`]); no field values.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The table.
    pub table: String,
    /// The row's key.
    pub key: RowKey,
    /// Columns both sides changed to different values (empty if only the delete rule
    /// applied).
    pub columns: Vec<String>,
    /// Which side won `columns`.
    pub winner: Winner,
    /// Set when a delete met an edit.
    pub deletion: Option<Deletion>,
    /// For a field value conflict: `Some(true)` if the losing value was added to the
    /// field's history, `Some(false)` if it could not be (unparseable history); `None`
    /// when no field value lost (or the loser was empty).
    pub loser_in_history: Option<bool>,
}

/// Which input of a merge (for errors naming a source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceSide {
    /// The base (last synced content).
    Base,
    /// The local side.
    Local,
    /// The remote side.
    Remote,
}

/// How [`merge_sources`] runs.
#[derive(Clone, Debug, Default)]
pub struct MergeOptions {
    /// Collect the whole merged content into [`MergeOutcome::merged`]. Costs about
    /// 1 KB per row of the vault: meant for tests and small inputs ([`merge`] sets it).
    /// The sync engine leaves it off and uses the projections instead.
    pub keep_merged: bool,
}

/// Live items (`item` rows with `deleted` and `trashed` both 0 or NULL, and a text
/// `uuid`), counted per side: what a mass-delete guard needs, without holding the
/// items. `local_lost` counts items live on the local side (as the local source holds
/// them) that the merge leaves not live; `remote_lost` the same for the remote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveItems {
    /// Live items of the local source.
    pub local: usize,
    /// Of those, items not live after the merge.
    pub local_lost: usize,
    /// Live items of the remote source.
    pub remote: usize,
    /// Of those, items not live after the merge.
    pub remote_lost: usize,
    /// Live items after the merge.
    pub merged: usize,
}

/// Attachments of the merged content whose data lives in its own
/// `<uuid>.enpassattach` file (rows of `attachment` with a non-empty `password`, the
/// file's key; inline attachments have none), by uuid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachmentFiles {
    /// Not deleted: the files both sides must hold.
    pub live: std::collections::BTreeSet<String>,
    /// Tombstoned (`deleted` non-zero): files nobody needs any more.
    pub dead: std::collections::BTreeSet<String>,
}

/// The result of [`merge`] and [`merge_sources`].
#[derive(Clone, Debug)]
pub struct MergeOutcome {
    /// The merged content (every table and row of any side, merged), when asked for
    /// ([`MergeOptions::keep_merged`]; always with [`merge`]); `None` otherwise.
    pub merged: Option<Snapshot>,
    /// A partial snapshot: the rows of the merged content that the local side lacks or
    /// holds differently (upsert each whole row), in the merged columns. A table also
    /// appears (possibly without rows) when the local side lacks it or has other
    /// columns.
    pub to_local: Snapshot,
    /// The same for the remote side: non-empty means the remote must be rewritten.
    pub to_remote: Snapshot,
    /// The rows where both sides changed and a rule decided, in table and key order.
    pub conflicts: Vec<Conflict>,
    /// What happened, for people (no secret values).
    pub report: MergeReport,
    /// Live items per side and after the merge (for a mass-delete guard).
    pub live_items: LiveItems,
    /// The attachment files the merged content references.
    pub attachment_files: AttachmentFiles,
}

impl MergeOutcome {
    /// Whether the local vault must be written (`to_local` is not empty).
    pub fn local_needs_apply(&self) -> bool {
        !self.to_local.tables.is_empty()
    }

    /// Whether the remote database must be uploaded (`to_remote` is not empty).
    pub fn remote_needs_upload(&self) -> bool {
        !self.to_remote.tables.is_empty()
    }
}

/// Why snapshots cannot be merged. Messages name tables and columns, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// The sides disagree on a table's key columns.
    #[error("table {table}: the key columns differ between the snapshots")]
    KeyMismatch {
        /// The table.
        table: String,
    },
    /// A key column is not among the table's columns.
    #[error("table {table}: key column {column} is not a column of the table")]
    MissingKeyColumn {
        /// The table.
        table: String,
        /// The key column.
        column: String,
    },
    /// A row's length differs from the table's columns, or a key's from the key columns.
    #[error("table {table}: a row does not match the table's columns")]
    MalformedRow {
        /// The table.
        table: String,
    },
    /// A table could not be planned (internal: no side has it).
    #[error("table {table}: no snapshot holds it")]
    MalformedTable {
        /// The table.
        table: String,
    },
    /// A source gave a row whose key is not greater than the previous one (a
    /// [`RowSource`] must yield strictly ascending keys; a database column holding text
    /// that is not UTF-8 can break that order).
    #[error("table {table}: the {side:?} rows are not in ascending key order")]
    Unsorted {
        /// The source.
        side: SourceSide,
        /// The table.
        table: String,
    },
    /// A source could not be read.
    #[error("reading the {side:?} side{}: {source}", table.as_ref().map(|t| format!(", table {t}")).unwrap_or_default())]
    Source {
        /// The source.
        side: SourceSide,
        /// The table being read, if any.
        table: Option<String>,
        /// The vault's error.
        #[source]
        source: syncfabric_vault::Error,
    },
}

/// Merges the in-memory snapshots `local` and `remote` against `base` (the snapshot both
/// last agreed on; `None` for a first, two-way sync), keeping the merged content
/// ([`MergeOutcome::merged`] is `Some`). See the crate docs for the rules. The same
/// walk as [`merge_sources`], which is what the sync engine calls.
///
/// Pure and deterministic; `merge(b, l, r).merged == merge(b, r, l).merged`;
/// `merge(x, x, x).merged == Some(x)`. Errors only on malformed input ([`MergeError`]).
pub fn merge(
    base: Option<&Snapshot>,
    local: &Snapshot,
    remote: &Snapshot,
) -> Result<MergeOutcome, MergeError> {
    merge_sources(
        base.map(|b| b as &dyn RowSource),
        local,
        remote,
        &MergeOptions { keep_merged: true },
    )
}

/// Merges three [`RowSource`]s (in-memory snapshots, a vault, verified database files)
/// by one lockstep walk over their key-sorted rows. Memory is what the outcome holds
/// (the rows each side must write, the conflicts, the report) plus one row per source,
/// not the vault: nothing else is kept unless [`MergeOptions::keep_merged`] is set.
///
/// Errors: [`MergeError`] for malformed or unsorted input, [`MergeError::Source`] when a
/// source fails to read.
pub fn merge_sources(
    base: Option<&dyn RowSource>,
    local: &dyn RowSource,
    remote: &dyn RowSource,
    opts: &MergeOptions,
) -> Result<MergeOutcome, MergeError> {
    engine::merge(base, local, remote, opts)
}
