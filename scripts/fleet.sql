-- A fleet's worth of rows for scripts/bench-spin.sh fleet: 1,000,000 licenses (10 seats each)
-- under one organization and product, 10,000,000 sessions spread over them (all ended, over the
-- last 90 days: what a fleet leaves behind), and 10,000,000 audit events. Run on a migrated
-- database; takes minutes.
\set ON_ERROR_STOP on
SET synchronous_commit = off;
INSERT INTO organizations (id, name, created_at) VALUES ('org_fleet', 'Fleet', 0)
ON CONFLICT DO NOTHING;
INSERT INTO products (id, organization_id, code, name, created_at)
VALUES ('prod_fleet', 'org_fleet', 'fleet', 'Fleet', 0) ON CONFLICT DO NOTHING;
INSERT INTO licenses (id, organization_id, product_id, key_hash, max_seats, created_at, updated_at)
SELECT 'lic_fleet' || g, 'org_fleet', 'prod_fleet', md5('key' || g) || md5('hash' || g), 10, g, g
FROM generate_series(1, 1000000) g;
INSERT INTO sessions (id, license_id, machine_hash, started_at, last_heartbeat_at, expires_at,
                      ended_at, end_reason, seat_until, counted)
SELECT 'ses_' || md5('fleet' || g), 'lic_fleet' || (g % 1000000 + 1), md5('machine' || g),
       t, t, t + 360000, t + 60000, 'released', t + 60000, FALSE
FROM (SELECT g, le_now_ms() - 86400000::bigint - (g % 7776000)::bigint * 1000 AS t
      FROM generate_series(1, 10000000) g) x;
INSERT INTO audit_events (occurred_at, organization_id, license_id, session_id, actor, action, outcome, details)
SELECT le_now_ms() - (g % 31536000)::bigint * 1000, 'org_fleet', 'lic_fleet' || (g % 1000000 + 1),
       'ses_' || md5('fleet' || g), 'client', 'session.acquire', 'created', '{}'
FROM generate_series(1, 10000000) g;
VACUUM ANALYZE;
