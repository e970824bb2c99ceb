//! What every seat request reads, in one variable: `seat_settings` joins `database_url`,
//! `token_issuer` and `signing_key`, one a line (`spin.toml`), so a request makes one
//! `variables::get` instead of three (`license_edge::settings`).

use edge_io::db;
use license_edge::api::ApiError;
use license_edge::settings::lines;
use spin_sdk::pg4::Connection;
use spin_sdk::variables;

/// The component's settings, read once per request.
pub(crate) struct SeatSettings {
    text: String,
}

impl SeatSettings {
    /// Reads `seat_settings`.
    pub(crate) fn read() -> Result<Self, ApiError> {
        let text = variables::get("seat_settings").map_err(|e| {
            eprintln!("acquire: seat_settings variable: {e}");
            ApiError::Internal
        })?;
        Ok(SeatSettings { text })
    }

    /// `[database_url, token_issuer, signing_key]`.
    pub(crate) fn parts(&self) -> Result<[&str; 3], ApiError> {
        lines::<3>(&self.text).ok_or_else(|| {
            eprintln!(
                "acquire: seat_settings is not database_url, token_issuer and signing_key, one a line"
            );
            ApiError::Internal
        })
    }

    /// Opens the database at `database_url`.
    pub(crate) fn database(&self) -> Result<Connection, ApiError> {
        let [url, _, _] = self.parts()?;
        db::open_url(url)
    }
}
