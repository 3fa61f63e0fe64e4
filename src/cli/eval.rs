//! `wgtrain eval`: a saved model on the test set, with the confusion matrix (`--confusion`)
//! and its pictures (`--plot`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use wgtrain::RunConfig;
use wgtrain::checkpoint;
use wgtrain::data::Mnist;
use wgtrain::engine::{EvalSet, RunData};
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::output::OutputKind;

use super::common::{
    DataArgs, DeviceArgs, bad_input, check_outputs, dataset_normalization, load_data,
    positive_usize, usage,
};
use super::engines::Engines;

/// `wgtrain eval`: the flags.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A checkpoint written by `wgtrain train --save`.
    #[arg(long, value_name = "FILE.safetensors")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Test samples per evaluation minibatch (only speed and memory depend on it).
    #[arg(long, value_parser = positive_usize, default_value_t = 1000)]
    pub batch_size: usize,
    /// Print the confusion matrix (rows: true class, columns: predicted class) with each
    /// class's sample count and accuracy.
    #[arg(long)]
    pub confusion: bool,
    /// Draw the confusion matrix as a heat map (confusion.png and .svg) and the most
    /// confidently misclassified test images (mistakes.png and .svg) in this directory.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Images in mistakes.png (the most confident errors first, 8 per row).
    #[arg(long, value_parser = positive_usize, default_value_t = 32, requires = "plot")]
    pub mistakes: usize,
}

/// Runs `wgtrain eval`.
pub fn eval_command(a: EvalArgs) -> Result<()> {
    check_outputs([(a.plot.as_deref(), OutputKind::Dir)])?;
    // The header first: a file claiming a huge tensor, or another model than the data's,
    // is refused before its tensors are read.
    let ck = checkpoint::read_header(&a.model)
        .map_err(|e| bad_input(e).context("reading the model (--model)"))?;
    let mnist = load_data(&a.data, false)?;
    if ck.spec.inputs() != mnist.test.features() {
        return Err(usage(
            "model",
            a.model.display(),
            format!(
                "expects {} inputs but the test images have {} ({}x{}); give the data it was trained on",
                ck.spec.inputs(),
                mnist.test.features(),
                mnist.test.rows,
                mnist.test.cols
            ),
        ));
    }
    check_model_classes(&a.model, ck.spec.classes(), &mnist, a.data.classes)?;
    let norm = match (a.data.normalize, ck.normalization) {
        (true, Some(n)) if n == Normalization::UNIT => {
            return Err(usage(
                "normalize",
                "true",
                "the model takes pixels in [0, 1] (trained without --normalize, or saved with it folded into the first layer by --fold-normalize); drop --normalize",
            ));
        }
        (true, Some(n)) if n != dataset_normalization(&a.data) => {
            return Err(usage(
                "normalize",
                "true",
                format!(
                    "the model was trained on inputs normalised with mean {} and std {}; drop --normalize",
                    n.mean, n.std
                ),
            ));
        }
        (true, _) => dataset_normalization(&a.data),
        (false, n) => n.unwrap_or(Normalization::UNIT),
    };
    let params = checkpoint::load(&a.model)
        .map_err(|e| bad_input(e).context("reading the model (--model)"))?
        .params;
    let cfg = RunConfig {
        hidden: ck.spec.hidden().to_vec(),
        batch_size: a.batch_size.min(mnist.train.len()),
        normalization: norm,
        ..RunConfig::default()
    };
    let data = RunData {
        classes: ck.spec.classes(),
        ..RunData::from(&mnist)
    };
    let per_class = a.confusion || a.plot.is_some();
    let mut engines = Engines::open(&a.device)?;
    let (eval, logits) = engines.with(&cfg, data, Some(&params), |engine| {
        let eval = engine.evaluate(EvalSet::Test)?.remove(0);
        let logits = if per_class {
            engine.logits(0, EvalSet::Test)?
        } else {
            Vec::new()
        };
        Ok((eval, logits))
    })?;
    say!(
        "{}: MLP {} on {} test samples: loss {:.4}, accuracy {:.2}%",
        a.model.display(),
        ck.spec,
        eval.samples,
        eval.loss,
        100.0 * eval.accuracy
    );
    if per_class {
        per_class_results(&a, &ck.spec, &mnist, &logits)?;
    }
    Ok(())
}

/// The class names to show: the dataset's when it has them, else the class indices.
fn dataset_class_names(data: &Mnist, classes: usize) -> Vec<String> {
    // The dataset's names (`--dataset`), else the class indices.
    wgtrain::metrics::class_names(Some(&data.class_names), classes)
}

/// `eval --confusion` and `eval --plot`: the confusion matrix of the test set from the
/// engine's logits, printed and drawn, and the most confidently misclassified images.
fn per_class_results(a: &EvalArgs, spec: &MlpSpec, data: &Mnist, logits: &[f32]) -> Result<()> {
    use wgtrain::metrics::{self, Confusion};
    let classes = spec.classes();
    let predictions = metrics::predict(logits, classes);
    let predicted: Vec<usize> = predictions.iter().map(|p| p.class).collect();
    let confusion = Confusion::new(classes, &data.test.labels, &predicted);
    let names = dataset_class_names(data, classes);
    if a.confusion {
        say!(
            "confusion matrix of the {} test samples (rows: true class, columns: predicted class; accuracy per true class):",
            confusion.samples()
        );
        say_raw!("{}", confusion.table(&names));
    }
    if let Some(dir) = &a.plot {
        // Checked before the work; created here (its last component only).
        wgtrain::output::ensure_writable_dir(dir)?;
        let model = a.model.file_name().map_or_else(
            || a.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let title = format!("Confusion matrix: MLP {spec} ({model}), test set");
        let mut written =
            metrics::plot::confusion_heatmap(&confusion, &names, &title, dir, "confusion")?;
        let mistakes =
            metrics::most_confident_mistakes(&data.test.labels, &predictions, a.mistakes);
        let errors = confusion.samples() - confusion.correct();
        let title = format!(
            "The {} most confident of {errors} misclassified test images: MLP {spec} ({model})",
            mistakes.len()
        );
        written.extend(metrics::plot::mistakes_grid(
            &mistakes, &data.test, &names, &title, dir, "mistakes",
        )?);
        for p in written {
            note!("wrote {}", p.display());
        }
    }
    Ok(())
}

/// Refuses a checkpoint whose output count differs from the data's class count: its
/// accuracy would be silently meaningless (a 20-output model on 10-class MNIST).
fn check_model_classes(
    model: &std::path::Path,
    outputs: usize,
    mnist: &Mnist,
    given: Option<usize>,
) -> Result<()> {
    if outputs == mnist.classes {
        return Ok(());
    }
    let source = match given {
        Some(_) => "given with --classes",
        None => "the largest training label + 1",
    };
    Err(usage(
        "model",
        model.display(),
        format!(
            "has {outputs} outputs but the data in {} has {} classes ({source}); evaluate it \
             on the data it was trained on, or pass --classes {outputs} if the data has \
             {outputs} classes",
            mnist.dir.display(),
            mnist.classes
        ),
    ))
}
