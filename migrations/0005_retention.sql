-- 0005_retention: ended sessions and old audit events leave the hot tables under a retention
-- the operator sets, by a scheduled prune (POST /api/v1/admin/prune; deploy/ runs it daily).
--
-- A prune rather than partitioning: sessions are found by id (every seat call and the admin
-- routes), so a table partitioned by time would need the time in every lookup and in the
-- primary key; a batched DELETE keeps each call short, lets autovacuum reuse the space, and
-- needs no extension on Cloud SQL. Idempotent and records itself, like 0001.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- Old audit events, oldest first.
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_events (occurred_at);

-- Deletes at most p_limit sessions and p_limit audit events:
--   sessions that occupy no seat (not counted: released, force-released or lapsed and
--   reclaimed), whose tokens stopped validating more than p_sessions_days ago, and whose
--   key-value entries the sweep has already deleted (they are at or before its place);
--   audit events older than p_audit_days.
-- Times are the database's. Writes one audit event saying what it deleted.
CREATE OR REPLACE FUNCTION le_admin_prune(
    p_sessions_days INT, p_audit_days INT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    now_ms BIGINT := le_now_ms();
    sessions_cutoff BIGINT := now_ms - p_sessions_days::BIGINT * 86400000 - le_seat_hold_ms();
    audit_cutoff BIGINT := now_ms - p_audit_days::BIGINT * 86400000;
    swept_at BIGINT;
    swept_id TEXT;
    sessions_deleted INT := 0;
    events_deleted INT := 0;
BEGIN
    SELECT k.swept_at, k.swept_id INTO swept_at, swept_id FROM kv_sweep k;
    IF swept_at IS NOT NULL THEN
        WITH gone AS (
            DELETE FROM sessions s WHERE s.id IN (
                SELECT x.id FROM sessions x
                WHERE x.expires_at <= sessions_cutoff
                  AND (x.expires_at, x.id) <= (swept_at, swept_id)
                  AND NOT x.counted AND x.seat_until <= now_ms
                ORDER BY x.expires_at, x.id
                LIMIT p_limit)
            RETURNING 1)
        SELECT count(*) INTO sessions_deleted FROM gone;
    END IF;
    WITH gone AS (
        DELETE FROM audit_events e WHERE e.id IN (
            SELECT x.id FROM audit_events x WHERE x.occurred_at < audit_cutoff
            ORDER BY x.occurred_at LIMIT p_limit)
        RETURNING 1)
    SELECT count(*) INTO events_deleted FROM gone;
    IF sessions_deleted > 0 OR events_deleted > 0 THEN
        INSERT INTO audit_events (occurred_at, actor, action, outcome, details)
        VALUES (now_ms, 'admin', 'retention.prune', 'ok',
                jsonb_build_object('sessions_deleted', sessions_deleted,
                                   'audit_events_deleted', events_deleted,
                                   'sessions_older_than_days', p_sessions_days,
                                   'audit_older_than_days', p_audit_days));
    END IF;
    o_outcome := 'ok';
    o_body := jsonb_build_object('sessions_deleted', sessions_deleted,
                                 'audit_events_deleted', events_deleted,
                                 'more', sessions_deleted = p_limit OR events_deleted = p_limit);
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0005_retention', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
