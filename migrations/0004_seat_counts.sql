-- 0004_seat_counts: seat decisions that cost the same whether a license holds 1 or 50,000
-- sessions. Every rule of 0003 still holds (the database's clock after the lock, seat_until,
-- borrows, lapses marked ended when their seat is given away).
--
-- Each license has a count of the sessions that occupy its seats (license_seat_counts), kept
-- exact by the only transaction that changes it: the seat decision, under the license row lock.
-- A session occupies a seat (sessions.counted) from its acquire until an acquire reclaims it.
-- It holds the seat only while seat_until > now, so a session released or lapsed still occupies
-- its seat until the next acquire that needs the seat reclaims it, through an index in
-- seat_until order, taking only as many as the decision needs. So an acquire reads a counter and
-- a few index entries, never the license's sessions; heartbeats and releases never touch the
-- counter, and they need no license lock to end a session.
--
-- The count can never drift: the counter and the sessions' `counted` flags change in the same
-- transaction (tests/tests/integrity.rs compares them after a randomized run and after a
-- transaction killed between its statements). Idempotent and records itself, like 0001.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS license_seat_counts (
    license_id TEXT PRIMARY KEY REFERENCES licenses (id),
    counted    INT NOT NULL CHECK (counted >= 0)
);

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS counted BOOLEAN NOT NULL DEFAULT FALSE;

-- The first count, taken while no seat decision can run (they lock license rows FOR UPDATE,
-- which EXCLUSIVE mode waits for and then keeps out; plain reads go on). Run again, it finds
-- the same state.
LOCK TABLE licenses IN EXCLUSIVE MODE;
UPDATE sessions s SET counted = TRUE WHERE NOT s.counted AND s.seat_until > le_now_ms();
INSERT INTO license_seat_counts (license_id, counted)
SELECT l.id, (SELECT count(*) FROM sessions s WHERE s.license_id = l.id AND s.counted)
FROM licenses l
ON CONFLICT (license_id) DO UPDATE SET counted = EXCLUDED.counted;

-- The sessions occupying a license's seats, in the order their holds end.
CREATE INDEX IF NOT EXISTS sessions_counted ON sessions (license_id, seat_until) WHERE counted;
-- This machine's live session: the equality and the order of the lookup below in one index, so
-- that no plan (a generic one included) walks a large license's live sessions instead.
CREATE INDEX IF NOT EXISTS sessions_by_machine_live ON sessions (license_id, machine_hash, expires_at)
    WHERE ended_at IS NULL;
-- Indexes that served the counts and lookups this replaces: 0003's over every session of a
-- license, and 0001's live sessions by expiry and by machine, which a generic plan of the
-- machine lookup could walk from end to end on a license with 50,000 live sessions.
DROP INDEX IF EXISTS sessions_holding;
DROP INDEX IF EXISTS sessions_live;
DROP INDEX IF EXISTS sessions_by_machine;

-- The seat decision (as 0003's, same signature and answer): under the license row lock, on the
-- database's clock read after it.
CREATE OR REPLACE FUNCTION le_acquire_seat(
    p_license_id TEXT, p_machine_hash TEXT, p_new_session_id TEXT, p_user_agent TEXT,
    p_metadata JSONB,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_offline_grace_seconds INT,
    OUT o_session_id TEXT, OUT o_session_expires_at BIGINT, OUT o_active_seats INT,
    OUT o_next_available_at BIGINT, OUT o_now BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    now_ms BIGINT;
    occupied INT;
    freed INT;
    existing TEXT;
    lease_end BIGINT;
BEGIN
    SELECT * INTO lic FROM licenses l WHERE l.id = p_license_id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'unknown_key';
        o_now := le_now_ms();
        RETURN;
    END IF;
    now_ms := le_now_ms();
    o_now := now_ms;
    o_license_id := lic.id;
    o_organization_id := lic.organization_id;
    o_plan := lic.plan;
    o_features := lic.features;
    o_max_seats := lic.max_seats;
    o_license_expires_at := lic.expires_at;
    o_lease_seconds := lic.lease_seconds;
    o_offline_grace_seconds := lic.offline_grace_seconds;
    SELECT p.code INTO o_product FROM products p WHERE p.id = lic.product_id;
    IF lic.status <> 'active' THEN
        o_outcome := lic.status;
    ELSIF lic.expires_at IS NOT NULL AND lic.expires_at <= now_ms THEN
        o_outcome := 'expired';
    END IF;

    IF o_outcome IS NULL THEN
        -- The counter (made on a license's first acquire).
        INSERT INTO license_seat_counts AS c (license_id, counted) VALUES (lic.id, 0)
        ON CONFLICT (license_id) DO UPDATE SET counted = c.counted
        RETURNING c.counted INTO occupied;
        -- This machine's session, through its own index.
        SELECT s.id INTO existing FROM sessions s
        WHERE s.license_id = lic.id AND s.machine_hash = p_machine_hash
          AND s.ended_at IS NULL AND s.seat_until > now_ms
        ORDER BY s.expires_at DESC LIMIT 1;

        lease_end := now_ms + lic.lease_seconds::BIGINT * 1000;
        IF lic.expires_at IS NOT NULL THEN
            lease_end := least(lease_end, lic.expires_at);
        END IF;
        IF existing IS NOT NULL THEN
            UPDATE sessions s SET last_heartbeat_at = now_ms,
                expires_at = greatest(s.expires_at, lease_end),
                seat_until = greatest(s.seat_until, greatest(s.expires_at, lease_end) + le_seat_hold_ms())
            WHERE s.id = existing
            RETURNING s.id, s.expires_at INTO o_session_id, o_session_expires_at;
            o_outcome := 'existing';
            o_active_seats := occupied;
        ELSE
            -- Reclaim sessions whose hold has passed, soonest first: as many as this decision
            -- needs, and at least two, so that the count keeps up with releases and lapses
            -- (an acquire adds one). Marking them ended means nothing can renew them afterwards.
            BEGIN
                WITH gone AS (
                    UPDATE sessions s SET counted = FALSE,
                        ended_at = coalesce(s.ended_at, now_ms),
                        end_reason = coalesce(s.end_reason, 'lapsed')
                    WHERE s.id IN (SELECT x.id FROM sessions x
                                   WHERE x.license_id = lic.id AND x.counted AND x.seat_until <= now_ms
                                   ORDER BY x.seat_until
                                   LIMIT greatest(occupied - lic.max_seats + 1, 2))
                    RETURNING 1)
                SELECT count(*) INTO freed FROM gone;
                occupied := occupied - freed;
            END;
            IF occupied >= lic.max_seats THEN
                o_outcome := 'no_seats';
                o_active_seats := occupied;
                SELECT s.seat_until INTO o_next_available_at FROM sessions s
                WHERE s.license_id = lic.id AND s.counted
                ORDER BY s.seat_until LIMIT 1;
            ELSE
                INSERT INTO sessions (id, license_id, machine_hash, user_agent, metadata, started_at,
                                      last_heartbeat_at, expires_at, seat_until, counted)
                VALUES (p_new_session_id, lic.id, p_machine_hash, p_user_agent, p_metadata, now_ms,
                        now_ms, lease_end, lease_end + le_seat_hold_ms(), TRUE);
                occupied := occupied + 1;
                o_session_id := p_new_session_id;
                o_session_expires_at := lease_end;
                o_outcome := 'created';
                o_active_seats := occupied;
            END IF;
            UPDATE license_seat_counts c SET counted = occupied
            WHERE c.license_id = lic.id AND c.counted <> occupied;
        END IF;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (now_ms, lic.organization_id, lic.id, o_session_id, 'client', 'session.acquire', o_outcome,
            jsonb_build_object('machine_hash', p_machine_hash, 'active_seats', o_active_seats));
END;
$$;

-- 0003's reclaim of every lapsed session of a license, replaced by the bounded reclaim above.
DROP FUNCTION IF EXISTS le_reclaim_lapsed(TEXT, BIGINT);

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0004_seat_counts', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
