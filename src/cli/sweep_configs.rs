//! `wgtrain sweep --configs FILE`: the trials listed in a JSON file, run in the file's
//! order, instead of trials drawn from the search-space flags. This is how an outside
//! search that runs wgtrain as a process hands it the trials it chose (Python code can
//! instead use the `wgtrain` package's `wgtrain.optuna`, in-process).
//!
//! # Format
//!
//! A JSON list with one object per trial; trial `i` (its id in `trials.json`) is entry
//! `i`, counted from 0:
//!
//! ```json
//! [
//!   {"lr": 0.05, "weight_decay": 1e-4, "batch_size": 64, "momentum": 0.9,
//!    "hidden": [256], "epochs": 3},
//!   {"lr": 0.2, "hidden": []}
//! ]
//! ```
//!
//! The fields are those of [`TrialConfig`] (and of each trial's `config` in
//! `trials.json`): `lr` (a number > 0), `weight_decay` (>= 0), `momentum` (in [0, 1)),
//! both within f32's range as the kernels compute in f32; `batch_size` and `epochs`
//! (integers >= 1); `hidden` (a list of layer sizes >= 1, `[]` for logistic regression).
//! A field an entry leaves out takes the value of the matching flag (`--lr`,
//! `--weight-decay`, `--batch-size`, `--momentum`, `--hidden`, `--epochs`), which must then
//! be one value, not a range or a list. Any other field, or a field given twice, is refused.

use std::path::Path;

use anyhow::Result;
use serde_json::{Map, Value};

use wgtrain::tune::space::{SearchSpace, TrialConfig, Values};

use super::common::usage;

/// The fields of one entry, in the order the errors list them.
const FIELDS: [&str; 6] = [
    "lr",
    "weight_decay",
    "batch_size",
    "momentum",
    "hidden",
    "epochs",
];

/// The trials listed in `path` (see the module docs for the format), entries' missing
/// fields filled from the one-value flags of `space`.
///
/// # Errors
/// An exit-2 error naming the file, the entry (0-based) and the field when the file
/// cannot be read, is not a JSON list of objects, lists no trials, has an unknown field,
/// a value of the wrong type or out of range, or leaves out a field whose flag is not
/// one value.
pub(crate) fn read_configs(path: &Path, space: &SearchSpace) -> Result<Vec<TrialConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage("configs", path.display(), format!("cannot be read: {e}")))?;
    parse_configs(&text, space).map_err(|e| usage("configs", path.display(), e))
}

/// [`read_configs`] on the file's text; the error is the reason, without the file name.
pub(crate) fn parse_configs(text: &str, space: &SearchSpace) -> Result<Vec<TrialConfig>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
    // serde_json keeps the last of repeated keys; a trial given `lr` twice would run
    // silently with one of them.
    serde_json::from_str::<UniqueKeys>(text).map_err(|e| e.to_string())?;
    let Value::Array(entries) = value else {
        return Err(format!(
            "must be a JSON list of trial objects such as [{{\"lr\": 0.1, \"epochs\": 2}}], not {}",
            kind(&value)
        ));
    };
    if entries.is_empty() {
        return Err("lists no trials: give at least one trial object".into());
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Value::Object(fields) => {
                entry(fields, space).map_err(|why| format!("entry {i} (trial {i}): {why}"))
            }
            other => Err(format!(
                "entry {i} (trial {i}) must be an object with the fields {}, not {}",
                FIELDS.join(", "),
                kind(other)
            )),
        })
        .collect()
}

/// Any JSON value whose objects (at every depth) name each key once: deserialising fails
/// at the first repeated key, naming it (serde_json adds the line and column).
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the field \"{key}\" is given twice in one entry: give it once"
                )));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// One entry's trial.
fn entry(fields: &Map<String, Value>, space: &SearchSpace) -> Result<TrialConfig, String> {
    if let Some(name) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field `{name}`; the fields are {}",
            FIELDS.join(", ")
        ));
    }
    Ok(TrialConfig {
        lr: number(fields, "lr", &space.lr, "--lr", Range::Positive)?,
        weight_decay: number(
            fields,
            "weight_decay",
            &space.weight_decay,
            "--weight-decay",
            Range::NonNegative,
        )?,
        batch_size: count(fields, "batch_size", &space.batch_size, "--batch-size")?,
        momentum: number(
            fields,
            "momentum",
            &space.momentum,
            "--momentum",
            Range::Momentum,
        )?,
        hidden: hidden(fields, space)?,
        epochs: count(fields, "epochs", &space.epochs, "--epochs")?,
    })
}

/// The ranges of the float fields.
#[derive(Clone, Copy)]
enum Range {
    /// > 0, f32 neither 0 nor infinite (a learning rate).
    Positive,
    /// >= 0, f32 finite and not rounded to 0 unless 0 (weight decay).
    NonNegative,
    /// In [0, 1).
    Momentum,
}

impl Range {
    fn check(self, v: f64) -> Result<(), &'static str> {
        // The kernels compute in f32: a value f32 rounds to 0 or infinity would train wrong.
        let f32_ok = (v as f32).is_finite() && (v == 0.0 || v as f32 != 0.0);
        match self {
            Range::Positive if v.is_finite() && v > 0.0 && f32_ok => Ok(()),
            Range::Positive => {
                Err("must be a finite number > 0 within f32's range (1e-38 to 3e38)")
            }
            Range::NonNegative if v.is_finite() && v >= 0.0 && f32_ok => Ok(()),
            Range::NonNegative => {
                Err("must be a finite number >= 0 within f32's range (0, or 1e-38 to 3e38)")
            }
            Range::Momentum if (0.0..1.0).contains(&v) && f32_ok => Ok(()),
            Range::Momentum => Err("must be in [0, 1)"),
        }
    }
}

/// The one value of a flag, if it is one value.
fn single(flag: &Values) -> Option<f64> {
    match flag {
        Values::List(v) if v.len() == 1 => Some(v[0]),
        _ => None,
    }
}

/// Why a missing field cannot be filled in from its flag.
fn missing(name: &str, flag: &str, value: impl std::fmt::Display) -> String {
    format!(
        "no `{name}` field, and {flag} is not one value (it is {value}): give `{name}` in the \
         file or one value with {flag}"
    )
}

fn number(
    fields: &Map<String, Value>,
    name: &str,
    flag: &Values,
    flag_name: &str,
    range: Range,
) -> Result<f64, String> {
    let v = match fields.get(name) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => return Err(format!("`{name}` must be a number, not {}", kind(other))),
        None => single(flag).ok_or_else(|| missing(name, flag_name, flag))?,
    };
    range
        .check(v)
        .map_err(|why| format!("`{name}` is {v}: {why}"))?;
    Ok(v)
}

/// An integer >= 1 (`3` or `3.0`).
fn count(
    fields: &Map<String, Value>,
    name: &str,
    flag: &Values,
    flag_name: &str,
) -> Result<usize, String> {
    match fields.get(name) {
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) if v >= 1 => Ok(v as usize),
            (None, Some(f)) if f >= 1.0 && f.fract() == 0.0 && f < u32::MAX as f64 => {
                Ok(f as usize)
            }
            _ => Err(format!("`{name}` is {n}: must be an integer >= 1")),
        },
        Some(other) => Err(format!(
            "`{name}` must be an integer >= 1, not {}",
            kind(other)
        )),
        None => match single(flag) {
            Some(v) => Ok(v.round().max(1.0) as usize),
            None => Err(missing(name, flag_name, flag)),
        },
    }
}

fn hidden(fields: &Map<String, Value>, space: &SearchSpace) -> Result<Vec<usize>, String> {
    let Some(v) = fields.get("hidden") else {
        return match space.hidden.0.as_slice() {
            [one] => Ok(one.clone()),
            all => Err(missing(
                "hidden",
                "--hidden",
                format!("{} architectures", all.len()),
            )),
        };
    };
    let bad = || {
        format!(
            "`hidden` is {v}: must be a list of layer sizes >= 1, such as [512, 256], or [] for \
             no hidden layer"
        )
    };
    let Value::Array(sizes) = v else {
        return Err(bad());
    };
    sizes
        .iter()
        .map(|s| match s.as_u64() {
            Some(n) if n >= 1 => Ok(n as usize),
            _ => Err(bad()),
        })
        .collect()
}

/// A JSON value's kind, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(lr: &str, epochs: &str, hidden: &str) -> SearchSpace {
        SearchSpace {
            lr: lr.parse().unwrap(),
            weight_decay: "1e-4".parse().unwrap(),
            batch_size: "64".parse().unwrap(),
            momentum: "0".parse().unwrap(),
            hidden: hidden.parse().unwrap(),
            epochs: epochs.parse().unwrap(),
        }
    }

    #[test]
    fn entries_become_trials_in_order_with_missing_fields_from_one_value_flags() {
        let s = space("1e-3:1", "3", "256");
        let got = parse_configs(
            r#"[{"lr": 0.05, "weight_decay": 0, "batch_size": 32, "momentum": 0.9,
                 "hidden": [512, 128], "epochs": 2},
                {"lr": 0.2, "hidden": [], "epochs": 4.0}]"#,
            &s,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                TrialConfig {
                    lr: 0.05,
                    weight_decay: 0.0,
                    batch_size: 32,
                    momentum: 0.9,
                    hidden: vec![512, 128],
                    epochs: 2,
                },
                TrialConfig {
                    lr: 0.2,
                    weight_decay: 1e-4,
                    batch_size: 64,
                    momentum: 0.0,
                    hidden: vec![],
                    epochs: 4,
                },
            ]
        );
    }

    #[track_caller]
    fn refused(text: &str, s: &SearchSpace, want: &[&str]) {
        let e = parse_configs(text, s).unwrap_err();
        for w in want {
            assert!(e.contains(w), "{e:?} does not say {w:?}");
        }
    }

    #[test]
    fn bad_files_are_refused_naming_the_entry_and_the_field() {
        let s = space("1e-3:1", "3", "256");
        refused("[", &s, &["not valid JSON"]);
        refused(r#"{"lr": 0.1}"#, &s, &["JSON list", "not an object"]);
        refused("[]", &s, &["no trials"]);
        refused(r#"[{"lr": 0.1}, 3]"#, &s, &["entry 1", "not a number"]);
        refused(
            r#"[{"lr": 0.1}, {"lr": 0.1, "learning_rate": 1}]"#,
            &s,
            &[
                "entry 1",
                "unknown field `learning_rate`",
                "lr, weight_decay",
            ],
        );
        refused(r#"[{"lr": -1}]"#, &s, &["entry 0", "`lr` is -1", "> 0"]);
        refused(
            r#"[{"lr": 0.1}, {"lr": 0.1, "lr": 0.5}]"#,
            &s,
            &["\"lr\" is given twice", "line 1"],
        );
        refused(r#"[{"lr": 1e-50}]"#, &s, &["`lr`", "f32"]);
        refused(
            r#"[{"lr": "0.1"}]"#,
            &s,
            &["`lr` must be a number, not a string"],
        );
        refused(
            r#"[{"lr": 0.1, "momentum": 1}]"#,
            &s,
            &["`momentum` is 1", "[0, 1)"],
        );
        refused(
            r#"[{"lr": 0.1, "weight_decay": -0.1}]"#,
            &s,
            &["`weight_decay`", ">= 0"],
        );
        refused(
            r#"[{"lr": 0.1, "batch_size": 0}]"#,
            &s,
            &["`batch_size` is 0", "integer >= 1"],
        );
        refused(
            r#"[{"lr": 0.1, "epochs": 1.5}]"#,
            &s,
            &["`epochs` is 1.5", "integer >= 1"],
        );
        refused(
            r#"[{"lr": 0.1, "hidden": [0]}]"#,
            &s,
            &["`hidden` is [0]", "layer sizes >= 1"],
        );
        refused(r#"[{"lr": 0.1, "hidden": "256"}]"#, &s, &["`hidden`"]);
        // A missing field whose flag is a range or a list names the flag.
        refused(
            r#"[{"epochs": 1}]"#,
            &s,
            &["entry 0", "no `lr` field", "--lr is not one value"],
        );
        let several = space("0.1", "1,2", "128,256");
        refused(
            r#"[{"hidden": [8]}]"#,
            &several,
            &["no `epochs`", "--epochs"],
        );
        refused(r#"[{"epochs": 2}]"#, &several, &["no `hidden`", "--hidden"]);
    }
}
