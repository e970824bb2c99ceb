-- 0007_identity: signed-in users on seats.
--
-- A product may require sign-in (products.sign_in_required): then every seat of its licenses
-- belongs to a user, named by the `sub` of an OpenID Connect ID token the acquire component
-- verified (the database trusts the component for that, as it trusts it with the key hash).
-- Sessions record the user (user_sub, and user_email when the token had one). A license may
-- limit the live seats of one user (licenses.max_seats_per_user, NULL: no limit), decided under
-- the same license row lock as max_seats. The same user on the same machine gets their live
-- session back, as the replaced service did; with no user, the machine alone decides, as
-- before.
--
-- Heartbeat, borrow and release go through le_extend_as / le_release_as: by license key as
-- before (refused with 'sign_in_required' on a product that requires sign-in), or by the
-- signed-in user who owns the session (the license key is then not needed, as the old clients
-- send it). Both end in 0003's le_extend / le_release, so every seat rule stays in one place.
--
-- Forward-compatible: new columns are nullable or defaulted, and the previous release's calls
-- (le_acquire_seat with five arguments, le_admin_create_product with five) still work. Same
-- conventions as 0001: idempotent, one transaction, records itself.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

ALTER TABLE products ADD COLUMN IF NOT EXISTS sign_in_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE licenses ADD COLUMN IF NOT EXISTS max_seats_per_user INT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS user_sub TEXT;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS user_email TEXT;
DO $$
BEGIN
    ALTER TABLE licenses ADD CONSTRAINT licenses_max_seats_per_user_positive
        CHECK (max_seats_per_user IS NULL OR max_seats_per_user > 0);
EXCEPTION WHEN duplicate_object THEN NULL;
END;
$$;

-- A user's live sessions on a license: the per-user limit and the same-user lookup.
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (license_id, user_sub, seat_until)
    WHERE ended_at IS NULL AND user_sub IS NOT NULL;

-- The seat decision of 0004 with a user. Every rule of 0004 holds; added: a product that
-- requires sign-in refuses a seat without a user ('sign_in_required'), the same user and
-- machine get their live session back, and a user at the license's max_seats_per_user gets
-- 'user_seat_limit'. Both answered before anything is written but the audit event.
CREATE OR REPLACE FUNCTION le_acquire_seat(
    p_license_id TEXT, p_machine_hash TEXT, p_new_session_id TEXT, p_user_agent TEXT,
    p_metadata JSONB, p_user_sub TEXT, p_user_email TEXT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_offline_grace_seconds INT,
    OUT o_session_id TEXT, OUT o_session_expires_at BIGINT, OUT o_active_seats INT,
    OUT o_next_available_at BIGINT, OUT o_now BIGINT, OUT o_started_at BIGINT,
    OUT o_last_heartbeat_at BIGINT, OUT o_max_seats_per_user INT, OUT o_user_seats INT)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    needs_user BOOLEAN;
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
    o_max_seats_per_user := lic.max_seats_per_user;
    SELECT p.code, p.sign_in_required INTO o_product, needs_user FROM products p WHERE p.id = lic.product_id;
    IF lic.status <> 'active' THEN
        o_outcome := lic.status;
    ELSIF lic.expires_at IS NOT NULL AND lic.expires_at <= now_ms THEN
        o_outcome := 'expired';
    ELSIF needs_user AND p_user_sub IS NULL THEN
        o_outcome := 'sign_in_required';
    END IF;

    IF o_outcome IS NULL THEN
        INSERT INTO license_seat_counts AS c (license_id, counted) VALUES (lic.id, 0)
        ON CONFLICT (license_id) DO UPDATE SET counted = c.counted
        RETURNING c.counted INTO occupied;
        -- This machine's (and user's) session.
        SELECT s.id INTO existing FROM sessions s
        WHERE s.license_id = lic.id AND s.machine_hash = p_machine_hash
          AND s.user_sub IS NOT DISTINCT FROM p_user_sub
          AND s.ended_at IS NULL AND s.seat_until > now_ms
        ORDER BY s.expires_at DESC LIMIT 1;

        lease_end := now_ms + lic.lease_seconds::BIGINT * 1000;
        IF lic.expires_at IS NOT NULL THEN
            lease_end := least(lease_end, lic.expires_at);
        END IF;
        IF p_user_sub IS NOT NULL THEN
            SELECT count(*) INTO o_user_seats FROM sessions s
            WHERE s.license_id = lic.id AND s.user_sub = p_user_sub
              AND s.ended_at IS NULL AND s.seat_until > now_ms;
        END IF;
        IF existing IS NOT NULL THEN
            UPDATE sessions s SET last_heartbeat_at = now_ms,
                expires_at = greatest(s.expires_at, lease_end),
                seat_until = greatest(s.seat_until, greatest(s.expires_at, lease_end) + le_seat_hold_ms())
            WHERE s.id = existing
            RETURNING s.id, s.expires_at, s.started_at, s.last_heartbeat_at
            INTO o_session_id, o_session_expires_at, o_started_at, o_last_heartbeat_at;
            o_outcome := 'existing';
            o_active_seats := occupied;
        ELSIF p_user_sub IS NOT NULL AND lic.max_seats_per_user IS NOT NULL
              AND o_user_seats >= lic.max_seats_per_user THEN
            o_outcome := 'user_seat_limit';
            o_active_seats := occupied;
        ELSE
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
                                      last_heartbeat_at, expires_at, seat_until, counted,
                                      user_sub, user_email)
                VALUES (p_new_session_id, lic.id, p_machine_hash, p_user_agent, p_metadata, now_ms,
                        now_ms, lease_end, lease_end + le_seat_hold_ms(), TRUE,
                        p_user_sub, p_user_email);
                occupied := occupied + 1;
                o_session_id := p_new_session_id;
                o_session_expires_at := lease_end;
                o_started_at := now_ms;
                o_last_heartbeat_at := now_ms;
                o_outcome := 'created';
                o_active_seats := occupied;
                o_user_seats := o_user_seats + 1;
            END IF;
            UPDATE license_seat_counts c SET counted = occupied
            WHERE c.license_id = lic.id AND c.counted <> occupied;
        END IF;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (now_ms, lic.organization_id, lic.id, o_session_id,
            CASE WHEN p_user_sub IS NULL THEN 'client' ELSE 'user:' || p_user_sub END,
            'session.acquire', o_outcome,
            jsonb_strip_nulls(jsonb_build_object('machine_hash', p_machine_hash,
                'active_seats', o_active_seats, 'user_sub', p_user_sub)));
END;
$$;

-- The previous release's call: no user.
CREATE OR REPLACE FUNCTION le_acquire_seat(
    p_license_id TEXT, p_machine_hash TEXT, p_new_session_id TEXT, p_user_agent TEXT,
    p_metadata JSONB,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_offline_grace_seconds INT,
    OUT o_session_id TEXT, OUT o_session_expires_at BIGINT, OUT o_active_seats INT,
    OUT o_next_available_at BIGINT, OUT o_now BIGINT)
LANGUAGE sql AS $$
    SELECT s.o_outcome, s.o_license_id, s.o_organization_id, s.o_product, s.o_plan, s.o_features,
           s.o_max_seats, s.o_license_expires_at, s.o_lease_seconds, s.o_offline_grace_seconds,
           s.o_session_id, s.o_session_expires_at, s.o_active_seats, s.o_next_available_at, s.o_now
    FROM le_acquire_seat(p_license_id, p_machine_hash, p_new_session_id, p_user_agent, p_metadata,
                         NULL, NULL) s
$$;

-- Who may heartbeat, borrow or release a session: the license key's holder (p_user_sub NULL)
-- unless the product requires sign-in, or the signed-in user who owns it (p_key_hash NULL).
-- Answers the key hash le_extend / le_release are to be called with, or an outcome:
-- 'sign_in_required', or 'not_found' for a session that is not the user's (the same answer
-- as a session that does not exist, so users cannot probe each other's session ids).
CREATE OR REPLACE FUNCTION le_session_credential(
    p_key_hash TEXT, p_user_sub TEXT, p_session_id TEXT,
    OUT o_key_hash TEXT, OUT o_outcome TEXT)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lic_key TEXT;
    needs_user BOOLEAN;
    owner TEXT;
BEGIN
    SELECT l.key_hash, p.sign_in_required, s.user_sub INTO lic_key, needs_user, owner
    FROM sessions s JOIN licenses l ON l.id = s.license_id JOIN products p ON p.id = l.product_id
    WHERE s.id = p_session_id;
    IF p_user_sub IS NULL THEN
        IF FOUND AND needs_user AND lic_key = p_key_hash THEN
            o_outcome := 'sign_in_required';
        ELSE
            o_key_hash := p_key_hash;
        END IF;
    ELSIF FOUND AND owner = p_user_sub THEN
        o_key_hash := lic_key;
    ELSE
        o_outcome := 'not_found';
    END IF;
END;
$$;

-- Heartbeat or borrow by key or by user (see le_session_credential), then 0003's le_extend,
-- with the session's start and last heartbeat for the old clients' answer.
CREATE OR REPLACE FUNCTION le_extend_as(
    p_key_hash TEXT, p_user_sub TEXT, p_session_id TEXT, p_borrow_s BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_max_borrow_seconds INT,
    OUT o_session_id TEXT, OUT o_machine_hash TEXT, OUT o_session_expires_at BIGINT,
    OUT o_offline_grace_seconds INT, OUT o_now BIGINT, OUT o_started_at BIGINT,
    OUT o_last_heartbeat_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    cred RECORD;
BEGIN
    SELECT * INTO cred FROM le_session_credential(p_key_hash, p_user_sub, p_session_id);
    IF cred.o_outcome IS NOT NULL THEN
        o_outcome := cred.o_outcome;
        o_now := le_now_ms();
        RETURN;
    END IF;
    SELECT e.o_outcome, e.o_license_id, e.o_organization_id, e.o_product, e.o_plan, e.o_features,
           e.o_max_seats, e.o_license_expires_at, e.o_lease_seconds, e.o_max_borrow_seconds,
           e.o_session_id, e.o_machine_hash, e.o_session_expires_at, e.o_offline_grace_seconds,
           e.o_now
    INTO o_outcome, o_license_id, o_organization_id, o_product, o_plan, o_features,
         o_max_seats, o_license_expires_at, o_lease_seconds, o_max_borrow_seconds,
         o_session_id, o_machine_hash, o_session_expires_at, o_offline_grace_seconds, o_now
    FROM le_extend(cred.o_key_hash, p_session_id, p_borrow_s, NULL) e;
    IF o_session_id IS NOT NULL THEN
        SELECT s.started_at, s.last_heartbeat_at INTO o_started_at, o_last_heartbeat_at
        FROM sessions s WHERE s.id = o_session_id;
    END IF;
END;
$$;

-- A client's release by key or by user (see le_session_credential), then 0003's le_release.
CREATE OR REPLACE FUNCTION le_release_as(
    p_key_hash TEXT, p_user_sub TEXT, p_session_id TEXT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_session_id TEXT,
    OUT o_ended_at BIGINT, OUT o_token_expires_at BIGINT, OUT o_borrowed_until BIGINT,
    OUT o_seat_until BIGINT, OUT o_now BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    cred RECORD;
BEGIN
    SELECT * INTO cred FROM le_session_credential(p_key_hash, p_user_sub, p_session_id);
    IF cred.o_outcome IS NOT NULL THEN
        o_outcome := cred.o_outcome;
        o_now := le_now_ms();
        RETURN;
    END IF;
    SELECT r.o_outcome, r.o_license_id, r.o_session_id, r.o_ended_at, r.o_token_expires_at,
           r.o_borrowed_until, r.o_seat_until, r.o_now
    INTO o_outcome, o_license_id, o_session_id, o_ended_at, o_token_expires_at,
         o_borrowed_until, o_seat_until, o_now
    FROM le_release(cred.o_key_hash, p_session_id, 'client', NULL) r;
END;
$$;

-- Products: sign_in_required at creation (the previous release's five-argument call still
-- resolves here, with the default).
DROP FUNCTION IF EXISTS le_admin_create_product(TEXT, TEXT, TEXT, TEXT, BIGINT);
CREATE OR REPLACE FUNCTION le_admin_create_product(
    p_id TEXT, p_organization_id TEXT, p_code TEXT, p_name TEXT, p_now BIGINT,
    p_sign_in_required BOOLEAN DEFAULT FALSE,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    prod products%ROWTYPE;
BEGIN
    PERFORM 1 FROM organizations o WHERE o.id = p_organization_id;
    IF NOT FOUND THEN
        o_outcome := 'organization_not_found';
        RETURN;
    END IF;
    INSERT INTO products (id, organization_id, code, name, created_at, sign_in_required)
    VALUES (p_id, p_organization_id, p_code, p_name, p_now, coalesce(p_sign_in_required, FALSE))
    ON CONFLICT (organization_id, code) DO NOTHING
    RETURNING * INTO prod;
    IF NOT FOUND THEN
        o_outcome := 'duplicate_product_code';
        RETURN;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, actor, action, outcome, details)
    VALUES (p_now, prod.organization_id, 'admin', 'product.create', 'ok',
            jsonb_build_object('product_id', prod.id, 'code', prod.code, 'name', prod.name,
                               'sign_in_required', prod.sign_in_required));
    o_outcome := 'ok';
    o_body := to_jsonb(prod);
END;
$$;

-- Licenses: max_seats_per_user at creation (p_fields, absent or null: no limit).
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
                          rate_limit_per_minute, offline_grace_seconds, max_seats_per_user,
                          created_at, updated_at)
    VALUES (p_id, prod.organization_id, prod.id, p_key_hash, 'active', p_fields->>'plan',
            (p_fields->>'max_seats')::INT,
            ARRAY(SELECT jsonb_array_elements_text(p_fields->'features')),
            (p_fields->>'expires_at')::BIGINT, (p_fields->>'lease_seconds')::INT,
            (p_fields->>'max_borrow_seconds')::INT, (p_fields->>'rate_limit_per_minute')::INT,
            coalesce((p_fields->>'offline_grace_seconds')::INT, 86400),
            (p_fields->>'max_seats_per_user')::INT, p_now, p_now);
    INSERT INTO audit_events (occurred_at, organization_id, license_id, actor, action, outcome, details)
    VALUES (p_now, prod.organization_id, p_id, 'admin', 'license.create', 'ok',
            p_fields || jsonb_build_object('product_id', prod.id));
    o_outcome := 'ok';
    o_body := le_admin_license_json(p_id);
END;
$$;

-- As 0005's, with max_seats_per_user (null in the patch: no limit).
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
    IF p_patch ? 'max_seats_per_user' THEN
        upd.max_seats_per_user := (p_patch->>'max_seats_per_user')::INT;
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
            offline_grace_seconds = upd.offline_grace_seconds,
            max_seats_per_user = upd.max_seats_per_user, updated_at = p_now
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
VALUES ('0007_identity', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
