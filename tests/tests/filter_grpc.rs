//! gRPC over HTTP/2 end to end: status from trailers and from trailers-only responses, a response
//! with no status, span status per the RPC conventions (SERVER kind), and message counts from the
//! gRPC frame prefixes of streaming bodies.

use aetherflow_tests::grpc;
use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::StackBuilder;

const STATUS_ERROR: i32 = 2;

aetherflow_tests::each_form! {
async fn grpc_status_and_message_counts(form) {
    let stack = StackBuilder::new().form(form).start().await;

    // (mode, code, server span is an error?)
    let cases: &[(&str, u32, bool)] = &[
        ("trailers", 0, false),
        ("trailers", 5, false), // NOT_FOUND: a client problem, not a server error
        ("trailers", 13, true), // INTERNAL
        ("trailers", 4, true),  // DEADLINE_EXCEEDED
        ("trailers-only", 0, false),
        ("trailers-only", 14, true), // UNAVAILABLE
        ("trailers-only", 12, true), // UNIMPLEMENTED
        ("trailers-only", 3, false), // INVALID_ARGUMENT
    ];
    for (mode, code, is_error) in cases {
        let case = format!("{mode} grpc-status {code}");
        let req = ClientRequest::grpc("/demo.v1.Echo/Unary", grpc::frame(b"hello"))
            .header("x-upstream-grpc-mode", mode)
            .header("x-upstream-grpc-status", code.to_string())
            .header("x-upstream-grpc-message", "because");
        let ex = stack.ingress(req).await;
        assert_eq!(ex.response.status, 200, "{case}");
        assert_eq!(
            ex.response.grpc_status(),
            Some(code.to_string()),
            "{case}: client sees the status"
        );
        assert_eq!(ex.upstream.version, "HTTP/2.0");
        let span = stack.span_of(&ex).await;
        assert_eq!(span.span.name, "demo.v1.Echo/Unary", "{case}");
        assert_eq!(
            span.attr_str("rpc.system.name").as_deref(),
            Some("grpc"),
            "{case}"
        );
        assert_eq!(
            span.attr_str("rpc.method").as_deref(),
            Some("demo.v1.Echo/Unary"),
            "{case}"
        );
        assert_eq!(
            span.attr_str("rpc.response.status_code").as_deref(),
            Some(grpc::code_name(*code)),
            "{case}"
        );
        let err = span.span.status.as_ref().map(|s| s.code) == Some(STATUS_ERROR);
        assert_eq!(err, *is_error, "{case}: span status {:?}", span.span.status);
        if *is_error {
            let msg = span.span.status.as_ref().map(|s| s.message.as_str());
            assert_eq!(
                msg,
                Some("because"),
                "{case}: grpc-message as the status description"
            );
        }
        assert_eq!(
            span.attr_str("envoy.upstream.cluster").as_deref(),
            Some("demo_grpc"),
            "{case}"
        );
    }

    // Other gRPC content types are gRPC too.
    let mut req = ClientRequest::grpc("/demo.v1.Echo/Proto", grpc::frame(b"p"));
    req.headers[0].1 = b"application/grpc+proto".to_vec();
    let ex = stack.ingress(req).await;
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.attr_str("rpc.method").as_deref(),
        Some("demo.v1.Echo/Proto")
    );
    assert_eq!(
        span.attr_str("rpc.response.status_code").as_deref(),
        Some("OK")
    );

    // The upstream resets: Envoy answers the gRPC client itself (trailers-only UNAVAILABLE).
    let req = ClientRequest::grpc("/demo.v1.Echo/Unary", grpc::frame(b"x"))
        .header("x-upstream-reset", "1");
    let ex = stack.ingress(req).await;
    assert_eq!(ex.response.grpc_status().as_deref(), Some("14"));
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.attr_str("rpc.response.status_code").as_deref(),
        Some("UNAVAILABLE")
    );
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(STATUS_ERROR)
    );

    // A response stream that ends with no grpc-status at all: recorded as missing, not OK.
    let req = ClientRequest::grpc("/demo.v1.Echo/Unary", grpc::frame(b"x"))
        .header("x-upstream-grpc-mode", "missing");
    let ex = stack.ingress(req).await;
    assert_eq!(ex.response.grpc_status(), None);
    let span = stack.span_of(&ex).await;
    assert_eq!(span.attr_bool("aetherflow.grpc.status_missing"), Some(true));
    assert_ne!(
        span.attr_str("rpc.response.status_code").as_deref(),
        Some("OK")
    );
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(STATUS_ERROR)
    );

    // Streaming: 7 request messages, 5 response messages (counted from frame prefixes, unbuffered).
    let req = ClientRequest::grpc("/demo.v1.Echo/Chat", grpc::frames(7, 1000))
        .header("x-upstream-grpc-frames", "5");
    let ex = stack.ingress(req).await;
    assert_eq!(
        ex.upstream.body.len(),
        7 * 1005,
        "body passed through untouched"
    );
    assert_eq!(ex.response.body.len(), 5 * (5 + "reply-0".len()));
    let span = stack.span_of(&ex).await;
    assert_eq!(span.attr_int("aetherflow.grpc.request_messages"), Some(7));
    assert_eq!(span.attr_int("aetherflow.grpc.response_messages"), Some(5));
    // Large messages split over many DATA frames still count once each.
    let req = ClientRequest::grpc("/demo.v1.Echo/Chat", grpc::frames(3, 100_000))
        .header("x-upstream-grpc-frames", "2");
    let ex = stack.ingress(req).await;
    let span = stack.span_of(&ex).await;
    assert_eq!(span.attr_int("aetherflow.grpc.request_messages"), Some(3));
    assert_eq!(span.attr_int("aetherflow.grpc.response_messages"), Some(2));
    // Messages whose 5-byte prefixes straddle HTTP/2 DATA frame boundaries (16 KiB frames,
    // 16386-byte messages drift across them).
    let req = ClientRequest::grpc("/demo.v1.Echo/Chat", grpc::frames(50, 16_381))
        .header("x-upstream-grpc-frames", "1");
    let ex = stack.ingress(req).await;
    let span = stack.span_of(&ex).await;
    assert_eq!(span.attr_int("aetherflow.grpc.request_messages"), Some(50));
    assert_eq!(span.attr_int("aetherflow.grpc.response_messages"), Some(1));
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn grpc_message_counting_can_be_switched_off(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("grpc_message_counting".into(), false.into());
        })
        .start()
        .await;
    let req = ClientRequest::grpc("/demo.v1.Echo/Chat", grpc::frames(3, 10))
        .header("x-upstream-grpc-frames", "2");
    let ex = stack.ingress(req).await;
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.attr_str("rpc.response.status_code").as_deref(),
        Some("OK")
    );
    assert_eq!(span.attr_int("aetherflow.grpc.request_messages"), None);
    assert_eq!(span.attr_int("aetherflow.grpc.response_messages"), None);
}
}

aetherflow_tests::each_form! {
async fn client_kind_grpc_errors(form) {
    // Point the egress example (CLIENT spans) at the gRPC cluster for this test.
    let stack = StackBuilder::new().form(form)
        .filter(aetherflow_tests::envoy_config::EGRESS, |c| {
            c.insert("flush_interval_ms".into(), 200.into());
        })
        .config(|cfg| {
            let listeners = cfg.doc_mut()["static_resources"]["listeners"]
                .as_sequence_mut()
                .ok_or("listeners")?;
            let egress = listeners
                .iter_mut()
                .find(|l| l["name"].as_str() == Some("egress"))
                .ok_or("egress listener")?;
            let route = &mut egress["filter_chains"][0]["filters"][0]["typed_config"]
                ["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
            route["cluster"] = "demo_grpc".into();
            Ok(())
        })
        .start()
        .await;
    // (code, client span is an error?): every non-OK code is an error for a client.
    for (code, is_error) in [(0u32, false), (5, true), (3, true), (13, true)] {
        let req = ClientRequest::grpc("/demo.v1.Echo/Unary", grpc::frame(b"c"))
            .header("x-upstream-grpc-status", code.to_string());
        let ex = stack.exchange(stack.envoy.egress(), req).await;
        let span = stack.span_of(&ex).await;
        assert_eq!(span.span.kind, 3, "CLIENT");
        assert_eq!(
            span.attr_str("rpc.response.status_code").as_deref(),
            Some(grpc::code_name(code))
        );
        let err = span.span.status.as_ref().map(|s| s.code) == Some(STATUS_ERROR);
        assert_eq!(err, is_error, "client span, grpc-status {code}");
    }
}
}
