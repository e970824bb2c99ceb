//! The parts of a Spin manifest (v2) the test host reads: the application, its variables, its
//! HTTP triggers and its components. Anything else in the file is ignored, as a test fixture may.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The application's name.
    pub name: String,
    /// The application's version.
    pub version: String,
    /// Application variables by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// HTTP triggers in file order.
    pub routes: Vec<HttpTrigger>,
    /// Components by id.
    pub components: BTreeMap<String, ComponentDecl>,
    /// The folder the manifest lives in; component sources are relative to it.
    pub base_dir: PathBuf,
}

/// An application variable declaration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// The value used when no provider gives one.
    pub default: Option<String>,
    /// Whether `spin up` refuses to start without a value.
    #[serde(default)]
    pub required: bool,
    /// Whether the value is a secret (never logged).
    #[serde(default)]
    pub secret: bool,
    /// Free text.
    pub description: Option<String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    /// The route pattern as written.
    pub route: String,
    /// The component it serves.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ComponentDecl {
    /// Path of the `.wasm`, relative to the manifest.
    pub source: String,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Outbound addresses the component may reach (templates allowed).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: name to template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Free text.
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, base_dir).with_context(|| format!("in manifest {}", path.display()))
    }

    /// Parses manifest text; `base_dir` anchors relative component sources.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for name in raw.variables.keys() {
            check_variable_name(name)?;
            let decl = &raw.variables[name];
            if decl.required == decl.default.is_some() {
                bail!("variable {name:?} must have exactly one of `default` or `required = true`");
            }
        }
        for t in &raw.trigger.http {
            if !raw.component.contains_key(&t.component) {
                bail!(
                    "trigger for route {:?} names unknown component {:?}",
                    t.route,
                    t.component
                );
            }
        }
        for (id, c) in &raw.component {
            for name in c.variables.keys() {
                check_variable_name(name).with_context(|| format!("component {id:?}"))?;
            }
        }
        Ok(Manifest {
            name: raw.application.name,
            version: raw.application.version,
            variables: raw.variables,
            routes: raw.trigger.http,
            components: raw.component,
            base_dir,
        })
    }

    /// The absolute path of a component's `.wasm`.
    pub fn source_path(&self, component: &str) -> Option<PathBuf> {
        self.components
            .get(component)
            .map(|c| self.base_dir.join(&c.source))
    }
}

/// Spin variable names are `[a-z][a-z0-9_]*`.
pub fn check_variable_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
    if ok {
        Ok(())
    } else {
        bail!("invalid variable name {name:?}: must match [a-z][a-z0-9_]*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
db = { default = "x" }
key = { required = true, secret = true }
[[trigger.http]]
route = "/a"
component = "c"
[component.c]
source = "c.wasm"
key_value_stores = ["default"]
[component.c.variables]
db = "{{ db }}"
"#;

    #[test]
    fn parses_a_minimal_manifest() {
        let m = Manifest::parse(MINIMAL, PathBuf::from("/app")).unwrap();
        assert_eq!(m.routes[0].component, "c");
        assert!(m.variables["key"].required);
        assert_eq!(m.source_path("c").unwrap(), PathBuf::from("/app/c.wasm"));
    }

    #[test]
    fn rejects_unknown_component_and_bad_names() {
        let bad = MINIMAL.replace("component = \"c\"", "component = \"zz\"");
        assert!(Manifest::parse(&bad, PathBuf::new()).is_err());
        let bad = MINIMAL.replace("db = { default", "Db = { default");
        assert!(Manifest::parse(&bad, PathBuf::new()).is_err());
        let bad = MINIMAL.replace(
            "key = { required = true, secret = true }",
            "key = { secret = true }",
        );
        assert!(Manifest::parse(&bad, PathBuf::new()).is_err());
    }
}
