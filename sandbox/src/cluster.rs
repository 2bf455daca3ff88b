//! Several pdx servers on one database (issue #23): which servers are alive, which one
//! owns each job, and which one leads the periodic work. Owner of the tables
//! `instances`, `leader_leases` and `leader_terms`.
//!
//! Any number of `pdx serve` processes may share one PostgreSQL database and one data
//! directory (a shared file system). Requests can go to any of them: everything a
//! request reads or writes is in the database or the data directory. What needs one
//! owner is decided here, by rows in the database, not by talking to each other.
//!
//! # Instances
//!
//! Every server is an *instance* with a name ([`crate::SandboxConfig::instance`],
//! `--instance`; default the host name). At start it writes its row in `instances`
//! with a fresh random `nonce` and its lease ([`crate::SandboxConfig::instance_lease`],
//! default 10 s), then refreshes `heartbeat_ms` every third of the lease. An instance
//! is **live** while `heartbeat_ms + lease_ms` is not past (its own lease, so servers
//! may be configured differently). Rules:
//!
//! * A name is one server's. Two live processes under one name would both think the
//!   other's jobs are their own: a start that finds the name live warns, and a
//!   heartbeat that finds another nonce in its row logs an error and stops every job
//!   it runs. A server restarted under its own name (the usual single-server case)
//!   takes its jobs back at once instead of waiting for the lease.
//! * A server whose heartbeats fail for longer than its lease (the database out of
//!   reach) stops every job it runs and takes none over until it beats again: the
//!   others may be running them by then.
//! * A clean stop sets the heartbeat to 0 and gives up the leader leases
//!   ([`Cluster::leave`]), so the others take over at once.
//! * On SQLite only one instance may be live: SQLite is a file on one machine, and the
//!   record-set lock below is per process there. A start that finds another live
//!   instance waits out its lease once (it may have just stopped) and is then refused
//!   ([`Cluster::register`]).
//! * Clocks: liveness and leases compare wall-clock milliseconds written by different
//!   machines, so their clocks must agree to well within a quarter of the lease (NTP
//!   does).
//!
//! # Jobs (`jobs.rs` and `store/jobs.rs` hold the claims)
//!
//! A job row names the instance that claimed it (`jobs.instance_id`). A job runs only
//! on the instance whose claim succeeded, and a claim is one conditional `UPDATE`, so
//! two instances cannot both win it:
//!
//! * **Submitted:** the instance that accepted the request claims the job as it spawns
//!   the work.
//! * **Orphaned:** every instance polls ([`crate::SandboxConfig::job_poll_interval`])
//!   for jobs `running` under an instance that is no longer live, and for jobs left
//!   `queued` longer than a lease (their instance died between the insert and the
//!   claim). On PostgreSQL the candidates are picked with `FOR UPDATE SKIP LOCKED`, so
//!   pollers do not queue behind each other. A claimed orphan is resumed from its
//!   stored inputs exactly as after a restart (each kind first checks whether its result
//!   was already stored).
//! * **Lost:** the heartbeat also reads back this instance's running jobs; one that
//!   another instance claimed (after this one's heartbeat lapsed) or that was cancelled
//!   elsewhere (a suspension served by another instance) is aborted here. Until then,
//!   a runner records its outcome only while it still holds the job, and a model run
//!   stores its output only in a transaction that finds the job still its own
//!   (`store::jobs::still_held`, which locks the row on PostgreSQL): a run taken over
//!   or cancelled elsewhere leaves no output and no outcome behind.
//!
//! # Leadership
//!
//! Work that must happen once for the whole deployment (signing the periodic ledger
//! checkpoints, recording the end of emergency relaxations) runs on the **leader** of
//! the role [`LEDGER_ROLE`]. Leadership is a lease in `leader_leases`: the holder renews
//! it on every heartbeat; another instance takes it only once it has expired, and
//! the term number then goes up. The holder acts as leader only until three quarters
//! of its lease, so that it has stopped before anyone else may start. Each term is kept
//! in `leader_terms` (role, term, holder, since). A new leader's checkpoint simply
//! covers the ledger's head as it finds it: appends are one chain whoever writes
//! them (the ledger locks its head row, `pdx_ledger::store`), so it continues from the
//! last signed size. A checkpoint an admin asks for is signed by whichever instance
//! serves the request, under the same head lock.
//!
//! # Not shared between instances
//!
//! Rate limits, the bad-key lock-out and upload concurrency are counted per instance.
//! Caches (the record-set unions, FHE evaluators) are per instance and take in what
//! others stored on their next use. The record-set lock, which serialises one
//! organisation's runs on one dataset version, is a PostgreSQL advisory lock as well as
//! a process lock (`record_sets.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pdx_ledger::db::{Backend, Db, now_ms};
use serde::Serialize;
use sqlx::Row;

use crate::{Result, SandboxError};

/// The leader role of the deployment-wide periodic work (checkpoints, timers).
pub const LEDGER_ROLE: &str = "ledger";

/// The default instance name: the host name, else `pdx`.
pub fn default_instance_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| valid_instance_name(name))
        .unwrap_or_else(|| "pdx".to_owned())
}

/// Instance names are 1 to 64 ASCII letters, digits, `.`, `_`, `-` and `:`.
pub fn valid_instance_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

/// One server as the `instances` table knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Its name.
    pub name: String,
    /// The address it listens on.
    pub addr: String,
    /// When its current process started, ms since epoch.
    pub started_ms: i64,
    /// Its last heartbeat, ms since epoch.
    pub heartbeat_ms: i64,
    /// Its lease: it is live until `heartbeat_ms + lease_ms`.
    pub lease_ms: i64,
    /// Whether that is not past.
    pub live: bool,
}

/// One term of a leader role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaderTerm {
    /// The role (`ledger`).
    pub role: String,
    /// Its term number, from 1.
    pub term: i64,
    /// The instance that led in it.
    pub holder: String,
    /// When the term began, ms since epoch.
    pub since_ms: i64,
}

/// This instance's view of the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    name: String,
    /// Fresh at each start: tells this process's row from a predecessor's.
    nonce: String,
    lease: Duration,
    /// Per role held, until when (ms since epoch) this instance may act as its leader.
    leading_until: Mutex<HashMap<&'static str, i64>>,
    /// When this process's heartbeat last succeeded (ms since epoch).
    last_heartbeat_ms: AtomicI64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.inner.name)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

/// A lease as a whole number of milliseconds (at least 1).
fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl Cluster {
    /// This instance, named `name`, with heartbeats valid for `lease`.
    pub fn new(db: Db, name: String, lease: Duration) -> Cluster {
        Cluster {
            inner: Arc::new(Inner {
                db,
                name,
                nonce: format!("{:032x}", rand::random::<u128>()),
                lease,
                leading_until: Mutex::default(),
                last_heartbeat_ms: AtomicI64::new(now_ms()),
            }),
        }
    }

    /// This instance's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `now` less one lease (ms since epoch): a job queued before this has waited too
    /// long for its instance's claim.
    pub(crate) fn lease_ago(&self, now: i64) -> i64 {
        now.saturating_sub(lease_ms(self.inner.lease))
    }

    /// Writes this process's row (taking the name over from a predecessor). On SQLite,
    /// which serves one server only, another live instance is refused, after waiting
    /// out its lease once (it may be a predecessor under another name that stopped a
    /// moment ago).
    pub async fn register(&self, addr: &str) -> Result<()> {
        if self.inner.db.backend() == Backend::Sqlite {
            let mut waited = false;
            loop {
                let peers = self.live_peers().await?;
                let Some(peer) = peers.first() else { break };
                if waited {
                    return Err(SandboxError::Conflict(format!(
                        "instance {} is live on this SQLite database; several servers need PostgreSQL",
                        peer.name
                    )));
                }
                let wait = peer
                    .heartbeat_ms
                    .saturating_add(peer.lease_ms)
                    .saturating_sub(now_ms())
                    .clamp(0, 600_000);
                tracing::warn!(
                    instance = %peer.name,
                    wait_ms = wait,
                    "another server's heartbeat is fresh on this SQLite database: waiting out its lease"
                );
                tokio::time::sleep(Duration::from_millis(wait.unsigned_abs() + 100)).await;
                waited = true;
            }
        }
        let now = now_ms();
        let previous =
            sqlx::query("SELECT nonce, heartbeat_ms, lease_ms FROM instances WHERE name = $1")
                .bind(self.name().to_owned())
                .fetch_optional(self.inner.db.pool())
                .await?;
        if let Some(row) = previous {
            let heartbeat: i64 = row.try_get("heartbeat_ms")?;
            let lease: i64 = row.try_get("lease_ms")?;
            if heartbeat.saturating_add(lease) >= now {
                tracing::warn!(
                    instance = self.name(),
                    "this instance name had a live heartbeat {} ms ago: if another server \
                     still runs under it, give each server its own --instance",
                    now.saturating_sub(heartbeat)
                );
            }
        }
        sqlx::query(
            "INSERT INTO instances (name, nonce, addr, started_ms, heartbeat_ms, lease_ms) \
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (name) DO UPDATE SET \
             nonce = excluded.nonce, addr = excluded.addr, started_ms = excluded.started_ms, \
             heartbeat_ms = excluded.heartbeat_ms, lease_ms = excluded.lease_ms",
        )
        .bind(self.name().to_owned())
        .bind(self.inner.nonce.clone())
        .bind(addr.to_owned())
        .bind(now)
        .bind(lease_ms(self.inner.lease))
        .execute(self.inner.db.pool())
        .await?;
        self.inner.last_heartbeat_ms.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Refreshes this instance's heartbeat (writing its row if there is none yet: a
    /// server started in process by the demo or the tests does not register); false
    /// when another process has taken the name since (logged as an error: two servers
    /// must not share a name).
    pub async fn heartbeat(&self) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE instances SET heartbeat_ms = $1, lease_ms = $2 WHERE name = $3 AND nonce = $4",
        )
        .bind(now)
        .bind(lease_ms(self.inner.lease))
        .bind(self.name().to_owned())
        .bind(self.inner.nonce.clone())
        .execute(self.inner.db.pool())
        .await?;
        let mut ours = done.rows_affected() == 1;
        if !ours {
            let inserted = sqlx::query(
                "INSERT INTO instances (name, nonce, addr, started_ms, heartbeat_ms, lease_ms) \
                 VALUES ($1, $2, '', $3, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(self.name().to_owned())
            .bind(self.inner.nonce.clone())
            .bind(now)
            .bind(lease_ms(self.inner.lease))
            .execute(self.inner.db.pool())
            .await?;
            ours = inserted.rows_affected() == 1;
        }
        if ours {
            self.inner.last_heartbeat_ms.store(now, Ordering::Relaxed);
        } else {
            tracing::error!(
                instance = self.name(),
                "another server took this instance name: give each server its own --instance"
            );
        }
        Ok(ours)
    }

    /// Whether this instance's last successful heartbeat is older than its lease: other
    /// instances may have taken its jobs, so it must stop them.
    pub fn lapsed(&self) -> bool {
        let last = self.inner.last_heartbeat_ms.load(Ordering::Relaxed);
        now_ms().saturating_sub(last) > lease_ms(self.inner.lease)
    }

    /// At a clean stop: marks this instance no longer live and gives up its leader
    /// leases, so others take its jobs and roles at once instead of after the lease.
    pub async fn leave(&self) -> Result<()> {
        let db = self.inner.db.pool();
        sqlx::query("UPDATE instances SET heartbeat_ms = 0 WHERE name = $1 AND nonce = $2")
            .bind(self.name().to_owned())
            .bind(self.inner.nonce.clone())
            .execute(db)
            .await?;
        sqlx::query("UPDATE leader_leases SET until_ms = 0 WHERE holder = $1")
            .bind(self.name().to_owned())
            .execute(db)
            .await?;
        if let Ok(mut leading) = self.inner.leading_until.lock() {
            leading.clear();
        }
        Ok(())
    }

    /// Every instance the database knows, by name, with whether it is live.
    pub async fn instances(&self) -> Result<Vec<Instance>> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT name, addr, started_ms, heartbeat_ms, lease_ms FROM instances ORDER BY name",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let heartbeat_ms: i64 = row.try_get("heartbeat_ms")?;
                let lease_ms: i64 = row.try_get("lease_ms")?;
                Ok(Instance {
                    name: row.try_get("name")?,
                    addr: row.try_get("addr")?,
                    started_ms: row.try_get("started_ms")?,
                    heartbeat_ms,
                    lease_ms,
                    live: heartbeat_ms.saturating_add(lease_ms) >= now,
                })
            })
            .collect()
    }

    /// The live instances other than this one.
    pub async fn live_peers(&self) -> Result<Vec<Instance>> {
        Ok(self
            .instances()
            .await?
            .into_iter()
            .filter(|i| i.live && i.name != self.name())
            .collect())
    }

    /// Takes or renews the lease of `role`; true when this instance holds it now. A
    /// new holder gets the next term, recorded in `leader_terms`.
    pub async fn lead(&self, role: &'static str) -> Result<bool> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms(self.inner.lease));
        let db = self.inner.db.pool();
        // One statement: insert the first lease, renew our own, or take an expired one
        // (with the next term); a live lease of another holder is left alone.
        sqlx::query(
            "INSERT INTO leader_leases (role, holder, term, until_ms) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, \
             until_ms = excluded.until_ms, \
             term = CASE WHEN leader_leases.holder = excluded.holder \
                    THEN leader_leases.term ELSE leader_leases.term + 1 END \
             WHERE leader_leases.holder = excluded.holder OR leader_leases.until_ms < $4",
        )
        .bind(role.to_owned())
        .bind(self.name().to_owned())
        .bind(until)
        .bind(now)
        .execute(db)
        .await?;
        let row = sqlx::query("SELECT holder, term, until_ms FROM leader_leases WHERE role = $1")
            .bind(role.to_owned())
            .fetch_one(db)
            .await?;
        let holder: String = row.try_get("holder")?;
        let term: i64 = row.try_get("term")?;
        let held_until: i64 = row.try_get("until_ms")?;
        let ours = holder == self.name();
        if ours {
            sqlx::query(
                "INSERT INTO leader_terms (role, term, holder, since_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (role, term) DO NOTHING",
            )
            .bind(role.to_owned())
            .bind(term)
            .bind(holder)
            .bind(now)
            .execute(db)
            .await?;
        }
        // Act as leader until three quarters of the lease: stopped before anyone else
        // may take it.
        let act_until = if ours {
            held_until.saturating_sub(lease_ms(self.inner.lease) / 4)
        } else {
            0
        };
        if let Ok(mut leading) = self.inner.leading_until.lock() {
            leading.insert(role, act_until);
        }
        Ok(ours)
    }

    /// Whether this instance may act as the leader of `role` now (it took or renewed
    /// the lease recently enough; see [`Self::lead`]).
    pub fn is_leader(&self, role: &'static str) -> bool {
        let until = match self.inner.leading_until.lock() {
            Ok(leading) => leading.get(role).copied().unwrap_or(0),
            Err(_) => 0,
        };
        now_ms() < until
    }

    /// Every term of `role`, first first.
    pub async fn leader_terms(&self, role: &str) -> Result<Vec<LeaderTerm>> {
        let rows = sqlx::query(
            "SELECT role, term, holder, since_ms FROM leader_terms WHERE role = $1 ORDER BY term",
        )
        .bind(role.to_owned())
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LeaderTerm {
                    role: row.try_get("role")?,
                    term: row.try_get("term")?,
                    holder: row.try_get("holder")?,
                    since_ms: row.try_get("since_ms")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that a loaded machine does not let a lease lapse between two
    /// statements of a test; the tests wait it out where they need it lapsed.
    const LEASE: Duration = Duration::from_millis(1500);
    const PAST_LEASE: Duration = Duration::from_millis(1800);

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&pdx_ledger::db::sqlite_url(&dir.path().join("c.db")))
            .await
            .unwrap();
        db.migrate(pdx_ledger::db::ledger_migrations())
            .await
            .unwrap();
        db.migrate(crate::migrations()).await.unwrap();
        (dir, db)
    }

    #[test]
    fn instance_names_are_checked() {
        assert!(valid_instance_name("pdx-1"));
        assert!(valid_instance_name("host.example:8080"));
        assert!(!valid_instance_name(""));
        assert!(!valid_instance_name("a b"));
        assert!(!valid_instance_name("x'; DROP TABLE jobs; --"));
        assert!(!valid_instance_name(&"a".repeat(65)));
        assert!(valid_instance_name(&default_instance_name()));
    }

    #[tokio::test]
    async fn a_live_lease_is_not_taken_and_an_expired_one_is_with_the_next_term() {
        let (_dir, db) = db().await;
        let a = Cluster::new(db.clone(), "a".into(), LEASE);
        let b = Cluster::new(db.clone(), "b".into(), LEASE);
        assert!(a.lead(LEDGER_ROLE).await.unwrap());
        assert!(a.is_leader(LEDGER_ROLE));
        assert!(!b.lead(LEDGER_ROLE).await.unwrap(), "a's lease is live");
        assert!(!b.is_leader(LEDGER_ROLE));
        // a renews: same term.
        assert!(a.lead(LEDGER_ROLE).await.unwrap());
        tokio::time::sleep(PAST_LEASE).await;
        assert!(
            !a.is_leader(LEDGER_ROLE),
            "a stops acting before its lease ends"
        );
        assert!(b.lead(LEDGER_ROLE).await.unwrap(), "a's lease expired");
        assert!(!a.lead(LEDGER_ROLE).await.unwrap(), "b's lease is live now");
        // b leaves cleanly: a takes the role at once, in a third term.
        b.leave().await.unwrap();
        assert!(!b.is_leader(LEDGER_ROLE));
        assert!(a.lead(LEDGER_ROLE).await.unwrap());
        let terms = a.leader_terms(LEDGER_ROLE).await.unwrap();
        let holders: Vec<(i64, &str)> = terms.iter().map(|t| (t.term, t.holder.as_str())).collect();
        assert_eq!(holders, vec![(1, "a"), (2, "b"), (3, "a")]);
        assert!(terms[1].since_ms >= terms[0].since_ms + 1500);
    }

    /// A claim as the runner or the poller makes it.
    fn claim(c: &Cluster, take_own: bool) -> crate::store::jobs::Claim<'_> {
        crate::store::jobs::Claim {
            instance: c.name(),
            now: now_ms(),
            queued_before: now_ms(),
            take_own,
            limit: 1,
        }
    }

    #[tokio::test]
    async fn a_job_runs_on_one_instance_and_moves_only_when_its_instance_is_dead() {
        use crate::jobs::{JobInputs, Jobs};
        use crate::store::jobs::claim_one;
        let (_dir, db) = db().await;
        let a = Cluster::new(db.clone(), "a".into(), LEASE);
        let b = Cluster::new(db.clone(), "b".into(), LEASE);
        assert!(a.heartbeat().await.unwrap());
        assert!(b.heartbeat().await.unwrap());
        let jobs = Jobs::new(db.clone());
        let id = pdx_ids::JobId::random();
        let org = pdx_ids::OrgId::random();
        let mut conn = db.pool().acquire().await.unwrap();
        crate::jobs::insert(
            &mut conn,
            &id,
            "verify",
            &org,
            "x",
            &JobInputs::LedgerVerification,
        )
        .await
        .unwrap();
        drop(conn);
        // Fresh and queued, nobody's poll takes it: its instance is about to claim it.
        assert!(jobs.claim_unfinished(&b, false).await.unwrap().is_empty());
        assert!(jobs.claim_unfinished(&b, true).await.unwrap().is_empty());
        // It is a's once a claims it; b cannot take it while a is live, and neither
        // a's own poll takes what a runs.
        assert!(claim_one(db.pool(), &id, &claim(&a, true)).await.unwrap());
        assert!(!claim_one(db.pool(), &id, &claim(&b, true)).await.unwrap());
        assert!(jobs.claim_unfinished(&b, false).await.unwrap().is_empty());
        assert!(jobs.claim_unfinished(&a, false).await.unwrap().is_empty());
        // a's restart (take_own) takes it back.
        assert_eq!(jobs.claim_unfinished(&a, true).await.unwrap().len(), 1);
        assert!(jobs.claim_unfinished(&b, false).await.unwrap().is_empty());
        // A runner that lost nothing records its outcome only as the holder: b's
        // outcome for a's job is not recorded.
        jobs.finish_as(&id, Ok(serde_json::json!({"by": "b"})), Some("b"))
            .await;
        assert_eq!(
            jobs.get(&id).await.unwrap().unwrap().status,
            crate::JobStatus::Running
        );
        // a stops heartbeating (b goes on): once a's lease is past, b takes the job,
        // with its inputs, and a can no longer claim it.
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(b.heartbeat().await.unwrap());
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(b.heartbeat().await.unwrap());
        assert!(a.lapsed(), "a missed its lease");
        let taken = jobs.claim_unfinished(&b, false).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0.id, id);
        assert!(matches!(taken[0].1, Some(JobInputs::LedgerVerification)));
        assert!(!claim_one(db.pool(), &id, &claim(&a, false)).await.unwrap());
        jobs.finish_as(&id, Ok(serde_json::json!({"by": "a"})), Some("a"))
            .await;
        assert_eq!(
            jobs.get(&id).await.unwrap().unwrap().status,
            crate::JobStatus::Running
        );
        // The holder's outcome stands, and a finished job is nobody's to claim.
        jobs.finish_as(&id, Ok(serde_json::json!({"by": "b"})), Some("b"))
            .await;
        let done = jobs.get(&id).await.unwrap().unwrap();
        assert_eq!(done.result, Some(serde_json::json!({"by": "b"})));
        assert!(!claim_one(db.pool(), &id, &claim(&b, true)).await.unwrap());
        assert!(jobs.claim_unfinished(&b, true).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_job_left_queued_longer_than_a_lease_is_anyones() {
        use crate::jobs::{JobInputs, Jobs};
        let (_dir, db) = db().await;
        let a = Cluster::new(db.clone(), "a".into(), LEASE);
        assert!(a.heartbeat().await.unwrap());
        let jobs = Jobs::new(db.clone());
        let id = pdx_ids::JobId::random();
        let mut conn = db.pool().acquire().await.unwrap();
        crate::jobs::insert(
            &mut conn,
            &id,
            "verify",
            &pdx_ids::OrgId::random(),
            "x",
            &JobInputs::LedgerVerification,
        )
        .await
        .unwrap();
        drop(conn);
        tokio::time::sleep(PAST_LEASE).await;
        let taken = jobs.claim_unfinished(&a, false).await.unwrap();
        assert_eq!(taken.len(), 1, "its instance never claimed it");
    }

    #[tokio::test]
    async fn sqlite_serves_one_live_instance_and_a_name_is_one_process() {
        let (_dir, db) = db().await;
        let a = Cluster::new(db.clone(), "a".into(), LEASE);
        a.register("127.0.0.1:1").await.unwrap();
        // b waits out a's lease once; a heartbeats meanwhile, so b is refused.
        let b = Cluster::new(db.clone(), "b".into(), LEASE);
        let beating = {
            let a = a.clone();
            tokio::spawn(async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let _ = a.heartbeat().await;
                }
            })
        };
        let refused = b.register("127.0.0.1:2").await.unwrap_err();
        assert!(matches!(refused, SandboxError::Conflict(_)), "{refused}");
        assert!(refused.to_string().contains("PostgreSQL"), "{refused}");
        beating.await.unwrap();
        // A restart under the same name takes the row over; the old process's
        // heartbeat then finds another nonce.
        let a2 = Cluster::new(db.clone(), "a".into(), LEASE);
        a2.register("127.0.0.1:3").await.unwrap();
        assert!(!a.heartbeat().await.unwrap());
        assert!(a2.heartbeat().await.unwrap());
        let instances = a2.instances().await.unwrap();
        assert_eq!(instances.len(), 1);
        assert_eq!(instances[0].addr, "127.0.0.1:3");
        assert!(instances[0].live);
        // a2 stops cleanly: b starts at once.
        a2.leave().await.unwrap();
        assert!(a2.live_peers().await.unwrap().is_empty());
        let started = std::time::Instant::now();
        b.register("127.0.0.1:2").await.unwrap();
        assert!(
            started.elapsed() < LEASE,
            "b did not wait for a stopped server"
        );
        assert!(b.live_peers().await.unwrap().is_empty());
    }
}
