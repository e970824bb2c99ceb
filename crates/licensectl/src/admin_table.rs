//! Readable output of admin answers: aligned tables for lists, `name: value` lines for one
//! resource. `--json` bypasses all of this and prints the API's answer as it came.

use serde_json::Value;

/// A JSON value as a table cell: strings bare, null as `-`, anything else as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            }
        }
        other => other.to_string(),
    }
}

/// Columns (`(header, field)`) of the objects in `rows`, aligned; `(none)` for no rows.
pub fn table(columns: &[(&str, &str)], rows: &[Value]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, field)| cell(&r[*field])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<&str>| {
        let padded: Vec<String> = items
            .iter()
            .zip(&widths)
            .map(|(text, w)| format!("{text:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|(h, _)| *h).collect());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `field: value` lines for the given fields of one object, names aligned.
pub fn details(object: &Value, fields: &[&str]) -> String {
    let width = fields.iter().map(|f| f.len()).max().unwrap_or(0) + 1;
    fields
        .iter()
        .filter(|f| object.get(**f).is_some())
        .map(|f| format!("{:<width$} {}\n", format!("{f}:"), cell(&object[*f])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_nulls() {
        let rows = [
            json!({"id": "lic_1", "status": "active", "expires_at": null}),
            json!({"id": "lic_22", "status": "revoked", "expires_at": "2030"}),
        ];
        let t = table(
            &[
                ("ID", "id"),
                ("STATUS", "status"),
                ("EXPIRES", "expires_at"),
            ],
            &rows,
        );
        assert_eq!(
            t,
            "ID      STATUS   EXPIRES\nlic_1   active   -\nlic_22  revoked  2030\n"
        );
        assert_eq!(table(&[("ID", "id")], &[]), "(none)\n");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(
            details(
                &json!({"id": "x", "max_seats": 2}),
                &["id", "max_seats", "nope"]
            ),
            "id:        x\nmax_seats: 2\n"
        );
    }
}
