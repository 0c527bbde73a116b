//! The two forms of the filter, and running a real-Envoy test against both.
//!
//! The shipped `envoy/envoy.yaml` loads the Wasm form; [`crate::EnvoyConfig::use_form`] turns
//! each of its Wasm filters into the native module with the very same JSON configuration, so
//! both forms run from one source of truth (and `envoy/envoy-native.yaml`, the example users
//! read, is checked to be that same transformation).

use std::path::PathBuf;

/// Which build of the filter Envoy loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `trace_filter.wasm` in V8 (`envoy.filters.http.wasm`).
    Wasm,
    /// `libaetherflow_trace.so` (`envoy.filters.http.dynamic_modules`).
    Native,
}

/// The module name Envoy resolves to `lib<name>.so` in its search path.
pub const NATIVE_MODULE_NAME: &str = "aetherflow_trace";

impl Form {
    /// Both forms.
    pub const ALL: [Form; 2] = [Form::Wasm, Form::Native];

    /// The forms to test: `AETHERFLOW_FORMS` (`wasm`, `native`, or `wasm,native`; default both).
    /// `make test-compat` runs the suite on older Envoy releases with the Wasm form only: the
    /// native module is built for one Envoy version.
    pub fn selected() -> Vec<Form> {
        match std::env::var("AETHERFLOW_FORMS") {
            Ok(v) if !v.trim().is_empty() => Form::ALL
                .into_iter()
                .filter(|f| v.split(',').any(|n| n.trim() == f.name()))
                .collect(),
            _ => Form::ALL.to_vec(),
        }
    }

    /// Whether this form is among [`Form::selected`]; prints why a test is skipped otherwise.
    pub fn is_selected(self) -> bool {
        let on = Form::selected().contains(&self);
        if !on {
            eprintln!("{self} form not selected by AETHERFLOW_FORMS: skipped");
        }
        on
    }

    /// Short name, used in test names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Form::Wasm => "wasm",
            Form::Native => "native",
        }
    }

    /// Envoy's prefix of the filter's metrics in `/stats`.
    pub fn metric_prefix(self) -> &'static str {
        match self {
            Form::Wasm => "wasmcustom.",
            Form::Native => "dynamicmodulescustom.",
        }
    }

    /// What marks the filter's own lines in Envoy's log.
    pub fn log_marker(self) -> &'static str {
        match self {
            Form::Wasm => "wasm log",
            Form::Native => "[dynamic_modules]",
        }
    }

    /// The module file, asserting it exists (with the command that builds it).
    pub fn require_module(self) -> PathBuf {
        let (path, how) = match self {
            Form::Wasm => (crate::paths::wasm(), "make wasm"),
            Form::Native => (crate::paths::native(), "make native"),
        };
        crate::paths::require(&path, how);
        path
    }
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A real-Envoy test run once per form: `name::wasm` and `name::native`, so a failure names
/// the form. The body gets the form as the named variable.
///
/// ```ignore
/// aetherflow_tests::each_form! {
///     async fn spans_reach_the_shim(form) {
///         let stack = StackBuilder::new().form(form).start().await;
///     }
/// }
/// ```
#[macro_export]
macro_rules! each_form {
    ($(#[$attr:meta])* async fn $name:ident($form:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wasm() {
                if $crate::form::Form::Wasm.is_selected() {
                    run($crate::form::Form::Wasm).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn native() {
                if $crate::form::Form::Native.is_selected() {
                    run($crate::form::Form::Native).await
                }
            }

            $(#[$attr])*
            async fn run($form: $crate::form::Form) $body
        }
    };
}
