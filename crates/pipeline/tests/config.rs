//! One configuration from three layers: each layer alone, their
//! precedence, the old keys, and errors that name the key and where it
//! was set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use sluice_pipeline::{
    ConfigLayers, Connectors, PipelineError, PipelineSettings, effective_config, from_toml,
};

fn connectors() -> Connectors {
    Connectors::builtin()
}

/// A TOML file of `text` in a directory of its own.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Flags given as the keys they set.
fn flags(text: &str) -> PipelineSettings {
    toml::from_str(text).unwrap()
}

/// What `--print-config` prints for `settings`.
fn shown(settings: &PipelineSettings) -> String {
    effective_config(settings, &connectors())
        .unwrap()
        .to_string()
}

#[test]
fn the_same_settings_from_a_file_variables_or_flags_print_the_same() {
    let (_dir, path) = file(
        "inputs = ['a.ndjson']\nrate_limit = '20/s'\nconcurrency = 4\n\
         [http]\nurl = 'http://127.0.0.1:8080/records'\ntimeout = '2s'\n",
    );
    let from_file: PipelineSettings = ConfigLayers::new(&connectors())
        .file(&path)
        .unwrap()
        .load()
        .unwrap();
    let from_environment: PipelineSettings = ConfigLayers::new(&connectors())
        .environment([
            ("SLUICE_INPUTS", "[a.ndjson]"),
            ("SLUICE_RATE_LIMIT", "20/s"),
            ("SLUICE_CONCURRENCY", "4"),
            ("SLUICE_HTTP_URL", "http://127.0.0.1:8080/records"),
            ("SLUICE_HTTP_TIMEOUT", "2s"),
            ("HOME", "/not/ours"),
        ])
        .load()
        .unwrap();
    let from_flags: PipelineSettings = ConfigLayers::new(&connectors())
        .flags(&flags(
            "inputs = ['a.ndjson']\nrate_limit = '20/s'\nconcurrency = 4\n\
             [http]\nurl = 'http://127.0.0.1:8080/records'\ntimeout = '2s'\n",
        ))
        .unwrap()
        .load()
        .unwrap();
    let printed = shown(&from_file);
    assert!(printed.contains("concurrency = 4"), "{printed}");
    assert!(printed.contains("timeout = \"2s\""), "{printed}");
    assert!(
        printed.contains("queue_capacity = 1000"),
        "the default: {printed}"
    );
    assert_eq!(shown(&from_environment), printed);
    assert_eq!(shown(&from_flags), printed);
}

#[test]
fn flags_override_variables_which_override_the_file() {
    let (_dir, path) = file("concurrency = 1\nbatch_max = 1\nqueue_capacity = 1\n");
    let layers = ConfigLayers::new(&connectors())
        .file(&path)
        .unwrap()
        .environment([("SLUICE_BATCH_MAX", "2"), ("SLUICE_QUEUE_CAPACITY", "2")])
        .flags(&flags("queue_capacity = 3"))
        .unwrap();
    let settings: PipelineSettings = layers.load().unwrap();
    assert_eq!(settings.concurrency, Some(1), "the file");
    assert_eq!(settings.batch_max, Some(2), "the variable over the file");
    assert_eq!(settings.queue_capacity, Some(3), "the flag over both");
    assert_eq!(settings.max_attempts, Some(6), "the default under all");
    assert_eq!(
        layers.origin("concurrency"),
        Some(path.display().to_string())
    );
    assert_eq!(
        layers.origin("batch_max").as_deref(),
        Some("SLUICE_BATCH_MAX")
    );
    assert_eq!(
        layers.origin("queue_capacity").as_deref(),
        Some("command-line flags")
    );
    assert_eq!(layers.origin("max_attempts"), None);
}

#[test]
fn the_keys_of_older_config_files_are_read_under_their_new_names() {
    let (_dir, path) = file(
        "input = ['a.ndjson']\nhttp_url = 'http://h/r'\nhttp_headers = ['X-A: b']\n\
         timeout = '3s'\nmax_in_flight = 7\ndrain_timeout = '1s'\n",
    );
    let settings: PipelineSettings = ConfigLayers::new(&connectors())
        .file(&path)
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(settings.inputs, ["a.ndjson"]);
    assert_eq!(settings.concurrency, Some(7));
    assert_eq!(
        settings.drain_deadline,
        Some(std::time::Duration::from_secs(1))
    );
    let http = &settings.sections["http"];
    assert_eq!(http["url"].as_str(), Some("http://h/r"));
    assert_eq!(http["timeout"].as_str(), Some("3s"));
    assert_eq!(http["headers"][0].as_str(), Some("X-A: b"));
}

#[test]
fn errors_name_the_key_and_where_it_was_set() {
    let (_dir, path) = file("[http]\ntimeout = 5\n");
    let error = ConfigLayers::new(&connectors())
        .file(&path)
        .unwrap()
        .load::<PipelineSettings>()
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("{}: http.timeout: ", path.display())),
        "{error}"
    );

    let error = ConfigLayers::new(&connectors())
        .environment([("SLUICE_HTTP_TIMOUT", "3s")])
        .load::<PipelineSettings>()
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("SLUICE_HTTP_TIMOUT: unknown key `http.timout`"),
        "{error}"
    );

    let error = ConfigLayers::new(&connectors())
        .environment([("SLUICE_CONCURRENCY", "many")])
        .load::<PipelineSettings>()
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("SLUICE_CONCURRENCY: concurrency: invalid type"),
        "{error}"
    );

    let missing = ConfigLayers::new(&connectors())
        .file(&path.with_file_name("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.toml"), "{missing}");
}

#[test]
fn an_unknown_top_level_key_or_section_is_refused_by_name() {
    for (text, key) in [
        ("concurrence = 3", "concurrence"),
        ("[kafka]\nbrokers = 'x'", "kafka"),
    ] {
        let settings: PipelineSettings = from_toml(&connectors(), text).unwrap();
        let error = effective_config(&settings, &connectors()).unwrap_err();
        assert!(
            matches!(&error, PipelineError::UnknownKey(found) if found == key),
            "{error}"
        );
        assert_eq!(error.key(), Some(key));
        assert!(error.is_setting());
    }
}

#[test]
fn the_source_is_chosen_by_name_by_the_inputs_scheme_or_else_files() {
    let source = |text: &str| {
        let settings: PipelineSettings = from_toml(&connectors(), text).unwrap();
        effective_config(&settings, &connectors()).map(|shown| shown["source"].to_string())
    };
    assert_eq!(source("inputs = ['a.ndjson', '-']").unwrap(), "\"files\"");
    assert_eq!(
        source("inputs = ['nats://127.0.0.1:4222']").unwrap(),
        "\"nats\""
    );
    assert_eq!(source("source = 'nats'").unwrap(), "\"nats\"");
    let error = source("inputs = ['kafka://b:9092']")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no source reads `kafka://` inputs") && error.contains("files, nats"),
        "{error}"
    );
    let error = source("source = 'kafka'").unwrap_err().to_string();
    assert!(
        error.contains("no source is named `kafka` (known: files, nats)"),
        "{error}"
    );
    let error = source("sink = 'kafka'").unwrap_err().to_string();
    assert!(
        error.contains("no sink is named `kafka` (known: http)"),
        "{error}"
    );
    let error = source("inputs = ['a.ndjson']\n[nats]\nstream = 'S'")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[nats] is set, but the source is `files`"),
        "{error}"
    );
}

#[test]
fn secrets_are_masked_and_variables_named_as_written() {
    let settings: PipelineSettings = from_toml(
        &connectors(),
        "shared_limit = 'redis://:hunter2@127.0.0.1:6379/q'\nrate_limit = '5/s'\n[http]\n\
         url = 'https://me:hunter2@api.example.com/r'\n\
         headers = ['Authorization: Bearer hunter2', 'X-Api-Key: ${API_KEY}']",
    )
    .unwrap();
    let printed = shown(&settings);
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("redis://<redacted>@127.0.0.1:6379/q"),
        "{printed}"
    );
    assert!(printed.contains("X-Api-Key: ${API_KEY}"), "{printed}");
}

#[test]
fn variables_other_than_ours_are_ignored() {
    let settings: PipelineSettings = ConfigLayers::new(&connectors())
        .environment([
            ("PATH", "/bin"),
            ("SLUICEX", "1"),
            ("sluice_concurrency", "2"),
        ])
        .load()
        .unwrap();
    assert_eq!(settings, ConfigLayers::new(&connectors()).load().unwrap());
}
