//! Runs the built `licensectl` binary: keygen -> jwks -> issue -> verify, refusals and usage.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use license_edge_token::{Claims, KeySet, SigningKey};
use serde_json::Value;

fn licensectl(args: &[&str]) -> Output {
    licensectl_with_stdin(args, "")
}

fn licensectl_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_licensectl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// One line on stderr, mentioning `needle`.
#[track_caller]
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Setup {
    _dir: tempfile::TempDir,
    key: PathBuf,
    jwks: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k1.key");
        let jwks = dir.path().join("jwks.json");
        let out = licensectl(&["keygen", "--kid", "k1", "--out", path(&key)]);
        assert_exit(&out, 0);
        let out = licensectl(&["jwks", path(&key)]);
        assert_exit(&out, 0);
        std::fs::write(&jwks, out.stdout).unwrap();
        Setup {
            _dir: dir,
            key,
            jwks,
        }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn issue(&self, claims: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "token",
            "issue",
            "--key",
            path(&self.key),
            "--claims",
            claims,
        ];
        args.extend_from_slice(extra);
        let out = licensectl(&args);
        assert_exit(&out, 0);
        stdout(&out).trim().to_owned()
    }

    fn verify(&self, token: &str, extra: &[&str]) -> Output {
        let mut args = vec!["token", "verify", "--jwks", path(&self.jwks)];
        args.extend_from_slice(extra);
        args.push(token);
        licensectl(&args)
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_text(&std::fs::read_to_string(&self.key).unwrap()).unwrap()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CLAIMS: &str = r#"{"iss":"https://lic.example","sub":"lic_1","aud":"prod_a","org":"org_1","plan":"pro","features":["sso"],"max_seats":5,"tier":"gold"}"#;

#[test]
fn keygen_issue_verify_round_trip() {
    let s = Setup::new();
    let token = s.issue(CLAIMS, &["--ttl", "10m", "--machine-id", "machine-42"]);
    let out = s.verify(
        &token,
        &[
            "--aud",
            "prod_a",
            "--iss",
            "https://lic.example",
            "--machine-id",
            "machine-42",
        ],
    );
    assert_exit(&out, 0);
    let claims: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(claims["sub"], "lic_1");
    assert_eq!(claims["features"][0], "sso");
    assert_eq!(claims["tier"], "gold", "extra claims are kept");
    assert_eq!(
        claims["mid"],
        license_edge_token::machine_id_hash("machine-42")
    );
    assert_eq!(claims["jti"], claims["sid"]);
    assert!(claims["sid"].as_str().unwrap().starts_with("ses_"));
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 600);
    assert!((iat - now()).abs() < 60);

    // The token also verifies from stdin, and with the compact public key text.
    let out = licensectl_with_stdin(
        &["token", "verify", "--jwks", path(&s.jwks), "-"],
        &format!("{token}\n"),
    );
    assert_exit(&out, 0);
    let text_keys = s.dir().join("keys.txt");
    let out = licensectl(&["jwks", "--text", path(&s.key)]);
    assert_exit(&out, 0);
    std::fs::write(&text_keys, out.stdout).unwrap();
    let out = licensectl(&["token", "verify", "--jwks", path(&text_keys), &token]);
    assert_exit(&out, 0);
}

#[cfg(unix)]
#[test]
fn keygen_writes_mode_0600_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    let out = licensectl(&["keygen", "--kid", "k", "--out", path(&key)]);
    assert_exit(&out, 0);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let jwk: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["kid"], "k");
    assert!(jwk.get("d").is_none(), "the public JWK has no private part");
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(secret.starts_with("ed25519-secret:k:"));
    let seed = secret.trim().rsplit(':').next().unwrap();
    assert!(!stdout(&out).contains(seed) && !stderr(&out).contains(seed));

    let again = licensectl(&["keygen", "--kid", "k", "--out", path(&key)]);
    assert_exit(&again, 2);
    assert_one_line_error(&again, "--force");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        secret,
        "file untouched"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let forced = licensectl(&["keygen", "--kid", "k", "--out", path(&key), "--force"]);
    assert_exit(&forced, 0);
    assert_ne!(std::fs::read_to_string(&key).unwrap(), secret);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a replaced file is restricted too");
}

#[test]
fn jwks_lists_every_key() {
    let s = Setup::new();
    let second = s.dir().join("k2.key");
    assert_exit(
        &licensectl(&["keygen", "--kid", "k2", "--out", path(&second)]),
        0,
    );
    let out = licensectl(&["jwks", path(&s.key), path(&second)]);
    assert_exit(&out, 0);
    let set = KeySet::from_jwks_json(&stdout(&out)).unwrap();
    assert_eq!(set.len(), 2);
    // Twice the same key: duplicate kid.
    let out = licensectl(&["jwks", path(&s.key), path(&s.key)]);
    assert_exit(&out, 2);
    assert_one_line_error(&out, "kid");
}

/// A Cloud KMS key version's public key (RFC 8032 test 1's, as openssl writes its PEM)
/// becomes the JWKS entry with the kid the acquire component signs under, and a text entry
/// that joins a `public_keys` set beside a local key during a move to KMS.
#[test]
fn kms_jwk_turns_a_key_versions_pem_into_its_jwks_entry() {
    let s = Setup::new();
    let name = "projects/acme-licensing/locations/europe-west1/keyRings/license-edge/cryptoKeys/token-signing/cryptoKeyVersions/1";
    let pem = s.dir().join("kms.pem");
    std::fs::write(
        &pem,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = licensectl(&["kms-jwk", "--key-version", name, path(&pem)]);
    assert_exit(&out, 0);
    let jwk: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        jwk,
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                           "kid": "kms-v1-7d5c63b1a36cfd9a", "alg": "EdDSA", "use": "sig"})
    );
    // The same from standard input, as text, joined to the local key's entry.
    let pem_text = std::fs::read_to_string(&pem).unwrap();
    let out = licensectl_with_stdin(
        &["kms-jwk", "--key-version", name, "--text", "-"],
        &pem_text,
    );
    assert_exit(&out, 0);
    let local = licensectl(&["jwks", "--text", path(&s.key)]);
    let joined = format!("{},{}", stdout(&local).trim(), stdout(&out).trim());
    let set = KeySet::from_text(&joined).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.get("kms-v1-7d5c63b1a36cfd9a").is_some());
    // Not a key version name, not an Ed25519 key: usage errors, one line each.
    let out = licensectl(&["kms-jwk", "--key-version", "projects/p/keys/k", path(&pem)]);
    assert_exit(&out, 2);
    assert_one_line_error(&out, "key version");
    let p256 = s.dir().join("p256.pem");
    std::fs::write(
        &p256,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEuD2W0aqwOSWq54QCamw7u6b9GHWW\niB5QjbEoJ37y6+afrqlwa/58YE1eZDbQT0EyB1Fg9fjyt8O06hA+FgACrA==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = licensectl(&["kms-jwk", "--key-version", name, path(&p256)]);
    assert_exit(&out, 2);
    assert_one_line_error(&out, "Ed25519");
}

#[test]
fn expired_token_exits_1_with_its_code() {
    let s = Setup::new();
    let past = now() - 3600;
    let claims = Claims::new("i", "lic_1", "prod_a", "ses_1", past - 600, 600);
    let token = license_edge_token::issue(&s.signing_key(), &claims).unwrap();
    let out = s.verify(&token, &[]);
    assert_exit(&out, 1);
    assert_one_line_error(&out, "expired");
    assert!(stdout(&out).is_empty());
}

#[test]
fn tampered_token_exits_1_with_its_code() {
    let s = Setup::new();
    let token = s.issue(CLAIMS, &[]);
    // Re-encode the claims with another subject, keep the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = {
        let out = s.verify(&token, &[]);
        let mut claims: Value = serde_json::from_str(&stdout(&out)).unwrap();
        claims["max_seats"] = 500.into();
        base64url(claims.to_string().as_bytes())
    };
    let tampered = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    let out = s.verify(&tampered, &[]);
    assert_exit(&out, 1);
    assert_one_line_error(&out, "bad_signature");

    let garbage = s.verify("not-a-token", &[]);
    assert_exit(&garbage, 1);
    assert_one_line_error(&garbage, "malformed");
}

#[test]
fn policy_refusals_exit_1_with_their_codes() {
    let s = Setup::new();
    let token = s.issue(CLAIMS, &["--machine-id", "machine-42"]);
    for (args, code) in [
        (&["--aud", "prod_b"][..], "wrong_audience"),
        (&["--iss", "https://evil.example"][..], "wrong_issuer"),
        (&["--machine-id", "machine-43"][..], "machine_mismatch"),
    ] {
        let out = s.verify(&token, args);
        assert_exit(&out, 1);
        assert_one_line_error(&out, code);
    }
    // Another key set: the kid is unknown.
    let other = s.dir().join("other.key");
    assert_exit(
        &licensectl(&["keygen", "--kid", "other", "--out", path(&other)]),
        0,
    );
    let other_jwks = s.dir().join("other.json");
    std::fs::write(&other_jwks, licensectl(&["jwks", path(&other)]).stdout).unwrap();
    let out = licensectl(&["token", "verify", "--jwks", path(&other_jwks), &token]);
    assert_exit(&out, 1);
    assert_one_line_error(&out, "unknown_key");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &[][..],
        &["bogus"][..],
        &["keygen"][..],
        &["token"][..],
        &["token", "verify", "tok"][..],
        &[
            "token", "issue", "--key", "k", "--claims", "{}", "--ttl", "ten",
        ][..],
        &[
            "token", "issue", "--key", "k", "--claims", "{}", "--ttl", "0s",
        ][..],
        &["jwks"][..],
    ] {
        let out = licensectl(args);
        assert_exit(&out, 2);
        // clap's usage message (with the help for a bare `licensectl`), nothing on stdout.
        assert!(
            !stderr(&out).is_empty() && stdout(&out).is_empty(),
            "{args:?}"
        );
        if !args.is_empty() && args != ["token"] {
            assert!(
                stderr(&out).starts_with("error:"),
                "{args:?}: {}",
                stderr(&out)
            );
        }
    }
    assert_exit(&licensectl(&["--help"]), 0);
    assert_exit(&licensectl(&["token", "verify", "--help"]), 0);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let s = Setup::new();
    let key = path(&s.key);
    let missing = s.dir().join("missing.json");
    let claims_file = s.dir().join("claims.json");
    std::fs::write(&claims_file, r#"{"iss":"i","sub":"s","aud":"a","sub":"t"}"#).unwrap();
    let claims_at = format!("@{}", path(&claims_file));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["keygen", "--kid", "a:b", "--out", path(&missing)],
            "kid",
        ),
        (
            vec![
                "token",
                "issue",
                "--key",
                path(&missing),
                "--claims",
                CLAIMS,
            ],
            "cannot open",
        ),
        (
            vec!["token", "issue", "--key", path(&s.jwks), "--claims", CLAIMS],
            "not a signing key",
        ),
        (
            vec!["token", "issue", "--key", key, "--claims", "[1]"],
            "JSON object",
        ),
        (
            vec!["token", "issue", "--key", key, "--claims", "{"],
            "JSON object",
        ),
        (
            vec!["token", "issue", "--key", key, "--claims", &claims_at],
            "duplicate",
        ),
        (
            vec![
                "token",
                "issue",
                "--key",
                key,
                "--claims",
                r#"{"iss":"i","aud":"a"}"#,
            ],
            "`sub`",
        ),
        (
            vec![
                "token",
                "issue",
                "--key",
                key,
                "--claims",
                r#"{"iss":"i","sub":"s","aud":1}"#,
            ],
            "`aud`",
        ),
        (
            vec![
                "token",
                "issue",
                "--key",
                key,
                "--claims",
                r#"{"iss":"i","sub":"s","aud":"a","exp":1}"#,
            ],
            "exp",
        ),
        (
            vec![
                "token",
                "issue",
                "--key",
                key,
                "--claims",
                "@/nonexistent/claims.json",
            ],
            "cannot open",
        ),
        (
            vec!["token", "verify", "--jwks", path(&missing), "tok"],
            "cannot open",
        ),
        (vec!["token", "verify", "--jwks", key, "tok"], "signing key"),
        (vec!["jwks", path(&s.jwks)], "not a signing key"),
    ];
    for (args, needle) in cases {
        let out = licensectl(&args);
        assert_exit(&out, 2);
        assert_one_line_error(&out, needle);
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    assert!(!missing.exists(), "a refused keygen writes nothing");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
