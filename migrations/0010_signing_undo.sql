-- 0010_signing_undo: a heartbeat or borrow whose token could not be signed leaves no seat
-- held for it.
--
-- With the Cloud KMS signer (issue #21) a token is signed after the seat function committed,
-- because its claims (the session, its exp) come from the seat decision. When signing then
-- fails (KMS slow, down or refusing, or a signature that does not verify), the request answers
-- 503 signing_unavailable, and what the seat function did must not outlive it:
--
-- - a new session (acquire, outcome 'created') is released by the component in the same
--   request with le_release(..., 'system', NULL): the seat is free at once, the audit trail
--   names the system;
-- - a renewal or borrow (le_extend) is undone here: le_extend_undoable is le_extend with the
--   session's state from just before it, taken under the same locks in the same transaction,
--   and the session's row version after it; le_extend_undo puts the state back only when the
--   row version is still that one, i.e. nothing else (another heartbeat, acquire, release,
--   reclaim or admin) has changed the session since. Otherwise it changes nothing
--   ('superseded'): a later change may have issued a token of its own, and undoing under it
--   could free a seat a valid token still names. Undoing puts back expires_at, seat_until and
--   borrowed_until, so the client's previous token is again the newest, and a borrow that was
--   never handed out does not block the client's release.
--
-- sessions.version is bumped by every UPDATE of a session row, whoever makes it (as
-- licenses.version is, 0003). Same conventions as 0003: one row back, the database's clock,
-- idempotent, records itself.

BEGIN;

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION le_sessions_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS sessions_bump_version ON sessions;
CREATE TRIGGER sessions_bump_version BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION le_sessions_bump_version();

-- le_extend (0003), answered with what le_extend_undo needs to take it back: the session's
-- expires_at, seat_until and borrowed_until before it, and its row version after it. The
-- license row (FOR SHARE) and the session row (FOR UPDATE) are locked first, in le_extend's
-- order, so the state read is the state le_extend extends.
CREATE OR REPLACE FUNCTION le_extend_undoable(
    p_key_hash TEXT, p_session_id TEXT, p_borrow_s BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_max_borrow_seconds INT,
    OUT o_session_id TEXT, OUT o_machine_hash TEXT, OUT o_session_expires_at BIGINT,
    OUT o_offline_grace_seconds INT, OUT o_now BIGINT,
    OUT o_version BIGINT, OUT o_prev_expires_at BIGINT, OUT o_prev_seat_until BIGINT,
    OUT o_prev_borrowed_until BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic_id TEXT;
    prev sessions%ROWTYPE;
    e RECORD;
BEGIN
    SELECT l.id INTO lic_id FROM licenses l WHERE l.key_hash = p_key_hash FOR SHARE;
    IF lic_id IS NOT NULL THEN
        SELECT * INTO prev FROM sessions s
        WHERE s.id = p_session_id AND s.license_id = lic_id FOR UPDATE;
    END IF;
    SELECT * INTO e FROM le_extend(p_key_hash, p_session_id, p_borrow_s, NULL);
    o_outcome := e.o_outcome;
    o_license_id := e.o_license_id;
    o_organization_id := e.o_organization_id;
    o_product := e.o_product;
    o_plan := e.o_plan;
    o_features := e.o_features;
    o_max_seats := e.o_max_seats;
    o_license_expires_at := e.o_license_expires_at;
    o_lease_seconds := e.o_lease_seconds;
    o_max_borrow_seconds := e.o_max_borrow_seconds;
    o_session_id := e.o_session_id;
    o_machine_hash := e.o_machine_hash;
    o_session_expires_at := e.o_session_expires_at;
    o_offline_grace_seconds := e.o_offline_grace_seconds;
    o_now := e.o_now;
    IF e.o_session_id IS NOT NULL AND prev.id IS NOT NULL THEN
        SELECT s.version INTO o_version FROM sessions s WHERE s.id = prev.id;
        o_prev_expires_at := prev.expires_at;
        o_prev_seat_until := prev.seat_until;
        o_prev_borrowed_until := prev.borrowed_until;
    END IF;
END;
$$;

-- Takes back an extension le_extend_undoable answered, when the session's row version is
-- still p_version (see the header). 'undone', 'superseded' (something changed the session
-- since: nothing is changed) or 'not_found'. Locks as le_extend does: the license FOR SHARE,
-- then the session FOR UPDATE.
CREATE OR REPLACE FUNCTION le_extend_undo(
    p_session_id TEXT, p_version BIGINT, p_prev_expires_at BIGINT, p_prev_seat_until BIGINT,
    p_prev_borrowed_until BIGINT,
    OUT o_outcome TEXT, OUT o_now BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    lic licenses%ROWTYPE;
    ses sessions%ROWTYPE;
    now_ms BIGINT;
BEGIN
    SELECT l.* INTO lic FROM licenses l
    WHERE l.id = (SELECT s.license_id FROM sessions s WHERE s.id = p_session_id) FOR SHARE;
    SELECT * INTO ses FROM sessions s WHERE s.id = p_session_id FOR UPDATE;
    now_ms := le_now_ms();
    o_now := now_ms;
    IF ses.id IS NULL THEN
        o_outcome := 'not_found';
    ELSIF ses.version <> p_version THEN
        o_outcome := 'superseded';
    ELSE
        UPDATE sessions s SET
            expires_at = p_prev_expires_at,
            seat_until = p_prev_seat_until,
            borrowed_until = p_prev_borrowed_until
        WHERE s.id = ses.id;
        o_outcome := 'undone';
    END IF;
    INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
    VALUES (now_ms, lic.organization_id, lic.id, p_session_id, 'system', 'session.extend_undone', o_outcome,
            jsonb_build_object('reason', 'signing_unavailable', 'expires_at', p_prev_expires_at));
END;
$$;

-- le_extend_undoable for a caller named by key or by signed-in user (0007's
-- le_session_credential decides which key hash that is, or refuses), with the session's start
-- and last heartbeat as 0007's le_extend_as answers them.
CREATE OR REPLACE FUNCTION le_extend_as_undoable(
    p_key_hash TEXT, p_user_sub TEXT, p_session_id TEXT, p_borrow_s BIGINT,
    OUT o_outcome TEXT, OUT o_license_id TEXT, OUT o_organization_id TEXT,
    OUT o_product TEXT, OUT o_plan TEXT, OUT o_features TEXT[], OUT o_max_seats INT,
    OUT o_license_expires_at BIGINT, OUT o_lease_seconds INT, OUT o_max_borrow_seconds INT,
    OUT o_session_id TEXT, OUT o_machine_hash TEXT, OUT o_session_expires_at BIGINT,
    OUT o_offline_grace_seconds INT, OUT o_now BIGINT,
    OUT o_version BIGINT, OUT o_prev_expires_at BIGINT, OUT o_prev_seat_until BIGINT,
    OUT o_prev_borrowed_until BIGINT, OUT o_started_at BIGINT, OUT o_last_heartbeat_at BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    cred RECORD;
    e RECORD;
BEGIN
    SELECT * INTO cred FROM le_session_credential(p_key_hash, p_user_sub, p_session_id);
    IF cred.o_outcome IS NOT NULL THEN
        o_outcome := cred.o_outcome;
        o_now := le_now_ms();
        RETURN;
    END IF;
    SELECT * INTO e FROM le_extend_undoable(cred.o_key_hash, p_session_id, p_borrow_s);
    o_outcome := e.o_outcome;
    o_license_id := e.o_license_id;
    o_organization_id := e.o_organization_id;
    o_product := e.o_product;
    o_plan := e.o_plan;
    o_features := e.o_features;
    o_max_seats := e.o_max_seats;
    o_license_expires_at := e.o_license_expires_at;
    o_lease_seconds := e.o_lease_seconds;
    o_max_borrow_seconds := e.o_max_borrow_seconds;
    o_session_id := e.o_session_id;
    o_machine_hash := e.o_machine_hash;
    o_session_expires_at := e.o_session_expires_at;
    o_offline_grace_seconds := e.o_offline_grace_seconds;
    o_now := e.o_now;
    o_version := e.o_version;
    o_prev_expires_at := e.o_prev_expires_at;
    o_prev_seat_until := e.o_prev_seat_until;
    o_prev_borrowed_until := e.o_prev_borrowed_until;
    IF o_session_id IS NOT NULL THEN
        SELECT s.started_at, s.last_heartbeat_at INTO o_started_at, o_last_heartbeat_at
        FROM sessions s WHERE s.id = o_session_id;
    END IF;
END;
$$;

INSERT INTO schema_migrations (version, applied_at)
VALUES ('0010_signing_undo', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
ON CONFLICT (version) DO NOTHING;

COMMIT;
