//! The files connector: [`FilesSettings`] as a
//! [`SourceConnector`], opening the inputs a user named with their
//! checkpoints.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use sluice_processor::{
    BuiltSource, ConnectorError, Finish, Finished, SavedCheckpoint, SourceConnector, SourceContext,
};

use crate::checkpoint::CheckpointError;
use crate::checkpointer::{Checkpointer, DEFAULT_CHECKPOINT_INTERVAL};
use crate::inputs::{Input, InputError, expand, names_several};
use crate::progress::{Progress, SourceEnd};
use sluice_processor::SettingError;

use crate::settings::FilesSettings;
use crate::source::{LineSource, STDIN_ORIGIN, SourceError};

/// Why the files source cannot start or finish: each names the input or
/// checkpoint, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// No input was named.
    #[error("no input: name files, directories or globs, or - for stdin")]
    NoInput,
    /// The inputs named cannot be expanded to files.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A setting cannot be used.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// `-` was named more than once.
    #[error("the input - (stdin) is named more than once: stdin can be read only once")]
    StdinTwice,
    /// Checkpoints were asked for with stdin among the inputs.
    #[error("the input - (stdin) has no checkpoint: give files only, or no checkpoint")]
    StdinCheckpoint,
    /// The checkpoint directory cannot be created.
    #[error("cannot create the checkpoint directory {}: {error}", path.display())]
    CheckpointDirectory {
        /// The directory.
        path: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// An input cannot be read, or its checkpoint cannot be used.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Checkpoints could not be saved at the end of the run.
    #[error("{} checkpoint(s) not saved: {}", .0.len(), join(.0))]
    NotSaved(Vec<CheckpointError>),
}

impl FilesError {
    /// Whether the source cannot start because a checkpoint is held by
    /// another run ([`CheckpointError::InUse`]): the runner's "settings"
    /// exit code, as the run could not start.
    pub fn is_checkpoint_in_use(&self) -> bool {
        matches!(
            self,
            FilesError::Source(SourceError::Checkpoint(CheckpointError::InUse { .. }))
        )
    }
}

fn join(errors: &[CheckpointError]) -> String {
    let messages: Vec<_> = errors.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

/// Reads paths, globs, directories and `-` (stdin): `files` has no URL
/// scheme.
///
/// [`build`](SourceConnector::build) expands [`SourceContext::inputs`] to
/// files: a path as it is; a directory as its regular files, sorted by
/// path (its subdirectories' too with
/// [`recursive`](FilesSettings::recursive)), hidden ones (`.name`) left
/// out; a path that does not exist and holds `*`, `?` or `[` as a glob
/// (`data/*.ndjson`, `logs/**/*.log`: quote it, for the shell to leave
/// it), the regular files it matches, sorted by path. A glob or directory
/// that matches no file is an error. A file named twice (the same
/// canonical path, e.g. by a glob and by name, or the same file under two
/// names, a hard link) is an error naming both spellings
/// ([`InputError::NamedTwice`]): it would be read, and sent, twice.
///
/// It opens each file as a [`LineSource`] (gzip and zstd decompressed;
/// followed with [`follow`](FilesSettings::follow)), one stream each, from
/// its checkpoint when [`SourceContext::checkpoint`] is set: that file
/// when the inputs are one file, else a directory of
/// `<stem>-<hash>.checkpoint.json` files (created if missing), one per
/// file (per path, for a followed file and the files rotated away from
/// it). Each path's [`Checkpointer`] saves its checkpoint (the
/// watermark and the lines resolved past it) at the first resolution, then
/// at most every [`DEFAULT_CHECKPOINT_INTERVAL`] while it changes; the
/// source's [`Finish`] saves the last one, releases the checkpoints' locks
/// and returns the position each saved. A checkpoint held by another run
/// is refused ([`FilesError::is_checkpoint_in_use`]). stdin has no checkpoint (naming it with checkpoints is an
/// error), cannot be followed, and may be named once.
#[async_trait]
impl SourceConnector for FilesSettings {
    const NAME: &'static str = "files";
    const PARTITIONED: bool = false;

    /// Expands the inputs and opens each file (reading nothing); a
    /// checkpoint that exists must not be held by another run.
    async fn check(&self, context: &SourceContext) -> Result<String, ConnectorError> {
        self.check()?;
        if context.inputs.is_empty() {
            return Err(Box::new(FilesError::NoInput));
        }
        let inputs = expand(&context.inputs, self.recursive)?;
        let several = names_several(&context.inputs);
        let mut files = 0;
        for input in &inputs {
            let Input::File(path) = input else { continue };
            files += 1;
            std::fs::File::open(path).map_err(|error| SourceError::Io {
                path: path.clone(),
                error,
            })?;
            // One input's checkpoint is the file named; several inputs'
            // are made in a directory at the first run.
            if let Some(checkpoint) = &context.checkpoint
                && !several
                && checkpoint.is_file()
            {
                drop(crate::lock::CheckpointLock::acquire(checkpoint)?);
            }
        }
        let stdin = if files < inputs.len() {
            " and stdin"
        } else {
            ""
        };
        Ok(format!("{files} file(s){stdin} can be read"))
    }

    async fn build(&self, context: &SourceContext) -> Result<BuiltSource, ConnectorError> {
        let (sources, checkpointers) = open(self, context).await?;
        let progresses = sources
            .iter()
            .filter_map(|source| source.progress().cloned())
            .collect();
        Ok(BuiltSource {
            streams: sources.into_iter().map(StreamExt::boxed).collect(),
            finish: Box::new(SaveCheckpoints {
                checkpointers,
                progresses,
            }),
        })
    }
}

/// The line sources of `context.inputs`, and their checkpointers.
async fn open(
    settings: &FilesSettings,
    context: &SourceContext,
) -> Result<(Vec<LineSource>, Vec<Checkpointer>), FilesError> {
    let mut options = settings.check()?;
    options.progress = context.progress.clone();
    if context.inputs.is_empty() {
        return Err(FilesError::NoInput);
    }
    let stdin = context.inputs.iter().filter(|input| *input == STDIN_ORIGIN);
    match stdin.count() {
        0 => {}
        1 if context.checkpoint.is_none() => {}
        1 => return Err(FilesError::StdinCheckpoint),
        _ => return Err(FilesError::StdinTwice),
    }
    let several = names_several(&context.inputs);
    let mut sources = Vec::new();
    let mut checkpointers = Vec::new();
    for input in expand(&context.inputs, settings.recursive)? {
        let path = match input {
            Input::Stdin => {
                sources.push(LineSource::stdin(options.clone())?);
                continue;
            }
            Input::File(path) => path,
        };
        let Some(checkpoint) = &context.checkpoint else {
            sources.push(LineSource::open(&path, options.clone()).await?);
            continue;
        };
        let file = checkpoint_file(checkpoint, &path, several)?;
        let source = LineSource::resume(&path, &file, options.clone()).await?;
        if let Some(progress) = source.progress() {
            checkpointers.push(Checkpointer::start(
                file,
                progress.clone(),
                DEFAULT_CHECKPOINT_INTERVAL,
            ));
        }
        sources.push(source);
    }
    Ok((sources, checkpointers))
}

/// The checkpoint of `input`: `checkpoint` itself for one input; for
/// several, a file in the `checkpoint` directory named after the input's
/// stem and a hash of its canonical path.
fn checkpoint_file(checkpoint: &Path, input: &Path, several: bool) -> Result<PathBuf, FilesError> {
    if !several {
        return Ok(checkpoint.to_owned());
    }
    std::fs::create_dir_all(checkpoint).map_err(|error| FilesError::CheckpointDirectory {
        path: checkpoint.to_owned(),
        error,
    })?;
    let canonical = input.canonicalize().map_err(|error| SourceError::Io {
        path: input.to_owned(),
        error,
    })?;
    let hash = blake3::hash(canonical.to_string_lossy().as_bytes()).to_hex();
    let stem = input
        .file_stem()
        .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
    Ok(checkpoint.join(format!("{stem}-{}.checkpoint.json", &hash[..16])))
}

/// Saves every file's last watermark once the processor has stopped, and
/// tells which inputs could not be read to their end.
struct SaveCheckpoints {
    checkpointers: Vec<Checkpointer>,
    /// Every file input's progress, checkpointed or not.
    progresses: Vec<Progress>,
}

#[async_trait]
impl Finish for SaveCheckpoints {
    async fn finish(self: Box<Self>) -> Result<Finished, ConnectorError> {
        let mut checkpoints = Vec::new();
        let mut failed = Vec::new();
        let read_failures = self
            .progresses
            .iter()
            .filter_map(|progress| match progress.end() {
                Some(SourceEnd::Failed(why)) => {
                    Some(format!("{}: {why}", progress.file().display()))
                }
                _ => None,
            })
            .collect();
        for checkpointer in self.checkpointers {
            let input = checkpointer.progress().file().to_owned();
            match checkpointer.finish().await {
                Ok(at) => checkpoints.push(SavedCheckpoint {
                    input,
                    offset: at.offset,
                    lines: at.lines,
                }),
                Err(error) => failed.push(error),
            }
        }
        if failed.is_empty() {
            Ok(Finished {
                checkpoints,
                read_failures,
            })
        } else {
            Err(Box::new(FilesError::NotSaved(failed)))
        }
    }
}
