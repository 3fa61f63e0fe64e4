//! Helpers shared by the data module's unit tests: small IDX datasets written to a
//! temporary directory, the real MNIST directory (`$MNIST_DIR`), message checks, and a
//! local HTTP mirror.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use super::DataError;
use super::datasets::DatasetName;
use super::idx::{IdxArray, IdxData, encode_idx, gzip};
use super::mnist::FILE_NAMES;

/// The real MNIST directory; these tests need it and must not pass silently without it.
pub(super) fn real_dir() -> PathBuf {
    match std::env::var_os("MNIST_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => panic!(
            "set MNIST_DIR to a directory holding the four real MNIST files (raw or .gz) \
             to run this test, e.g. MNIST_DIR=/work/shared/data/mnist cargo test"
        ),
    }
}

pub(super) fn images(n: usize, rows: usize, cols: usize) -> IdxArray {
    IdxArray {
        dims: vec![n, rows, cols],
        data: IdxData::U8((0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect()),
    }
}

pub(super) fn labels(values: &[u8]) -> IdxArray {
    IdxArray {
        dims: vec![values.len()],
        data: IdxData::U8(values.to_vec()),
    }
}

pub(super) fn i32_labels(values: &[i32]) -> IdxArray {
    IdxArray {
        dims: vec![values.len()],
        data: IdxData::I32(values.to_vec()),
    }
}

pub(super) fn write(dir: &Path, name: &str, arr: &IdxArray, gz: bool) -> PathBuf {
    let raw = encode_idx(arr);
    let (path, bytes) = if gz {
        (dir.join(format!("{name}.gz")), gzip(&raw))
    } else {
        (dir.join(name), raw)
    };
    fs::write(&path, bytes).unwrap();
    path
}

/// Writes the four files in [`FILE_NAMES`] order, alternating raw and gzip.
pub(super) fn write_all(dir: &Path, files: [&IdxArray; 4]) -> [PathBuf; 4] {
    std::array::from_fn(|i| write(dir, FILE_NAMES[i], files[i], i % 2 == 1))
}

/// A valid 6-train / 3-test dataset of 3x2 images with 4 classes.
pub(super) fn write_valid(dir: &Path) -> [PathBuf; 4] {
    write_all(
        dir,
        [
            &images(6, 3, 2),
            &labels(&[0, 1, 2, 3, 0, 1]),
            &images(3, 3, 2),
            &labels(&[3, 2, 0]),
        ],
    )
}

pub(super) fn assert_msg(err: &DataError, phrases: &[&str]) {
    let msg = err.to_string();
    for phrase in phrases {
        assert!(msg.contains(phrase), "message lacks {phrase:?}: {msg}");
    }
}

pub(super) fn s(path: &Path) -> String {
    path.display().to_string()
}

/// Writes `files` of a named dataset into `dir` as `<name>.gz`, in its real packaging.
pub(super) fn write_named_gz(dir: &Path, name: DatasetName, arrays: [&IdxArray; 4]) {
    for (f, arr) in name.info().files.iter().zip(arrays) {
        fs::write(dir.join(format!("{f}.gz")), gzip(&encode_idx(arr))).unwrap();
    }
}

/// Serves `files` (URL path -> body) over HTTP on localhost; other paths get 404.
pub(super) fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or_default();
            let (status, body) = match files.get(path) {
                Some(body) => ("200 OK", body.as_slice()),
                None => ("404 Not Found", &[][..]),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(body));
        }
    });
    format!("http://{addr}")
}

/// A mirror that answers every request with headers promising 1 MB, then trickles the
/// body one byte per `every` (a stalled server), until the client goes away.
pub(super) fn trickle(every: std::time::Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                while stream
                    .write_all(&[0x1f])
                    .and_then(|()| stream.flush())
                    .is_ok()
                {
                    std::thread::sleep(every);
                }
            });
        }
    });
    format!("http://{addr}/")
}

/// A mirror URL on which nothing listens.
pub(super) fn dead_mirror() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}
