//! A fast sequential read of `ledger_entries` on SQLite, for full verification.
//!
//! sqlx hands rows from its connection worker thread to the caller one at a time, and
//! the `Any` driver converts every value twice on the way (into sqlx-sqlite values, then
//! into `Any` values), with an allocation per column and a thread wake-up per row. That
//! cost about 10 µs a row and, not hashing, bounded full verification to ~100k
//! entries/s. This module instead opens its own **read-only** connection to the same
//! database file through the SQLite C API (the library sqlx already links) and copies
//! each page of rows straight into one reusable buffer.
//!
//! It only *reads*. Every check stays in [`crate::verify`], applied to exactly the field
//! values the sqlx path produces: column types are checked strictly (INTEGER, TEXT,
//! BLOB, as the sqlx decoders require), text must be UTF-8, hashes 32 bytes, and seqs
//! non-negative; a row sqlx would refuse to decode is refused here with an error too.
//!
//! One statement scans the table in seq order, so the whole walk reads one consistent
//! snapshot (a SQLite read transaction lasts as long as the statement is stepping).
//!
//! All `unsafe` of the crate is in this file; each block states what it relies on.

use std::ffi::{CStr, CString, c_int};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

use crate::db::{DbError, SQLITE_BUSY_TIMEOUT};
use crate::entry::Hash32;
use crate::page::EntryPage;
use crate::store::LedgerError;

/// The scan, in seq order; the column order is what [`EntryScanner::fill`] reads.
/// Negative seqs are skipped, as the paged sqlx reader (`seq >= from`, from 0) does.
const SCAN_SQL: &str = "SELECT seq, timestamp_ms, kind, actor_org, actor_key, payload, \
                        payload_hash, prev_hash, entry_hash FROM ledger_entries \
                        WHERE seq >= 0 ORDER BY seq";

/// Rows per page handed to the verifier: big enough to amortise the hand-over, small
/// enough that the verifier yields to the async runtime every few milliseconds.
const PAGE_ROWS: usize = 4096;

/// Pages pulled in flight ahead of the verifier.
const PAGES_AHEAD: usize = 2;

/// What the reader thread sends: a page, the end of the table, or why it stopped.
type Message = Result<Option<EntryPage>, LedgerError>;

/// Pages of a whole-table scan, read on a blocking thread while the caller verifies the
/// previous page (reading and hashing overlap on two cores).
pub(crate) struct PageStream {
    pages: tokio::sync::mpsc::Receiver<Message>,
    /// Pages the caller is done with, reused by the reader to save reallocating them.
    recycle: std::sync::mpsc::Sender<EntryPage>,
    ended: bool,
}

impl PageStream {
    /// Opens the database file at `path` for a scan; `None` if it cannot be opened this
    /// way (the caller then reads through sqlx).
    pub(crate) async fn open(path: PathBuf) -> Option<PageStream> {
        let scan = tokio::task::spawn_blocking(move || EntryScanner::open(&path))
            .await
            .ok()?
            .ok()?;
        Some(PageStream::spawn(scan))
    }

    /// Starts reading pages from `scan` on a blocking thread.
    fn spawn(mut scan: EntryScanner) -> PageStream {
        let (tx, pages) = tokio::sync::mpsc::channel::<Message>(PAGES_AHEAD);
        let (recycle, used) = std::sync::mpsc::channel::<EntryPage>();
        tokio::task::spawn_blocking(move || {
            loop {
                let mut page = used.try_recv().unwrap_or_default();
                let message = match scan.fill(&mut page, PAGE_ROWS) {
                    Ok(()) if page.is_empty() => Ok(None),
                    Ok(()) => Ok(Some(page)),
                    Err(e) => Err(e),
                };
                let last = !matches!(message, Ok(Some(_)));
                // A send fails only when the verifier has stopped listening (it found a
                // failure): then there is nothing left to do.
                if tx.blocking_send(message).is_err() || last {
                    return;
                }
            }
        });
        PageStream {
            pages,
            recycle,
            ended: false,
        }
    }

    /// The next page, or `None` once the whole table has been read.
    pub(crate) async fn next(&mut self) -> Result<Option<EntryPage>, LedgerError> {
        if self.ended {
            return Ok(None);
        }
        match self.pages.recv().await {
            Some(Ok(Some(page))) => Ok(Some(page)),
            Some(Ok(None)) => {
                self.ended = true;
                Ok(None)
            }
            Some(Err(e)) => Err(e),
            // The reader never closes the channel without saying why; if it did (a
            // panic), the rest of the table is unread and must not pass as its end.
            None => Err(LedgerError::Corrupt(
                "the database reader stopped before the end of the ledger".into(),
            )),
        }
    }

    /// Hands a finished page back for reuse.
    pub(crate) fn recycle(&self, page: EntryPage) {
        // If the reader is gone the page is simply dropped.
        let _ = self.recycle.send(page);
    }
}

/// A read-only connection stepping through [`SCAN_SQL`].
pub(crate) struct EntryScanner {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    done: bool,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX ("multi-thread" mode), in
// which one connection may move between threads as long as no two threads use it at
// once. The scanner owns the connection and its only statement, and every method takes
// `&mut self`, so it is used by one thread at a time.
unsafe impl Send for EntryScanner {}

impl EntryScanner {
    /// Opens `path` read-only and prepares the scan.
    pub(crate) fn open(path: &Path) -> Result<EntryScanner, LedgerError> {
        let c_path = path
            .to_str()
            .and_then(|p| CString::new(p).ok())
            .ok_or_else(|| LedgerError::Corrupt("database path is not UTF-8".into()))?;
        let mut db: *mut ffi::sqlite3 = ptr::null_mut();
        // SAFETY: c_path is NUL-terminated and outlives the call; `db` is a valid out
        // pointer. sqlite3_open_v2 allocates a handle even on most failures, which
        // `close_raw` then releases.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READONLY | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let Some(db) = NonNull::new(db) else {
            return Err(sqlite_error(rc, "cannot open the database".into()));
        };
        if rc != ffi::SQLITE_OK {
            let err = last_error(db, rc);
            close_raw(db);
            return Err(err);
        }
        let timeout = c_int::try_from(SQLITE_BUSY_TIMEOUT.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: db is an open connection.
        unsafe { ffi::sqlite3_busy_timeout(db.as_ptr(), timeout) };
        let sql = match CString::new(SCAN_SQL) {
            Ok(sql) => sql,
            Err(_) => {
                close_raw(db);
                return Err(LedgerError::Corrupt("scan SQL".into()));
            }
        };
        let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
        // SAFETY: db is open; sql is NUL-terminated (length -1: read to the NUL) and
        // outlives the call; stmt is a valid out pointer; the tail pointer may be null.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr(), -1, &mut stmt, ptr::null_mut())
        };
        match NonNull::new(stmt) {
            Some(stmt) if rc == ffi::SQLITE_OK => Ok(EntryScanner {
                db,
                stmt,
                done: false,
            }),
            _ => {
                let err = last_error(db, rc);
                close_raw(db);
                Err(err)
            }
        }
    }

    /// Replaces `page` with the next rows, at most `max_rows`; an empty page means the
    /// scan is over.
    pub(crate) fn fill(
        &mut self,
        page: &mut EntryPage,
        max_rows: usize,
    ) -> Result<(), LedgerError> {
        page.clear();
        while !self.done && page.len() < max_rows {
            // SAFETY: stmt is a prepared statement of this connection, not finalized.
            let rc = unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) };
            match rc {
                ffi::SQLITE_ROW => self.read_row(page)?,
                ffi::SQLITE_DONE => self.done = true,
                _ => return Err(last_error(self.db, rc)),
            }
        }
        Ok(())
    }

    fn read_row(&mut self, page: &mut EntryPage) -> Result<(), LedgerError> {
        let seq = self.integer(0, "seq")?;
        let seq = u64::try_from(seq).map_err(|_| LedgerError::Corrupt("negative seq".into()))?;
        let timestamp_ms = self.integer(1, "timestamp_ms")?;
        let mut hashes = [Hash32::ZERO; 3];
        for (slot, (col, name)) in
            hashes
                .iter_mut()
                .zip([(6, "payload_hash"), (7, "prev_hash"), (8, "entry_hash")])
        {
            *slot = Hash32::from_slice(self.blob(col, name)?)
                .map_err(|_| LedgerError::Corrupt(format!("{name} is not 32 bytes")))?;
        }
        page.push(
            seq,
            timestamp_ms,
            [
                self.text(2, "kind")?,
                self.text(3, "actor_org")?,
                self.text(4, "actor_key")?,
                self.text(5, "payload")?,
            ],
            hashes,
        );
        Ok(())
    }

    fn check_type(&self, col: c_int, want: c_int, name: &str) -> Result<(), LedgerError> {
        // SAFETY: stmt is positioned on a row (called only after SQLITE_ROW) and `col` is
        // one of the scan's nine result columns.
        let got = unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), col) };
        if got == want {
            Ok(())
        } else {
            Err(LedgerError::Corrupt(format!(
                "{name} has SQLite type {got}, expected {want}"
            )))
        }
    }

    fn integer(&self, col: c_int, name: &str) -> Result<i64, LedgerError> {
        self.check_type(col, ffi::SQLITE_INTEGER, name)?;
        // SAFETY: as in check_type; the value is an INTEGER, so no conversion happens.
        Ok(unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), col) })
    }

    /// The column's bytes, valid until the statement next steps (which needs `&mut
    /// self`, so the borrow checker enforces it).
    fn bytes(&self, col: c_int, is_text: bool) -> &[u8] {
        // SAFETY: as in check_type. The type was checked first, so sqlite3_column_text /
        // _blob return the stored value unconverted, and sqlite3_column_bytes (called
        // after, as SQLite requires) is its length. The pointer stays valid until the
        // next step/reset/finalize of the statement, all of which take `&mut self`, so
        // the returned slice (tied to `&self`) cannot outlive it. A zero-length value may
        // come back as a null pointer, which is never dereferenced.
        unsafe {
            let data: *const u8 = if is_text {
                ffi::sqlite3_column_text(self.stmt.as_ptr(), col)
            } else {
                ffi::sqlite3_column_blob(self.stmt.as_ptr(), col).cast()
            };
            let len =
                usize::try_from(ffi::sqlite3_column_bytes(self.stmt.as_ptr(), col)).unwrap_or(0);
            if data.is_null() || len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(data, len)
            }
        }
    }

    fn text(&self, col: c_int, name: &str) -> Result<&str, LedgerError> {
        self.check_type(col, ffi::SQLITE_TEXT, name)?;
        std::str::from_utf8(self.bytes(col, true))
            .map_err(|_| LedgerError::Corrupt(format!("{name} is not UTF-8")))
    }

    fn blob(&self, col: c_int, name: &str) -> Result<&[u8], LedgerError> {
        self.check_type(col, ffi::SQLITE_BLOB, name)?;
        Ok(self.bytes(col, false))
    }
}

impl Drop for EntryScanner {
    fn drop(&mut self) {
        // SAFETY: stmt belongs to db and is finalized exactly once, here.
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
        close_raw(self.db);
    }
}

fn close_raw(db: NonNull<ffi::sqlite3>) {
    // SAFETY: db was returned by sqlite3_open_v2 and is closed exactly once; its only
    // statement (if any) has been finalized.
    unsafe { ffi::sqlite3_close(db.as_ptr()) };
}

fn last_error(db: NonNull<ffi::sqlite3>, rc: c_int) -> LedgerError {
    // SAFETY: db is a connection handle; sqlite3_errmsg returns a NUL-terminated string
    // owned by SQLite, valid until the next call on db, and copied out at once.
    let message = unsafe {
        let msg = ffi::sqlite3_errmsg(db.as_ptr());
        if msg.is_null() {
            String::new()
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        }
    };
    sqlite_error(rc, message)
}

fn sqlite_error(code: c_int, message: String) -> LedgerError {
    LedgerError::Db(DbError::Sqlite { code, message })
}
