//! Runnable Envoy configurations derived from the shipped `envoy/envoy.yaml`.
//!
//! The demo and the tests run the very file users deploy: [`EnvoyConfig::substitute`] changes only
//! listen addresses and ports, cluster endpoint addresses and the `.wasm` path. Tests may in addition
//! change the filter's JSON configuration ([`EnvoyConfig::update_filter_config`]) to exercise other keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// Name of the listener that produces SERVER spans in the shipped config.
pub const INGRESS: &str = "ingress";
/// Name of the egress example listener (CLIENT spans).
pub const EGRESS: &str = "egress";
/// Cluster of the demo HTTP service.
pub const DEMO_HTTP: &str = "demo_http";
/// Cluster of the demo gRPC service (HTTP/2 upstream).
pub const DEMO_GRPC: &str = "demo_grpc";
/// Cluster the filter exports spans to.
pub const TRACE_SHIM: &str = "trace_shim";

/// What to substitute in the shipped configuration. Names that do not exist in the file are errors,
/// so a renamed listener or cluster breaks the tests instead of silently running the old address.
#[derive(Clone, Debug, Default)]
pub struct Substitutions {
    /// Address every listener binds (the shipped ingress binds 0.0.0.0; tests use 127.0.0.1).
    pub listen_address: Option<String>,
    /// Port per listener name; 0 lets the kernel choose (read back with `Envoy::listener_port`).
    pub listener_ports: BTreeMap<String, u16>,
    /// Admin interface address; port 0 lets the kernel choose.
    pub admin: Option<SocketAddr>,
    /// Endpoint per cluster name (every endpoint of the cluster is replaced by this one).
    pub clusters: BTreeMap<String, SocketAddr>,
    /// Path of the `.wasm` module (replaces every local `filename` ending in `.wasm`).
    pub wasm_path: Option<PathBuf>,
}

impl Substitutions {
    /// Everything on loopback with kernel-chosen listener and admin ports, the given module, and the
    /// three clusters pointed at `demo_http`, `demo_grpc` and `trace_shim`.
    pub fn loopback(
        wasm: &Path,
        demo_http: SocketAddr,
        demo_grpc: SocketAddr,
        trace_shim: SocketAddr,
    ) -> Self {
        let mut s = Substitutions {
            listen_address: Some("127.0.0.1".into()),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            wasm_path: Some(wasm.to_path_buf()),
            ..Default::default()
        };
        s.listener_ports.insert(INGRESS.into(), 0);
        s.listener_ports.insert(EGRESS.into(), 0);
        s.clusters.insert(DEMO_HTTP.into(), demo_http);
        s.clusters.insert(DEMO_GRPC.into(), demo_grpc);
        s.clusters.insert(TRACE_SHIM.into(), trace_shim);
        s
    }
}

/// A parsed Envoy bootstrap configuration.
#[derive(Clone, Debug)]
pub struct EnvoyConfig {
    doc: Value,
}

impl EnvoyConfig {
    /// The shipped `envoy/envoy.yaml`.
    pub fn shipped() -> Result<Self, String> {
        Self::from_file(&crate::paths::shipped_envoy_yaml())
    }

    /// Parses a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::from_yaml_str(&text)
    }

    /// Parses configuration text.
    pub fn from_yaml_str(text: &str) -> Result<Self, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("envoy yaml: {e}"))?;
        Ok(EnvoyConfig { doc })
    }

    /// The configuration as YAML text (comments of the source file are not kept).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.doc).unwrap_or_default()
    }

    /// Writes the configuration to `path`.
    pub fn write_to(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.to_yaml()).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Names of the static listeners, in file order.
    pub fn listener_names(&self) -> Vec<String> {
        names(self.doc["static_resources"]["listeners"].as_sequence())
    }

    /// Names of the static clusters, in file order.
    pub fn cluster_names(&self) -> Vec<String> {
        names(self.doc["static_resources"]["clusters"].as_sequence())
    }

    /// Applies `subs`: addresses, ports and the wasm path, nothing else.
    pub fn substitute(&mut self, subs: &Substitutions) -> Result<(), String> {
        if let Some(admin) = subs.admin {
            let sa = self
                .doc
                .get_mut("admin")
                .and_then(|a| a.get_mut("address"))
                .and_then(|a| a.get_mut("socket_address"))
                .ok_or("config has no admin.address.socket_address")?;
            set_socket_address(sa, &admin.ip().to_string(), admin.port());
        }
        let listen_ports = &subs.listener_ports;
        for name in listen_ports.keys() {
            if !self.listener_names().contains(name) {
                return Err(format!("no listener named `{name}` in the config"));
            }
        }
        for listener in seq_mut(&mut self.doc, "listeners")? {
            let name = listener["name"].as_str().unwrap_or_default().to_string();
            let sa = listener
                .get_mut("address")
                .and_then(|a| a.get_mut("socket_address"))
                .ok_or_else(|| format!("listener `{name}` has no socket_address"))?;
            let address = match &subs.listen_address {
                Some(a) => a.clone(),
                None => sa["address"].as_str().unwrap_or("127.0.0.1").to_string(),
            };
            let port = match listen_ports.get(&name) {
                Some(p) => *p,
                None => sa["port_value"].as_u64().unwrap_or(0) as u16,
            };
            set_socket_address(sa, &address, port);
        }
        for name in subs.clusters.keys() {
            if !self.cluster_names().contains(name) {
                return Err(format!("no cluster named `{name}` in the config"));
            }
        }
        for cluster in seq_mut(&mut self.doc, "clusters")? {
            let name = cluster["name"].as_str().unwrap_or_default().to_string();
            let Some(addr) = subs.clusters.get(&name) else {
                continue;
            };
            let endpoints = cluster
                .get_mut("load_assignment")
                .and_then(|l| l.get_mut("endpoints"))
                .and_then(Value::as_sequence_mut)
                .ok_or_else(|| format!("cluster `{name}` has no load_assignment.endpoints"))?;
            for locality in endpoints {
                let Some(lbs) = locality
                    .get_mut("lb_endpoints")
                    .and_then(Value::as_sequence_mut)
                else {
                    continue;
                };
                for lb in lbs {
                    if let Some(sa) = lb
                        .get_mut("endpoint")
                        .and_then(|e| e.get_mut("address"))
                        .and_then(|a| a.get_mut("socket_address"))
                    {
                        set_socket_address(sa, &addr.ip().to_string(), addr.port());
                    }
                }
            }
        }
        if let Some(wasm) = &subs.wasm_path {
            replace_wasm_path(&mut self.doc, &wasm.display().to_string());
        }
        Ok(())
    }

    /// Loads the filter in `form` on every listener. The shipped file loads the Wasm form; for
    /// the native form each `envoy.filters.http.wasm` filter becomes the dynamic module with the
    /// same JSON configuration (the module's failure policy is built in: it always fails open).
    pub fn use_form(&mut self, form: crate::form::Form) -> Result<(), String> {
        if form == crate::form::Form::Wasm {
            return Ok(());
        }
        let mut replaced = 0;
        for listener in seq_mut(&mut self.doc, "listeners")? {
            for hf in http_filters_mut(listener) {
                if hf["name"].as_str() != Some(WASM_FILTER) {
                    continue;
                }
                let json = hf["typed_config"]["config"]["configuration"]["value"]
                    .as_str()
                    .unwrap_or("{}")
                    .to_string();
                *hf = native_filter(&json)?;
                replaced += 1;
            }
        }
        if replaced == 0 {
            return Err("no envoy.filters.http.wasm filter to replace".into());
        }
        Ok(())
    }

    /// The filter's JSON configuration on `listener` (the first trace filter of its first chain).
    pub fn filter_config(&self, listener: &str) -> Result<serde_json::Value, String> {
        let text = self.filter_config_text(listener)?;
        serde_json::from_str(&text).map_err(|e| format!("filter JSON on `{listener}`: {e}"))
    }

    /// The filter's configuration string on `listener`, as Envoy hands it to `on_configure`.
    pub fn filter_config_text(&self, listener: &str) -> Result<String, String> {
        let mut doc = self.doc.clone();
        let slot = wasm_configuration_value(&mut doc, listener)?;
        Ok(slot.as_str().unwrap_or_default().to_string())
    }

    /// Replaces the filter's configuration string on `listener` (any text: bad-config tests use this).
    pub fn set_filter_config_text(&mut self, listener: &str, text: &str) -> Result<(), String> {
        let slot = wasm_configuration_value(&mut self.doc, listener)?;
        *slot = Value::String(text.to_string());
        Ok(())
    }

    /// Edits the filter's JSON object on `listener`, e.g. `|c| { c.insert("sample_ratio".into(), json!(0.0)); }`.
    pub fn update_filter_config(
        &mut self,
        listener: &str,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<(), String> {
        let mut json = self.filter_config(listener)?;
        let obj = json
            .as_object_mut()
            .ok_or_else(|| format!("filter configuration on `{listener}` is not a JSON object"))?;
        edit(obj);
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        self.set_filter_config_text(listener, &text)
    }

    /// Mutable access to the raw document, for tests that need a change no helper covers.
    pub fn doc_mut(&mut self) -> &mut Value {
        &mut self.doc
    }
}

fn names(seq: Option<&Vec<Value>>) -> Vec<String> {
    seq.map(|s| {
        s.iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

fn seq_mut<'a>(doc: &'a mut Value, key: &str) -> Result<&'a mut Vec<Value>, String> {
    doc.get_mut("static_resources")
        .and_then(|s| s.get_mut(key))
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| format!("config has no static_resources.{key}"))
}

fn set_socket_address(sa: &mut Value, address: &str, port: u16) {
    if let Some(map) = sa.as_mapping_mut() {
        map.insert("address".into(), Value::String(address.to_string()));
        map.insert("port_value".into(), Value::Number(port.into()));
    }
}

/// Replaces `code.local.filename` values that name a `.wasm` file, wherever they are.
fn replace_wasm_path(node: &mut Value, wasm: &str) {
    match node {
        Value::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                if key.as_str() == Some("filename")
                    && value.as_str().is_some_and(|f| f.ends_with(".wasm"))
                {
                    *value = Value::String(wasm.to_string());
                } else {
                    replace_wasm_path(value, wasm);
                }
            }
        }
        Value::Sequence(seq) => seq.iter_mut().for_each(|v| replace_wasm_path(v, wasm)),
        _ => {}
    }
}

/// The Wasm HTTP filter's name.
const WASM_FILTER: &str = "envoy.filters.http.wasm";
/// The dynamic-module HTTP filter's name.
const NATIVE_FILTER: &str = "envoy.filters.http.dynamic_modules";

/// The native form's filter entry carrying `json` as its configuration.
fn native_filter(json: &str) -> Result<Value, String> {
    let name = crate::form::NATIVE_MODULE_NAME;
    let mut v: Value = serde_yaml::from_str(&format!(
        r#"
name: {NATIVE_FILTER}
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
  dynamic_module_config: {{ name: {name} }}
  filter_name: {name}
  filter_config:
    "@type": type.googleapis.com/google.protobuf.StringValue
"#
    ))
    .map_err(|e| e.to_string())?;
    if let Some(fc) = v
        .get_mut("typed_config")
        .and_then(|t| t.get_mut("filter_config"))
        .and_then(Value::as_mapping_mut)
    {
        fc.insert("value".into(), Value::String(json.to_string()));
    }
    Ok(v)
}

/// Every HTTP filter entry of a listener's chains.
fn http_filters_mut(listener: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    let Some(chains) = listener
        .get_mut("filter_chains")
        .and_then(Value::as_sequence_mut)
    else {
        return out;
    };
    for chain in chains {
        let Some(filters) = chain.get_mut("filters").and_then(Value::as_sequence_mut) else {
            continue;
        };
        for f in filters {
            if let Some(http_filters) = f
                .get_mut("typed_config")
                .and_then(|t| t.get_mut("http_filters"))
                .and_then(Value::as_sequence_mut)
            {
                out.extend(http_filters.iter_mut());
            }
        }
    }
    out
}

/// The JSON configuration string of the trace filter (either form) on `listener`.
fn wasm_configuration_value<'a>(
    doc: &'a mut Value,
    listener: &str,
) -> Result<&'a mut Value, String> {
    let listeners = seq_mut(doc, "listeners")?;
    let l = listeners
        .iter_mut()
        .find(|l| l["name"].as_str() == Some(listener))
        .ok_or_else(|| format!("no listener named `{listener}`"))?;
    for hf in http_filters_mut(l) {
        let slot = match hf["name"].as_str() {
            Some(WASM_FILTER) => hf
                .get_mut("typed_config")
                .and_then(|t| t.get_mut("config"))
                .and_then(|c| c.get_mut("configuration")),
            Some(NATIVE_FILTER) => hf
                .get_mut("typed_config")
                .and_then(|t| t.get_mut("filter_config")),
            _ => None,
        };
        if let Some(value) = slot.and_then(|c| c.get_mut("value")) {
            return Ok(value);
        }
    }
    Err(format!(
        "listener `{listener}` has no trace filter (Wasm or native) with a configuration value"
    ))
}

/// An LDS document (`resources: [...]`, each typed as a v3 `Listener`) holding `listeners`, for
/// Envoy's file-based listener discovery (a reload is an atomic rename of that file).
pub fn lds_document(listeners: &[Value]) -> Result<String, String> {
    let resources: Vec<Value> = listeners
        .iter()
        .cloned()
        .map(|mut l| {
            if let Value::Mapping(m) = &mut l {
                m.insert(
                    Value::from("@type"),
                    Value::from("type.googleapis.com/envoy.config.listener.v3.Listener"),
                );
            }
            l
        })
        .collect();
    let mut doc = serde_yaml::Mapping::new();
    doc.insert(Value::from("resources"), Value::Sequence(resources));
    serde_yaml::to_string(&doc).map_err(|e| format!("LDS document: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_changes_only_addresses_ports_and_paths() {
        let mut cfg = EnvoyConfig::shipped().expect("shipped config parses");
        let before = cfg.filter_config(INGRESS).expect("ingress filter JSON");
        let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let subs = Substitutions::loopback(Path::new("/x/f.wasm"), addr(1), addr(2), addr(3));
        cfg.substitute(&subs).expect("substitute");
        let yaml = cfg.to_yaml();
        assert!(yaml.contains("/x/f.wasm") && !yaml.contains("/etc/envoy/trace_filter.wasm"));
        assert!(!yaml.contains("0.0.0.0"));
        assert_eq!(cfg.filter_config(INGRESS).expect("json"), before);
        assert!(yaml.contains("port_value: 3"));
    }

    #[test]
    fn unknown_names_are_errors() {
        let mut cfg = EnvoyConfig::shipped().expect("shipped config parses");
        let mut subs = Substitutions::default();
        subs.clusters
            .insert("nope".into(), SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(cfg.substitute(&subs).is_err());
    }
}
