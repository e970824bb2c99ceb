//! Copies the WIT of the Spin interfaces the host implements out of the `spin-sdk` crate that the
//! components depend on, into `wit/deps/` (git-ignored). The repository never carries a copy of
//! Spin's WIT; the host is always built against exactly the interfaces the components import.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The spin-sdk release the components pin (see the workspace Cargo.toml).
const SPIN_SDK: &str = "spin-sdk-5.2.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wit/host.wit");
    // What this script writes: a checkout at another path that shares a target directory
    // (Cargo names path packages' artifacts the same wherever the workspace is) has none of it
    // until the script runs there.
    println!("cargo:rerun-if-changed=wit/deps/spin/package.wit");
    println!("cargo:rerun-if-changed=wit/deps/spin-postgres/postgres.wit");
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let sdk = find_sdk(&manifest_dir).unwrap_or_else(|| {
        panic!(
            "cannot find the {SPIN_SDK} sources; run `cargo fetch` in the workspace (the components depend on it)"
        )
    });
    let wit = sdk.join("wit").join("deps");
    let deps = manifest_dir.join("wit").join("deps");
    copy_package(
        &deps.join("spin"),
        "package fermyon:spin@2.0.0;\n",
        &[
            wit.join("spin@2.0.0/key-value.wit"),
            wit.join("spin@2.0.0/variables.wit"),
        ],
    );
    copy_package(
        &deps.join("spin-postgres"),
        "",
        &[wit.join("spin-postgres@4.0.0/postgres.wit")],
    );
}

/// Writes `files` into `dir`, plus a `package.wit` naming the package when `header` is given
/// (the interface files of a multi-file package do not all carry the package line).
fn copy_package(dir: &Path, header: &str, files: &[PathBuf]) {
    fs::create_dir_all(dir).expect("create wit/deps");
    if !header.is_empty() {
        write_if_changed(&dir.join("package.wit"), header);
    }
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text =
            fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let name = file.file_name().expect("a file name");
        write_if_changed(&dir.join(name), &text);
    }
}

fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// The unpacked spin-sdk sources: first in the cargo registry, then wherever `cargo metadata`
/// says (which also downloads and unpacks the crate when it is missing).
fn find_sdk(manifest_dir: &Path) -> Option<PathBuf> {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    if let Ok(registries) = fs::read_dir(cargo_home.join("registry").join("src")) {
        for registry in registries.flatten() {
            let candidate = registry.path().join(SPIN_SDK);
            if candidate.join("wit").is_dir() {
                return Some(candidate);
            }
        }
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(manifest_dir)
        .output()
        .ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    meta["packages"].as_array()?.iter().find_map(|p| {
        let manifest = p["manifest_path"].as_str()?;
        let dir = Path::new(manifest).parent()?;
        (dir.file_name()?.to_str()? == SPIN_SDK).then(|| dir.to_path_buf())
    })
}
