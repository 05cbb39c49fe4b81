//! The files connector's settings: section `[files]` of a configuration,
//! the same as flags and environment variables.

use serde::{Deserialize, Serialize};
use sluice_processor::{SettingError, StreamName};

use crate::line::DEFAULT_MAX_LINE_BYTES;
use crate::source::SourceOptions;

/// The largest `max_line_bytes` accepted (1 GiB).
pub const MAX_LINE_BYTES_LIMIT: u64 = 1 << 30;

/// The files source's settings: section `[files]` of a configuration file,
/// flags of the command line, or `SLUICE_FILES_<FIELD>` variables; each
/// field's argument id is its key's path (`files.stream`).
///
/// Every field may be left unset (`None`, `false`): [`Default`] is the
/// documented defaults, and serializing settings parsed from flags yields
/// only the flags given. Values are checked when the source is built
/// ([`check`](Self::check)), with errors naming the key and its flag.
///
/// ```
/// use clap::Parser;
/// use sluice_files::FilesSettings;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     files: FilesSettings,
/// }
///
/// let cli = Cli::parse_from(["sluice", "--stream", "orders"]);
/// assert_eq!(cli.files.stream.as_deref(), Some("orders"));
/// // Only what was given.
/// assert_eq!(serde_json::to_string(&cli.files)?, r#"{"stream":"orders"}"#);
/// let from_file: FilesSettings = toml::from_str("max_line_bytes = 4096")?;
/// assert_eq!(from_file.check()?.max_line_bytes, 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    /// The stream name of every record read (default: each file's name
    /// without its extensions' last, e.g. `orders` for `orders.ndjson`;
    /// `stdin` for stdin).
    #[arg(id = "files.stream", long = "stream", value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The longest line kept, in bytes, 1 to 1073741824 (default 1048576):
    /// a longer line is refused by the profile as too long, without being
    /// held whole.
    #[arg(
        id = "files.max_line_bytes",
        long = "max-line-bytes",
        value_name = "BYTES",
        value_parser = clap::value_parser!(u64).range(1..=MAX_LINE_BYTES_LIMIT),
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_line_bytes: Option<u64>,
    /// Read the files of directories named as inputs, and of their
    /// subdirectories, at any depth (default: a directory's own files
    /// only).
    #[arg(id = "files.recursive", long = "recursive")]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recursive: bool,
    /// Keep reading each file as it grows, never ending by itself, and
    /// follow it when it is rotated (renamed away and created anew); a
    /// last line is read once its newline is written (default: read each
    /// file to its end, and stop). Not for stdin or compressed files; the
    /// files of a glob or directory are those there at the start.
    #[arg(id = "files.follow", long = "follow")]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
}

impl FilesSettings {
    /// The source options these settings give.
    ///
    /// # Errors
    /// [`SettingError`] naming the key and its flag: a stream name that is
    /// not one, a line length out of bounds.
    pub fn check(&self) -> Result<SourceOptions, SettingError> {
        let stream = match &self.stream {
            Some(name) => Some(StreamName::new(name).map_err(|error| {
                SettingError::new("files.stream", "--stream", error.to_string())
            })?),
            None => None,
        };
        let max_line_bytes = match self.max_line_bytes {
            None => DEFAULT_MAX_LINE_BYTES,
            // At most 1 GiB: a `usize` on every platform with tokio.
            Some(bytes @ 1..=MAX_LINE_BYTES_LIMIT) => usize::try_from(bytes).unwrap_or(usize::MAX),
            Some(bytes) => {
                return Err(SettingError::new(
                    "files.max_line_bytes",
                    "--max-line-bytes",
                    format!("must be 1 to {MAX_LINE_BYTES_LIMIT}, got {bytes}"),
                ));
            }
        };
        Ok(SourceOptions {
            stream,
            max_line_bytes,
            follow: self.follow,
            ..SourceOptions::default()
        })
    }
}
