//! Spin's HTTP routing, as observed on a real Spin CLI (see shared/SPIN-FACTS.md): exact routes
//! (which also answer with one trailing slash), `/prefix/...` wildcards, `:name` segments, the
//! most specific route winning whatever the order in the manifest, matching case-sensitive, and
//! leading duplicate slashes ignored.

use anyhow::{bail, Result};

/// A compiled route table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    /// The route as Spin reports it in `spin-matched-route` (normalised).
    pattern: String,
    kind: Kind,
    component: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Whole-path match; `segments` may hold `:name` captures.
    Exact { segments: Vec<String> },
    /// `prefix` followed by anything (or nothing).
    Wildcard { prefix: String },
}

/// The result of routing one request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component id that serves the request.
    pub component: String,
    /// `spin-matched-route` and `spin-raw-component-route`: the route pattern.
    pub matched_route: String,
    /// `spin-component-route`: the pattern without its trailing `/...`.
    pub component_route: String,
    /// `spin-path-info`: the part of the path after the route's fixed prefix.
    pub path_info: String,
    /// `:name` captures, as (name, value), for `spin-path-match-<name>` headers.
    pub captures: Vec<(String, String)>,
}

impl Router {
    /// Builds a router from (route, component) pairs, in manifest order.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut out = Vec::new();
        for (route, component) in routes {
            out.push(Route::parse(route, component)?);
        }
        Ok(Router { routes: out })
    }

    /// Routes a request path (no query string). `None` means Spin answers 404.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let path = format!("/{}", path.trim_start_matches('/'));
        self.routes
            .iter()
            .filter_map(|r| r.matches(&path).map(|m| (r.specificity(), m)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, m)| m)
    }
}

impl Route {
    fn parse(route: &str, component: &str) -> Result<Self> {
        if !route.starts_with('/') {
            bail!("route {route:?} must start with '/'");
        }
        let (pattern, kind) = if route == "/..." {
            (
                "/...".to_owned(),
                Kind::Wildcard {
                    prefix: String::new(),
                },
            )
        } else if let Some(prefix) = route.strip_suffix("/...") {
            let prefix = prefix.trim_end_matches('/').to_owned();
            (format!("{prefix}/..."), Kind::Wildcard { prefix })
        } else {
            let trimmed = route.trim_end_matches('/');
            let normal = if trimmed.is_empty() { "/" } else { trimmed };
            let segments = segments(normal);
            if segments.iter().any(|s| s.contains("...")) {
                bail!("route {route:?}: `...` is only allowed as the last segment");
            }
            (normal.to_owned(), Kind::Exact { segments })
        };
        Ok(Route {
            pattern,
            kind,
            component: component.to_owned(),
        })
    }

    /// Higher is more specific: exact routes beat wildcards; among exact routes, fewer captures
    /// win; among wildcards, the longer prefix wins.
    fn specificity(&self) -> (u8, usize, usize) {
        match &self.kind {
            Kind::Exact { segments } => {
                let captures = segments.iter().filter(|s| s.starts_with(':')).count();
                (2, usize::MAX - captures, segments.len())
            }
            Kind::Wildcard { prefix } => (1, prefix.len(), 0),
        }
    }

    fn matches(&self, path: &str) -> Option<RouteMatch> {
        let found = |path_info: String, captures| RouteMatch {
            component: self.component.clone(),
            matched_route: self.pattern.clone(),
            component_route: self
                .pattern
                .strip_suffix("/...")
                .map(str::to_owned)
                .unwrap_or_else(|| self.pattern.clone()),
            path_info,
            captures,
        };
        match &self.kind {
            Kind::Wildcard { prefix } => {
                let rest = path.strip_prefix(prefix.as_str())?;
                if rest.is_empty() || rest.starts_with('/') {
                    Some(found(rest.to_owned(), Vec::new()))
                } else {
                    None
                }
            }
            Kind::Exact { segments: want } => {
                let path = path
                    .strip_suffix('/')
                    .filter(|p| !p.is_empty())
                    .unwrap_or(path);
                let got = segments(path);
                if got.len() != want.len() {
                    return None;
                }
                let mut captures = Vec::new();
                for (w, g) in want.iter().zip(&got) {
                    if let Some(name) = w.strip_prefix(':') {
                        if g.is_empty() {
                            return None;
                        }
                        captures.push((name.to_owned(), g.clone()));
                    } else if w != g {
                        return None;
                    }
                }
                Some(found(String::new(), captures))
            }
        }
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').skip(1).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new([
            ("/api/...", "api"),
            ("/api/v1/health/", "health"),
            ("/api/v1/health/ready", "health"),
            ("/api/v1/licenses/sessions/...", "acquire"),
            ("/users/:id", "users"),
            ("/items/...", "items"),
        ])
        .unwrap()
    }

    #[test]
    fn exact_routes_take_one_trailing_slash_not_deeper_paths() {
        let r = router();
        let m = r.route("/api/v1/health/").unwrap();
        assert_eq!((m.component.as_str(), m.path_info.as_str()), ("health", ""));
        assert_eq!(m.matched_route, "/api/v1/health");
        assert_eq!(r.route("/api/v1/health").unwrap().component, "health");
        // Deeper paths fall through to the wildcard.
        assert_eq!(r.route("/api/v1/health/x").unwrap().component, "api");
    }

    #[test]
    fn longest_wildcard_wins_whatever_the_order() {
        let r = router();
        let m = r.route("/api/v1/licenses/sessions/abc/heartbeat/").unwrap();
        assert_eq!(m.component, "acquire");
        assert_eq!(m.path_info, "/abc/heartbeat/");
        assert_eq!(m.component_route, "/api/v1/licenses/sessions");
        let m = r.route("/api/other").unwrap();
        assert_eq!(
            (m.component.as_str(), m.path_info.as_str()),
            ("api", "/other")
        );
        assert_eq!(m.component_route, "/api");
        assert_eq!(m.matched_route, "/api/...");
    }

    #[test]
    fn wildcard_matches_bare_prefix_and_slash() {
        let r = router();
        assert_eq!(r.route("/items").unwrap().path_info, "");
        assert_eq!(r.route("/items/").unwrap().path_info, "/");
        assert_eq!(r.route("/items/a/b").unwrap().path_info, "/a/b");
        assert!(r.route("/itemsx").is_none());
    }

    #[test]
    fn captures_named_segments() {
        let r = router();
        let m = r.route("/users/42/").unwrap();
        assert_eq!(m.captures, vec![("id".to_owned(), "42".to_owned())]);
        assert!(r.route("/users/42/x").is_none());
    }

    #[test]
    fn case_sensitive_and_leading_slashes_folded() {
        let r = router();
        assert!(r.route("/API/v1/health").is_none());
        assert_eq!(r.route("//api/v1/health").unwrap().component, "health");
        assert!(r.route("/nothing").is_none());
    }
}
