//! What Envoy does when the Wasm VM fails at run time, with the shipped configuration
//! (`failure_policy: FAIL_OPEN`) and with the alternative Envoy offers (`FAIL_RELOAD`), proven
//! with a test-only build of the filter that traps on a marker header (`make wasm-trap`).
//!
//! What these tests pin down (Envoy 1.40, the same on the oldest release of the compatibility
//! list), and `docs/filter.md#when-the-vm-fails` says:
//! - the request whose callback traps is answered 503 by Envoy under either policy: no policy
//!   fails open for the request in flight;
//! - `FAIL_OPEN`: every later request is served, untraced, until Envoy restarts or the plugin
//!   is reloaded. Envoy counts nothing for it; the visible signal in Envoy's stats is the
//!   filter's own `aetherflow_spans_started` standing still while `downstream_rq_2xx` grows;
//! - `FAIL_RELOAD`: Envoy builds a new VM and tracing resumes, but requests that arrive during
//!   the reload backoff are answered 503 (counted in `wasm.<vm>.vm_reload_backoff`).

use std::time::{Duration, Instant};

use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions, INGRESS};
use aetherflow_tests::http_client::{self, ClientRequest};
use aetherflow_tests::paths;
use aetherflow_tests::stack::{Stack, StackBuilder};
use serde_yaml::Value;

const TRAP_HEADER: &str = "x-aetherflow-test-trap";
const WASM_FILTER: &str = "envoy.filters.http.wasm";
const TIMEOUT: Duration = Duration::from_secs(15);

/// The shipped configuration with the trapping module, optionally another failure policy.
async fn stack_with_trap(policy: Option<&'static str>) -> Stack {
    let trap = paths::wasm_trap();
    paths::require(&trap, "make wasm-trap");
    StackBuilder::new()
        .config(move |cfg| {
            if let Some(p) = policy {
                set_failure_policy(cfg, p)?;
            }
            cfg.substitute(&Substitutions {
                wasm_path: Some(trap),
                ..Default::default()
            })
        })
        .start()
        .await
}

/// Every Wasm filter's `failure_policy` set to `policy`.
fn set_failure_policy(cfg: &mut EnvoyConfig, policy: &str) -> Result<(), String> {
    let listeners = cfg.doc_mut()["static_resources"]["listeners"]
        .as_sequence_mut()
        .ok_or("no listeners")?;
    let mut set = 0;
    for l in listeners {
        for chain in l["filter_chains"].as_sequence_mut().into_iter().flatten() {
            for f in chain["filters"].as_sequence_mut().into_iter().flatten() {
                let hfs = f["typed_config"]["http_filters"].as_sequence_mut();
                for hf in hfs.into_iter().flatten() {
                    if hf["name"].as_str() == Some(WASM_FILTER) {
                        hf["typed_config"]["config"]["failure_policy"] = Value::from(policy);
                        set += 1;
                    }
                }
            }
        }
    }
    if set == 0 {
        return Err("no Wasm filter in the configuration".into());
    }
    Ok(())
}

/// The shipped file's policy, read rather than assumed.
fn shipped_policy() -> String {
    let cfg = EnvoyConfig::shipped().expect("envoy/envoy.yaml parses");
    let text = cfg.to_yaml();
    let policies: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("failure_policy:"))
        .map(str::trim)
        .collect();
    assert!(!policies.is_empty(), "envoy.yaml sets no failure_policy");
    assert!(
        policies.iter().all(|p| *p == policies[0]),
        "listeners differ: {policies:?}"
    );
    policies[0].to_owned()
}

/// Sends the request that makes the VM trap; returns the status Envoy answered.
async fn trap(stack: &Stack) -> u16 {
    let req = ClientRequest::get("/api/orders/1").header(TRAP_HEADER, "1");
    let resp = http_client::send(stack.envoy.ingress(), &req, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("the trapping request got no answer: {e}"));
    let log = stack.envoy.log();
    assert!(
        log.lines().any(|l| l.contains("test-trap")) && log.contains("proxy_on_request_headers"),
        "no trace of the trap in Envoy's log:\n{}",
        stack.envoy.log_tail(20)
    );
    resp.status
}

#[tokio::test]
async fn with_the_shipped_policy_every_later_request_is_served_untraced_and_the_stall_shows() {
    assert_eq!(shipped_policy(), "FAIL_OPEN");
    let stack = stack_with_trap(None).await;

    // Traced before the fault, and the filter's counter says so.
    for _ in 0..3 {
        let ex = stack.ingress(ClientRequest::get("/api/orders/1")).await;
        assert_eq!(ex.response.status, 200);
        ex.upstream_traceparent();
    }
    let started = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_started", TIMEOUT, |v| v >= 3)
        .await
        .unwrap_or_else(|v| panic!("aetherflow_spans_started stayed at {v}"));
    let served_2xx = stack
        .envoy
        .stat("http.ingress_http.downstream_rq_2xx")
        .await;

    let status = trap(&stack).await;
    assert_eq!(
        status, 503,
        "Envoy's answer to the request whose VM trapped"
    );

    // Every later request is served, without tracing: the VM is gone.
    for i in 0..20 {
        let ex = stack.ingress(ClientRequest::get("/api/orders/2")).await;
        assert_eq!(ex.response.status, 200, "request {i} after the fault");
        assert!(
            ex.upstream.header_all("traceparent").is_empty(),
            "request {i} after the fault was traced: the VM should be dead"
        );
    }
    assert!(stack.envoy.is_running(), "Envoy exited");
    // The signal in Envoy's stats: requests keep completing, the filter's counter stands
    // still (published at each tick: give it several).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        stack
            .envoy
            .stat("http.ingress_http.downstream_rq_2xx")
            .await
            >= served_2xx + 20,
        "downstream_rq_2xx did not count the requests served after the fault"
    );
    assert_eq!(
        stack.envoy.filter_metric("aetherflow_spans_started").await,
        started,
        "aetherflow_spans_started moved after the VM died"
    );
}

#[tokio::test]
async fn with_fail_reload_tracing_resumes_but_requests_in_the_backoff_fail() {
    let stack = stack_with_trap(Some("FAIL_RELOAD")).await;
    let ex = stack.ingress(ClientRequest::get("/api/orders/1")).await;
    ex.upstream_traceparent();

    let status = trap(&stack).await;
    assert_eq!(
        status, 503,
        "Envoy's answer to the request whose VM trapped"
    );

    // Requests until one is traced again (bounded): those in the backoff are refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = 0;
    let resumed = loop {
        assert!(Instant::now() < deadline, "tracing never resumed");
        let req = ClientRequest::get("/api/orders/2");
        let resp = http_client::send(stack.envoy.ingress(), &req, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("no answer after the fault: {e}"));
        match resp.status {
            503 => refused += 1,
            200 => {
                let ex = stack.ingress(ClientRequest::get("/api/orders/3")).await;
                if !ex.upstream.header_all("traceparent").is_empty() {
                    break ex;
                }
            }
            other => panic!("unexpected status {other} after the fault"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(resumed.response.status, 200);
    let reloaded = stack
        .envoy
        .stat("wasm.aetherflow_trace.vm_reload_success")
        .await;
    assert!(reloaded >= 1, "vm_reload_success = {reloaded}");
    let backoff = stack
        .envoy
        .stat("wasm.aetherflow_trace.vm_reload_backoff")
        .await;
    assert!(
        backoff >= refused,
        "vm_reload_backoff {backoff} < requests refused in the backoff {refused}"
    );
    // The ingress listener is where the trap fired; the egress VM never failed.
    assert!(stack.envoy.listener(INGRESS).port() > 0);
}
