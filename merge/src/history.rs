//! `itemfield.history`: a JSON array of `{"updated_at": <unix s>, "value": "<plaintext>"}`.
//!
//! The merge unions both sides' histories (plus a losing value) as a *set* of entries,
//! sorted by `(updated_at, value)`, so no value is ever dropped and the result does not
//! depend on which side is which.

use serde_json::Value as Json;
use syncfabric_vault::Value;

/// One history entry, kept as its canonical JSON text (object keys sorted) so unknown
/// keys survive and equality is exact.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    updated_at: i64,
    value: String,
    canonical: String,
}

impl Entry {
    /// The entry recording `value` as set at `updated_at`.
    pub(crate) fn new(updated_at: i64, value: &str) -> Entry {
        let json = serde_json::json!({ "updated_at": updated_at, "value": value });
        Entry {
            updated_at,
            value: value.to_owned(),
            canonical: canonical(&json),
        }
    }

    fn from_json(j: &Json) -> Option<Entry> {
        let obj = j.as_object()?;
        let updated_at = match obj.get("updated_at") {
            Some(Json::Number(n)) => n.as_i64().unwrap_or(i64::MIN),
            Some(Json::String(s)) => s.trim().parse().unwrap_or(i64::MIN),
            _ => i64::MIN,
        };
        let value = match obj.get("value") {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Some(Entry {
            updated_at,
            value,
            canonical: canonical(j),
        })
    }
}

/// Serialises JSON with object keys sorted at every level.
fn canonical(j: &Json) -> String {
    match j {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = String::from("{");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String((*k).clone()).to_string());
                out.push(':');
                out.push_str(&canonical(&map[*k]));
            }
            out.push('}');
            out
        }
        Json::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// The entries of a history cell, sorted and deduplicated; `None` if the cell is not
/// a history (not NULL, empty text or a JSON array of objects).
pub(crate) fn parse(v: &Value) -> Option<Vec<Entry>> {
    let text = match v {
        Value::Null => return Some(Vec::new()),
        Value::Text(t) => t,
        _ => return None,
    };
    if text.trim().is_empty() {
        return Some(Vec::new());
    }
    let json: Json = serde_json::from_str(text).ok()?;
    let arr = json.as_array()?;
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        out.push(Entry::from_json(item)?);
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// The sorted, deduplicated union of two entry sets.
pub(crate) fn union(mut a: Vec<Entry>, b: &[Entry]) -> Vec<Entry> {
    a.extend_from_slice(b);
    a.sort();
    a.dedup();
    a
}

/// Whether the history holds an entry with this value.
#[cfg(test)]
pub(crate) fn contains_value(entries: &[Entry], value: &str) -> bool {
    entries.iter().any(|e| e.value == value)
}

/// The cell for `entries`: one of `candidates` verbatim if it already holds exactly
/// these entries (the greatest such, so the choice is symmetric), else canonical JSON.
pub(crate) fn render(entries: &[Entry], candidates: &[&Value]) -> Value {
    let mut best: Option<&Value> = None;
    for c in candidates {
        if parse(c).as_deref() == Some(entries) && best.is_none_or(|b| *c > b) {
            best = Some(c);
        }
    }
    if let Some(b) = best {
        return b.clone();
    }
    let parts: Vec<&str> = entries.iter().map(|e| e.canonical.as_str()).collect();
    Value::Text(format!("[{}]", parts.join(",")))
}

/// The plaintext values recorded in a history cell (for tests and callers checking that
/// nothing was lost). Empty if the cell is not a parseable history.
pub fn history_values(cell: &Value) -> Vec<String> {
    parse(cell)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.value)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_is_sorted_deduplicated_and_keeps_unknown_keys() {
        let a = parse(&Value::Text(
            r#"[{"value":"b","updated_at":20},{"updated_at":10,"value":"a"}]"#.into(),
        ))
        .unwrap();
        let b = parse(&Value::Text(
            r#"[{"updated_at":10,"value":"a"},{"updated_at":30,"value":"c","encrypted":false}]"#
                .into(),
        ))
        .unwrap();
        let u = union(a, &b);
        assert_eq!(u.len(), 3);
        let text = render(&u, &[]);
        assert_eq!(
            text.as_str().unwrap(),
            r#"[{"updated_at":10,"value":"a"},{"updated_at":20,"value":"b"},{"encrypted":false,"updated_at":30,"value":"c"}]"#
        );
        assert!(contains_value(&u, "c"));
    }

    #[test]
    fn empty_and_null_are_empty_histories_and_garbage_is_not() {
        assert_eq!(parse(&Value::Null).unwrap().len(), 0);
        assert_eq!(parse(&Value::Text(String::new())).unwrap().len(), 0);
        assert!(parse(&Value::Text("not json".into())).is_none());
        assert!(parse(&Value::Text("[1,2]".into())).is_none());
    }

    #[test]
    fn render_keeps_a_candidate_verbatim_when_it_has_the_same_entries() {
        let spaced = Value::Text(r#"[ {"value": "a", "updated_at": 10} ]"#.into());
        let entries = parse(&spaced).unwrap();
        assert_eq!(render(&entries, &[&spaced]), spaced);
        let empty = Value::Text(String::new());
        assert_eq!(render(&[], &[&empty]), empty);
    }
}
