-- 0001_init: the schema of license-edge and the seat functions.
--
-- Idempotent: safe to run again (CREATE ... IF NOT EXISTS, CREATE OR REPLACE), and it records
-- itself in schema_migrations, so `licensectl migrate`, the deploy Job and a human with
-- `psql -v ON_ERROR_STOP=1 -f migrations/0001_init.sql` all apply it the same way.
--
-- Times are BIGINT Unix epoch milliseconds (Spin's PostgreSQL interface cannot read
-- TIMESTAMPTZ). Ids are TEXT made by the app (`org_…`, `prod_…`, `lic_…`, `ses_…`).

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    code            TEXT NOT NULL,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (organization_id, code)
);

CREATE TABLE IF NOT EXISTS licenses (
    id                    TEXT PRIMARY KEY,
    organization_id       TEXT NOT NULL REFERENCES organizations (id),
    product_id            TEXT NOT NULL REFERENCES products (id),
    -- SHA-256 (hex) of the license key; the key itself is never stored.
    key_hash              TEXT NOT NULL UNIQUE,
    status                TEXT NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'suspended', 'revoked')),
    plan                  TEXT NOT NULL DEFAULT 'standard',
    max_seats             INT NOT NULL CHECK (max_seats >= 0),
    features              TEXT[] NOT NULL DEFAULT '{}',
    expires_at            BIGINT,
    lease_seconds         INT NOT NULL DEFAULT 360 CHECK (lease_seconds BETWEEN 30 AND 86400),
    -- 0: borrowing (offline checkout) is not allowed.
    max_borrow_seconds    INT NOT NULL DEFAULT 0 CHECK (max_borrow_seconds BETWEEN 0 AND 31536000),
    rate_limit_per_minute INT NOT NULL DEFAULT 20 CHECK (rate_limit_per_minute > 0),
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_by_org ON licenses (organization_id, created_at);

-- A session is a seat lease. It holds its seat while ended_at IS NULL AND expires_at > now:
-- a lease that is not renewed lapses by itself, with no background job.
CREATE TABLE IF NOT EXISTS sessions (
    id                TEXT PRIMARY KEY,
    license_id        TEXT NOT NULL REFERENCES licenses (id),
    machine_hash      TEXT NOT NULL,
    user_agent        TEXT,
    metadata          JSONB NOT NULL DEFAULT '{}',
    started_at        BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    borrowed_until    BIGINT,
    ended_at          BIGINT,
    end_reason        TEXT
);
CREATE INDEX IF NOT EXISTS sessions_live ON sessions (license_id, expires_at) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS sessions_by_machine ON sessions (license_id, machine_hash) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS audit_events (
    id              BIGSERIAL PRIMARY KEY,
    occurred_at     BIGINT NOT NULL,
    organization_id TEXT,
    license_id      TEXT,
    session_id      TEXT,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    details         JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_by_license ON audit_events (license_id, id DESC);
CREATE INDEX IF NOT EXISTS audit_by_org ON audit_events (organization_id, id DESC);

-- Acquire attempts per license per minute (fixed windows).
CREATE TABLE IF NOT EXISTS rate_limits (
    license_id   TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    attempts     INT NOT NULL,
    PRIMARY KEY (license_id, window_start)
);

-- Every seat function answers exactly one row (never zero: Spin 4.0.x hangs on zero-row
-- queries). `o_outcome` says what happened; the other columns are filled as far as they apply.

-- Acquire a seat for a machine. The license row is locked FOR UPDATE for the seat decision
-- only (after the rate limit and before the seat count), so concurrent acquires on one license
-- are serialized and never oversell, across any number of app instances.
CREATE OR REPLACE FUNCTION le_acquire(
    p_key_hash TEXT, p_machine_hash TEXT, p_new_session_id TEXT, p_user_agent TEXT,
    p_metadata JSONB, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_session_id TEXT,
    OUT o_session_expires_at BIGINT, OUT o_active_seats INT, OUT o_next_available_at BIGINT,
    OUT o_rate_limit INT, OUT o_rate_remaining INT, OUT o_rate_reset_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    win BIGINT := p_now - (p_now % 60000);
    tries INT;
    live INT;
    soonest BIGINT;
    existing TEXT;
    lease_end BIGINT;
BEGIN
    SELECT l.id, l.rate_limit_per_minute INTO lic.id, lic.rate_limit_per_minute
    FROM licenses l WHERE l.key_hash = p_key_hash;
    IF NOT FOUND THEN
        INSERT INTO audit_events (occurred_at, actor, action, outcome, details)
        VALUES (p_now, 'client', 'session.acquire', 'unknown_key', '{}');
        o_outcome := 'unknown_key';
        RETURN;
    END IF;

    -- Count the attempt before taking the lock, so a flood of refused attempts never queues
    -- behind (or in front of) the seat decisions.
    INSERT INTO rate_limits AS r (license_id, window_start, attempts) VALUES (lic.id, win, 1)
    ON CONFLICT (license_id, window_start) DO UPDATE SET attempts = r.attempts + 1
    RETURNING r.attempts INTO tries;
    IF tries = 1 THEN
        DELETE FROM rate_limits r WHERE r.license_id = lic.id AND r.window_start < win;
    END IF;
    o_rate_limit := lic.rate_limit_per_minute;
    o_rate_remaining := greatest(lic.rate_limit_per_minute - tries, 0);
    o_rate_reset_at := win + 60000;

    -- The seat decision: from here to the end of the statement the license row is locked.
    SELECT * INTO lic FROM licenses l WHERE l.id = lic.id FOR UPDATE;
    o_license_id := lic.id;
    o_organization_id := lic.organization_id;
    o_plan := lic.plan;
    o_features := lic.features;
    o_max_seats := lic.max_seats;
    o_license_expires_at := lic.expires_at;
    o_lease_seconds := lic.lease_seconds;
    SELECT p.code INTO o_product FROM products p WHERE p.id = lic.product_id;
    IF tries > lic.rate_limit_per_minute THEN
        o_outcome := 'rate_limited';
    ELSIF lic.status <> 'active' THEN
        o_outcome := lic.status;
    ELSIF lic.expires_at IS NOT NULL AND lic.expires_at <= p_now THEN
        o_outcome := 'expired';
    END IF;

    IF o_outcome IS NULL THEN
        -- One pass over the live sessions: how many, the soonest lapse, and this machine's.
        SELECT count(*), min(s.expires_at),
               (array_agg(s.id ORDER BY s.expires_at DESC) FILTER (WHERE s.machine_hash = p_machine_hash))[1]
        INTO live, soonest, existing
        FROM sessions s
        WHERE s.license_id = lic.id AND s.ended_at IS NULL AND s.expires_at > p_now;

        lease_end := p_now + lic.lease_seconds::BIGINT * 1000;
        IF lic.expires_at IS NOT NULL THEN
            lease_end := least(lease_end, lic.expires_at);
        END IF;
        IF existing IS NOT NULL THEN
            UPDATE sessions s SET last_heartbeat_at = p_now, expires_at = greatest(s.expires_at, lease_end)
            WHERE s.id = existing
            RETURNING s.id, s.expires_at INTO o_session_id, o_session_expires_at;
            o_outcome := 'existing';
            o_active_seats := live;
        ELSIF live >= lic.max_seats THEN
            o_outcome := 'no_seats';
            o_active_seats := live;
            o_next_available_at := soonest;
        ELSE
            INSERT INTO sessions (id, license_id, machine_hash, user_agent, metadata, started_at,
                                  last_heartbeat_at, expires_at)
            VALUES (p_new_session_id, lic.id, p_machine_hash, p_user_agent, p_metadata, p_now, p_now, lease_end);
            o_session_id := p_new_session_id;
            o_session_expires_at := lease_end;
            o_outcome := 'created';
            o_active_seats := live + 1;
        END IF;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (p_now, lic.organization_id, lic.id, o_session_id, 'client', 'session.acquire', o_outcome,
            jsonb_build_object('machine_hash', p_machine_hash, 'active_seats', o_active_seats));
END;
$$;

-- Renew (p_borrow_s IS NULL) or borrow (extend for offline use by p_borrow_s seconds) a live
-- session. Takes the license row FOR SHARE so that an extension and a concurrent acquire's seat
-- count cannot interleave.
CREATE OR REPLACE FUNCTION le_extend(
    p_key_hash TEXT, p_session_id TEXT, p_borrow_s BIGINT, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_max_borrow_seconds INT,
    OUT o_session_id TEXT, OUT o_machine_hash TEXT, OUT o_session_expires_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    ses sessions%ROWTYPE;
    action TEXT := CASE WHEN p_borrow_s IS NULL THEN 'session.heartbeat' ELSE 'session.borrow' END;
    new_end BIGINT;
BEGIN
    SELECT * INTO lic FROM licenses l WHERE l.key_hash = p_key_hash FOR SHARE;
    IF NOT FOUND THEN
        o_outcome := 'unknown_key';
        INSERT INTO audit_events (occurred_at, session_id, actor, action, outcome, details)
        VALUES (p_now, p_session_id, 'client', action, o_outcome, '{}');
        RETURN;
    END IF;
    o_license_id := lic.id;
    o_organization_id := lic.organization_id;
    o_plan := lic.plan;
    o_features := lic.features;
    o_max_seats := lic.max_seats;
    o_license_expires_at := lic.expires_at;
    o_lease_seconds := lic.lease_seconds;
    o_max_borrow_seconds := lic.max_borrow_seconds;
    SELECT p.code INTO o_product FROM products p WHERE p.id = lic.product_id;
    SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id AND s.license_id = lic.id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
    ELSIF ses.ended_at IS NOT NULL OR ses.expires_at <= p_now THEN
        o_outcome := 'session_expired';
    ELSIF lic.status <> 'active' THEN
        o_outcome := lic.status;
    ELSIF lic.expires_at IS NOT NULL AND lic.expires_at <= p_now THEN
        o_outcome := 'expired';
    ELSIF p_borrow_s IS NOT NULL AND lic.max_borrow_seconds = 0 THEN
        o_outcome := 'borrow_not_allowed';
    ELSIF p_borrow_s IS NOT NULL AND p_borrow_s > lic.max_borrow_seconds THEN
        o_outcome := 'borrow_too_long';
    END IF;
    IF o_outcome IS NULL THEN
        new_end := p_now + coalesce(p_borrow_s, lic.lease_seconds::BIGINT) * 1000;
        IF lic.expires_at IS NOT NULL THEN
            new_end := least(new_end, lic.expires_at);
        END IF;
        UPDATE sessions s SET
            last_heartbeat_at = p_now,
            expires_at = greatest(s.expires_at, new_end),
            borrowed_until = CASE WHEN p_borrow_s IS NULL THEN s.borrowed_until
                                  ELSE greatest(coalesce(s.borrowed_until, 0), new_end) END
        WHERE s.id = ses.id
        RETURNING s.id, s.machine_hash, s.expires_at
        INTO o_session_id, o_machine_hash, o_session_expires_at;
        o_outcome := CASE WHEN p_borrow_s IS NULL THEN 'renewed' ELSE 'borrowed' END;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (p_now, lic.organization_id, lic.id, p_session_id, 'client', action, o_outcome,
            CASE WHEN p_borrow_s IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('duration_s', p_borrow_s) END);
END;
$$;

-- End a session (release). Idempotent: a session already ended answers with its first end.
-- p_actor is 'client' (license key) or 'admin' (force release, p_key_hash NULL).
CREATE OR REPLACE FUNCTION le_release(
    p_key_hash TEXT, p_session_id TEXT, p_actor TEXT, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_session_id TEXT,
    OUT o_ended_at BIGINT, OUT o_token_expires_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic_id TEXT;
    org_id TEXT;
    ses sessions%ROWTYPE;
BEGIN
    IF p_key_hash IS NOT NULL THEN
        SELECT l.id, l.organization_id INTO lic_id, org_id FROM licenses l WHERE l.key_hash = p_key_hash;
        IF NOT FOUND THEN
            o_outcome := 'unknown_key';
            INSERT INTO audit_events (occurred_at, session_id, actor, action, outcome, details)
            VALUES (p_now, p_session_id, p_actor, 'session.release', o_outcome, '{}');
            RETURN;
        END IF;
        SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id AND s.license_id = lic_id FOR UPDATE;
    ELSE
        SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id FOR UPDATE;
        SELECT l.id, l.organization_id INTO lic_id, org_id FROM licenses l WHERE l.id = ses.license_id;
    END IF;
    IF ses.id IS NULL THEN
        o_outcome := 'not_found';
    ELSIF ses.ended_at IS NOT NULL THEN
        o_outcome := 'already_ended';
        o_ended_at := ses.ended_at;
    ELSE
        UPDATE sessions s SET ended_at = p_now, end_reason = CASE WHEN p_actor = 'admin' THEN 'force_released' ELSE 'released' END
        WHERE s.id = ses.id;
        o_outcome := 'released';
        o_ended_at := p_now;
    END IF;
    o_license_id := lic_id;
    o_session_id := ses.id;
    o_token_expires_at := ses.expires_at;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (p_now, org_id, lic_id, p_session_id, p_actor, 'session.release', o_outcome, '{}');
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0001_init', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
