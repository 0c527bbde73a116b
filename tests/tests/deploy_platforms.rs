//! `deploy/istio/`, `deploy/envoy-gateway/`, `deploy/node-local-shim/` and `deploy/oci/`: each
//! rendered by real kustomize; Kubernetes' own kinds checked by `kubernetes-validate --strict`, the
//! platforms' kinds (WasmPlugin, ServiceEntry, EnvoyExtensionPolicy, EnvoyProxy) by the JSON schemas
//! we wrote from their API references (`deploy/schemas/`), so a misspelt field or a wrong enum fails.
//! The filter configurations inside them are parsed by the filter's own parser, and the cluster names
//! they export to are tied to the shim's Service.

use std::process::Command;

use aetherflow_core::config::Config;
use aetherflow_tests::deploy::{self, documents, find, kustomize};
use aetherflow_tests::paths::{envoy, require, workspace_root};
use serde_yaml::Value;

const DIRS: [&str; 3] = [
    "deploy/node-local-shim",
    "deploy/istio",
    "deploy/envoy-gateway",
];
/// Manifests outside any kustomization (alternatives the docs describe).
const LOOSE: [&str; 1] = ["deploy/istio/serviceentry-sidecar-shim.yaml"];

fn validate_all(what: &str, docs: &[Value], stream: &str) {
    let core: Vec<&Value> = docs
        .iter()
        .filter(|d| deploy::platform_schema(deploy::kind(d)).is_none())
        .collect();
    if !core.is_empty() {
        let core_stream = core
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        for version in deploy::KUBERNETES_VERSIONS {
            if let Err(r) = deploy::kubernetes_validate(&core_stream, version) {
                panic!("{what} fails kubernetes-validate for Kubernetes {version}:\n{r}\n{stream}");
            }
        }
    }
    for d in docs {
        if let Some(schema) = deploy::platform_schema(deploy::kind(d)) {
            if let Err(r) = deploy::schema_validate(d, schema) {
                panic!(
                    "{what}: {} {} fails deploy/schemas/{schema}.json:\n{r}",
                    deploy::kind(d),
                    d["metadata"]["name"].as_str().unwrap_or("?")
                );
            }
        }
    }
}

fn rendered(dir: &str) -> (Vec<Value>, String) {
    let stream = kustomize(&workspace_root().join(dir));
    (documents(&stream), stream)
}

#[test]
fn every_platform_manifest_passes_its_schema() {
    let mut platform_kinds = Vec::new();
    for dir in DIRS {
        let (docs, stream) = rendered(dir);
        assert!(!docs.is_empty(), "{dir} renders something");
        validate_all(dir, &docs, &stream);
        platform_kinds.extend(
            docs.iter()
                .map(|d| deploy::kind(d).to_string())
                .filter(|k| deploy::platform_schema(k).is_some()),
        );
    }
    for file in LOOSE {
        let text = std::fs::read_to_string(workspace_root().join(file)).expect(file);
        let docs = documents(&text);
        validate_all(file, &docs, &text);
        platform_kinds.extend(docs.iter().map(|d| deploy::kind(d).to_string()));
    }
    for kind in [
        "WasmPlugin",
        "ServiceEntry",
        "EnvoyExtensionPolicy",
        "EnvoyProxy",
    ] {
        assert!(
            platform_kinds.iter().any(|k| k == kind),
            "a {kind} was checked"
        );
    }
}

/// Replaces the first `from` in the YAML of `doc` (so the mutation is exactly what a person would
/// type) and returns the document.
fn mutate(doc: &Value, from: &str, to: &str) -> Value {
    let text = serde_yaml::to_string(doc).unwrap();
    assert!(text.contains(from), "{from} in\n{text}");
    serde_yaml::from_str(&text.replacen(from, to, 1)).unwrap()
}

#[test]
fn the_schemas_reject_typos_and_wrong_values() {
    let (istio, _) = rendered("deploy/istio");
    let (eg, _) = rendered("deploy/envoy-gateway");
    let se_text = std::fs::read_to_string(workspace_root().join(LOOSE[0])).unwrap();
    let se = documents(&se_text).remove(0);
    let wp = find(&istio, "WasmPlugin", "aetherflow-trace-inbound");
    let eep = find(&eg, "EnvoyExtensionPolicy", "aetherflow-trace");
    let ep = find(&eg, "EnvoyProxy", "aetherflow-trace");
    let cases: [(&Value, &str, &str, &str); 10] = [
        (wp, "failStrategy:", "failStratgy:", "istio-wasmplugin"),
        (
            wp,
            "phase: AUTHN",
            "phase: AUTHENTICATION",
            "istio-wasmplugin",
        ),
        (wp, "url: oci://", "url: ocis://", "istio-wasmplugin"),
        (wp, "mode: SERVER", "mode: INBOUND", "istio-wasmplugin"),
        (
            &se,
            "resolution: STATIC",
            "resolution: STATIK",
            "istio-serviceentry",
        ),
        (&se, "hosts:", "host:", "istio-serviceentry"),
        (
            eep,
            "type: Image",
            "type: OCI",
            "envoy-gateway-envoyextensionpolicy",
        ),
        (
            eep,
            "failOpen: true",
            "failopen: true",
            "envoy-gateway-envoyextensionpolicy",
        ),
        (
            eep,
            "kind: Gateway",
            "kind: Gateways",
            "envoy-gateway-envoyextensionpolicy",
        ),
        (ep, "type: Merge", "type: merge", "envoy-gateway-envoyproxy"),
    ];
    for (doc, from, to, schema) in cases {
        assert!(
            deploy::schema_validate(doc, schema).is_ok(),
            "{schema} accepts the original"
        );
        let bad = mutate(doc, from, to);
        assert!(
            deploy::schema_validate(&bad, schema).is_err(),
            "{schema} accepts `{to}` (was `{from}`)"
        );
    }
    // A field in the wrong place: `image` of an HTTP code source.
    let bad = mutate(eep, "type: Image", "type: HTTP");
    assert!(deploy::schema_validate(&bad, "envoy-gateway-envoyextensionpolicy").is_err());
}

/// The filter's JSON configuration of a platform manifest, parsed by the filter's own parser.
fn filter_config(v: &Value, what: &str) -> Config {
    let json = serde_json::to_vec(v).expect("as JSON");
    Config::from_json(&json).unwrap_or_else(|e| panic!("the filter refuses {what}: {e}"))
}

#[test]
fn filter_configurations_parse_and_reach_the_shim() {
    let (shim_docs, _) = rendered("deploy/node-local-shim");
    let svc = find(&shim_docs, "Service", "aetherflow-shim");
    let ns = svc["metadata"]["namespace"].as_str().expect("namespace");
    let name = svc["metadata"]["name"].as_str().unwrap();
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    let fqdn = format!("{name}.{ns}.svc.cluster.local");
    assert_eq!(
        svc["spec"]["internalTrafficPolicy"].as_str(),
        Some("Local"),
        "node-local"
    );
    let ds = find(&shim_docs, "DaemonSet", "aetherflow-shim");
    let shim = &ds["spec"]["template"]["spec"]["containers"][0];
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(shim[probe]["httpGet"]["path"].as_str(), Some(path));
    }
    let cfg: Value = serde_yaml::from_str(
        find(&shim_docs, "ConfigMap", "aetherflow-shim")["data"]["shim.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(cfg["receiver"]["http_listen"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{port}")));

    // Istio: the cluster Istio builds for that Service, `outbound|PORT||FQDN`.
    let (istio, _) = rendered("deploy/istio");
    let plugins: Vec<&Value> = istio
        .iter()
        .filter(|d| deploy::kind(d) == "WasmPlugin")
        .collect();
    assert_eq!(plugins.len(), 2, "inbound (SERVER) and outbound (CLIENT)");
    for wp in plugins {
        let c = filter_config(&wp["spec"]["pluginConfig"], "a WasmPlugin's pluginConfig");
        assert_eq!(c.collector_cluster, format!("outbound|{port}||{fqdn}"));
        assert_eq!(wp["spec"]["failStrategy"].as_str(), Some("FAIL_OPEN"));
        let mode = wp["spec"]["match"][0]["mode"].as_str().unwrap();
        let kind = format!("{:?}", c.span_kind).to_lowercase();
        assert_eq!(
            (mode, kind.as_str()),
            if mode == "SERVER" {
                ("SERVER", "server")
            } else {
                ("CLIENT", "client")
            }
        );
        assert!(wp["spec"]["url"].as_str().unwrap().starts_with("oci://"));
    }

    // Envoy Gateway: the filter exports to a cluster the EnvoyProxy adds to the bootstrap, pointing at
    // the same Service; that bootstrap fragment is valid Envoy configuration (real Envoy validates it).
    let (eg, _) = rendered("deploy/envoy-gateway");
    let eep = find(&eg, "EnvoyExtensionPolicy", "aetherflow-trace");
    let wasm = &eep["spec"]["wasm"][0];
    let c = filter_config(&wasm["config"], "the EnvoyExtensionPolicy's config");
    assert_eq!(wasm["failOpen"].as_bool(), Some(true));
    let ep = find(&eg, "EnvoyProxy", "aetherflow-trace");
    let bootstrap: Value =
        serde_yaml::from_str(ep["spec"]["bootstrap"]["value"].as_str().unwrap()).unwrap();
    let cluster = bootstrap["static_resources"]["clusters"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|cl| cl["name"].as_str() == Some(c.collector_cluster.as_str()))
        .expect("the bootstrap defines the filter's collector_cluster");
    let addr = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    assert_eq!(addr["address"].as_str(), Some(fqdn.as_str()));
    assert_eq!(addr["port_value"].as_u64(), Some(port));
    let envoy_bin = envoy();
    require(&envoy_bin, "make tools");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap.yaml");
    std::fs::write(&file, serde_yaml::to_string(&bootstrap).unwrap()).unwrap();
    let out = Command::new(&envoy_bin)
        .args(["--mode", "validate", "-c"])
        .arg(&file)
        .output()
        .expect("envoy --mode validate");
    assert!(
        out.status.success(),
        "Envoy refuses the EnvoyProxy bootstrap fragment:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // One image everywhere: Istio pulls oci://IMAGE, Envoy Gateway IMAGE, the pod mounts IMAGE.
    let image = eep["spec"]["wasm"][0]["code"]["image"]["url"]
        .as_str()
        .unwrap();
    for wp in istio.iter().filter(|d| deploy::kind(d) == "WasmPlugin") {
        assert_eq!(
            wp["spec"]["url"].as_str(),
            Some(format!("oci://{image}").as_str())
        );
    }
    let pod =
        std::fs::read_to_string(workspace_root().join("deploy/kubernetes/base/deployment.yaml"))
            .unwrap();
    assert!(
        pod.contains(&format!("reference: {image}")),
        "the pod mounts {image}"
    );
}

#[test]
fn oci_image_follows_the_wasm_image_conventions() {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("deploy/oci/Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // Istio and Envoy Gateway read a single-layer image holding the module as /plugin.wasm: an empty
    // base and exactly one COPY.
    assert_eq!(instructions, ["FROM scratch", "COPY plugin.wasm ./"]);
    let script = std::fs::read_to_string(root.join("scripts/build-oci.sh")).unwrap();
    assert!(script
        .contains("cp target/wasm32-wasip1/release/trace_filter.wasm \"$context/plugin.wasm\""));
    assert!(script.contains("-f deploy/oci/Dockerfile"));
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    assert!(makefile.contains("\noci:\n\t@OCI_IMAGE=$(OCI_IMAGE) ./scripts/build-oci.sh"));

    // Without docker, podman or buildah, `make oci` says so and fails before building anything.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new("/bin/bash")
        .arg(root.join("scripts/build-oci.sh"))
        .env("PATH", empty.path())
        .output()
        .expect("run build-oci.sh");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("podman or buildah"), "{err}");
}

/// The image a real builder makes of deploy/oci/Dockerfile: Debian's buildah (installed by `make tools`)
/// builds it without a daemon into a private store, pushes it to an OCI image layout, and the layout
/// must hold one manifest with exactly one layer whose only file is `plugin.wasm`, byte for byte the
/// module `make wasm` built.
#[test]
fn a_real_builder_makes_a_single_layer_image_holding_plugin_wasm() {
    let Ok(out) = Command::new("buildah").arg("--version").output() else {
        eprintln!("SKIPPED the OCI layout check: buildah is not installed (`make tools` installs it on Debian)");
        return;
    };
    assert!(out.status.success());
    let root = workspace_root();
    let wasm = aetherflow_tests::paths::wasm();
    require(&wasm, "make wasm");
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("context");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::copy(&wasm, ctx.join("plugin.wasm")).unwrap();
    let layout = work.path().join("layout");
    let buildah = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("buildah")
            .arg("--root")
            .arg(work.path().join("storage"))
            .arg("--runroot")
            .arg(work.path().join("run"))
            .args(args)
            .env("STORAGE_DRIVER", "vfs")
            .env("BUILDAH_ISOLATION", "chroot")
            .output()
            .expect("run buildah");
        assert!(
            out.status.success(),
            "buildah {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let dockerfile = root.join("deploy/oci/Dockerfile");
    let tag = "localhost/aetherflow/trace-filter-wasm:test";
    buildah(&[
        "bud".as_ref(),
        "-f".as_ref(),
        dockerfile.as_os_str(),
        "-t".as_ref(),
        tag.as_ref(),
        ctx.as_os_str(),
    ]);
    let dest = format!("oci:{}:test", layout.display());
    buildah(&["push".as_ref(), tag.as_ref(), dest.as_ref()]);

    // Read the layout with Python's standard library (json, tarfile, gzip), independently of buildah.
    let script = r#"
import gzip, hashlib, io, json, os, sys, tarfile
layout, wasm = sys.argv[1], open(sys.argv[2], "rb").read()
blob = lambda d: open(os.path.join(layout, "blobs", *d.split(":")), "rb").read()
assert json.load(open(os.path.join(layout, "oci-layout")))["imageLayoutVersion"] == "1.0.0"
index = json.load(open(os.path.join(layout, "index.json")))
assert len(index["manifests"]) == 1, index
manifest = json.loads(blob(index["manifests"][0]["digest"]))
layers = manifest["layers"]
assert len(layers) == 1, "exactly one layer: %r" % layers
data = blob(layers[0]["digest"])
assert "sha256:" + hashlib.sha256(data).hexdigest() == layers[0]["digest"]
if layers[0]["mediaType"].endswith("gzip"):
    data = gzip.decompress(data)
files = [m for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers() if m.isfile()]
names = [m.name.lstrip("./") for m in files]
assert names == ["plugin.wasm"], names
content = tarfile.open(fileobj=io.BytesIO(data)).extractfile(files[0]).read()
assert content == wasm, "plugin.wasm is the module make wasm built"
print("ok", layers[0]["mediaType"], len(content))
"#;
    let out = Command::new(aetherflow_tests::paths::python())
        .arg("-c")
        .arg(script)
        .arg(&layout)
        .arg(&wasm)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "the OCI layout is not what Istio and Envoy Gateway pull:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
