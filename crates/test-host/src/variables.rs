//! Application variables as Spin resolves them: a value given to the host (like `spin up
//! --variable`) beats `SPIN_VARIABLE_<NAME>` from the environment, which beats the manifest
//! default; a required variable left without a value stops the app from loading. Component
//! variables are templates over application variables (`"{{ name }}"`).

use crate::manifest::{check_variable_name, VariableDecl};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};

/// Resolved application variables.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    values: HashMap<String, String>,
}

impl Variables {
    /// Resolves every declared variable. `env` looks up a process environment variable;
    /// `overrides` are values set by the caller. Names neither declared nor valid are ignored,
    /// as Spin ignores undeclared names given by flag or environment.
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for (name, decl) in decls {
            let from_env = || env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()));
            let value = overrides
                .get(name)
                .cloned()
                .or_else(from_env)
                .or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => missing.push(format!("Key({name:?})")),
            }
        }
        if !missing.is_empty() {
            bail!(
                "no provider resolved required variable(s): [{}]",
                missing.join(", ")
            );
        }
        Ok(Variables { values })
    }

    /// Expands `{{ name }}` references in `template`. A reference to an undeclared variable is
    /// an error, as Spin refuses such a manifest at load.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated `{{{{` in template {template:?}");
            };
            let name = after[..end].trim();
            check_variable_name(name)?;
            match self.values.get(name) {
                Some(v) => out.push_str(v),
                None => bail!("template {template:?} refers to undeclared variable {name:?}"),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Why a component's `variables::get` failed, mirroring the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    /// The name is not `[a-z][a-z0-9_]*`.
    InvalidName(String),
    /// The component declares no such variable.
    Undefined(String),
}

/// The variables one component may read: its own table of templates.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables {
    resolved: HashMap<String, String>,
}

impl ComponentVariables {
    /// Expands a component's templates once, at load.
    pub fn new(app: &Variables, templates: &BTreeMap<String, String>) -> Result<Self> {
        let mut resolved = HashMap::new();
        for (name, template) in templates {
            resolved.insert(name.clone(), app.expand(template)?);
        }
        Ok(ComponentVariables { resolved })
    }

    /// What `spin_sdk::variables::get(name)` answers inside the component.
    pub fn get(&self, name: &str) -> Result<String, GetError> {
        if check_variable_name(name).is_err() {
            return Err(GetError::InvalidName(format!(
                "invalid variable name {name:?}"
            )));
        }
        self.resolved
            .get(name)
            .cloned()
            .ok_or_else(|| GetError::Undefined(format!("no variable for {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls() -> BTreeMap<String, VariableDecl> {
        let mut d = BTreeMap::new();
        d.insert(
            "db_host".into(),
            VariableDecl {
                default: Some("h:1".into()),
                ..Default::default()
            },
        );
        d.insert(
            "multi_word".into(),
            VariableDecl {
                required: true,
                ..Default::default()
            },
        );
        d
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = |k: &str| (k == "SPIN_VARIABLE_MULTI_WORD").then(|| "env".to_owned());
        let v = Variables::resolve(&decls(), env, &BTreeMap::new()).unwrap();
        assert_eq!(v.expand("{{ multi_word }}@{{db_host}}").unwrap(), "env@h:1");
        let mut o = BTreeMap::new();
        o.insert("multi_word".to_owned(), "flag".to_owned());
        let v = Variables::resolve(&decls(), env, &o).unwrap();
        assert_eq!(v.expand("{{ multi_word }}").unwrap(), "flag");
    }

    #[test]
    fn required_without_value_fails_like_spin() {
        let err = Variables::resolve(&decls(), |_| None, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no provider resolved required variable(s): [Key(\"multi_word\")]"
        );
    }

    #[test]
    fn lower_case_env_names_are_ignored() {
        let env = |k: &str| (k == "SPIN_VARIABLE_multi_word").then(|| "x".to_owned());
        assert!(Variables::resolve(&decls(), env, &BTreeMap::new()).is_err());
    }

    #[test]
    fn component_reads_only_its_own_variables() {
        let mut o = BTreeMap::new();
        o.insert("multi_word".to_owned(), "v".to_owned());
        let app = Variables::resolve(&decls(), |_| None, &o).unwrap();
        let mut t = BTreeMap::new();
        t.insert("url".to_owned(), "pg://{{ db_host }}/x".to_owned());
        let c = ComponentVariables::new(&app, &t).unwrap();
        assert_eq!(c.get("url").unwrap(), "pg://h:1/x");
        assert!(matches!(c.get("db_host"), Err(GetError::Undefined(_))));
        assert!(matches!(c.get("Bad"), Err(GetError::InvalidName(_))));
        t.insert("x".to_owned(), "{{ nope }}".to_owned());
        assert!(ComponentVariables::new(&app, &t).is_err());
    }
}
