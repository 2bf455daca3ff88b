//! `pdx restore FILE --data-dir DIR [--database-url URL] --key-file KEY`: unpacks a
//! `pdx backup` archive ([`crate::cli::backup`]) into an empty or new data directory
//! (and, for a PostgreSQL archive, an empty database), and verifies it before it says
//! so (XT Art.35–36; GD18 Art.27).
//!
//! # Order of checks
//!
//! 1. Before anything is written: the key file reads, the archive's header is a pdx
//!    archive written under that key (a wrong key is named here), `DIR` is absent or
//!    empty, and a PostgreSQL target's schema is empty. A SQLite archive goes to
//!    `DIR/pdx.db` (so `--database-url` is left unset); a PostgreSQL archive needs
//!    `--database-url`.
//! 2. Unpacking: each chunk is authenticated before its bytes are used; every entry must
//!    be a regular file with a plain name under `db/`, `keys/` or `zones/` (nothing can
//!    land outside `DIR`), written once with mode 0600 and hashed as written; the stream
//!    must end with its last chunk. Then the manifest must list exactly the entries
//!    unpacked, with their sizes and BLAKE3.
//! 3. The database: SQLite's snapshot is already `DIR/pdx.db`; PostgreSQL's dump is
//!    loaded ([`crate::cli::backup_pg::load`]).
//! 4. Verification, reading the restored database: the ledger verifies with the
//!    archive's ledger key (the verifier of `pdx ledger verify`) and is the ledger the
//!    archive recorded (same size and Merkle root); every live dataset version's file
//!    has the BLAKE3 its certificate on the ledger (`AssetCertificate.content_hash`, at
//!    `dataset_versions.certificate_seq`) states, and `dataset_versions.content_hash`
//!    agrees (the hash of the file's plaintext: zone files are sealed, and are opened
//!    with the archive's keyring under its zones KEK, which authenticates every
//!    segment); every released output's file has the hash its `Release` entry (at
//!    `outputs.release_seq`) states, and `outputs.output_hash` agrees; a quarantined
//!    output's file matches `outputs.output_hash`.
//!
//! Any failure after step 1 removes everything restore wrote: `DIR` itself if restore
//! created it, else its contents (it was empty), and every table and function restore
//! created in the PostgreSQL schema (which was empty). The first mismatch is named by
//! ids, paths and hashes only, never by a data value.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;
use pdx_ledger::Ledger;
use pdx_ledger::db::{Backend, Db, sqlite_url};
use pdx_ledger::kinds::{AssetCertificate, Release, decode};
use pdx_ledger::note::NoteSigner;
use pdx_ledger::verify::FailureKind;
use pdx_sandbox::config::ZONES_KEK_FILE_NAME;
use pdx_seal::KEYRING_FILE_NAME;

use super::backup::Facts;
use super::backup_format::{
    DatabaseKind, DecryptingReader, MANIFEST_ENTRY, MANIFEST_FORMAT, Manifest, ManifestFile,
    POSTGRES_ENTRY, SQLITE_ENTRY, load_key,
};
use crate::config::Config;

/// `pdx restore` arguments (the target is the global `--data-dir`, and for a PostgreSQL
/// archive `--database-url`).
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The archive `pdx backup` wrote.
    pub file: PathBuf,
    /// The backup key the archive was written with.
    #[arg(long)]
    pub key_file: PathBuf,
}

/// Where the dump of a PostgreSQL archive waits for its load, inside `DIR`.
const POSTGRES_DUMP_FILE: &str = ".pdx-restore-postgres.jsonl";

/// The largest manifest read (it lists every file: about 200 bytes each).
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// Where the database goes.
enum Target {
    /// The SQLite file `DIR/pdx.db`.
    Sqlite(PathBuf),
    /// An empty PostgreSQL database (the URL).
    Postgres(String),
}

impl Target {
    fn kind(&self) -> DatabaseKind {
        match self {
            Target::Sqlite(_) => DatabaseKind::Sqlite,
            Target::Postgres(_) => DatabaseKind::Postgres,
        }
    }
}

fn target_database(config: &Config) -> anyhow::Result<Target> {
    let file = config.data_dir.join("pdx.db");
    if config.database_url == sqlite_url(&file) {
        return Ok(Target::Sqlite(file));
    }
    match Backend::from_url(&config.database_url)? {
        Backend::Postgres => Ok(Target::Postgres(config.database_url.clone())),
        Backend::Sqlite => anyhow::bail!(
            "restore puts a SQLite database at <data dir>/pdx.db: leave --database-url unset \
             (or give a postgres:// URL for a PostgreSQL archive)"
        ),
    }
}

/// Accepts an empty directory or creates a new one; says whether it created it.
fn prepare_dir(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => {
            anyhow::ensure!(meta.is_dir(), "{} is not a directory", dir.display());
            let mut entries =
                std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            anyhow::ensure!(
                entries.next().is_none(),
                "refusing to restore into {}: it is not empty (restore writes only into an \
                 empty or new directory)",
                dir.display()
            );
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(true)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", dir.display()))),
    }
}

/// Removes what restore wrote in `dir`: the directory if restore created it, else what
/// is in it (it was empty).
fn clean_dir(dir: &Path, created: bool) {
    let result = if created {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::read_dir(dir).and_then(|entries| {
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        })
    };
    if let Err(e) = result {
        eprintln!(
            "warning: could not remove everything restore wrote in {}: {e}",
            dir.display()
        );
    }
}

/// Where an archive entry goes.
enum Slot {
    Manifest,
    Database(DatabaseKind),
    /// A key file, by name (in `DIR`).
    Key(String),
    /// A zone file, relative to the zones root.
    Zone(String),
}

/// The slot of an entry name, or None for a name restore does not write. Only plain
/// names: no empty, `.`, `..` or hidden parts, no backslash or NUL, so nothing lands
/// outside `DIR`.
fn classify(name: &str) -> Option<Slot> {
    match name {
        MANIFEST_ENTRY => return Some(Slot::Manifest),
        SQLITE_ENTRY => return Some(Slot::Database(DatabaseKind::Sqlite)),
        POSTGRES_ENTRY => return Some(Slot::Database(DatabaseKind::Postgres)),
        _ => {}
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.starts_with('.') || p.contains('\\') || p.contains('\0'))
    {
        return None;
    }
    match parts.as_slice() {
        ["keys", file] if file.ends_with(".key") => Some(Slot::Key((*file).to_string())),
        ["zones", rest @ ..] if !rest.is_empty() => Some(Slot::Zone(rest.join("/"))),
        _ => None,
    }
}

/// Counts and hashes what is written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(written) = buf.get(..n) {
            self.hasher.update(written);
        }
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes an entry to a new file at `dest` (mode 0600, never over an existing file);
/// returns its size and BLAKE3 (hex).
fn write_entry(entry: &mut impl Read, dest: &Path) -> anyhow::Result<(u64, String)> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    let mut w = HashingWriter {
        inner: BufWriter::new(file),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    io::copy(entry, &mut w)?;
    let HashingWriter {
        inner,
        hasher,
        bytes,
    } = w;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((bytes, hex::encode(hasher.finalize().as_bytes())))
}

/// What the archive held, as written into `DIR`.
struct Unpacked {
    manifest: Manifest,
    /// Every entry but the manifest, as written: size and BLAKE3.
    files: BTreeMap<String, ManifestFile>,
    /// The database entry's kind and where it was written.
    database: (DatabaseKind, PathBuf),
    /// Zone files (relative to the zones root) and their BLAKE3.
    zones: BTreeMap<String, String>,
}

fn unpack_entries<R: Read>(
    reader: DecryptingReader<R>,
    dir: &Path,
    expected: DatabaseKind,
) -> anyhow::Result<Unpacked> {
    let decoder = zstd::stream::read::Decoder::new(reader).context("reading the archive")?;
    let mut archive = tar::Archive::new(decoder);
    let mut files: BTreeMap<String, ManifestFile> = BTreeMap::new();
    let mut zones: BTreeMap<String, String> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut database: Option<(DatabaseKind, PathBuf)> = None;
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        anyhow::ensure!(
            manifest.is_none(),
            "the archive is malformed: entries follow its manifest"
        );
        anyhow::ensure!(
            entry.header().entry_type().is_file(),
            "the archive is malformed: it holds something other than a regular file"
        );
        let name = entry
            .path()
            .context("the archive is malformed: an entry name")?
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("the archive is malformed: an entry name is not UTF-8"))?
            .to_string();
        anyhow::ensure!(
            !files.contains_key(&name),
            "the archive is malformed: it holds {name} twice"
        );
        let Some(slot) = classify(&name) else {
            anyhow::bail!("the archive is malformed: it holds an unexpected entry {name:?}");
        };
        let dest = match &slot {
            Slot::Manifest => {
                anyhow::ensure!(
                    entry.size() <= MAX_MANIFEST_BYTES,
                    "the archive's manifest is too large"
                );
                let mut text = Vec::new();
                entry.read_to_end(&mut text)?;
                manifest =
                    Some(serde_json::from_slice(&text).context("the manifest is malformed")?);
                continue;
            }
            Slot::Database(kind) => {
                anyhow::ensure!(
                    database.is_none(),
                    "the archive is malformed: it holds two databases"
                );
                if *kind != expected {
                    anyhow::bail!(match kind {
                        DatabaseKind::Sqlite => {
                            "this archive holds a SQLite database: restore it without \
                             --database-url (it becomes <data dir>/pdx.db)"
                        }
                        DatabaseKind::Postgres => {
                            "this archive holds a PostgreSQL database: restore it with \
                             --database-url naming an empty database"
                        }
                    });
                }
                match kind {
                    DatabaseKind::Sqlite => dir.join("pdx.db"),
                    DatabaseKind::Postgres => dir.join(POSTGRES_DUMP_FILE),
                }
            }
            Slot::Key(file) => dir.join(file),
            Slot::Zone(rel) => dir.join("zones").join(rel),
        };
        let (bytes, blake3) = write_entry(&mut entry, &dest)?;
        match slot {
            Slot::Database(kind) => database = Some((kind, dest)),
            Slot::Zone(rel) => {
                zones.insert(rel, blake3.clone());
            }
            Slot::Key(_) | Slot::Manifest => {}
        }
        files.insert(
            name.clone(),
            ManifestFile {
                path: name,
                bytes,
                blake3,
            },
        );
    }
    // To the end of the stream: the last chunk authenticated, nothing after it.
    let mut decoder = archive.into_inner();
    io::copy(&mut decoder, &mut io::sink()).context("reading the archive")?;
    anyhow::ensure!(
        decoder.finish().into_inner().is_done(),
        "the archive is truncated"
    );
    let manifest = manifest.ok_or_else(|| anyhow::anyhow!("the archive has no manifest"))?;
    let database = database.ok_or_else(|| anyhow::anyhow!("the archive holds no database"))?;
    Ok(Unpacked {
        manifest,
        files,
        database,
        zones,
    })
}

/// Unpacks into `dir`; a failure the decryption saw is reported in its own words.
fn unpack<R: Read>(
    reader: DecryptingReader<R>,
    dir: &Path,
    expected: DatabaseKind,
    bar: &ProgressBar,
) -> anyhow::Result<Unpacked> {
    let failure = reader.failure();
    let result = unpack_entries(reader, dir, expected);
    bar.finish_and_clear();
    result.map_err(|e| match failure.get() {
        Some(why) => anyhow::anyhow!("{why}"),
        None => e,
    })
}

/// The manifest lists exactly the entries unpacked, with their sizes and hashes.
fn check_manifest(u: &Unpacked) -> anyhow::Result<()> {
    let m = &u.manifest;
    anyhow::ensure!(
        m.format == MANIFEST_FORMAT,
        "the archive's manifest is in format {:?}; this pdx reads {MANIFEST_FORMAT}",
        m.format
    );
    anyhow::ensure!(
        m.database == u.database.0,
        "the manifest says the archive holds a {} database, but it holds a {} one",
        m.database.as_str(),
        u.database.0.as_str()
    );
    let listed: BTreeMap<&str, &ManifestFile> =
        m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    anyhow::ensure!(
        listed.len() == m.files.len(),
        "the manifest lists a file twice"
    );
    for (path, got) in &u.files {
        match listed.get(path.as_str()) {
            None => anyhow::bail!("{path} is in the archive but not in its manifest"),
            Some(want) if want.bytes != got.bytes || want.blake3 != got.blake3 => anyhow::bail!(
                "{path} holds {} bytes with BLAKE3 {}; the manifest says {} bytes with BLAKE3 {}",
                got.bytes,
                got.blake3,
                want.bytes,
                want.blake3
            ),
            Some(_) => {}
        }
    }
    if let Some(missing) = m.files.iter().find(|f| !u.files.contains_key(&f.path)) {
        anyhow::bail!("{} is in the manifest but not in the archive", missing.path);
    }
    Ok(())
}

/// What the verification covered.
struct Verified {
    entries: u64,
    root: String,
    versions: usize,
    releases: usize,
}

/// Step 4 of the module docs, on the restored database.
async fn verify(db: &Db, dir: &Path, u: &Unpacked, config: &Config) -> anyhow::Result<Verified> {
    let key_path = dir.join("ledger.key");
    let key = pdx_ledger::signing::load(&key_path)
        .context("reading the archive's ledger key")?
        .verifier();
    // `Ledger` holds a signer for appends; verifying signs nothing, so a throwaway key,
    // never written anywhere, stands in (as in `pdx ledger verify`).
    let throwaway = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let ledger = Ledger::new(
        db.clone(),
        NoteSigner::new(key.name(), throwaway)?,
        config.ledger.clone(),
    );
    let bar = super::progress_bar(0, "verifying");
    let result = ledger
        .verify_with(&key, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let report = match result? {
        Ok(report) => report,
        Err(f) if f.kind == FailureKind::KeyMismatch => {
            anyhow::bail!("the restored ledger does not verify: {f}")
        }
        Err(f) => anyhow::bail!(
            "the restored ledger does not verify: first bad seq {}: {}",
            f.seq,
            f.reason
        ),
    };
    let head = &u.manifest.ledger;
    let root = report.root.to_hex();
    anyhow::ensure!(
        report.entries == head.size && root == head.root,
        "the restored ledger ({} entries, root {root}) is not the one the archive recorded \
         ({} entries, root {})",
        report.entries,
        head.size,
        head.root
    );

    let facts = {
        let mut conn = db.pool().acquire().await?;
        Facts::read(&mut conn).await?
    };
    for v in &facts.versions {
        let what = format!("dataset {} version {}", v.dataset_id, v.version);
        let seq = u64::try_from(v.certificate_seq)
            .with_context(|| format!("{what}: a negative certificate seq"))?;
        let entry = ledger.entry(seq).await?.ok_or_else(|| {
            anyhow::anyhow!("{what}: its certificate (seq {seq}) is not on the ledger")
        })?;
        let certificate: AssetCertificate = decode(&entry)
            .ok_or_else(|| anyhow::anyhow!("{what}: seq {seq} is not a certificate"))?;
        anyhow::ensure!(
            certificate.dataset_id == v.dataset_id
                && u64::try_from(v.version).ok() == Some(certificate.version),
            "{what}: seq {seq} certifies dataset {} version {}",
            certificate.dataset_id,
            certificate.version
        );
        let certified = certificate.content_hash.to_hex();
        anyhow::ensure!(
            certified == v.content_hash,
            "{what}: the database says content hash {}, its certificate (seq {seq}) says \
             {certified}",
            v.content_hash
        );
        match u.zones.get(&v.file_path) {
            None => anyhow::bail!(
                "{what}: its file {} is not in the archive (certificate content hash \
                 {certified})",
                v.file_path
            ),
            Some(h) if *h != certified => anyhow::bail!(
                "{what}: the file's BLAKE3 is {h}, its certificate (seq {seq}) says {certified}"
            ),
            Some(_) => {}
        }
    }
    let mut releases = 0;
    for o in &facts.outputs {
        let what = format!("output {}", o.id);
        let expected = if o.status == "released" {
            let (Some(release_id), Some(seq)) = (&o.release_id, o.release_seq) else {
                anyhow::bail!("{what}: released without a release id or ledger seq");
            };
            let seq =
                u64::try_from(seq).with_context(|| format!("{what}: a negative release seq"))?;
            let entry = ledger.entry(seq).await?.ok_or_else(|| {
                anyhow::anyhow!("{what}: its release (seq {seq}) is not on the ledger")
            })?;
            let release: Release = decode(&entry)
                .ok_or_else(|| anyhow::anyhow!("{what}: seq {seq} is not a release"))?;
            anyhow::ensure!(
                release.release_id == *release_id,
                "{what}: seq {seq} is release {}, not {release_id}",
                release.release_id
            );
            let released = release.output_hash.to_hex();
            anyhow::ensure!(
                released == o.output_hash,
                "{what}: the database says output hash {}, its release (seq {seq}) says \
                 {released}",
                o.output_hash
            );
            releases += 1;
            released
        } else {
            o.output_hash.clone()
        };
        match u.zones.get(&o.file_path) {
            None => anyhow::bail!(
                "{what} ({}): its file {} is not in the archive (hash {expected})",
                o.status,
                o.file_path
            ),
            Some(h) if *h != expected => anyhow::bail!(
                "{what} ({}): the file's BLAKE3 is {h}, its {} says {expected}",
                o.status,
                if o.status == "released" {
                    "release"
                } else {
                    "output record"
                }
            ),
            Some(_) => {}
        }
    }
    Ok(Verified {
        entries: report.entries,
        root,
        versions: facts.versions.len(),
        releases,
    })
}

/// Replaces the archive hash of every sealed zone file by the hash of its plaintext
/// (what certificates and release hashes state), opening the seals with the restored
/// keyring under the restored KEK (`DIR/zones-kek.key`); a seal that does not open
/// (a wrong or missing KEK, a damaged file) refuses the archive.
async fn plaintext_hashes(mut unpacked: Unpacked, dir: &Path) -> anyhow::Result<Unpacked> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let zones_root = dir.join("zones");
        if !zones_root.join(KEYRING_FILE_NAME).is_file() {
            // An archive from before zone files were sealed: its hashes are already of
            // the plaintext (`pdx zones seal` seals the restored files).
            return Ok(unpacked);
        }
        let at_rest = super::backup::zones_at_rest(&zones_root, &dir.join(ZONES_KEK_FILE_NAME))?;
        for (rel, hash) in unpacked.zones.iter_mut() {
            let path = zones_root.join(rel.as_str());
            if rel.as_str() == KEYRING_FILE_NAME || !pdx_seal::is_sealed(&path)? {
                continue;
            }
            *hash = super::backup::plaintext_hash(&at_rest, &path)?
                .ok_or_else(|| anyhow::anyhow!("{rel} vanished while it was restored"))?;
        }
        Ok(unpacked)
    })
    .await
    .context("the hashing task")?
}

/// Steps 2–4 of the module docs; the caller cleans up on failure.
async fn restore_into<R: Read + Send + 'static>(
    reader: DecryptingReader<R>,
    dir: &Path,
    target: &Target,
    postgres: Option<&Db>,
    config: &Config,
    bar: ProgressBar,
) -> anyhow::Result<(Unpacked, Verified)> {
    let unpack_dir = dir.to_path_buf();
    let expected = target.kind();
    let unpacked = tokio::task::spawn_blocking(move || unpack(reader, &unpack_dir, expected, &bar))
        .await
        .context("the unpacking task")??;
    check_manifest(&unpacked)?;
    let unpacked = plaintext_hashes(unpacked, dir).await?;
    let ours = env!("CARGO_PKG_VERSION");
    if unpacked.manifest.pdx_version != ours {
        eprintln!(
            "note: the archive was written by pdx {}; this is pdx {ours}",
            unpacked.manifest.pdx_version
        );
    }
    let verified = match (target, postgres) {
        (Target::Postgres(_), Some(db)) => {
            super::backup_pg::create_schema(db).await?;
            let bar = super::progress_bar(0, "loading");
            let loaded = super::backup_pg::load(
                db,
                &unpacked.database.1,
                &unpacked.manifest.pdx_version,
                &bar,
            )
            .await;
            bar.finish_and_clear();
            loaded.context("loading the database")?;
            std::fs::remove_file(&unpacked.database.1)?;
            verify(db, dir, &unpacked, config).await?
        }
        (Target::Sqlite(file), _) => {
            let db = Db::connect_with(&sqlite_url(file), 2)
                .await
                .context("opening the restored database")?;
            let verified = verify(&db, dir, &unpacked, config).await;
            db.close().await;
            verified?
        }
        (Target::Postgres(_), None) => anyhow::bail!("no connection to the target database"),
    };
    Ok((unpacked, verified))
}

/// Runs `pdx restore`: Ok only once everything verified; on any refusal nothing restore
/// wrote is left.
pub async fn run(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let dir = config.data_dir.clone();
    let target = target_database(config)?;
    let key = load_key(&args.key_file)?;
    let file =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let bar = super::progress_bar(file.metadata()?.len(), "restoring");
    let reader = DecryptingReader::open(bar.wrap_read(BufReader::new(file)), &key)?;
    let created = prepare_dir(&dir)?;
    let postgres = match &target {
        Target::Postgres(url) => {
            let connected = Db::connect_with(url, 4)
                .await
                .context("connecting to the target database");
            let db = match connected {
                Ok(db) => db,
                Err(e) => {
                    clean_dir(&dir, created);
                    return Err(e);
                }
            };
            if let Err(e) = super::backup_pg::ensure_empty(&db).await {
                db.close().await;
                clean_dir(&dir, created);
                return Err(e);
            }
            Some(db)
        }
        Target::Sqlite(_) => None,
    };
    let restored = restore_into(reader, &dir, &target, postgres.as_ref(), config, bar).await;
    let result = match restored {
        Ok((unpacked, verified)) => {
            println!(
                "restored {} into {}: {} files and the {} database; the ledger verifies \
                 ({} entries, root {}); {} dataset version(s) match their certificates and {} \
                 released output(s) their releases",
                args.file.display(),
                dir.display(),
                unpacked.files.len(),
                unpacked.database.0.as_str(),
                verified.entries,
                verified.root,
                verified.versions,
                verified.releases
            );
            Ok(())
        }
        Err(e) => {
            if let Some(db) = &postgres
                && let Err(ce) = super::backup_pg::clear(db).await
            {
                eprintln!("warning: could not drop what restore created in the database: {ce:#}");
            }
            clean_dir(&dir, created);
            Err(e)
        }
    };
    if let Some(db) = postgres {
        db.close().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_under_db_keys_and_zones_are_written() {
        assert!(matches!(classify("manifest.json"), Some(Slot::Manifest)));
        assert!(matches!(
            classify("db/pdx.db"),
            Some(Slot::Database(DatabaseKind::Sqlite))
        ));
        assert!(matches!(classify("keys/ledger.key"), Some(Slot::Key(k)) if k == "ledger.key"));
        assert!(
            matches!(classify("zones/deid/ab/x.parquet"), Some(Slot::Zone(z)) if z == "deid/ab/x.parquet")
        );
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "zones/../../x",
            "zones/./x",
            "zones//x",
            "zones",
            "zones/.hidden",
            "keys/ledger.txt",
            "keys/a/b.key",
            "db/other.db",
            "other/x",
            "zones/a\\..\\b",
        ] {
            assert!(classify(bad).is_none(), "{bad} would be written");
        }
    }

    #[test]
    fn a_failed_restore_leaves_the_directory_as_it_found_it() {
        let scratch = tempfile::tempdir().unwrap();
        let new = scratch.path().join("new");
        assert!(prepare_dir(&new).unwrap());
        std::fs::create_dir_all(new.join("zones/deid")).unwrap();
        std::fs::write(new.join("zones/deid/x"), b"x").unwrap();
        clean_dir(&new, true);
        assert!(!new.exists());
        let empty = scratch.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(!prepare_dir(&empty).unwrap());
        std::fs::write(empty.join("pdx.db"), b"x").unwrap();
        std::fs::create_dir_all(empty.join("zones/raw")).unwrap();
        clean_dir(&empty, false);
        assert!(empty.is_dir());
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        std::fs::write(empty.join("mine"), b"x").unwrap();
        let err = prepare_dir(&empty).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
    }
}
