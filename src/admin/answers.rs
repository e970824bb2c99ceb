//! Answers: the JSON the admin API sends for each row, times as RFC 3339 strings.

use serde::Deserialize;
use serde_json::{json, Value};

use super::rows::*;
use crate::time::rfc3339_from_millis;

// --- Answers -------------------------------------------------------------------------------

fn time(ms: i64) -> Value {
    json!(rfc3339_from_millis(ms))
}

fn optional_time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, time)
}

/// An organization on the wire.
pub fn organization_json(o: &Organization) -> Value {
    json!({ "id": o.id, "name": o.name, "created_at": time(o.created_at) })
}

/// An organization API key on the wire: never the key or its hash.
pub fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "organization_id": k.organization_id,
        "prefix": k.prefix,
        "name": k.name,
        "role": k.role,
        "created_at": time(k.created_at),
        "created_by": k.created_by,
        "last_used_at": optional_time(k.last_used_at),
        "revoked_at": optional_time(k.revoked_at),
    })
}

/// A newly issued key: the key and, this once, its secret.
pub fn created_key_json(k: &ApiKey, key: &str) -> Value {
    let mut body = key_json(k);
    body["key"] = json!(key);
    body
}

/// A product on the wire.
pub fn product_json(p: &Product) -> Value {
    json!({
        "id": p.id,
        "organization_id": p.organization_id,
        "code": p.code,
        "name": p.name,
        "sign_in_required": p.sign_in_required,
        "created_at": time(p.created_at),
    })
}

/// A license on the wire (never its key: only the hash is stored).
pub fn license_json(l: &License) -> Value {
    json!({
        "id": l.id,
        "organization_id": l.organization_id,
        "product_id": l.product_id,
        "product_code": l.product_code,
        "status": l.status.as_str(),
        "plan": l.plan,
        "max_seats": l.max_seats,
        "features": l.features,
        "expires_at": optional_time(l.expires_at),
        "lease_seconds": l.lease_seconds,
        "max_borrow_seconds": l.max_borrow_seconds,
        "offline_grace_seconds": l.offline_grace_seconds,
        "rate_limit_per_minute": l.rate_limit_per_minute,
        "max_seats_per_user": l.max_seats_per_user,
        "created_at": time(l.created_at),
        "updated_at": time(l.updated_at),
    })
}

/// A newly created license: the license and, this once, its key.
pub fn created_license_json(l: &License, key: &str) -> Value {
    let mut body = license_json(l);
    body["license_key"] = json!(key);
    body
}

/// A license's detail: the license, its seats and its newest live sessions.
pub fn license_detail_json(d: &LicenseDetail, now_ms: i64) -> Value {
    let mut body = license_json(&d.license);
    body["active_seats"] = json!(d.active_seats);
    body["free_seats"] = json!(d.license.max_seats.saturating_sub(d.active_seats));
    body["sessions"] = Value::Array(d.sessions.iter().map(|s| session_json(s, now_ms)).collect());
    body
}

/// A session on the wire; `live` says whether it holds a seat at `now_ms`.
pub fn session_json(s: &Session, now_ms: i64) -> Value {
    json!({
        "id": s.id,
        "license_id": s.license_id,
        "machine_hash": s.machine_hash,
        "user_agent": s.user_agent,
        "metadata": s.metadata,
        "started_at": time(s.started_at),
        "last_heartbeat_at": time(s.last_heartbeat_at),
        "expires_at": time(s.expires_at),
        "borrowed_until": optional_time(s.borrowed_until),
        "ended_at": optional_time(s.ended_at),
        "end_reason": s.end_reason,
        "seat_until": time(s.seat_until),
        "live": s.seat_until > now_ms,
        "user_sub": s.user_sub,
        "user_email": s.user_email,
    })
}

/// An audit event on the wire.
pub fn audit_event_json(e: &AuditEvent) -> Value {
    json!({
        "id": e.id,
        "occurred_at": time(e.occurred_at),
        "organization_id": e.organization_id,
        "license_id": e.license_id,
        "session_id": e.session_id,
        "actor": e.actor,
        "action": e.action,
        "outcome": e.outcome,
        "details": e.details,
    })
}

/// What the caller should know after a change: live sessions above a lowered seat limit are
/// never ended, so say what happens instead.
pub fn seat_warnings(active_seats: u32, max_seats: u32) -> Vec<String> {
    if active_seats > max_seats {
        vec![format!(
            "{active_seats} live sessions exceed max_seats {max_seats}; they are not ended, and no new seat is granted until fewer than {max_seats} are live"
        )]
    } else {
        Vec::new()
    }
}

/// The answer to an update: the license, its live seats and any warnings.
pub fn updated_license_json(l: &License, active_seats: u32) -> Value {
    let mut body = license_json(l);
    body["active_seats"] = json!(active_seats);
    body["warnings"] = json!(seat_warnings(active_seats, l.max_seats));
    body
}

/// The answer to a force release.
pub fn released_json(
    session_id: &str,
    license_id: &str,
    ended_at: i64,
    seat_until: i64,
    already: bool,
) -> Value {
    json!({
        "session_id": session_id,
        "license_id": license_id,
        "ended_at": time(ended_at),
        "seat_until": time(seat_until),
        "outcome": if already { "already_ended" } else { "released" },
    })
}

/// One batch of the key-value sweep as the SQL function answers it: sessions whose entries
/// can go, in (expires_at, id) order, and the last one's place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SweepBatch {
    /// Session ids.
    pub sessions: Vec<String>,
    /// Where the batch ended (`at` is the last session's `expires_at`), if it had any.
    pub cursor: Option<SweepCursor>,
    /// Sessions whose `expires_at` is at or before this (epoch ms) are swept.
    pub cutoff: i64,
}

/// A place in the sweep's (expires_at, id) order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SweepCursor {
    /// `expires_at` of the last session swept (epoch ms).
    pub at: i64,
    /// Its id.
    pub id: String,
}

/// The answer to a key-value sweep: how many sessions' entries were deleted, up to which
/// expiry, and whether more are waiting (call again).
pub fn sweep_json(sessions: u64, swept_until: Option<i64>, more: bool) -> Value {
    json!({
        "sessions_swept": sessions,
        "entries_deleted": sessions * 2,
        "swept_until": swept_until.map(time),
        "more": more,
    })
}

/// The answer to a key-value rebuild.
pub fn rebuild_json(licenses: u64, sessions: u64, started_at: i64, finished_at: i64) -> Value {
    json!({
        "licenses_written": licenses,
        "sessions_written": sessions,
        "entries_written": licenses + sessions,
        "started_at": time(started_at),
        "finished_at": time(finished_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;
    use crate::read_model::LicenseStatus;

    #[test]
    fn answers_show_times_and_seats() {
        let license = License {
            id: "lic_1".into(),
            organization_id: "org_1".into(),
            product_id: "prod_1".into(),
            product_code: "cad".into(),
            status: LicenseStatus::Active,
            plan: "pro".into(),
            max_seats: 2,
            features: vec![],
            expires_at: None,
            lease_seconds: 360,
            max_borrow_seconds: 0,
            offline_grace_seconds: 86_400,
            rate_limit_per_minute: 20,
            max_seats_per_user: None,
            created_at: 0,
            updated_at: 1000,
            version: 3,
        };
        let body = updated_license_json(&license, 3);
        assert_eq!(body["updated_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(body["expires_at"], Value::Null);
        assert!(body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("3 live sessions exceed max_seats 2"));
        assert_eq!(updated_license_json(&license, 2)["warnings"], json!([]));
        let detail = LicenseDetail {
            license: license.clone(),
            active_seats: 3,
            sessions: vec![],
        };
        assert_eq!(license_detail_json(&detail, 0)["free_seats"], 0);
        let decoded: License = from_db(json!({
            "id": "lic_1", "organization_id": "org_1", "product_id": "prod_1", "product_code": "cad",
            "status": "active", "plan": "pro", "max_seats": 2, "features": [], "expires_at": null,
            "lease_seconds": 360, "max_borrow_seconds": 0, "offline_grace_seconds": 86400,
            "version": 3, "rate_limit_per_minute": 20,
            "created_at": 0, "updated_at": 1000
        }))
        .unwrap();
        assert_eq!(decoded, license);
        assert_eq!(
            from_db::<License>(json!({"id": 1})),
            Err(ApiError::Internal)
        );
    }
}
