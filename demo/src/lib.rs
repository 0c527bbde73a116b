//! Demo services and the `make demo` runner.
