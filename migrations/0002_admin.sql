-- 0002_admin: the functions of the admin API (components/admin), and indexes for its lists.
--
-- Each function is one round trip for the admin component and answers exactly one row
-- (o_outcome TEXT, o_body JSONB): never zero rows (Spin 4.0.x hangs on zero-row queries), and
-- never a TIMESTAMPTZ. o_outcome is 'ok' (or 'changed' / 'unchanged' / 'released' /
-- 'already_ended') on success, otherwise a refusal such as 'license_not_found'; a refusal
-- writes nothing. o_body is the resource(s) as JSON with times in epoch ms, which the core
-- (src/admin.rs) reads and shapes. Lists answer up to p_limit + 1 items, newest first, so the
-- caller knows whether a next page exists. Every change writes an audit event (actor 'admin').
--
-- Idempotent (CREATE OR REPLACE, IF NOT EXISTS) and records itself, like 0001.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS organizations_by_time ON organizations (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS products_by_org_time ON products (organization_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS licenses_by_time ON licenses (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS licenses_by_product ON licenses (product_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS sessions_by_license ON sessions (license_id, started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS sessions_ended ON sessions (id) WHERE ended_at IS NOT NULL;

-- A license as the admin API shows it: every column but the key hash, and the product's code.
CREATE OR REPLACE FUNCTION le_admin_license_json(p_id TEXT) RETURNS JSONB
LANGUAGE sql STABLE AS $$
    SELECT (to_jsonb(l) - 'key_hash') || jsonb_build_object('product_code', p.code)
    FROM licenses l JOIN products p ON p.id = l.product_id
    WHERE l.id = p_id
$$;

-- Organizations ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION le_admin_create_organization(
    p_id TEXT, p_name TEXT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    org organizations%ROWTYPE;
BEGIN
    INSERT INTO organizations (id, name, created_at) VALUES (p_id, p_name, p_now) RETURNING * INTO org;
    INSERT INTO audit_events (occurred_at, organization_id, actor, action, outcome, details)
    VALUES (p_now, org.id, 'admin', 'organization.create', 'ok', jsonb_build_object('name', org.name));
    o_outcome := 'ok';
    o_body := to_jsonb(org);
END;
$$;

CREATE OR REPLACE FUNCTION le_admin_organizations(
    p_cursor_at BIGINT, p_cursor_id TEXT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(to_jsonb(o) ORDER BY o.created_at DESC, o.id DESC), '[]'::jsonb)
    FROM (SELECT * FROM organizations o
          WHERE p_cursor_at IS NULL OR (o.created_at, o.id) < (p_cursor_at, p_cursor_id)
          ORDER BY o.created_at DESC, o.id DESC
          LIMIT p_limit + 1) o
$$;

CREATE OR REPLACE FUNCTION le_admin_organization(p_id TEXT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT to_jsonb(o) INTO o_body FROM organizations o WHERE o.id = p_id;
    o_outcome := CASE WHEN o_body IS NULL THEN 'organization_not_found' ELSE 'ok' END;
END;
$$;

-- Products --------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION le_admin_create_product(
    p_id TEXT, p_organization_id TEXT, p_code TEXT, p_name TEXT, p_now BIGINT,
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
    INSERT INTO products (id, organization_id, code, name, created_at)
    VALUES (p_id, p_organization_id, p_code, p_name, p_now)
    ON CONFLICT (organization_id, code) DO NOTHING
    RETURNING * INTO prod;
    IF NOT FOUND THEN
        o_outcome := 'duplicate_product_code';
        RETURN;
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, actor, action, outcome, details)
    VALUES (p_now, prod.organization_id, 'admin', 'product.create', 'ok',
            jsonb_build_object('product_id', prod.id, 'code', prod.code, 'name', prod.name));
    o_outcome := 'ok';
    o_body := to_jsonb(prod);
END;
$$;

CREATE OR REPLACE FUNCTION le_admin_products(
    p_organization_id TEXT, p_cursor_at BIGINT, p_cursor_id TEXT, p_limit INT,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.created_at DESC, p.id DESC), '[]'::jsonb)
    FROM (SELECT * FROM products p
          WHERE (p_organization_id IS NULL OR p.organization_id = p_organization_id)
            AND (p_cursor_at IS NULL OR (p.created_at, p.id) < (p_cursor_at, p_cursor_id))
          ORDER BY p.created_at DESC, p.id DESC
          LIMIT p_limit + 1) p
$$;

CREATE OR REPLACE FUNCTION le_admin_product(p_id TEXT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT to_jsonb(p) INTO o_body FROM products p WHERE p.id = p_id;
    o_outcome := CASE WHEN o_body IS NULL THEN 'product_not_found' ELSE 'ok' END;
END;
$$;

-- Licenses --------------------------------------------------------------------------------

-- p_fields holds every settable field, checked by the core (src/admin.rs): plan, max_seats,
-- features, expires_at (epoch ms or null), lease_seconds, max_borrow_seconds,
-- rate_limit_per_minute.
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
                          rate_limit_per_minute, created_at, updated_at)
    VALUES (p_id, prod.organization_id, prod.id, p_key_hash, 'active', p_fields->>'plan',
            (p_fields->>'max_seats')::INT,
            ARRAY(SELECT jsonb_array_elements_text(p_fields->'features')),
            (p_fields->>'expires_at')::BIGINT, (p_fields->>'lease_seconds')::INT,
            (p_fields->>'max_borrow_seconds')::INT, (p_fields->>'rate_limit_per_minute')::INT,
            p_now, p_now);
    INSERT INTO audit_events (occurred_at, organization_id, license_id, actor, action, outcome, details)
    VALUES (p_now, prod.organization_id, p_id, 'admin', 'license.create', 'ok',
            p_fields || jsonb_build_object('product_id', prod.id));
    o_outcome := 'ok';
    o_body := le_admin_license_json(p_id);
END;
$$;

CREATE OR REPLACE FUNCTION le_admin_licenses(
    p_organization_id TEXT, p_product_id TEXT, p_status TEXT,
    p_cursor_at BIGINT, p_cursor_id TEXT, p_limit INT,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(x.j ORDER BY x.created_at DESC, x.id DESC), '[]'::jsonb)
    FROM (SELECT (to_jsonb(l) - 'key_hash') || jsonb_build_object('product_code', p.code) AS j,
                 l.created_at, l.id
          FROM licenses l JOIN products p ON p.id = l.product_id
          WHERE (p_organization_id IS NULL OR l.organization_id = p_organization_id)
            AND (p_product_id IS NULL OR l.product_id = p_product_id)
            AND (p_status IS NULL OR l.status = p_status)
            AND (p_cursor_at IS NULL OR (l.created_at, l.id) < (p_cursor_at, p_cursor_id))
          ORDER BY l.created_at DESC, l.id DESC
          LIMIT p_limit + 1) x
$$;

-- A license, its live seat count and its newest p_sessions live sessions.
CREATE OR REPLACE FUNCTION le_admin_license(
    p_id TEXT, p_now BIGINT, p_sessions INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lic JSONB := le_admin_license_json(p_id);
    live INT;
    list JSONB;
BEGIN
    IF lic IS NULL THEN
        o_outcome := 'license_not_found';
        RETURN;
    END IF;
    SELECT count(*) INTO live FROM sessions s
    WHERE s.license_id = p_id AND s.ended_at IS NULL AND s.expires_at > p_now;
    SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.started_at DESC, s.id DESC), '[]'::jsonb) INTO list
    FROM (SELECT * FROM sessions s
          WHERE s.license_id = p_id AND s.ended_at IS NULL AND s.expires_at > p_now
          ORDER BY s.started_at DESC, s.id DESC
          LIMIT p_sessions) s;
    o_outcome := 'ok';
    o_body := jsonb_build_object('license', lic, 'active_seats', live, 'sessions', list);
END;
$$;

-- Applies the fields present in p_patch (checked by the core). A revoked license is final.
-- Fields whose value does not change are not recorded; a patch that changes nothing writes
-- nothing. Live sessions are never ended, even above a lowered max_seats.
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
    FOR k IN SELECT jsonb_object_keys(p_patch) LOOP
        IF to_jsonb(cur)->k IS DISTINCT FROM to_jsonb(upd)->k THEN
            changes := changes || jsonb_build_object(k,
                jsonb_build_object('from', to_jsonb(cur)->k, 'to', to_jsonb(upd)->k));
        END IF;
    END LOOP;
    SELECT count(*) INTO live FROM sessions s
    WHERE s.license_id = p_id AND s.ended_at IS NULL AND s.expires_at > p_now;
    IF changes <> '{}'::jsonb THEN
        UPDATE licenses l SET
            plan = upd.plan, max_seats = upd.max_seats, features = upd.features,
            expires_at = upd.expires_at, lease_seconds = upd.lease_seconds,
            max_borrow_seconds = upd.max_borrow_seconds,
            rate_limit_per_minute = upd.rate_limit_per_minute, updated_at = p_now
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

-- p_action: 'suspend' (-> suspended), 'reinstate' (-> active) or 'revoke' (-> revoked, final).
-- Asking for the status the license already has is not an error ('unchanged'), so a retry
-- after a key-value failure can propagate the change.
CREATE OR REPLACE FUNCTION le_admin_set_status(
    p_id TEXT, p_action TEXT, p_reason TEXT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    target TEXT := CASE p_action WHEN 'suspend' THEN 'suspended'
                                 WHEN 'reinstate' THEN 'active'
                                 WHEN 'revoke' THEN 'revoked' END;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'le_admin_set_status: unknown action %', p_action;
    END IF;
    SELECT * INTO lic FROM licenses l WHERE l.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'license_not_found';
        RETURN;
    END IF;
    IF lic.status = 'revoked' AND target <> 'revoked' THEN
        o_outcome := 'revoked_' || p_action;
        RETURN;
    END IF;
    IF lic.status = target THEN
        o_outcome := 'unchanged';
    ELSE
        UPDATE licenses l SET status = target, updated_at = p_now WHERE l.id = p_id;
        INSERT INTO audit_events (occurred_at, organization_id, license_id, actor, action, outcome, details)
        VALUES (p_now, lic.organization_id, p_id, 'admin', 'license.' || p_action, 'ok',
                jsonb_strip_nulls(jsonb_build_object('from', lic.status, 'to', target, 'reason', p_reason)));
        o_outcome := 'changed';
    END IF;
    o_body := le_admin_license_json(p_id);
END;
$$;

-- Sessions --------------------------------------------------------------------------------

-- p_state: 'live' (holding a seat now), 'ended' (released, force-released or lapsed) or 'all'.
CREATE OR REPLACE FUNCTION le_admin_sessions(
    p_license_id TEXT, p_state TEXT, p_cursor_at BIGINT, p_cursor_id TEXT, p_limit INT, p_now BIGINT,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
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
                    WHEN 'live' THEN s.ended_at IS NULL AND s.expires_at > p_now
                    WHEN 'ended' THEN s.ended_at IS NOT NULL OR s.expires_at <= p_now
                    ELSE TRUE END
            AND (p_cursor_at IS NULL OR (s.started_at, s.id) < (p_cursor_at, p_cursor_id))
          ORDER BY s.started_at DESC, s.id DESC
          LIMIT p_limit + 1) s;
    o_outcome := 'ok';
END;
$$;

-- Force release: le_release as the admin (no license key). An unknown session writes nothing.
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
    SELECT * INTO r FROM le_release(NULL, p_session_id, 'admin', p_now);
    o_outcome := r.o_outcome;
    o_body := jsonb_build_object('license_id', r.o_license_id, 'ended_at', r.o_ended_at,
                                 'token_expires_at', r.o_token_expires_at);
END;
$$;

-- Audit -----------------------------------------------------------------------------------

-- p_scope: 'license' or 'organization'. Newest first; p_before is the last id already seen.
CREATE OR REPLACE FUNCTION le_admin_audit(
    p_scope TEXT, p_id TEXT, p_before BIGINT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_scope = 'license' THEN
        PERFORM 1 FROM licenses l WHERE l.id = p_id;
        IF NOT FOUND THEN
            o_outcome := 'license_not_found';
            RETURN;
        END IF;
        SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id DESC), '[]'::jsonb) INTO o_body
        FROM (SELECT * FROM audit_events e
              WHERE e.license_id = p_id AND (p_before IS NULL OR e.id < p_before)
              ORDER BY e.id DESC LIMIT p_limit + 1) e;
    ELSE
        PERFORM 1 FROM organizations o WHERE o.id = p_id;
        IF NOT FOUND THEN
            o_outcome := 'organization_not_found';
            RETURN;
        END IF;
        SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id DESC), '[]'::jsonb) INTO o_body
        FROM (SELECT * FROM audit_events e
              WHERE e.organization_id = p_id AND (p_before IS NULL OR e.id < p_before)
              ORDER BY e.id DESC LIMIT p_limit + 1) e;
    END IF;
    o_outcome := 'ok';
END;
$$;

-- The edge read model, for POST /api/v1/admin/kv/rebuild -----------------------------------

-- Licenses by id after p_after (NULL: from the start), p_limit at a time; with p_since, only
-- those changed at or after it (the rebuild's second pass).
CREATE OR REPLACE FUNCTION le_admin_license_states(
    p_after TEXT, p_since BIGINT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'status', l.status,
                                                       'expires_at', l.expires_at) ORDER BY l.id), '[]'::jsonb)
    FROM (SELECT * FROM licenses l
          WHERE (p_after IS NULL OR l.id > p_after)
            AND (p_since IS NULL OR l.updated_at >= p_since)
          ORDER BY l.id LIMIT p_limit) l
$$;

-- Sessions that ended while a token of theirs may still verify (expires_at > p_now).
CREATE OR REPLACE FUNCTION le_admin_ended_sessions(
    p_after TEXT, p_limit INT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', s.id, 'ended_at', s.ended_at,
                                                       'token_expires_at', s.expires_at) ORDER BY s.id), '[]'::jsonb)
    FROM (SELECT * FROM sessions s
          WHERE s.ended_at IS NOT NULL AND s.expires_at > p_now
            AND (p_after IS NULL OR s.id > p_after)
          ORDER BY s.id LIMIT p_limit) s
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0002_admin', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
