//! The clap value parsers of the flags: counts, rates and fractions with their ranges, the
//! `--hidden` sizes and the dataset names. Their messages are clap's "invalid value" reasons.

/// A dataset name of `--dataset` and `download` (mnist, fashion-mnist, ...).
pub(crate) fn dataset_name(s: &str) -> Result<wgtrain::data::DatasetName, String> {
    s.parse()
}

/// The most classes `--classes` accepts.
pub(crate) const MAX_CLASSES: usize = 1_000_000;

/// A class count of `--classes`: 2 to [`MAX_CLASSES`].
pub(crate) fn class_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0 | 1) => Err("must be at least 2 (a classifier needs two classes)".into()),
        // Past this the class names alone take gigabytes before any size check can run.
        Ok(v) if v > MAX_CLASSES => Err(format!("must be at most {MAX_CLASSES}")),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// A count of at least 1.
pub(crate) fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// Hidden layer sizes, parsed from `512,256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenSizes(pub Vec<usize>);

/// Hidden layer sizes: `512,256`, or `none` for no hidden layer; each size at least 1.
pub(crate) fn hidden_sizes(s: &str) -> Result<HiddenSizes, String> {
    if s.trim() == "none" {
        return Ok(HiddenSizes(vec![]));
    }
    if s.trim().is_empty() {
        return Err("empty: give sizes such as 256 or 512,256, or none for no hidden layer".into());
    }
    s.split(',')
        .map(|p| positive_usize(p.trim()).map_err(|e| format!("hidden size '{p}': {e}")))
        .collect::<Result<_, _>>()
        .map(HiddenSizes)
}

/// `parse` for a flag that takes one value in `train` but a list or a range in `sweep`
/// (`--lr`, `--weight-decay`, `--momentum`, `--batch-size`, `--epochs`): a value that
/// fails to parse and looks like a list or range (`0.1,0.2`, `1e-3:1`) gets a hint that
/// `wgtrain sweep` is the command that tries several.
fn one_value<T>(s: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    parse(s).map_err(|e| {
        if s.contains(',') || s.contains(':') {
            "takes one value; to try several, give the list or range to `wgtrain sweep` \
             (same flag), which trains one trial per value"
                .to_string()
        } else {
            e
        }
    })
}

/// [`positive_f64`] with [`one_value`]'s hint (`--lr`).
pub(crate) fn one_positive_f64(s: &str) -> Result<f64, String> {
    one_value(s, positive_f64)
}

/// [`non_negative_f64`] with [`one_value`]'s hint (`--weight-decay`, `--momentum`).
pub(crate) fn one_non_negative_f64(s: &str) -> Result<f64, String> {
    one_value(s, non_negative_f64)
}

/// [`positive_usize`] with [`one_value`]'s hint (`--batch-size`, `--epochs`).
pub(crate) fn one_positive_usize(s: &str) -> Result<usize, String> {
    one_value(s, positive_usize)
}

/// A finite number > 0 (a learning rate, a factor).
pub(crate) fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    // The kernels compute in f32: a value f32 rounds to 0 or infinity would train wrong.
    if v.is_finite() && v > 0.0 && (v as f32).is_finite() && v as f32 > 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number > 0 within f32's range (1e-38 to 3e38)".into())
    }
}

/// A finite number >= 0 (weight decay, momentum).
pub(crate) fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 && (v as f32).is_finite() && (v == 0.0 || v as f32 > 0.0) {
        Ok(v)
    } else {
        Err("must be a finite number >= 0 within f32's range (0, or 1e-38 to 3e38)".into())
    }
}

/// A fraction in [0, 1) (`--val-split`, `--dampening`, `--smoothing`).
pub(crate) fn unit_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be in [0, 1)".into())
    }
}
