//! `openapi.json` against the app: every operation the route tables know (the public table
//! `license_edge::api::PUBLIC_ROUTES` and the admin component's own `ADMIN_PATHS`) is
//! documented with exactly the statuses it can answer, every `spin.toml` route is covered,
//! every documented operation is really served, and the document is served at
//! `/api/v1/openapi.json` without PostgreSQL.

use integration_tests::{
    admin_auth, app, fill_template, migrated_database, redis_runtime_config, redis_url, root,
};
use serde_json::Value;
use spin_test_host::manifest::Manifest;
use std::collections::{BTreeMap, BTreeSet};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    let text = std::fs::read_to_string(root().join("openapi.json"))
        .expect("openapi.json at the repository root");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// (METHOD, path) -> documented statuses.
fn documented(doc: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let statuses = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| {
                    s.parse::<u16>().unwrap_or_else(|_| {
                        panic!("{method} {path}: response key {s} is not a status")
                    })
                })
                .collect();
            out.insert((method.to_uppercase(), path.clone()), statuses);
        }
    }
    out
}

/// (METHOD, path) -> statuses, from the code's route tables.
fn known() -> BTreeMap<(String, String), BTreeSet<u16>> {
    license_edge::api::PUBLIC_ROUTES
        .iter()
        .copied()
        .chain(license_edge::admin::routes())
        .map(|r| {
            (
                (r.method.to_owned(), r.path.to_owned()),
                r.statuses.iter().copied().collect(),
            )
        })
        .collect()
}

#[test]
fn every_known_operation_is_documented_with_exactly_its_statuses() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented(&doc);
    let known = known();
    let doc_ops: BTreeSet<_> = documented.keys().collect();
    let known_ops: BTreeSet<_> = known.keys().collect();
    assert_eq!(
        doc_ops, known_ops,
        "operations differ between openapi.json and the route tables"
    );
    for (op, statuses) in &known {
        assert_eq!(
            &documented[op], statuses,
            "{op:?}: documented statuses differ from what it can answer"
        );
    }
    // Admin operations need the admin token; the rest declare their own scheme (or none).
    for (method, path) in documented.keys() {
        let op = &doc["paths"][path][method.to_lowercase()];
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: no security"));
        if path.starts_with("/api/v1/admin/") {
            assert_eq!(
                security[0]["adminToken"],
                serde_json::json!([]),
                "{method} {path}"
            );
        }
    }
}

/// The rules `positive_data_acceptance` relies on (tests/tests/schemathesis.rs) are the
/// code's own: every `cursor` carries the pattern its parser accepts exactly, `expires_at` the
/// years `license_edge::admin` takes, validate's token may come either way, and every 2xx
/// answer that creates something links to the routes of what it created.
#[test]
fn patterns_and_links_are_the_codes() {
    use license_edge::api::query::{CURSOR_PATTERN, EVENT_CURSOR_PATTERN};
    let doc = document();
    let mut cursors = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] != "cursor" {
                    continue;
                }
                let expected = if path.ends_with("/audit-events") {
                    EVENT_CURSOR_PATTERN
                } else {
                    CURSOR_PATTERN
                };
                assert_eq!(p["schema"]["pattern"], expected, "{method} {path}");
                cursors += 1;
            }
        }
    }
    assert_eq!(cursors, 7);
    let schemas = &doc["components"]["schemas"];
    for (name, expected) in [
        ("OrganizationPage", CURSOR_PATTERN),
        ("ProductPage", CURSOR_PATTERN),
        ("LicensePage", CURSOR_PATTERN),
        ("SessionPage", CURSOR_PATTERN),
        ("ApiKeyPage", CURSOR_PATTERN),
        ("AuditEventPage", EVENT_CURSOR_PATTERN),
    ] {
        assert_eq!(
            schemas[name]["properties"]["next_cursor"]["pattern"], expected,
            "{name}"
        );
    }
    for name in ["NewLicense", "LicensePatch"] {
        assert_eq!(
            schemas[name]["properties"]["expires_at"]["pattern"],
            license_edge::admin::TIMESTAMP_PATTERN,
            "{name}"
        );
    }
    let validate = &doc["paths"]["/api/v1/licenses/validate/"]["post"];
    assert_eq!(
        validate["security"],
        serde_json::json!([{}, {"licenseToken": []}])
    );
    assert_eq!(validate["requestBody"]["required"], false);
    assert!(schemas["ValidateRequest"].get("required").is_none());
    let links = |path: &str, method: &str, status: &str| -> BTreeSet<String> {
        doc["paths"][path][method]["responses"][status]["links"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} {status}: no links"))
            .values()
            .map(|l| l["operationId"].as_str().unwrap().to_owned())
            .collect()
    };
    for status in ["200", "201"] {
        let from_acquire = links("/api/v1/licenses/acquire/", "post", status);
        for target in ["heartbeat", "borrow", "release", "validate"] {
            assert!(
                from_acquire.contains(target),
                "acquire {status} -> {target}"
            );
        }
    }
    let from_license = links("/api/v1/admin/licenses", "post", "201");
    for target in [
        "getLicense",
        "updateLicense",
        "suspendLicense",
        "reinstateLicense",
        "revokeLicense",
        "licenseSessions",
        "licenseAuditEvents",
    ] {
        assert!(from_license.contains(target), "createLicense -> {target}");
    }
}

#[test]
fn every_spin_route_is_covered_by_a_documented_path() {
    let manifest = Manifest::load(&root().join("spin.toml")).unwrap();
    let paths: Vec<String> = document()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for trigger in &manifest.routes {
        let base = trigger.route.trim_end_matches("/...").trim_end_matches('/');
        let covered = paths.iter().any(|p| {
            let p = p.trim_end_matches('/');
            if trigger.route.ends_with("/...") {
                p.starts_with(&format!("{base}/"))
            } else {
                p == base
            }
        });
        assert!(
            covered,
            "spin.toml route {} ({}) is not documented",
            trigger.route, trigger.component
        );
    }
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    fn walk(v: &Value, doc: &Value, seen: &mut usize) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r
                        .strip_prefix('#')
                        .unwrap_or_else(|| panic!("external $ref {r}"));
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                    *seen += 1;
                }
                map.values().for_each(|x| walk(x, doc, seen));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, doc, seen)),
            _ => {}
        }
    }
    let mut seen = 0;
    walk(&doc, &doc, &mut seen);
    assert!(seen > 50);
}

/// Each documented operation, called with a plausible path and an empty body, reaches its
/// component (never Spin's empty 404) and answers one of its documented statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_answers_a_documented_status() {
    let db = migrated_database().await;
    let host = app(&db, redis_runtime_config(&redis_url()), &[]).await;
    let auth = admin_auth();
    for ((method, path), statuses) in documented(&document()) {
        let url = fill_template(&path);
        for with_token in [false, true] {
            let headers: Vec<(&str, &str)> = if with_token {
                vec![("authorization", &auth)]
            } else {
                vec![]
            };
            let r = host.request(&method, &url, &headers, "").await.unwrap();
            assert!(
                !r.body.is_empty(),
                "{method} {url}: empty body (not routed to a component?)"
            );
            assert!(
                statuses.contains(&r.status),
                "{method} {url} (token: {with_token}) answered {} which is not documented: {}",
                r.status,
                r.text()
            );
        }
    }
}

/// The app serves the very file, and needs no database for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_without_postgresql() {
    let closed = integration_tests::servers::free_port();
    let host = app(
        &integration_tests::pg_url(closed, "nowhere"),
        redis_runtime_config(&redis_url()),
        &[],
    )
    .await;
    let r = host.get("/api/v1/openapi.json").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let served: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(served, document());
    let r = host
        .request("POST", "/api/v1/openapi.json", &[], "")
        .await
        .unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}
