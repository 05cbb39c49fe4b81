//! The log filter: the level of sluice's own crates from `-v`, everything
//! else at `warn`, unless `RUST_LOG` says otherwise.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, ParseError};

/// The tracing targets of sluice's own crates: each crate's package name
/// with `_` for `-`. The libraries they use (hyper, reqwest, rustls, h2,
/// async_nats, redis, axum, tower...) are not among them.
pub const OWN_TARGETS: &[&str] = &[
    "sluice",
    "sluice_api_model",
    "sluice_files",
    "sluice_http",
    "sluice_mock_api",
    "sluice_models",
    "sluice_nats",
    "sluice_pipeline",
    "sluice_processor",
    "sluice_profiles",
    "sluice_prometheus",
    "sluice_redis",
    "sluice_sim",
];

/// The level of sluice's own crates for `-v` given `verbose` times:
/// `warn` without it, then `info`, `debug`, and `trace` from `-vvv` on.
pub fn own_level(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// The filter directives for `-v` given `verbose` times: `warn` for
/// everything, and each of [`OWN_TARGETS`] at [`own_level`] when that is
/// more.
///
/// ```
/// use sluice::logging::directives;
///
/// assert_eq!(directives(0), "warn");
/// assert!(directives(2).starts_with("warn,sluice=debug,"));
/// ```
pub fn directives(verbose: u8) -> String {
    let level = own_level(verbose);
    let mut directives = String::from("warn");
    if level > LevelFilter::WARN {
        for target in OWN_TARGETS {
            directives.push_str(&format!(",{target}={level}"));
        }
    }
    directives
}

/// The log filter: `rust_log` (the `RUST_LOG` variable) when it is set and
/// not blank, replacing the levels of `-v` entirely; else [`directives`]
/// for `verbose`.
///
/// # Errors
/// A [`ParseError`] when `rust_log` is not a valid filter (a level that
/// does not exist, a malformed directive).
pub fn filter(verbose: u8, rust_log: Option<&str>) -> Result<EnvFilter, ParseError> {
    let directives = match rust_log.map(str::trim) {
        Some(rust_log) if !rust_log.is_empty() => rust_log.to_owned(),
        _ => directives(verbose),
    };
    EnvFilter::builder().parse(directives)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter of `verbose` and `rust_log`, as its directives.
    fn shown(verbose: u8, rust_log: Option<&str>) -> String {
        filter(verbose, rust_log)
            .expect("a valid filter")
            .to_string()
    }

    #[test]
    fn without_flags_everything_logs_at_warn() {
        assert_eq!(directives(0), "warn");
        assert_eq!(shown(0, None), "warn");
    }

    #[test]
    fn each_v_raises_sluices_own_crates_one_level_and_no_library() {
        for (verbose, level) in [(1, "info"), (2, "debug"), (3, "trace"), (9, "trace")] {
            let text = directives(verbose);
            let expected: Vec<String> = std::iter::once("warn".to_owned())
                .chain(OWN_TARGETS.iter().map(|target| format!("{target}={level}")))
                .collect();
            assert_eq!(
                text.split(',').collect::<Vec<_>>(),
                expected,
                "-v x{verbose}"
            );
            for library in [
                "hyper",
                "reqwest",
                "rustls",
                "h2",
                "async_nats",
                "axum",
                "tower",
            ] {
                assert!(!text.contains(library), "{library} in {text}");
            }
            assert!(shown(verbose, None).contains(&format!("sluice_nats={level}")));
        }
    }

    #[test]
    fn rust_log_replaces_the_flags_levels_entirely() {
        let text = shown(3, Some("error,sluice_http=debug"));
        assert!(text.contains("sluice_http=debug"), "{text}");
        assert!(text.contains("error"), "{text}");
        assert!(!text.contains("trace"), "-vvv ignored: {text}");
        assert!(!text.contains("sluice_pipeline"), "-vvv ignored: {text}");
    }

    #[test]
    fn a_blank_rust_log_is_no_rust_log() {
        assert!(shown(1, Some("  ")).contains("sluice_pipeline=info"));
    }

    #[test]
    fn an_invalid_rust_log_is_an_error() {
        assert!(filter(0, Some("sluice=loudest")).is_err());
    }

    /// A crate added to the workspace must be added to [`OWN_TARGETS`],
    /// or `-v` leaves it at `warn`.
    #[test]
    fn every_crate_of_the_workspace_is_an_own_target() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("crates/runner is in crates/");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(crates).expect("crates/ is readable") {
            let manifest = entry
                .expect("an entry of crates/")
                .path()
                .join("Cargo.toml");
            let Ok(manifest) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let manifest: toml::Table = manifest.parse().expect("a manifest is TOML");
            let name = manifest["package"]["name"]
                .as_str()
                .expect("a package name");
            names.push(name.replace('-', "_"));
        }
        names.sort();
        assert_eq!(names, OWN_TARGETS, "the crates under {}", crates.display());
    }
}
