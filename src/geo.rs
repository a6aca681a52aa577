//! GeoIP: turns a client IP address into a [`Location`] (country, continent, subdivisions)
//! through a MaxMind-format (`.mmdb`) database held in memory, and hot-swaps that database
//! when its file is replaced on disk.
//!
//! It must not speak HTTP or know about rules: it only answers "where is this address", and
//! every failure to answer is [`Location::UNKNOWN`], never an error or a panic.
//!
//! Supported layouts, read through one borrowed serde record (no allocation per lookup):
//! MaxMind GeoIP2/GeoLite2 Country and City (`country.iso_code`, `continent.code`,
//! `subdivisions[].iso_code`) and flat country files such as DB-IP's from ip-location-db
//! (`country_code`, optionally `continent_code`; otherwise the continent is derived from the
//! country with [`continent_of`]). `registered_country` and `represented_country` are ignored.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as IPv4, because not every
//! database aliases them to its IPv4 tree.

pub use crate::rules::country::continent_of;
use crate::rules::country::two_letter_code as country_code;
#[cfg(test)]
use crate::rules::country::CONTINENTS;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use maxminddb::{MaxMindDbError, Reader};
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use crate::rules::location::{Code, Location};

/// Why a GeoIP database could not be (re)loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read GeoIP database {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid GeoIP database {}: {source}", .path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
}

/// The GeoIP database currently in use, if any. Cheap to share (`Arc<GeoIp>`): lookups read the
/// current reader without locking, and a reload swaps in a new reader without blocking them.
pub struct GeoIp {
    /// The file the database was opened from; `None` when GeoIP is disabled.
    path: Option<PathBuf>,
    current: ArcSwapOption<Loaded>,
}

/// One loaded database file and the identity of the file it was read from.
struct Loaded {
    reader: Reader<Vec<u8>>,
    stamp: FileStamp,
    /// Unique per loaded database (across instances and reloads): the lookup cache's key.
    id: u64,
}

/// Hands out `Loaded::id`s.
static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What tells one version of the database file from another: modified time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
        }
    }
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.path)
            .field("database_type", &self.database_type())
            .finish()
    }
}

impl GeoIp {
    /// Reads the database at `path` into memory. Fails if the file cannot be read or is not a
    /// valid MaxMind DB file.
    pub fn open(path: &Path) -> Result<GeoIp, GeoError> {
        let loaded = load(path)?;
        Ok(GeoIp {
            path: Some(path.to_path_buf()),
            current: ArcSwapOption::from_pointee(loaded),
        })
    }

    /// No database: every lookup is [`Location::UNKNOWN`], and reloading does nothing.
    pub fn disabled() -> GeoIp {
        GeoIp {
            path: None,
            current: ArcSwapOption::empty(),
        }
    }

    /// Whether a database is loaded (false only for [`GeoIp::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.current.load().is_some()
    }

    /// Where `ip` is, according to the current database. Never fails: an address that is not
    /// in the database, a record without a country, or a record that cannot be decoded are all
    /// [`Location::UNKNOWN`].
    pub fn lookup(&self, ip: IpAddr) -> Location {
        match self.current.load().as_deref() {
            Some(loaded) => cached_lookup(loaded, ip),
            None => Location::UNKNOWN,
        }
    }

    /// Reloads the database if its file's modified time or length differ from the loaded one.
    ///
    /// `Ok(true)`: a new database was loaded and now answers lookups. `Ok(false)`: nothing to do
    /// (unchanged, or GeoIP disabled). `Err`: the file could not be read or is not a valid
    /// database; the previous database keeps answering. Blocking file I/O: call it from a
    /// blocking context (as [`GeoIp::spawn_reloader`] does).
    pub fn reload_if_changed(&self) -> Result<bool, GeoError> {
        let Some(path) = self.path.as_deref() else {
            return Ok(false);
        };
        let on_disk = std::fs::metadata(path)
            .map(|metadata| FileStamp::of(&metadata))
            .map_err(|source| io_error(path, source))?;
        if self.current.load().as_ref().map(|loaded| loaded.stamp) == Some(on_disk) {
            return Ok(false);
        }
        let loaded = load(path)?;
        self.current.store(Some(Arc::new(loaded)));
        Ok(true)
    }

    /// Polls [`GeoIp::reload_if_changed`] every `every` (on Tokio's blocking pool) until the
    /// returned task is aborted. Logs `info` when a new database is swapped in and `warn` when
    /// reloading fails (once per distinct error, not on every poll). Does nothing when GeoIP is
    /// disabled. Must be called from within a Tokio runtime.
    pub fn spawn_reloader(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let Some(path) = self.path.clone() else {
                return;
            };
            // `interval` panics on a zero period.
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate; the file was just loaded
            let mut last_error: Option<String> = None;
            loop {
                ticks.tick().await;
                let geo = Arc::clone(&self);
                let outcome = tokio::task::spawn_blocking(move || geo.reload_if_changed()).await;
                match outcome {
                    Ok(Ok(false)) => {}
                    Ok(Ok(true)) => {
                        last_error = None;
                        tracing::info!(
                            path = %path.display(),
                            database_type = self.database_type().as_deref().unwrap_or(""),
                            "GeoIP database reloaded"
                        );
                    }
                    Ok(Err(error)) => {
                        let message = error.to_string();
                        if last_error.as_deref() != Some(message.as_str()) {
                            tracing::warn!(
                                path = %path.display(),
                                error = %message,
                                "GeoIP database not reloaded; still using the previous one"
                            );
                            last_error = Some(message);
                        }
                    }
                    Err(join_error) => {
                        tracing::warn!(
                            path = %path.display(),
                            error = %join_error,
                            "GeoIP reload task failed; still using the previous database"
                        );
                    }
                }
            }
        })
    }

    /// The loaded database's `database_type` metadata, e.g. `GeoIP2-City`; `None` when disabled.
    pub fn database_type(&self) -> Option<String> {
        self.current
            .load()
            .as_deref()
            .map(|loaded| loaded.reader.metadata().database_type.clone())
    }
}

/// The location to evaluate rules against.
///
/// A caller-supplied country that is a 2-letter code wins over the database: the country is it
/// and the continent is [`continent_of`] it; subdivisions come from the database lookup only
/// when the database agrees on the country. Otherwise the database lookup of `ip`, or
/// [`Location::UNKNOWN`] without an address.
pub fn locate(geo: &GeoIp, ip: Option<IpAddr>, caller_country: Option<&str>) -> Location {
    let from_database = ip.map_or(Location::UNKNOWN, |ip| geo.lookup(ip));
    let Some(country) = caller_country.and_then(country_code) else {
        return from_database;
    };
    Location {
        country: Some(country),
        continent: continent_of(country.as_str()).and_then(Code::new),
        subdivisions: if from_database.country == Some(country) {
            from_database.subdivisions
        } else {
            [None; 3]
        },
    }
}

fn io_error(path: &Path, source: std::io::Error) -> GeoError {
    GeoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the whole file into memory (no mmap: the file may be replaced at any time) and parses
/// it. The stamp comes from the open handle, so it describes exactly the bytes read even if the
/// file is renamed over meanwhile.
fn load(path: &Path) -> Result<Loaded, GeoError> {
    let mut file = File::open(path).map_err(|source| io_error(path, source))?;
    let metadata = file.metadata().map_err(|source| io_error(path, source))?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|source| io_error(path, source))?;
    let reader = Reader::from_source(bytes).map_err(|source| GeoError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Loaded {
        reader,
        stamp: FileStamp::of(&metadata),
        id: LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

/// Slots of the per-thread lookup cache (a power of two).
const CACHE_SLOTS: usize = 1024;

/// Slots of the per-thread record cache (a power of two).
const RECORD_SLOTS: usize = 512;

type CacheSlot = Option<(u64, IpAddr, Location)>;

/// A decoded record: the database's id, the record's offset in it, what it says.
type RecordSlot = Option<(u64, usize, Location)>;

/// Per-thread caches, so that no lookup takes a lock: recent answers by address, and decoded
/// records by their offset in the database.
struct Caches {
    by_address: Box<[CacheSlot]>,
    by_record: Box<[RecordSlot]>,
}

/// Looks `ip` up through two small per-thread, direct-mapped caches:
/// - recent answers by address: the same callers come back (a login is several requests), and
///   a database walk costs ~0.6 µs;
/// - decoded records by their offset in the database: many addresses share one record (every
///   address of a country in a country database; of a city in a city database), so a new
///   address mostly costs the walk down the tree, not the decoding of its record.
///
/// Entries carry the database's id, so a reloaded database never answers from the old one's
/// entries.
fn cached_lookup(loaded: &Loaded, ip: IpAddr) -> Location {
    use std::cell::RefCell;
    thread_local! {
        static CACHES: RefCell<Caches> = RefCell::new(Caches {
            by_address: vec![None; CACHE_SLOTS].into_boxed_slice(),
            by_record: vec![None; RECORD_SLOTS].into_boxed_slice(),
        });
    }
    let ip = ip.to_canonical();
    let folded = match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let n = u128::from(a);
            (n as u64) ^ ((n >> 64) as u64)
        }
    };
    let slot = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % CACHE_SLOTS;
    CACHES.with(|caches| {
        let mut caches = caches.borrow_mut();
        if let Some((id, cached_ip, location)) = caches.by_address[slot] {
            if id == loaded.id && cached_ip == ip {
                return location;
            }
        }
        let location = caches.record_location(loaded, ip);
        caches.by_address[slot] = Some((loaded.id, ip, location));
        location
    })
}

impl Caches {
    /// Walks `loaded`'s tree for `ip` (already canonical) and decodes the record found, unless
    /// this thread has decoded the record at that offset before.
    fn record_location(&mut self, loaded: &Loaded, ip: IpAddr) -> Location {
        // `lookup` errs for IPv6 in an IPv4-only database, `decode` on a malformed record.
        let Ok(found) = loaded.reader.lookup(ip) else {
            return Location::UNKNOWN;
        };
        let Some(offset) = found.offset() else {
            return Location::UNKNOWN;
        };
        let slot = offset.wrapping_mul(0x9E37_79B9) >> 7 & (RECORD_SLOTS - 1);
        if let Some((id, cached, location)) = self.by_record[slot] {
            if id == loaded.id && cached == offset {
                return location;
            }
        }
        let location = match found.decode::<Record<'_>>() {
            Ok(Some(record)) => record.location(),
            Ok(None) | Err(_) => Location::UNKNOWN,
        };
        self.by_record[slot] = Some((loaded.id, offset, location));
        location
    }
}

/// The fields of a record that matter here, borrowed from the database buffer. Covers the nested
/// MaxMind layout and the flat `country_code` / `continent_code` layout; anything else in the
/// record is skipped without being decoded.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow)]
    country: IsoCode<'a>,
    #[serde(borrow)]
    continent: ContinentCode<'a>,
    #[serde(borrow, deserialize_with = "first_subdivisions")]
    subdivisions: [Option<&'a str>; 3],
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    continent_code: Option<&'a str>,
}

/// `country` and each of `subdivisions` in the MaxMind layout.
#[derive(Deserialize, Default)]
#[serde(default)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

/// `continent` in the MaxMind layout.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ContinentCode<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

impl Record<'_> {
    /// A record without a (valid) country is an unknown location, whatever else it holds.
    fn location(&self) -> Location {
        let Some(country) = self
            .country
            .iso_code
            .or(self.country_code)
            .and_then(country_code)
        else {
            return Location::UNKNOWN;
        };
        let continent = self
            .continent
            .code
            .or(self.continent_code)
            .and_then(Code::new)
            .or_else(|| continent_of(country.as_str()).and_then(Code::new));
        let mut subdivisions = [None; 3];
        let codes = self
            .subdivisions
            .iter()
            .flatten()
            .filter_map(|iso_code| Code::joined(country, iso_code));
        for (slot, code) in subdivisions.iter_mut().zip(codes) {
            *slot = Some(code);
        }
        Location {
            country: Some(country),
            continent,
            subdivisions,
        }
    }
}

/// Keeps the `iso_code`s of the first three subdivisions (most significant first) and skips the
/// rest, filling a fixed array instead of allocating a `Vec`.
fn first_subdivisions<'de, D>(deserializer: D) -> Result<[Option<&'de str>; 3], D::Error>
where
    D: Deserializer<'de>,
{
    struct FirstThree;

    impl<'de> Visitor<'de> for FirstThree {
        type Value = [Option<&'de str>; 3];

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of subdivisions")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut kept = [None; 3];
            let mut count = 0;
            while count < kept.len() {
                match seq.next_element::<IsoCode<'de>>()? {
                    Some(IsoCode {
                        iso_code: Some(code),
                    }) => {
                        kept[count] = Some(code);
                        count += 1;
                    }
                    Some(IsoCode { iso_code: None }) => {}
                    None => return Ok(kept),
                }
            }
            // The rest must still be consumed for the decoder to stay in step.
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(kept)
        }
    }

    deserializer.deserialize_seq(FirstThree)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::time::UNIX_EPOCH;

    use mmdb_writer::ipnet::IpNet;
    use mmdb_writer::{IpVersion, Ipv4Aliasing, Value, Writer};

    const CONTINENT_CODES: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

    fn test_database(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("geoip")
            .join(format!("{name}.mmdb"))
    }

    fn open_test_database(name: &str) -> GeoIp {
        GeoIp::open(&test_database(name)).expect("test database opens")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid IP address")
    }

    /// `country continent subdivisions…`, with `-` for an unknown country or continent.
    fn describe(location: Location) -> String {
        let mut parts = vec![
            location.country.map_or("-".to_owned(), |c| c.to_string()),
            location.continent.map_or("-".to_owned(), |c| c.to_string()),
        ];
        parts.extend(location.subdivisions().map(|c| c.to_string()));
        parts.join(" ")
    }

    /// The "Known lookups" table of the test databases' README: IP, then the expected answer of
    /// GeoIP2-Country-Test, GeoIP2-City-Test, GeoLite2-Country-Test and GeoLite2-City-Test.
    /// `- -` is an unknown location: not found (rows 9, 5, 8 in some files), or found without
    /// a country (rows 14 and 15).
    #[rustfmt::skip]
    const KNOWN_LOOKUPS: [(&str, [&str; 4]); 15] = [
        ("2.125.160.216", ["GB EU", "GB EU GB-ENG GB-WBK", "GB EU", "GB EU GB-ENG GB-WBK"]),
        ("81.2.69.142", ["GB EU", "GB EU GB-ENG", "GB EU", "GB EU GB-ENG"]),
        ("216.160.83.56", ["US NA", "US NA US-WA", "US NA", "US NA US-WA"]),
        ("89.160.20.112", ["SE EU", "SE EU SE-E", "SE EU", "SE EU SE-E"]),
        ("175.16.199.1", ["CN AS", "CN AS CN-22", "- -", "CN AS CN-22"]),
        ("67.43.156.1", ["BT AS", "BT AS", "BT AS", "BT AS"]),
        ("202.196.224.1", ["PH AS", "PH AS", "PH AS", "PH AS"]),
        ("214.78.120.1", ["US NA", "US NA US-CA", "- -", "- -"]),
        ("214.0.1.1", ["- -", "AU OC AU-VIC", "- -", "- -"]),
        ("2001:218::1", ["JP AS", "JP AS", "JP AS", "JP AS"]),
        ("2a02:d3c0::1", ["GB EU", "GB EU", "GB EU", "GB EU"]),
        ("2001:480:10::1", ["US NA", "US NA US-CA", "US NA", "US NA US-CA"]),
        ("::ffff:81.2.69.142", ["GB EU", "GB EU GB-ENG", "GB EU", "GB EU GB-ENG"]),
        ("214.1.1.1", ["- -", "- -", "- -", "- -"]),
        ("2a02:d500::1", ["- -", "- -", "- -", "- -"]),
    ];

    const TEST_DATABASES: [&str; 4] = [
        "GeoIP2-Country-Test",
        "GeoIP2-City-Test",
        "GeoLite2-Country-Test",
        "GeoLite2-City-Test",
    ];

    #[test]
    fn every_known_lookup_of_the_test_databases_gives_the_documented_location() {
        for (column, name) in TEST_DATABASES.iter().enumerate() {
            let geo = open_test_database(name);
            for (address, expected) in KNOWN_LOOKUPS {
                assert_eq!(
                    describe(geo.lookup(ip(address))),
                    expected[column],
                    "{address} in {name}"
                );
            }
        }
    }

    #[test]
    fn every_network_of_the_test_databases_answers_as_its_record_decoded_directly() {
        // Through both per-thread caches (addresses sharing a record hit the record cache),
        // against decoding each network's record without any cache.
        for name in TEST_DATABASES {
            let geo = open_test_database(name);
            let reader = Reader::open_readfile(test_database(name)).unwrap();
            let mut networks = 0;
            for found in reader.networks(Default::default()).unwrap() {
                let found = found.unwrap();
                let direct = match found.decode::<Record<'_>>() {
                    Ok(Some(record)) => record.location(),
                    _ => Location::UNKNOWN,
                };
                let network = found.network().unwrap();
                for address in [network.network(), network.broadcast()] {
                    assert_eq!(geo.lookup(address), direct, "{address} in {name}");
                    assert_eq!(geo.lookup(address), direct, "{address} again in {name}");
                }
                networks += 1;
            }
            assert!(networks > 50, "{name}: {networks} networks");
        }
    }

    #[test]
    fn addresses_outside_the_test_databases_are_unknown() {
        for name in TEST_DATABASES {
            let geo = open_test_database(name);
            for address in [
                "8.8.8.8",
                "1.1.1.1",
                "127.0.0.1",
                "10.0.0.1",
                "2001:db8::1",
                "::1",
            ] {
                assert_eq!(
                    geo.lookup(ip(address)),
                    Location::UNKNOWN,
                    "{address} in {name}"
                );
            }
        }
    }

    #[test]
    fn a_record_without_a_country_is_an_unknown_location_even_with_a_continent() {
        let path = test_database("GeoIP2-City-Test");
        let reader = Reader::open_readfile(&path).unwrap();
        let geo = GeoIp::open(&path).unwrap();
        // Row 14 holds only traits; row 15 has a continent (EU) but no country.
        for address in ["214.1.1.1", "2a02:d500::1"] {
            assert!(
                reader.lookup(ip(address)).unwrap().has_data(),
                "{address} has a record"
            );
            assert_eq!(geo.lookup(ip(address)), Location::UNKNOWN, "{address}");
        }
    }

    #[test]
    fn the_country_is_used_not_the_registered_country() {
        // registered_country is FR for 2.125.160.216 and US for 81.2.69.142.
        let geo = open_test_database("GeoIP2-Country-Test");
        let location = geo.lookup(ip("2.125.160.216"));
        assert_eq!(location.country, Code::new("GB"));
        assert_eq!(geo.lookup(ip("81.2.69.142")).country, Code::new("GB"));
    }

    #[test]
    fn an_ipv4_mapped_address_is_looked_up_as_ipv4() {
        let geo = open_test_database("GeoIP2-City-Test");
        assert_eq!(
            geo.lookup(ip("::ffff:81.2.69.142")),
            geo.lookup(ip("81.2.69.142"))
        );
        assert_eq!(
            describe(geo.lookup(ip("::ffff:81.2.69.142"))),
            "GB EU GB-ENG"
        );
    }

    /// A flat country database like the ip-location-db ones: records `{"country_code": "GB"}`,
    /// IPv4 under `::/96` and no IPv4-mapped alias.
    fn write_flat_database(path: &Path) {
        let mut writer = Writer::builder("Test-Flat-Country")
            .ipv4_aliasing(Ipv4Aliasing::Disabled)
            .build();
        let mut insert = |network: &str, record: Value| {
            let network: IpNet = network.parse().unwrap();
            writer.insert_value(network, record).unwrap();
        };
        insert("81.2.69.0/24", Value::map([("country_code", "GB")]));
        insert("2001:db8::/32", Value::map([("country_code", "us")]));
        insert(
            "198.51.100.0/24",
            Value::map([("country_code", "NO"), ("continent_code", "EU")]),
        );
        insert("203.0.113.0/24", Value::map([("continent_code", "EU")]));
        insert("203.0.113.128/25", Value::map([("country_code", 7u32)]));
        insert("192.0.2.0/24", Value::map([("country_code", "ZZZ")]));
        fs::write(path, writer.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn a_flat_database_gives_the_country_and_derives_the_continent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.mmdb");
        write_flat_database(&path);
        let geo = GeoIp::open(&path).unwrap();
        assert_eq!(geo.database_type().as_deref(), Some("Test-Flat-Country"));

        assert_eq!(describe(geo.lookup(ip("81.2.69.142"))), "GB EU");
        assert_eq!(describe(geo.lookup(ip("2001:db8::1"))), "US NA");
        assert_eq!(describe(geo.lookup(ip("198.51.100.7"))), "NO EU");
        // A continent alone, a country of the wrong type, a country that is no country code.
        assert_eq!(geo.lookup(ip("203.0.113.1")), Location::UNKNOWN);
        assert_eq!(geo.lookup(ip("203.0.113.200")), Location::UNKNOWN);
        assert_eq!(geo.lookup(ip("192.0.2.1")), Location::UNKNOWN);
    }

    #[test]
    fn an_ipv4_mapped_address_finds_ipv4_data_in_a_database_without_the_alias() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.mmdb");
        write_flat_database(&path);
        // The raw reader does not find the mapped form: the database has no alias for it.
        let reader = Reader::open_readfile(&path).unwrap();
        assert!(!reader.lookup(ip("::ffff:81.2.69.142")).unwrap().has_data());

        let geo = GeoIp::open(&path).unwrap();
        let location = geo.lookup(ip("::ffff:81.2.69.142"));
        assert_eq!(location.country, Code::new("GB"));
        assert_eq!(location.continent, Code::new("EU"));
    }

    #[test]
    fn at_most_three_subdivisions_are_kept_and_the_rest_of_the_record_still_decodes() {
        let subdivision = |code: &str| Value::map([("iso_code", code)]);
        let record = Value::map([
            ("continent", Value::map([("code", "EU")])),
            ("country", Value::map([("iso_code", "ES")])),
            (
                "subdivisions",
                Value::array([
                    subdivision("AN"),
                    Value::map([("names", Value::map([("en", "no code")]))]),
                    subdivision("SE"),
                    subdivision("TOOLONG"),
                    subdivision("GR"),
                    subdivision("MA"),
                ]),
            ),
            // Sorted after "subdivisions": decoded only if the array was consumed whole.
            ("traits", Value::map([("is_anycast", true)])),
        ]);
        let mut writer = Writer::builder("Test-Nested")
            .ip_version(IpVersion::V4)
            .build();
        writer
            .insert_value("192.0.2.0/24".parse::<IpNet>().unwrap(), record)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested.mmdb");
        fs::write(&path, writer.to_bytes().unwrap()).unwrap();

        let geo = GeoIp::open(&path).unwrap();
        // "TOOLONG" does not fit a code: it takes one of the three slots but gives no code.
        assert_eq!(describe(geo.lookup(ip("192.0.2.1"))), "ES EU ES-AN ES-SE");
        // An IPv4-only database: IPv6 is unknown, IPv4-mapped IPv6 is found.
        assert_eq!(geo.lookup(ip("2001:db8::1")), Location::UNKNOWN);
        assert_eq!(
            describe(geo.lookup(ip("::ffff:192.0.2.1"))),
            "ES EU ES-AN ES-SE"
        );
    }

    #[test]
    fn the_callers_country_wins_over_the_database() {
        let geo = open_test_database("GeoIP2-City-Test");
        let london = Some(ip("81.2.69.142"));
        // The database agrees: its subdivisions are kept.
        assert_eq!(describe(locate(&geo, london, Some("gb"))), "GB EU GB-ENG");
        // The database disagrees: the caller's country, its continent, no subdivisions.
        assert_eq!(describe(locate(&geo, london, Some("US"))), "US NA");
        assert_eq!(
            describe(locate(&geo, Some(ip("8.8.8.8")), Some("tr"))),
            "TR AS"
        );
        assert_eq!(describe(locate(&geo, None, Some("FR"))), "FR EU");
        // Not a 2-letter code: the database decides.
        for bad in ["GBR", "", "G", "1A", "G-"] {
            assert_eq!(
                describe(locate(&geo, london, Some(bad))),
                "GB EU GB-ENG",
                "{bad:?}"
            );
        }
        assert_eq!(describe(locate(&geo, london, None)), "GB EU GB-ENG");
        assert_eq!(locate(&geo, None, None), Location::UNKNOWN);
        // Without a database the caller's country still counts.
        let disabled = GeoIp::disabled();
        assert_eq!(describe(locate(&disabled, london, Some("de"))), "DE EU");
        assert_eq!(locate(&disabled, london, None), Location::UNKNOWN);
    }

    #[test]
    fn a_disabled_geoip_knows_nothing_and_never_reloads() {
        let geo = GeoIp::disabled();
        assert!(!geo.is_enabled());
        assert_eq!(geo.lookup(ip("81.2.69.142")), Location::UNKNOWN);
        assert_eq!(geo.database_type(), None);
        assert!(!geo.reload_if_changed().unwrap());
        assert!(open_test_database("GeoIP2-Country-Test").is_enabled());
    }

    #[test]
    fn opening_a_missing_or_invalid_file_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.mmdb");
        let error = GeoIp::open(&missing).unwrap_err();
        assert!(matches!(error, GeoError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains("missing.mmdb"), "{error}");

        let garbage = dir.path().join("garbage.mmdb");
        fs::write(&garbage, b"this is not a MaxMind database").unwrap();
        let error = GeoIp::open(&garbage).unwrap_err();
        assert!(matches!(error, GeoError::Invalid { .. }), "{error:?}");
        assert!(error.to_string().contains("garbage.mmdb"), "{error}");
    }

    /// Replaces the file's content in place and gives it a modified time of its own.
    fn overwrite(path: &Path, bytes: &[u8], modified_secs: u64) {
        fs::write(path, bytes).unwrap();
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(modified_secs))
            .unwrap();
    }

    #[test]
    fn a_replaced_file_is_swapped_in_and_an_invalid_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geo.mmdb");
        let country = fs::read(test_database("GeoIP2-Country-Test")).unwrap();
        let city = fs::read(test_database("GeoIP2-City-Test")).unwrap();
        overwrite(&path, &country, 1_000_000);

        let geo = GeoIp::open(&path).unwrap();
        assert_eq!(geo.database_type().as_deref(), Some("GeoIP2-Country"));
        assert_eq!(geo.lookup(ip("214.0.1.1")), Location::UNKNOWN);
        assert!(!geo.reload_if_changed().unwrap(), "unchanged file");

        overwrite(&path, &city, 2_000_000);
        assert!(geo.reload_if_changed().unwrap());
        assert_eq!(geo.database_type().as_deref(), Some("GeoIP2-City"));
        assert_eq!(describe(geo.lookup(ip("214.0.1.1"))), "AU OC AU-VIC");
        assert!(!geo.reload_if_changed().unwrap(), "already loaded");

        // Same length, other modified time: reloaded too.
        overwrite(&path, &city, 2_000_001);
        assert!(geo.reload_if_changed().unwrap());

        overwrite(&path, b"garbage, not a database", 3_000_000);
        let error = geo.reload_if_changed().unwrap_err();
        assert!(matches!(error, GeoError::Invalid { .. }), "{error:?}");
        assert!(error.to_string().contains("geo.mmdb"), "{error}");
        assert_eq!(geo.database_type().as_deref(), Some("GeoIP2-City"));
        assert_eq!(describe(geo.lookup(ip("214.0.1.1"))), "AU OC AU-VIC");

        // The usual way to install a new file: write beside it, rename over it.
        let next = dir.path().join("geo.mmdb.tmp");
        write_flat_database(&next);
        fs::rename(&next, &path).unwrap();
        assert!(geo.reload_if_changed().unwrap());
        assert_eq!(geo.database_type().as_deref(), Some("Test-Flat-Country"));
        assert_eq!(describe(geo.lookup(ip("81.2.69.142"))), "GB EU");

        fs::remove_file(&path).unwrap();
        let error = geo.reload_if_changed().unwrap_err();
        assert!(matches!(error, GeoError::Io { .. }), "{error:?}");
        assert_eq!(describe(geo.lookup(ip("81.2.69.142"))), "GB EU");
    }

    #[tokio::test]
    async fn the_reloader_picks_up_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geo.mmdb");
        fs::copy(test_database("GeoIP2-Country-Test"), &path).unwrap();
        let geo = Arc::new(GeoIp::open(&path).unwrap());
        let reloader = Arc::clone(&geo).spawn_reloader(Duration::from_millis(10));

        // An invalid file first: the reloader must survive it and keep the old database.
        overwrite(&path, b"garbage", 1_000_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!reloader.is_finished());
        assert_eq!(geo.database_type().as_deref(), Some("GeoIP2-Country"));

        let next = dir.path().join("geo.mmdb.tmp");
        fs::copy(test_database("GeoIP2-City-Test"), &next).unwrap();
        fs::rename(&next, &path).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while geo.lookup(ip("214.0.1.1")) == Location::UNKNOWN {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not reloaded in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(geo.database_type().as_deref(), Some("GeoIP2-City"));
        reloader.abort();
    }

    #[test]
    fn geoip_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GeoIp>();
        assert_send_sync::<GeoError>();
    }

    #[test]
    fn continents_follow_maxmind() {
        #[rustfmt::skip]
        let cases = [
            ("GB", "EU"), ("RU", "EU"), ("TR", "AS"), ("CY", "EU"), ("GE", "AS"),
            ("KZ", "AS"), ("EG", "AF"), ("MX", "NA"), ("PA", "NA"), ("GL", "NA"),
            ("CO", "SA"), ("GF", "SA"), ("AU", "OC"), ("TL", "OC"), ("UM", "OC"),
            ("AQ", "AN"), ("TF", "AN"), ("GS", "AN"), ("IO", "AS"), ("XK", "EU"),
        ];
        for (country, continent) in cases {
            assert_eq!(continent_of(country), Some(continent), "{country}");
        }
        assert_eq!(continent_of("gb"), Some("EU"));
        assert_eq!(continent_of("uS"), Some("NA"));
        for unknown in ["", "G", "GBR", "ZZ", "UK", "EU", "AP", "é", "1A"] {
            assert_eq!(continent_of(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn the_continent_table_is_sorted_without_duplicates_and_complete() {
        assert!(
            CONTINENTS.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "sorted, no duplicate keys"
        );
        // 249 ISO 3166-1 alpha-2 codes plus XK.
        assert_eq!(CONTINENTS.len(), 250);
        for (country, continent) in CONTINENTS {
            assert!(
                country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
                "{country}"
            );
            assert!(
                CONTINENT_CODES.contains(continent),
                "{country} → {continent}"
            );
            assert_eq!(continent_of(country), Some(*continent));
        }
    }

    #[test]
    fn every_country_in_the_test_databases_has_its_continent_in_the_table() {
        // The databases' own continent for each country must agree with `continent_of`.
        for name in TEST_DATABASES {
            let reader = Reader::open_readfile(test_database(name)).unwrap();
            for network in reader.networks(Default::default()).unwrap() {
                let found = network.unwrap();
                let Ok(Some(record)) = found.decode::<Record<'_>>() else {
                    continue;
                };
                if let (Some(country), Some(continent)) =
                    (record.country.iso_code, record.continent.code)
                {
                    assert_eq!(
                        continent_of(country),
                        Some(continent),
                        "{country} in {name}"
                    );
                }
            }
        }
    }
}
