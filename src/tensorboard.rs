//! TensorBoard event files: per-epoch scalars and the run's hyperparameters, written so
//! that TensorBoard (and `torch.utils.tensorboard` users' tools) read them unchanged.
//!
//! An event file (`events.out.tfevents.<unix seconds>.<host>.<pid>.<n>` in the run's
//! folder) is a sequence of TFRecords, each
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of the length | data | u32 masked CRC-32C of data
//! ```
//! with `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8` (TensorFlow's
//! `tensorflow/core/lib/hash/crc32c.h`). Each record's data is a `tensorboard.Event`
//! protobuf (`tensorboard/compat/proto/event.proto`): the first holds
//! `file_version = "brain.Event:2"`; scalars are `Summary.Value.simple_value` (f32) at
//! `step` = the 1-based epoch, as `SummaryWriter.add_scalar` writes them.
//!
//! Hyperparameters go to the HParams plugin (`tensorboard/plugins/hparams/`,
//! `plugin_data.proto`, version 0): a `SessionStartInfo` under the tag
//! `_hparams_/session_start_info` when the run starts and a `SessionEndInfo` with its
//! status under `_hparams_/session_end_info` when it ends. No `Experiment` summary is
//! written: TensorBoard then builds the experiment from every run's session and scalar
//! tags (`backend_context.py`, `_compute_experiment_from_runs`), which is what a sweep of
//! many runs needs (it uses only one run's `Experiment` when any has one).
//!
//! The messages are declared here with `prost` derives, their field numbers copied from
//! those `.proto` files; no code is generated at build time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::error::{Error, Result};
use crate::tune::EpochMetrics;

/// The masked CRC-32C of TFRecord framing: `((c >> 15) | (c << 17)) + 0xa282ead8`
/// (wrapping), where `c` is the CRC-32C (Castagnoli) of `bytes`.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: the length, its masked CRC, `data`, and the data's masked CRC.
pub fn tfrecord(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// `tensorboard.Event`, the fields wgtrain writes.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "event::What", tags = "3, 5")]
    pub what: Option<event::What>,
}

/// The `oneof what` of [`Event`].
pub mod event {
    /// What an event carries.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// `"brain.Event:2"` in the first event of a file.
        #[prost(string, tag = "3")]
        FileVersion(String),
        #[prost(message, tag = "5")]
        Summary(super::Summary),
    }
}

/// `tensorboard.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorboard.Summary.Value`: a tag, optional plugin metadata, and a scalar.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// `simple_value` (field 2 of the `oneof value`).
    #[prost(oneof = "summary_value::Value", tags = "2")]
    pub value: Option<summary_value::Value>,
}

/// The `oneof value` of [`SummaryValue`].
pub mod summary_value {
    /// A summary's value.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(float, tag = "2")]
        SimpleValue(f32),
    }
}

/// `tensorboard.SummaryMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorboard.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct HParamsPluginData {
    /// 0, `PLUGIN_DATA_VERSION` of `tensorboard/plugins/hparams/metadata.py`.
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(oneof = "hparams_plugin_data::Data", tags = "3, 4")]
    pub data: Option<hparams_plugin_data::Data>,
}

/// The `oneof data` of [`HParamsPluginData`].
pub mod hparams_plugin_data {
    /// Start or end of a session (one run).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "3")]
        SessionStartInfo(super::SessionStartInfo),
        #[prost(message, tag = "4")]
        SessionEndInfo(super::SessionEndInfo),
    }
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtoValue>,
    #[prost(string, tag = "4")]
    pub group_name: String,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionEndInfo {
    /// `tensorboard.hparams.Status`: see [`SessionStatus`].
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value`, the kinds hyperparameters use.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoValue {
    #[prost(oneof = "proto_value::Kind", tags = "2, 3, 4")]
    pub kind: Option<proto_value::Kind>,
}

/// The `oneof kind` of [`ProtoValue`].
pub mod proto_value {
    /// A number, string or bool.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(double, tag = "2")]
        NumberValue(f64),
        #[prost(string, tag = "3")]
        StringValue(String),
        #[prost(bool, tag = "4")]
        BoolValue(bool),
    }
}

/// A hyperparameter's value, as the HParams dashboard shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl HParam {
    fn to_proto(&self) -> ProtoValue {
        use proto_value::Kind;
        ProtoValue {
            kind: Some(match self {
                HParam::Number(v) => Kind::NumberValue(*v),
                HParam::Text(s) => Kind::StringValue(s.clone()),
                HParam::Bool(b) => Kind::BoolValue(*b),
            }),
        }
    }
}

/// How a run ended (`tensorboard.hparams.Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// `STATUS_SUCCESS` = 1: it trained every epoch asked (or stopped early by rule).
    Success = 1,
    /// `STATUS_FAILURE` = 2: it diverged or failed.
    Failure = 2,
}

/// The `_hparams_/…` tags of `tensorboard/plugins/hparams/metadata.py`.
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
        .unwrap_or_else(|| "localhost".into())
}

/// Writes one run's event file. Every event is flushed to disk when written, so
/// TensorBoard shows a run while it trains and an interrupted run keeps its epochs.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates the run folder `dir` (and its parents) and a new event file in it, named
    /// as TensorFlow and PyTorch name theirs
    /// (`events.out.tfevents.<unix seconds>.<host>.<pid>.<n>`), and writes the file
    /// version event.
    ///
    /// # Errors
    /// [`Error::Io`] naming the folder or file that could not be created or written.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        static FILES: AtomicU32 = AtomicU32::new(0);
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(format!(
            "events.out.tfevents.{:010}.{}.{}.{}",
            now_secs() as u64,
            host_name(),
            std::process::id(),
            FILES.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mut w = EventWriter {
            out: BufWriter::new(file),
            path,
        };
        w.write(Event {
            wall_time: now_secs(),
            step: 0,
            what: Some(event::What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(w)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, e: Event) -> Result<()> {
        let record = tfrecord(&e.encode_to_vec());
        self.out
            .write_all(&record)
            .and_then(|()| self.out.flush())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn summary(&mut self, step: i64, values: Vec<SummaryValue>) -> Result<()> {
        self.write(Event {
            wall_time: now_secs(),
            step,
            what: Some(event::What::Summary(Summary { value: values })),
        })
    }

    /// Scalars `(tag, value)` at `step`, in one event (stored as f32, as TensorBoard's
    /// `simple_value` is).
    ///
    /// # Errors
    /// [`Error::Io`] naming the event file.
    pub fn scalars(&mut self, step: i64, scalars: &[(&str, f64)]) -> Result<()> {
        let values = scalars
            .iter()
            .map(|&(tag, v)| SummaryValue {
                tag: tag.to_string(),
                metadata: None,
                value: Some(summary_value::Value::SimpleValue(v as f32)),
            })
            .collect();
        self.summary(step, values)
    }

    /// One epoch's scalars at step = the epoch (1-based): `loss/train`,
    /// `accuracy/train`, `loss/validation` and `accuracy/validation` (with a validation
    /// split), `loss/test` and `accuracy/test` (when the test set was evaluated), `lr`
    /// (the epoch's first step) and `epoch_seconds` (its training time, s). Accuracies
    /// are fractions in [0, 1], as in `--metrics` files.
    ///
    /// # Errors
    /// [`Error::Io`] naming the event file.
    pub fn epoch(&mut self, m: &EpochMetrics) -> Result<()> {
        let mut s: Vec<(&str, f64)> = vec![
            ("loss/train", m.train_loss),
            ("accuracy/train", m.train_accuracy),
        ];
        let optional = [
            ("loss/validation", m.val_loss),
            ("accuracy/validation", m.val_accuracy),
            ("loss/test", m.test_loss),
            ("accuracy/test", m.test_accuracy),
        ];
        s.extend(optional.iter().filter_map(|&(t, v)| Some((t, v?))));
        s.push(("lr", m.lr));
        s.push(("epoch_seconds", m.epoch_seconds));
        self.scalars(m.epoch as i64, &s)
    }

    fn hparams_event(&mut self, tag: &str, data: hparams_plugin_data::Data) -> Result<()> {
        let content = HParamsPluginData {
            version: 0,
            data: Some(data),
        }
        .encode_to_vec();
        self.summary(
            0,
            vec![SummaryValue {
                tag: tag.into(),
                metadata: Some(SummaryMetadata {
                    plugin_data: Some(PluginData {
                        plugin_name: "hparams".into(),
                        content,
                    }),
                }),
                value: None,
            }],
        )
    }

    /// The run's hyperparameters, as the HParams plugin's session start.
    ///
    /// # Errors
    /// [`Error::Io`] naming the event file.
    pub fn session_start(&mut self, hparams: &[(String, HParam)]) -> Result<()> {
        let info = SessionStartInfo {
            hparams: hparams
                .iter()
                .map(|(k, v)| (k.clone(), v.to_proto()))
                .collect(),
            group_name: String::new(),
            start_time_secs: now_secs(),
        };
        self.hparams_event(
            SESSION_START_TAG,
            hparams_plugin_data::Data::SessionStartInfo(info),
        )
    }

    /// How the run ended, as the HParams plugin's session end.
    ///
    /// # Errors
    /// [`Error::Io`] naming the event file.
    pub fn session_end(&mut self, status: SessionStatus) -> Result<()> {
        let info = SessionEndInfo {
            status: status as i32,
            end_time_secs: now_secs(),
        };
        self.hparams_event(
            SESSION_END_TAG,
            hparams_plugin_data::Data::SessionEndInfo(info),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_the_crc32c_check_value() {
        // CRC-32C("123456789") = 0xE3069283, the catalogue check value (RFC 3720, B.4).
        let c: u32 = 0xE306_9283;
        assert_eq!(crc32c::crc32c(b"123456789"), c);
        // TensorFlow's formula, spelled out as it is written there.
        #[allow(clippy::manual_rotate)]
        let want = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), want);
    }

    #[test]
    fn a_scalar_event_encodes_as_written_out_by_hand() {
        let e = Event {
            wall_time: 1.5,
            step: 3,
            what: Some(event::What::Summary(Summary {
                value: vec![SummaryValue {
                    tag: "a".into(),
                    metadata: None,
                    value: Some(summary_value::Value::SimpleValue(2.0)),
                }],
            })),
        };
        // field 1 double (0x09) 1.5; field 2 varint (0x10) 3; field 5 bytes (0x2a) of
        // Summary { field 1 bytes (0x0a) of Value { tag (0x0a) "a", field 2 float (0x15) 2.0 } }.
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 3, 0x2a, 10, 0x0a, 8, 0x0a, 1, b'a', 0x15]);
        want.extend_from_slice(&2.0f32.to_le_bytes());
        let bytes = e.encode_to_vec();
        assert_eq!(bytes, want);
        let rec = tfrecord(&bytes);
        assert_eq!(&rec[..8], &(bytes.len() as u64).to_le_bytes());
        assert_eq!(&rec[8..12], &masked_crc32c(&rec[..8]).to_le_bytes());
        assert_eq!(&rec[12..12 + bytes.len()], &bytes[..]);
        assert_eq!(
            &rec[12 + bytes.len()..],
            &masked_crc32c(&bytes).to_le_bytes()
        );
    }

    #[test]
    fn a_zero_scalar_is_still_written() {
        // proto3 leaves default scalars out, but a oneof member is always written: a loss
        // of exactly 0 must still reach TensorBoard as a value.
        let v = SummaryValue {
            tag: "x".into(),
            metadata: None,
            value: Some(summary_value::Value::SimpleValue(0.0)),
        };
        assert_eq!(v.encode_to_vec(), [0x0a, 1, b'x', 0x15, 0, 0, 0, 0]);
    }
}
