//! The `admin` component. Its capability is not built yet: every route it owns answers 501 with
//! the error envelope, so clients get a clear, stable refusal rather than a Spin default.

use edge_http::{error, new_request_id};
use license_edge::api::ApiError;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> impl IntoResponse {
    error(
        &ApiError::NotImplemented { feature: "admin" },
        &new_request_id(),
    )
}
