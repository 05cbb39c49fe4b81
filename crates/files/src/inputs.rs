//! The inputs a user named, expanded to the files to read: paths, globs,
//! directories, and `-` for stdin.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::FileId;
use crate::source::STDIN_ORIGIN;

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Standard input.
    Stdin,
    /// A file: its path as named or matched.
    File(PathBuf),
}

/// Why the named inputs cannot be expanded.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A glob is malformed.
    #[error("the input {input:?} is not a valid glob: {error}")]
    Pattern {
        /// The input, as named.
        input: String,
        /// Where and why.
        error: glob::PatternError,
    },
    /// A glob or a directory holds no file to read.
    #[error("the input {input:?} matches no file: {hint}")]
    NothingMatched {
        /// The input, as named.
        input: String,
        /// What to do.
        hint: &'static str,
    },
    /// One file is named twice (the same canonical path, or the same file
    /// under two names: a hard link): it would be read, and its records
    /// sent, twice.
    #[error(
        "the file {first} is also named as {second} (the same file, {why}): name each file once (check globs and directories that include it)"
    )]
    NamedTwice {
        /// The file as first named or matched.
        first: String,
        /// The same file as named or matched again.
        second: String,
        /// How they are the same: same canonical path, or same inode.
        why: &'static str,
    },
    /// A directory, or a path a glob went through, cannot be read.
    #[error("cannot list the input {input:?}: {error}")]
    List {
        /// The input, as named.
        input: String,
        /// What failed.
        error: io::Error,
    },
}

/// The named inputs as files (and stdin), in order: a path as it is; a
/// directory as its regular files sorted by path (and those of its
/// subdirectories when `recursive`), hidden ones (`.name`) left out; a
/// path that does not exist and holds `*`, `?` or `[` as a glob, its
/// regular files sorted by path.
///
/// # Errors
/// A glob that is malformed, a glob or directory that matches no file, a
/// directory that cannot be listed; a file named twice
/// ([`InputError::NamedTwice`]): the same canonical path, or on Unix the
/// same file (device and inode) under two names (a hard link).
pub(crate) fn expand(named: &[String], recursive: bool) -> Result<Vec<Input>, InputError> {
    let mut inputs = Vec::new();
    let mut paths: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut ids: HashMap<FileId, PathBuf> = HashMap::new();
    for input in named {
        if input == STDIN_ORIGIN {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(input);
        let (files, hint) = if path.is_dir() {
            let hint = if recursive {
                "the directory and its subdirectories hold no regular file"
            } else {
                "the directory holds no regular file (read its subdirectories with --recursive)"
            };
            (directory(input, path, recursive)?, hint)
        } else if !path.exists() && is_glob(input) {
            let hint = "name a glob that matches files (quoted, for the shell to leave it)";
            (matching(input)?, hint)
        } else {
            // A file, or a path that does not exist: opening it says so.
            (vec![path.to_owned()], "")
        };
        if files.is_empty() {
            return Err(InputError::NothingMatched {
                input: input.clone(),
                hint,
            });
        }
        for file in files {
            // A path that cannot be canonicalized is left for opening to
            // report.
            let key = file.canonicalize().unwrap_or_else(|_| file.clone());
            let twice = |first: &PathBuf, why| InputError::NamedTwice {
                first: first.display().to_string(),
                second: file.display().to_string(),
                why,
            };
            if let Some(first) = paths.get(&key) {
                return Err(twice(first, "same canonical path"));
            }
            if let Some(id) = std::fs::metadata(&key).ok().and_then(|m| FileId::of(&m)) {
                if let Some(first) = ids.get(&id) {
                    return Err(twice(first, "same device and inode: a hard link"));
                }
                ids.insert(id, file.clone());
            }
            paths.insert(key, file.clone());
            inputs.push(Input::File(file));
        }
    }
    Ok(inputs)
}

/// Whether the named inputs call for a checkpoint directory: more than one
/// input, or one that may stand for several files (a glob, a directory).
pub(crate) fn names_several(named: &[String]) -> bool {
    match named {
        [one] => {
            let path = Path::new(one);
            path.is_dir() || (!path.exists() && is_glob(one))
        }
        _ => true,
    }
}

fn is_glob(input: &str) -> bool {
    input.contains(['*', '?', '['])
}

/// The regular files of `dir`, sorted by path, hidden ones left out.
fn directory(input: &str, dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, InputError> {
    let walk = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .max_depth(if recursive { usize::MAX } else { 1 })
        .into_iter()
        .filter_entry(|entry| !entry.file_name().to_string_lossy().starts_with('.'));
    let mut files = Vec::new();
    for entry in walk {
        let entry = entry.map_err(|error| InputError::List {
            input: input.to_owned(),
            error: error.into(),
        })?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// The regular files `pattern` matches, sorted by path.
fn matching(pattern: &str) -> Result<Vec<PathBuf>, InputError> {
    let paths = glob::glob(pattern).map_err(|error| InputError::Pattern {
        input: pattern.to_owned(),
        error,
    })?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|error| InputError::List {
            input: pattern.to_owned(),
            error: error.into(),
        })?;
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn globs_are_told_from_paths_by_their_metacharacters() {
        assert!(is_glob("data/*.ndjson"));
        assert!(is_glob("data/file?.ndjson"));
        assert!(is_glob("data/[ab].ndjson"));
        assert!(!is_glob("data/orders.ndjson"));
        assert!(!is_glob("-"));
    }
}
