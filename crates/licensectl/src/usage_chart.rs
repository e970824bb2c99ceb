//! `licensectl admin usage`: the usage answer as a person reads it. The figures as aligned
//! lines and a refusals table, then the peaks as a terminal chart: one row per UTC day with a
//! block per hour (a sparkline scaled to the range's peak), and a bar per day.

use crate::admin_table::{details, table};
use serde_json::Value;

/// Block characters from empty to full: a level of 0 shows as a blank.
const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// The width of a full daily bar.
const BAR_WIDTH: u64 = 40;

/// The block for `value` on a scale whose full block is `max`: any value above 0 shows.
fn block(value: u64, max: u64) -> char {
    if value == 0 || max == 0 {
        return BLOCKS[0];
    }
    let level = (value * 8).div_ceil(max).clamp(1, 8);
    BLOCKS[level as usize]
}

/// `2026-12-01T07:00:00.000Z` → (`2026-12-01`, 7).
fn day_and_hour(start: &str) -> Option<(&str, usize)> {
    let day = start.get(..10)?;
    let hour = start.get(11..13)?.parse().ok()?;
    Some((day, hour))
}

/// One row per UTC day, one block per hour (blank outside the range).
pub fn hourly_rows(hours: &[Value], max: u64) -> String {
    let mut rows: Vec<(String, [char; 24], u64)> = Vec::new();
    for h in hours {
        let Some((day, hour)) = h["start"].as_str().and_then(day_and_hour) else {
            continue;
        };
        let peak = h["peak_seats"].as_u64().unwrap_or(0);
        if rows.last().is_none_or(|(d, _, _)| d != day) {
            rows.push((day.to_owned(), [' '; 24], 0));
        }
        if let Some((_, cells, day_peak)) = rows.last_mut() {
            if hour < 24 {
                cells[hour] = block(peak, max);
            }
            *day_peak = (*day_peak).max(peak);
        }
    }
    let mut out = String::new();
    for (day, cells, peak) in rows {
        let line: String = cells.iter().collect();
        out.push_str(&format!("{day} │{line}│ {peak}\n"));
    }
    out
}

/// A bar per day, scaled to `max`.
pub fn daily_bars(days: &[Value], max: u64) -> String {
    let mut out = String::new();
    for d in days {
        let day = d["start"].as_str().and_then(|s| s.get(..10)).unwrap_or("?");
        let peak = d["peak_seats"].as_u64().unwrap_or(0);
        let width = if max == 0 {
            0
        } else {
            (peak * BAR_WIDTH).div_ceil(max)
        };
        let bar = "█".repeat(width as usize);
        out.push_str(&format!("{day} {bar} {peak}\n"));
    }
    out
}

/// The whole usage answer, for the terminal.
pub fn show_usage(v: &Value) -> String {
    let mut out = details(
        v,
        &[
            "scope",
            "id",
            "from",
            "to",
            "licenses",
            "max_seats",
            "seats_in_use",
            "peak_seats",
            "acquires",
            "new_sessions",
            "unique_machines",
            "unique_users",
        ],
    );
    let refusals: Vec<Value> = v["refusals"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(reason, n)| serde_json::json!({"reason": reason, "count": n}))
                .collect()
        })
        .unwrap_or_default();
    out.push_str("\nrefused acquires:\n");
    out.push_str(&table(
        &[("REASON", "reason"), ("COUNT", "count")],
        &refusals,
    ));
    let empty = Vec::new();
    let hours = v["hours"].as_array().unwrap_or(&empty);
    let days = v["days"].as_array().unwrap_or(&empty);
    let max = v["peak_seats"].as_u64().unwrap_or(0);
    if !hours.is_empty() {
        out.push_str(&format!(
            "\npeak seats per hour (UTC, 00 to 23; a full block is {max}):\n"
        ));
        out.push_str(&hourly_rows(hours, max));
    }
    if !days.is_empty() {
        out.push_str("\npeak seats per day:\n");
        out.push_str(&daily_bars(days, max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_scale_to_the_peak_and_never_hide_a_seat() {
        assert_eq!(block(0, 5), ' ');
        assert_eq!(block(5, 5), '█');
        assert_eq!(block(1, 100), '▁');
        assert_eq!(block(50, 100), '▄');
    }

    #[test]
    fn one_row_per_day_with_a_block_per_hour() {
        let hours = [
            json!({"start": "2026-12-01T22:00:00.000Z", "peak_seats": 4}),
            json!({"start": "2026-12-01T23:00:00.000Z", "peak_seats": 2}),
            json!({"start": "2026-12-02T00:00:00.000Z", "peak_seats": 0}),
            json!({"start": "2026-12-02T01:00:00.000Z", "peak_seats": 1}),
        ];
        let text = hourly_rows(&hours, 4);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], format!("2026-12-01 │{}█▄│ 4", " ".repeat(22)));
        assert_eq!(lines[1], format!("2026-12-02 │ ▂{}│ 1", " ".repeat(22)));
    }

    #[test]
    fn the_usage_answer_reads_as_figures_a_table_and_a_chart() {
        let v = json!({
            "scope": "license", "id": "lic_1", "from": "2026-12-01T00:00:00.000Z",
            "to": "2026-12-01T02:00:00.000Z", "licenses": 1, "max_seats": 5, "seats_in_use": 1,
            "peak_seats": 2, "acquires": 3, "new_sessions": 2, "unique_machines": 2,
            "unique_users": 0, "refusals": {"no_seats_available": 1, "rate_limited": 0},
            "hours": [{"start": "2026-12-01T00:00:00.000Z", "peak_seats": 2},
                      {"start": "2026-12-01T01:00:00.000Z", "peak_seats": 1}],
            "days": [{"start": "2026-12-01T00:00:00.000Z", "peak_seats": 2}],
        });
        let text = show_usage(&v);
        assert!(text.contains("seats_in_use:"), "{text}");
        assert!(text.contains("no_seats_available  1"), "{text}");
        assert!(text.contains("2026-12-01 │█▄"), "{text}");
        assert!(
            text.contains(&format!("2026-12-01 {} 2", "█".repeat(40))),
            "{text}"
        );
    }
}
