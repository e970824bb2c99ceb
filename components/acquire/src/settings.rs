//! What every seat request reads, in one variable: `seat_settings` joins `database_url`,
//! `token_issuer`, `signer` and `signing_key`, one a line (`spin.toml`; `signing_key` last, as it
//! is the one value that could hold a line break), so a request makes one `variables::get`
//! instead of four (`license_edge::settings`). The KMS signer's own settings are read only when
//! `signer` is `kms` (`signer.rs`).

use license_edge::api::ApiError;
use license_edge::settings::lines;
use spin_sdk::variables;

/// The component's settings, read once per request.
pub(crate) struct SeatSettings {
    text: String,
}

/// The settings, by name.
pub(crate) struct Parts<'a> {
    pub(crate) database_url: &'a str,
    pub(crate) token_issuer: &'a str,
    pub(crate) signer: &'a str,
    pub(crate) signing_key: &'a str,
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

    /// The settings; an error (500, logged) when the template lost one.
    pub(crate) fn parts(&self) -> Result<Parts<'_>, ApiError> {
        let [database_url, token_issuer, signer, signing_key] =
            lines::<4>(&self.text).ok_or_else(|| {
                eprintln!(
                    "acquire: seat_settings is not database_url, token_issuer, signer and signing_key, one a line"
                );
                ApiError::Internal
            })?;
        Ok(Parts {
            database_url,
            token_issuer,
            signer,
            signing_key,
        })
    }
}
