//! The on-disk cache: the server's key set and the last good token, in a folder the program
//! chooses, so that a program started offline can still verify the token it last held.
//!
//! Every file is written whole or not at all (a temporary file in the same folder, flushed,
//! then renamed over the old one, so a crash never leaves half a file) and, on Unix, readable
//! by its owner only (mode 0600: a token is a credential for its grace). Reading tolerates a
//! missing or unreadable file: the cache is only ever a fallback, and everything read from it
//! is verified again before it is trusted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use license_edge_token::machine_id_hash;
use serde_json::{json, Value};

use crate::error::Error;

/// The cache of one seat: `jwks.json` and `seat-<hash>.json` in a folder.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
    seat_file: String,
}

/// A seat as cached: enough to go on offline, and to heartbeat it once back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedSeat {
    pub session_id: String,
    pub token: String,
    pub heartbeat_interval_s: u64,
}

impl Cache {
    /// The cache in `dir` for one server, product and machine (each gets its own seat file,
    /// so one folder can hold several products' seats).
    pub fn new(dir: &Path, server: &str, product: &str, machine_id: &str) -> Cache {
        let id = machine_id_hash(&format!("{server}\n{product}\n{machine_id}"));
        Cache {
            dir: dir.to_owned(),
            seat_file: format!("seat-{}.json", &id[..16]),
        }
    }

    pub fn jwks(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("jwks.json")).ok()
    }

    pub fn store_jwks(&self, text: &str) -> Result<(), Error> {
        write_private(&self.dir.join("jwks.json"), text.as_bytes())
    }

    pub fn seat(&self) -> Option<CachedSeat> {
        let text = fs::read_to_string(self.dir.join(&self.seat_file)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some(CachedSeat {
            session_id: v["session_id"].as_str()?.to_owned(),
            token: v["token"].as_str()?.to_owned(),
            heartbeat_interval_s: v["heartbeat_interval_s"].as_u64().unwrap_or(180),
        })
    }

    pub fn store_seat(&self, seat: &CachedSeat) -> Result<(), Error> {
        let v = json!({
            "session_id": seat.session_id,
            "token": seat.token,
            "heartbeat_interval_s": seat.heartbeat_interval_s,
        });
        write_private(&self.dir.join(&self.seat_file), v.to_string().as_bytes())
    }

    /// Forgets the seat (after a release: its token must not be used offline again by us).
    pub fn forget_seat(&self) {
        let _ = fs::remove_file(self.dir.join(&self.seat_file));
    }

    #[cfg(test)]
    pub fn seat_path(&self) -> PathBuf {
        self.dir.join(&self.seat_file)
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename), mode 0600 on Unix.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let fail =
        |what: &str, e: std::io::Error| Error::Cache(format!("{what} {}: {e}", path.display()));
    let dir = path
        .parent()
        .ok_or_else(|| Error::Cache(format!("{} has no folder", path.display())))?;
    fs::create_dir_all(dir).map_err(|e| fail("creating the folder of", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        crate::seat::random_u64() % 1_000_000_000
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(fail("writing", e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_round_trip_privately_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("sub"), "https://s", "cad-pro", "m1");
        assert_eq!(cache.seat(), None);
        let seat = CachedSeat {
            session_id: "ses_1".into(),
            token: "a.b.c".into(),
            heartbeat_interval_s: 90,
        };
        cache.store_seat(&seat).unwrap();
        cache.store_seat(&seat).unwrap();
        assert_eq!(cache.seat(), Some(seat));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(cache.seat_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<String> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        cache.forget_seat();
        assert_eq!(cache.seat(), None);
    }

    #[test]
    fn each_product_and_machine_has_its_own_seat_file() {
        let d = Path::new("/x");
        let a = Cache::new(d, "s", "p1", "m");
        assert_ne!(a.seat_file, Cache::new(d, "s", "p2", "m").seat_file);
        assert_ne!(a.seat_file, Cache::new(d, "s", "p1", "m2").seat_file);
    }
}
