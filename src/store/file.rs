//! The store's database file: a redb database (pure Rust, ACID, copy-on-write B-trees) holding
//! rollouts, history, the audit trail, enrollments and retired keys in their own tables. The
//! embedded store runs its reads and writes here; the Redis store keeps its last-known copy
//! in the same format (`read_dataset`, `write_dataset`).
//!
//! Every write is one transaction committed with fsync before it returns, and costs in
//! proportion to the change (a few B-tree pages), not to the store. The file is created on the
//! first write (never by a start that fails), always through a temporary file renamed into
//! place, readable by its owner only. A file that is not a database, or a corrupt one, is an
//! error naming it; it is never replaced. Blocking: callers on an async runtime use
//! `spawn_blocking`. Knows nothing of HTTP, metrics or the JSON file of earlier builds
//! (`super::migration` does).
//!
//! Tables (values are the JSON of the API types, so they read like the old file did):
//!
//! | table | key | value |
//! |---|---|---|
//! | `rollouts` | rollout key | `Rollout` |
//! | `history` | (rollout key, version) | `HistoryEntry` |
//! | `audit` | position, from 0, oldest first (the audit cursor) | `ChangeRecord` |
//! | `enrollments` | (rollout key, user key) | nothing: present means enrolled |
//! | `retired` | rollout key | (delete version, epoch) |
//! | `meta` | `schema`, `generation` | text |

use std::collections::BTreeMap;
use std::ops::Bound;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::dataset::{check_change, Dataset, UserKeys, FORMAT};
use super::{
    AuditPage, Change, ChangeRecord, EnrollmentPage, HistoryEntry, Loaded, Retired, StoreError,
    UserKeyHash,
};
use crate::rules::Rollout;

const ROLLOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rollouts");
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const ENROLLMENTS: TableDefinition<(&str, &str), ()> = TableDefinition::new("enrollments");
const RETIRED: TableDefinition<&str, (u64, u64)> = TableDefinition::new("retired");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// The layout of the tables this build reads and writes (`meta` key `schema`).
const SCHEMA: &str = "1";

/// How long an open waits for another holder of the file to let it go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The first bytes of every redb file.
const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Pages redb may keep in memory. Reads past it go to the page cache of the kernel; the
/// process stays small however many enrollments the file holds.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// What a file holds, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Missing,
    Database,
    /// Anything else: a JSON store file of an earlier build, or something that is not a store.
    Other,
}

impl Content {
    pub fn of(path: &Path) -> Result<Content, StoreError> {
        use std::io::Read;
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Content::Missing),
            Err(source) => return Err(io_error(path, source)),
        };
        let mut head = [0u8; MAGIC.len()];
        let mut read = 0;
        while read < head.len() {
            match file.read(&mut head[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(source) => return Err(io_error(path, source)),
            }
        }
        Ok(if read == head.len() && head == MAGIC {
            Content::Database
        } else {
            Content::Other
        })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A failure of the database while running: an outage (writes answer 503).
fn down(e: impl Into<redb::Error>) -> StoreError {
    StoreError::unavailable(e.into())
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("the store's types always serialise")
}

fn decode<T: DeserializeOwned>(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::InvalidData {
        what: what(),
        source,
    })
}

/// Which file an open database is, to notice when the path no longer leads to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    fn of(path: &Path) -> std::io::Result<Identity> {
        let metadata = std::fs::metadata(path)?;
        Ok(Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }
}

struct Opened {
    db: Arc<Database>,
    identity: Identity,
}

/// The database file at one path, opened (or created on the first write).
pub struct StoreFile {
    path: PathBuf,
    /// `None` until the first write when there was no file.
    opened: RwLock<Option<Opened>>,
    /// Held by each write from the check of the file to the commit.
    writer: Mutex<()>,
}

impl StoreFile {
    /// Opens the database at `path`; a missing file is an empty store, created on the first
    /// write. A file that is not a database is an error (see `super::migration` for the JSON
    /// files of earlier builds).
    pub fn open(path: impl Into<PathBuf>) -> Result<StoreFile, StoreError> {
        let path = path.into();
        let opened = match Content::of(&path)? {
            Content::Missing => None,
            Content::Database => Some(open_database(&path)?),
            Content::Other => {
                return Err(StoreError::Database {
                    path: path.display().to_string(),
                    source: redb::Error::Corrupted("not a database file".into()),
                })
            }
        };
        Ok(StoreFile {
            path,
            opened: RwLock::new(opened),
            writer: Mutex::new(()),
        })
    }

    /// Creates the database at `path` holding `data` (a whole dataset, in one transaction),
    /// replacing whatever file was there; returns it open.
    pub fn create_with(path: impl Into<PathBuf>, data: &Dataset) -> Result<StoreFile, StoreError> {
        let path = path.into();
        let opened = create_database(&path, Some(data))?;
        Ok(StoreFile {
            path,
            opened: RwLock::new(Some(opened)),
            writer: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> Option<Arc<Database>> {
        self.opened
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|o| o.db.clone())
    }

    fn read<T>(
        &self,
        empty: impl FnOnce() -> Result<T, StoreError>,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self.reader() {
            None => empty(),
            Some(db) => f(&db.begin_read().map_err(down)?),
        }
    }

    /// Runs `f` in one write transaction, committed (with fsync) only when `f` says so.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let db = self.writable()?;
        let tx = db.begin_write().map_err(down)?;
        let (value, commit) = f(&tx)?;
        if commit {
            tx.commit().map_err(down)?;
        } else {
            tx.abort().map_err(down)?;
        }
        Ok(value)
    }

    /// The database to write to: created on the first write; written again from the open
    /// one if the file was removed meanwhile; refused if another file took its place.
    fn writable(&self) -> Result<Arc<Database>, StoreError> {
        let current = self
            .opened
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|o| (o.db.clone(), o.identity));
        // Any failure here is an outage: the write is refused and may succeed later.
        let unavailable = |what: &str, e: StoreError| StoreError::Unavailable {
            reason: format!("cannot {what} {}: {e}", self.path.display()),
            source: Some(Box::new(e)),
        };
        let opened = match current {
            Some((db, identity)) => match Identity::of(&self.path) {
                Ok(now) if now == identity => return Ok(db),
                Ok(_) => {
                    return Err(StoreError::down(format!(
                        "another file took the place of the store database {}",
                        self.path.display()
                    )))
                }
                Err(_) => {
                    let data = export(&db)?;
                    create_database(&self.path, Some(&data))
                        .map_err(|e| unavailable("write again", e))?
                }
            },
            None => create_database(&self.path, None).map_err(|e| unavailable("create", e))?,
        };
        let db = opened.db.clone();
        *self.opened.write().unwrap_or_else(|e| e.into_inner()) = Some(opened);
        Ok(db)
    }

    /// Everything a replica needs to decide: the rollouts and the hashes of enrolled users.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        self.read(
            || Ok(Loaded::default()),
            |tx| {
                let mut loaded = Loaded::default();
                for entry in tx
                    .open_table(ROLLOUTS)
                    .map_err(down)?
                    .iter()
                    .map_err(down)?
                {
                    let (key, value) = entry.map_err(down)?;
                    let key = key.value();
                    loaded
                        .rollouts
                        .push(decode(|| format!("rollout '{key}'"), value.value())?);
                }
                let enrollments = tx.open_table(ENROLLMENTS).map_err(down)?;
                for entry in enrollments.iter().map_err(down)? {
                    let (key, _) = entry.map_err(down)?;
                    let (rollout, user) = key.value();
                    match loaded.enrollments.last_mut() {
                        Some((last, users)) if last == rollout => users.push(UserKeyHash::of(user)),
                        _ => loaded
                            .enrollments
                            .push((rollout.to_string(), vec![UserKeyHash::of(user)])),
                    }
                }
                Ok(loaded)
            },
        )
    }

    pub fn get(&self, key: &str) -> Result<Option<Rollout>, StoreError> {
        self.read(
            || Ok(None),
            |tx| rollout_in(&tx.open_table(ROLLOUTS).map_err(down)?, key),
        )
    }

    pub fn retired(&self, key: &str) -> Result<Option<Retired>, StoreError> {
        self.read(
            || Ok(None),
            |tx| retired_in(&tx.open_table(RETIRED).map_err(down)?, key),
        )
    }

    /// Every version of a rollout, newest first.
    pub fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let not_found = || Err(StoreError::NotFound(key.to_string()));
        self.read(not_found, |tx| {
            require_rollout(tx, key)?;
            let history = tx.open_table(HISTORY).map_err(down)?;
            let mut entries = Vec::new();
            for entry in history
                .range((key, 0)..=(key, u64::MAX))
                .map_err(down)?
                .rev()
            {
                let (id, value) = entry.map_err(down)?;
                let version = id.value().1;
                entries.push(decode(
                    || format!("version {version} of rollout '{key}'"),
                    value.value(),
                )?);
            }
            Ok(entries)
        })
    }

    /// At most `limit` audit records older than the cursor `before`, newest first.
    pub fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, StoreError> {
        self.read(
            || Ok(AuditPage::of(&[], before, limit)),
            |tx| {
                let audit = tx.open_table(AUDIT).map_err(down)?;
                let window = AuditPage::window(audit.len().map_err(down)?, before, limit);
                let mut records = Vec::with_capacity((window.end - window.start) as usize);
                for entry in audit.range(window.clone()).map_err(down)? {
                    let (at, value) = entry.map_err(down)?;
                    let at = at.value();
                    records.push(decode(|| format!("audit record {at}"), value.value())?);
                }
                Ok(AuditPage::new(window, records.into_iter()))
            },
        )
    }

    /// The enrollments of a rollout whose user keys sort after `cursor`.
    pub fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError> {
        let not_found = || Err(StoreError::NotFound(key.to_string()));
        self.read(not_found, |tx| {
            require_rollout(tx, key)?;
            let enrollments = tx.open_table(ENROLLMENTS).map_err(down)?;
            let start = match cursor {
                Some(cursor) => Bound::Excluded((key, cursor)),
                None => Bound::Included((key, "")),
            };
            let mut users = Vec::new();
            for entry in enrollments
                .range::<(&str, &str)>((start, Bound::Unbounded))
                .map_err(down)?
            {
                let (id, _) = entry.map_err(down)?;
                let (rollout, user) = id.value();
                if rollout != key || users.len() > limit {
                    break;
                }
                users.push(user.to_string());
            }
            Ok(EnrollmentPage::from_overfetch(users, limit))
        })
    }

    /// Applies one change in one transaction: compare the version, write or delete the
    /// rollout (a delete takes its history and enrollments with it and is remembered as
    /// retired), append history and audit.
    pub fn commit(&self, change: Change) -> Result<(), StoreError> {
        self.write(|tx| {
            let key = change.key.as_str();
            let mut rollouts = tx.open_table(ROLLOUTS).map_err(down)?;
            let mut retired = tx.open_table(RETIRED).map_err(down)?;
            let mut history = tx.open_table(HISTORY).map_err(down)?;
            let mut audit = tx.open_table(AUDIT).map_err(down)?;
            check_change(
                &change,
                rollout_in(&rollouts, key)?.map(|r| r.version),
                retired_in(&retired, key)?,
            )?;
            match &change.next {
                Some(next) => {
                    retired.remove(key).map_err(down)?;
                    let entry = HistoryEntry {
                        record: change.record.clone(),
                        rollout: next.clone(),
                    };
                    history
                        .insert((key, change.record.version), encode(&entry).as_slice())
                        .map_err(down)?;
                    rollouts
                        .insert(key, encode(next).as_slice())
                        .map_err(down)?;
                }
                None => {
                    rollouts.remove(key).map_err(down)?;
                    history
                        .retain_in((key, 0)..=(key, u64::MAX), |_, _| false)
                        .map_err(down)?;
                    let mut enrollments = tx.open_table(ENROLLMENTS).map_err(down)?;
                    for user in users_of(&enrollments, key)? {
                        enrollments.remove((key, user.as_str())).map_err(down)?;
                    }
                    if let Some(last) = change.retired() {
                        retired
                            .insert(key, (last.version, last.epoch))
                            .map_err(down)?;
                    }
                }
            }
            let at = audit.len().map_err(down)?;
            audit
                .insert(at, encode(&change.record).as_slice())
                .map_err(down)?;
            Ok(((), true))
        })
    }

    /// Enrolls (or unenrolls) a user of an existing rollout. `Ok(true)` when that changed
    /// something (only then is anything written).
    pub fn set_enrolled(
        &self,
        key: &str,
        user_key: &str,
        enrolled: bool,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            require_rollout_in(&tx.open_table(ROLLOUTS).map_err(down)?, key)?;
            let mut enrollments = tx.open_table(ENROLLMENTS).map_err(down)?;
            let changed = if enrolled {
                enrollments
                    .insert((key, user_key), ())
                    .map_err(down)?
                    .is_none()
            } else {
                enrollments.remove((key, user_key)).map_err(down)?.is_some()
            };
            Ok((changed, changed))
        })
    }

    /// Enrolls many users of an existing rollout in one transaction (bulk loads); returns how
    /// many were new.
    pub fn enroll_all(
        &self,
        key: &str,
        user_keys: impl IntoIterator<Item = String>,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            require_rollout_in(&tx.open_table(ROLLOUTS).map_err(down)?, key)?;
            let mut enrollments = tx.open_table(ENROLLMENTS).map_err(down)?;
            let mut added = 0;
            for user_key in user_keys {
                if enrollments
                    .insert((key, user_key.as_str()), ())
                    .map_err(down)?
                    .is_none()
                {
                    added += 1;
                }
            }
            Ok((added, added > 0))
        })
    }

    /// Everything the database holds, as one value.
    pub fn export(&self) -> Result<Dataset, StoreError> {
        match self.reader() {
            None => Ok(Dataset::empty()),
            Some(db) => export(&db),
        }
    }

    /// Replaces everything the database holds with `data`, in one transaction.
    pub fn replace_all(&self, data: &Dataset) -> Result<(), StoreError> {
        self.write(|tx| {
            clear(tx)?;
            import(tx, data)?;
            Ok(((), true))
        })
    }
}

/// `NotFound` unless the rollout `key` exists: a page of a rollout's history or enrollments
/// is asked of a rollout, not of a key.
fn require_rollout(tx: &ReadTransaction, key: &str) -> Result<(), StoreError> {
    require_rollout_in(&tx.open_table(ROLLOUTS).map_err(down)?, key)
}

/// `NotFound` unless `rollouts` holds the rollout `key` (in a read or a write transaction).
fn require_rollout_in(
    rollouts: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<(), StoreError> {
    match rollouts.get(key).map_err(down)? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(key.to_string())),
    }
}

fn rollout_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Rollout>, StoreError> {
    match table.get(key).map_err(down)? {
        Some(value) => Ok(Some(decode(|| format!("rollout '{key}'"), value.value())?)),
        None => Ok(None),
    }
}

fn retired_in(
    table: &impl ReadableTable<&'static str, (u64, u64)>,
    key: &str,
) -> Result<Option<Retired>, StoreError> {
    Ok(table.get(key).map_err(down)?.map(|value| {
        let (version, epoch) = value.value();
        Retired { version, epoch }
    }))
}

/// The enrolled user keys of one rollout, in order.
fn users_of(
    table: &impl ReadableTable<(&'static str, &'static str), ()>,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let mut users = Vec::new();
    for entry in table.range((key, "")..).map_err(down)? {
        let (id, _) = entry.map_err(down)?;
        let (rollout, user) = id.value();
        if rollout != key {
            break;
        }
        users.push(user.to_string());
    }
    Ok(users)
}

/// Opens an existing database file, refusing one that is corrupt or of another layout.
/// Opens the database at `path` with every page's checksum verified. Should redb panic on some
/// damage, that is a corrupt file too, not a crash of the service: `Err` holds the panic's
/// message.
fn checking_open(path: &Path) -> Result<Result<Database, redb::DatabaseError>, String> {
    std::panic::catch_unwind(|| {
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .open(path)
    })
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unreadable".into())
    })
}

/// Opens a copy of the database at `path` with every page's checksum verified, and removes it:
/// `Err` when the file is damaged. The copy sits beside the file (same disk, same mode).
fn check_a_copy(path: &Path) -> Result<(), redb::Error> {
    let name = path
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    let copy = path.with_file_name(format!(".{name}.check-{}", std::process::id()));
    let checked = (|| {
        std::fs::copy(path, &copy)?;
        match checking_open(&copy) {
            // Our own fresh copy cannot be missing or locked: whatever fails to read in it (a
            // file cut short ends in "failed to fill whole buffer") is damage.
            Ok(opened) => opened.map(drop).map_err(|e| match redb::Error::from(e) {
                corrupted @ redb::Error::Corrupted(_) => corrupted,
                other => redb::Error::Corrupted(other.to_string()),
            }),
            Err(panic) => Err(redb::Error::Corrupted(panic)),
        }
    })();
    let _ = std::fs::remove_file(&copy);
    checked
}

fn open_database(path: &Path) -> Result<Opened, StoreError> {
    let refused = |source: redb::Error| StoreError::Database {
        path: path.display().to_string(),
        source,
    };
    // Every page's checksum is verified at open (the file is read once, which start-up reads
    // anyway to load enrollments), so that a file altered outside redb is refused here rather
    // than failing later. Should redb still panic on some damage, that is a corrupt file too,
    // not a crash of the service.
    let open = || checking_open(path);
    // redb's checking open writes to the file it checks (it marks the header, then repairs),
    // so a damaged file would not be left as it was: check a private copy first, and open the
    // file itself only once the copy passed.
    check_a_copy(path).map_err(refused)?;
    // The file is locked while open. An instance that is stopping (a restart in the same
    // process) lets go within moments; another process that holds it is an error.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut attempt = open();
    while matches!(attempt, Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        attempt = open();
    }
    let opened = attempt
        .map_err(|panic| refused(redb::Error::Corrupted(panic)))?
        .map_err(|e| refused(e.into()))?;
    let schema = {
        let tx = opened.begin_read().map_err(|e| refused(e.into()))?;
        let meta = tx.open_table(META).map_err(|e| refused(e.into()))?;
        let schema = meta
            .get("schema")
            .map_err(|e| refused(e.into()))?
            .map(|v| v.value().to_string());
        schema
    };
    if schema.as_deref() != Some(SCHEMA) {
        return Err(refused(redb::Error::Corrupted(format!(
            "unsupported layout {} (this build reads layout {SCHEMA})",
            schema.as_deref().unwrap_or("(none)")
        ))));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_error(path, e))?;
    let identity = Identity::of(path).map_err(|e| io_error(path, e))?;
    Ok(Opened {
        db: Arc::new(opened),
        identity,
    })
}

/// Creates a database holding `data` (or nothing) at `path`: in a temporary file beside it
/// (mode 0600), committed, then renamed into place and the folder synced, so that `path` only
/// ever holds a whole database.
fn create_database(path: &Path, data: Option<&Dataset>) -> Result<Opened, StoreError> {
    let io = |source| io_error(path, source);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "switchyard.redb".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let _ = std::fs::remove_file(&tmp);
        // Readable by its owner only: it holds user keys (e-mail addresses).
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
            .map_err(io)?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&tmp)
            .map_err(down)?;
        let tx = db.begin_write().map_err(down)?;
        clear(&tx)?;
        if let Some(data) = data {
            import(&tx, data)?;
        }
        tx.commit().map_err(down)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(Opened {
            db: Arc::new(db),
            identity: Identity::of(path).map_err(io)?,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Empties every table (creating those that do not exist) and writes the layout's version.
fn clear(tx: &WriteTransaction) -> Result<(), StoreError> {
    empty(tx, ROLLOUTS)?;
    empty(tx, HISTORY)?;
    empty(tx, AUDIT)?;
    empty(tx, ENROLLMENTS)?;
    empty(tx, RETIRED)?;
    empty(tx, META)?;
    tx.open_table(META)
        .map_err(down)?
        .insert("schema", SCHEMA)
        .map_err(down)?;
    Ok(())
}

/// Removes every row of `table` (creating it when it does not exist).
fn empty<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    tx.open_table(table)
        .map_err(down)?
        .retain(|_, _| false)
        .map_err(down)
}

/// Writes a whole dataset into empty tables.
fn import(tx: &WriteTransaction, data: &Dataset) -> Result<(), StoreError> {
    let mut rollouts = tx.open_table(ROLLOUTS).map_err(down)?;
    for (key, rollout) in &data.rollouts {
        rollouts
            .insert(key.as_str(), encode(rollout).as_slice())
            .map_err(down)?;
    }
    let mut history = tx.open_table(HISTORY).map_err(down)?;
    for (key, entries) in &data.history {
        for entry in entries {
            history
                .insert(
                    (key.as_str(), entry.record.version),
                    encode(entry).as_slice(),
                )
                .map_err(down)?;
        }
    }
    let mut audit = tx.open_table(AUDIT).map_err(down)?;
    for (at, record) in data.audit.iter().enumerate() {
        audit
            .insert(at as u64, encode(record).as_slice())
            .map_err(down)?;
    }
    let mut enrollments = tx.open_table(ENROLLMENTS).map_err(down)?;
    for (key, users) in &data.enrollments {
        for user in users.iter() {
            enrollments.insert((key.as_str(), user), ()).map_err(down)?;
        }
    }
    let mut retired = tx.open_table(RETIRED).map_err(down)?;
    for (key, last) in &data.retired {
        retired
            .insert(key.as_str(), (last.version, last.epoch))
            .map_err(down)?;
    }
    let mut meta = tx.open_table(META).map_err(down)?;
    if let Some(generation) = &data.generation {
        meta.insert("generation", generation.as_str())
            .map_err(down)?;
    }
    Ok(())
}

/// Reads everything in `db` as one dataset.
fn export(db: &Database) -> Result<Dataset, StoreError> {
    let tx = db.begin_read().map_err(down)?;
    let mut data = Dataset::empty();
    for entry in tx
        .open_table(ROLLOUTS)
        .map_err(down)?
        .iter()
        .map_err(down)?
    {
        let (key, value) = entry.map_err(down)?;
        let key = key.value().to_string();
        let rollout = decode(|| format!("rollout '{key}'"), value.value())?;
        data.rollouts.insert(key, rollout);
    }
    for entry in tx.open_table(HISTORY).map_err(down)?.iter().map_err(down)? {
        let (id, value) = entry.map_err(down)?;
        let (key, version) = id.value();
        let entry = decode(
            || format!("version {version} of rollout '{key}'"),
            value.value(),
        )?;
        data.history.entry(key.to_string()).or_default().push(entry);
    }
    for entry in tx.open_table(AUDIT).map_err(down)?.iter().map_err(down)? {
        let (at, value) = entry.map_err(down)?;
        let at = at.value();
        let record: ChangeRecord = decode(|| format!("audit record {at}"), value.value())?;
        data.audit.push(record);
    }
    let mut enrollments: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in tx
        .open_table(ENROLLMENTS)
        .map_err(down)?
        .iter()
        .map_err(down)?
    {
        let (id, _) = entry.map_err(down)?;
        let (key, user) = id.value();
        match enrollments.last_entry() {
            Some(mut last) if last.key() == key => last.get_mut().push(user.to_string()),
            _ => {
                enrollments.insert(key.to_string(), vec![user.to_string()]);
            }
        }
    }
    data.enrollments = enrollments
        .into_iter()
        .map(|(key, users)| (key, users.into_iter().collect::<UserKeys>()))
        .collect();
    for entry in tx.open_table(RETIRED).map_err(down)?.iter().map_err(down)? {
        let (key, value) = entry.map_err(down)?;
        let (version, epoch) = value.value();
        data.retired
            .insert(key.value().to_string(), Retired { version, epoch });
    }
    data.generation = tx
        .open_table(META)
        .map_err(down)?
        .get("generation")
        .map_err(down)?
        .map(|v| v.value().to_string());
    data.format = FORMAT;
    Ok(data)
}

/// The whole content of the store file at `path`, if there is one: a database, or a JSON
/// store file of an earlier build. (The Redis store's last-known copy.)
pub fn read_dataset(path: &Path) -> Result<Option<Dataset>, StoreError> {
    match Content::of(path)? {
        Content::Missing => Ok(None),
        Content::Database => StoreFile::open(path)?.export().map(Some),
        Content::Other => Dataset::read(path),
    }
}

/// Replaces the content of the store file at `path` with `data`: in one transaction when it
/// is a database already, else by creating one in its place.
pub fn write_dataset(path: &Path, data: &Dataset) -> Result<(), StoreError> {
    match Content::of(path)? {
        Content::Database => StoreFile::open(path)?.replace_all(data),
        Content::Missing | Content::Other => StoreFile::create_with(path, data).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::{LegacySessions, RolloutContent, Sticky};
    use crate::store::Action;

    fn rollout(key: &str, version: u64) -> Rollout {
        Rollout {
            key: key.into(),
            content: RolloutContent {
                description: String::new(),
                enabled: true,
                percentage: 10.0,
                salt: "s".into(),
                rules: Vec::new(),
                sticky: Sticky::default(),
                epoch: 1,
                legacy_sessions: LegacySessions::Reject,
                schedule: None,
                guard: None,
            },
            version,
            updated_at: chrono::Utc::now(),
            updated_by: "t".into(),
        }
    }

    fn create(file: &StoreFile, key: &str) {
        file.commit(Change {
            key: key.into(),
            expected_version: None,
            next: Some(rollout(key, 1)),
            record: ChangeRecord {
                rollout: key.into(),
                version: 1,
                action: Action::Created,
                actor: "t".into(),
                at: chrono::Utc::now(),
                changes: Vec::new(),
                restored_version: None,
                evidence: None,
            },
            previous_epoch: None,
        })
        .unwrap();
    }

    fn page(file: &StoreFile, key: &str, cursor: Option<&str>, limit: usize) -> EnrollmentPage {
        file.enrollments(key, cursor, limit).unwrap()
    }

    #[test]
    fn enrollments_of_keys_that_prefix_each_other_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = StoreFile::open(dir.path().join("s.redb")).unwrap();
        for key in ["a", "ab", "b"] {
            create(&file, key);
        }
        for (key, user) in [("a", "z"), ("ab", "a"), ("a", "m"), ("b", ""), ("ab", "b")] {
            assert!(file.set_enrolled(key, user, true).unwrap());
        }
        assert!(!file.set_enrolled("a", "m", true).unwrap(), "idempotent");
        assert_eq!(page(&file, "a", None, 10).user_keys, ["m", "z"]);
        assert_eq!(page(&file, "ab", None, 10).user_keys, ["a", "b"]);
        assert_eq!(page(&file, "b", None, 10).user_keys, [""]);
        let first = page(&file, "ab", None, 1);
        assert_eq!(
            (first.user_keys, first.next_cursor.as_deref()),
            (vec!["a".to_string()], Some("a"))
        );
        assert_eq!(page(&file, "ab", Some("a"), 1).next_cursor, None);
        assert!(matches!(
            file.set_enrolled("nope", "u", true),
            Err(StoreError::NotFound(_))
        ));
        let loaded = file.load().unwrap();
        let counts: Vec<(&str, usize)> = loaded
            .enrollments
            .iter()
            .map(|(k, users)| (k.as_str(), users.len()))
            .collect();
        assert_eq!(counts, [("a", 2), ("ab", 2), ("b", 1)]);
    }

    #[test]
    fn a_file_removed_while_open_is_written_again_on_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let file = StoreFile::open(&path).unwrap();
        assert!(!path.exists(), "nothing is written before the first write");
        create(&file, "r");
        assert!(file.set_enrolled("r", "alice", true).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(file.set_enrolled("r", "bob", true).unwrap());
        drop(file);
        let again = read_dataset(&path).unwrap().unwrap();
        assert_eq!(again.rollouts.len(), 1);
        assert_eq!(
            again.enrollments["r"].iter().collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(again.audit.len(), 1);
    }

    #[test]
    fn a_whole_dataset_goes_in_and_comes_out_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let file = StoreFile::open(&path).unwrap();
        create(&file, "r");
        create(&file, "q");
        file.set_enrolled("q", "u", true).unwrap();
        let mut data = file.export().unwrap();
        data.generation = Some("g-1".into());
        drop(file);
        let copy = dir.path().join("copy.redb");
        write_dataset(&copy, &data).unwrap();
        assert_eq!(read_dataset(&copy).unwrap(), Some(data.clone()));
        // A second write replaces everything, in place.
        data.rollouts.remove("q");
        data.enrollments.clear();
        write_dataset(&copy, &data).unwrap();
        assert_eq!(read_dataset(&copy).unwrap(), Some(data));
    }
}
