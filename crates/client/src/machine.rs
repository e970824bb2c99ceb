//! A machine fingerprint: an id for this computer that stays the same across reboots and
//! program reinstalls, sent as the `machine_id` of an acquire (so one machine holds one seat
//! however often the program starts).
//!
//! What it reads:
//!
//! | OS | source |
//! |---|---|
//! | Linux | `/etc/machine-id`, else `/var/lib/dbus/machine-id` (systemd and D-Bus write it once, at install) |
//! | macOS | `IOPlatformUUID`, from `ioreg -rd1 -c IOPlatformExpertDevice` (the hardware UUID) |
//! | Windows | `HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid`, through `reg query` (set at install) |
//!
//! The raw id never leaves the machine: the fingerprint is the first 32 hex digits of the
//! SHA-256 of `license-edge machine v1`, a NUL and the raw id (as systemd asks of programs that
//! use `/etc/machine-id`: derive an application-specific id, never expose it). The server then
//! keeps only a hash of that.
//!
//! **Overrides and containers.** The environment variable [`OVERRIDE_ENV`]
//! (`LICENSE_EDGE_MACHINE_ID`), when set and not empty, is used as the raw id instead, on every
//! OS. In a container (Linux, when `/.dockerenv` or `/run/.containerenv` exists, or
//! `KUBERNETES_SERVICE_HOST` is set) `/etc/machine-id` is either missing or baked into the
//! image, so every container of an image would share one id and one seat; there
//! [`fingerprint`] refuses ([`Error::MachineId`]) unless the override is set. Set it to
//! something stable per instance (a pod's name, a volume's id), or mount the host's
//! `/etc/machine-id` read-only and set the override from it.
//! A program can also skip this module and pass any id it likes to [`crate::Config::new`].

use license_edge_token::machine_id_hash;

use crate::error::Error;

/// The environment variable whose value, when set, is used as the raw machine id.
pub const OVERRIDE_ENV: &str = "LICENSE_EDGE_MACHINE_ID";

/// This machine's fingerprint (32 lowercase hex digits); see the module docs for what it
/// reads on each OS.
pub fn fingerprint() -> Result<String, Error> {
    if let Some(raw) = std::env::var(OVERRIDE_ENV)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        return Ok(fingerprint_of(&raw));
    }
    if in_container() {
        return Err(Error::MachineId(format!(
            "running in a container, where the OS machine id is missing or shared by every \
             container of the image: set {OVERRIDE_ENV} to an id stable for this instance"
        )));
    }
    raw_machine_id().map(|raw| fingerprint_of(&raw))
}

/// The fingerprint of a raw machine id: the first 32 hex digits of its salted SHA-256.
pub fn fingerprint_of(raw: &str) -> String {
    let mut hash = machine_id_hash(&format!("license-edge machine v1\0{}", raw.trim()));
    hash.truncate(32);
    hash
}

fn in_container() -> bool {
    cfg!(target_os = "linux")
        && (std::path::Path::new("/.dockerenv").exists()
            || std::path::Path::new("/run/.containerenv").exists()
            || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some())
}

/// The OS's own machine id, unhashed.
fn raw_machine_id() -> Result<String, Error> {
    #[cfg(target_os = "macos")]
    {
        let out = std::process::Command::new("ioreg")
            .args(["-rd1", "-c", "IOPlatformExpertDevice"])
            .output()
            .map_err(|e| Error::MachineId(format!("running ioreg: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        return text
            .lines()
            .find(|l| l.contains("\"IOPlatformUUID\""))
            .and_then(|l| l.split('"').nth(3))
            .map(str::to_owned)
            .ok_or_else(|| Error::MachineId("ioreg printed no IOPlatformUUID".into()));
    }
    #[cfg(windows)]
    {
        let out = std::process::Command::new("reg")
            .args([
                "query",
                r"HKLM\SOFTWARE\Microsoft\Cryptography",
                "/v",
                "MachineGuid",
            ])
            .output()
            .map_err(|e| Error::MachineId(format!("running reg query: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        return text
            .lines()
            .find(|l| l.contains("MachineGuid"))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned)
            .ok_or_else(|| Error::MachineId("the registry has no MachineGuid".into()));
    }
    #[allow(unreachable_code)]
    {
        for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
            if let Ok(text) = std::fs::read_to_string(path) {
                let id = text.trim();
                if !id.is_empty() {
                    return Ok(id.to_owned());
                }
            }
        }
        Err(Error::MachineId(format!(
            "neither /etc/machine-id nor /var/lib/dbus/machine-id can be read: set {OVERRIDE_ENV}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_32_hex_digits_and_hides_the_raw_id() {
        let f = fingerprint_of("4c4c4544-0042-3510-8052-b4c04f4e4332");
        assert_eq!(f.len(), 32);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(f, fingerprint_of(" 4c4c4544-0042-3510-8052-b4c04f4e4332\n"));
        assert_ne!(f, fingerprint_of("another"));
        assert!(!f.contains("4c4c4544"));
        // Pinned (and equal to the Python package's): a fingerprint must never change between
        // versions, or every machine would take a second seat after an update.
        assert_eq!(
            fingerprint_of("machine-1"),
            "aa17bde707d0360b1e3b667bd2f8cc75"
        );
        assert_eq!(
            fingerprint_of("machine-1"),
            machine_id_hash("license-edge machine v1\0machine-1")[..32]
        );
    }

    #[test]
    fn the_fingerprint_is_stable_where_the_os_has_an_id() {
        // Two reads agree (what survives a reboot is the file or registry value itself).
        if let Ok(a) = fingerprint() {
            assert_eq!(a, fingerprint().unwrap());
        }
    }
}
