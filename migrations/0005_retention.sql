-- 0005_retention: ended sessions and old audit events leave the hot tables under a retention
-- the operator sets, by a scheduled prune (POST /api/v1/admin/prune; deploy/ runs it daily).
--
-- It also moves the admin seat counts onto the index of counted sessions (0004).
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

-- The admin counts and live lists as in 0003, through the index of counted sessions (every
-- session holding a seat is counted), so they cost the live sessions, not all of a license's.
CREATE OR REPLACE FUNCTION le_admin_license(
    p_id TEXT, p_now BIGINT, p_sessions INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    lic JSONB := le_admin_license_json(p_id);
    now_ms BIGINT := le_now_ms();
    live INT;
    list JSONB;
BEGIN
    IF lic IS NULL THEN
        o_outcome := 'license_not_found';
        RETURN;
    END IF;
    SELECT count(*) INTO live FROM sessions s WHERE s.license_id = p_id AND s.counted AND s.seat_until > now_ms;
    SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.started_at DESC, s.id DESC), '[]'::jsonb) INTO list
    FROM (SELECT * FROM sessions s
          WHERE s.license_id = p_id AND s.counted AND s.seat_until > now_ms
          ORDER BY s.started_at DESC, s.id DESC
          LIMIT p_sessions) s;
    o_outcome := 'ok';
    o_body := jsonb_build_object('license', lic, 'active_seats', live, 'sessions', list);
END;
$$;

CREATE OR REPLACE FUNCTION le_admin_sessions(
    p_license_id TEXT, p_state TEXT, p_cursor_at BIGINT, p_cursor_id TEXT, p_limit INT, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    now_ms BIGINT := le_now_ms();
BEGIN
    PERFORM 1 FROM licenses l WHERE l.id = p_license_id;
    IF NOT FOUND THEN
        o_outcome := 'license_not_found';
        RETURN;
    END IF;
    SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.started_at DESC, s.id DESC), '[]'::jsonb) INTO o_body
    FROM (SELECT * FROM sessions s
          WHERE s.license_id = p_license_id
            AND CASE p_state
                    WHEN 'live' THEN s.counted AND s.seat_until > now_ms
                    WHEN 'ended' THEN s.seat_until <= now_ms
                    ELSE TRUE END
            AND (p_cursor_at IS NULL OR (s.started_at, s.id) < (p_cursor_at, p_cursor_id))
          ORDER BY s.started_at DESC, s.id DESC
          LIMIT p_limit + 1) s;
    o_outcome := 'ok';
END;
$$;

CREATE OR REPLACE FUNCTION le_admin_update_license(
    p_id TEXT, p_patch JSONB, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    cur licenses%ROWTYPE;
    upd licenses%ROWTYPE;
    changes JSONB := '{}'::jsonb;
    k TEXT;
    live INT;
BEGIN
    SELECT * INTO cur FROM licenses l WHERE l.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'license_not_found';
        RETURN;
    END IF;
    IF cur.status = 'revoked' THEN
        o_outcome := 'revoked_update';
        RETURN;
    END IF;
    upd := cur;
    IF p_patch ? 'plan' THEN upd.plan := p_patch->>'plan'; END IF;
    IF p_patch ? 'max_seats' THEN upd.max_seats := (p_patch->>'max_seats')::INT; END IF;
    IF p_patch ? 'features' THEN
        upd.features := ARRAY(SELECT jsonb_array_elements_text(p_patch->'features'));
    END IF;
    IF p_patch ? 'expires_at' THEN upd.expires_at := (p_patch->>'expires_at')::BIGINT; END IF;
    IF p_patch ? 'lease_seconds' THEN upd.lease_seconds := (p_patch->>'lease_seconds')::INT; END IF;
    IF p_patch ? 'max_borrow_seconds' THEN
        upd.max_borrow_seconds := (p_patch->>'max_borrow_seconds')::INT;
    END IF;
    IF p_patch ? 'rate_limit_per_minute' THEN
        upd.rate_limit_per_minute := (p_patch->>'rate_limit_per_minute')::INT;
    END IF;
    IF p_patch ? 'offline_grace_seconds' THEN
        upd.offline_grace_seconds := (p_patch->>'offline_grace_seconds')::INT;
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_patch) LOOP
        IF to_jsonb(cur)->k IS DISTINCT FROM to_jsonb(upd)->k THEN
            changes := changes || jsonb_build_object(k,
                jsonb_build_object('from', to_jsonb(cur)->k, 'to', to_jsonb(upd)->k));
        END IF;
    END LOOP;
    SELECT count(*) INTO live FROM sessions s WHERE s.license_id = p_id AND s.counted AND s.seat_until > le_now_ms();
    IF changes <> '{}'::jsonb THEN
        UPDATE licenses l SET
            plan = upd.plan, max_seats = upd.max_seats, features = upd.features,
            expires_at = upd.expires_at, lease_seconds = upd.lease_seconds,
            max_borrow_seconds = upd.max_borrow_seconds,
            rate_limit_per_minute = upd.rate_limit_per_minute,
            offline_grace_seconds = upd.offline_grace_seconds, updated_at = p_now
        WHERE l.id = p_id;
        INSERT INTO audit_events (occurred_at, organization_id, license_id, actor, action, outcome, details)
        VALUES (p_now, cur.organization_id, p_id, 'admin', 'license.update', 'ok',
                jsonb_build_object('changes', changes, 'active_seats', live));
        o_outcome := 'changed';
    ELSE
        o_outcome := 'unchanged';
    END IF;
    o_body := jsonb_build_object('license', le_admin_license_json(p_id), 'active_seats', live);
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0005_retention', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
