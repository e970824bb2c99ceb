-- 0006_tenancy: organization API keys, the owner of any admin resource, and who acted.
--
-- An organization API key is a credential for the admin API scoped to one organization, with a
-- role ('admin' or 'read'). Only its SHA-256 is stored (key_hash), beside the first characters
-- of the key (prefix) so that people and secret scanners can tell which key leaked. A revoked
-- key (revoked_at set) is refused on the next request: le_admin_key_auth reads the row every
-- time.
--
-- Scoping: the admin component asks le_admin_owner for the organization that owns the
-- resource a request names, before anything else, and answers 404 when it is not the caller's.
-- Ownership never changes (no function moves a product, license or session to another
-- organization), so checking it first is as good as checking it inside each function.
--
-- Who acted: the admin functions write audit events with actor 'admin'. The admin component
-- states the caller on its connection first (set_config('le.actor', ...)), and a trigger puts
-- it in place of 'admin': 'admin' for the operator token (the previous meaning), 'key:<id>'
-- for an organization key. Client actions ('client') are left alone.
--
-- Same conventions as 0002: one row back (o_outcome, o_body), times in epoch ms, idempotent.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS organization_api_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    key_hash        TEXT NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'read')),
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    last_used_at    BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX IF NOT EXISTS organization_api_keys_by_org
    ON organization_api_keys (organization_id, created_at DESC, id DESC);

-- The caller of this connection's admin requests, for the audit trail (see the header).
CREATE OR REPLACE FUNCTION le_audit_actor() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.actor = 'admin' THEN
        NEW.actor := coalesce(nullif(current_setting('le.actor', true), ''), 'admin');
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS audit_events_actor ON audit_events;
CREATE TRIGGER audit_events_actor BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION le_audit_actor();

-- The operator acts: states it on the connection.
CREATE OR REPLACE FUNCTION le_admin_as_operator(OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql AS $$
    SELECT 'ok', jsonb_build_object('actor', set_config('le.actor', 'admin', false))
$$;

-- An organization key acts: the key's id, organization and role when p_hash is a key that is
-- not revoked (o_body NULL otherwise), stated on the connection as 'key:<id>'. last_used_at
-- moves at most once a minute, so reads by a busy key do not each write a row.
CREATE OR REPLACE FUNCTION le_admin_key_auth(p_hash TEXT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    k organization_api_keys%ROWTYPE;
BEGIN
    o_outcome := 'ok';
    SELECT * INTO k FROM organization_api_keys WHERE key_hash = p_hash AND revoked_at IS NULL;
    IF NOT FOUND THEN
        PERFORM set_config('le.actor', '', false);
        RETURN;
    END IF;
    IF k.last_used_at IS NULL OR k.last_used_at < p_now - 60000 THEN
        UPDATE organization_api_keys SET last_used_at = p_now
        WHERE id = k.id AND (last_used_at IS NULL OR last_used_at < p_now - 60000);
    END IF;
    PERFORM set_config('le.actor', 'key:' || k.id, false);
    o_body := jsonb_build_object('id', k.id, 'organization_id', k.organization_id, 'role', k.role);
END;
$$;

-- The organization that owns a resource: p_kind is 'organization', 'product', 'license',
-- 'session' or 'key'. o_body is {"organization_id": ...}, or NULL when there is no such row.
CREATE OR REPLACE FUNCTION le_admin_owner(p_kind TEXT, p_id TEXT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    org TEXT;
BEGIN
    o_outcome := 'ok';
    CASE p_kind
        WHEN 'organization' THEN SELECT o.id INTO org FROM organizations o WHERE o.id = p_id;
        WHEN 'product' THEN SELECT p.organization_id INTO org FROM products p WHERE p.id = p_id;
        WHEN 'license' THEN SELECT l.organization_id INTO org FROM licenses l WHERE l.id = p_id;
        WHEN 'session' THEN
            SELECT l.organization_id INTO org
            FROM sessions s JOIN licenses l ON l.id = s.license_id WHERE s.id = p_id;
        WHEN 'key' THEN SELECT k.organization_id INTO org FROM organization_api_keys k WHERE k.id = p_id;
        ELSE RAISE EXCEPTION 'le_admin_owner: unknown kind %', p_kind;
    END CASE;
    IF org IS NOT NULL THEN
        o_body := jsonb_build_object('organization_id', org);
    END IF;
END;
$$;

-- A key as the admin API shows it: never its hash.
CREATE OR REPLACE FUNCTION le_admin_key_json(k organization_api_keys) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_jsonb(k) - 'key_hash'
$$;

CREATE OR REPLACE FUNCTION le_admin_create_key(
    p_id TEXT, p_organization_id TEXT, p_hash TEXT, p_prefix TEXT, p_name TEXT, p_role TEXT,
    p_created_by TEXT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    k organization_api_keys%ROWTYPE;
BEGIN
    PERFORM 1 FROM organizations o WHERE o.id = p_organization_id;
    IF NOT FOUND THEN
        o_outcome := 'organization_not_found';
        RETURN;
    END IF;
    INSERT INTO organization_api_keys (id, organization_id, key_hash, prefix, name, role, created_at, created_by)
    VALUES (p_id, p_organization_id, p_hash, p_prefix, p_name, p_role, p_now, p_created_by)
    RETURNING * INTO k;
    INSERT INTO audit_events (occurred_at, organization_id, actor, action, outcome, details)
    VALUES (p_now, p_organization_id, 'admin', 'key.create', 'ok',
            jsonb_build_object('key_id', k.id, 'prefix', k.prefix, 'role', k.role));
    o_outcome := 'ok';
    o_body := le_admin_key_json(k);
END;
$$;

CREATE OR REPLACE FUNCTION le_admin_keys(
    p_organization_id TEXT, p_cursor_at BIGINT, p_cursor_id TEXT, p_limit INT,
    OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(le_admin_key_json(k) ORDER BY k.created_at DESC, k.id DESC), '[]'::jsonb)
    FROM (SELECT * FROM organization_api_keys k
          WHERE k.organization_id = p_organization_id
            AND (p_cursor_at IS NULL OR (k.created_at, k.id) < (p_cursor_at, p_cursor_id))
          ORDER BY k.created_at DESC, k.id DESC
          LIMIT p_limit + 1) k
$$;

CREATE OR REPLACE FUNCTION le_admin_revoke_key(p_id TEXT, p_now BIGINT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    k organization_api_keys%ROWTYPE;
BEGIN
    SELECT * INTO k FROM organization_api_keys WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        o_outcome := 'key_not_found';
        RETURN;
    END IF;
    IF k.revoked_at IS NULL THEN
        UPDATE organization_api_keys SET revoked_at = p_now WHERE id = p_id RETURNING * INTO k;
        INSERT INTO audit_events (occurred_at, organization_id, actor, action, outcome, details)
        VALUES (p_now, k.organization_id, 'admin', 'key.revoke', 'changed',
                jsonb_build_object('key_id', k.id, 'prefix', k.prefix));
        o_outcome := 'changed';
    ELSE
        o_outcome := 'unchanged';
    END IF;
    o_body := le_admin_key_json(k);
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0006_tenancy', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
