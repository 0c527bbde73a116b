//! `make demo` end to end: the runner binary itself, against real Envoy, the real `.wasm` and the real
//! shim, must print every scenario's trace tree and pass its own checks.

use std::process::Command;

#[test]
fn make_demo_runner_prints_trees_and_passes_its_checks() {
    let out = Command::new(env!("CARGO_BIN_EXE_aetherflow-demo"))
        .output()
        .expect("run aetherflow-demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aetherflow-demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
    assert!(!stdout.contains('✘'), "a check failed:\n{stdout}");
    for step in ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"] {
        assert!(
            stdout.contains(step),
            "progress line {step} missing:\n{stdout}"
        );
    }
    for label in [
        "● http-ok",
        "● http-500",
        "● grpc-unary",
        "● grpc-stream",
        "● grpc-error",
        "● forced",
        "● tail-kept",
        "● egress",
        "● unsampled",
    ] {
        assert!(
            stdout.contains(label),
            "scenario {label} missing:\n{stdout}"
        );
    }
    // The shim's own account of its decisions: the failed unsampled trace kept by the error policy,
    // the successful unsampled one dropped.
    let summary = stdout
        .lines()
        .find(|l| l.contains("shim:"))
        .unwrap_or_default();
    assert!(summary.contains("kept by the error policy"), "{summary}");
    assert!(summary.contains("record-only dropped"), "{summary}");
    // Trees show the proxy span with the service span under it.
    assert!(stdout.contains("└─ envoy-ingress SERVER"), "{stdout}");
    assert!(stdout.contains("└─ demo-grpc SERVER"), "{stdout}");
    assert!(stdout.contains("child of envoy-ingress span"), "{stdout}");
}
