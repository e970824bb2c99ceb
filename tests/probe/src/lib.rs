//! Test-only component. Each path tries one thing and answers JSON saying exactly what happened:
//! `/probe/kv?label=L`, `/probe/pg?url=U`, `/probe/var?name=N`, `/probe/headers`, `/probe/panic`.
//! It is never part of the application manifest.

use serde_json::{json, Value};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, pg4, variables};

#[http_component]
fn handle(req: Request) -> impl IntoResponse {
    let query = |name: &str| {
        req.query()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
            .unwrap_or_default()
    };
    let path = req.path().trim_end_matches('/');
    let body = if path.ends_with("/probe/kv") {
        probe_kv(&query("label"))
    } else if path.ends_with("/probe/pg") {
        probe_pg(&query("url"))
    } else if path.ends_with("/probe/var") {
        match variables::get(&query("name")) {
            Ok(v) => json!({"ok": v}),
            Err(e) => json!({"error": format!("{e:?}")}),
        }
    } else if path.ends_with("/probe/panic") {
        panic!("probe asked to panic");
    } else {
        // Every header as received, in order, so tests can see duplicates.
        let headers: Vec<Value> = req
            .headers()
            .map(|(k, v)| json!([k, v.as_str().unwrap_or("<binary>")]))
            .collect();
        json!({"path": req.path(), "query": req.query(), "headers": headers})
    };
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn probe_kv(label: &str) -> Value {
    match key_value::Store::open(label) {
        Ok(store) => match store.get("probe") {
            Ok(_) => json!({"ok": "opened and read"}),
            Err(e) => json!({"error": format!("{e:?}")}),
        },
        Err(e) => json!({"error": format!("{e:?}")}),
    }
}

fn probe_pg(url: &str) -> Value {
    match pg4::Connection::open(url) {
        Ok(conn) => match conn.query("SELECT 1::int4 AS one, NULL::text AS nothing", &[]) {
            Ok(rows) => json!({"ok": format!("{:?}", rows.rows)}),
            Err(e) => json!({"error": format!("{e:?}")}),
        },
        Err(e) => json!({"error": format!("{e:?}")}),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
