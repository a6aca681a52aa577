//! From the JSON store file of earlier builds to the database file, on the first start that
//! finds one and no database: everything imported in one transaction, then the JSON file kept
//! beside it as `<name>.bak`.
//!
//! A JSON file that cannot be read stops startup, naming it, and is left as it was. A crash at
//! any point leaves either the JSON file in place (migrated again at the next start) or the
//! database with everything. Must not touch a database that exists.

use std::path::{Path, PathBuf};

use super::dataset::Dataset;
use super::file::{Content, StoreFile};
use super::StoreError;

/// The file name earlier builds used by default for the JSON store file.
pub const OLD_DEFAULT_NAME: &str = "switchyard.json";

/// The JSON store file to migrate into the database at `path`, if any: `path` itself when it
/// holds something else than a database, or the old default file beside a missing database.
pub fn json_store_for(path: &Path) -> Result<Option<PathBuf>, StoreError> {
    Ok(match Content::of(path)? {
        Content::Database => None,
        Content::Other => Some(path.to_path_buf()),
        Content::Missing => {
            let old = path.with_file_name(OLD_DEFAULT_NAME);
            (old != path && Content::of(&old)? == Content::Other).then_some(old)
        }
    })
}

/// `<file name>.bak`, beside it.
pub fn backup_name(json: &Path) -> PathBuf {
    let mut name = json.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    json.with_file_name(name)
}

/// Opens the database at `path`, migrating a JSON store file first if there is one.
pub fn open_migrating(path: &Path) -> Result<StoreFile, StoreError> {
    let Some(json) = json_store_for(path)? else {
        return StoreFile::open(path);
    };
    let data = Dataset::read(&json)?.ok_or_else(|| StoreError::Io {
        path: json.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone while migrating"),
    })?;
    let backup = backup_name(&json);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    let file = if json == path {
        // The database takes the JSON file's name: keep the JSON under its backup name first
        // (a second link, so that the name `path` never goes missing), then rename the new
        // database over it.
        match std::fs::remove_file(&backup) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&backup)(e)),
            _ => {}
        }
        std::fs::hard_link(&json, &backup).map_err(io(&backup))?;
        StoreFile::create_with(path, &data)?
    } else {
        // The database is renamed into place before the JSON file is moved aside: a crash in
        // between leaves both, and the database is used.
        let file = StoreFile::create_with(path, &data)?;
        std::fs::rename(&json, &backup).map_err(io(&json))?;
        file
    };
    tracing::warn!(
        from = %json.display(),
        to = %path.display(),
        backup = %backup.display(),
        rollouts = data.rollouts.len(),
        history_entries = data.history.values().map(Vec::len).sum::<usize>(),
        audit_records = data.audit.len(),
        enrollments = data.enrollments.values().map(|u| u.len()).sum::<usize>(),
        retired = data.retired.len(),
        "migrated the JSON store file into the database; the JSON file is kept as a backup"
    );
    Ok(file)
}
