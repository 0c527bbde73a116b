//! The docker-compose stack (`envoy/docker-compose.yml`), checked without a Docker engine: Debian's
//! `docker-compose config -q` (a real compose parser and schema; installed by `make tools`) plus
//! structural checks that tie it to `envoy/envoy.yaml` and the Dockerfiles it builds.

use std::process::Command;

use aetherflow_tests::envoy_config::EnvoyConfig;
use aetherflow_tests::paths::{shim_bin, workspace_root};
use serde_yaml::Value;

fn compose() -> Value {
    let path = workspace_root().join("envoy/docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("envoy/docker-compose.yml exists");
    serde_yaml::from_str(&text).expect("compose file is YAML")
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["services"][name];
    assert!(s.is_mapping(), "compose defines service `{name}`");
    s
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_file_passes_docker_compose_config() {
    let root = workspace_root();
    match Command::new("docker-compose").arg("version").output() {
        Ok(out) if out.status.success() => {}
        _ => {
            // `make tools` installs it (scripts/install-tools.sh); without apt/root the structural
            // test below still runs. Say so loudly rather than pass silently.
            eprintln!(
                "SKIPPED compose validation: docker-compose is not installed (run `make tools`)"
            );
            return;
        }
    }
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(root.join("envoy/docker-compose.yml"))
        .args(["config", "-q"])
        .output()
        .expect("running docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config -q refused envoy/docker-compose.yml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_stack_has_every_component_wired_to_envoy_yaml() {
    let doc = compose();
    let root = workspace_root();

    // Envoy: the official 1.40 image with the shipped config and the module where envoy.yaml loads it.
    let envoy = service(&doc, "envoy");
    let image = envoy["image"].as_str().unwrap_or_default();
    assert!(
        image.starts_with("envoyproxy/envoy:v1.40"),
        "official Envoy 1.40 image, got {image}"
    );
    let volumes = strings(&envoy["volumes"]);
    assert!(
        volumes
            .iter()
            .any(|v| v.starts_with("./envoy.yaml:/etc/envoy/envoy.yaml")),
        "{volumes:?}"
    );
    let shipped = std::fs::read_to_string(root.join("envoy/envoy.yaml")).expect("envoy.yaml");
    let wasm_mount = volumes
        .iter()
        .find(|v| v.contains("trace_filter.wasm"))
        .expect("the .wasm is mounted");
    let target = wasm_mount.split(':').nth(1).expect("host:container");
    assert!(
        shipped.contains(&format!("filename: {target}")),
        "envoy.yaml loads the module from {target}"
    );
    assert!(
        wasm_mount.starts_with("../target/wasm32-wasip1/release/trace_filter.wasm:"),
        "{wasm_mount}"
    );
    let ports = strings(&envoy["ports"]);
    assert!(
        ports.iter().any(|p| p.starts_with("10000:10000")),
        "ingress published: {ports:?}"
    );

    // The shim and the services share Envoy's network namespace, so envoy.yaml's 127.0.0.1 clusters
    // reach them unchanged: check the ports they listen on against the cluster endpoints.
    let cfg = EnvoyConfig::shipped().expect("envoy.yaml parses");
    let yaml = cfg.to_yaml();
    for (name, listen_port) in [("demo-http", "8080"), ("demo-grpc", "50051")] {
        let s = service(&doc, name);
        assert_eq!(
            s["network_mode"].as_str(),
            Some("service:envoy"),
            "{name} shares Envoy's namespace"
        );
        let cmd = strings(&s["command"]);
        assert!(
            cmd.iter().any(|a| a.ends_with(&format!(":{listen_port}"))),
            "{name} listens on {listen_port}: {cmd:?}"
        );
        assert!(
            yaml.contains(&format!("port_value: {listen_port}")),
            "envoy.yaml has a cluster on {listen_port}"
        );
        assert_eq!(
            s["build"]["dockerfile"].as_str(),
            Some("envoy/Dockerfile.demo")
        );
    }
    let shim = service(&doc, "shim");
    assert_eq!(shim["network_mode"].as_str(), Some("service:envoy"));
    assert_eq!(
        shim["build"]["dockerfile"].as_str(),
        Some("collector-shim/Dockerfile")
    );
    assert!(
        yaml.contains("port_value: 4318"),
        "trace_shim cluster on 4318"
    );
    // The images compose builds: the demo image holds both services it starts, the shim image's
    // entry point is the shim (compose passes only its arguments).
    let demo_dockerfile =
        std::fs::read_to_string(root.join("envoy/Dockerfile.demo")).expect("Dockerfile.demo");
    for bin in ["demo-http", "demo-grpc"] {
        assert!(
            demo_dockerfile.contains(&format!("--bin {bin}")),
            "Dockerfile.demo builds {bin}"
        );
        assert!(root.join(format!("demo/src/bin/{bin}.rs")).is_file());
    }
    let shim_dockerfile = std::fs::read_to_string(root.join("collector-shim/Dockerfile"))
        .expect("collector-shim/Dockerfile");
    assert!(
        shim_dockerfile
            .lines()
            .any(|l| l.starts_with("ENTRYPOINT") && l.contains("collector-shim")),
        "the shim image's entry point is the shim, so compose's `command` is its arguments"
    );
    assert_eq!(
        strings(&shim["command"]).first().map(String::as_str),
        Some("--config")
    );

    // Backends: Jaeger v2 over OTLP; the last v1 all-in-one (Thrift over HTTP) behind a profile; Zipkin.
    let jaeger = service(&doc, "jaeger");
    assert!(jaeger["image"]
        .as_str()
        .unwrap_or_default()
        .starts_with("jaegertracing/jaeger:2."));
    let jaeger_ports = [strings(&jaeger["ports"]), strings(&jaeger["expose"])].concat();
    for port in ["16686", "4317", "4318"] {
        assert!(
            jaeger_ports.iter().any(|p| p.split(':').any(|x| x == port)),
            "jaeger port {port}: {jaeger_ports:?}"
        );
    }
    let v1 = service(&doc, "jaeger-v1");
    assert!(v1["image"]
        .as_str()
        .unwrap_or_default()
        .starts_with("jaegertracing/all-in-one:1."));
    assert_eq!(
        strings(&v1["profiles"]),
        ["jaeger-v1"],
        "v1 only on request"
    );
    assert!(strings(&v1["expose"]).iter().any(|p| p == "14268"));
    let zipkin = service(&doc, "zipkin");
    assert!(zipkin["image"]
        .as_str()
        .unwrap_or_default()
        .starts_with("openzipkin/zipkin"));
    assert!(strings(&zipkin["ports"])
        .iter()
        .any(|p| p.starts_with("9411:9411")));
}

#[test]
fn compose_shim_config_names_the_compose_backends() {
    let root = workspace_root();
    let path = root.join("envoy/shim-compose.yaml");
    let text = std::fs::read_to_string(&path).expect("envoy/shim-compose.yaml");
    assert!(text.contains("http://zipkin:9411/api/v2/spans"));
    assert!(
        text.contains("http://jaeger:4318/v1/traces"),
        "Jaeger v2 over OTLP"
    );
    assert!(
        text.contains("http://jaeger-v1:14268/api/traces"),
        "the Thrift alternative for Jaeger v1 is shown"
    );
    check_config(&path);
}

/// The shim configurations the docs show are ones the shim accepts.
#[test]
fn documented_shim_configs_are_valid() {
    let dir = workspace_root().join("docs/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/examples") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            check_config(&path);
            checked += 1;
        }
    }
    assert!(checked > 0, "no shim configs in {}", dir.display());
}

/// `collector-shim --check-config --config path` must accept the file (when the binary is built).
fn check_config(path: &std::path::Path) {
    let bin = shim_bin();
    if !bin.exists() {
        eprintln!(
            "SKIPPED --check-config: {} not built (make test builds it)",
            bin.display()
        );
        return;
    }
    let out = Command::new(&bin)
        .arg("--check-config")
        .arg("--config")
        .arg(path)
        .output()
        .expect("running collector-shim --check-config");
    assert!(
        out.status.success(),
        "collector-shim refused {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_has_prometheus_with_exemplars_and_grafana_with_the_red_dashboard() {
    let doc = compose();
    let root = workspace_root();
    let prom = service(&doc, "prometheus");
    let cmd = strings(&prom["command"]);
    assert!(
        cmd.iter().any(|a| a == "--enable-feature=exemplar-storage"),
        "exemplar storage on (so Prometheus asks for OpenMetrics): {cmd:?}"
    );
    assert!(cmd
        .iter()
        .any(|a| a == "--config.file=/etc/prometheus/prometheus.yml"));
    assert!(strings(&prom["volumes"])
        .iter()
        .any(|v| v.starts_with("../deploy/prometheus:/etc/prometheus")));
    // Its config scrapes the shim where compose runs it (in Envoy's namespace, port 4318) and
    // loads the alert rules beside it.
    let cfg: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["scrape_configs"][0]["job_name"], "collector-shim");
    assert_eq!(
        cfg["scrape_configs"][0]["static_configs"][0]["targets"][0],
        "envoy:4318"
    );
    assert_eq!(cfg["rule_files"][0], "alerts.yml");
    assert!(root.join("deploy/prometheus/alerts.yml").is_file());

    let grafana = service(&doc, "grafana");
    let volumes = strings(&grafana["volumes"]);
    for (host, container) in [
        (
            "../deploy/grafana/provisioning",
            "/etc/grafana/provisioning",
        ),
        (
            "../deploy/grafana/aetherflow-red.json",
            "/var/lib/grafana/dashboards/aetherflow-red.json",
        ),
    ] {
        assert!(
            volumes
                .iter()
                .any(|v| v.starts_with(&format!("{host}:{container}"))),
            "{host} mounted at {container}: {volumes:?}"
        );
        assert!(root.join(host.trim_start_matches("../")).exists(), "{host}");
    }
    // Exemplars are confirmed by the shim's first exporter: Jaeger, where Grafana's links open them.
    let shim: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("envoy/shim-compose.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(shim["exporters"][0]["name"], "jaeger");
}
