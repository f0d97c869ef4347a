//! What a sync or a commit changed, item by item, from item stamps (no decryption):
//! the sync summary (`items in`, `items out`) and `status --changes`.

use syncfabric::vault::ItemStamps;

/// Items that differ between two versions of a vault.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// Item rows the older version does not have (a new tombstone counts as deleted).
    pub new: usize,
    /// Rows whose stamps differ, other than deletions.
    pub changed: usize,
    /// Rows that became tombstones.
    pub deleted: usize,
}

/// What `after` changed relative to `before`.
pub fn diff(before: &ItemStamps, after: &ItemStamps) -> Changes {
    let mut c = Changes::default();
    for (uuid, a) in after {
        match before.get(uuid) {
            None if a.deleted => c.deleted += 1,
            None => c.new += 1,
            Some(b) if b == a => {}
            Some(b) if a.deleted && !b.deleted => c.deleted += 1,
            Some(_) => c.changed += 1,
        }
    }
    c
}

impl Changes {
    pub fn total(&self) -> usize {
        self.new + self.changed + self.deleted
    }

    /// `3 items (1 new, 2 changed)`, `no item`.
    pub fn describe(&self) -> String {
        if self.total() == 0 {
            return "no item".into();
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (self.new, "new"),
            (self.changed, "changed"),
            (self.deleted, "deleted"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let total = self.total();
        format!(
            "{total} item{} ({})",
            if total == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "total": self.total(), "new": self.new, "changed": self.changed, "deleted": self.deleted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric::vault::ItemStamp;

    fn stamp(at: i64, deleted: bool) -> ItemStamp {
        ItemStamp {
            updated_at: at,
            meta_updated_at: at,
            field_updated_at: at,
            deleted,
            trashed: false,
            field_rows: 3,
            fields_updated_at: at,
            history_bytes: 0,
        }
    }

    #[test]
    fn new_changed_deleted_and_unchanged() {
        let before: ItemStamps = [
            ("a", stamp(1, false)),
            ("b", stamp(1, false)),
            ("c", stamp(1, false)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut after = before.clone();
        after.insert("b".into(), stamp(2, false));
        after.insert("c".into(), stamp(2, true));
        after.insert("d".into(), stamp(2, false));
        after.insert("e".into(), stamp(2, true));
        let c = diff(&before, &after);
        assert_eq!(
            c,
            Changes {
                new: 1,
                changed: 1,
                deleted: 2
            }
        );
        assert_eq!(c.describe(), "4 items (1 new, 1 changed, 2 deleted)");
        assert_eq!(diff(&after, &after).describe(), "no item");
    }
}
