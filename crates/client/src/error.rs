//! The one error type of the client.

use std::fmt;
use std::time::Duration;

use license_edge_token::TokenError;

/// Why a seat could not be acquired, renewed or released, or why the client could not start.
///
/// The server's refusals carry what it said (its stable `code` and the details a program acts
/// on); [`Error::is_transient`] tells a refusal from a failure worth retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// 409 `no_seats_available`: every seat of the license is held.
    NoSeatsAvailable {
        /// The license's seat limit.
        max_seats: Option<u64>,
        /// Seats held now.
        active_seats: Option<u64>,
        /// When a seat is expected to come free (RFC 3339), as the server estimates it.
        next_available_hint: Option<String>,
    },
    /// 403: the license cannot be used (`license_suspended`, `license_revoked`,
    /// `license_expired`, `borrow_not_allowed`).
    Forbidden {
        /// The server's code, e.g. `license_suspended`.
        code: String,
        /// The server's message.
        message: String,
    },
    /// 429 `rate_limited`: too many acquire attempts; try again after `retry_after`.
    RateLimited {
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// 401: the license key is missing, malformed or unknown.
    Unauthorized,
    /// 409 `session_borrowed`: a borrowed session cannot be released; its seat comes back by
    /// itself when the borrow ends.
    SessionBorrowed {
        /// When the borrow ends (RFC 3339).
        borrowed_until: Option<String>,
    },
    /// 404 or 410: the session is gone (released, lapsed or unknown); acquire again.
    SessionEnded {
        /// The server's code (`session_expired`, `session_not_found`).
        code: String,
    },
    /// Any other refusal (4xx) or server failure (5xx), with the server's code.
    Server {
        /// HTTP status.
        status: u16,
        /// The envelope's code, or `http_<status>` when the answer had none.
        code: String,
        /// The envelope's message.
        message: String,
    },
    /// The server could not be reached, or its answer could not be read.
    Unreachable(String),
    /// The server's token (or key set) did not verify: it is not trusted, whatever it says.
    TokenRefused(TokenError),
    /// The configuration cannot work (e.g. plain `http://` to a host that is not loopback).
    Config(String),
    /// No machine id could be read (see [`crate::machine`]).
    MachineId(String),
    /// The on-disk cache could not be written.
    Cache(String),
}

impl Error {
    /// Whether trying again later may succeed: the server was unreachable, failed (5xx) or
    /// asked to slow down (429). A refusal (401, 403, 409, ...) or a token that does not verify
    /// is not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable(_) | Error::RateLimited { .. } => true,
            Error::Server { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The server's error code, or a code of the client's own for failures that have none.
    pub fn code(&self) -> &str {
        match self {
            Error::NoSeatsAvailable { .. } => "no_seats_available",
            Error::Forbidden { code, .. }
            | Error::SessionEnded { code }
            | Error::Server { code, .. } => code,
            Error::RateLimited { .. } => "rate_limited",
            Error::Unauthorized => "unauthorized",
            Error::SessionBorrowed { .. } => "session_borrowed",
            Error::Unreachable(_) => "unreachable",
            Error::TokenRefused(e) => e.code(),
            Error::Config(_) => "config",
            Error::MachineId(_) => "machine_id",
            Error::Cache(_) => "cache",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSeatsAvailable {
                max_seats,
                next_available_hint,
                ..
            } => {
                write!(f, "no seat available")?;
                if let Some(max) = max_seats {
                    write!(f, " (all {max} in use)")?;
                }
                if let Some(hint) = next_available_hint {
                    write!(f, "; the next may come free at {hint}")?;
                }
                Ok(())
            }
            Error::Forbidden { code, message } => write!(f, "{code}: {message}"),
            Error::RateLimited { retry_after } => match retry_after {
                Some(d) => write!(f, "rate limited: retry after {} s", d.as_secs()),
                None => write!(f, "rate limited"),
            },
            Error::Unauthorized => write!(f, "the license key is not valid"),
            Error::SessionBorrowed { borrowed_until } => write!(
                f,
                "the session is borrowed until {}",
                borrowed_until.as_deref().unwrap_or("its borrow ends")
            ),
            Error::SessionEnded { code } => write!(f, "the session has ended ({code})"),
            Error::Server {
                status,
                code,
                message,
            } => write!(f, "server answered {status} {code}: {message}"),
            Error::Unreachable(why) => write!(f, "cannot reach the license server: {why}"),
            Error::TokenRefused(e) => write!(f, "the license token does not verify: {e}"),
            Error::Config(why) => write!(f, "configuration: {why}"),
            Error::MachineId(why) => write!(f, "no machine id: {why}"),
            Error::Cache(why) => write!(f, "cache: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Error::TokenRefused(e)
    }
}
