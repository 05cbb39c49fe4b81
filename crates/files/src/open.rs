//! Opening a file to read: its canonical path, its identity, and its
//! bytes, decompressed when it is gzip or zstd.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, BufReader};

use crate::checkpoint::{FINGERPRINT_BYTES, FileId};
use crate::source::SourceError;

/// A file's bytes as lines are read from them: decompressed, buffered.
pub(crate) type Bytes = BufReader<Box<dyn AsyncRead + Send + Unpin>>;

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a file name's extension says.
    fn of_name(path: &Path) -> Option<Compression> {
        match path.extension()?.to_str()? {
            "gz" => Some(Compression::Gzip),
            "zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The compression a file's first bytes say.
    fn of_magic(first: &[u8]) -> Option<Compression> {
        if first.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// Its name, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A file opened to be read, at its start.
#[derive(Debug)]
pub(crate) struct OpenFile {
    pub(crate) file: tokio::fs::File,
    /// The path it was opened by, canonical.
    pub(crate) canonical: PathBuf,
    pub(crate) id: Option<FileId>,
    /// The file's length now (compressed).
    pub(crate) len: u64,
    pub(crate) compression: Option<Compression>,
    /// Its first bytes (decompressed) when opened, at most
    /// [`FINGERPRINT_BYTES`]: what its fingerprint covers.
    pub(crate) head: Vec<u8>,
}

impl OpenFile {
    /// Opens the file at `path`.
    ///
    /// # Errors
    /// [`SourceError::Io`] naming `path` when it cannot be opened or read,
    /// [`SourceError::NotCompressed`] when its name says gzip or zstd and
    /// its first bytes do not.
    pub(crate) async fn open(path: &Path) -> Result<OpenFile, SourceError> {
        let failed = |error| SourceError::Io {
            path: path.to_owned(),
            error,
        };
        let canonical = tokio::fs::canonicalize(path).await.map_err(failed)?;
        let file = tokio::fs::File::open(&canonical).await.map_err(failed)?;
        let metadata = file.metadata().await.map_err(failed)?;
        OpenFile::of(path, canonical, file, &metadata).await
    }

    /// The file `file`, opened by `path` (canonical: `canonical`), which
    /// `metadata` describes.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub(crate) async fn of(
        path: &Path,
        canonical: PathBuf,
        mut file: tokio::fs::File,
        metadata: &std::fs::Metadata,
    ) -> Result<OpenFile, SourceError> {
        let failed = |error| SourceError::Io {
            path: path.to_owned(),
            error,
        };
        let mut first = Vec::with_capacity(4);
        (&mut file)
            .take(4)
            .read_to_end(&mut first)
            .await
            .map_err(failed)?;
        file.seek(SeekFrom::Start(0)).await.map_err(failed)?;
        let compression = match (Compression::of_magic(&first), Compression::of_name(path)) {
            (Some(compression), _) => Some(compression),
            // An empty file is empty, whatever its name.
            (None, Some(_)) if first.is_empty() => None,
            (None, Some(named)) => {
                return Err(SourceError::NotCompressed {
                    path: path.to_owned(),
                    format: named.name(),
                });
            }
            (None, None) => None,
        };
        let head = head(&mut file, compression).await.map_err(failed)?;
        Ok(OpenFile {
            file,
            canonical,
            id: FileId::of(metadata),
            len: metadata.len(),
            compression,
            head,
        })
    }

    /// Its size in the bytes its lines' offsets count: its length, when
    /// it is not compressed.
    pub(crate) fn size(&self) -> Option<u64> {
        self.compression.is_none().then_some(self.len)
    }

    /// The file's bytes from where it stands, decompressed, through a
    /// buffer of `buffer` bytes.
    pub(crate) fn bytes(self, buffer: usize) -> Bytes {
        let buffer = buffer.max(1);
        let file = self.file;
        let reader: Box<dyn AsyncRead + Send + Unpin> = match self.compression {
            None => Box::new(file),
            Some(Compression::Gzip) => {
                let mut decoder = GzipDecoder::new(BufReader::with_capacity(buffer, file));
                // `cat a.gz b.gz > c.gz` is one gzip file of both.
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Some(Compression::Zstd) => {
                let mut decoder = ZstdDecoder::new(BufReader::with_capacity(buffer, file));
                decoder.multiple_members(true);
                Box::new(decoder)
            }
        };
        BufReader::with_capacity(buffer, reader)
    }
}

/// The first [`FINGERPRINT_BYTES`] bytes of `file` (decompressed), or all
/// of them when it has fewer; `file` is left at its start. Data that
/// cannot be decompressed ends the head there: reading the file says why.
async fn head(file: &mut tokio::fs::File, compression: Option<Compression>) -> io::Result<Vec<u8>> {
    let limit = FINGERPRINT_BYTES as u64;
    let mut head = Vec::new();
    {
        let buffered = BufReader::new(&mut *file);
        let mut reader: Box<dyn AsyncRead + Send + Unpin + '_> = match compression {
            None => Box::new(buffered),
            Some(Compression::Gzip) => {
                let mut decoder = GzipDecoder::new(buffered);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Some(Compression::Zstd) => {
                let mut decoder = ZstdDecoder::new(buffered);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
        };
        let read = (&mut reader).take(limit).read_to_end(&mut head).await;
        if let Err(error) = read
            && compression.is_none()
        {
            return Err(error);
        }
    }
    file.seek(SeekFrom::Start(0)).await?;
    Ok(head)
}

/// The default stream name of the file at `path`: its name without its
/// last extension, and without a compression extension before it
/// (`orders` for `orders.ndjson` and `orders.ndjson.gz`).
pub(crate) fn stem(path: &Path) -> String {
    let named = match Compression::of_name(path) {
        Some(_) => path.with_extension(""),
        None => path.to_owned(),
    };
    named
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The regular file with identity `id` in `dir`, if any (where a file
/// renamed by a rotation usually is).
pub(crate) async fn find_in(dir: &Path, id: FileId) -> io::Result<Option<PathBuf>> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        // An entry gone since it was listed, or that cannot be looked at,
        // is not the file.
        let Ok(metadata) = entry.metadata().await else {
            continue;
        };
        if metadata.is_file() && FileId::of(&metadata) == Some(id) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_told_by_name_and_by_magic() {
        assert_eq!(
            Compression::of_name(Path::new("a.ndjson.gz")),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_name(Path::new("a.zst")),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::of_name(Path::new("a.ndjson")), None);
        assert_eq!(Compression::of_name(Path::new("gz")), None);
        assert_eq!(
            Compression::of_magic(&[0x1f, 0x8b, 8, 0]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::of_magic(&[0x28, 0xb5, 0x2f]), None);
        assert_eq!(Compression::of_magic(b"{\"a\""), None);
        assert_eq!(Compression::of_magic(&[0x1f]), None);
    }

    #[test]
    fn the_stem_drops_a_compression_extension_and_the_last_one() {
        assert_eq!(stem(Path::new("/d/orders.ndjson.gz")), "orders");
        assert_eq!(stem(Path::new("/d/orders.ndjson.zst")), "orders");
        assert_eq!(stem(Path::new("/d/orders.ndjson")), "orders");
        assert_eq!(stem(Path::new("/d/orders.eu.jsonl")), "orders.eu");
        assert_eq!(stem(Path::new("/d/orders.gz")), "orders");
        assert_eq!(stem(Path::new("/d/orders")), "orders");
    }
}
