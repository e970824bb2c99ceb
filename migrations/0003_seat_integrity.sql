-- 0003_seat_integrity: seat decisions on the database's own clock, seats held for as long as a
-- token of theirs can still validate (borrows included), the offline grace, a version on every
-- license for the edge read model, no writes for unknown keys, the acquire rate limit counted
-- before (and apart from) the seat lock, and the bookkeeping of the key-value sweep.
--
-- What each rule protects, and the test that holds it, is listed in ARCHITECTURE.md
-- ("Invariants"). Idempotent and records itself, like 0001.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- Time and the hold ----------------------------------------------------------------------

-- The database's clock, epoch ms, read when called (not the transaction's start). Every seat
-- decision reads it after taking its locks; a caller's clock never decides a seat.
CREATE OR REPLACE FUNCTION le_now_ms() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
$$;

-- The clock leeway validate grants on a token's exp (license_edge::DEFAULT_LEEWAY_SECS).
CREATE OR REPLACE FUNCTION le_token_leeway_ms() RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT 60000::BIGINT $$;

-- How long past a session's expires_at its seat stays counted: the validation leeway, plus
-- 5 s for a difference between the edge's clock and the database's. A token can validate
-- until exp + leeway on the edge's clock, and exp <= expires_at, so within this hold.
CREATE OR REPLACE FUNCTION le_seat_hold_ms() RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT le_token_leeway_ms() + 5000 $$;

-- Licenses --------------------------------------------------------------------------------

-- How long after a token's exp an offline verifier may still accept it (the `offline_grace`
-- claim). 24 hours by default, at most 7 days.
ALTER TABLE licenses ADD COLUMN IF NOT EXISTS offline_grace_seconds INT NOT NULL DEFAULT 86400;
ALTER TABLE licenses DROP CONSTRAINT IF EXISTS licenses_offline_grace_range;
ALTER TABLE licenses ADD CONSTRAINT licenses_offline_grace_range
    CHECK (offline_grace_seconds BETWEEN 0 AND 604800);

-- The admin API keeps leases at 30 s and longer; the database allows from 1 s so that tests
-- can watch leases lapse.
ALTER TABLE licenses DROP CONSTRAINT IF EXISTS licenses_lease_seconds_check;
ALTER TABLE licenses DROP CONSTRAINT IF EXISTS licenses_lease_seconds_range;
ALTER TABLE licenses ADD CONSTRAINT licenses_lease_seconds_range
    CHECK (lease_seconds BETWEEN 1 AND 86400);

-- Bumped by every UPDATE of a license row, whoever makes it. The edge read model's writers
-- compare it to converge on the latest state (see le_license_states).
ALTER TABLE licenses ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION le_licenses_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS licenses_bump_version ON licenses;
CREATE TRIGGER licenses_bump_version BEFORE UPDATE ON licenses
    FOR EACH ROW EXECUTE FUNCTION le_licenses_bump_version();

-- Sessions --------------------------------------------------------------------------------

-- seat_until: until when (database clock, epoch ms) the session holds its seat. A session
-- holds a seat exactly while seat_until > now. Kept by the seat functions:
--   live:      expires_at + le_seat_hold_ms() (so a lapsed lease keeps its seat while its
--              token can still validate; a borrow raises expires_at to the borrow's end);
--   ended:     the end, unless the session was borrowed: then the borrow's end + the hold,
--              because its token keeps working offline until then.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS seat_until BIGINT;
UPDATE sessions s SET seat_until = CASE
        WHEN s.ended_at IS NULL THEN s.expires_at + le_seat_hold_ms()
        ELSE greatest(s.ended_at, coalesce(s.borrowed_until + le_seat_hold_ms(), 0))
    END
WHERE s.seat_until IS NULL;
ALTER TABLE sessions ALTER COLUMN seat_until SET NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_holding ON sessions (license_id, seat_until);
-- The sweep of the key-value store walks sessions in expiry order.
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at, id);

-- Marks the license's sessions whose hold has passed as ended ('lapsed'), so that nothing can
-- renew a session a seat decision already counted as gone, whatever the clocks do later.
CREATE OR REPLACE FUNCTION le_reclaim_lapsed(p_license_id TEXT, p_now BIGINT) RETURNS VOID
LANGUAGE sql AS $$
    UPDATE sessions s SET ended_at = p_now, end_reason = 'lapsed'
    WHERE s.license_id = p_license_id AND s.ended_at IS NULL AND s.seat_until <= p_now
$$;

-- Seat functions ----------------------------------------------------------------------------
--
-- Every one answers exactly one row (never zero: Spin 4.0.x hangs on zero-row queries), reads
-- the database's clock only after its locks, and writes nothing for an unknown license key
-- (those refusals are counted in the components' logs, never in PostgreSQL).

-- Step 1 of an acquire, a statement of its own: the license key and the rate limit. It counts
-- the attempt (one short upsert, committed at once) and touches no seat and no license lock,
-- so refused attempts never queue behind seat decisions. o_outcome: 'unknown_key',
-- 'rate_limited' or 'counted'.
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
END;
$$;

-- Step 2 of an acquire: the seat decision, under the license row lock (FOR UPDATE), on the
-- database's clock read after the lock. o_outcome: 'created', 'existing', 'no_seats',
-- 'suspended', 'revoked', 'expired' or 'unknown_key' (no such license).
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
    live INT;
    soonest BIGINT;
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
        SELECT count(*), min(s.seat_until) INTO live, soonest
        FROM sessions s WHERE s.license_id = lic.id AND s.seat_until > now_ms;
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
            o_active_seats := live;
        ELSIF live >= lic.max_seats THEN
            o_outcome := 'no_seats';
            o_active_seats := live;
            o_next_available_at := soonest;
        ELSE
            PERFORM le_reclaim_lapsed(lic.id, now_ms);
            INSERT INTO sessions (id, license_id, machine_hash, user_agent, metadata, started_at,
                                  last_heartbeat_at, expires_at, seat_until)
            VALUES (p_new_session_id, lic.id, p_machine_hash, p_user_agent, p_metadata, now_ms,
                    now_ms, lease_end, lease_end + le_seat_hold_ms());
            o_session_id := p_new_session_id;
            o_session_expires_at := lease_end;
            o_outcome := 'created';
            o_active_seats := live + 1;
        END IF;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (now_ms, lic.organization_id, lic.id, o_session_id, 'client', 'session.acquire', o_outcome,
            jsonb_build_object('machine_hash', p_machine_hash, 'active_seats', o_active_seats));
END;
$$;

-- The previous release's one-call acquire, kept so that a rollback of the app still works on
-- this schema: both steps in one transaction (so its attempt counter is held until the seat
-- decision commits). p_now is ignored. Drop it once no running release calls it.
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
    a RECORD;
    s RECORD;
BEGIN
    SELECT * INTO a FROM le_acquire_attempt(p_key_hash);
    o_outcome := a.o_outcome;
    o_rate_limit := a.o_rate_limit;
    o_rate_remaining := a.o_rate_remaining;
    o_rate_reset_at := a.o_rate_reset_at;
    IF a.o_outcome <> 'counted' THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM le_acquire_seat(a.o_license_id, p_machine_hash, p_new_session_id,
                                         p_user_agent, p_metadata);
    o_outcome := s.o_outcome;
    o_license_id := s.o_license_id;
    o_organization_id := s.o_organization_id;
    o_product := s.o_product;
    o_plan := s.o_plan;
    o_features := s.o_features;
    o_max_seats := s.o_max_seats;
    o_license_expires_at := s.o_license_expires_at;
    o_lease_seconds := s.o_lease_seconds;
    o_session_id := s.o_session_id;
    o_session_expires_at := s.o_session_expires_at;
    o_active_seats := s.o_active_seats;
    o_next_available_at := s.o_next_available_at;
END;
$$;

-- Renew (p_borrow_s IS NULL) or borrow (extend for offline use by p_borrow_s seconds) a session
-- that still holds its seat. Takes the license row FOR SHARE and the session row FOR UPDATE,
-- then reads the database's clock: a renewal that waited behind an acquire which counted the
-- session as lapsed finds it lapsed (and marked ended) too. p_now is ignored (kept for the
-- previous release's calls).
DROP FUNCTION IF EXISTS le_extend(TEXT, TEXT, BIGINT, BIGINT);
CREATE FUNCTION le_extend(
    p_key_hash TEXT, p_session_id TEXT, p_borrow_s BIGINT, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_max_borrow_seconds INT,
    OUT o_session_id TEXT, OUT o_machine_hash TEXT, OUT o_session_expires_at BIGINT,
    OUT o_offline_grace_seconds INT, OUT o_now BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    ses sessions%ROWTYPE;
    action TEXT := CASE WHEN p_borrow_s IS NULL THEN 'session.heartbeat' ELSE 'session.borrow' END;
    now_ms BIGINT;
    new_end BIGINT;
BEGIN
    SELECT * INTO lic FROM licenses l WHERE l.key_hash = p_key_hash FOR SHARE;
    IF NOT FOUND THEN
        o_outcome := 'unknown_key';
        o_now := le_now_ms();
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
    o_offline_grace_seconds := lic.offline_grace_seconds;
    SELECT p.code INTO o_product FROM products p WHERE p.id = lic.product_id;
    SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id AND s.license_id = lic.id FOR UPDATE;
    now_ms := le_now_ms();
    o_now := now_ms;
    IF ses.id IS NULL THEN
        o_outcome := 'not_found';
    ELSIF ses.ended_at IS NOT NULL OR ses.seat_until <= now_ms THEN
        o_outcome := 'session_expired';
    ELSIF lic.status <> 'active' THEN
        o_outcome := lic.status;
    ELSIF lic.expires_at IS NOT NULL AND lic.expires_at <= now_ms THEN
        o_outcome := 'expired';
    ELSIF p_borrow_s IS NOT NULL AND lic.max_borrow_seconds = 0 THEN
        o_outcome := 'borrow_not_allowed';
    ELSIF p_borrow_s IS NOT NULL AND p_borrow_s > lic.max_borrow_seconds THEN
        o_outcome := 'borrow_too_long';
    END IF;
    IF o_outcome IS NULL THEN
        new_end := now_ms + coalesce(p_borrow_s, lic.lease_seconds::BIGINT) * 1000;
        IF lic.expires_at IS NOT NULL THEN
            new_end := least(new_end, lic.expires_at);
        END IF;
        UPDATE sessions s SET
            last_heartbeat_at = now_ms,
            expires_at = greatest(s.expires_at, new_end),
            borrowed_until = CASE WHEN p_borrow_s IS NULL THEN s.borrowed_until
                                  ELSE greatest(coalesce(s.borrowed_until, 0), new_end) END,
            seat_until = greatest(s.seat_until, greatest(s.expires_at, new_end) + le_seat_hold_ms())
        WHERE s.id = ses.id
        RETURNING s.id, s.machine_hash, s.expires_at
        INTO o_session_id, o_machine_hash, o_session_expires_at;
        o_outcome := CASE WHEN p_borrow_s IS NULL THEN 'renewed' ELSE 'borrowed' END;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (now_ms, lic.organization_id, lic.id, p_session_id, 'client', action, o_outcome,
            CASE WHEN p_borrow_s IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('duration_s', p_borrow_s) END);
END;
$$;

-- End a session. Idempotent: a session already ended answers with its first end.
-- p_actor 'client' (license key): a session borrowed until later answers 'borrowed' with
-- o_borrowed_until and changes nothing (its token works offline until then; the seat comes
-- back by itself when the borrow ends). p_actor 'admin' (force release, p_key_hash NULL) ends
-- any session at once at the edge; a borrowed one keeps its seat counted until the borrow's
-- end plus the hold (o_seat_until). p_now is ignored (kept for the previous release's calls).
DROP FUNCTION IF EXISTS le_release(TEXT, TEXT, TEXT, BIGINT);
CREATE FUNCTION le_release(
    p_key_hash TEXT, p_session_id TEXT, p_actor TEXT, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_session_id TEXT,
    OUT o_ended_at BIGINT, OUT o_token_expires_at BIGINT, OUT o_borrowed_until BIGINT,
    OUT o_seat_until BIGINT, OUT o_now BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic_id TEXT;
    org_id TEXT;
    ses sessions%ROWTYPE;
    now_ms BIGINT;
BEGIN
    IF p_key_hash IS NOT NULL THEN
        SELECT l.id, l.organization_id INTO lic_id, org_id FROM licenses l WHERE l.key_hash = p_key_hash;
        IF NOT FOUND THEN
            o_outcome := 'unknown_key';
            o_now := le_now_ms();
            RETURN;
        END IF;
        SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id AND s.license_id = lic_id FOR UPDATE;
    ELSE
        SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id FOR UPDATE;
        SELECT l.id, l.organization_id INTO lic_id, org_id FROM licenses l WHERE l.id = ses.license_id;
    END IF;
    now_ms := le_now_ms();
    o_now := now_ms;
    IF ses.id IS NULL THEN
        o_outcome := 'not_found';
    ELSIF ses.ended_at IS NOT NULL THEN
        o_outcome := 'already_ended';
        o_ended_at := ses.ended_at;
    ELSIF p_actor = 'client' AND ses.borrowed_until IS NOT NULL AND ses.borrowed_until > now_ms THEN
        o_outcome := 'borrowed';
    ELSE
        UPDATE sessions s SET
            ended_at = now_ms,
            end_reason = CASE WHEN p_actor = 'admin' THEN 'force_released' ELSE 'released' END,
            seat_until = least(s.seat_until,
                               greatest(now_ms, coalesce(s.borrowed_until + le_seat_hold_ms(), 0)))
        WHERE s.id = ses.id
        RETURNING s.seat_until INTO o_seat_until;
        o_outcome := 'released';
        o_ended_at := now_ms;
    END IF;
    o_license_id := lic_id;
    o_session_id := ses.id;
    o_token_expires_at := ses.expires_at;
    o_borrowed_until := ses.borrowed_until;
    o_seat_until := coalesce(o_seat_until, ses.seat_until);
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (now_ms, org_id, lic_id, p_session_id, p_actor, 'session.release', o_outcome,
            CASE WHEN o_outcome = 'borrowed' THEN jsonb_build_object('borrowed_until', ses.borrowed_until)
                 ELSE '{}'::jsonb END);
END;
$$;

-- Admin functions that count or list seats: a seat is held while seat_until > now --------------

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
    SELECT count(*) INTO live FROM sessions s WHERE s.license_id = p_id AND s.seat_until > now_ms;
    SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.started_at DESC, s.id DESC), '[]'::jsonb) INTO list
    FROM (SELECT * FROM sessions s
          WHERE s.license_id = p_id AND s.seat_until > now_ms
          ORDER BY s.started_at DESC, s.id DESC
          LIMIT p_sessions) s;
    o_outcome := 'ok';
    o_body := jsonb_build_object('license', lic, 'active_seats', live, 'sessions', list);
END;
$$;

-- p_fields holds every settable field, checked by the core (src/admin.rs): plan, max_seats,
-- features, expires_at (epoch ms or null), lease_seconds, max_borrow_seconds,
-- rate_limit_per_minute, and now offline_grace_seconds (absent: the column's default).
CREATE OR REPLACE FUNCTION le_admin_create_license(
    p_id TEXT, p_key_hash TEXT, p_product_id TEXT, p_fields JSONB, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    prod products%ROWTYPE;
BEGIN
    SELECT * INTO prod FROM products p WHERE p.id = p_product_id;
    IF NOT FOUND THEN
        o_outcome := 'product_not_found';
        RETURN;
    END IF;
    INSERT INTO licenses (id, organization_id, product_id, key_hash, status, plan, max_seats,
                          features, expires_at, lease_seconds, max_borrow_seconds,
                          rate_limit_per_minute, offline_grace_seconds, created_at, updated_at)
    VALUES (p_id, prod.organization_id, prod.id, p_key_hash, 'active', p_fields->>'plan',
            (p_fields->>'max_seats')::INT,
            ARRAY(SELECT jsonb_array_elements_text(p_fields->'features')),
            (p_fields->>'expires_at')::BIGINT, (p_fields->>'lease_seconds')::INT,
            (p_fields->>'max_borrow_seconds')::INT, (p_fields->>'rate_limit_per_minute')::INT,
            coalesce((p_fields->>'offline_grace_seconds')::INT, 86400), p_now, p_now);
    INSERT INTO audit_events (occurred_at, organization_id, license_id, actor, action, outcome, details)
    VALUES (p_now, prod.organization_id, p_id, 'admin', 'license.create', 'ok',
            p_fields || jsonb_build_object('product_id', prod.id));
    o_outcome := 'ok';
    o_body := le_admin_license_json(p_id);
END;
$$;

-- As in 0002, counting seats as held while seat_until > now, and with offline_grace_seconds.
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
    SELECT count(*) INTO live FROM sessions s WHERE s.license_id = p_id AND s.seat_until > le_now_ms();
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

-- p_state: 'live' (holding a seat now), 'ended' (not holding one) or 'all'.
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
                    WHEN 'live' THEN s.seat_until > now_ms
                    WHEN 'ended' THEN s.seat_until <= now_ms
                    ELSE TRUE END
            AND (p_cursor_at IS NULL OR (s.started_at, s.id) < (p_cursor_at, p_cursor_id))
          ORDER BY s.started_at DESC, s.id DESC
          LIMIT p_limit + 1) s;
    o_outcome := 'ok';
END;
$$;

-- Force release, as le_release by the admin. The body says until when the seat stays counted.
CREATE OR REPLACE FUNCTION le_admin_release(
    p_session_id TEXT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    PERFORM 1 FROM sessions s WHERE s.id = p_session_id;
    IF NOT FOUND THEN
        o_outcome := 'session_not_found';
        RETURN;
    END IF;
    SELECT * INTO r FROM le_release(NULL, p_session_id, 'admin', NULL);
    o_outcome := r.o_outcome;
    o_body := jsonb_build_object('license_id', r.o_license_id, 'ended_at', r.o_ended_at,
                                 'token_expires_at', r.o_token_expires_at,
                                 'seat_until', r.o_seat_until, 'now', r.o_now);
END;
$$;

-- The edge read model: license states with their versions --------------------------------------

-- For the rebuild: licenses by id after p_after, p_limit at a time (with p_since, only those
-- changed at or after it), each with its version.
CREATE OR REPLACE FUNCTION le_admin_license_states(
    p_after TEXT, p_since BIGINT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'status', l.status,
                                                       'expires_at', l.expires_at,
                                                       'version', l.version) ORDER BY l.id), '[]'::jsonb)
    FROM (SELECT * FROM licenses l
          WHERE (p_after IS NULL OR l.id > p_after)
            AND (p_since IS NULL OR l.updated_at >= p_since)
          ORDER BY l.id LIMIT p_limit) l
$$;

-- The current state of the licenses whose ids p_ids (a JSON array of strings) lists, in id
-- order; unknown ids are left out. A writer of `lic:` entries reads this after each write and
-- writes again while a version it wrote is not the latest.
CREATE OR REPLACE FUNCTION le_license_states(p_ids JSONB, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'status', l.status,
                                                       'expires_at', l.expires_at,
                                                       'version', l.version) ORDER BY l.id), '[]'::jsonb)
    FROM licenses l
    WHERE l.id IN (SELECT jsonb_array_elements_text(p_ids))
$$;

-- Sessions that ended while a token of theirs may still validate (expires_at + the validation
-- leeway > now, on the database's clock; p_now is ignored).
CREATE OR REPLACE FUNCTION le_admin_ended_sessions(
    p_after TEXT, p_limit INT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', s.id, 'ended_at', s.ended_at,
                                                       'token_expires_at', s.expires_at) ORDER BY s.id), '[]'::jsonb)
    FROM (SELECT * FROM sessions s
          WHERE s.ended_at IS NOT NULL AND s.expires_at + le_token_leeway_ms() > le_now_ms()
            AND (p_after IS NULL OR s.id > p_after)
          ORDER BY s.id LIMIT p_limit) s
$$;

-- The key-value sweep ----------------------------------------------------------------------

-- How far the sweep has come: sessions are swept in (expires_at, id) order.
CREATE TABLE IF NOT EXISTS kv_sweep (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    swept_at   BIGINT NOT NULL,
    swept_id   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The next p_limit sessions whose key-value entries (`sess:` end marker, `vt:` cache entry)
-- can go: no token of theirs can validate any more (expires_at + the hold has passed, and a
-- session past its hold can never be renewed). o_body: {"sessions": [ids], "cursor": {"at",
-- "id"} of the last one or null, "cutoff"}.
CREATE OR REPLACE FUNCTION le_admin_kv_sweep_batch(p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff BIGINT := le_now_ms() - le_seat_hold_ms();
    from_at BIGINT;
    from_id TEXT;
    ids JSONB;
    last_at BIGINT;
    last_id TEXT;
BEGIN
    SELECT k.swept_at, k.swept_id INTO from_at, from_id FROM kv_sweep k;
    SELECT coalesce(jsonb_agg(s.id ORDER BY s.expires_at, s.id), '[]'::jsonb),
           (array_agg(s.expires_at ORDER BY s.expires_at DESC, s.id DESC))[1],
           (array_agg(s.id ORDER BY s.expires_at DESC, s.id DESC))[1]
    INTO ids, last_at, last_id
    FROM (SELECT s.id, s.expires_at FROM sessions s
          WHERE s.expires_at <= cutoff
            AND (from_at IS NULL OR (s.expires_at, s.id) > (from_at, from_id))
          ORDER BY s.expires_at, s.id
          LIMIT p_limit) s;
    o_outcome := 'ok';
    o_body := jsonb_build_object('sessions', ids, 'cutoff', cutoff,
                                 'cursor', CASE WHEN last_id IS NULL THEN NULL
                                                ELSE jsonb_build_object('at', last_at, 'id', last_id) END);
END;
$$;

-- Records that every session up to (p_at, p_id) has been swept. Never moves backwards.
CREATE OR REPLACE FUNCTION le_admin_kv_sweep_advance(
    p_at BIGINT, p_id TEXT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kv_sweep AS k (singleton, swept_at, swept_id, updated_at)
    VALUES (TRUE, p_at, p_id, le_now_ms())
    ON CONFLICT (singleton) DO UPDATE SET swept_at = EXCLUDED.swept_at, swept_id = EXCLUDED.swept_id,
                                          updated_at = EXCLUDED.updated_at
    WHERE (k.swept_at, k.swept_id) < (EXCLUDED.swept_at, EXCLUDED.swept_id);
    o_outcome := 'ok';
    o_body := (SELECT jsonb_build_object('swept_at', k.swept_at, 'swept_id', k.swept_id) FROM kv_sweep k);
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0003_seat_integrity', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
