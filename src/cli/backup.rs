//! `pdx backup --out FILE`: an encrypted, consistent archive of the database and the
//! data directory, taken while the server runs (XT Art.35–36: backup; GD18 Art.27).
//! `pdx restore` ([`crate::cli::restore`]) reads it back and verifies it.
//!
//! # What the archive holds
//!
//! A tar stream, compressed with zstd and encrypted under the backup key
//! ([`crate::cli::backup_format`] has the byte layout), with these entries in this order:
//!
//! ```text
//! db/pdx.db | db/postgres.jsonl   the database snapshot (first, so restore learns its kind)
//! keys/ledger.key                 the ledger signing key (restore verifies the ledger with it,
//!                                 and the restored server keeps signing with it)
//! keys/zones-kek.key              the zones' key-encryption key (wherever the configuration
//!                                 keeps it; restore puts it in the data directory)
//! keys/<name>.key                 the data directory's other keys (pseudonym.key, admin.key, …;
//!                                 never the backup key)
//! zones/<path>                    the zone files as they are on disk: sealed (raw, deid,
//!                                 quarantine, released, the FHE key indexes) with
//!                                 zones/keyring.json; FHE server keys and ciphertexts as stored
//! manifest.json                   last: every entry above with its size and BLAKE3, the
//!                                 database kind, the snapshot's ledger head (size, last seq,
//!                                 Merkle root) and the pdx version
//! ```
//!
//! # Consistency while the server writes
//!
//! 1. **The database first, as one snapshot.** SQLite: `VACUUM INTO` a new file, which
//!    copies the database as of one read transaction while writers carry on (WAL). The
//!    live file is opened read-only. PostgreSQL: a logical dump in one `REPEATABLE READ,
//!    READ ONLY` transaction ([`crate::cli::backup_pg`] argues why not `pg_dump`).
//! 2. **The facts, from that snapshot.** The live dataset versions with their file and
//!    content hash, the quarantined and released outputs with theirs, the uploads waiting
//!    for their ingest job, the files destructions removed, and the ledger head
//!    ([`Facts::read`]) are read from the snapshot file (SQLite) or in the dump's
//!    transaction (PostgreSQL), so they describe exactly the database in the archive.
//! 3. **Then the zone files.** This is consistent because of how pdx writes them:
//!    - every writer puts a file in place whole (a temporary, fsynced, renamed) *before*
//!      it commits the row that refers to it: a version's file before its certificate's
//!      transaction (`sandbox/src/versions.rs`), an output's before its row
//!      (`sandbox/src/runs.rs`), a release's copy before the release
//!      (`sandbox/src/review.rs`). So every file the snapshot refers to was complete
//!      before the snapshot was taken;
//!    - version, quarantine and released files are content-addressed (named by their
//!      BLAKE3, `algorithms/src/deid/storage.rs`) and never rewritten: writing a name again
//!      writes the same bytes. So what is copied after the snapshot is what the snapshot
//!      refers to. The backup does not take this on trust: after copying, it hashes the
//!      plaintext of every file the snapshot refers to (opening its seal, which
//!      authenticates every segment) and compares it with the snapshot's hash;
//!    - the only thing that removes such a file is a destruction
//!      (`sandbox/src/destruction.rs`), which deletes the files after its tombstone
//!      commits. A destruction committed after the snapshot can delete a file the snapshot
//!      still calls live: the copy then misses it, and the backup starts again with a new
//!      snapshot (which has the tombstone), up to three times;
//!    - files the snapshot does not refer to (written after it, or FHE working files) are
//!      copied as found and are orphans to the restored database, as after a crash;
//!      temporaries (hidden names, `.tmp`, `.part`, `.upload`, and `scratch/`, a dry
//!      run's dummy data) are skipped;
//!    - files a destruction recorded as deleted are left out even if a failed deletion
//!      left them on disk, so a backup never carries destroyed data onward (GD21 Art.40).
//!
//! # Outcome
//!
//! The archive is written to a temporary file beside `--out` and renamed over it only
//! when complete, so a failed backup never replaces a good one. The database snapshot is
//! written unencrypted only into a private (0700) work directory beside `--out`, removed
//! as soon as it is archived. Exit 0: the archive is complete and every file matched the
//! snapshot. Exit 2 ([`EXIT_UNRESTORABLE`]): the archive was written, but a version or
//! output file is missing or does not match its certificate or release hash (named by
//! ids and hashes), so `pdx restore` will refuse it. Exit 1: nothing was written.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use pdx_ledger::Hash32;
use pdx_ledger::db::{Backend, Db, now_ms};
use pdx_ledger::merkle::{Blake3Hasher, CompactRange};
use pdx_sandbox::config::ZONES_KEK_FILE_NAME;
use pdx_seal::{AtRest, KEYRING_FILE_NAME, Kek, Keyring, SealError};
use serde::Deserialize;
use sqlx::{AnyConnection, Row};

use super::backup_format::{
    BackupKey, DatabaseKind, EncryptingWriter, KEY_FILE_NAME, LedgerHead, MANIFEST_ENTRY,
    MANIFEST_FORMAT, Manifest, ManifestFile, load_or_create_key,
};
use crate::config::Config;

/// `pdx backup` arguments.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The archive to write; an existing file is replaced only once the new archive is
    /// complete.
    #[arg(long)]
    pub out: PathBuf,
    /// The backup key: 32 bytes (64 hex digits). Default `<data dir>/backup.key`, created
    /// with mode 0600 on the first backup. Keep a copy away from the data directory:
    /// without it no archive can be read.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

/// Exit code when the archive was written but will not restore (see the module docs).
pub const EXIT_UNRESTORABLE: i32 = 2;

/// Snapshots taken before giving up on files deleted while they were copied.
const ATTEMPTS: u32 = 3;

/// A live (not destroyed) dataset version of the snapshot.
pub(crate) struct VersionFact {
    pub(crate) dataset_id: String,
    pub(crate) version: i64,
    /// Relative to the zones root.
    pub(crate) file_path: String,
    pub(crate) content_hash: String,
    pub(crate) certificate_seq: i64,
}

/// A quarantined or released output of the snapshot.
pub(crate) struct OutputFact {
    pub(crate) id: String,
    pub(crate) status: String,
    /// Relative to the zones root.
    pub(crate) file_path: String,
    pub(crate) output_hash: String,
    pub(crate) release_id: Option<String>,
    pub(crate) release_seq: Option<i64>,
}

/// A file a tombstone lists (`dataset_destructions.files_json`).
#[derive(Deserialize)]
struct TombstoneFile {
    path: String,
    #[serde(default)]
    deleted: bool,
}

/// What a database says about the zone files and the ledger: read from the backup's
/// snapshot, and again by restore from the restored database.
pub(crate) struct Facts {
    pub(crate) ledger: LedgerHead,
    pub(crate) versions: Vec<VersionFact>,
    pub(crate) outputs: Vec<OutputFact>,
    /// Uploads waiting for their ingest job, relative to the zones root.
    pub(crate) pending: Vec<String>,
    /// Files destructions deleted and no live version holds, relative to the zones root.
    pub(crate) destroyed: BTreeSet<String>,
}

impl Facts {
    /// Reads the facts on `conn` (inside the caller's snapshot).
    pub(crate) async fn read(conn: &mut AnyConnection) -> anyhow::Result<Facts> {
        let head = sqlx::query("SELECT size, frontier FROM ledger_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .context("reading the ledger head")?;
        let size = u64::try_from(head.try_get::<i64, _>("size")?)
            .context("the ledger head has a negative size")?;
        let frontier: Vec<u8> = head.try_get("frontier")?;
        anyhow::ensure!(
            frontier.len().is_multiple_of(32),
            "the ledger head's frontier is malformed"
        );
        let hashes: Vec<[u8; 32]> = frontier
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        let root = CompactRange::<Blake3Hasher>::from_parts(size, hashes)?.root();
        let ledger = LedgerHead {
            size,
            last_seq: size.checked_sub(1),
            root: Hash32(root).to_hex(),
        };

        let mut versions = Vec::new();
        for r in sqlx::query(
            "SELECT v.dataset_id, v.version, v.file_path, v.content_hash, v.certificate_seq \
             FROM dataset_versions v WHERE NOT EXISTS (SELECT 1 FROM dataset_destructions x \
             WHERE x.dataset_id = v.dataset_id AND x.version = v.version) \
             ORDER BY v.dataset_id, v.version",
        )
        .fetch_all(&mut *conn)
        .await
        .context("reading the dataset versions")?
        {
            versions.push(VersionFact {
                dataset_id: r.try_get("dataset_id")?,
                version: r.try_get("version")?,
                file_path: r.try_get("file_path")?,
                content_hash: r.try_get("content_hash")?,
                certificate_seq: r.try_get("certificate_seq")?,
            });
        }

        let mut outputs = Vec::new();
        for r in sqlx::query(
            "SELECT id, status, file_path, output_hash, release_id, release_seq FROM outputs \
             WHERE status IN ('quarantined', 'released') ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await
        .context("reading the outputs")?
        {
            outputs.push(OutputFact {
                id: r.try_get("id")?,
                status: r.try_get("status")?,
                file_path: r.try_get("file_path")?,
                output_hash: r.try_get("output_hash")?,
                release_id: r.try_get("release_id")?,
                release_seq: r.try_get("release_seq")?,
            });
        }

        // An ingest job's upload is `raw/<job id>.pending` (`sandbox/src/versions.rs`).
        let mut pending = Vec::new();
        for r in sqlx::query(
            "SELECT id FROM jobs WHERE kind = $1 AND status IN ('queued', 'running') ORDER BY id",
        )
        .bind(pdx_sandbox::versions::INGEST_JOB_KIND.to_string())
        .fetch_all(&mut *conn)
        .await
        .context("reading the jobs")?
        {
            let id: String = r.try_get("id")?;
            pending.push(format!("raw/{id}.pending"));
        }

        // A file a destruction deleted, unless a live version holds it again (content
        // addressing: the same bytes uploaded later land on the same path).
        let mut live: BTreeSet<String> = BTreeSet::new();
        for v in &versions {
            live.insert(v.file_path.clone());
            live.insert(format!(
                "fhe/index/{}/{}.parquet",
                v.dataset_id, v.content_hash
            ));
        }
        let mut destroyed = BTreeSet::new();
        for r in sqlx::query("SELECT files_json FROM dataset_destructions")
            .fetch_all(&mut *conn)
            .await
            .context("reading the destructions")?
        {
            let text: String = r.try_get("files_json")?;
            let files: Vec<TombstoneFile> =
                serde_json::from_str(&text).context("a tombstone's file list is malformed")?;
            for f in files {
                if f.deleted && !live.contains(&f.path) {
                    destroyed.insert(f.path);
                }
            }
        }
        Ok(Facts {
            ledger,
            versions,
            outputs,
            pending,
            destroyed,
        })
    }
}

/// The database snapshot and what it says.
struct Snapshot {
    /// The snapshot file (SQLite database or PostgreSQL dump).
    db_file: PathBuf,
    facts: Facts,
    taken_ms: i64,
}

/// SQLite: `VACUUM INTO` a file in `dir`, then the facts from that file.
async fn snapshot_sqlite(url: &str, dir: &Path) -> anyhow::Result<Snapshot> {
    let taken_ms = now_ms();
    let live = Db::connect_with(&super::ledger::read_only_url(url)?, 1)
        .await
        .context("opening the database read-only")?;
    let file = dir.join("pdx.db");
    let path = file
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the work directory {} is not UTF-8", dir.display()))?
        .to_string();
    // VACUUM INTO reads the database in one read transaction and writes only the new
    // file: the copy is the database as of one commit, however busy the server is.
    let vacuum = format!("VACUUM INTO '{}'", path.replace('\'', "''"));
    let done = sqlx::query(sqlx::AssertSqlSafe(vacuum))
        .execute(live.pool())
        .await;
    live.close().await;
    done.context("taking the database snapshot (VACUUM INTO)")?;
    let snap = Db::connect_with(&format!("sqlite://{path}?mode=rw"), 1)
        .await
        .context("opening the snapshot")?;
    let facts = match snap.pool().acquire().await {
        Ok(mut conn) => Facts::read(&mut conn).await,
        Err(e) => Err(anyhow::Error::new(e).context("opening the snapshot")),
    };
    snap.close().await;
    Ok(Snapshot {
        db_file: file,
        facts: facts?,
        taken_ms,
    })
}

/// PostgreSQL: the facts and the dump in one REPEATABLE READ, READ ONLY transaction.
async fn snapshot_postgres(url: &str, dir: &Path) -> anyhow::Result<Snapshot> {
    let taken_ms = now_ms();
    let db = Db::connect_with(url, 1)
        .await
        .context("connecting to the database")?;
    let file = dir.join("postgres.jsonl");
    let dumped = dump_postgres(&db, &file).await;
    db.close().await;
    Ok(Snapshot {
        db_file: file,
        facts: dumped?,
        taken_ms,
    })
}

async fn dump_postgres(db: &Db, file: &Path) -> anyhow::Result<Facts> {
    // The snapshot is taken at the transaction's first query; every query after it, the
    // facts and every table of the dump, reads that same snapshot.
    let mut tx = db
        .pool()
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .context("starting the snapshot transaction")?;
    let facts = Facts::read(&mut tx).await?;
    let bar = super::progress_bar(0, "dumping");
    let dumped = super::backup_pg::dump(&mut tx, file, &bar).await;
    bar.finish_and_clear();
    dumped.context("dumping the database")?;
    tx.rollback().await?;
    Ok(facts)
}

/// The key files to archive: the ledger key (wherever the configuration puts it) as
/// `keys/ledger.key`, and the data directory's other `*.key` files, never a backup key.
fn key_files(config: &Config, backup_key: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let ledger = config.ledger_key_path();
    anyhow::ensure!(
        ledger.is_file(),
        "no ledger key at {}: the archive needs it (restore verifies the ledger with it)",
        ledger.display()
    );
    let zones_kek = &config.sandbox.zones_kek_file;
    anyhow::ensure!(
        zones_kek.is_file(),
        "no zones KEK at {}: the archive needs it (the zone files are sealed under it)",
        zones_kek.display()
    );
    let mut keys = vec![
        ("keys/ledger.key".to_string(), ledger.clone()),
        (format!("keys/{ZONES_KEK_FILE_NAME}"), zones_kek.clone()),
    ];
    let skip: Vec<PathBuf> = [ledger.as_path(), zones_kek.as_path(), backup_key]
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let entries = std::fs::read_dir(&config.data_dir)
        .with_context(|| format!("reading {}", config.data_dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !name.ends_with(".key")
            || name == "ledger.key"
            || name == ZONES_KEK_FILE_NAME
            || name == KEY_FILE_NAME
        {
            continue;
        }
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        if std::fs::canonicalize(&path).is_ok_and(|c| skip.contains(&c)) {
            continue;
        }
        keys.push((format!("keys/{name}"), path));
    }
    keys.sort();
    Ok(keys)
}

/// The sealing handle of a data directory's zones: its keyring, opened under the KEK
/// in `kek_file`. Zone files are sealed; certificates and release hashes are of their
/// plaintext, so the checks below hash through this.
pub fn zones_at_rest(zones_root: &Path, kek_file: &Path) -> anyhow::Result<AtRest> {
    let kek = Kek::load(kek_file)
        .with_context(|| format!("loading the zones' KEK {}", kek_file.display()))?;
    let keyring = Keyring::open(&zones_root.join(KEYRING_FILE_NAME), &kek)
        .context("opening the zones' keyring")?;
    Ok(AtRest::sealed(keyring))
}

/// What a zone file's plaintext hashes to, for comparing with certificates and release
/// hashes: its BLAKE3 (hex), or `unreadable: <why>` when its seal does not open (an
/// altered, truncated or foreign file: it matches no hash, and the report says why);
/// None when the file is gone. Every segment is authenticated on the way.
pub(crate) fn plaintext_hash(at_rest: &AtRest, path: &Path) -> anyhow::Result<Option<String>> {
    match at_rest.hash(path) {
        Ok((hash, _)) => Ok(Some(hex::encode(hash))),
        Err(SealError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(SealError::Io(e)) => {
            Err(anyhow::Error::new(e).context(format!("reading {}", path.display())))
        }
        Err(e) => Ok(Some(format!("unreadable: {e}"))),
    }
}

/// A name pdx gives files still being written, or hidden.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".upload")
}

/// Every regular file under the zones root, relative to it with `/`, in name order;
/// temporaries, dry runs' scratch files, symbolic links and destroyed files left out.
fn zone_files(root: &Path, destroyed: &BTreeSet<String>) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed since it was listed (an emptied FHE index directory).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("reading {}", dir.display())));
            }
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                eprintln!(
                    "warning: skipped a file whose name is not UTF-8 in {}",
                    dir.display()
                );
                continue;
            };
            // `scratch/` holds a dry run's dummy data for the length of the run.
            if is_temporary(&name) || (prefix.is_empty() && name == "scratch") {
                continue;
            }
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push((rel, entry.path()));
            } else if kind.is_file() && !destroyed.contains(&rel) {
                out.push((rel, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads exactly `remaining` bytes and hashes them; a file that ends early is an error
/// (the tar header already promised its length).
struct HashingReader<R> {
    inner: R,
    remaining: u64,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived; run the backup again",
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A regular-file tar header of `len` bytes, mode 0600.
fn entry_header(len: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(len);
    header.set_mode(0o600);
    header
}

/// Appends the file at `path` as `entry`; returns its size and BLAKE3 (hex), or None if
/// there is no file there any more.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    entry: &str,
    path: &Path,
) -> anyhow::Result<Option<(u64, String)>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())));
        }
    };
    let len = file.metadata()?.len();
    let mut header = entry_header(len);
    let mut reader = HashingReader {
        inner: file,
        remaining: len,
        hasher: blake3::Hasher::new(),
    };
    tar.append_data(&mut header, entry, &mut reader)
        .with_context(|| format!("archiving {}", path.display()))?;
    Ok(Some((
        len,
        hex::encode(reader.hasher.finalize().as_bytes()),
    )))
}

/// What one archive attempt did.
struct ArchiveReport {
    /// Entries archived (database, keys, zone files).
    files: usize,
    /// Their bytes, before compression.
    bytes: u64,
    /// Version and output files the snapshot refers to that were not there.
    vanished: Vec<String>,
    /// Version and output files whose bytes do not match the snapshot's hash.
    mismatched: Vec<String>,
    /// Uploads waiting for their ingest job that were not there.
    pending_missing: Vec<String>,
    /// The snapshot's ledger head.
    ledger: LedgerHead,
}

/// Everything an archive attempt needs, moved into its blocking task.
struct ArchiveInput {
    partial: PathBuf,
    key: BackupKey,
    kind: DatabaseKind,
    snapshot: Snapshot,
    keys: Vec<(String, PathBuf)>,
    zones_root: PathBuf,
    /// Opens the sealed zone files, for the checks against the snapshot's hashes.
    at_rest: AtRest,
}

/// Writes the archive to `input.partial` (blocking I/O).
fn write_archive(input: ArchiveInput) -> anyhow::Result<ArchiveReport> {
    let ArchiveInput {
        partial,
        key,
        kind,
        snapshot,
        keys,
        zones_root,
        at_rest,
    } = input;
    let facts = &snapshot.facts;
    let zones = zone_files(&zones_root, &facts.destroyed)?;
    let total: u64 = zones
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let encrypted = EncryptingWriter::new(BufWriter::with_capacity(1 << 20, file), &key)?;
    let compressed = zstd::stream::write::Encoder::new(encrypted, 3)?;
    let mut tar = tar::Builder::new(compressed);
    let mut listed: Vec<ManifestFile> = Vec::new();

    let (bytes, blake3) = append_file(&mut tar, kind.entry(), &snapshot.db_file)?
        .ok_or_else(|| anyhow::anyhow!("the database snapshot vanished from the work directory"))?;
    listed.push(ManifestFile {
        path: kind.entry().to_string(),
        bytes,
        blake3,
    });
    for (name, path) in &keys {
        let (bytes, blake3) = append_file(&mut tar, name, path)?
            .ok_or_else(|| anyhow::anyhow!("the key file {} vanished", path.display()))?;
        listed.push(ManifestFile {
            path: name.clone(),
            bytes,
            blake3,
        });
    }
    let bar = super::progress_bar(total, "archiving");
    let mut copied: BTreeMap<&str, String> = BTreeMap::new();
    for (rel, path) in &zones {
        let name = format!("zones/{rel}");
        // Gone since it was listed: nothing to archive (checked against the facts below).
        if let Some((bytes, blake3)) = append_file(&mut tar, &name, path)? {
            bar.inc(bytes);
            copied.insert(rel.as_str(), blake3.clone());
            listed.push(ManifestFile {
                path: name,
                bytes,
                blake3,
            });
        }
    }
    bar.finish_and_clear();
    // The files the snapshot refers to, by the hash of their plaintext (zone files are
    // sealed; certificates and release hashes are of the plaintext). Files are never
    // rewritten, so the file hashed here is the one archived; one gone since (a
    // destruction) counts as vanished.
    let mut plain: BTreeMap<&str, String> = BTreeMap::new();
    let referenced = facts
        .versions
        .iter()
        .map(|v| v.file_path.as_str())
        .chain(facts.outputs.iter().map(|o| o.file_path.as_str()));
    for rel in referenced {
        if copied.contains_key(rel)
            && let Some(hash) = plaintext_hash(&at_rest, &zones_root.join(rel))?
        {
            plain.insert(rel, hash);
        }
    }

    let mut report = ArchiveReport {
        files: listed.len(),
        bytes: listed.iter().map(|f| f.bytes).sum(),
        vanished: Vec::new(),
        mismatched: Vec::new(),
        pending_missing: Vec::new(),
        ledger: facts.ledger.clone(),
    };
    for v in &facts.versions {
        let what = format!("dataset {} version {}", v.dataset_id, v.version);
        match plain.get(v.file_path.as_str()) {
            None => report.vanished.push(format!(
                "{what}: its file (content hash {})",
                v.content_hash
            )),
            Some(h) if *h != v.content_hash => report.mismatched.push(format!(
                "{what}: the file's BLAKE3 is {h}, its certificate says {}",
                v.content_hash
            )),
            Some(_) => {}
        }
    }
    for o in &facts.outputs {
        let what = format!("output {} ({})", o.id, o.status);
        match plain.get(o.file_path.as_str()) {
            None => report
                .vanished
                .push(format!("{what}: its file (output hash {})", o.output_hash)),
            Some(h) if *h != o.output_hash => report.mismatched.push(format!(
                "{what}: the file's BLAKE3 is {h}, its output hash is {}",
                o.output_hash
            )),
            Some(_) => {}
        }
    }
    for p in &facts.pending {
        if !copied.contains_key(p.as_str()) {
            report.pending_missing.push(p.clone());
        }
    }

    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        pdx_version: env!("CARGO_PKG_VERSION").to_string(),
        created_ms: snapshot.taken_ms,
        database: kind,
        ledger: facts.ledger.clone(),
        files: listed,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    let mut header = entry_header(json.len() as u64);
    tar.append_data(&mut header, MANIFEST_ENTRY, json.as_slice())?;
    let compressed = tar.into_inner()?;
    let encrypted = compressed.finish()?;
    let buffered = encrypted.finish()?;
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(report)
}

/// Runs `pdx backup`; returns the exit code (0, or [`EXIT_UNRESTORABLE`]).
pub async fn run(config: &Config, args: BackupArgs) -> anyhow::Result<i32> {
    let kind = match Backend::from_url(&config.database_url)? {
        Backend::Sqlite => DatabaseKind::Sqlite,
        Backend::Postgres => DatabaseKind::Postgres,
    };
    let zones_root = config.data_dir.join("zones");
    anyhow::ensure!(
        zones_root.is_dir(),
        "no zones in {}: is it a pdx data directory? (--data-dir)",
        config.data_dir.display()
    );
    let key_path = args
        .key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(KEY_FILE_NAME));
    let (key, created) = load_or_create_key(&key_path)?;
    if created {
        eprintln!(
            "created the backup key {} (mode 0600): keep a copy away from this machine; \
             without it no archive can be read",
            key_path.display()
        );
    }
    let keys = key_files(config, &key_path)?;
    let at_rest = zones_at_rest(&zones_root, &config.sandbox.zones_kek_file)?;
    let out = std::path::absolute(&args.out)
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let parent = out
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    // Beside the archive, so the final rename stays on one file system; private (0700).
    let work = tempfile::Builder::new()
        .prefix(".pdx-backup-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))?;
    let partial = work.path().join("archive.partial");

    let mut attempt = 1;
    let report = loop {
        let dir = work.path().join(format!("snapshot-{attempt}"));
        std::fs::create_dir(&dir)?;
        let snapshot = match kind {
            DatabaseKind::Sqlite => snapshot_sqlite(&config.database_url, &dir).await?,
            DatabaseKind::Postgres => snapshot_postgres(&config.database_url, &dir).await?,
        };
        let input = ArchiveInput {
            partial: partial.clone(),
            key: key.clone(),
            kind,
            snapshot,
            keys: keys.clone(),
            zones_root: zones_root.clone(),
            at_rest: at_rest.clone(),
        };
        let written = tokio::task::spawn_blocking(move || write_archive(input))
            .await
            .context("the archive task")?;
        // The unencrypted snapshot goes as soon as it is archived (or failed to be).
        let _ = std::fs::remove_dir_all(dir);
        let report = written?;
        if report.vanished.is_empty() || attempt == ATTEMPTS {
            break report;
        }
        eprintln!(
            "note: {} file(s) the snapshot refers to were deleted while the backup copied \
             them (a destruction); taking a new snapshot",
            report.vanished.len()
        );
        attempt += 1;
    };
    std::fs::rename(partial, &out).with_context(|| format!("writing {}", out.display()))?;
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    drop(work);

    for p in &report.pending_missing {
        eprintln!(
            "warning: the upload {p} was waiting for its ingest job and is not in the \
             archive: after a restore that job fails, and the provider uploads again"
        );
    }
    for m in report.vanished.iter().chain(&report.mismatched) {
        eprintln!("WARNING: {m}");
    }
    println!(
        "wrote {}: {} files, {} bytes before compression, the {} database, the ledger at {} \
         entries (root {}); backup key id {}",
        out.display(),
        report.files,
        report.bytes,
        kind.as_str(),
        report.ledger.size,
        report.ledger.root,
        key.id_hex()
    );
    if !report.vanished.is_empty() || !report.mismatched.is_empty() {
        eprintln!(
            "the archive was written, but pdx restore will refuse it: the files above are \
             missing or do not match their certificate or release hashes"
        );
        return Ok(EXIT_UNRESTORABLE);
    }
    Ok(0)
}
