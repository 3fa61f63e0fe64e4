//! JSON Lines output files (`train --metrics`), written one whole line at a time: a write
//! that fails part-way (a full disk) is cut back to the last whole line, so the file never
//! ends in a torn record that a reader would refuse.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// A file that can be cut back to a length: what [`JsonLinesWriter`] needs besides
/// writing (a [`File`]; a test's in-memory file).
pub trait Truncate: Write {
    /// Shortens the file to `len` bytes and moves the write position there.
    ///
    /// # Errors
    /// The OS error.
    fn truncate_to(&mut self, len: u64) -> std::io::Result<()>;
}

impl Truncate for File {
    fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len)).map(|_| ())
    }
}

/// Appends one JSON object per line to a file that starts empty; see the module docs.
#[derive(Debug)]
pub struct JsonLinesWriter<F: Truncate = File> {
    file: F,
    /// Bytes of the whole lines written so far.
    len: u64,
    lines: usize,
}

impl JsonLinesWriter<File> {
    /// Creates `path` (replacing a file that is there) for writing JSON Lines.
    ///
    /// # Errors
    /// [`Error::Output`] naming `path` when it cannot be created.
    pub fn create(path: &Path) -> Result<JsonLinesWriter<File>> {
        File::create(path)
            .map(JsonLinesWriter::new)
            .map_err(|e| Error::Output {
                path: path.to_path_buf(),
                reason: format!("cannot create it: {e}"),
            })
    }
}

impl<F: Truncate> JsonLinesWriter<F> {
    /// A writer of JSON Lines into `file`, which must be empty.
    pub fn new(file: F) -> JsonLinesWriter<F> {
        JsonLinesWriter {
            file,
            len: 0,
            lines: 0,
        }
    }

    /// Writes `value` as one line (JSON and a newline) with one `write_all`, and flushes.
    /// When that fails the file is cut back to the lines before it, and the writer may be
    /// used again.
    ///
    /// # Errors
    /// The write's error (serialisation errors as [`std::io::ErrorKind::InvalidData`]),
    /// with the truncation's own error appended if cutting back failed too.
    pub fn append<T: Serialize + ?Sized>(&mut self, value: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        line.push(b'\n');
        let written = self.file.write_all(&line).and_then(|()| self.file.flush());
        if let Err(e) = written {
            return match self.file.truncate_to(self.len) {
                Ok(()) => Err(e),
                Err(t) => Err(std::io::Error::new(
                    e.kind(),
                    format!("{e}; cutting the file back to its last whole line failed too: {t}"),
                )),
            };
        }
        self.len += line.len() as u64;
        self.lines += 1;
        Ok(())
    }

    /// Lines written so far (whole lines: the file holds exactly these).
    pub fn lines(&self) -> usize {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory file with room for `room` bytes, like a disk that fills up: a write
    /// stores what fits, then fails with `StorageFull`.
    struct SmallDisk {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room - self.bytes.len());
            if n == 0 && !buf.is_empty() {
                return Err(std::io::ErrorKind::StorageFull.into());
            }
            self.bytes.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Truncate for SmallDisk {
        fn truncate_to(&mut self, len: u64) -> std::io::Result<()> {
            self.bytes.truncate(len as usize);
            Ok(())
        }
    }

    /// Regression (issue 25, item 5): a disk that filled while `--metrics` was written left
    /// a torn last line, which `plot` then refused entirely. The failed line is cut back:
    /// the file holds exactly the lines before it, each whole, and a later line that fits
    /// is written after them.
    #[test]
    fn regression_a_write_that_fills_the_disk_leaves_only_whole_lines() {
        let line = |epoch: usize| serde_json::json!({"epoch": epoch, "loss": 0.25});
        let one = serde_json::to_vec(&line(1)).unwrap().len() + 1;
        let mut w = JsonLinesWriter::new(SmallDisk {
            bytes: Vec::new(),
            room: 2 * one + one / 2,
        });
        w.append(&line(1)).unwrap();
        w.append(&line(2)).unwrap();
        let e = w.append(&line(3)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(w.lines(), 2);
        let text = String::from_utf8(w.file.bytes.clone()).unwrap();
        assert_eq!(
            text,
            "{\"epoch\":1,\"loss\":0.25}\n{\"epoch\":2,\"loss\":0.25}\n"
        );
        // Room again (space freed): the next line follows the whole ones.
        w.file.room = 10 * one;
        w.append(&line(4)).unwrap();
        let text = String::from_utf8(w.file.bytes.clone()).unwrap();
        assert!(
            text.ends_with("\"loss\":0.25}\n{\"epoch\":4,\"loss\":0.25}\n"),
            "{text}"
        );
    }
}
