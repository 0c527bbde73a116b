#!/usr/bin/env bash
# Checks a running AetherFlow stack end to end (the docker-compose stack from `make up`, or any stack with the same
# endpoints): every component healthy, the trace id returned in `x-trace-id` on HTTP and gRPC responses, and each
# trace visible through Jaeger's query API (/api/traces/<id>) and Zipkin's (/api/v2/trace/<id>).
#
# Endpoints (override with environment variables):
#   ENVOY_URL   http://127.0.0.1:10000   Envoy ingress
#   SHIM_URL    http://127.0.0.1:4318    collector-shim (/healthz)
#   JAEGER_URL  http://127.0.0.1:16686   Jaeger query
#   ZIPKIN_URL  http://127.0.0.1:9411    Zipkin
#   WAIT_SECS   60                       how long a trace may take to show up in a backend
set -euo pipefail

ENVOY_URL=${ENVOY_URL:-http://127.0.0.1:10000}
SHIM_URL=${SHIM_URL:-http://127.0.0.1:4318}
JAEGER_URL=${JAEGER_URL:-http://127.0.0.1:16686}
ZIPKIN_URL=${ZIPKIN_URL:-http://127.0.0.1:9411}
WAIT_SECS=${WAIT_SECS:-60}

failures=0
pass() { printf '  ok    %s\n' "$1"; }
fail() { printf '  FAIL  %s\n' "$1"; failures=$((failures + 1)); }

# Status code of a GET, or 000 when nothing answers.
status_of() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" || true; }

echo "health"
for check in "Envoy -> demo-http|$ENVOY_URL/healthz" "collector-shim|$SHIM_URL/healthz" \
             "Jaeger query|$JAEGER_URL/" "Zipkin|$ZIPKIN_URL/health"; do
  name=${check%%|*}; url=${check#*|}
  code=$(status_of "$url")
  if [ "$code" = 200 ]; then pass "$name ($url)"; else fail "$name ($url) answered $code"; fi
done

# Lowercase hex from the kernel's random source.
rand_hex() { od -An -tx1 -N "$1" /dev/urandom | tr -d ' \n'; }
# The x-trace-id header of a response whose headers are in file $1.
trace_id_in() { tr -d '\r' < "$1" | awk -F': ' 'tolower($1) == "x-trace-id" { print $2 }' | tail -n 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -a traces=()

echo "x-trace-id on responses"
# 1. HTTP with the client's own traceparent: the returned id is the client's trace id.
client_trace=$(rand_hex 16)
curl -s -m 10 -o /dev/null -D "$tmp/h1" -H "traceparent: 00-$client_trace-$(rand_hex 8)-01" "$ENVOY_URL/api/orders" || true
got=$(trace_id_in "$tmp/h1")
if [ "$got" = "$client_trace" ]; then pass "HTTP with a client traceparent: x-trace-id $got"; traces+=("$got")
else fail "HTTP with a client traceparent: x-trace-id '${got}', expected $client_trace"; fi

# 2. HTTP 500 without context: a new trace, sampled at the proxy or kept by the shim's error policy.
curl -s -m 10 -o /dev/null -D "$tmp/h2" "$ENVOY_URL/api/fail" || true
got=$(trace_id_in "$tmp/h2")
if [[ "$got" =~ ^[0-9a-f]{32}$ ]]; then pass "HTTP 500: x-trace-id $got"; traces+=("$got")
else fail "HTTP 500: no valid x-trace-id ('${got}')"; fi

# 3. gRPC unary call over h2c: one length-prefixed HelloRequest{name: "bob"}.
printf '\x00\x00\x00\x00\x05\x0a\x03bob' > "$tmp/req"
curl -s -m 10 --http2-prior-knowledge -o /dev/null -D "$tmp/h3" -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary @"$tmp/req" "$ENVOY_URL/demo.v1.Greeter/SayHello" || true
got=$(trace_id_in "$tmp/h3")
if [[ "$got" =~ ^[0-9a-f]{32}$ ]]; then pass "gRPC SayHello: x-trace-id $got"; traces+=("$got")
else fail "gRPC SayHello: no valid x-trace-id ('${got}')"; fi

echo "traces in the backends (waiting up to ${WAIT_SECS}s each)"
# Polls until the body of GET $2 contains the string $3.
wait_for() {
  local name=$1 url=$2 needle=$3 deadline=$((SECONDS + WAIT_SECS))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl -s -m 5 "$url" 2>/dev/null | grep -q "$needle"; then pass "$name"; return; fi
    sleep 2
  done
  fail "$name: $url never contained $needle"
}
for t in "${traces[@]}"; do
  # Jaeger answers {"data":[{"traceID":"<id>","spans":[...],"processes":{...}}]}; the trace must hold the proxy's
  # spans and the service's.
  wait_for "Jaeger has trace $t" "$JAEGER_URL/api/traces/$t" "\"traceID\":\"$t\""
  wait_for "Jaeger trace $t has spans from a demo service" "$JAEGER_URL/api/traces/$t" '"serviceName":"demo-'
  # Zipkin answers a JSON list of spans for /api/v2/trace/<id>.
  wait_for "Zipkin has trace $t" "$ZIPKIN_URL/api/v2/trace/$t" "\"traceId\":\"$t\""
done

if [ "$failures" -eq 0 ]; then echo "all checks passed"; else echo "$failures check(s) failed"; exit 1; fi
