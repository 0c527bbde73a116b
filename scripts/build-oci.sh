#!/usr/bin/env bash
# `make oci`: the Wasm filter as an OCI image (deploy/oci/Dockerfile: FROM scratch, the module as
# /plugin.wasm, one layer), the form Istio's WasmPlugin, Envoy Gateway's EnvoyExtensionPolicy and
# Kubernetes image volumes pull. Builds with docker (when its daemon answers), else podman, else buildah;
# without any of them it says so and exits 1 before building anything.
#   OCI_IMAGE=registry.example.com/aetherflow/trace-filter-wasm:0.1.0 make oci   (then push it)
set -euo pipefail
cd "${BASH_SOURCE[0]%/*}/.."

image=${OCI_IMAGE:-aetherflow/trace-filter-wasm:0.1.0}
# docker counts only with a daemon it can reach (a CLI alone cannot build); podman and buildah need none.
builder=""
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  builder=docker
else
  for tool in podman buildah; do
    if command -v "$tool" >/dev/null 2>&1; then builder=$tool; break; fi
  done
fi
if [ -z "$builder" ]; then
  echo "make oci: needs docker (with a running daemon), podman or buildah on PATH; none found, nothing built." >&2
  echo "make oci: the image is deploy/oci/Dockerfile with target/wasm32-wasip1/release/trace_filter.wasm as plugin.wasm." >&2
  exit 1
fi

make --no-print-directory wasm
context=target/oci
rm -rf "$context"
mkdir -p "$context"
cp target/wasm32-wasip1/release/trace_filter.wasm "$context/plugin.wasm"
case "$builder" in
  # vfs storage and chroot isolation work without a daemon or kernel overlay support (the image has no RUN).
  buildah) STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot} \
             buildah bud -f deploy/oci/Dockerfile -t "$image" "$context" ;;
  *) "$builder" build -f deploy/oci/Dockerfile -t "$image" "$context" ;;
esac
echo "make oci: built $image with $builder (push it, then use it as oci://$image in Istio, or as the image in Envoy Gateway)"
