//! A read-only object store over zone files, so DataFusion reads sealed files.
//!
//! Zone files are sealed at rest (AES-256-GCM in 64 KiB segments, see `pdx_seal`), so
//! DataFusion's own `file://` store would hand the Parquet reader ciphertext. A
//! [`ZoneStore`] serves the files below one directory through a [`pdx_seal::AtRest`]
//! handle instead: every read is a plaintext range read that decrypts (and
//! authenticates) only the segments it touches, and every size is the **plaintext**
//! length, so the Parquet reader finds the footer at the end of the plaintext and asks
//! for exactly the column chunks it needs. Nothing is decrypted to disk.
//!
//! The store is registered in a session's runtime under `pdx-zone://<name>/`
//! ([`register`], [`register_file`]); a listing table whose URL names one file of it
//! then infers its schema and scans through it. It never writes: every write method
//! fails with `NotSupported`. Its `Display` and `Debug` name neither its directory nor
//! any key, and its errors carry no data values (the sealing layer's errors are
//! value-free; operating system errors name no path).

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::object_store::path::{Path, PathPart};
use datafusion::object_store::{
    Attributes, Error, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use pdx_seal::{AtRest, SealError};

/// The URL scheme zone stores are registered under (`pdx-zone://<name>/`).
pub(crate) const ZONE_SCHEME: &str = "pdx-zone";

/// The store's name in its errors (never its directory).
const STORE: &str = "ZoneStore";

/// A read-only object store over the regular files below one directory, read through
/// [`AtRest`] (see the module documentation). The object path `a/b/c.parquet` is the
/// file `<root>/a/b/c.parquet`; its segments are taken as file names, unencoded.
#[derive(Clone)]
pub(crate) struct ZoneStore {
    /// The directory object paths are relative to.
    root: PathBuf,
    /// How the files are kept: sealed (the server) or plain.
    at_rest: AtRest,
    /// The one object this store serves, when it serves one (a grant's store): every
    /// other file under the root is not found, so a store rooted at a content-address
    /// shard never shows the other versions filed there.
    only: Option<Path>,
}

impl fmt::Display for ZoneStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the root: error messages must not show where the zones are.
        f.write_str(STORE)
    }
}

impl fmt::Debug for ZoneStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the root nor anything of the keyring: only whether files are sealed.
        f.debug_struct(STORE)
            .field("sealed", &self.at_rest.is_sealed())
            .finish_non_exhaustive()
    }
}

impl ZoneStore {
    /// A store over the files below `root`, read through `at_rest`.
    pub(crate) fn new(root: PathBuf, at_rest: AtRest) -> ZoneStore {
        ZoneStore {
            root,
            at_rest,
            only: None,
        }
    }

    /// The same store serving only the object `location`.
    pub(crate) fn serving_only(mut self, location: Path) -> ZoneStore {
        self.only = Some(location);
        self
    }

    /// The file `location` names: the root joined with its segments. A segment that is
    /// empty, `.`, `..`, or holds a `/` or NUL (anything but one plain file name) is
    /// refused: a valid object path has none, and this keeps every path below the root
    /// whatever a caller built.
    fn resolve(&self, location: &Path) -> Result<PathBuf> {
        let mut path = self.root.clone();
        for part in location.parts() {
            let segment = part.as_ref();
            let mut components = FsPath::new(segment).components();
            let single_normal = matches!(
                (components.next(), components.next()),
                (Some(Component::Normal(_)), None)
            );
            if !single_normal || segment.contains(['/', '\0']) {
                return Err(generic("the object path is not a plain relative path"));
            }
            path.push(segment);
        }
        Ok(path)
    }

    /// The metadata of the regular file `path` named `location` (blocking): its
    /// plaintext length and modification time. Symbolic links, directories and special
    /// files are not objects of this store.
    fn object_meta(&self, location: &Path, path: &FsPath) -> Result<ObjectMeta> {
        if self.only.as_ref().is_some_and(|only| only != location) {
            return Err(not_found(location, "not served by this store"));
        }
        let metadata = std::fs::symlink_metadata(path).map_err(|e| io_error(location, e))?;
        if !metadata.is_file() {
            return Err(not_found(location, "not a regular file"));
        }
        let size = self
            .at_rest
            .len(path)
            .map_err(|e| seal_error(location, e))?;
        let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(ObjectMeta {
            location: location.clone(),
            last_modified: modified.into(),
            size,
            e_tag: None,
            version: None,
        })
    }

    /// [`ObjectStore::get_opts`], blocking.
    fn get_blocking(&self, location: &Path, options: &GetOptions) -> Result<GetResult> {
        let path = self.resolve(location)?;
        let meta = self.object_meta(location, &path)?;
        options.check_preconditions(&meta)?;
        if options.head {
            return Ok(get_result(meta, 0..0, Vec::new()));
        }
        let range = match &options.range {
            Some(range) => range.as_range(meta.size).map_err(generic)?,
            None => 0..meta.size,
        };
        let data = if range.is_empty() {
            Vec::new()
        } else {
            self.at_rest
                .read_range(&path, range.clone())
                .map_err(|e| seal_error(location, e))?
        };
        Ok(get_result(meta, range, data))
    }

    /// [`ObjectStore::get_ranges`], blocking: the file is opened once (a sealed file's
    /// final segment is authenticated once), then each range is read from it.
    fn ranges_blocking(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let path = self.resolve(location)?;
        let meta = self.object_meta(location, &path)?;
        // The same rules as a single `get_range`: non-empty, starting inside the file,
        // an end past it cut to the end.
        let ranges = ranges
            .iter()
            .map(|range| {
                GetRange::Bounded(range.clone())
                    .as_range(meta.size)
                    .map_err(generic)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut reader = self
            .at_rest
            .open(&path)
            .map_err(|e| seal_error(location, e))?;
        ranges
            .into_iter()
            .map(|range| {
                let size = usize::try_from(range.end - range.start)
                    .map_err(|_| generic("a range does not fit in memory"))?;
                let mut out = vec![0u8; size];
                reader
                    .seek(SeekFrom::Start(range.start))
                    .and_then(|_| reader.read_exact(&mut out))
                    // A sealed reader's `Read` carries its `SealError` inside the I/O
                    // error; `From` takes it back out.
                    .map_err(|e| seal_error(location, SealError::from(e)))?;
                Ok(Bytes::from(out))
            })
            .collect()
    }

    /// Every regular file below `prefix`, recursively (blocking); a missing prefix, or
    /// one naming a file, has none.
    fn walk(&self, prefix: &Path) -> Vec<Result<ObjectMeta>> {
        let start = match self.resolve(prefix) {
            Ok(start) => start,
            Err(e) => return vec![Err(e)],
        };
        let mut found = Vec::new();
        let mut pending = vec![(start, prefix.clone())];
        while let Some((dir, base)) = pending.pop() {
            let entries = match children(&dir, &base) {
                Ok(entries) => entries,
                Err(e) => {
                    found.push(Err(e));
                    continue;
                }
            };
            for entry in entries {
                match entry {
                    Entry::Dir(path, location) => pending.push((path, location)),
                    Entry::File(path, location) => match self.object_meta(&location, &path) {
                        // Removed since the directory was read (an atomic rename).
                        Err(Error::NotFound { .. }) => {}
                        meta => found.push(meta),
                    },
                }
            }
        }
        found
    }

    /// The immediate subdirectories and files of `prefix` (blocking), sorted.
    fn list_dir(&self, prefix: &Path) -> Result<ListResult> {
        let dir = self.resolve(prefix)?;
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for entry in children(&dir, prefix)? {
            match entry {
                Entry::Dir(_, location) => result.common_prefixes.push(location),
                Entry::File(path, location) => match self.object_meta(&location, &path) {
                    Err(Error::NotFound { .. }) => {}
                    meta => result.objects.push(meta?),
                },
            }
        }
        result.common_prefixes.sort();
        result.objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(result)
    }
}

/// A directory entry the store can name.
enum Entry {
    /// A subdirectory: its path and object path.
    Dir(PathBuf, Path),
    /// A regular file: its path and object path.
    File(PathBuf, Path),
}

/// The entries of `dir` (whose object path is `base`) the store lists: hidden names
/// (starting with `.`, such as the sealing layer's temporaries), names that are not
/// UTF-8 or not valid path segments, symbolic links and special files are left out. A
/// missing directory, or a file in its place, has none.
fn children(dir: &FsPath, base: &Path) -> Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(generic(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(generic)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(part) = PathPart::parse(name) else {
            continue;
        };
        let location = base.child(part);
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) if is_missing(&e) => continue,
            Err(e) => return Err(generic(e)),
        };
        if file_type.is_dir() {
            out.push(Entry::Dir(entry.path(), location));
        } else if file_type.is_file() {
            out.push(Entry::File(entry.path(), location));
        }
    }
    Ok(out)
}

/// A get result whose payload is `data`, one chunk.
fn get_result(meta: ObjectMeta, range: Range<u64>, data: Vec<u8>) -> GetResult {
    let chunk: Result<Bytes> = Ok(Bytes::from(data));
    GetResult {
        payload: GetResultPayload::Stream(
            futures_util::stream::once(futures_util::future::ready(chunk)).boxed(),
        ),
        meta,
        range,
        attributes: Attributes::default(),
    }
}

/// Runs `work` on Tokio's blocking pool (all file I/O and decryption is synchronous).
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| Error::JoinError { source })?
}

/// Whether an I/O error says the file or a directory on its way is not there.
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A store error with `source` (a static description or a value-free error).
fn generic(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Generic {
        store: STORE,
        source: source.into(),
    }
}

/// The error of an object that is not there.
fn not_found(
    location: &Path,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::NotFound {
        path: location.to_string(),
        source: source.into(),
    }
}

/// An I/O error on `location`: not found when the file is missing, generic otherwise.
fn io_error(location: &Path, e: io::Error) -> Error {
    if is_missing(&e) {
        not_found(location, e)
    } else {
        generic(e)
    }
}

/// A sealing-layer error on `location` (value-free by design).
fn seal_error(location: &Path, e: SealError) -> Error {
    match e {
        SealError::Io(e) => io_error(location, e),
        other => generic(other),
    }
}

/// The error of every write: the sandbox never writes through this store.
fn read_only() -> Error {
    Error::NotSupported {
        source: "the zone store is read-only".into(),
    }
}

#[async_trait]
impl ObjectStore for ZoneStore {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    /// Ranges are resolved against the plaintext length. The conditions
    /// (`if_match`, `if_none_match`, `if_modified_since`, `if_unmodified_since`) are
    /// honoured as `object_store` defines them, with no e-tag (so an `if_match` other
    /// than `*` never matches); a specific `version` is not supported (files have none).
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.version.is_some() {
            return Err(Error::NotSupported {
                source: "zone files have no versions".into(),
            });
        }
        let store = self.clone();
        let location = location.clone();
        blocking(move || store.get_blocking(&location, &options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.clone();
        let location = location.clone();
        let ranges = ranges.to_vec();
        blocking(move || store.ranges_blocking(&location, &ranges)).await
    }

    async fn delete(&self, _location: &Path) -> Result<()> {
        Err(read_only())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        futures_util::stream::once(async move {
            match tokio::task::spawn_blocking(move || store.walk(&prefix)).await {
                Ok(found) => found,
                Err(source) => vec![Err(Error::JoinError { source })],
            }
        })
        .flat_map(futures_util::stream::iter)
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let store = self.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        blocking(move || store.list_dir(&prefix)).await
    }

    async fn copy(&self, _from: &Path, _to: &Path) -> Result<()> {
        Err(read_only())
    }

    async fn copy_if_not_exists(&self, _from: &Path, _to: &Path) -> Result<()> {
        Err(read_only())
    }
}

/// Registers `store` in `ctx`'s runtime under
/// `pdx-zone://<name>/` (replacing any store registered there) and returns that base
/// URL (a collection) and the store. `name` must be lower-case ASCII letters, digits,
/// `_` or `-` (a table name is).
pub(crate) fn register(
    ctx: &SessionContext,
    name: &str,
    store: ZoneStore,
) -> std::result::Result<(ListingTableUrl, Arc<dyn ObjectStore>), &'static str> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !plain {
        return Err("the store name is not a plain lower-case name");
    }
    let base = ListingTableUrl::parse(format!("{ZONE_SCHEME}://{name}/"))
        .map_err(|_| "the store URL is not valid")?;
    if base.get_url().host_str() != Some(name) || !base.is_collection() {
        return Err("the store URL is not valid");
    }
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    ctx.runtime_env()
        .register_object_store(base.get_url(), Arc::clone(&store));
    Ok((base, store))
}

/// One zone file as DataFusion reads it, through its registered store.
pub(crate) struct ZoneFile {
    /// The listing-table URL of the file, `pdx-zone://<name>/<file name>`: one object,
    /// not a collection (no trailing `/`), so listing it is a `head`.
    pub url: ListingTableUrl,
    /// The store the file is read through.
    pub store: Arc<dyn ObjectStore>,
    /// The file's path in `store` (its file name).
    pub location: Path,
}

/// Registers a [`ZoneStore`] over the directory of `file` (a canonical path to a
/// regular file), serving that file only, under `pdx-zone://<name>/` (see
/// [`register`]) and returns how to read the file through it.
pub(crate) fn register_file(
    ctx: &SessionContext,
    name: &str,
    file: &FsPath,
    at_rest: AtRest,
) -> std::result::Result<ZoneFile, &'static str> {
    let root = file.parent().ok_or("the file has no directory")?;
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the file name is not valid UTF-8")?;
    let location =
        Path::parse(file_name).map_err(|_| "the file name is not a valid object name")?;
    if location.as_ref() != file_name {
        return Err("the file name is not a valid object name");
    }
    let store = ZoneStore::new(root.to_path_buf(), at_rest).serving_only(location.clone());
    let (base, store) = register(ctx, name, store)?;
    // The file name as one percent-encoded path segment, so that the listing table's
    // object path (the decoded URL path) is exactly the file name.
    let mut url = base.get_url().clone();
    url.path_segments_mut()
        .map_err(|_| "the store URL is not valid")?
        .pop_if_empty()
        .push(file_name);
    let url = ListingTableUrl::try_new(url, None).map_err(|_| "the file URL is not valid")?;
    if url.is_collection() || url.prefix() != &location {
        return Err("the file URL does not name the file");
    }
    Ok(ZoneFile {
        url,
        store,
        location,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path as FsPath;
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::object_store::path::Path;
    use datafusion::object_store::{Error, GetOptions, GetRange, ObjectStore};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::prelude::SessionContext;
    use futures_util::TryStreamExt;
    use pdx_seal::{AtRest, Kek, Keyring};

    use super::ZoneStore;
    use crate::sql::{SqlLimits, SqlSandbox, TableGrant};

    /// Sealing under a fresh keyring in `dir` (outside the store's root).
    fn sealed(dir: &FsPath) -> AtRest {
        let kek = Kek::from_bytes([7u8; 32]);
        let keyring = Keyring::create(&dir.join("keyring.json"), &kek).expect("keyring");
        AtRest::sealed(keyring)
    }

    /// 200,000 bytes (several 64 KiB segments) that differ from position to position.
    fn plaintext() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    /// A store over `<dir>/zones` holding `a/data.bin` and `top.bin`, sealed, plus a
    /// hidden file.
    fn fixture(dir: &FsPath) -> (ZoneStore, Vec<u8>) {
        let at_rest = sealed(dir);
        let root = dir.join("zones");
        let data = plaintext();
        at_rest
            .write_file(&root.join("a").join("data.bin"), &data)
            .expect("seal data");
        at_rest
            .write_file(&root.join("top.bin"), b"top")
            .expect("seal top");
        std::fs::write(root.join(".hidden"), b"x").expect("hidden");
        // On disk the file is sealed: longer than its plaintext.
        let on_disk = std::fs::metadata(root.join("a").join("data.bin"))
            .expect("stat")
            .len();
        assert!(on_disk > data.len() as u64);
        (ZoneStore::new(root, at_rest), data)
    }

    #[tokio::test]
    async fn head_gives_the_plaintext_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, data) = fixture(dir.path());
        let meta = store.head(&Path::from("a/data.bin")).await.expect("head");
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(meta.location, Path::from("a/data.bin"));
        assert_eq!(meta.e_tag, None);
    }

    #[tokio::test]
    async fn ranges_read_the_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, data) = fixture(dir.path());
        let location = Path::from("a/data.bin");

        // Across a segment boundary.
        let bytes = store
            .get_range(&location, 65_000..70_000)
            .await
            .expect("range");
        assert_eq!(&bytes[..], &data[65_000..70_000]);

        // A suffix (how a Parquet footer is found without a size).
        let options = GetOptions {
            range: Some(GetRange::Suffix(8)),
            ..GetOptions::default()
        };
        let result = store.get_opts(&location, options).await.expect("suffix");
        assert_eq!(result.range, (data.len() as u64 - 8)..data.len() as u64);
        let bytes = result.bytes().await.expect("suffix bytes");
        assert_eq!(&bytes[..], &data[data.len() - 8..]);

        // An offset, and the whole object.
        let options = GetOptions {
            range: Some(GetRange::Offset(199_990)),
            ..GetOptions::default()
        };
        let bytes = store
            .get_opts(&location, options)
            .await
            .expect("offset")
            .bytes()
            .await
            .expect("offset bytes");
        assert_eq!(&bytes[..], &data[199_990..]);
        let all = store
            .get(&location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("all");
        assert_eq!(&all[..], &data[..]);

        // Several ranges from one opening, in the order asked.
        let ranges = [150_000..150_010, 0..4, 131_070..131_080];
        let parts = store.get_ranges(&location, &ranges).await.expect("ranges");
        assert_eq!(parts.len(), 3);
        for (part, range) in parts.iter().zip(&ranges) {
            let (start, end) = (range.start as usize, range.end as usize);
            assert_eq!(&part[..], &data[start..end]);
        }

        // A range starting past the end fails.
        let past = store
            .get_range(&location, 300_000..300_010)
            .await
            .expect_err("past the end");
        assert!(matches!(past, Error::Generic { .. }));
    }

    #[tokio::test]
    async fn a_store_serving_one_file_shows_no_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, data) = fixture(dir.path());
        let store = store.serving_only(Path::from("a/data.bin"));
        let meta = store.head(&Path::from("a/data.bin")).await.expect("head");
        assert_eq!(meta.size, data.len() as u64);
        assert!(matches!(
            store.head(&Path::from("top.bin")).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            store.get_range(&Path::from("top.bin"), 0..1).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            store
                .get_ranges(&Path::from("top.bin"), &[0..1, 1..2])
                .await,
            Err(Error::NotFound { .. })
        ));
        let listed: Vec<String> = store
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("list");
        assert_eq!(listed, vec!["a/data.bin".to_owned()]);
        let top = store.list_with_delimiter(None).await.expect("list top");
        assert!(top.objects.is_empty(), "{:?}", top.objects);
    }

    #[tokio::test]
    async fn list_finds_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, data) = fixture(dir.path());
        let mut found: Vec<(String, u64)> = store
            .list(None)
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .try_collect()
            .await
            .expect("list");
        found.sort();
        assert_eq!(
            found,
            vec![
                ("a/data.bin".to_owned(), data.len() as u64),
                ("top.bin".to_owned(), 3),
            ]
        );

        let under_a: Vec<_> = store
            .list(Some(&Path::from("a")))
            .try_collect()
            .await
            .expect("list a");
        assert_eq!(under_a.len(), 1);
        let missing: Vec<_> = store
            .list(Some(&Path::from("nowhere")))
            .try_collect()
            .await
            .expect("list missing");
        assert!(missing.is_empty());

        let listed = store.list_with_delimiter(None).await.expect("delimited");
        assert_eq!(listed.common_prefixes, vec![Path::from("a")]);
        let objects: Vec<String> = listed
            .objects
            .iter()
            .map(|meta| meta.location.to_string())
            .collect();
        assert_eq!(objects, vec!["top.bin".to_owned()]);
    }

    #[tokio::test]
    async fn writes_are_not_supported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = fixture(dir.path());
        let put = store
            .put(&Path::from("new.bin"), b"x".to_vec().into())
            .await
            .expect_err("put");
        assert!(matches!(put, Error::NotSupported { .. }));
        let delete = store
            .delete(&Path::from("top.bin"))
            .await
            .expect_err("delete");
        assert!(matches!(delete, Error::NotSupported { .. }));
        let copy = store
            .copy(&Path::from("top.bin"), &Path::from("other.bin"))
            .await
            .expect_err("copy");
        assert!(matches!(copy, Error::NotSupported { .. }));
        assert!(!dir.path().join("zones").join("new.bin").exists());
    }

    #[tokio::test]
    async fn missing_objects_are_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = fixture(dir.path());
        for location in ["absent.bin", "a/absent.bin", "top.bin/below", "a"] {
            let err = store
                .head(&Path::from(location))
                .await
                .expect_err("not there");
            assert!(matches!(err, Error::NotFound { .. }), "{location}: {err}");
        }
    }

    #[test]
    fn display_and_debug_hide_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = fixture(dir.path());
        let root = dir.path().to_string_lossy().into_owned();
        assert_eq!(store.to_string(), "ZoneStore");
        assert!(!format!("{store:?}").contains(&root));
    }

    #[tokio::test]
    async fn the_sandbox_reads_a_sealed_parquet_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at_rest = sealed(dir.path());
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let column: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("batch");
        // Three row groups, so the ordinal scan numbers rows across groups.
        let properties = WriterProperties::builder()
            .set_max_row_group_size(2)
            .build();
        let mut writer =
            ArrowWriter::try_new(Vec::new(), schema, Some(properties)).expect("writer");
        writer.write(&batch).expect("write");
        let parquet = writer.into_inner().expect("parquet");
        let file = dir.path().join("zones").join("t.parquet");
        at_rest.write_file(&file, &parquet).expect("seal");
        assert!(pdx_seal::is_sealed(&file).expect("is sealed"));

        let grant = TableGrant {
            name: "t".to_owned(),
            path: file,
            columns: vec!["x".to_owned()],
            at_rest,
        };
        let sandbox = SqlSandbox::new(&[grant], SqlLimits::default())
            .await
            .expect("sandbox");
        let out = sandbox
            .run("SELECT SUM(x) AS s, COUNT(*) AS n FROM t")
            .await
            .expect("query");
        let sum = out.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("sum column")
            .value(0);
        assert_eq!(sum, 15);

        let ordinals = sandbox.ordinal_table("t").expect("ordinal table");
        let batches = SessionContext::new()
            .read_table(ordinals)
            .expect("read ordinals")
            .collect()
            .await
            .expect("scan ordinals");
        let mut rows: Vec<(i64, u32)> = Vec::new();
        for batch in &batches {
            let x = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("x");
            let row = batch
                .column(1)
                .as_any()
                .downcast_ref::<UInt32Array>()
                .expect("row");
            rows.extend((0..batch.num_rows()).map(|i| (x.value(i), row.value(i))));
        }
        rows.sort_unstable();
        assert_eq!(rows, vec![(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]);
    }
}
