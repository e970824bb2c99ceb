//! The tree matches what ARCHITECTURE.md says of it, and the token crate stays a layer of its
//! own: no server module and no Spin in what a vendor's program compiles.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Whether a backticked word of the code map names a path of the repository (rather than a
/// type, a key pattern or a command). A path outside it (`../shared/...`, beside the checkout
/// on the development machines only) is not the repository's to check: a clone elsewhere has
/// none.
fn looks_like_path(word: &str) -> bool {
    let exts = [
        ".rs", ".md", ".json", ".sql", ".toml", ".sh", ".py", ".yaml",
    ];
    !word.contains([' ', '{', '}', ':', '*', '(', '<', '>', '='])
        && !word.starts_with('-')
        && !word.starts_with("../")
        && (word.contains('/') || exts.iter().any(|e| word.ends_with(e)))
}

/// The backticked paths of the "Code map" section, each with the folders it may be relative
/// to: the repository, the top-level entry's folder (and its `src/`), and any folder named
/// earlier in the same entry (`admin/` — `mod.rs`, `routes.rs`).
fn code_map_paths() -> Vec<(String, Vec<PathBuf>)> {
    let root = repo();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text
        .split("## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a code map")
        .split("\n## ")
        .next()
        .unwrap();
    let mut bases = vec![root.clone()];
    let mut entry_dirs: Vec<PathBuf> = Vec::new();
    let mut found = Vec::new();
    for line in section.lines() {
        let words: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        let trimmed = line.trim_start();
        if line.starts_with("- ") {
            bases = vec![root.clone()];
            if let Some(first) = words.first().filter(|w| looks_like_path(w)) {
                let base = root.join(first.trim_end_matches('/'));
                bases.extend([base.join("src"), base]);
            }
        }
        if trimmed.starts_with("- ") {
            entry_dirs.clear();
        }
        for word in words.into_iter().filter(|w| looks_like_path(w)) {
            let mut candidates: Vec<PathBuf> = bases.iter().map(|b| b.join(word)).collect();
            candidates.extend(entry_dirs.iter().map(|d| d.join(word)));
            if word.ends_with('/') {
                let dirs: Vec<PathBuf> =
                    candidates.iter().filter(|c| c.is_dir()).cloned().collect();
                entry_dirs.extend(dirs);
            }
            found.push((word.to_owned(), candidates));
        }
    }
    found
}

#[test]
fn every_path_the_code_map_names_exists() {
    let paths = code_map_paths();
    assert!(paths.len() > 40, "the code map names its paths: {paths:?}");
    let missing: Vec<&str> = paths
        .iter()
        .filter(|(_, candidates)| !candidates.iter().any(|c| c.exists()))
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:#?}"
    );
}

/// The crates `package` builds with (normal and build dependencies), by name, from
/// `cargo tree`; the whole tree as text for failure messages.
fn dependency_names(package: &str) -> (Vec<String>, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo())
        .args(["tree", "--offline", "-p", package, "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names = tree
        .lines()
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    (names, tree)
}

/// What a vendor's program must never compile through the token crate or the client library.
const SERVER_SIDE: [&str; 6] = [
    "license-edge",
    "edge-io",
    "spin-sdk",
    "wasi",
    "tokio",
    "hmac",
];

#[test]
fn the_token_crate_depends_on_nothing_server_side() {
    let (crates, tree) = dependency_names("license-edge-token");
    assert!(crates.iter().any(|c| c == "license-edge-token"), "{tree}");
    assert!(crates.iter().any(|c| c == "ed25519-compact"), "{tree}");
    for server_side in SERVER_SIDE {
        assert!(
            !crates.iter().any(|c| c == server_side),
            "the token crate pulls in {server_side}:\n{tree}"
        );
    }
}

#[test]
fn the_client_library_depends_on_the_token_crate_and_nothing_server_side() {
    let (crates, tree) = dependency_names("license-edge-client");
    assert!(crates.iter().any(|c| c == "license-edge-token"), "{tree}");
    for server_side in SERVER_SIDE {
        assert!(
            !crates.iter().any(|c| c == server_side),
            "the client library pulls in {server_side}:\n{tree}"
        );
    }
}
