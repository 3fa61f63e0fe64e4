//! Floats that may be infinite or NaN, in JSON (which has no literal for them, and which
//! `serde_json` would write as `null` and then refuse to read back): a finite value is a
//! JSON number (exact: `serde_json` is built with `float_roundtrip`), any other the string
//! `"inf"`, `"-inf"` or `"NaN"`. Use it with `#[serde(with = "crate::json_float")]` on an
//! `f64` field, or `crate::json_float::option` on an `Option<f64>`; a training state
//! ([`crate::train::TrainerState`]) holds such values (a best loss of `+inf` before the
//! first evaluation).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The JSON form of one value: a number, or one of the three strings.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Number(f64),
    Text(String),
}

fn to_repr(v: f64) -> Repr {
    if v.is_finite() {
        Repr::Number(v)
    } else if v.is_nan() {
        Repr::Text("NaN".into())
    } else if v > 0.0 {
        Repr::Text("inf".into())
    } else {
        Repr::Text("-inf".into())
    }
}

fn from_repr<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
    match r {
        Repr::Number(v) => Ok(v),
        Repr::Text(t) => match t.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => Err(E::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"NaN\", found \"{t}\""
            ))),
        },
    }
}

/// Serialises `v` as a number, or as `"inf"`, `"-inf"` or `"NaN"`.
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    to_repr(*v).serialize(s)
}

/// Reads what [`serialize`] writes.
///
/// # Errors
/// A string other than the three names.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    from_repr(Repr::deserialize(d)?)
}

/// The same for an `Option<f64>` (`None` is `null`).
pub mod option {
    use super::{Repr, from_repr, to_repr};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialises `None` as `null`, a value as [`super::serialize`] does.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(to_repr).serialize(s)
    }

    /// Reads what [`serialize`] writes.
    ///
    /// # Errors
    /// A string other than the three names.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<Repr>::deserialize(d)?
            .map(from_repr::<D::Error>)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug)]
    struct Both {
        #[serde(with = "super")]
        a: f64,
        #[serde(with = "super::option")]
        b: Option<f64>,
    }

    /// Every float comes back with its bits (NaN as a NaN), and infinities are strings.
    #[test]
    fn non_finite_values_are_strings_and_every_value_round_trips() {
        let values = [
            0.1,
            -0.0,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for v in values {
            let text = serde_json::to_string(&Both { a: v, b: Some(v) }).unwrap();
            let back: Both = serde_json::from_str(&text).unwrap();
            let same = |x: f64| x.to_bits() == v.to_bits() || (v.is_nan() && x.is_nan());
            assert!(same(back.a), "{v:e} -> {text}");
            assert!(back.b.is_some_and(same), "{v:e} -> {text}");
        }
        let text = serde_json::to_string(&Both {
            a: f64::INFINITY,
            b: None,
        })
        .unwrap();
        assert_eq!(text, r#"{"a":"inf","b":null}"#);
        let e = serde_json::from_str::<Both>(r#"{"a":"infinity","b":null}"#).unwrap_err();
        assert!(
            e.to_string().contains("\"inf\", \"-inf\" or \"NaN\""),
            "{e}"
        );
    }
}
