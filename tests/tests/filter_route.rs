//! `http_routes` (span name `{method} {http.route}` per semconv 1.45 from configured path templates)
//! and the removal of stale inbound B3/Jaeger headers, in the real Envoy with the real `.wasm`.

use aetherflow_tests::envoy::{Envoy, EnvoyOptions};
use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions, EGRESS, INGRESS};
use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::paths;
use aetherflow_tests::stack::{new_span_id, new_trace_id, StackBuilder};
use serde_json::json;

aetherflow_tests::each_form! {
async fn matched_templates_name_the_span_and_set_http_route(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert(
                "http_routes".into(),
                json!([
                    "/api/orders/{id}",
                    "/api/users/{id}/cart",
                    "/static/{*path}",
                    "/api/{section}/{id}"
                ]),
            );
        })
        .start()
        .await;

    // (method, request path, expected http.route; None = no route, name is just the method)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("GET", "/api/orders/42", Some("/api/orders/{id}")),
        (
            "GET",
            "/api/orders/42?verbose=1&next=/api/x",
            Some("/api/orders/{id}"),
        ),
        ("PUT", "/api/users/7/cart", Some("/api/users/{id}/cart")),
        ("GET", "/static/css/site.css", Some("/static/{*path}")),
        ("GET", "/api/users/7", Some("/api/{section}/{id}")),
        ("GET", "/api/orders/42/items", None),
        ("GET", "/api/orders/", None),
        ("GET", "/nothing/here", None),
        ("GET", "/api?q=/api/orders/1", None),
    ];
    for &(method, path, route) in cases {
        let ex = stack.ingress(ClientRequest::get(path).method(method)).await;
        assert_eq!(ex.response.status, 200, "{method} {path}");
        let span = stack.span_of(&ex).await;
        let want_name = match route {
            Some(r) => format!("{method} {r}"),
            None => method.to_owned(),
        };
        assert_eq!(span.span.name, want_name, "{method} {path}: span name");
        assert_eq!(
            span.attr_str("http.route").as_deref(),
            route,
            "{method} {path}: http.route"
        );
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(span.attr_str("url.path").as_deref(), Some(p), "{path}");
        assert_eq!(
            span.attr_str("url.query"),
            (!q.is_empty()).then(|| q.to_owned()),
            "{path}: the query is recorded but not matched"
        );
    }
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
/// The shipped ingress lists the demo service's templates: its proxy spans carry the same
/// `http.route` as the demo's own spans.
async fn the_shipped_ingress_names_the_demo_routes(form) {
    let stack = StackBuilder::new().form(form).start().await;
    for (path, route) in [
        ("/api/orders/17", Some("/api/orders/{id}")),
        ("/api/orders", Some("/api/orders")),
        ("/api/fail", Some("/api/fail")),
        ("/api/slow?ms=10", Some("/api/slow")),
        ("/api/other", None),
    ] {
        let ex = stack.ingress(ClientRequest::get(path)).await;
        let span = stack.span_of(&ex).await;
        assert_eq!(span.attr_str("http.route").as_deref(), route, "{path}");
        let name = route.map_or("GET".to_owned(), |r| format!("GET {r}"));
        assert_eq!(span.span.name, name, "{path}");
    }
}
}

aetherflow_tests::each_form! {
async fn a_bad_template_stops_envoy_and_names_the_key(form) {
    form.require_module();
    let wasm = paths::wasm();
    let mut cfg = EnvoyConfig::shipped().expect("envoy/envoy.yaml parses");
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    cfg.substitute(&Substitutions::loopback(&wasm, a, a, a))
        .expect("loopback ports");
    cfg.use_form(form).expect("filter form");
    cfg.update_filter_config(INGRESS, |c| {
        c.insert(
            "http_routes".into(),
            json!(["/api/orders/{id}", "/api/files/{name}.json"]),
        );
    })
    .expect("edit");
    let opts = EnvoyOptions {
        startup_timeout: std::time::Duration::from_secs(60),
        form,
        ..Default::default()
    };
    match Envoy::start(&cfg, &opts).await {
        Ok(envoy) => panic!("Envoy started with a bad template; log:\n{}", envoy.log()),
        Err(e) => {
            assert!(e.contains("exited"), "{e}");
            assert!(
                e.lines().any(|l| l.contains(form.log_marker())
                    && l.contains("`http_routes[1]`")
                    && l.contains("/api/files/{name}.json")
                    && l.contains("not allowed in a literal")),
                "no filter log line names http_routes[1], the template and the reason:\n{e}"
            );
        }
    }
}
}

/// Inbound legacy context headers of every kind, naming the caller's span `caller`.
fn with_legacy_headers(req: ClientRequest, t: &str, caller: &str) -> ClientRequest {
    req.header("b3", format!("{t}-{caller}-1"))
        .header("x-b3-traceid", t)
        .header("x-b3-spanid", caller)
        .header("x-b3-parentspanid", new_span_id())
        .header("x-b3-sampled", "1")
        .header("x-b3-flags", "1")
        .header("uber-trace-id", format!("{t}:{caller}:0:1"))
        .header("uberctx-tenant", "acme")
}

const LEGACY: [&str; 7] = [
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
];

aetherflow_tests::each_form! {
async fn stale_legacy_headers_do_not_reach_the_upstream(form) {
    let stack = StackBuilder::new().form(form)
        .filter(EGRESS, |c| {
            c.insert("outbound_formats".into(), json!(["w3c", "b3"]));
            c.insert("flush_interval_ms".into(), json!(200));
        })
        .start()
        .await;

    // W3C only outbound (the shipped ingress): a traceparent wins, and every legacy context
    // header goes; Jaeger baggage stays.
    let (t, caller) = (new_trace_id(), new_span_id());
    let req = with_legacy_headers(
        ClientRequest::get("/stale").header("traceparent", format!("00-{t}-{caller}-01")),
        &t,
        &caller,
    );
    let ex = stack.ingress(req).await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t);
    assert_ne!(
        tp.parent_id, caller,
        "the upstream's parent is the proxy span"
    );
    for h in LEGACY {
        assert_eq!(
            ex.upstream.header_all(h),
            Vec::<String>::new(),
            "{h} removed"
        );
    }
    assert_eq!(
        ex.upstream.header("uberctx-tenant").as_deref(),
        Some("acme")
    );
    assert_eq!(stack.span_of(&ex).await.parent_span_id(), caller);

    // Context taken from B3 itself (no traceparent): the B3 headers still do not reach the
    // upstream, which follows the traceparent naming the proxy span.
    let (t, caller) = (new_trace_id(), new_span_id());
    let ex = stack
        .ingress(with_legacy_headers(
            ClientRequest::get("/stale-b3"),
            &t,
            &caller,
        ))
        .await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t, "B3 context continued");
    for h in LEGACY {
        assert_eq!(
            ex.upstream.header_all(h),
            Vec::<String>::new(),
            "{h} removed"
        );
    }
    assert_eq!(stack.span_of(&ex).await.parent_span_id(), caller);

    // B3 multi outbound (egress): x-b3-* are overwritten with the proxy span, parent and flags
    // dropped; the b3 single header and uber-trace-id (formats not written) are removed.
    let (t, caller) = (new_trace_id(), new_span_id());
    let req = with_legacy_headers(
        ClientRequest::get("/stale-egress").header("traceparent", format!("00-{t}-{caller}-01")),
        &t,
        &caller,
    );
    let ex = stack.exchange(stack.envoy.egress(), req).await;
    let tp = ex.upstream_traceparent();
    assert_eq!(
        ex.upstream.header_all("x-b3-traceid"),
        vec![tp.trace_id.clone()]
    );
    assert_eq!(
        ex.upstream.header_all("x-b3-spanid"),
        vec![tp.parent_id.clone()]
    );
    assert_eq!(
        ex.upstream.header_all("x-b3-sampled"),
        vec!["1".to_string()]
    );
    for h in ["b3", "x-b3-parentspanid", "x-b3-flags", "uber-trace-id"] {
        assert_eq!(
            ex.upstream.header_all(h),
            Vec::<String>::new(),
            "{h} removed"
        );
    }
    assert_eq!(
        ex.upstream.header("uberctx-tenant").as_deref(),
        Some("acme")
    );
    stack.envoy.assert_no_filter_failures().await;
}
}
