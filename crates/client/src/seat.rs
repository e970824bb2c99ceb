//! [`Seat`]: a seat held for the life of a program, renewed by one background thread.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use license_edge_token::{verify, Claims, KeySet, TokenError, ValidationOptions, VerifiedToken};

use crate::cache::{Cache, CachedSeat};
use crate::config::Config;
use crate::error::Error;
use crate::http::{Grant, Http};

/// Where a seat stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The server renews the seat; the token is current until `until` (its `exp`).
    Online {
        /// The token's `exp`.
        until: SystemTime,
    },
    /// The server cannot be reached (the configured number of heartbeats in a row failed, or
    /// the token ran out before one succeeded): the program stays licensed until `until`, the
    /// token's `exp` plus its `offline_grace` (the server's decision; never longer, except
    /// for the configured clock leeway when that is the larger). The client keeps trying and
    /// goes back online by itself.
    Offline {
        /// When the license lapses unless the server is reached before.
        until: SystemTime,
    },
    /// Not licensed: the offline grace ran out, or the server refused the seat (the license
    /// was suspended, or the seat went to another machine meanwhile; see
    /// [`Seat::last_error`]). The client keeps trying, and is online again once the server
    /// grants a seat.
    Lapsed,
    /// Released: by [`Seat::release`] or on drop.
    Released,
}

impl Status {
    /// Whether the program may run its licensed features now.
    pub fn is_licensed(&self) -> bool {
        matches!(self, Status::Online { .. } | Status::Offline { .. })
    }
}

/// A seat of a license, held from [`Seat::acquire`] until [`Seat::release`] or drop.
///
/// One background thread renews it at the interval the server gives (with ±10 % jitter, so a
/// fleet restarted together does not beat together); after failures it waits longer, doubling
/// up to [`Config::with_max_backoff`]. Every token the server answers is verified against its
/// key set before it replaces the one held. Nothing here panics: the thread catches nothing
/// because nothing in it can panic, and a poisoned lock is read through.
pub struct Seat {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    client: Client,
    state: Mutex<State>,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct State {
    session_id: String,
    token: String,
    verified: VerifiedToken,
    interval: Duration,
    failures: u32,
    refused: bool,
    last_error: Option<Error>,
    retry_after: Option<Duration>,
    released: bool,
}

/// What never changes after the start: the config, the HTTP client, the keys and the cache.
struct Client {
    config: Config,
    http: Http,
    keys: Mutex<KeySet>,
    cache: Option<Cache>,
}

impl Seat {
    /// Acquires a seat, verifies the server's token offline against its key set, and starts
    /// renewing it in the background.
    ///
    /// When the server cannot be reached (or fails with a 5xx) and the cache folder holds a
    /// token of this license, product and machine that still verifies within its offline
    /// grace, the seat starts [`Status::Offline`] with it and goes online once the server
    /// answers. A refusal is returned as its typed [`Error`]: [`Error::NoSeatsAvailable`] with
    /// the server's `next_available_hint`, [`Error::Forbidden`] (suspended, revoked, expired),
    /// [`Error::RateLimited`] with `Retry-After`, [`Error::Unauthorized`].
    pub fn acquire(config: Config) -> Result<Seat, Error> {
        let client = Client::new(config)?;
        let (state, offline) = match client.acquire() {
            Ok((grant, verified)) => (client.install_fresh(grant, verified), false),
            Err(e) if e.is_transient() && !matches!(e, Error::RateLimited { .. }) => {
                match client.cached_seat() {
                    Some(state) => (
                        State {
                            failures: client.config.failures_before_offline,
                            last_error: Some(e),
                            ..state
                        },
                        true,
                    ),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let shared = Arc::new(Shared {
            client,
            state: Mutex::new(state),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("license-edge-heartbeat".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || shared.run(offline)
            })
            .map_err(|e| Error::Config(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(Seat {
            shared,
            thread: Some(thread),
        })
    }

    /// Where the seat stands now (computed from the token and the clock at each call).
    pub fn status(&self) -> Status {
        let state = self.shared.state();
        self.shared.client.status(&state, now())
    }

    /// Whether the program may run its licensed features now.
    pub fn is_licensed(&self) -> bool {
        self.status().is_licensed()
    }

    /// The claims of the token held now: plan, features, expiry, seat limit, offline grace.
    pub fn claims(&self) -> Claims {
        self.shared.state().verified.claims().clone()
    }

    /// The token held now (verified), e.g. to show a service that checks it itself.
    pub fn token(&self) -> String {
        self.shared.state().token.clone()
    }

    /// The session id the server gave this seat.
    pub fn session_id(&self) -> String {
        self.shared.state().session_id.clone()
    }

    /// How many renewals in a row have failed (0 while online).
    pub fn failures(&self) -> u32 {
        self.shared.state().failures
    }

    /// Why the last renewal failed, while it has not succeeded since.
    pub fn last_error(&self) -> Option<Error> {
        self.shared.state().last_error.clone()
    }

    /// Stops renewing and releases the seat on the server, freeing it for another machine at
    /// once. The seat is [`Status::Released`] whatever the answer; an error says the server
    /// did not confirm (unreachable: the lease then lapses by itself; a borrowed session
    /// cannot be released: [`Error::SessionBorrowed`]). It first waits for a renewal in
    /// flight, at most the request timeout.
    pub fn release(mut self) -> Result<(), Error> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), Error> {
        {
            let mut stop = lock(&self.shared.stop);
            *stop = true;
            self.shared.wake.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let session_id = {
            let mut state = self.shared.state();
            if state.released {
                return Ok(());
            }
            state.released = true;
            state.session_id.clone()
        };
        let client = &self.shared.client;
        match client.http.release(&session_id) {
            Ok(()) | Err(Error::SessionEnded { .. }) => {
                if let Some(cache) = &client.cache {
                    cache.forget_seat();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

impl std::fmt::Debug for Seat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seat")
            .field("session_id", &self.session_id())
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The heartbeat loop: wait, renew, until told to stop.
    fn run(&self, start_offline: bool) {
        let mut first = true;
        loop {
            let delay = if first && start_offline {
                Duration::ZERO
            } else {
                self.next_delay()
            };
            first = false;
            if self.wait_for_stop(delay) {
                return;
            }
            self.renew();
        }
    }

    /// Waits `delay`; true when told to stop meanwhile.
    fn wait_for_stop(&self, delay: Duration) -> bool {
        let now = std::time::Instant::now();
        // Delays are at most a day (see `MAX_WAIT_SECS`), so this cannot overflow; if it
        // could, waiting for the stop alone is the safe reading.
        let deadline = now
            .checked_add(delay)
            .unwrap_or(now + Duration::from_secs(86_400));
        let mut stop = lock(&self.stop);
        loop {
            if *stop {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            stop = match self.wake.wait_timeout(stop, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The server's interval while all is well; after `n` failures the interval times
    /// `2^(n-1)`, at most the configured backoff, or the server's `Retry-After` when longer.
    /// Always with ±10 % jitter.
    fn next_delay(&self) -> Duration {
        let state = self.state();
        let base = if state.failures == 0 {
            state.interval
        } else {
            let factor = 1u32 << (state.failures - 1).min(16);
            state
                .interval
                .saturating_mul(factor)
                .min(self.client.config.max_backoff)
        };
        let base = base.max(state.retry_after.unwrap_or_default());
        let jitter = 0.9 + (random_u64() % 2001) as f64 / 10_000.0;
        Duration::try_from_secs_f64(base.as_secs_f64() * jitter).unwrap_or(base)
    }

    /// One renewal: heartbeat the session, or acquire again when it has ended.
    fn renew(&self) {
        let session_id = self.state().session_id.clone();
        let client = &self.client;
        let outcome = match client.http.heartbeat(&session_id) {
            Ok(grant) => client.verify_grant(grant),
            Err(Error::SessionEnded { .. }) => client.acquire(),
            Err(e) => Err(e),
        };
        let mut state = self.state();
        if state.released {
            return;
        }
        match outcome {
            Ok((grant, verified)) => {
                *state = client.install_fresh(grant, verified);
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                state.retry_after = match &e {
                    Error::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                // The server said no (suspended, revoked, seat given away, key unknown): the
                // token is not to be used any more, whatever its grace. A token that failed
                // verification is not the server's word: it counts as a failure only.
                state.refused = !e.is_transient() && !matches!(e, Error::TokenRefused(_));
                state.last_error = Some(e);
            }
        }
    }
}

impl Client {
    fn new(config: Config) -> Result<Client, Error> {
        if config.product.is_empty() || config.machine_id.is_empty() {
            return Err(Error::Config(
                "the product and machine id must not be empty".into(),
            ));
        }
        let http = Http::new(&config.server, &config.license_key, config.timeout)?;
        let cache = config
            .cache_dir
            .as_deref()
            .map(|dir| Cache::new(dir, &config.server, &config.product, &config.machine_id));
        let keys = match &config.pinned_keys {
            Some(keys) => keys.clone(),
            None => cache
                .as_ref()
                .and_then(Cache::jwks)
                .and_then(|text| KeySet::from_jwks_json(&text).ok())
                .unwrap_or_default(),
        };
        Ok(Client {
            config,
            http,
            keys: Mutex::new(keys),
            cache,
        })
    }

    fn options(&self) -> ValidationOptions {
        let leeway = u32::try_from(self.config.leeway.as_secs()).unwrap_or(u32::MAX);
        ValidationOptions::new()
            .with_issuer(&self.config.issuer)
            .with_audience(&self.config.product)
            .with_leeway_secs(leeway)
    }

    fn acquire(&self) -> Result<(Grant, VerifiedToken), Error> {
        let grant = self
            .http
            .acquire(&self.config.machine_id, self.config.metadata.as_ref())?;
        self.verify_grant(grant)
    }

    /// Verifies a token the server just gave, as current (no offline grace), fetching the
    /// key set again once when its `kid` is unknown (the server rotated its key).
    fn verify_grant(&self, grant: Grant) -> Result<(Grant, VerifiedToken), Error> {
        let options = self.options();
        let machine = Some(self.config.machine_id.as_str());
        let first = verify(&grant.token, &lock(&self.keys), &options, now(), machine);
        let verified = match first {
            Err(TokenError::UnknownKey) if self.config.pinned_keys.is_none() => {
                let text = self.http.jwks()?;
                let keys = KeySet::from_jwks_json(&text)?;
                if let Some(cache) = &self.cache {
                    cache.store_jwks(&text)?;
                }
                let mut held = lock(&self.keys);
                *held = keys;
                verify(&grant.token, &held, &options, now(), machine)?
            }
            other => other?,
        };
        if verified.claims().sid != grant.session_id {
            return Err(Error::TokenRefused(TokenError::InvalidClaim {
                claim: "sid",
            }));
        }
        Ok((grant, verified))
    }

    /// The state after a grant, which is cached on disk (best effort: a full disk must not
    /// cost the program its seat).
    fn install_fresh(&self, grant: Grant, verified: VerifiedToken) -> State {
        if let Some(cache) = &self.cache {
            let _ = cache.store_seat(&CachedSeat {
                session_id: grant.session_id.clone(),
                token: grant.token.clone(),
                heartbeat_interval_s: grant.heartbeat_interval.as_secs(),
            });
        }
        State {
            session_id: grant.session_id,
            token: grant.token,
            verified,
            interval: grant.heartbeat_interval,
            failures: 0,
            refused: false,
            last_error: None,
            retry_after: None,
            released: false,
        }
    }

    /// The cached seat, when its token still verifies within its offline grace.
    fn cached_seat(&self) -> Option<State> {
        let cached = self.cache.as_ref()?.seat()?;
        let options = self.options().honouring_offline_grace();
        let verified = verify(
            &cached.token,
            &lock(&self.keys),
            &options,
            now(),
            Some(&self.config.machine_id),
        )
        .ok()?;
        (verified.claims().sid == cached.session_id).then(|| State {
            session_id: cached.session_id,
            token: cached.token,
            verified,
            interval: Duration::from_secs(
                cached
                    .heartbeat_interval_s
                    .clamp(1, crate::http::MAX_WAIT_SECS),
            ),
            failures: 0,
            refused: false,
            last_error: None,
            retry_after: None,
            released: false,
        })
    }

    fn status(&self, state: &State, now: i64) -> Status {
        if state.released {
            return Status::Released;
        }
        if state.refused {
            return Status::Lapsed;
        }
        let machine = Some(self.config.machine_id.as_str());
        let claims = state.verified.claims();
        let online = state.failures < self.config.failures_before_offline
            && state
                .verified
                .recheck(&self.options(), now, machine)
                .is_ok();
        if online {
            return Status::Online {
                until: at(claims.exp),
            };
        }
        let offline = self.options().honouring_offline_grace();
        if state.verified.recheck(&offline, now, machine).is_ok() {
            // The instant `recheck` starts refusing: the token crate's rule, restated.
            let leeway = i64::from(offline.leeway_secs());
            let grace = i64::from(claims.offline_grace.unwrap_or(0));
            return Status::Offline {
                until: at(claims.exp.saturating_add(leeway.max(grace))),
            };
        }
        Status::Lapsed
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn at(unix_seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_seconds).unwrap_or(0))
}

/// A random number for jitter and temporary names (not for secrets): std's per-process
/// random hash keys, so no dependency is needed.
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
