-- 0009_key_validation: what the admin component reads to build and sweep the read-model
-- entries of license-key validation at the edge (`key:{key_hash}` -> license, and
-- `seat:{license_id}:{machine_hash}` -> the machine's live session; see
-- src/read_model/keys.rs). Nothing here changes a table; the validate component never reads
-- PostgreSQL.
--
-- Same conventions as 0002: one row back (o_outcome, o_body), times in epoch ms, idempotent.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- For the rebuild: every license's key hash, by id after p_after, p_limit at a time.
CREATE OR REPLACE FUNCTION le_admin_license_keys(
    p_after TEXT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'key_hash', l.key_hash)
                                    ORDER BY l.id), '[]'::jsonb)
    FROM (SELECT l.id, l.key_hash FROM licenses l
          WHERE (p_after IS NULL OR l.id > p_after)
          ORDER BY l.id LIMIT p_limit) l
$$;

-- For the rebuild: the sessions that hold a live seat (not ended, and a token of theirs can
-- still validate: expires_at plus the validation leeway is ahead, on the database's clock),
-- by id after p_after, p_limit at a time.
CREATE OR REPLACE FUNCTION le_admin_live_seats(
    p_after TEXT, p_limit INT, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', s.id, 'license_id', s.license_id,
                                                       'machine_hash', s.machine_hash,
                                                       'expires_at', s.expires_at)
                                    ORDER BY s.id), '[]'::jsonb)
    FROM (SELECT s.id, s.license_id, s.machine_hash, s.expires_at FROM sessions s
          WHERE s.ended_at IS NULL AND s.expires_at + le_token_leeway_ms() > le_now_ms()
            AND (p_after IS NULL OR s.id > p_after)
          ORDER BY s.id LIMIT p_limit) s
$$;

-- For the sweep: the license and machine of the sessions whose ids p_ids (a JSON array of
-- strings) lists, so that their `seat:` entries can be found; unknown ids are left out.
CREATE OR REPLACE FUNCTION le_admin_session_seats(p_ids JSONB, OUT o_outcome TEXT, OUT o_body JSONB)
LANGUAGE sql STABLE AS $$
    SELECT 'ok', coalesce(jsonb_agg(jsonb_build_object('id', s.id, 'license_id', s.license_id,
                                                       'machine_hash', s.machine_hash)
                                    ORDER BY s.id), '[]'::jsonb)
    FROM sessions s
    WHERE s.id IN (SELECT jsonb_array_elements_text(p_ids))
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0009_key_validation', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
