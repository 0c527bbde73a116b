//! `http.route` from configured path templates (`http_routes`).
//!
//! Envoy does not expose a route template to the filter, so the operator lists the
//! service's templates (`/api/orders/{id}`, `/static/{*path}`); they are compiled once at
//! configure time into segment lists, and each request's path is matched segment by
//! segment without allocating. First match wins.
//!
//! Template grammar: starts with `/`; segments separated by `/`, each either a literal
//! (visible ASCII except `{ } ? #`), a parameter `{name}` (one non-empty path segment), or, as
//! the last segment only, a catch-all `{*name}` (whatever remains, possibly nothing). Names
//! are `[A-Za-z0-9_]+`, unique within a template. Only the last segment may be empty, so `/`
//! and `/api/` are templates while `/a//b` is not. Literals compare byte for byte
//! (case-sensitive, as paths are, and undecoded, as they arrive).

/// Templates accepted at most.
pub const MAX_ROUTES: usize = 256;
/// Longest template in bytes.
pub const MAX_TEMPLATE_LEN: usize = 256;

/// One compiled template segment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Must equal this path segment.
    Literal(String),
    /// Any one non-empty path segment.
    Param,
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    /// The template as configured (the `http.route` value).
    template: String,
    /// Segments before the catch-all, if any.
    segments: Vec<Segment>,
    /// Ends in `{*name}`.
    catch_all: bool,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for seg in &self.segments {
            let Some(p) = parts.next() else {
                return false;
            };
            let ok = match seg {
                Segment::Literal(l) => p == l,
                Segment::Param => !p.is_empty(),
            };
            if !ok {
                return false;
            }
        }
        self.catch_all || parts.next().is_none()
    }
}

/// A template the configuration cannot use: its index in `http_routes` and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// Index in the configured list.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The compiled `http_routes`, in configured order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

fn param_name(inner: &str) -> Option<&str> {
    let ok = !inner.is_empty()
        && inner
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_');
    ok.then_some(inner)
}

fn compile_one(t: &str) -> Result<Route, String> {
    if t.len() > MAX_TEMPLATE_LEN {
        return Err(format!("longer than {MAX_TEMPLATE_LEN} bytes"));
    }
    let Some(rest) = t.strip_prefix('/') else {
        return Err("must start with '/'".into());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    let mut segments = Vec::with_capacity(parts.len());
    let mut names: Vec<&str> = Vec::new();
    let mut catch_all = false;
    for (i, p) in parts.iter().enumerate() {
        let name = if let Some(inner) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if let Some(n) = inner.strip_prefix('*') {
                if i != last {
                    return Err(format!("catch-all {p:?} must be the last segment"));
                }
                catch_all = true;
                n
            } else {
                segments.push(Segment::Param);
                inner
            }
        } else {
            if p.is_empty() && i != last {
                return Err("empty segment ('//')".into());
            }
            if let Some(c) = p
                .chars()
                .find(|c| !c.is_ascii_graphic() || matches!(c, '{' | '}' | '?' | '#'))
            {
                return Err(format!(
                    "segment {p:?}: {c:?} is not allowed in a literal (a parameter is a whole segment `{{name}}`)"
                ));
            }
            segments.push(Segment::Literal((*p).to_owned()));
            continue;
        };
        let Some(name) = param_name(name) else {
            return Err(format!(
                "segment {p:?}: parameter names are letters, digits and '_'"
            ));
        };
        if names.contains(&name) {
            return Err(format!("parameter {name:?} appears twice"));
        }
        names.push(name);
    }
    Ok(Route {
        template: t.to_owned(),
        segments,
        catch_all,
    })
}

impl RouteTable {
    /// Compiles the templates, or says which one is invalid and why.
    pub fn compile(templates: &[String]) -> Result<RouteTable, RouteError> {
        if templates.len() > MAX_ROUTES {
            return Err(RouteError {
                index: MAX_ROUTES,
                reason: format!("at most {MAX_ROUTES} templates"),
            });
        }
        let routes = templates
            .iter()
            .enumerate()
            .map(|(index, t)| compile_one(t).map_err(|reason| RouteError { index, reason }))
            .collect::<Result<_, _>>()?;
        Ok(RouteTable { routes })
    }

    /// No templates configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The first template matching the path of `path_and_query` (query and fragment ignored).
    pub fn find(&self, path_and_query: &str) -> Option<&str> {
        let end = path_and_query
            .find(['?', '#'])
            .unwrap_or(path_and_query.len());
        let path = &path_and_query[..end];
        self.routes
            .iter()
            .find(|r| r.matches(path))
            .map(|r| r.template.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(t: &[&str]) -> RouteTable {
        let v: Vec<String> = t.iter().map(|s| s.to_string()).collect();
        RouteTable::compile(&v).unwrap()
    }

    const DEMO: &[&str] = &[
        "/api/orders/{id}",
        "/api/users/{id}/cart",
        "/api/orders",
        "/static/{*path}",
        "/",
        "/api/",
    ];

    #[rustfmt::skip]
    const MATCH: &[(&str, Option<&str>, &str)] = &[
        ("/api/orders/42",             Some("/api/orders/{id}"),     "parameter"),
        ("/api/orders/42?x=1&y=/a",    Some("/api/orders/{id}"),     "query ignored"),
        ("/api/orders/42#frag",        Some("/api/orders/{id}"),     "fragment ignored"),
        ("/api/orders",                Some("/api/orders"),          "literal"),
        ("/api/orders?id=1",           Some("/api/orders"),          "literal, query ignored"),
        ("/api/orders/",               None,                         "a parameter is never empty"),
        ("/api/orders/42/",            None,                         "trailing slash is a segment"),
        ("/api/orders/42/items",       None,                         "too many segments"),
        ("/api/users/7/cart",          Some("/api/users/{id}/cart"), "parameter in the middle"),
        ("/api/users//cart",           None,                         "empty parameter"),
        ("/api/users/7/carts",         None,                         "literal differs"),
        ("/API/orders/42",             None,                         "case-sensitive"),
        ("/static/css/site.css",       Some("/static/{*path}"),      "catch-all, several segments"),
        ("/static/",                   Some("/static/{*path}"),      "catch-all, empty"),
        ("/static",                    Some("/static/{*path}"),      "catch-all, nothing"),
        ("/staticx/a",                 None,                         "literal prefix is not enough"),
        ("/",                          Some("/"),                    "root"),
        ("/?q=1",                      Some("/"),                    "root with query"),
        ("/api/",                      Some("/api/"),                "trailing-slash template"),
        ("/api",                       None,                         "without the slash"),
        ("",                           None,                         "no path"),
        ("*",                          None,                         "asterisk form"),
        ("api/orders/1",               None,                         "no leading slash"),
    ];

    #[test]
    fn matching_table() {
        let t = table(DEMO);
        for &(path, want, why) in MATCH {
            assert_eq!(t.find(path), want, "{path:?}: {why}");
        }
    }

    #[test]
    fn first_match_wins() {
        let t = table(&["/a/{x}", "/a/b", "/{*rest}"]);
        assert_eq!(t.find("/a/b"), Some("/a/{x}"));
        assert_eq!(t.find("/c/d/e"), Some("/{*rest}"));
        assert_eq!(t.find("/"), Some("/{*rest}"));
        assert!(table(&[]).find("/a").is_none());
        assert!(table(&[]).is_empty());
    }

    #[rustfmt::skip]
    const BAD: &[(&str, &str)] = &[
        ("api/orders",           "start with '/'"),
        ("",                     "start with '/'"),
        ("/a//b",                "empty segment"),
        ("/a/{*p}/b",            "last segment"),
        ("/a/{}",                "parameter names"),
        ("/a/{*}",               "parameter names"),
        ("/a/{i-d}",             "parameter names"),
        ("/a/{id}.json",         "not allowed in a literal"),
        ("/a/x{id}",             "not allowed in a literal"),
        ("/a/{id",               "not allowed in a literal"),
        ("/a b",                 "not allowed in a literal"),
        ("/a?b",                 "not allowed in a literal"),
        ("/caf\u{e9}",           "not allowed in a literal"),
        ("/{id}/{id}",           "appears twice"),
        ("/{id}/{*id}",          "appears twice"),
    ];

    #[test]
    fn invalid_templates_are_refused_with_a_reason() {
        for &(t, reason) in BAD {
            let e = RouteTable::compile(&["/ok".to_string(), t.to_string()]).expect_err(t);
            assert_eq!(e.index, 1, "{t:?}");
            assert!(e.reason.contains(reason), "{t:?}: {}", e.reason);
        }
        let long = format!("/{}", "a".repeat(MAX_TEMPLATE_LEN));
        let e = RouteTable::compile(&[long]).unwrap_err();
        assert!(e.reason.contains("longer than 256"), "{}", e.reason);
        let ok = format!("/{}", "a".repeat(MAX_TEMPLATE_LEN - 1));
        assert!(RouteTable::compile(&[ok]).is_ok(), "256 bytes is allowed");
        let many: Vec<String> = (0..=MAX_ROUTES).map(|i| format!("/r{i}")).collect();
        let e = RouteTable::compile(&many).unwrap_err();
        assert!(e.reason.contains("at most 256"), "{}", e.reason);
        assert!(RouteTable::compile(&many[..MAX_ROUTES]).is_ok());
    }
}
