//! Files, standard input, the clock and OS randomness: everything the core leaves to callers.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use license_edge_token::{KeySet, SigningKey};

/// The most read from standard input or a claims file; far more than any token or claims set.
const MAX_INPUT_BYTES: u64 = 1 << 20;

/// The current Unix time in seconds.
pub fn now() -> anyhow::Result<i64> {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    i64::try_from(elapsed.as_secs()).context("the system clock is out of range")
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot read OS randomness: {e}"))?;
    Ok(bytes)
}

/// Reads a UTF-8 text file, refusing anything over [`MAX_INPUT_BYTES`].
pub fn read_text_file(path: &Path) -> anyhow::Result<String> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_limited(file).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads standard input as UTF-8 text, refusing anything over [`MAX_INPUT_BYTES`].
pub fn read_stdin() -> anyhow::Result<String> {
    read_limited(std::io::stdin().lock()).context("cannot read standard input")
}

fn read_limited(reader: impl Read) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    reader.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("input is larger than {MAX_INPUT_BYTES} bytes");
    }
    String::from_utf8(bytes).context("input is not UTF-8 text")
}

/// Reads a private key file (`ed25519-secret:<kid>:<seed>`).
pub fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = read_text_file(path)?;
    SigningKey::from_text(&text).with_context(|| format!("{} is not a signing key", path.display()))
}

/// Reads a public key set file (JWKS JSON or `ed25519:<kid>:<x>` entries).
pub fn read_key_set(path: &Path) -> anyhow::Result<KeySet> {
    let text = read_text_file(path)?;
    KeySet::from_text(&text).with_context(|| format!("{} is not a public key set", path.display()))
}

/// Writes secret text to `path`, readable and writable by the owner only (mode 0600).
/// Refuses to replace an existing file unless `force`.
pub fn write_secret_file(path: &Path, contents: &str, force: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; pass --force to replace it",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })?;
    // `mode` applies only when the file is created; a replaced file keeps its old mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {} to mode 0600", path.display()))?;
    }
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
