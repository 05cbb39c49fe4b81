//! Flags of `sluice run` for several processes: a NATS JetStream input
//! and a rate limit shared through Redis.

use std::time::Duration;

use clap::Args;

use super::parse::{MAX_WAIT, bounded_duration};

/// The default subject filter: every `records.<stream>.<partition>`.
pub const DEFAULT_NATS_SUBJECT: &str = "records.>";
/// The default durable consumer (and lease group) name.
pub const DEFAULT_NATS_CONSUMER: &str = "sluice";
/// How long a partition lease lives without renewal, by default.
pub const DEFAULT_NATS_LEASE: Duration = Duration::from_secs(5);
/// How long JetStream waits for an acknowledgement, by default.
pub const DEFAULT_NATS_ACK_WAIT: Duration = Duration::from_secs(30);

/// Flags for a JetStream input (`--input nats://HOST:PORT`) and a shared
/// limit.
#[derive(Debug, Default, Args)]
pub struct ScaleOutArgs {
    /// The JetStream stream to consume, with `--input nats://HOST:PORT`.
    #[arg(long, value_name = "NAME")]
    pub nats_stream: Option<String>,
    /// The subjects consumed: `records.>` (the default) or
    /// `records.<stream or *>.*`. A record's stream and partition are its
    /// subject's second and third tokens.
    #[arg(long, value_name = "FILTER")]
    pub nats_subject: Option<String>,
    /// The durable consumer. Processes with the same name share the work;
    /// with `--ordering partition` each partition has its own consumer
    /// `NAME-<partition>` and lease. Default `sluice`.
    #[arg(long, value_name = "NAME")]
    pub nats_consumer: Option<String>,
    /// How long a partition stays with a process that stopped renewing its
    /// lease (died): 1s to 1h. Default 5s.
    #[arg(long, value_parser = bounded_duration(Duration::from_secs(1), MAX_WAIT))]
    pub nats_lease: Option<Duration>,
    /// How long JetStream waits for a record's acknowledgement before it
    /// redelivers it (sluice marks held records in progress every half of
    /// it): 1s to 1h. Default 30s.
    #[arg(long, value_parser = bounded_duration(Duration::from_secs(1), MAX_WAIT))]
    pub nats_ack_wait: Option<Duration>,
    /// Share the `--rate-limit` quota with every process given the same
    /// URL: `redis://HOST:PORT/NAME`, NAME naming the shared window.
    #[arg(long, value_name = "redis://HOST:PORT/NAME")]
    pub shared_limit: Option<String>,
}

/// The same settings from the config file.
#[derive(Debug, Default)]
pub(super) struct ScaleOutFile {
    pub(super) nats_stream: Option<String>,
    pub(super) nats_subject: Option<String>,
    pub(super) nats_consumer: Option<String>,
    pub(super) nats_lease: Option<String>,
    pub(super) nats_ack_wait: Option<String>,
    pub(super) shared_limit: Option<String>,
}

/// A JetStream input's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// The server, `nats://HOST:PORT`.
    pub url: String,
    /// The JetStream stream.
    pub stream: String,
    /// The subject filter.
    pub subject: String,
    /// The durable consumer, or the group of per-partition consumers.
    pub consumer: String,
    /// The partition lease time.
    pub lease: Duration,
    /// JetStream's ack wait.
    pub ack_wait: Duration,
}

impl ScaleOutArgs {
    /// The JetStream settings when `inputs` is one `nats://` URL, and the
    /// shared limit's URL; flags over `file`.
    pub(super) fn settings(
        &self,
        file: ScaleOutFile,
        inputs: &[String],
    ) -> Result<(Option<NatsSettings>, Option<String>), String> {
        let in_file = |key: &str| format!("{key} in the config file");
        let nats_url = inputs.iter().find(|input| input.starts_with("nats://"));
        let stream = self.nats_stream.clone().or(file.nats_stream);
        let nats = match nats_url {
            None => {
                if stream.is_some() {
                    return Err("--nats-stream needs --input nats://HOST:PORT".to_owned());
                }
                None
            }
            Some(url) => {
                if inputs.len() > 1 {
                    return Err(
                        "--input nats://...: a JetStream input cannot be mixed with other inputs"
                            .to_owned(),
                    );
                }
                let stream = stream.ok_or("--input nats://... needs --nats-stream NAME")?;
                let duration = |flag: Option<Duration>,
                                key: &str,
                                text: Option<String>,
                                default| match (flag, text) {
                    (Some(value), _) => Ok(value),
                    (None, Some(text)) => bounded_duration(Duration::from_secs(1), MAX_WAIT)(&text)
                        .map_err(|e| format!("{}: {e}", in_file(key))),
                    (None, None) => Ok(default),
                };
                Some(NatsSettings {
                    url: url.clone(),
                    stream,
                    subject: self
                        .nats_subject
                        .clone()
                        .or(file.nats_subject)
                        .unwrap_or_else(|| DEFAULT_NATS_SUBJECT.to_owned()),
                    consumer: self
                        .nats_consumer
                        .clone()
                        .or(file.nats_consumer)
                        .unwrap_or_else(|| DEFAULT_NATS_CONSUMER.to_owned()),
                    lease: duration(
                        self.nats_lease,
                        "nats_lease",
                        file.nats_lease,
                        DEFAULT_NATS_LEASE,
                    )?,
                    ack_wait: duration(
                        self.nats_ack_wait,
                        "nats_ack_wait",
                        file.nats_ack_wait,
                        DEFAULT_NATS_ACK_WAIT,
                    )?,
                })
            }
        };
        let shared_limit = self.shared_limit.clone().or(file.shared_limit);
        Ok((nats, shared_limit))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, RunArgs, RunSettings};

    fn settings(flags: &[&str]) -> Result<RunSettings, String> {
        let cli = Cli::try_parse_from(["sluice", "run"].iter().chain(flags)).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("parsed as run")
        };
        RunArgs::settings(&args)
    }

    const NATS: [&str; 6] = [
        "--input",
        "nats://127.0.0.1:4222",
        "--nats-stream",
        "RECORDS",
        "--http-url",
        "http://127.0.0.1:1/records",
    ];

    #[test]
    fn a_nats_input_takes_its_defaults_and_flags() {
        let nats = settings(&NATS).unwrap().nats.unwrap();
        assert_eq!(
            nats,
            NatsSettings {
                url: "nats://127.0.0.1:4222".into(),
                stream: "RECORDS".into(),
                subject: DEFAULT_NATS_SUBJECT.into(),
                consumer: DEFAULT_NATS_CONSUMER.into(),
                lease: DEFAULT_NATS_LEASE,
                ack_wait: DEFAULT_NATS_ACK_WAIT,
            }
        );
        let flags = [&NATS[..], &["--nats-lease", "9s", "--nats-consumer", "eu"]].concat();
        let nats = settings(&flags).unwrap().nats.unwrap();
        assert_eq!(
            (nats.lease, nats.consumer.as_str()),
            (Duration::from_secs(9), "eu")
        );
        assert!(
            settings(&["--input", "a.ndjson", "--http-url", "h"])
                .unwrap()
                .nats
                .is_none()
        );
    }

    #[test]
    fn the_config_file_names_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(
            &path,
            "input = ['nats://127.0.0.1:4222']\nhttp_url = 'http://x'\nnats_stream = 'S'\n\
             nats_lease = '2s'\nrate_limit = '10/s'\nshared_limit = 'redis://127.0.0.1:6379/q'\n",
        )
        .unwrap();
        let settings = settings(&["--config", path.to_str().unwrap()]).unwrap();
        let nats = settings.nats.unwrap();
        assert_eq!(
            (nats.stream.as_str(), nats.lease),
            ("S", Duration::from_secs(2))
        );
        assert_eq!(
            settings.shared_limit.as_deref(),
            Some("redis://127.0.0.1:6379/q")
        );
        std::fs::write(&path, "http_url = 'http://x'\nnats_lease = 'soon'\n").unwrap();
        let error = settings_error(&["--input", "nats://h:1", "--config", path.to_str().unwrap()]);
        assert!(error.contains("nats_lease in the config file"), "{error}");
    }

    fn settings_error(flags: &[&str]) -> String {
        let flags = [flags, &["--nats-stream", "S", "--http-url", "h"]].concat();
        settings(&flags).unwrap_err()
    }

    #[test]
    fn contradictions_are_refused_naming_the_flag() {
        let error = settings(&["--input", "a", "--nats-stream", "S", "--http-url", "h"]);
        assert!(
            error
                .unwrap_err()
                .contains("--nats-stream needs --input nats://")
        );
        let error = settings(&["--input", "nats://h:1", "--http-url", "h"]).unwrap_err();
        assert!(error.contains("needs --nats-stream"), "{error}");
        let error = settings_error(&["--input", "nats://h:1", "--input", "a"]);
        assert!(error.contains("cannot be mixed"), "{error}");
        let error = settings_error(&["--input", "nats://h:1", "--checkpoint", "c"]);
        assert!(error.contains("--checkpoint"), "{error}");
        let shared = ["--shared-limit", "redis://127.0.0.1:6379/q"];
        let error = settings_error(&[&["--input", "nats://h:1"][..], &shared].concat());
        assert!(error.contains("--rate-limit N/UNIT"), "{error}");
        let fixed = [
            &["--input", "nats://h:1", "--rate-limit", "5/s"][..],
            &shared,
        ]
        .concat();
        let flags = [&fixed[..], &["--nats-stream", "S", "--http-url", "h"]].concat();
        assert!(settings(&flags).is_ok());
    }
}
