//! `${env:NAME}` and `${NAME}` references in config values, as the OpenTelemetry Collector
//! expands them, so a secret (an authorization header, a key path) lives in the environment
//! rather than in the file. `$$` stands for a literal `$`.
//!
//! Expansion works on the parsed tree, string values only (never keys, never the raw text), so
//! a value can neither change the file's structure nor inject keys. A value that is exactly one
//! reference takes the type of what it expands to (`max_queue_size: ${env:QUEUE}` with
//! `QUEUE=4096` is a number), as in the Collector. A variable that is not set is a config error
//! naming it.
use super::{ConfigError, Env};

/// Longest value after expansion (a bound on what one variable can put into the config).
const MAX_EXPANDED_BYTES: usize = 64 * 1024;

/// Expands the references in `text`. `Ok(None)` when there is nothing to expand.
pub fn expand(text: &str, env: &dyn Env) -> Result<Option<String>, ConfigError> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body.find('}').ok_or_else(|| {
            ConfigError::new(
                format!("${{{}", body.chars().take(40).collect::<String>()),
                "unclosed `${` (write `$$` for a literal `$`)",
            )
        })?;
        let reference = &body[..end];
        let name = reference.strip_prefix("env:").unwrap_or(reference);
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::new(
                format!("${{{reference}}}"),
                "not a variable reference (`${env:NAME}` or `${NAME}`, NAME of letters, digits and `_`)",
            ));
        }
        let value = env.get(name).ok_or_else(|| {
            ConfigError::new(
                name,
                format!("is not set (referenced as `${{{reference}}}` in the config file)"),
            )
        })?;
        out.push_str(&value);
        if out.len() > MAX_EXPANDED_BYTES {
            return Err(ConfigError::new(
                name,
                format!("expands a value beyond {MAX_EXPANDED_BYTES} bytes"),
            ));
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Whether `text` is one reference and nothing else (its expansion then keeps its own type).
fn whole_reference(text: &str) -> bool {
    text.starts_with("${") && text.ends_with('}') && text[2..].find('}') == Some(text.len() - 3)
}

/// Expands every string value of a YAML tree.
pub fn yaml(v: &mut serde_yaml::Value, env: &dyn Env) -> Result<(), ConfigError> {
    use serde_yaml::Value;
    match v {
        Value::String(s) => {
            if let Some(new) = expand(s, env)? {
                *v = if whole_reference(s) {
                    // A scalar, typed as YAML would type it (numbers, booleans); never a
                    // mapping or list, so a variable cannot add structure.
                    match serde_yaml::from_str::<Value>(&new) {
                        Ok(t @ (Value::Number(_) | Value::Bool(_))) => t,
                        _ => Value::String(new),
                    }
                } else {
                    Value::String(new)
                };
            }
        }
        Value::Sequence(items) => {
            for item in items {
                yaml(item, env)?;
            }
        }
        Value::Mapping(m) => {
            for (_, item) in m.iter_mut() {
                yaml(item, env)?;
            }
        }
        Value::Tagged(t) => yaml(&mut t.value, env)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Expands every string value of a TOML tree.
pub fn toml(v: &mut toml::Value, env: &dyn Env) -> Result<(), ConfigError> {
    use toml::Value;
    match v {
        Value::String(s) => {
            if let Some(new) = expand(s, env)? {
                *v = if whole_reference(s) {
                    if let Ok(i) = new.trim().parse::<i64>() {
                        Value::Integer(i)
                    } else if let Ok(f) = new.trim().parse::<f64>() {
                        Value::Float(f)
                    } else if let Ok(b) = new.trim().parse::<bool>() {
                        Value::Boolean(b)
                    } else {
                        Value::String(new)
                    }
                } else {
                    Value::String(new)
                };
            }
        }
        Value::Array(items) => {
            for item in items {
                toml(item, env)?;
            }
        }
        Value::Table(t) => {
            for (_, item) in t.iter_mut() {
                toml(item, env)?;
            }
        }
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    #[test]
    fn references_and_escapes() {
        let env = MapEnv::from_pairs(&[("TOKEN", "Bearer abc"), ("PORT", "4318")]);
        let x = |t: &str| expand(t, &env);
        assert_eq!(x("plain").unwrap(), None);
        assert_eq!(x("${env:TOKEN}").unwrap().unwrap(), "Bearer abc");
        assert_eq!(x("127.0.0.1:${PORT}").unwrap().unwrap(), "127.0.0.1:4318");
        assert_eq!(x("cost $$5, $x").unwrap().unwrap(), "cost $5, $x");
        let err = x("${env:MISSING}").unwrap_err();
        assert_eq!(err.key, "MISSING");
        assert!(err.reason.contains("${env:MISSING}"), "{err}");
        assert!(x("${env:TOKEN").is_err());
        assert!(x("${env:A-B}").is_err());
        assert!(whole_reference("${env:PORT}"));
        assert!(!whole_reference("${A}${B}"));
        assert!(!whole_reference("x${A}"));
    }
}
