//! Admission limits: whether a request may start now, decided in the auth middleware
//! ([`super::authorize`]) before any handler runs. Every refusal is a problem response:
//! 429 with `Retry-After` (seconds), or 413 for a body declared too large.
//!
//! - **Rate per key.** A token bucket per API key id: `rate_limit_per_sec` tokens a
//!   second, up to `rate_limit_burst` saved up; a request takes one. Only keys that
//!   authenticated are counted, so nobody can spend another key's budget by sending its
//!   (public) id with a wrong secret.
//! - **Lock-out per address.** Failed authentications (an unknown or revoked key, a wrong
//!   secret, a malformed `Authorization` header) are counted per client address (an IPv6
//!   address by its /64, which one client usually holds whole). After
//!   `auth_failure_limit` of them within `auth_failure_window_secs`, every request from
//!   that address that carries a key is refused for `auth_lockout_secs`, before the key
//!   is looked at: a valid key gets the same answer as a wrong one, so a guessing client
//!   cannot learn when it guessed right. A success clears nothing, or a client holding
//!   one valid key could interleave it with its guesses; the count simply expires.
//!   Requests without a key are answered as usual: a 401, or the public answer of a
//!   public route.
//! - **Rate per address, without a key.** The public routes ([`crate::auth::Owner::Public`],
//!   the open catalog, SD22 Art.10) answer requests without a key. Those are counted
//!   per client address (as above) in a token bucket of their own with the per-key
//!   settings (`rate_limit_per_sec`, `rate_limit_burst`). The writes among them (filing
//!   a request to open data, SD22 Art.9, 12) have a second, much smaller bucket per
//!   address: `anonymous_writes_per_hour`, saved up to that many, so that nobody floods
//!   the data authority's queue without a key. A caller with a key is counted by its
//!   key instead.
//! - **Concurrent uploads.** Each streamed upload route (dataset versions, for
//!   providers; FHE server keys, for developers) has `upload_concurrency` permits, held
//!   until its handler answers. One more upload is refused at once, not queued: a queue
//!   would hold connections and memory for as long as the uploads ahead of it take.
//! - **Bodies.** Every route takes at most `body_limit_bytes`, except the streamed upload
//!   routes, which take their larger upload limits. Those routes are open to one role
//!   each (the policy table), so only providers may send dataset-sized bodies and only
//!   developers key-sized ones; every other role is refused (403) before a byte of the
//!   body is read. A body whose `Content-Length` is over the route's limit is refused
//!   with 413 before the handler runs: at once if the client waits for `100 Continue`
//!   (then not a byte is read), otherwise after discarding the rest within the bounds of
//!   [`super::body`], so that a client still sending gets the answer rather than a
//!   reset. An upload route without `Expect` is left to its handler, which streams to
//!   the same limit and discards the same way.
//!
//! The state is per process and in memory: several servers behind a load balancer each
//! enforce their own limits (a key may make N times the rate across N servers, and a
//! guesser spread over them gets N times the failures), and a restart forgets it. Memory
//! is bounded: idle entries (a full bucket, an expired count) carry no information and
//! are pruned every minute, and at [`MAX_TRACKED`] entries the least recently used one
//! is evicted. The client address is the TCP peer's. Behind a reverse proxy every
//! client shares the proxy's address, so one guesser would lock everyone out: turn the
//! lock-out off there (`auth_failure_limit = 0`) and let the proxy limit by address.
//! Forwarded-for headers are not trusted, as any client can send them.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use pdx_ids::KeyId;

use crate::config::Config;
use crate::http::body::discard_rest;
use crate::http::problem::ApiError;

/// The most keys, and the most addresses, whose state is kept at once.
pub const MAX_TRACKED: usize = 100_000;

/// The longest lock-out applied, whatever the configuration says.
const MAX_LOCKOUT: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// How often idle entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// `Retry-After` of a refused upload: a slot frees when some upload ends, which the
/// server cannot foresee.
pub const UPLOAD_RETRY_AFTER_SECS: u64 = 5;

/// The admission-limit settings; each field names its TOML key ([`crate::config`]).
/// The defaults are generous: normal use never meets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Requests per second one key may make on average; 0 turns the rate limit off
    /// (`rate_limit_per_sec`, default 100).
    pub rate_per_sec: u32,
    /// Requests one key may make at once above that rate, the bucket's size
    /// (`rate_limit_burst`, default 500).
    pub rate_burst: u32,
    /// Failed authentications from one address that lock it out; 0 turns the lock-out
    /// off (`auth_failure_limit`, default 20).
    pub auth_failure_limit: u32,
    /// The window in which those failures are counted (`auth_failure_window_secs`,
    /// default 5 minutes).
    pub auth_failure_window: Duration,
    /// How long a locked-out address is refused (`auth_lockout_secs`, default 15
    /// minutes).
    pub auth_lockout: Duration,
    /// Uploads of one kind (dataset versions; FHE server keys) in progress at once
    /// (`upload_concurrency`, default 4).
    pub upload_concurrency: u32,
    /// Writes without a key (requests to open data) one address may make in an hour,
    /// and at once; 0 turns this limit off (`anonymous_writes_per_hour`, default 20).
    pub anonymous_writes_per_hour: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_per_sec: 100,
            rate_burst: 500,
            auth_failure_limit: 20,
            auth_failure_window: Duration::from_secs(5 * 60),
            auth_lockout: Duration::from_secs(15 * 60),
            upload_concurrency: 4,
            anonymous_writes_per_hour: 20,
        }
    }
}

/// Why a request was refused by an admission limit (each is a 429 with `Retry-After`).
/// The messages name no key, secret or address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The key is over its rate.
    #[error(
        "this API key is over its rate limit ({rate} requests a second, bursts of \
         {burst}); retry after the Retry-After header's seconds"
    )]
    Rate {
        /// Requests per second.
        rate: u32,
        /// Burst size.
        burst: u32,
        /// Seconds until a request would be admitted.
        retry_after: u64,
    },
    /// The client's address failed to authenticate too often.
    #[error(
        "too many failed authentications from this address: requests with a key are \
         refused for a while; retry after the Retry-After header's seconds"
    )]
    LockedOut {
        /// Seconds until the lock-out ends.
        retry_after: u64,
    },
    /// The client's address is over the rate of requests without a key.
    #[error(
        "requests without a key from this address are over their rate limit ({rate} a \
         second, bursts of {burst}); retry after the Retry-After header's seconds"
    )]
    AnonymousRate {
        /// Requests per second.
        rate: u32,
        /// Burst size.
        burst: u32,
        /// Seconds until a request would be admitted.
        retry_after: u64,
    },
    /// The client's address made as many writes without a key as an hour allows.
    #[error(
        "this address has made as many requests without a key that change something as \
         it may in an hour ({limit}); retry after the Retry-After header's seconds"
    )]
    AnonymousWrites {
        /// Writes an hour.
        limit: u32,
        /// Seconds until a write would be admitted.
        retry_after: u64,
    },
    /// As many uploads of this kind are in progress as the server takes at once.
    #[error(
        "the server is taking as many uploads of this kind as it allows at once \
         ({limit}); retry after the Retry-After header's seconds"
    )]
    Uploads {
        /// Uploads allowed at once.
        limit: u32,
        /// Suggested wait, seconds.
        retry_after: u64,
    },
}

impl Refused {
    /// Seconds the client should wait (the `Retry-After` value).
    pub fn retry_after(&self) -> u64 {
        match self {
            Refused::Rate { retry_after, .. }
            | Refused::LockedOut { retry_after }
            | Refused::AnonymousRate { retry_after, .. }
            | Refused::AnonymousWrites { retry_after, .. }
            | Refused::Uploads { retry_after, .. } => *retry_after,
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        ApiError::too_many_requests(r.to_string(), r.retry_after())
    }
}

/// The routes whose handlers stream their body to disk, each under its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    /// `POST /v1/datasets/{id}/versions` (providers).
    DatasetVersion,
    /// `POST /v1/fhe/keys` (developers).
    ServerKey,
}

impl Upload {
    /// Every streamed upload route: (method, route template, kind).
    pub const ROUTES: [(&'static str, &'static str, Upload); 2] = [
        ("POST", "/v1/datasets/{id}/versions", Upload::DatasetVersion),
        ("POST", "/v1/fhe/keys", Upload::ServerKey),
    ];

    /// The upload kind of a matched route, if it is one.
    pub fn of(method: &Method, route: &str) -> Option<Upload> {
        Self::ROUTES
            .iter()
            .find(|(m, r, _)| *m == method.as_str() && *r == route)
            .map(|(_, _, kind)| *kind)
    }
}

/// The client's address as the limits see it: the TCP peer's, an IPv4-mapped IPv6
/// address as IPv4, and an IPv6 address by its /64. None when the server was started
/// without connection info (then no address is locked out).
pub fn client_address(req: &Request) -> Option<IpAddr> {
    let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(address_key(peer.ip()))
}

fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// A map with a cap: idle entries are pruned every [`PRUNE_EVERY`] and when full; if it
/// is still full, the least recently used entry makes room.
struct Table<K, V> {
    entries: HashMap<K, (V, Instant)>,
    cap: usize,
    pruned: Instant,
    idle: fn(&V, Instant) -> bool,
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    fn new(cap: usize, idle: fn(&V, Instant) -> bool) -> Self {
        Table {
            entries: HashMap::new(),
            cap: cap.max(1),
            pruned: Instant::now(),
            idle,
        }
    }

    fn prune(&mut self, now: Instant) {
        let idle = self.idle;
        self.entries.retain(|_, (v, _)| !idle(v, now));
        self.pruned = now;
    }

    /// The entry of `key`, marked used now, if present.
    fn get_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        if now.duration_since(self.pruned) >= PRUNE_EVERY {
            self.prune(now);
        }
        let (v, used) = self.entries.get_mut(key)?;
        *used = now;
        Some(v)
    }

    /// The entry of `key`, made with `make` if absent, marked used now.
    fn entry(&mut self, key: &K, now: Instant, make: impl FnOnce() -> V) -> &mut V {
        if now.duration_since(self.pruned) >= PRUNE_EVERY {
            self.prune(now);
        }
        if !self.entries.contains_key(key) && self.entries.len() >= self.cap {
            self.prune(now);
            if self.entries.len() >= self.cap {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        let (v, used) = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (make(), now));
        *used = now;
        v
    }

    fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One key's token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Refill per second and size, copied so that [`Table`]'s idle test can see them.
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn level(&self, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst)
    }

    /// A full bucket is idle: forgetting it changes nothing, as a new one starts full.
    fn idle(&self, now: Instant) -> bool {
        self.level(now) >= self.burst
    }
}

/// One address's failed authentications.
struct Strikes {
    /// Start of the counting window.
    since: Instant,
    count: u32,
    locked_until: Option<Instant>,
    /// Window length, copied for [`Table`]'s idle test.
    window: Duration,
}

impl Strikes {
    fn idle(&self, now: Instant) -> bool {
        match self.locked_until {
            Some(until) => now >= until,
            None => now.duration_since(self.since) >= self.window,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent whatever panicked while holding it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes one token from `key`'s bucket in `table` (a new bucket starts full), or says
/// how many whole seconds to wait for one. A refused attempt costs nothing.
fn take<K: Hash + Eq + Clone>(
    table: &Mutex<Table<K, Bucket>>,
    key: &K,
    rate: f64,
    burst: f64,
    now: Instant,
) -> Result<(), u64> {
    let mut table = lock(table);
    let bucket = table.entry(key, now, || Bucket {
        tokens: burst,
        at: now,
        rate,
        burst,
    });
    bucket.tokens = bucket.level(now);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        return Ok(());
    }
    Err(ceil_secs(Duration::from_secs_f64(
        (1.0 - bucket.tokens) / rate,
    )))
}

/// The admission limits of one server (see the module documentation).
pub struct Limits {
    config: LimitsConfig,
    body_limit: u64,
    dataset_upload_limit: u64,
    server_key_limit: u64,
    keys: Mutex<Table<KeyId, Bucket>>,
    addresses: Mutex<Table<IpAddr, Strikes>>,
    /// Requests without a key, per client address (None: no address known).
    anonymous: Mutex<Table<Option<IpAddr>, Bucket>>,
    /// Writes without a key, per client address.
    anonymous_writes: Mutex<Table<Option<IpAddr>, Bucket>>,
    dataset_uploads: Arc<Semaphore>,
    server_key_uploads: Arc<Semaphore>,
}

impl Limits {
    /// Limits from the server configuration, with nothing counted yet.
    pub fn new(config: &Config) -> Limits {
        let mut limits = config.limits.clone();
        // Far beyond any sensible setting, and `Instant + lockout` cannot overflow.
        limits.auth_lockout = limits.auth_lockout.min(MAX_LOCKOUT);
        let permits = usize::try_from(limits.upload_concurrency.max(1)).unwrap_or(1);
        Limits {
            body_limit: u64::try_from(config.body_limit).unwrap_or(u64::MAX),
            dataset_upload_limit: config.sandbox.upload_limit,
            server_key_limit: config.sandbox.fhe_server_key_limit,
            keys: Mutex::new(Table::new(MAX_TRACKED, Bucket::idle)),
            addresses: Mutex::new(Table::new(MAX_TRACKED, Strikes::idle)),
            anonymous: Mutex::new(Table::new(MAX_TRACKED, Bucket::idle)),
            anonymous_writes: Mutex::new(Table::new(MAX_TRACKED, Bucket::idle)),
            dataset_uploads: Arc::new(Semaphore::new(permits)),
            server_key_uploads: Arc::new(Semaphore::new(permits)),
            config: limits,
        }
    }

    /// Refuses a request carrying a key from a locked-out address (whatever the key).
    pub fn check_address(&self, client: Option<IpAddr>) -> Result<(), Refused> {
        self.check_address_at(client, Instant::now())
    }

    fn check_address_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Refused> {
        let Some(ip) = client else { return Ok(()) };
        if self.config.auth_failure_limit == 0 {
            return Ok(());
        }
        let mut table = lock(&self.addresses);
        let Some(strikes) = table.get_mut(&ip, now) else {
            return Ok(());
        };
        let locked_until = strikes.locked_until;
        match locked_until {
            Some(until) if now < until => Err(Refused::LockedOut {
                retry_after: ceil_secs(until - now),
            }),
            // The lock-out is served: the address starts afresh.
            Some(_) => {
                table.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `client`; the limit-th within the window
    /// starts the lock-out.
    pub fn record_failure(&self, client: Option<IpAddr>) {
        self.record_failure_at(client, Instant::now());
    }

    fn record_failure_at(&self, client: Option<IpAddr>, now: Instant) {
        let Some(ip) = client else { return };
        let limit = self.config.auth_failure_limit;
        if limit == 0 {
            return;
        }
        let window = self.config.auth_failure_window;
        let mut table = lock(&self.addresses);
        let strikes = table.entry(&ip, now, || Strikes {
            since: now,
            count: 0,
            locked_until: None,
            window,
        });
        match strikes.locked_until {
            // Raced with the failure that locked it; the lock-out stands as it is.
            Some(until) if now < until => return,
            // A served lock-out not yet cleared: count afresh.
            Some(_) => {
                strikes.locked_until = None;
                strikes.since = now;
                strikes.count = 0;
            }
            None => {}
        }
        if now.duration_since(strikes.since) >= window {
            strikes.since = now;
            strikes.count = 0;
        }
        strikes.count = strikes.count.saturating_add(1);
        if strikes.count >= limit {
            strikes.locked_until = Some(now + self.config.auth_lockout);
            tracing::warn!(
                target: "pdx::limits",
                address = %ip,
                failures = strikes.count,
                lockout_secs = self.config.auth_lockout.as_secs(),
                "address locked out after repeated failed authentications"
            );
        }
    }

    /// Takes one request from the key's bucket, or says how long to wait.
    pub fn check_rate(&self, key: &KeyId) -> Result<(), Refused> {
        self.check_rate_at(key, Instant::now())
    }

    fn check_rate_at(&self, key: &KeyId, now: Instant) -> Result<(), Refused> {
        let LimitsConfig {
            rate_per_sec,
            rate_burst,
            ..
        } = self.config;
        if rate_per_sec == 0 {
            return Ok(());
        }
        let (rate, burst) = (f64::from(rate_per_sec), f64::from(rate_burst.max(1)));
        take(&self.keys, key, rate, burst, now).map_err(|retry_after| Refused::Rate {
            rate: rate_per_sec,
            burst: rate_burst,
            retry_after,
        })
    }

    /// Admits a request without a key on a public route from `client`: one token from
    /// the address's bucket (the per-key rate) and, for a write, one from its hourly
    /// bucket of writes; or says how long to wait.
    pub fn check_anonymous(&self, client: Option<IpAddr>, writes: bool) -> Result<(), Refused> {
        self.check_anonymous_at(client, writes, Instant::now())
    }

    fn check_anonymous_at(
        &self,
        client: Option<IpAddr>,
        writes: bool,
        now: Instant,
    ) -> Result<(), Refused> {
        let LimitsConfig {
            rate_per_sec,
            rate_burst,
            anonymous_writes_per_hour,
            ..
        } = self.config;
        if rate_per_sec > 0 {
            let (rate, burst) = (f64::from(rate_per_sec), f64::from(rate_burst.max(1)));
            take(&self.anonymous, &client, rate, burst, now).map_err(|retry_after| {
                Refused::AnonymousRate {
                    rate: rate_per_sec,
                    burst: rate_burst,
                    retry_after,
                }
            })?;
        }
        if writes && anonymous_writes_per_hour > 0 {
            let per_hour = f64::from(anonymous_writes_per_hour);
            take(
                &self.anonymous_writes,
                &client,
                per_hour / 3600.0,
                per_hour,
                now,
            )
            .map_err(|retry_after| Refused::AnonymousWrites {
                limit: anonymous_writes_per_hour,
                retry_after,
            })?;
        }
        Ok(())
    }

    /// The limit a body declared too large now is refused under, if it is (see the
    /// module documentation for when an upload route is left to its handler).
    fn declared_too_large(&self, upload: Option<Upload>, headers: &HeaderMap) -> Option<u64> {
        let declared = headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        let (limit, now) = match upload {
            None => (self.body_limit, true),
            Some(Upload::DatasetVersion) => (self.dataset_upload_limit, expects_continue(headers)),
            Some(Upload::ServerKey) => (self.server_key_limit, expects_continue(headers)),
        };
        (now && declared > limit).then_some(limit)
    }

    /// A permit for an upload of this kind, or the refusal.
    fn upload_permit(&self, upload: Upload) -> Result<OwnedSemaphorePermit, Refused> {
        let semaphore = match upload {
            Upload::DatasetVersion => &self.dataset_uploads,
            Upload::ServerKey => &self.server_key_uploads,
        };
        Arc::clone(semaphore)
            .try_acquire_owned()
            .map_err(|_| Refused::Uploads {
                limit: self.config.upload_concurrency,
                retry_after: UPLOAD_RETRY_AFTER_SECS,
            })
    }

    /// Runs an authenticated, authorised request under the body and upload limits.
    pub async fn run(&self, route: &str, req: Request, next: Next) -> Response {
        let upload = Upload::of(req.method(), route);
        if let Some(limit) = self.declared_too_large(upload, req.headers()) {
            return refuse_too_large(req, limit).await;
        }
        let permit = match upload.map(|u| self.upload_permit(u)).transpose() {
            Ok(permit) => permit,
            Err(refused) => return ApiError::from(refused).into_response(),
        };
        let resp = next.run(req).await;
        // Held until the handler has read the whole body and answered.
        drop(permit);
        resp
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// 413 for a body declared over `limit`. A client waiting for `100 Continue` has sent
/// none of it (and gets none: hyper sends it only when the body is read); any other's
/// is discarded within bounds first, so that it gets the answer rather than a reset.
async fn refuse_too_large(req: Request, limit: u64) -> Response {
    if !expects_continue(req.headers()) {
        let mut stream = req.into_body().into_data_stream();
        discard_rest(&mut stream, limit).await;
    }
    ApiError::too_large(format!(
        "the body is larger than this route accepts ({limit} bytes)"
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn limits(config: LimitsConfig) -> Limits {
        let mut c = Config::resolve(&crate::config::ConfigArgs::default(), None)
            .expect("default configuration");
        c.limits = config;
        c.body_limit = 1000;
        Limits::new(&c)
    }

    fn key(n: u8) -> KeyId {
        KeyId::parse(&format!("{n:016x}")).expect("a key id")
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills_at_the_rate() {
        let l = limits(LimitsConfig {
            rate_per_sec: 2,
            rate_burst: 3,
            ..LimitsConfig::default()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_rate_at(&key(1), t0), Ok(()));
        }
        let refused = l.check_rate_at(&key(1), t0).unwrap_err();
        assert_eq!(refused.retry_after(), 1);
        // Another key has its own bucket.
        assert_eq!(l.check_rate_at(&key(2), t0), Ok(()));
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.check_rate_at(&key(1), t1), Ok(()));
        assert!(l.check_rate_at(&key(1), t1).is_err());
        // The refused attempt cost nothing: two seconds later, the burst is whole again.
        let t2 = t1 + Duration::from_secs(2);
        for _ in 0..3 {
            assert_eq!(l.check_rate_at(&key(1), t2), Ok(()));
        }
        assert!(l.check_rate_at(&key(1), t2).is_err());
    }

    #[test]
    fn requests_without_a_key_are_counted_per_address_and_writes_per_hour() {
        let l = limits(LimitsConfig {
            rate_per_sec: 2,
            rate_burst: 3,
            anonymous_writes_per_hour: 2,
            ..LimitsConfig::default()
        });
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_anonymous_at(a, false, t0), Ok(()));
        }
        assert!(matches!(
            l.check_anonymous_at(a, false, t0),
            Err(Refused::AnonymousRate { retry_after: 1, .. })
        ));
        // Another address has its own bucket, and a key's bucket is not the address's.
        assert_eq!(l.check_anonymous_at(b, false, t0), Ok(()));
        assert_eq!(l.check_rate_at(&key(1), t0), Ok(()));
        // Writes: two an hour per address, whatever the read rate allows.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(l.check_anonymous_at(b, true, t1), Ok(()));
        assert_eq!(l.check_anonymous_at(b, true, t1), Ok(()));
        let refused = l.check_anonymous_at(b, true, t1 + Duration::from_secs(5));
        assert!(
            matches!(refused, Err(Refused::AnonymousWrites { limit: 2, retry_after }) if retry_after > 1000),
            "{refused:?}"
        );
        // Reads from that address still pass; a write again after half an hour.
        assert_eq!(
            l.check_anonymous_at(b, false, t1 + Duration::from_secs(6)),
            Ok(())
        );
        let later = t1 + Duration::from_secs(1801);
        assert_eq!(l.check_anonymous_at(b, true, later), Ok(()));
        assert!(l.check_anonymous_at(b, true, later).is_err());
        // 0 turns the write limit off.
        let off = limits(LimitsConfig {
            anonymous_writes_per_hour: 0,
            ..LimitsConfig::default()
        });
        for _ in 0..100 {
            assert_eq!(off.check_anonymous_at(a, true, t0), Ok(()));
        }
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let l = limits(LimitsConfig {
            rate_per_sec: 0,
            rate_burst: 1,
            ..LimitsConfig::default()
        });
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(l.check_rate_at(&key(1), t0), Ok(()));
        }
    }

    #[test]
    fn failures_lock_an_address_out_for_the_lockout_then_it_starts_afresh() {
        let l = limits(LimitsConfig {
            auth_failure_limit: 3,
            auth_failure_window: Duration::from_secs(60),
            auth_lockout: Duration::from_secs(600),
            ..LimitsConfig::default()
        });
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..2 {
            l.record_failure_at(a, t0);
            assert_eq!(l.check_address_at(a, t0), Ok(()));
        }
        l.record_failure_at(a, t0);
        assert_eq!(
            l.check_address_at(a, t0),
            Err(Refused::LockedOut { retry_after: 600 })
        );
        // Another address is not affected, nor is a request without an address.
        assert_eq!(l.check_address_at(b, t0), Ok(()));
        assert_eq!(l.check_address_at(None, t0), Ok(()));
        let t1 = t0 + Duration::from_millis(599_500);
        assert_eq!(
            l.check_address_at(a, t1),
            Err(Refused::LockedOut { retry_after: 1 })
        );
        // Served: a new failure starts a new count.
        let t2 = t0 + Duration::from_secs(600);
        assert_eq!(l.check_address_at(a, t2), Ok(()));
        l.record_failure_at(a, t2);
        assert_eq!(l.check_address_at(a, t2), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let l = limits(LimitsConfig {
            auth_failure_limit: 2,
            auth_failure_window: Duration::from_secs(60),
            ..LimitsConfig::default()
        });
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let t0 = Instant::now();
        l.record_failure_at(a, t0);
        l.record_failure_at(a, t0 + Duration::from_secs(61));
        assert_eq!(l.check_address_at(a, t0 + Duration::from_secs(61)), Ok(()));
        l.record_failure_at(a, t0 + Duration::from_secs(62));
        assert!(l.check_address_at(a, t0 + Duration::from_secs(62)).is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let two: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(address_key(one), address_key(two));
        assert_ne!(address_key(one), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("mapped");
        assert_eq!(address_key(mapped), IpAddr::from([192, 0, 2, 7]));
    }

    #[test]
    fn the_tables_stay_within_their_cap() {
        let mut t: Table<u32, Bucket> = Table::new(3, Bucket::idle);
        let t0 = Instant::now();
        let busy = || Bucket {
            tokens: 0.0,
            at: t0,
            rate: 1.0,
            burst: 10.0,
        };
        for (i, k) in [1u32, 2, 3].iter().enumerate() {
            t.entry(k, t0 + Duration::from_millis(i as u64), busy);
        }
        // Full of busy entries: the least recently used (1) makes room.
        t.entry(&4, t0 + Duration::from_millis(5), busy);
        assert_eq!(t.len(), 3);
        assert!(t.get_mut(&1, t0 + Duration::from_millis(6)).is_none());
        assert!(t.get_mut(&2, t0 + Duration::from_millis(6)).is_some());
        // A minute on, the buckets are full again and pruned.
        let later = t0 + PRUNE_EVERY + Duration::from_secs(10);
        assert!(t.get_mut(&2, later).is_none());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn bodies_declared_too_large_are_refused_early_and_uploads_only_when_expecting() {
        let l = limits(LimitsConfig::default());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(1001u64));
        assert_eq!(l.declared_too_large(None, &headers), Some(1000));
        assert_eq!(
            l.declared_too_large(Some(Upload::DatasetVersion), &headers),
            None
        );
        let huge = l.dataset_upload_limit + 1;
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(huge));
        assert_eq!(
            l.declared_too_large(Some(Upload::DatasetVersion), &headers),
            None,
            "without Expect the handler refuses it as it streams"
        );
        headers.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        assert_eq!(
            l.declared_too_large(Some(Upload::DatasetVersion), &headers),
            Some(l.dataset_upload_limit)
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(1000u64));
        assert_eq!(l.declared_too_large(None, &headers), None);
    }

    #[test]
    fn uploads_beyond_the_bound_are_refused_not_queued() {
        let l = limits(LimitsConfig {
            upload_concurrency: 1,
            ..LimitsConfig::default()
        });
        let held = l.upload_permit(Upload::DatasetVersion).expect("a permit");
        assert!(matches!(
            l.upload_permit(Upload::DatasetVersion),
            Err(Refused::Uploads { limit: 1, .. })
        ));
        // The other kind has its own permits.
        assert!(l.upload_permit(Upload::ServerKey).is_ok());
        drop(held);
        assert!(l.upload_permit(Upload::DatasetVersion).is_ok());
    }

    #[test]
    fn every_upload_route_exists_with_a_policy() {
        for (method, route, kind) in Upload::ROUTES {
            let method: Method = method.parse().expect("a method");
            assert!(
                crate::http::policies::policy_for(&method, route).is_some(),
                "{route}"
            );
            assert_eq!(Upload::of(&method, route), Some(kind));
        }
        assert_eq!(Upload::of(&Method::GET, "/v1/datasets/{id}/versions"), None);
    }

    #[test]
    fn refusals_name_no_secret_and_carry_retry_after() {
        let r = Refused::LockedOut { retry_after: 7 };
        let resp = ApiError::from(r).into_response();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
    }
}
