//! `tracestate` (combining lines, grammar, 32 members, `ot` member) and W3C Baggage (passthrough,
//! limits, `baggage_to_attributes`) through the real filter.

use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::{new_span_id, new_trace_id, StackBuilder};

fn continued(tracestate_lines: &[&str]) -> ClientRequest {
    let mut req = ClientRequest::get("/ts").header(
        "traceparent",
        format!("00-{}-{}-01", new_trace_id(), new_span_id()),
    );
    for line in tracestate_lines {
        req = req.header("tracestate", line);
    }
    req
}

/// Members other than our own `ot` entry (the filter may add or update it).
fn foreign(members: &[String]) -> Vec<String> {
    members
        .iter()
        .filter(|m| !m.starts_with("ot="))
        .cloned()
        .collect()
}

aetherflow_tests::each_form! {
async fn tracestate_rules(form) {
    let stack = StackBuilder::new().form(form).start().await;

    // Several header lines combine in order.
    let ex = stack
        .ingress(continued(&["a=1,b=2", "c=3", "vendor@tenant=x"]))
        .await;
    assert_eq!(
        foreign(&ex.upstream_tracestate()),
        ["a=1", "b=2", "c=3", "vendor@tenant=x"]
    );

    // The key grammar's corners: multi-tenant keys (tenant may start with a digit), the simple
    // key's extra characters, and a value with an inner space are all valid.
    let ex = stack
        .ingress(continued(&["0tenant@vendor=x,a_b-c*d/e=y,k=a b"]))
        .await;
    assert_eq!(
        foreign(&ex.upstream_tracestate()),
        ["0tenant@vendor=x", "a_b-c*d/e=y", "k=a b"]
    );

    // Exactly 32 members pass intact.
    let m32: Vec<String> = (0..32).map(|i| format!("k{i}=v{i}")).collect();
    let ex = stack.ingress(continued(&[&m32.join(",")])).await;
    let got = ex.upstream_tracestate();
    assert_eq!(foreign(&got), m32, "32 members must pass");
    assert!(got.len() <= 32);

    // 33 members (split over two lines): never more than 32 go upstream.
    let m33: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
    let ex = stack
        .ingress(continued(&[&m33[..20].join(","), &m33[20..].join(",")]))
        .await;
    let got = ex.upstream_tracestate();
    assert!(
        got.len() <= 32,
        "more than 32 members forwarded: {}",
        got.len()
    );
    assert!(
        foreign(&got).iter().all(|m| m33.contains(m)),
        "only incoming members: {got:?}"
    );

    // Trimming for size drops entries over 128 chars first: a short member may only be missing
    // upstream if the long one is missing too.
    let long = format!("long={}", "l".repeat(200));
    let mut members: Vec<String> = (0..20)
        .map(|i| format!("key{i}={}", "v".repeat(40)))
        .collect();
    members.insert(10, long.clone());
    let ex = stack.ingress(continued(&[&members.join(",")])).await;
    let got = foreign(&ex.upstream_tracestate());
    let short_missing = members.iter().any(|m| m != &long && !got.contains(m));
    assert!(
        !short_missing || !got.contains(&long),
        "trimmed short entries but kept the >128-char one: {got:?}"
    );
    assert!(got.iter().all(|m| members.contains(m)));

    // A list with an invalid member is dropped as a whole; the trace itself continues.
    let before = stack
        .envoy
        .filter_metric_settled(
            "aetherflow_invalid_tracestate",
            std::time::Duration::from_millis(500),
        )
        .await;
    // (Level 2 keys: one starting with '@', a '.' in a key, uppercase; then values and lengths.
    // Level 1's digit-first and 14-character vendor limits are gone: tests/tests/filter_w3c_level2.rs.)
    for bad in [
        "a=1,@abc=v",
        "a=1,a.b=x",
        "a=1,B@D=x",
        "a=1,k=v=v",
        "a=1,=v",
        "a=1,k=",
        &format!("a=1,{}=v", "k".repeat(257)),
    ] {
        let t = new_trace_id();
        let req = ClientRequest::get("/ts")
            .header("traceparent", format!("00-{t}-{}-01", new_span_id()))
            .header("tracestate", bad);
        let ex = stack.ingress(req).await;
        assert_eq!(
            ex.upstream_traceparent().trace_id,
            t,
            "{bad}: trace still continued"
        );
        assert!(
            foreign(&ex.upstream_tracestate()).is_empty(),
            "{bad:?} must be dropped, got {:?}",
            ex.upstream_tracestate()
        );
    }
    let counted = stack
        .envoy
        .wait_filter_metric(
            "aetherflow_invalid_tracestate",
            std::time::Duration::from_secs(5),
            |v| v >= before + 7,
        )
        .await;
    assert!(
        counted.is_ok(),
        "aetherflow_invalid_tracestate: {counted:?}"
    );

    // Empty list members (OWS, empty entries) are allowed by the grammar and not an error.
    let ex = stack.ingress(continued(&["a=1 , ,b=2"])).await;
    assert_eq!(foreign(&ex.upstream_tracestate()), ["a=1", "b=2"]);

    // A caller's `ot` member travels on when the trace is continued (parent-based decision).
    let ex = stack
        .ingress(continued(&["ot=th:8;rv:ffffffffffffff,x=1"]))
        .await;
    let got = ex.upstream_tracestate();
    assert!(
        got.iter().any(|m| m == "ot=th:8;rv:ffffffffffffff"),
        "{got:?}"
    );
    assert!(got.contains(&"x=1".to_string()));

    // A new trace sampled by ratio 1.0 carries our threshold `ot=th:0` upstream and in the span.
    let ex = stack.ingress(ClientRequest::get("/new")).await;
    assert!(
        ex.upstream_tracestate()
            .iter()
            .any(|m| m.starts_with("ot=") && m.contains("th:0")),
        "{:?}",
        ex.upstream_tracestate()
    );
    let span = stack.span_of(&ex).await;
    assert!(
        span.span.trace_state.contains("th:0"),
        "span trace_state {:?}",
        span.span.trace_state
    );
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn baggage_rules(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert(
                "baggage_to_attributes".into(),
                serde_json::json!(["user.id", "absent"]),
            );
        })
        .start()
        .await;

    // Passthrough unchanged, properties included; named keys copied to attributes.
    let value = "user.id=alice,tenant=acme;prop=1,enc=a%20b";
    let ex = stack
        .ingress(ClientRequest::get("/b").header("baggage", value))
        .await;
    assert_eq!(ex.upstream.header_all("baggage"), vec![value.to_string()]);
    let span = stack.span_of(&ex).await;
    assert_eq!(span.attr_str("baggage.user.id").as_deref(), Some("alice"));
    assert_eq!(
        span.attr_str("baggage.tenant"),
        None,
        "only allow-listed keys become attributes"
    );
    assert_eq!(span.attr_str("baggage.absent"), None);

    // Several baggage lines are one list (W3C Baggage): upstream gets the same members in order.
    let req = ClientRequest::get("/b")
        .header("baggage", "a=1")
        .header("baggage", "b=2,c=3");
    let ex = stack.ingress(req).await;
    assert_eq!(ex.upstream.header_all("baggage").join(","), "a=1,b=2,c=3");

    // 65 members: at most 64 go upstream, each a complete member of the input.
    let members: Vec<String> = (0..65).map(|i| format!("k{i}=v{i}")).collect();
    let ex = stack
        .ingress(ClientRequest::get("/b").header("baggage", members.join(",")))
        .await;
    let sent: Vec<String> = ex
        .upstream
        .header_all("baggage")
        .join(",")
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    assert!(sent.len() <= 64, "{} members forwarded", sent.len());
    assert!(
        sent.iter().all(|m| members.contains(m)),
        "partial member forwarded: {sent:?}"
    );

    // Over 8192 bytes: what goes upstream fits and holds no partial member.
    let big: Vec<String> = (0..40)
        .map(|i| format!("key{i}={}", "v".repeat(300)))
        .collect();
    let ex = stack
        .ingress(ClientRequest::get("/b").header("baggage", big.join(",")))
        .await;
    let sent = ex.upstream.header_all("baggage").join(",");
    assert!(sent.len() <= 8192, "{} bytes forwarded", sent.len());
    assert!(
        sent.split(',')
            .filter(|m| !m.is_empty())
            .all(|m| big.iter().any(|b| b == m)),
        "partial member forwarded"
    );
    stack.envoy.assert_no_filter_failures().await;
}
}
