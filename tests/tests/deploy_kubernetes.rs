//! `deploy/kubernetes/`: the Envoy + shim pod, rendered by real kustomize (`kubectl kustomize`, from
//! the kubectl wheel `make tools` installs) for the base and every overlay, each result validated by
//! `kubernetes-validate --strict` (the Kubernetes API's own schemas) and tied to the sources in
//! `envoy/`, to the shim's health routes and to the benchmark results it is sized from.
//!
//! `make deploy-config` regenerates the configurations (AETHERFLOW_UPDATE_DEPLOY=1 on the first test).

use std::process::Command;

use aetherflow_tests::deploy::{self, documents, find, kustomize, Generated};
use aetherflow_tests::envoy_config::EnvoyConfig;
use aetherflow_tests::paths::{require, shim_bin, workspace_root};
use serde_yaml::Value;

const BASE: &str = "deploy/kubernetes/base";
const OVERLAYS: [&str; 3] = ["zipkin", "jaeger", "otlp"];

fn rendered_dirs() -> Vec<String> {
    let mut dirs = vec![BASE.to_string()];
    dirs.extend(
        OVERLAYS
            .iter()
            .map(|o| format!("deploy/kubernetes/overlays/{o}")),
    );
    dirs
}

#[test]
fn generated_configs_match_their_sources() {
    let root = workspace_root();
    let update = std::env::var("AETHERFLOW_UPDATE_DEPLOY").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for Generated {
        path,
        content,
        source,
    } in deploy::generated_files()
    {
        let file = root.join(path);
        if update {
            std::fs::write(&file, &content).expect("write generated file");
            eprintln!("deploy-config: wrote {path} (from {source})");
            continue;
        }
        let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
        if on_disk != content {
            stale.push(format!("{path} (from {source})"));
        }
    }
    assert!(
        stale.is_empty(),
        "generated deployment configuration differs from its source; run `make deploy-config`:\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn generated_shim_configs_pass_the_shims_own_check() {
    let bin = shim_bin();
    require(&bin, "cargo build -p collector-shim");
    for g in deploy::generated_files()
        .into_iter()
        .filter(|g| g.path.ends_with("shim.yaml"))
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("shim.yaml");
        std::fs::write(&file, &g.content).expect("write");
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&file)
            .arg("--check-config")
            .output()
            .expect("run collector-shim --check-config");
        assert!(
            out.status.success(),
            "collector-shim refuses the generated {}:\n{}{}",
            g.path,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Port of an `ADDR:PORT` string.
fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr} has a port"))
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("container {name}"))
}

fn container_port(c: &Value, name: &str) -> u64 {
    c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container port {name}"))
}

fn volume<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("volume {name}"))
}

fn mount<'a>(c: &'a Value, volume: &str) -> &'a Value {
    c["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"].as_str() == Some(volume))
        .unwrap_or_else(|| panic!("mount of {volume}"))
}

#[test]
fn base_and_every_overlay_render_and_pass_the_kubernetes_schemas() {
    let root = workspace_root();
    let envoy_yaml = std::fs::read_to_string(root.join("envoy/envoy.yaml")).expect("envoy.yaml");
    let dockerfile =
        std::fs::read_to_string(root.join("deploy/oci/Dockerfile")).expect("deploy/oci/Dockerfile");
    for dir in rendered_dirs() {
        let stream = kustomize(&root.join(&dir));
        for version in deploy::KUBERNETES_VERSIONS {
            if let Err(report) = deploy::kubernetes_validate(&stream, version) {
                panic!("{dir} fails kubernetes-validate for Kubernetes {version}:\n{report}");
            }
        }
        let docs = documents(&stream);
        let kinds: Vec<&str> = docs.iter().map(deploy::kind).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "ConfigMap").count(),
            2,
            "{dir}: {kinds:?}"
        );
        let dep = find(&docs, "Deployment", "aetherflow");
        let svc = find(&docs, "Service", "aetherflow");

        // The Envoy ConfigMap holds envoy/envoy.yaml unchanged, mounted where Envoy reads it.
        let envoy_cm = find(&docs, "ConfigMap", "aetherflow-envoy");
        assert_eq!(
            envoy_cm["data"]["envoy.yaml"].as_str(),
            Some(envoy_yaml.as_str()),
            "{dir}: the Envoy ConfigMap is envoy/envoy.yaml"
        );
        let cm_name = envoy_cm["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            volume(dep, "envoy-config")["configMap"]["name"].as_str(),
            Some(cm_name),
            "{dir}: the pod mounts the generated (hash-suffixed) ConfigMap"
        );
        let envoy = container(dep, "envoy");
        let args: Vec<&str> = envoy["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let cfg_path = args[args.iter().position(|a| *a == "-c").expect("-c") + 1];
        let m = mount(envoy, "envoy-config");
        assert_eq!(m["mountPath"].as_str(), Some(cfg_path));
        assert_eq!(m["subPath"].as_str(), Some("envoy.yaml"));

        // The module: the OCI image's plugin.wasm, mounted where envoy.yaml loads it.
        let wasm_mount = mount(envoy, "trace-filter");
        let wasm_path = wasm_mount["mountPath"].as_str().unwrap();
        assert!(
            envoy_yaml.contains(&format!("filename: {wasm_path}")),
            "{dir}: envoy.yaml loads the module from {wasm_path}"
        );
        assert_eq!(wasm_mount["subPath"].as_str(), Some("plugin.wasm"));
        assert!(
            dockerfile
                .lines()
                .any(|l| l.trim() == "COPY plugin.wasm ./"),
            "the OCI image holds /plugin.wasm"
        );
        let reference = volume(dep, "trace-filter")["image"]["reference"]
            .as_str()
            .expect("an image volume");
        assert!(reference.contains("trace-filter-wasm:"), "{reference}");

        // The shim: its configuration is this directory's generated shim.yaml; its receiver is where
        // envoy.yaml's trace_shim cluster points; the probes hit its health routes on its admin port.
        let shim_cm = find(&docs, "ConfigMap", "aetherflow-shim");
        let shim_yaml =
            std::fs::read_to_string(root.join(&dir).join("shim.yaml")).expect("shim.yaml");
        assert_eq!(
            shim_cm["data"]["shim.yaml"].as_str(),
            Some(shim_yaml.as_str()),
            "{dir}"
        );
        let shim_cfg: Value = serde_yaml::from_str(&shim_yaml).expect("shim.yaml");
        let listen = shim_cfg["receiver"]["http_listen"].as_str().unwrap();
        assert!(listen.starts_with("127.0.0.1:"), "receiver on loopback");
        let cfg = EnvoyConfig::shipped().expect("envoy.yaml");
        assert!(
            cfg.to_yaml()
                .contains(&format!("port_value: {}", port_of(listen))),
            "trace_shim cluster on the shim's port"
        );
        let admin = shim_cfg["receiver"]["admin_listen"].as_str().unwrap();
        let shim = container(dep, "collector-shim");
        assert_eq!(container_port(shim, "shim-admin"), port_of(admin));
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            assert_eq!(shim[probe]["httpGet"]["path"].as_str(), Some(path));
            assert_eq!(shim[probe]["httpGet"]["port"].as_str(), Some("shim-admin"));
        }
        let shim_mount = mount(shim, "shim-config")["mountPath"].as_str().unwrap();
        assert!(shim["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some(&format!("{shim_mount}/shim.yaml"))));
        assert_eq!(
            volume(dep, "shim-config")["configMap"]["name"].as_str(),
            shim_cm["metadata"]["name"].as_str()
        );

        // The Service exposes Envoy's ingress listener (10000 in envoy.yaml).
        assert_eq!(container_port(envoy, "http"), 10000);
        assert!(envoy_yaml.contains("port_value: 10000"));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));

        // Each overlay exports to its backend.
        if let Some(o) = OVERLAYS.iter().find(|o| dir.ends_with(*o)) {
            assert_eq!(shim_cfg["exporters"][0]["type"].as_str(), Some(*o), "{dir}");
        }
    }
}

#[test]
fn the_schema_validator_rejects_a_misspelt_field_and_a_wrong_type() {
    let stream = kustomize(&workspace_root().join(BASE));
    assert!(deploy::kubernetes_validate(&stream, "1.37.0").is_ok());
    let typo = stream.replacen("readinessProbe:", "readinesProbe:", 1);
    assert_ne!(typo, stream);
    let report = deploy::kubernetes_validate(&typo, "1.37.0").expect_err("a typo fails");
    assert!(report.contains("readinesProbe"), "{report}");
    let wrong = stream.replacen("replicas: 2", "replicas: two", 1);
    assert_ne!(wrong, stream);
    assert!(deploy::kubernetes_validate(&wrong, "1.37.0").is_err());
}

/// "64Mi" -> MiB.
fn mib(q: &str) -> f64 {
    let (n, unit) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("quantity {q}"));
    match unit {
        "Mi" => n,
        "Gi" => n * 1024.0,
        _ => panic!("unexpected unit in {q}"),
    }
}

fn bench_json(name: &str) -> serde_json::Value {
    let path = workspace_root().join("bench/results").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("bench result")).expect("json")
}

#[test]
fn resources_are_sized_from_the_benchmark_results() {
    let root = workspace_root();
    let docs = documents(&kustomize(&root.join(BASE)));
    let dep = find(&docs, "Deployment", "aetherflow");
    let res = |c: &str, kind: &str, what: &str| {
        mib(container(dep, c)["resources"][kind][what]
            .as_str()
            .unwrap_or_else(|| panic!("{c} {kind}.{what}")))
    };

    // Envoy with the filter: RSS after 1 M requests (harness, `filter` row, HTTP/1.1).
    let harness = bench_json("harness.json");
    let filter_row = harness["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tracer"] == "filter" && r["workload"] == "http1")
        .expect("filter row");
    let envoy_rss = filter_row["envoy_rss_after_mib"].as_f64().unwrap();
    assert!(
        res("envoy", "requests", "memory") >= envoy_rss,
        "Envoy's memory request covers its measured RSS ({envoy_rss:.1} MiB)"
    );
    assert!(
        res("envoy", "limits", "memory") >= 2.0 * envoy_rss,
        "Envoy's memory limit leaves 2x headroom over {envoy_rss:.1} MiB"
    );

    // The shim: peak RSS of the tail-sampling soak (50 k spans/s, 2 s window) under the limit with
    // headroom; the request covers the light-load RSS of the harness.
    let soak = bench_json("shim_soak.json");
    let peak = soak["rss_peak_mib"].as_f64().unwrap();
    assert!(
        res("collector-shim", "limits", "memory") >= 1.5 * peak,
        "the shim's memory limit is 1.5x its soak peak ({peak:.1} MiB)"
    );
    // (one reading per round)
    let light = filter_row["shim_rss_mib"]
        .as_array()
        .expect("shim_rss_mib readings")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .fold(0.0, f64::max);
    assert!(light > 0.0, "the harness measured the shim's RSS");
    assert!(
        res("collector-shim", "requests", "memory") >= light,
        "the shim's memory request covers its light-load RSS ({light:.1} MiB)"
    );
    // The soak ran with the same tail window the deployment's shim.yaml uses.
    let shim_cfg: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join(BASE).join("shim.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        shim_cfg["sampling"]["tail"]["decision_wait"].as_str(),
        Some(
            format!(
                "{}s",
                soak["plan"]["decision_wait_ms"].as_u64().unwrap() / 1000
            )
            .as_str()
        ),
        "the deployment's tail window is the one the soak measured"
    );
}
