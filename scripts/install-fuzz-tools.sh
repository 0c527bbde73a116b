#!/usr/bin/env bash
# Installs what `make fuzz` needs and nothing else needs: a pinned nightly toolchain (libFuzzer's
# instrumentation needs `-Z` flags) and a pinned cargo-fuzz in .tools/. `make test` never calls this:
# the committed seed corpora are replayed on the stable toolchain of rust-toolchain.toml.
# Idempotent; prints the nightly toolchain's name on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

nightly=nightly-2026-05-20
cargo_fuzz_version=0.13.2

if ! rustup run "$nightly" rustc --version >/dev/null 2>&1; then
  echo "install-fuzz-tools: installing the $nightly toolchain (minimal profile)" >&2
  rustup toolchain install "$nightly" --profile minimal >&2
fi

if ! .tools/bin/cargo-fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  echo "install-fuzz-tools: installing cargo-fuzz $cargo_fuzz_version into .tools/" >&2
  cargo install --locked --root .tools --version "$cargo_fuzz_version" cargo-fuzz >&2
fi

echo "$nightly"
