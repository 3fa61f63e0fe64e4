//! Reader for the IDX format of LeCun's MNIST files.
//!
//! Layout: two zero bytes, one element-type byte, one dimension-count byte, each dimension
//! as a big-endian `u32`, then the elements, big-endian, row-major. Files may be gzipped;
//! gzip is detected by its magic bytes, never by the file name.

use std::borrow::Cow;
use std::io::{Read, Seek, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::data::DataError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const VALID_TYPES: &str = "0x08 (u8), 0x09 (i8), 0x0B (i16), 0x0C (i32), 0x0D (f32), 0x0E (f64)";

/// The elements of an IDX array, in file (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl IdxData {
    /// Rust name of the element type: `"u8"`, `"i8"`, `"i16"`, `"i32"`, `"f32"` or `"f64"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            IdxData::U8(_) => "u8",
            IdxData::I8(_) => "i8",
            IdxData::I16(_) => "i16",
            IdxData::I32(_) => "i32",
            IdxData::F32(_) => "f32",
            IdxData::F64(_) => "f64",
        }
    }

    /// The element-type byte the IDX header uses for this type (e.g. `0x08` for `u8`).
    pub fn type_code(&self) -> u8 {
        match self {
            IdxData::U8(_) => 0x08,
            IdxData::I8(_) => 0x09,
            IdxData::I16(_) => 0x0B,
            IdxData::I32(_) => 0x0C,
            IdxData::F32(_) => 0x0D,
            IdxData::F64(_) => 0x0E,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An n-dimensional IDX array: `dims` (outermost first) and the row-major elements.
///
/// Arrays returned by [`read_idx`] / [`parse_idx`] always satisfy
/// `data.len() == dims.iter().product()` and `!dims.is_empty()`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

/// An IDX file's header: its element type and dimensions, read without its data
/// ([`read_idx_header`]), so that what a file claims can be checked before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    /// The element-type byte (`0x08` for `u8`, ...; one of the valid types).
    pub type_code: u8,
    /// The dimensions, outermost first (at least one).
    pub dims: Vec<usize>,
}

impl IdxHeader {
    /// The magic number as the file stores it, big-endian: `0x0000TTNN` for element type
    /// `TT` and `NN` dimensions (`0x00000803` for MNIST's images, `0x00000801` for labels).
    pub fn magic(&self) -> u32 {
        (u32::from(self.type_code) << 8) | self.dims.len() as u32
    }

    /// Bytes of the header: 4, and 4 per dimension.
    pub fn header_bytes(&self) -> u64 {
        4 + 4 * self.dims.len() as u64
    }

    /// Bytes of data the dimensions call for; `None` when that overflows `u64`.
    pub fn data_bytes(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(elem_size(self.type_code)? as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            })
    }

    /// The Rust name of the element type (`"u8"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self.type_code {
            0x08 => "u8",
            0x09 => "i8",
            0x0B => "i16",
            0x0C => "i32",
            0x0D => "f32",
            _ => "f64",
        }
    }
}

/// Bytes per element of the IDX type `code`, `None` for an unknown type.
fn elem_size(code: u8) -> Option<usize> {
    match code {
        0x08 | 0x09 => Some(1),
        0x0B => Some(2),
        0x0C | 0x0D => Some(4),
        0x0E => Some(8),
        _ => None,
    }
}

/// Deflate expands a stream at most about 1032-fold: a gzip file of `n` bytes holds fewer
/// than `n * MAX_DEFLATE_RATIO` decompressed bytes.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Parses the header at the start of `bytes` (the decompressed file, or its first bytes).
///
/// # Errors
/// As [`parse_idx`], for the header's part: an empty file, a truncated header, wrong magic,
/// an unknown element type, a zero dimension count.
fn parse_header(bytes: &[u8], path: &Path) -> Result<IdxHeader, DataError> {
    let fail = |reason: String| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("file is empty (0 bytes)".into()));
    }
    if bytes.len() < 4 {
        return Err(fail(format!(
            "truncated header: file has {} bytes, an IDX header needs at least 4",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(fail(format!(
            "wrong magic: first two bytes are 0x{:02X} 0x{:02X}, expected 0x00 0x00 \
             (not an IDX file)",
            bytes[0], bytes[1]
        )));
    }
    let type_code = bytes[2];
    if elem_size(type_code).is_none() {
        return Err(fail(format!(
            "unknown element type 0x{type_code:02X}; valid types are {VALID_TYPES}"
        )));
    }
    let ndims = usize::from(bytes[3]);
    if ndims == 0 {
        return Err(fail(
            "dimension count is 0; an IDX array needs at least one dimension".into(),
        ));
    }
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(fail(format!(
            "truncated header: {ndims} dimensions need a {header_len}-byte header, file has {} bytes",
            bytes.len()
        )));
    }
    let dims = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    Ok(IdxHeader { type_code, dims })
}

/// Reads only the header of an IDX file, raw or gzipped (detected by content): at most
/// the first 1,024 bytes are read or inflated, whatever size the header claims.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::Idx`] for a corrupt gzip
/// stream or a bad header (as [`parse_idx`]).
pub fn read_idx_header(path: &Path) -> Result<IdxHeader, DataError> {
    read_head(path).map(|(header, _)| header)
}

/// [`read_idx_header`], and whether the file is gzipped.
fn read_head(path: &Path) -> Result<(IdxHeader, bool), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = Vec::new();
    (&mut file).take(2).read_to_end(&mut magic).map_err(io)?;
    file.rewind().map_err(io)?;
    // 4 bytes and 255 dimensions of 4 bytes: the longest header there is.
    let mut head = Vec::new();
    let gz = is_gzip(&magic);
    if gz {
        MultiGzDecoder::new(file)
            .take(1024)
            .read_to_end(&mut head)
            .map_err(|e| DataError::Idx {
                path: path.to_path_buf(),
                reason: format!("corrupt gzip stream: {e}"),
            })?;
    } else {
        file.take(1024).read_to_end(&mut head).map_err(io)?;
    }
    Ok((parse_header(&head, path)?, gz))
}

/// Reads an IDX file, raw or gzipped (detected by content). What the header claims is
/// checked before the data is read: a raw file must be exactly as long as its header
/// says, and a gzip file long enough to inflate to it (deflate expands at most about
/// 1032-fold), so a small file claiming gigabytes is refused without reading it; a gzip
/// stream that inflates past its header's size is stopped there ([`parse_idx`]).
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, otherwise as [`parse_idx`].
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (header, gz) = read_head(path)?;
    let fail = |reason: String| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    };
    let Some(expected) = header.data_bytes() else {
        return Err(fail(format!(
            "dimensions {:?} overflow: the array cannot fit in memory",
            header.dims
        )));
    };
    let file_len = std::fs::metadata(path).map_err(io)?.len();
    let elem = elem_size(header.type_code).unwrap_or(1);
    if gz {
        let most = file_len.saturating_mul(MAX_DEFLATE_RATIO);
        if header.header_bytes().saturating_add(expected) > most {
            return Err(fail(format!(
                "data length mismatch (truncated): dimensions {:?} of {elem}-byte elements need \
                 {expected} data bytes, but a {file_len}-byte gzip file inflates to at most \
                 {most} (refused from the header, before decompressing)",
                header.dims
            )));
        }
    } else {
        let payload = file_len.saturating_sub(header.header_bytes());
        if payload != expected {
            let kind = if payload < expected {
                "truncated"
            } else {
                "trailing bytes"
            };
            return Err(fail(format!(
                "data length mismatch ({kind}): dimensions {:?} of {elem}-byte elements need \
                 {expected} data bytes, file has {payload} (refused from the header, before \
                 reading the data)",
                header.dims
            )));
        }
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse_idx(&bytes, path)
}

/// Parses the bytes of an IDX file, raw or gzipped (detected by the gzip magic `1f 8b`).
///
/// `path` is used only in error messages.
///
/// # Errors
/// [`DataError::Idx`] naming `path` for: an empty file, a corrupt gzip stream, a truncated
/// header, wrong magic (first two bytes not zero), an unknown element type, a zero
/// dimension count, a dimension product that overflows, or a data length other than
/// `product(dims) * element size` (reported as truncated or as trailing bytes).
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let bytes = gunzip_if_gzip(bytes, path)?;
    let fail = |reason: String| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    };
    let header = parse_header(&bytes, path)?;
    let (type_code, dims) = (header.type_code, header.dims.clone());
    let header_len = header.header_bytes() as usize;
    let elem_size = elem_size(type_code).unwrap_or(1);
    let expected = header
        .data_bytes()
        .and_then(|e| usize::try_from(e).ok())
        .ok_or_else(|| {
            fail(format!(
                "dimensions {dims:?} overflow: the array cannot fit in memory"
            ))
        })?;
    let payload = &bytes[header_len..];
    if payload.len() != expected {
        let kind = if payload.len() < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(fail(format!(
            "data length mismatch ({kind}): dimensions {dims:?} of {elem_size}-byte elements need \
             {expected} data bytes, file has {}",
            payload.len()
        )));
    }

    let data = match type_code {
        0x08 => IdxData::U8(payload.to_vec()),
        0x09 => IdxData::I8(payload.iter().map(|&b| b as i8).collect()),
        0x0B => IdxData::I16(be_chunks(payload).map(i16::from_be_bytes).collect()),
        0x0C => IdxData::I32(be_chunks(payload).map(i32::from_be_bytes).collect()),
        0x0D => IdxData::F32(be_chunks(payload).map(f32::from_be_bytes).collect()),
        0x0E => IdxData::F64(be_chunks(payload).map(f64::from_be_bytes).collect()),
        _ => unreachable!("element type validated above"),
    };
    Ok(IdxArray { dims, data })
}

/// Encodes an array as a raw (uncompressed) IDX file.
///
/// Does not check that `data.len()` matches `dims`, so tests can build malformed files.
///
/// # Panics
/// If there are more than 255 dimensions or a dimension exceeds `u32::MAX`.
pub fn encode_idx(arr: &IdxArray) -> Vec<u8> {
    let ndims = u8::try_from(arr.dims.len()).expect("IDX supports at most 255 dimensions");
    let mut out = vec![0, 0, arr.data.type_code(), ndims];
    for &d in &arr.dims {
        let d = u32::try_from(d).expect("IDX dimensions must fit in u32");
        out.extend_from_slice(&d.to_be_bytes());
    }
    match &arr.data {
        IdxData::U8(v) => out.extend_from_slice(v),
        IdxData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        IdxData::I16(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
        IdxData::I32(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
        IdxData::F32(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
        IdxData::F64(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
    }
    out
}

/// True when `bytes` start with the gzip magic `1f 8b`.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Returns `bytes` decompressed if they are gzip, else unchanged.
pub(crate) fn gunzip_if_gzip<'a>(bytes: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>, DataError> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let corrupt = |e: std::io::Error| DataError::Idx {
        path: path.to_path_buf(),
        reason: format!("corrupt gzip stream: {e}"),
    };
    let mut dec = MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    // The header first: it says how many bytes the whole file has, so a stream that
    // inflates past that (a gzip bomb, or a file with a huge tail) is stopped there instead
    // of being decompressed into memory in full.
    (&mut dec).take(4).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() < 4 || out[0] != 0 || out[1] != 0 {
        // Not an IDX header (or too short): parse_idx reports what is wrong with it.
        return Ok(Cow::Owned(out));
    }
    let (type_code, ndims) = (out[2], out[3]);
    let header_len = 4 + 4 * usize::from(ndims);
    (&mut dec)
        .take(header_len as u64 - 4)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let elem_size = match type_code {
        0x08 | 0x09 => 1u64,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => return Ok(Cow::Owned(out)),
    };
    if out.len() < header_len {
        return Ok(Cow::Owned(out));
    }
    let expected = out[4..header_len]
        .chunks_exact(4)
        .try_fold(elem_size, |acc, c| {
            acc.checked_mul(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        });
    let Some(expected) = expected else {
        return Ok(Cow::Owned(out));
    };
    // One byte past the expected length is enough to tell "trailing bytes".
    let limit = expected.saturating_add(1);
    (&mut dec)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if (out.len() - header_len) as u64 > expected {
        return Err(DataError::Idx {
            path: path.to_path_buf(),
            reason: format!(
                "data length mismatch (trailing bytes): the header's dimensions need {expected} \
                 data bytes, the decompressed file holds more (decompression stopped there)"
            ),
        });
    }
    Ok(Cow::Owned(out))
}

/// Gzips `bytes` in memory.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

fn be_chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn samples() -> Vec<IdxArray> {
        let arr = |dims: Vec<usize>, data| IdxArray { dims, data };
        vec![
            arr(
                vec![2, 3, 4],
                IdxData::U8((0..24).map(|i| i * 10).collect()),
            ),
            arr(vec![5], IdxData::I8(vec![-128, -1, 0, 1, 127])),
            arr(
                vec![2, 3],
                IdxData::I16(vec![i16::MIN, -300, 0, 1, 300, i16::MAX]),
            ),
            arr(
                vec![3, 1, 2],
                IdxData::I32(vec![i32::MIN, -70000, 0, 1, 70000, i32::MAX]),
            ),
            arr(vec![2, 2], IdxData::F32(vec![-1.5, 0.0, 3.25, f32::MAX])),
            arr(
                vec![1, 2, 1, 2],
                IdxData::F64(vec![-1e300, 0.5, 2.0, f64::MIN_POSITIVE]),
            ),
            arr(vec![0, 28, 28], IdxData::U8(vec![])),
        ]
    }

    fn err_msg(bytes: &[u8], path: &Path) -> (DataError, String) {
        let err = parse_idx(bytes, path).expect_err("parse should fail");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "message lacks path: {msg}"
        );
        (err, msg)
    }

    fn assert_idx_error(bytes: &[u8], phrase: &str) {
        let path = PathBuf::from("fixtures/bad-file");
        let (err, msg) = err_msg(bytes, &path);
        assert!(
            matches!(err, DataError::Idx { .. }),
            "wrong variant: {err:?}"
        );
        assert!(msg.contains(phrase), "message lacks {phrase:?}: {msg}");
    }

    fn header(type_code: u8, dims: &[u32]) -> Vec<u8> {
        let mut out = vec![0, 0, type_code, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn round_trip_every_type_raw_and_gzip() {
        let path = Path::new("mem");
        for arr in samples() {
            let raw = encode_idx(&arr);
            assert_eq!(
                parse_idx(&raw, path).unwrap(),
                arr,
                "raw {}",
                arr.data.type_name()
            );
            let gz = gzip(&raw);
            assert_eq!(
                parse_idx(&gz, path).unwrap(),
                arr,
                "gzip {}",
                arr.data.type_name()
            );
        }
    }

    #[test]
    fn type_names_and_codes() {
        let names: Vec<_> = samples().iter().map(|a| a.data.type_name()).collect();
        assert_eq!(names, ["u8", "i8", "i16", "i32", "f32", "f64", "u8"]);
        let codes: Vec<_> = samples().iter().map(|a| a.data.type_code()).collect();
        assert_eq!(codes, [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x08]);
    }

    #[test]
    fn big_endian_layout() {
        let arr = IdxArray {
            dims: vec![1],
            data: IdxData::I32(vec![0x0102_0304]),
        };
        assert_eq!(encode_idx(&arr), [0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn content_sniffed_not_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let arr = &samples()[0];
        let gz_named_raw = dir.path().join("images-gzip-without-suffix");
        std::fs::write(&gz_named_raw, gzip(&encode_idx(arr))).unwrap();
        assert_eq!(&read_idx(&gz_named_raw).unwrap(), arr);
        let raw_named_gz = dir.path().join("images-raw.gz");
        std::fs::write(&raw_named_gz, encode_idx(arr)).unwrap();
        assert_eq!(&read_idx(&raw_named_gz).unwrap(), arr);
    }

    #[test]
    fn missing_file_is_io_error() {
        let path = Path::new("/nonexistent/dir/train-images-idx3-ubyte");
        let err = read_idx(path).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    /// Regression: a gzipped IDX file was inflated in full before its length was checked,
    /// so a small `.gz` of zeros (a gzip bomb, or a huge tail) took all the memory it
    /// expanded to. Decompression now stops one byte past what the header says.
    #[test]
    fn gzip_past_the_headers_length_stops_and_is_refused() {
        let mut bytes = header(0x08, &[2, 3]);
        bytes.extend([1, 2, 3, 4, 5, 6]);
        let ok = gzip(&bytes);
        assert_eq!(parse_idx(&ok, Path::new("x")).unwrap().dims, [2, 3]);
        bytes.resize(bytes.len() + (64 << 20), 0);
        let bomb = gzip(&bytes);
        assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
        assert_idx_error(&bomb, "decompression stopped there");
        // Concatenated gzip members are still one file (MultiGzDecoder).
        let mut two = gzip(&header(0x08, &[2, 3]));
        two.extend(gzip(&[1, 2, 3, 4, 5, 6]));
        assert_eq!(parse_idx(&two, Path::new("x")).unwrap().dims, [2, 3]);
        // Truncated payloads behind a gzip header are reported as before.
        assert_idx_error(&gzip(&header(0x08, &[2, 3])), "truncated");
    }

    /// Regression (issue 25, item 10): a small file whose header claims gigabytes (here
    /// 4.3 GB of images in 1 MiB of zeros, gzipped to about 1 KiB) was read and inflated in
    /// full before the length was checked. A gzip file too short to inflate to its header's
    /// size, and a raw file of another length than its header's, are refused from the
    /// header.
    #[test]
    fn regression_a_file_claiming_gigabytes_is_refused_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = header(0x08, &[5_500_000, 28, 28]);
        bytes.resize(bytes.len() + (1 << 20), 0);
        let gz = dir.path().join("bomb.gz");
        std::fs::write(&gz, gzip(&bytes)).unwrap();
        let e = read_idx(&gz).unwrap_err().to_string();
        assert!(
            e.contains("need 4312000000 data bytes") && e.contains("before decompressing"),
            "{e}"
        );
        let raw = dir.path().join("bomb");
        std::fs::write(&raw, &bytes).unwrap();
        let e = read_idx(&raw).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains("before reading the data"),
            "{e}"
        );
        assert_eq!(
            read_idx_header(&gz).unwrap(),
            IdxHeader {
                type_code: 0x08,
                dims: vec![5_500_000, 28, 28]
            }
        );
        assert_eq!(read_idx_header(&gz).unwrap().magic(), 0x0803);
    }

    #[test]
    fn empty_file() {
        assert_idx_error(&[], "file is empty");
        assert_idx_error(&gzip(&[]), "file is empty");
    }

    #[test]
    fn truncated_header() {
        assert_idx_error(&[0, 0, 8], "truncated header");
        let mut bytes = header(0x08, &[2, 3]);
        bytes.truncate(9);
        assert_idx_error(&bytes, "truncated header");
    }

    #[test]
    fn truncated_data() {
        let mut bytes = header(0x0B, &[2, 3]);
        bytes.extend_from_slice(&[0; 11]);
        assert_idx_error(&bytes, "truncated");
        assert_idx_error(&bytes, "need 12 data bytes, file has 11");
    }

    #[test]
    fn trailing_bytes() {
        let mut bytes = header(0x08, &[2, 2]);
        bytes.extend_from_slice(&[0; 5]);
        assert_idx_error(&bytes, "trailing bytes");
        assert_idx_error(&bytes, "need 4 data bytes, file has 5");
    }

    #[test]
    fn wrong_magic() {
        let mut bytes = header(0x08, &[1]);
        bytes[1] = 0x03;
        bytes.push(7);
        assert_idx_error(&bytes, "wrong magic");
        // An IDX-looking file that is neither gzip nor starts with zeros.
        assert_idx_error(b"PK\x03\x04 zip archive", "wrong magic");
    }

    #[test]
    fn unknown_element_type() {
        let mut bytes = header(0x0A, &[1]);
        bytes.push(0);
        assert_idx_error(&bytes, "unknown element type 0x0A");
        assert_idx_error(&bytes, VALID_TYPES);
    }

    #[test]
    fn zero_dimension_count() {
        assert_idx_error(&header(0x08, &[]), "dimension count is 0");
    }

    #[test]
    fn dimension_overflow() {
        let bytes = header(0x0E, &[u32::MAX, u32::MAX, u32::MAX]);
        assert_idx_error(&bytes, "overflow");
    }

    #[test]
    fn corrupt_gzip() {
        let mut bytes = vec![0x1f, 0x8b];
        bytes.extend_from_slice(b"this is not deflate data at all");
        assert_idx_error(&bytes, "corrupt gzip stream");
        // A valid stream cut short is corrupt too.
        let gz = gzip(&encode_idx(&samples()[0]));
        assert_idx_error(&gz[..gz.len() - 10], "corrupt gzip stream");
    }
}
