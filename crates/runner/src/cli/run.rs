//! Flags of `sluice run`: the pipeline's settings and each built-in
//! connector's, each declared once where it belongs (its clap id is its
//! configuration key), under the headings of `--help`.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use sluice_files::FilesSettings;
use sluice_http::HttpSettings;
use sluice_nats::NatsSettings;
use sluice_pipeline::{ConfigLayers, Connectors, PipelineError, PipelineSettings};

/// Flags of `sluice run`. Every setting may also come from `--config FILE`
/// (its key) and from `SLUICE_<KEY>` variables; flags override variables,
/// which override the file.
#[derive(Debug, Args, Serialize)]
pub struct RunArgs {
    /// The `files` source's settings.
    #[command(flatten, next_help_heading = "Input")]
    #[serde(skip_serializing_if = "nothing_set")]
    pub files: FilesSettings,
    /// The `nats` source's settings.
    #[command(flatten, next_help_heading = "JetStream")]
    #[serde(skip_serializing_if = "nothing_set")]
    pub nats: NatsSettings,
    /// The pipeline's own settings.
    #[command(flatten)]
    #[serde(flatten)]
    pub pipeline: PipelineSettings,
    /// The `http` sink's settings.
    #[command(flatten, next_help_heading = "HTTP")]
    #[serde(skip_serializing_if = "nothing_set")]
    pub http: HttpSettings,
    /// An input (the old spelling of the positional INPUT).
    #[arg(long = "input", hide = true)]
    #[serde(skip)]
    pub input: Vec<String>,
    /// Print the report as one JSON object.
    #[arg(long, help_heading = "Output")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub json: bool,
    /// A TOML file of settings: the keys `--print-config` shows, connectors'
    /// in their sections (`[http]`, `[files]`, `[nats]`).
    #[arg(long, value_name = "FILE", help_heading = "Configuration")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (file, `SLUICE_*` variables and
    /// flags merged, defaults filled in, secrets masked) as TOML, and exit.
    #[arg(long, help_heading = "Configuration")]
    #[serde(skip)]
    pub print_config: bool,
}

/// The settings of a run, all layers merged: the pipeline's, and the
/// runner's own (how to print the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The pipeline's settings and the connectors' sections.
    #[serde(flatten)]
    pub pipeline: PipelineSettings,
    /// Print the report as JSON.
    #[serde(default)]
    pub json: bool,
}

impl RunArgs {
    /// The layers of the run's settings: these flags over the `SLUICE_*`
    /// variables among `environment` over `--config`'s file over the
    /// defaults. [`ConfigLayers::load`] reads a [`RunConfig`] from them.
    ///
    /// # Errors
    /// A [`PipelineError`] naming the file that cannot be read.
    pub fn layers<K, V>(
        &self,
        connectors: &Connectors,
        environment: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ConfigLayers, PipelineError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut layers = ConfigLayers::new(connectors);
        if let Some(path) = &self.config {
            layers = layers.file(path)?;
        }
        let mut flags = self.flags();
        flags.pipeline.inputs.extend(self.input.iter().cloned());
        layers.environment(environment).flags(&flags)
    }

    /// The flags given, as a value of their own.
    fn flags(&self) -> RunArgs {
        RunArgs {
            pipeline: self.pipeline.clone(),
            files: self.files.clone(),
            nats: self.nats.clone(),
            http: self.http.clone(),
            input: Vec::new(),
            json: self.json,
            config: None,
            print_config: false,
        }
    }
}

/// Whether `settings` serialize to nothing: no flag of the section given.
fn nothing_set<T: Serialize>(settings: &T) -> bool {
    toml::Table::try_from(settings).is_ok_and(|table| table.is_empty())
}
