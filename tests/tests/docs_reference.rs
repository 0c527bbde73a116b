//! Docs that cannot rot: every configuration key with its default in the README and `docs/` tables
//! is checked against what the code accepts and defaults to (the filter's parser and defaults, the
//! shim's loader), and every shell command in a ```sh block of the README, `docs/` and
//! `bench/README.md` is either run by a test here, run by another named test or by CI, or listed as
//! needing Docker or Kubernetes. A command added to the docs without an entry here fails.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use aetherflow_core::config::{Config, EnvoyAttributes};
use aetherflow_tests::paths::workspace_root;
use serde_yaml::{Mapping, Value};

/// Markdown files the checks read.
fn doc_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md"), root.join("bench/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn rel(p: &std::path::Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// A table row with the heading it sits under: (heading, header cells, row cells).
struct Row {
    heading: String,
    header: Vec<String>,
    cells: Vec<String>,
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

/// Rows of every table that has a `key` and a `default` column (any case).
fn key_default_rows(text: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with('#') {
            heading = l.trim_start_matches('#').trim().to_string();
        }
        if l.trim_start().starts_with('|')
            && i + 1 < lines.len()
            && lines[i + 1].trim_start().starts_with("| --")
            || l.trim_start().starts_with('|')
                && i + 1 < lines.len()
                && lines[i + 1].trim_start().starts_with("|--")
        {
            let header: Vec<String> = cells(l).iter().map(|c| c.to_lowercase()).collect();
            let is_kd =
                header.first().is_some_and(|h| h == "key") && header.iter().any(|h| h == "default");
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                if is_kd {
                    out.push(Row {
                        heading: heading.clone(),
                        header: header.clone(),
                        cells: cells(lines[i]),
                    });
                }
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    out
}

fn column(row: &Row, name: &str) -> String {
    let idx = row.header.iter().position(|h| h == name).expect("column");
    row.cells.get(idx).cloned().unwrap_or_default()
}

/// The text inside the first pair of backticks, if any.
fn first_code(cell: &str) -> Option<String> {
    let start = cell.find('`')? + 1;
    let end = start + cell[start..].find('`')?;
    Some(cell[start..end].to_string())
}

#[test]
fn key_and_default_tables_live_only_where_they_are_checked() {
    for f in doc_files() {
        let name = rel(&f);
        if name == "docs/filter.md" || name == "docs/shim.md" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            key_default_rows(&text).is_empty(),
            "{name} has a key/default table; configuration reference belongs in docs/filter.md or \
             docs/shim.md, where tests/tests/docs_reference.rs checks it"
        );
    }
}

#[test]
fn filter_keys_and_defaults_in_the_docs_are_the_codes() {
    let text = std::fs::read_to_string(workspace_root().join("docs/filter.md")).unwrap();
    let rows = key_default_rows(&text);
    assert!(
        rows.len() >= 25,
        "the filter's table was found ({} rows)",
        rows.len()
    );
    let mut documented = BTreeSet::new();
    for row in &rows {
        let key = first_code(&row.cells[0]).expect("key in backticks");
        let default_cell = column(row, "default");
        let default: serde_json::Value = if key == "envoy_attributes" {
            // A list of names in backticks (the default set), each among the valid values,
            // which list every name.
            let valid = column(row, "valid values");
            for n in EnvoyAttributes::NAMES {
                assert!(valid.contains(&format!("`{n}`")), "{n} listed");
            }
            let names: Vec<&str> = default_cell.split('`').skip(1).step_by(2).collect();
            assert!(
                !names.is_empty(),
                "envoy_attributes default: {default_cell:?}"
            );
            serde_json::json!(names)
        } else {
            let code = first_code(&default_cell)
                .unwrap_or_else(|| panic!("`{key}`: default {default_cell:?} in backticks"));
            serde_json::from_str(&code)
                .unwrap_or_else(|e| panic!("`{key}`: default {code} is not JSON: {e}"))
        };
        let doc = serde_json::json!({ key.clone(): default });
        let parsed = Config::from_json(doc.to_string().as_bytes()).unwrap_or_else(|e| {
            panic!("the filter refuses the documented `{key}` = {default}: {e}")
        });
        assert_eq!(
            parsed,
            Config::default(),
            "`{key}`: the documented default {default} is not the code's"
        );
        documented.insert(key);
    }
    // Every key the code has is documented: Config's fields are its keys (Debug names them).
    let debug = format!("{:#?}", Config::default());
    let fields: BTreeSet<String> = debug
        .lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect();
    assert!(fields.len() >= 25, "{fields:?}");
    let missing: Vec<_> = fields.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "filter keys without a docs row: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&fields).collect();
    assert!(
        extra.is_empty(),
        "docs rows for keys the filter does not have: {extra:?}"
    );
    // And a key that does not exist is refused (the check above could not pass vacuously).
    assert!(Config::from_json(br#"{"sample_rate": 1.0}"#).is_err());
}

/// The shim's configuration from YAML text, as the binary loads a file (defaults, validation).
fn shim_config(text: &str) -> String {
    let cfg = collector_shim::config::load::parse_str(text, false)
        .and_then(collector_shim::config::load::finish)
        .unwrap_or_else(|e| panic!("the shim refuses:\n{text}\n{e:?}"));
    format!("{cfg:?}")
}

/// `{a: {b: {c: value}}}` for the dotted key `a.b.c`; `value` None leaves the innermost mapping empty.
fn nested(path: &[&str], value: Option<Value>) -> Value {
    let mut v = value;
    for (i, k) in path.iter().enumerate().rev() {
        let mut m = Mapping::new();
        if let Some(inner) = v.take() {
            m.insert((*k).into(), inner);
        } else if i + 1 < path.len() {
            m.insert((*k).into(), Value::Mapping(Mapping::new()));
        }
        v = Some(Value::Mapping(m));
    }
    v.unwrap_or(Value::Mapping(Mapping::new()))
}

#[test]
fn shim_keys_and_defaults_in_the_docs_are_the_codes() {
    let text = std::fs::read_to_string(workspace_root().join("docs/shim.md")).unwrap();
    let rows = key_default_rows(&text);
    let mut checked = 0;
    for row in &rows {
        let key = first_code(&row.cells[0]).expect("key in backticks");
        // The section names the parent key: "`receiver`", "`batch` (per exporter)", "Top level".
        let prefix = first_code(&row.heading)
            .map(|s| format!("{s}."))
            .unwrap_or_default();
        let full = format!("{prefix}{key}");
        let path: Vec<&str> = full.split('.').collect();
        let cell = column(row, "default");
        let plain = cell.replace('`', "");
        let value_text = first_code(&cell).unwrap_or_else(|| {
            plain
                .split(" (")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        });
        // Keys without a value by default (an optional section, a compatibility key).
        if ["–", "-", "none", "off"].contains(&value_text.as_str()) || plain.contains(" when ") {
            // Still a key the shim accepts: an empty section or null is valid.
            if ["dynamic", "tail"].contains(&key.as_str()) {
                shim_config(
                    &serde_yaml::to_string(&nested(&path, Some(Value::Mapping(Mapping::new()))))
                        .unwrap(),
                );
            }
            continue;
        }
        let value: Value = serde_yaml::from_str(&value_text)
            .unwrap_or_else(|e| panic!("`{full}`: default {value_text} is not YAML: {e}"));
        let with = serde_yaml::to_string(&nested(&path, Some(value.clone()))).unwrap();
        let without = serde_yaml::to_string(&nested(&path, None)).unwrap();
        assert_eq!(
            shim_config(&with),
            shim_config(&without),
            "`{full}`: the documented default {value_text} is not the shim's"
        );
        checked += 1;
    }
    assert!(
        checked >= 20,
        "the shim's tables were found ({checked} defaults checked)"
    );
    // A wrong default would be caught: batch.max_queue_size 2048 is the default, 2047 is not.
    assert_ne!(
        shim_config("batch: {max_queue_size: 2047}"),
        shim_config("batch: {}")
    );
}

/// How a documented shell command is covered.
enum Coverage {
    /// Run right here (must exit 0), from the workspace root.
    Run,
    /// Run by `make test` itself (.ci/run), or one of its steps.
    MakeTest,
    /// What it does is run by this test file (which must exist and contain the marker).
    By(&'static str, &'static str),
    /// Needs a Docker engine (none here).
    NeedsDocker,
    /// Needs a Kubernetes cluster (the rendering half runs in tests/tests/deploy_*.rs).
    NeedsKubernetes,
    /// Needs a service started by the command before it in the same block, kept running for a person.
    NeedsRunningStack,
    /// Fetches from GitHub, which CI cannot reach (what it fetches is then used by a `By` command).
    NeedsGitHub,
}

/// Every command of the docs' ```sh blocks and how it is covered.
fn registry() -> Vec<(&'static str, Coverage)> {
    use Coverage::*;
    vec![
        ("make demo", By("tests/tests/e2e_pipeline.rs", "scenarios::all()")),
        ("make test", MakeTest),
        // A hosted backend; the same variables against a real TLS receiver that checks the
        // header and the gzip body: collector-shim/tests/exporter_env.rs.
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io OTEL_EXPORTER_OTLP_HEADERS=\"x-honeycomb-team=${HONEYCOMB_API_KEY}\" OTEL_EXPORTER_OTLP_COMPRESSION=gzip target/release/collector-shim",
            By("collector-shim/tests/exporter_env.rs", "OTEL_EXPORTER_OTLP_HEADERS"),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT=https://tempo-prod-04-prod-us-east-0.grafana.net/otlp OTEL_EXPORTER_OTLP_HEADERS=\"authorization=Basic%20${TEMPO_BASIC_AUTH}\" OTEL_EXPORTER_OTLP_COMPRESSION=gzip collector-shim",
            By("collector-shim/tests/exporter_env.rs", "OTEL_EXPORTER_OTLP_HEADERS"),
        ),
        // libFuzzer needs nightly and minutes per target; `make test` replays the same targets'
        // bodies over their committed corpora.
        ("make fuzz", By("fuzz/tests/corpus.rs", "every_target_passes_its_corpus")),
        (
            "make fuzz FUZZ_SECONDS=60 FUZZ_TARGETS=\"traceparent b3\"",
            By("fuzz/tests/corpus.rs", "every_target_passes_its_corpus"),
        ),
        (
            "make fuzz FUZZ_RUNS=10000000 FUZZ_SECONDS=3000",
            By("fuzz/tests/corpus.rs", "every_target_passes_its_corpus"),
        ),
        (
            "curl -X POST 'http://127.0.0.1:9901/drain_listeners?graceful'",
            By("tests/tests/filter_shutdown.rs", "/drain_listeners?graceful"),
        ),
        ("sleep 3", By("tests/tests/filter_shutdown.rs", "FLUSH_INTERVAL +")),
        ("kill -TERM \"$ENVOY_PID\"", By("tests/tests/filter_shutdown.rs", "terminate(")),
        // The official W3C Trace Context suite lives on GitHub: opt-in. `make test` runs the same
        // path with our spec-derived cases (tests/tests/filter_w3c_level2.rs).
        (
            "git clone https://github.com/w3c/trace-context /tmp/trace-context",
            NeedsGitHub,
        ),
        (
            "W3C_TRACE_CONTEXT_DIR=/tmp/trace-context make test-w3c",
            By("tests/tests/w3c_official_suite.rs", "W3C_TRACE_CONTEXT_DIR"),
        ),
        ("make wasm", MakeTest),
        ("make native", MakeTest),
        ("make up", NeedsDocker),
        ("make down", NeedsDocker),
        (
            "scripts/test-tracing.sh",
            By("tests/tests/e2e_test_tracing_script.rs", "scripts/test-tracing.sh"),
        ),
        (
            "curl -s http://127.0.0.1:9901/stats | grep wasmcustom.aetherflow",
            NeedsRunningStack,
        ),
        (
            "cargo run -p aetherflow-demo --bin demo-http -- --listen 127.0.0.1:8080",
            By("tests/tests/e2e_demo_services.rs", "http_service"),
        ),
        (
            "cargo run -p aetherflow-demo --bin demo-grpc -- --listen 127.0.0.1:50051",
            By("tests/tests/e2e_demo_services.rs", "grpc_service"),
        ),
        (
            "printf '\\x00\\x00\\x00\\x00\\x05\\x0a\\x03bob' | curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- -o /dev/null -D - http://127.0.0.1:50051/demo.v1.Greeter/Fail",
            NeedsRunningStack,
        ),
        (
            "grpcurl -plaintext -import-path demo/proto -proto greeter.proto -d '{\"name\":\"bob\",\"count\":3}' 127.0.0.1:50051 demo.v1.Greeter/StreamGreetings",
            NeedsRunningStack,
        ),
        (
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH=$PWD/target/release envoy -c envoy/envoy-native.yaml",
            By("harness/src/envoy/launch.rs", "ENVOY_DYNAMIC_MODULES_SEARCH_PATH"),
        ),
        (
            "make oci OCI_IMAGE=registry.example.com/aetherflow/trace-filter-wasm:0.1.0",
            NeedsDocker,
        ),
        (
            "docker build -f collector-shim/Dockerfile -t registry.example.com/aetherflow/collector-shim:0.1.0 .",
            NeedsDocker,
        ),
        (
            "docker build -f envoy/Dockerfile.demo -t registry.example.com/aetherflow/demo:0.1.0 .",
            NeedsDocker,
        ),
        (
            "kubectl kustomize deploy/kubernetes/overlays/zipkin | kubectl apply -f -",
            NeedsKubernetes,
        ),
        ("kubectl kustomize deploy/istio | kubectl apply -f -", NeedsKubernetes),
        (
            "kubectl kustomize deploy/envoy-gateway | kubectl apply -f -",
            NeedsKubernetes,
        ),
        (
            "kubectl patch deployment my-app --type merge -p '{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"aetherflow.io/trace\":\"enabled\"}}}}}'",
            NeedsKubernetes,
        ),
        (
            "cargo run -q -p collector-shim -- --config envoy/shim-compose.yaml --check-config",
            Run,
        ),
    ]
}

/// The commands of the ```sh blocks of one Markdown text: continuation lines joined, trailing
/// `# comments` dropped.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_block = !in_block && (t == "```sh" || t == "```bash" || t == "```shell");
            continue;
        }
        if !in_block || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let code = match t.find("  #") {
            Some(i) => t[..i].trim_end(),
            None => t,
        };
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        pending.push_str(code);
        out.push(std::mem::take(&mut pending));
    }
    out
}

#[test]
fn every_documented_command_is_run_or_listed() {
    let root = workspace_root();
    let registry = registry();
    let mut seen = BTreeSet::new();
    for f in doc_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        for cmd in commands(&text) {
            let Some((_, coverage)) = registry.iter().find(|(c, _)| *c == cmd) else {
                panic!(
                    "{}: the command `{cmd}` is in no test's list; run it in \
                     tests/tests/docs_reference.rs or say what it needs",
                    rel(&f)
                );
            };
            seen.insert(cmd.clone());
            match coverage {
                Coverage::Run => {
                    let out = Command::new("bash")
                        .arg("-c")
                        .arg(&cmd)
                        .current_dir(&root)
                        .output()
                        .expect("bash");
                    assert!(
                        out.status.success(),
                        "`{cmd}` failed:\n{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Coverage::MakeTest => {
                    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
                    let target = cmd.split_whitespace().nth(1).unwrap();
                    let test_line = makefile
                        .lines()
                        .find(|l| l.starts_with("test:"))
                        .expect("a test target");
                    assert!(
                        makefile.contains(&format!("\n{target}:"))
                            && (target == "test"
                                || test_line.split_whitespace().any(|t| t == target)),
                        "`{cmd}`: a Makefile target `make test` runs"
                    );
                }
                Coverage::By(file, marker) => {
                    let t = std::fs::read_to_string(root.join(file))
                        .unwrap_or_else(|_| panic!("`{cmd}` is covered by {file}, which exists"));
                    assert!(t.contains(marker), "{file} mentions {marker}");
                }
                Coverage::NeedsDocker
                | Coverage::NeedsKubernetes
                | Coverage::NeedsRunningStack
                | Coverage::NeedsGitHub => {}
            }
        }
    }
    let stale: Vec<_> = registry
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(
        stale.is_empty(),
        "listed commands no doc has any more: {stale:?}"
    );
}

#[test]
fn docs_use_no_internal_vocabulary() {
    // Words that meant something only to the people who built it: issue numbers, the project's
    // starting point ("seed"), and "floor" in the README, where it is never defined.
    let banned = ["issue ", "issue's", "the issue", "seed key", "the seed"];
    for f in doc_files() {
        let text = std::fs::read_to_string(&f).unwrap().to_lowercase();
        for word in banned {
            assert!(
                !text.contains(word),
                "{} says {word:?}: write it for a reader who never saw the project's history",
                rel(&f)
            );
        }
        if rel(&f) == "README.md" {
            assert!(
                !text.contains("floor"),
                "README.md says \"floor\" (say \"no-op module\")"
            );
        }
    }
}

#[test]
fn license_file_is_the_declared_licence() {
    let root = workspace_root();
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("license = \"Apache-2.0\""),
        "the workspace declares Apache-2.0"
    );
    let license = std::fs::read_to_string(root.join("LICENSE")).expect("a LICENSE file");
    let words: Vec<&str> = license.split_whitespace().collect();
    assert_eq!(words[..4], ["Apache", "License", "Version", "2.0,"]);
    assert!(license.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"));
    assert!(
        license.contains("END OF TERMS AND CONDITIONS"),
        "the full text"
    );
}

#[test]
fn shim_flags_in_the_docs_are_the_binarys() {
    let bin = aetherflow_tests::paths::shim_bin();
    aetherflow_tests::paths::require(&bin, "cargo build -p collector-shim");
    let out = Command::new(&bin).arg("--help").output().expect("--help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let flags_of = |text: &str| -> BTreeSet<String> {
        text.split(|c: char| c.is_whitespace() || c == ',' || c == '`' || c == '|')
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_string()
            })
            .collect()
    };
    let mut in_help = flags_of(&help);
    in_help.remove("--help");
    in_help.remove("--version");
    let doc = std::fs::read_to_string(workspace_root().join("docs/shim.md")).unwrap();
    let table: String = doc
        .lines()
        .skip_while(|l| !l.starts_with("| Flag"))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!table.is_empty(), "docs/shim.md has the flag table");
    let in_docs = flags_of(
        &table
            .lines()
            .map(|l| cells(l)[0].clone())
            .collect::<Vec<_>>()
            .join(" "),
    );
    assert_eq!(
        in_docs, in_help,
        "docs/shim.md's flags are the binary's --help flags"
    );
    // Each flag's config key is a documented key (or the exporters list).
    let keys: BTreeSet<String> = key_default_rows(&doc)
        .iter()
        .filter_map(|r| {
            let k = first_code(&r.cells[0])?;
            let prefix = first_code(&r.heading)
                .map(|s| format!("{s}."))
                .unwrap_or_default();
            Some(format!("{prefix}{k}"))
        })
        .collect();
    for line in table.lines() {
        if let Some(key) = first_code(&cells(line)[1]) {
            assert!(
                keys.contains(&key),
                "`{key}` (overridden by a flag) is documented"
            );
        }
    }
}
