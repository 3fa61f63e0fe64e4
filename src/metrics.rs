//! Per-class results of a classifier: predictions and confidences from logits, the
//! confusion matrix (rows = true class, columns = predicted class), per-class accuracy,
//! the most confidently misclassified samples, and their pictures ([`plot`]).
//!
//! Everything here works on host data: `[N, C]` logits from either engine
//! ([`crate::engine::Engine::logits`]) and the labels, so the GPU and CPU paths are
//! summarised by the same code and give the same numbers for the same logits.

pub mod plot;

use std::fmt::Write as _;

/// The display names of `classes` classes: `names` when it has one per class, else the
/// class indices `"0"`, `"1"`, ... (MNIST's digits).
pub fn class_names(names: Option<&[String]>, classes: usize) -> Vec<String> {
    match names {
        Some(n) if n.len() == classes => n.to_vec(),
        _ => (0..classes).map(|c| c.to_string()).collect(),
    }
}

/// The predicted class of one sample and how sure the model is of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// `argmax` of the logits; the first maximum on ties, as `torch.argmax` and the
    /// `softmax_cross_entropy` kernel's correct count.
    pub class: usize,
    /// `softmax(logits)[class]` in (0, 1], computed in f64 as
    /// `1 / Σ_j exp(logit_j - logit_class)`.
    pub confidence: f64,
}

/// Predictions of `[N, C]` row-major logits.
///
/// # Panics
/// When `classes` is 0 or `logits.len()` is not a multiple of it (a caller bug).
pub fn predict(logits: &[f32], classes: usize) -> Vec<Prediction> {
    assert!(
        classes > 0 && logits.len().is_multiple_of(classes),
        "logits of {} values are not [N, {classes}]",
        logits.len()
    );
    logits
        .chunks_exact(classes)
        .map(|row| {
            let mut class = 0;
            for (j, &v) in row.iter().enumerate().skip(1) {
                if v > row[class] {
                    class = j;
                }
            }
            let top = f64::from(row[class]);
            let sum: f64 = row.iter().map(|&v| (f64::from(v) - top).exp()).sum();
            Prediction {
                class,
                confidence: 1.0 / sum,
            }
        })
        .collect()
}

/// A confusion matrix: `count(t, p)` samples of true class `t` were predicted as `p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    /// `[C, C]` row-major: rows are true classes, columns predicted classes.
    counts: Vec<u64>,
}

impl Confusion {
    /// Counts the pairs `(labels[i], predicted[i])`.
    ///
    /// # Panics
    /// When the slices differ in length or a label or prediction is `>= classes` (the
    /// CLI checks labels against the model's outputs before evaluating).
    pub fn new(classes: usize, labels: &[u32], predicted: &[usize]) -> Confusion {
        assert_eq!(labels.len(), predicted.len(), "one prediction per label");
        let mut counts = vec![0u64; classes * classes];
        for (&t, &p) in labels.iter().zip(predicted) {
            let t = t as usize;
            assert!(
                t < classes && p < classes,
                "label {t} or prediction {p} outside {classes} classes"
            );
            counts[t * classes + p] += 1;
        }
        Confusion { classes, counts }
    }

    /// Number of classes C.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Samples of true class `t` predicted as `p`.
    pub fn count(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.classes + p]
    }

    /// Samples of true class `t` (the row sum).
    pub fn support(&self, t: usize) -> u64 {
        self.counts[t * self.classes..(t + 1) * self.classes]
            .iter()
            .sum()
    }

    /// All samples counted.
    pub fn samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Correctly classified samples (the diagonal's sum).
    pub fn correct(&self) -> u64 {
        (0..self.classes).map(|c| self.count(c, c)).sum()
    }

    /// Overall accuracy in [0, 1] (0 for no samples).
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.samples()).unwrap_or(0.0)
    }

    /// Per-class accuracy (recall): `count(c, c) / support(c)` in [0, 1]; `None` for a
    /// class with no samples.
    pub fn class_accuracy(&self, c: usize) -> Option<f64> {
        ratio(self.count(c, c), self.support(c))
    }

    /// The matrix as a text table: one row per true class (labelled with its name, and
    /// its index when the name is not the index), one column per predicted class
    /// (labelled with its index), then the row's sample count and per-class accuracy.
    ///
    /// # Panics
    /// When `names` does not have one name per class.
    pub fn table(&self, names: &[String]) -> String {
        assert_eq!(names.len(), self.classes, "one name per class");
        let c = self.classes;
        let label = |t: usize| {
            if names[t] == t.to_string() {
                names[t].clone()
            } else {
                format!("{t} {}", names[t])
            }
        };
        let label_w = (0..c)
            .map(|t| label(t).chars().count())
            .chain(["true\\pred".len(), "total".len()])
            .max()
            .unwrap_or(0);
        let column_total = |p: usize| -> u64 { (0..c).map(|t| self.count(t, p)).sum() };
        // Every value a column holds (its counts, its total, its header), so that no two
        // columns run together: a column total has more digits than any of its counts.
        let widest = (0..c)
            .flat_map(|p| (0..c).map(move |t| (t, p)))
            .map(|(t, p)| self.count(t, p))
            .chain((0..c).map(column_total))
            .map(|v| v.to_string().len())
            .chain([(c.max(1) - 1).to_string().len()])
            .max()
            .unwrap_or(1);
        let col_w = widest + 1;
        let samples_w = self.samples().to_string().len().max("samples".len()) + 2;
        let mut out = String::new();
        let _ = write!(out, "{:<label_w$}", "true\\pred");
        for p in 0..c {
            let _ = write!(out, "{p:>col_w$}");
        }
        let _ = writeln!(out, "{:>samples_w$}{:>10}", "samples", "accuracy");
        for t in 0..c {
            let _ = write!(out, "{:<label_w$}", label(t));
            for p in 0..c {
                let _ = write!(out, "{:>col_w$}", self.count(t, p));
            }
            let acc = self
                .class_accuracy(t)
                .map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
            let _ = writeln!(out, "{:>samples_w$}{acc:>10}", self.support(t));
        }
        let _ = write!(out, "{:<label_w$}", "total");
        for p in 0..c {
            let _ = write!(out, "{:>col_w$}", column_total(p));
        }
        let _ = writeln!(
            out,
            "{:>samples_w$}{:>10}",
            self.samples(),
            format!("{:.2}%", 100.0 * self.accuracy())
        );
        out
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// A misclassified sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mistake {
    /// Index of the sample in its set.
    pub index: usize,
    /// Its true class.
    pub label: usize,
    /// The class predicted, with its softmax probability.
    pub predicted: Prediction,
}

/// The `k` misclassified samples the model was most sure of: highest confidence first,
/// ties by sample index.
///
/// # Panics
/// When the slices differ in length.
pub fn most_confident_mistakes(
    labels: &[u32],
    predictions: &[Prediction],
    k: usize,
) -> Vec<Mistake> {
    assert_eq!(labels.len(), predictions.len(), "one prediction per label");
    let mut wrong: Vec<Mistake> = labels
        .iter()
        .zip(predictions)
        .enumerate()
        .filter(|(_, (l, p))| **l as usize != p.class)
        .map(|(index, (&l, &p))| Mistake {
            index,
            label: l as usize,
            predicted: p,
        })
        .collect();
    wrong.sort_by(|a, b| {
        b.predicted
            .confidence
            .total_cmp(&a.predicted.confidence)
            .then(a.index.cmp(&b.index))
    });
    wrong.truncate(k);
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_take_the_first_maximum_and_its_softmax() {
        let p = predict(&[1.0, 3.0, 3.0, 0.0, 0.0, 0.0], 3);
        assert_eq!(p[0].class, 1, "first maximum on a tie");
        // softmax([1, 3, 3])[1] = e^3 / (e + 2 e^3)
        let e = std::f64::consts::E;
        let want = e.powi(3) / (e + 2.0 * e.powi(3));
        assert!((p[0].confidence - want).abs() < 1e-12);
        assert_eq!(p[1].class, 0);
        assert!((p[1].confidence - 1.0 / 3.0).abs() < 1e-12);
        // Large logits do not overflow: softmax([1e30, 0])[0] = 1.
        assert_eq!(predict(&[1e30, 0.0], 2)[0].confidence, 1.0);
    }

    #[test]
    fn confusion_counts_rows_as_true_classes() {
        let labels = [0, 0, 1, 2, 2, 2];
        let predicted = [0, 1, 1, 2, 0, 2];
        let m = Confusion::new(4, &labels, &predicted);
        assert_eq!(m.count(0, 1), 1, "a 0 predicted as 1 is in row 0");
        assert_eq!(m.count(1, 0), 0);
        assert_eq!(m.count(2, 0), 1);
        assert_eq!((m.support(2), m.correct(), m.samples()), (3, 4, 6));
        assert_eq!(m.class_accuracy(0), Some(0.5));
        assert_eq!(m.class_accuracy(3), None, "no samples of class 3");
        assert!((m.accuracy() - 4.0 / 6.0).abs() < 1e-15);
        let names = class_names(None, 4);
        let table = m.table(&names);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(
            rows[0].split_whitespace().collect::<Vec<_>>(),
            ["true\\pred", "0", "1", "2", "3", "samples", "accuracy"]
        );
        assert_eq!(
            rows[3].split_whitespace().collect::<Vec<_>>(),
            ["2", "1", "0", "2", "0", "3", "66.67%"]
        );
        assert_eq!(
            rows[4].split_whitespace().collect::<Vec<_>>(),
            ["3", "0", "0", "0", "0", "0", "-"]
        );
        assert_eq!(
            rows[5].split_whitespace().collect::<Vec<_>>(),
            ["total", "2", "2", "2", "0", "6", "66.67%"]
        );
    }

    /// Regression (issue 26, item 6): column widths came from the largest cell, so a
    /// column total with more digits ran into its neighbour: on MNIST's 60,000 training
    /// samples a model predicting 1418 of one class and 1073 of the next printed
    /// `14181073`. Here every cell has 3 digits and the totals 4.
    #[test]
    fn confusion_total_row_keeps_its_columns_apart_when_totals_are_wider_than_cells() {
        // 2 classes; each true class has 500 samples predicted as 0 and 500 as 1, three
        // times over (3 true classes): cells are 500, column totals 1500.
        let mut labels = Vec::new();
        let mut predicted = Vec::new();
        for t in 0..3u32 {
            for p in 0..2usize {
                labels.extend(std::iter::repeat_n(t, 500));
                predicted.extend(std::iter::repeat_n(p, 500));
            }
        }
        let m = Confusion::new(3, &labels, &predicted);
        let table = m.table(&class_names(None, 3));
        let total = table.lines().last().unwrap();
        assert_eq!(
            total.split_whitespace().collect::<Vec<_>>(),
            ["total", "1500", "1500", "0", "3000", "33.33%"],
            "{table}"
        );
        // Every line is as wide as the header: the columns line up.
        let widths: Vec<usize> = table.lines().map(str::len).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
    }

    #[test]
    fn class_names_plug_in_when_given_one_per_class() {
        let names: Vec<String> = ["T-shirt/top", "Trouser"].map(String::from).to_vec();
        assert_eq!(class_names(Some(&names), 2), names);
        assert_eq!(class_names(Some(&names), 3), ["0", "1", "2"]);
        let m = Confusion::new(2, &[0, 1], &[0, 0]);
        let table = m.table(&names);
        assert!(
            table.lines().nth(1).unwrap().starts_with("0 T-shirt/top"),
            "{table}"
        );
    }

    #[test]
    fn most_confident_mistakes_come_first_ties_by_index() {
        let labels = [0, 1, 1, 0, 2];
        let p = |class, confidence| Prediction { class, confidence };
        let preds = [p(0, 0.9), p(0, 0.6), p(2, 0.8), p(1, 0.6), p(2, 0.99)];
        let m = most_confident_mistakes(&labels, &preds, 2);
        assert_eq!(m.iter().map(|m| m.index).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(most_confident_mistakes(&labels, &preds, 10).len(), 3);
    }
}
