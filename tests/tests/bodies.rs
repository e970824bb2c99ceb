//! Request bodies far over every limit. Spin hands a component bodies of any size; each
//! component keeps at most its limit plus one byte of one (`edge_io::read_request`) and
//! answers with the same refusal as for a body just over the limit. Nothing is written.

use integration_tests::{admin_auth, app, migrated_database, redis_runtime_config, redis_url};
use spin_test_host::Host;

/// Far over every route's limit (8 to 16 KiB).
const HUGE: usize = 32 << 20;

async fn send(host: &Host, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    let mut body = b"{\"token\":\"".to_vec();
    body.resize(HUGE, b'a');
    let r = host.request(method, path, &headers, body).await.unwrap();
    let v = r.json();
    let code = v["error"]["code"].as_str().unwrap_or_default().to_owned();
    (r.status, code)
}

#[tokio::test]
async fn huge_bodies_get_the_usual_refusals() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let admin = admin_auth();
    let license_key = "Bearer LE-AAAA-BBBB-CCCC-DDDD";
    let cases = [
        (
            "POST",
            "/api/v1/licenses/validate/",
            None,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/licenses/acquire/",
            Some(license_key),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/admin/organizations",
            Some(admin.as_str()),
            413,
            "payload_too_large",
        ),
        // The admin token is checked first: without it, nothing else is said.
        (
            "POST",
            "/api/v1/admin/organizations",
            None,
            401,
            "unauthorized",
        ),
        // A route that takes no body: the method is what is wrong.
        ("POST", "/api/v1/health/", None, 405, "method_not_allowed"),
    ];
    for (method, path, auth, status, code) in cases {
        assert_eq!(
            send(&host, method, path, auth).await,
            (status, code.to_owned()),
            "{method} {path} {auth:?}"
        );
    }
}
