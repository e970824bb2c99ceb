-- 0008_usage: usage figures for vendors (GET /api/v1/admin/licenses/{id}/usage and
-- /organizations/{id}/usage), computed in PostgreSQL from what the seat functions record.
--
-- What was recorded before this file: every seat decision (le_acquire_seat) writes an audit
-- event `session.acquire` whose outcome is created, existing, no_seats, suspended, revoked or
-- expired, so those refusals are in the audit trail. An acquire over the rate limit is refused
-- by le_acquire_attempt before any seat decision and left no trace but the current minute's
-- counter in rate_limits (older windows are deleted). Unknown keys write nothing, by design.
-- So this file counts rate-limited refusals per license per hour (acquire_refusals), in
-- le_acquire_attempt: no event per refusal, no license row lock, nothing on the seat decision's
-- path.
--
-- Seats in use over time come from sessions: a session occupies a seat from started_at until
-- seat_until (its release, or its lease end plus the hold), exactly as the seat decision
-- counts it. Peaks per hour are a sweep over those intervals (le_admin_usage).
--
-- sessions.user_sub is also added by 0007 (signed-in users); both add it the same way, so
-- either may run first. Idempotent and records itself, like 0001.
--
-- The two indexes are built inside the transaction and block writes to sessions and
-- audit_events while they build (seconds at a few million rows). On a large production
-- database, create them first with CREATE INDEX CONCURRENTLY under the same names; this file
-- then finds them and goes on.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS user_sub TEXT;

-- Acquires refused before the seat decision, per license, hour (epoch ms at the hour's start,
-- database clock) and reason ('rate_limited').
CREATE TABLE IF NOT EXISTS acquire_refusals (
    license_id TEXT NOT NULL,
    hour_start BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    refusals   BIGINT NOT NULL,
    PRIMARY KEY (license_id, hour_start, reason)
);

-- The sessions of a license that still held a seat after a given time, with what the usage
-- figures read of them (an index-only scan for settled sessions).
CREATE INDEX IF NOT EXISTS sessions_usage ON sessions (license_id, seat_until)
    INCLUDE (started_at, machine_hash, user_sub);
-- A license's acquire decisions by time.
CREATE INDEX IF NOT EXISTS audit_acquires ON audit_events (license_id, occurred_at)
    INCLUDE (outcome) WHERE action = 'session.acquire';

-- Step 1 of an acquire (as 0003's, same signature and answer), now also counting a refusal
-- over the rate limit in acquire_refusals: one upsert on the refusal path only.
CREATE OR REPLACE FUNCTION le_acquire_attempt(
    p_key_hash TEXT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_rate_limit INT, OUT o_rate_remaining INT,
    OUT o_rate_reset_at BIGINT, OUT o_now BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lim INT;
    win BIGINT;
    tries INT;
BEGIN
    o_now := le_now_ms();
    SELECT l.id, l.rate_limit_per_minute INTO o_license_id, lim
    FROM licenses l WHERE l.key_hash = p_key_hash;
    IF NOT FOUND THEN
        o_outcome := 'unknown_key';
        RETURN;
    END IF;
    win := o_now - (o_now % 60000);
    INSERT INTO rate_limits AS r (license_id, window_start, attempts) VALUES (o_license_id, win, 1)
    ON CONFLICT (license_id, window_start) DO UPDATE SET attempts = r.attempts + 1
    RETURNING r.attempts INTO tries;
    IF tries = 1 THEN
        DELETE FROM rate_limits r WHERE r.license_id = o_license_id AND r.window_start < win;
    END IF;
    o_rate_limit := lim;
    o_rate_remaining := greatest(lim - tries, 0);
    o_rate_reset_at := win + 60000;
    o_outcome := CASE WHEN tries > lim THEN 'rate_limited' ELSE 'counted' END;
    IF tries > lim THEN
        INSERT INTO acquire_refusals AS a (license_id, hour_start, reason, refusals)
        VALUES (o_license_id, o_now - (o_now % 3600000), 'rate_limited', 1)
        ON CONFLICT (license_id, hour_start, reason) DO UPDATE SET refusals = a.refusals + 1;
    END IF;
END;
$$;

-- Usage of one license (p_scope 'license') or of every license of an organization
-- ('organization') over [p_from, p_to), both at whole hours (the caller aligns them).
-- o_body: {"licenses", "max_seats" (of the active licenses), "seats_in_use" (now),
-- "now", "acquire_outcomes" ({outcome: count} of the seat decisions in the range),
-- "refusals" ({reason: count} of acquire_refusals), "unique_machines", "unique_users"
-- (distinct machine hashes and non-null user_sub of the sessions that held a seat in the
-- range), "hours" ([{"start", "peak_seats"}], one per hour of the range)}.
--
-- The peak of an hour is the most sessions holding a seat at once at any instant of it: a sweep
-- over the sessions' [start, seat_until) intervals clipped to the range and to now, with a
-- zero-weight event at each hour's start, so sessions that started earlier and still hold count
-- in every hour they span. At one instant ends sort before the hour mark and starts after it,
-- so a seat handed from one session to the next is one seat, not two.
CREATE OR REPLACE FUNCTION le_admin_usage(
    p_scope TEXT, p_id TEXT, p_from BIGINT, p_to BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lics TEXT[];
    seats BIGINT;
    now_ms BIGINT := le_now_ms();
    upto BIGINT;
    in_use BIGINT;
    outcomes JSONB;
    refused JSONB;
    machines BIGINT;
    users BIGINT;
    hours JSONB;
BEGIN
    IF p_scope = 'license' THEN
        SELECT array_agg(l.id), sum(l.max_seats) FILTER (WHERE l.status = 'active')
        INTO lics, seats FROM licenses l WHERE l.id = p_id;
        IF lics IS NULL THEN
            o_outcome := 'license_not_found';
            RETURN;
        END IF;
    ELSE
        PERFORM 1 FROM organizations o WHERE o.id = p_id;
        IF NOT FOUND THEN
            o_outcome := 'organization_not_found';
            RETURN;
        END IF;
        SELECT coalesce(array_agg(l.id), '{}'), sum(l.max_seats) FILTER (WHERE l.status = 'active')
        INTO lics, seats FROM licenses l WHERE l.organization_id = p_id;
    END IF;
    upto := least(p_to, now_ms);

    SELECT count(*) INTO in_use FROM sessions s
    WHERE s.license_id = ANY (lics) AND s.counted AND s.seat_until > now_ms;

    WITH held AS MATERIALIZED (
        SELECT greatest(x.started_at, p_from) AS a, least(x.seat_until, upto) AS b,
               x.machine_hash, x.user_sub
        FROM sessions x
        WHERE x.license_id = ANY (lics) AND x.seat_until > p_from AND x.started_at < upto
    ), events AS (
        SELECT h.a AS t, 1 AS d FROM held h WHERE h.a < h.b
        UNION ALL
        SELECT h.b, -1 FROM held h WHERE h.a < h.b
        UNION ALL
        SELECT g, 0 FROM generate_series(p_from, p_to - 3600000, 3600000) g
    ), levels AS (
        SELECT e.t, sum(e.d) OVER (ORDER BY e.t, e.d ROWS UNBOUNDED PRECEDING) AS level
        FROM events e
    ), hourly AS (
        SELECT (l.t - p_from) / 3600000 AS i, max(l.level) AS peak
        FROM levels l WHERE l.t < p_to GROUP BY 1
    )
    SELECT (SELECT count(DISTINCT h.machine_hash) FROM held h WHERE h.a < h.b),
           (SELECT count(DISTINCT h.user_sub) FROM held h WHERE h.a < h.b),
           (SELECT coalesce(jsonb_agg(jsonb_build_object('start', p_from + y.i * 3600000,
                                                         'peak_seats', y.peak) ORDER BY y.i),
                            '[]'::jsonb)
            FROM hourly y)
    INTO machines, users, hours;

    SELECT coalesce(jsonb_object_agg(o.outcome, o.n), '{}'::jsonb) INTO outcomes
    FROM (SELECT e.outcome, count(*) AS n FROM audit_events e
          WHERE e.license_id = ANY (lics) AND e.action = 'session.acquire'
            AND e.occurred_at >= p_from AND e.occurred_at < p_to
          GROUP BY e.outcome) o;
    SELECT coalesce(jsonb_object_agg(r.reason, r.n), '{}'::jsonb) INTO refused
    FROM (SELECT a.reason, sum(a.refusals) AS n FROM acquire_refusals a
          WHERE a.license_id = ANY (lics) AND a.hour_start >= p_from AND a.hour_start < p_to
          GROUP BY a.reason) r;

    o_outcome := 'ok';
    o_body := jsonb_build_object(
        'licenses', cardinality(lics), 'max_seats', coalesce(seats, 0), 'seats_in_use', in_use,
        'now', now_ms, 'acquire_outcomes', outcomes, 'refusals', refused,
        'unique_machines', machines, 'unique_users', users, 'hours', hours);
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0008_usage', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
