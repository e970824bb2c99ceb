//! Applies license-edge's migrations (`migrations/NNNN_name.sql`, embedded at build time).
//!
//! Each file is idempotent and records itself in `schema_migrations`, so it can also be applied
//! by hand with `psql -v ON_ERROR_STOP=1 -f FILE` or by the deploy Job. This runner takes a
//! session advisory lock (so concurrent runners apply each file once), skips recorded versions,
//! and runs the rest in order. It does not roll migrations back.

use tokio_postgres::Client;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The advisory lock key that serializes migration runners.
const LOCK_KEY: i64 = 0x6c65_6d69_6772_6174; // "lemigrat"

/// Applies every migration not yet recorded. Returns the versions it ran, in order.
pub async fn apply(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_locked(client).await;
    // Unlock even when a migration failed; the session ends soon anyway if this fails too.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

async fn apply_locked(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
    let mut ran = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = client
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            client.batch_execute(sql).await?;
            ran.push((*version).to_owned());
        }
    }
    Ok(ran)
}

/// Versions recorded as applied, in order.
pub async fn applied(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let exists = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migrations_are_numbered_in_order_and_record_themselves() {
        assert!(!MIGRATIONS.is_empty());
        for (i, (version, sql)) in MIGRATIONS.iter().enumerate() {
            assert!(version.starts_with(&format!("{:04}_", i + 1)), "{version}");
            assert!(
                sql.contains(&format!("'{version}'")),
                "{version} must record itself"
            );
        }
    }
}
