//! File-system helpers: private (0600) files, hidden temporaries beside their target,
//! atomic placement and directory fsyncs.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::SealError;
use crate::keys::random_bytes;

/// Options for a new file only its owner can read, failing if the name exists.
pub(crate) fn private_new_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes a file only its owner can read, `contents` then a newline, failing if it
/// exists (as `pdx_ledger::signing::write_secret_file`, which this crate does not
/// depend on).
pub(crate) fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), SealError> {
    create_parent(path)?;
    let mut file = private_new_file().open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    sync_parent(path)?;
    Ok(())
}

/// The directory a path lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the directory `path` lives in, if missing.
pub(crate) fn create_parent(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(parent_dir(path))
}

/// Fsyncs the directory `path` lives in, so a rename into it survives a crash (a no-op
/// where directories cannot be synced).
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(parent_dir(path))?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = path;
    }
    Ok(())
}

/// A fresh hidden temporary name in `dir`: `.<stem>.<16 hex>.tmp` (hidden and `.tmp`,
/// so `pdx backup` skips it and nothing mistakes it for a finished file).
pub(crate) fn temp_path_in(dir: &Path, stem: &str) -> Result<PathBuf, SealError> {
    let suffix = random_bytes::<8>()?;
    Ok(dir.join(format!(".{stem}.{}.tmp", hex::encode(suffix))))
}

/// The file name of `path` as text, for naming its temporaries.
pub(crate) fn file_stem(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes `contents` to `dst` atomically with mode 0600: a temporary beside it, fsynced,
/// then renamed over `dst` (`replace`) or linked to `dst` failing if it exists (not
/// `replace`), and the directory fsynced. The temporary never outlives the call.
pub(crate) fn write_private_atomic(
    dst: &Path,
    contents: &[u8],
    replace: bool,
) -> Result<(), SealError> {
    create_parent(dst)?;
    let stem = file_stem(dst);
    let temp = temp_path_in(parent_dir(dst), &stem)?;
    let result = place(&temp, dst, contents, replace);
    // Gone after a rename; still there after a link or a failure.
    let _ = std::fs::remove_file(temp);
    result?;
    sync_parent(dst)?;
    Ok(())
}

/// The body of [`write_private_atomic`].
fn place(temp: &Path, dst: &Path, contents: &[u8], replace: bool) -> Result<(), SealError> {
    let mut file = private_new_file().open(temp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    if replace {
        std::fs::rename(temp, dst)?;
    } else {
        // A hard link fails atomically if `dst` exists, where a rename would replace it.
        std::fs::hard_link(temp, dst)?;
    }
    Ok(())
}
