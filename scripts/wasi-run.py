#!/usr/bin/env python3
"""Run a WASI (wasm32-wasip1) program, such as a Rust test binary, under wasmtime.

Used as cargo's runner for the wasm32-wasip1 target (see `make test-core-wasm`):

    CARGO_TARGET_WASM32_WASIP1_RUNNER="python scripts/wasi-run.py" cargo test --target wasm32-wasip1

argv, the environment, stdin, stdout and stderr are passed through; the program's exit code
becomes ours. A trap (a Rust panic aborts the module on this target) exits with 101, the
code a failing native test binary returns. Uses the `wasmtime` package pinned in
scripts/requirements-test.txt.
"""

import os
import sys

from wasmtime import Engine, ExitTrap, Linker, Module, Store, Trap, WasiConfig, WasmtimeError


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: wasi-run.py PROGRAM.wasm [ARGS...]", file=sys.stderr)
        return 2
    path = argv[1]
    engine = Engine()
    linker = Linker(engine)
    linker.define_wasi()
    store = Store(engine)

    wasi = WasiConfig()
    # The program sees its own name as argv[0], like a native binary.
    wasi.argv = [os.path.basename(path)] + argv[2:]
    wasi.inherit_env()
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    # The working directory, so tests that read fixtures by relative path can.
    wasi.preopen_dir(".", ".")
    store.set_wasi(wasi)

    module = Module.from_file(engine, path)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except ExitTrap as e:
        return e.code
    except (Trap, WasmtimeError) as e:
        sys.stdout.flush()
        print(f"wasi-run: {os.path.basename(path)} trapped: {e}", file=sys.stderr)
        return 101
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
