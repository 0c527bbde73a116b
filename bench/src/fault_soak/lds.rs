//! Envoy for the fault soak: the benchmark's bootstrap (`envoy::Setup::render`) with its
//! listener moved into an LDS file that Envoy watches (`dynamic_resources.lds_config` with a
//! `path_config_source` and a `watched_directory`). A reload renders the listener again with a
//! changed filter configuration and replaces the file by an atomic rename: Envoy builds a new
//! filter configuration (a new root context in the Wasm VM, a new module configuration in the
//! native form) and tears the old one down after the old listener's drain.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// Splits a bootstrap into the bootstrap without listeners (reading them from `lds_path`,
/// watched in its directory) and the LDS document of those listeners.
pub fn split(bootstrap: &str, lds_path: &Path) -> Result<(String, String), String> {
    let mut doc: Value =
        serde_yaml::from_str(bootstrap).map_err(|e| format!("bootstrap YAML: {e}"))?;
    let listeners = doc
        .get_mut("static_resources")
        .and_then(Value::as_mapping_mut)
        .and_then(|m| m.remove("listeners"))
        .ok_or("bootstrap without static_resources.listeners")?;
    let dir = lds_path.parent().ok_or("LDS path without a directory")?;
    let dynamic: Value = serde_yaml::from_str(&format!(
        "lds_config:\n  resource_api_version: V3\n  path_config_source:\n    path: {:?}\n    watched_directory: {{ path: {:?} }}\n",
        lds_path.display().to_string(),
        dir.display().to_string()
    ))
    .map_err(|e| format!("dynamic_resources: {e}"))?;
    if let Value::Mapping(m) = &mut doc {
        m.insert(Value::from("dynamic_resources"), dynamic);
        // xDS, even from a file, needs the node's identity.
        m.insert(
            Value::from("node"),
            serde_yaml::from_str("{ id: aetherflow, cluster: aetherflow }")
                .map_err(|e| e.to_string())?,
        );
    }
    let bootstrap = serde_yaml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok((bootstrap, lds_document(listeners)?))
}

fn lds_document(listeners: Value) -> Result<String, String> {
    let Value::Sequence(listeners) = listeners else {
        return Err("static_resources.listeners is not a list".into());
    };
    aetherflow_harness::envoy_config::lds_document(&listeners)
}

/// Replaces the LDS file by an atomic rename with `lds`.
pub fn replace(lds_path: &Path, lds: &str) -> Result<(), String> {
    let tmp: PathBuf = lds_path.with_extension("yaml.tmp");
    std::fs::write(&tmp, lds).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, lds_path).map_err(|e| format!("rename to {}: {e}", lds_path.display()))
}

/// The listeners of a bootstrap as an LDS document (for a reload).
pub fn listeners_of(bootstrap: &str, lds_path: &Path) -> Result<String, String> {
    split(bootstrap, lds_path).map(|(_, lds)| lds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_move_to_the_lds_file() {
        let boot = "admin: {}\nstatic_resources:\n  listeners:\n  - name: ingress\n  clusters:\n  - name: c\n";
        let (b, lds) = split(boot, Path::new("/tmp/x/lds.yaml")).expect("split");
        let b: Value = serde_yaml::from_str(&b).expect("bootstrap");
        assert!(b["static_resources"].get("listeners").is_none());
        assert_eq!(b["static_resources"]["clusters"][0]["name"], "c");
        assert_eq!(
            b["dynamic_resources"]["lds_config"]["path_config_source"]["watched_directory"]["path"],
            "/tmp/x"
        );
        let lds: Value = serde_yaml::from_str(&lds).expect("lds");
        assert_eq!(lds["resources"][0]["name"], "ingress");
        assert_eq!(
            lds["resources"][0]["@type"],
            "type.googleapis.com/envoy.config.listener.v3.Listener"
        );
    }
}
