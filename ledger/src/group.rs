//! Group commit: concurrent writers share one transaction, and so one commit and one
//! fsync, and each is answered only once that commit is durable.
//!
//! Without it every write is its own transaction behind the one writer (the SQLite
//! write lock, the PostgreSQL `ledger_head` row lock), and a durable commit costs a
//! WAL fsync: the commit rate, not the work, bounds the write rate. With it:
//!
//! 1. A caller hands its work to the database's queue ([`Db::write_grouped`], or
//!    [`Ledger::append_now`] and [`Ledger::append_entry_now`] for a bare ledger entry) and waits for its reply.
//! 2. If no group is being written, the caller starts a flusher task; otherwise the
//!    running flusher takes the work with the next group. There is no timer: a group is
//!    whatever queued while the previous one committed (at most [`MAX_GROUP`] jobs), so
//!    a lone writer waits for nothing and a busy one shares each commit with its peers.
//! 3. The flusher opens one write transaction ([`Db::begin_write`]) and runs the jobs in
//!    queue order. Each job runs between `SAVEPOINT` and `RELEASE`; a job that returns
//!    an error is rolled back to its savepoint alone, so it leaves nothing behind and
//!    its peers carry on.
//! 4. Ledger entries are *staged*: the first append of a group locks the ledger head
//!    (as any append does), and every entry of the group (a job's, through
//!    [`Grouped::append`], or a bare one) is built in memory on that head, getting its
//!    seq and hash at once. A job that fails drops the entries it staged with its
//!    savepoint. Before the commit the flusher writes all of them with one multi-row
//!    insert per table and one head update, so a group of n payments costs one head
//!    lock and a handful of statements for the ledger, not 5n.
//! 5. The flusher commits once, then replies to every job: its own result if the commit
//!    succeeded (or if the job itself failed), the commit's error otherwise.
//!
//! So a reply of success means the job's rows and entries are committed, exactly as
//! with a transaction of its own: nothing acknowledged is lost after a crash. A crash
//! before the commit loses the whole group, none of which was acknowledged.
//!
//! Rules for work run in a group (each caller's closure):
//! - it uses only the connection it is given, and never waits on another write of this
//!   database (that write would queue behind the group it is running in: a deadlock);
//! - it appends to the ledger through [`Grouped::append`], never [`Ledger::append`] on
//!   the group's connection: staged entries are rows only at the commit, so SQL in the
//!   group does not see them, and an append beside them would take their seqs (the
//!   staged write then fails on the seq's uniqueness and nothing of the group is kept:
//!   the log cannot fork, but every writer of the group gets an error);
//! - all its appends go to the one ledger of the group (one log per database);
//! - it must not rely on being alone in its transaction: it sees the rows of the jobs
//!   before it in the same group, as it would if they had committed just before;
//! - it should be short: the whole group waits for it.
//!
//! The flusher is a spawned task, so a caller that goes away (an HTTP client that
//! disconnects) does not cancel its peers' commit; its own work is still committed, as a
//! transaction whose reply was lost would be. If the flusher itself dies (a panic, or
//! its runtime shutting down), the jobs it held are answered with [`DbError::GroupLost`]
//! and nothing of their group is committed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::AnyConnection;
use tokio::sync::oneshot;

use crate::db::{Db, DbError};
use crate::entry::Actor;
use crate::kinds::LedgerPayload;
use crate::store::{Appended, Ledger, LedgerError, NewEntry, Staged};

/// A boxed, sendable future borrowing for `'a` (the shape of a grouped job's work).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most jobs one group runs: bounds the latency one commit adds to the last job of
/// a burst. Merged ledger appends count one each.
pub const MAX_GROUP: usize = 512;

/// The queue of one database's pending grouped writes (shared by every clone of a [`Db`]).
#[derive(Default)]
pub(crate) struct Group {
    queue: Mutex<Queue>,
    /// Groups committed so far.
    groups: AtomicU64,
    /// Jobs those groups held (merged appends count one each).
    jobs: AtomicU64,
}

/// How much sharing the group commit achieved ([`Db::group_commits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Transactions committed by the group commit.
    pub groups: u64,
    /// Jobs (writes) they held: `jobs / groups` is the mean group size.
    pub jobs: u64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A flusher task is running and will take every queued job.
    flushing: bool,
}

enum Job {
    /// A caller's own transaction body.
    Work(Box<dyn Work>),
    /// One bare ledger entry ([`Ledger::append_now`]).
    Append(Append),
}

struct Append {
    ledger: Ledger,
    entry: NewEntry,
    reply: oneshot::Sender<Result<Appended, LedgerError>>,
}

/// Type-erased work: run it on the group's connection, or tell its caller it never ran.
trait Work: Send {
    fn run<'c>(self: Box<Self>, grouped: Grouped<'c>) -> BoxFuture<'c, Box<dyn Reply>>;
    fn abort(self: Box<Self>, error: &Arc<DbError>);
}

/// A job that ran, waiting for its group's commit before it answers its caller.
trait Reply: Send {
    fn failed(&self) -> bool;
    fn send(self: Box<Self>, commit: Result<(), &Arc<DbError>>);
}

struct Pending<T, E, F> {
    work: F,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Work for Pending<T, E, F>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: for<'c> FnOnce(Grouped<'c>) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, grouped: Grouped<'c>) -> BoxFuture<'c, Box<dyn Reply>> {
        let Pending { work, reply } = *self;
        Box::pin(async move {
            let result = work(grouped).await;
            Box::new(Done { result, reply }) as Box<dyn Reply>
        })
    }

    fn abort(self: Box<Self>, error: &Arc<DbError>) {
        let _ = self
            .reply
            .send(Err(E::from(DbError::Group(Arc::clone(error)))));
    }
}

struct Done<T, E> {
    result: Result<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E> Reply for Done<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn failed(&self) -> bool {
        self.result.is_err()
    }

    fn send(self: Box<Self>, commit: Result<(), &Arc<DbError>>) {
        let out = match (self.result, commit) {
            (Err(own), _) => Err(own),
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(e)) => Err(E::from(DbError::Group(Arc::clone(e)))),
        };
        // The caller may have gone away; its work is committed all the same.
        let _ = self.reply.send(out);
    }
}

impl Job {
    fn abort(self, error: &Arc<DbError>) {
        match self {
            Job::Work(work) => work.abort(error),
            Job::Append(append) => {
                let _ = append
                    .reply
                    .send(Err(DbError::Group(Arc::clone(error)).into()));
            }
        }
    }
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between statements, so a panic elsewhere while it was
        // held leaves nothing to repair.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job, and starts a flusher unless one is running.
    fn push(&self, db: &Db, job: Job) {
        let start = {
            let mut queue = self.lock();
            queue.jobs.push_back(job);
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            tokio::spawn(flush(db.clone()));
        }
    }
}

/// What grouped work gets: the group's connection, inside the group's transaction and
/// the job's savepoint, and the group's staged ledger appends.
pub struct Grouped<'c> {
    /// The group's connection, for the job's own SQL.
    pub conn: &'c mut AnyConnection,
    staging: &'c mut Staging,
}

impl Grouped<'_> {
    /// Stages a typed ledger entry: its seq and hash are known now, its rows are written
    /// with the group's before the commit (see the module docs).
    pub async fn append<P: LedgerPayload>(
        &mut self,
        ledger: &Ledger,
        actor: &Actor,
        payload: &P,
    ) -> Result<Appended, LedgerError> {
        let entry = NewEntry::typed(actor, payload)?;
        let staged = self.staging.open(self.conn, ledger).await?;
        ledger.stage(staged, entry)
    }
}

/// The ledger entries a group has staged, on the one ledger they go to.
#[derive(Default)]
struct Staging {
    staged: Option<(Ledger, Staged)>,
}

/// What a failing job must go back to: whether anything was staged before it, and where.
enum StagingMark {
    Empty,
    At(crate::store::StagedMark),
}

impl Staging {
    /// The staging area for `ledger`, opened (the head locked) on first use.
    async fn open(
        &mut self,
        conn: &mut AnyConnection,
        ledger: &Ledger,
    ) -> Result<&mut Staged, LedgerError> {
        match &self.staged {
            Some((kept, _)) if !kept.same_log(ledger) => {
                return Err(LedgerError::Corrupt(
                    "one group appends to one ledger; this database has two".into(),
                ));
            }
            Some(_) => {}
            None => {
                let staged = Ledger::stage_begin(conn, MAX_GROUP).await?;
                self.staged = Some((ledger.clone(), staged));
            }
        }
        match &mut self.staged {
            Some((_, staged)) => Ok(staged),
            None => Err(LedgerError::Corrupt("staging area vanished".into())),
        }
    }

    fn mark(&self) -> StagingMark {
        match &self.staged {
            None => StagingMark::Empty,
            Some((_, staged)) => StagingMark::At(staged.mark()),
        }
    }

    /// Forgets what was staged since `mark` (the job that staged it failed). If the
    /// head was first locked since, the lock itself went with the job's savepoint.
    fn reset(&mut self, mark: StagingMark) {
        match mark {
            StagingMark::Empty => self.staged = None,
            StagingMark::At(at) => {
                if let Some((_, staged)) = &mut self.staged {
                    staged.reset(at);
                }
            }
        }
    }

    /// Writes everything staged (before the group's commit).
    async fn write(&mut self, conn: &mut AnyConnection) -> Result<(), LedgerError> {
        if let Some((ledger, staged)) = self.staged.take() {
            ledger.write_staged(conn, staged).await?;
        }
        Ok(())
    }
}

impl Db {
    /// Runs `work` inside a group-committed write transaction and returns its result once
    /// that transaction is durable (see the module docs for the rules `work` follows).
    ///
    /// An error from `work` rolls back its own writes only. If the group's transaction
    /// cannot start or commit, the error is `E::from(DbError::Group(..))`.
    pub async fn write_grouped<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: for<'c> FnOnce(Grouped<'c>) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.group()
            .push(self, Job::Work(Box::new(Pending { work, reply })));
        answer.await.map_err(|_| E::from(DbError::GroupLost))?
    }

    /// Groups committed through this database handle's queue so far, and the jobs they
    /// held.
    pub fn group_commits(&self) -> GroupStats {
        let group = self.group();
        GroupStats {
            groups: group.groups.load(Ordering::Relaxed),
            jobs: group.jobs.load(Ordering::Relaxed),
        }
    }
}

impl Ledger {
    /// Appends one entry through the database's group commit, merged with the other
    /// bare appends queued at the same time; returns once it is durable.
    pub async fn append_entry_now(&self, entry: NewEntry) -> Result<Appended, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.db().group().push(
            self.db(),
            Job::Append(Append {
                ledger: self.clone(),
                entry,
                reply,
            }),
        );
        answer
            .await
            .map_err(|_| LedgerError::from(DbError::GroupLost))?
    }
}

/// Answers the jobs of a flusher that stops abnormally (a panic in a job, or its runtime
/// shutting down), and lets the next caller start a new flusher.
struct FlushGuard {
    db: Db,
    done: bool,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let orphans: Vec<Job> = {
            let mut queue = self.db.group().lock();
            queue.flushing = false;
            queue.jobs.drain(..).collect()
        };
        // Their replies' senders drop with them: each caller gets `GroupLost`.
        drop(orphans);
    }
}

/// Writes groups until the queue is empty.
async fn flush(db: Db) {
    let mut guard = FlushGuard {
        db: db.clone(),
        done: false,
    };
    loop {
        let jobs: Vec<Job> = {
            let mut queue = db.group().lock();
            if queue.jobs.is_empty() {
                queue.flushing = false;
                guard.done = true;
                return;
            }
            let n = queue.jobs.len().min(MAX_GROUP);
            queue.jobs.drain(..n).collect()
        };
        write_group(&db, jobs).await;
    }
}

const SAVEPOINT: &str = "SAVEPOINT pdx_group_job";
const RELEASE: &str = "RELEASE SAVEPOINT pdx_group_job";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT pdx_group_job";

async fn exec(conn: &mut AnyConnection, sql: &'static str) -> Result<(), Arc<DbError>> {
    sqlx::query(sql)
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| Arc::new(DbError::Sqlx(e)))
}

/// Ends a job's savepoint: released if it succeeded, rolled back (then released, so
/// savepoints do not pile up) if it failed.
async fn end_job(conn: &mut AnyConnection, failed: bool) -> Result<(), Arc<DbError>> {
    if failed {
        exec(conn, ROLLBACK_TO).await?;
    }
    exec(conn, RELEASE).await
}

/// Runs one group in one transaction and answers its jobs after the commit.
async fn write_group(db: &Db, jobs: Vec<Job>) {
    let mut tx = match db.begin_write().await {
        Ok(tx) => tx,
        Err(e) => {
            let e = Arc::new(e);
            jobs.into_iter().for_each(|job| job.abort(&e));
            return;
        }
    };
    let mut staging = Staging::default();
    let mut replies: Vec<Box<dyn Reply>> = Vec::with_capacity(jobs.len());
    let mut broken: Option<Arc<DbError>> = None;
    let mut jobs = jobs.into_iter();
    for job in jobs.by_ref() {
        let outcome = match job {
            Job::Work(work) => run_work(&mut tx, &mut staging, work, &mut replies).await,
            Job::Append(append) => stage_bare(&mut tx, &mut staging, append, &mut replies).await,
        };
        if let Err(e) = outcome {
            broken = Some(e);
            break;
        }
    }
    if broken.is_none()
        && let Err(e) = staging.write(&mut tx).await
    {
        broken = Some(Arc::new(match e {
            LedgerError::Db(e) => e,
            other => DbError::GroupLedger(other.to_string()),
        }));
    }
    if let Some(e) = broken {
        // A savepoint statement or the staged entries' write failed: the transaction is
        // in an unknown state, so nothing of the group is kept.
        drop(tx);
        jobs.for_each(|job| job.abort(&e));
        replies.into_iter().for_each(|r| r.send(Err(&e)));
        return;
    }
    match tx.commit().await {
        Ok(()) => {
            let group = db.group();
            group.groups.fetch_add(1, Ordering::Relaxed);
            group
                .jobs
                .fetch_add(replies.len() as u64, Ordering::Relaxed);
            replies.into_iter().for_each(|r| r.send(Ok(())));
        }
        Err(e) => {
            let e = Arc::new(e);
            replies.into_iter().for_each(|r| r.send(Err(&e)));
        }
    }
}

/// Runs one job between a savepoint and its release; a failing job's rows go with its
/// savepoint and its staged entries with the staging mark.
async fn run_work(
    conn: &mut AnyConnection,
    staging: &mut Staging,
    work: Box<dyn Work>,
    replies: &mut Vec<Box<dyn Reply>>,
) -> Result<(), Arc<DbError>> {
    if let Err(e) = exec(conn, SAVEPOINT).await {
        work.abort(&e);
        return Err(e);
    }
    let mark = staging.mark();
    let reply = work
        .run(Grouped {
            conn: &mut *conn,
            staging: &mut *staging,
        })
        .await;
    let failed = reply.failed();
    if failed {
        staging.reset(mark);
    }
    replies.push(reply);
    end_job(conn, failed).await
}

/// Stages one bare entry. Building it touches no row (only the first append of a group
/// locks the head), so it needs no savepoint: an entry that cannot be built fails
/// alone and leaves the staging area as it was.
async fn stage_bare(
    conn: &mut AnyConnection,
    staging: &mut Staging,
    append: Append,
    replies: &mut Vec<Box<dyn Reply>>,
) -> Result<(), Arc<DbError>> {
    let Append {
        ledger,
        entry,
        reply,
    } = append;
    let result = match staging.open(conn, &ledger).await {
        Ok(staged) => ledger.stage(staged, entry),
        // Locking the head failed: the transaction is no longer usable.
        Err(LedgerError::Db(e)) => {
            let e = Arc::new(e);
            let _ = reply.send(Err(DbError::Group(Arc::clone(&e)).into()));
            return Err(e);
        }
        Err(other) => Err(other),
    };
    replies.push(Box::new(Done { result, reply }));
    Ok(())
}
