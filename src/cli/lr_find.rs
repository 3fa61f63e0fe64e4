//! `wgtrain lr-find`: the learning-rate range test. The work is done by
//! [`wgtrain::tune::lr_find`]; this layer parses flags, loads data, builds the engine,
//! prints the suggestion and writes the curve.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use wgtrain::RunConfig;
use wgtrain::engine::RunData;
use wgtrain::optim::SgdConfig;
use wgtrain::output::OutputKind;
use wgtrain::tune::lr_find::{LrFindConfig, LrFindResult, Stop, lr_find};
use wgtrain::tune::plot;

use super::common::{
    DataArgs, DeviceArgs, HiddenSizes, check_outputs, hidden_sizes, load_data, non_negative_f64,
    normalization, positive_f64, positive_usize, unit_interval, with_subset,
};
use super::engines::Engines;

fn bar(len: u64, quiet: bool, what: &str) -> Result<ProgressBar> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} {{elapsed_precise}} eta {{eta}}"
        ))
        .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
        .progress_chars("=> "),
    );
    Ok(bar)
}

/// `wgtrain lr-find`: the learning-rate range test.
#[derive(Args, Debug, Clone)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Hidden layer sizes, comma-separated (as `train --hidden`).
    #[arg(long, value_parser = hidden_sizes, default_value = "256")]
    pub hidden: HiddenSizes,
    /// Samples per minibatch (DataLoader batch_size).
    #[arg(long, value_parser = positive_usize, default_value_t = 64)]
    pub batch_size: usize,
    /// L2 penalty added to the gradient (torch.optim.SGD weight_decay).
    #[arg(long, value_parser = non_negative_f64, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Momentum factor (torch.optim.SGD momentum: v = momentum * v + g; 0: plain SGD).
    #[arg(long, value_parser = non_negative_f64, default_value_t = 0.0)]
    pub momentum: f64,
    /// Nesterov momentum (torch.optim.SGD nesterov=True; needs --momentum > 0).
    #[arg(long)]
    pub nesterov: bool,
    /// Seed of the initialisation, the sample order and --train-subset.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Learning rate of the first step.
    #[arg(long, value_parser = positive_f64, default_value_t = 1e-5)]
    pub start_lr: f64,
    /// Learning rate of the last step.
    #[arg(long, value_parser = positive_f64, default_value_t = 10.0)]
    pub end_lr: f64,
    /// Steps (one minibatch each) from --start-lr to --end-lr, exponentially spaced.
    #[arg(long, value_parser = positive_usize, default_value_t = 100)]
    pub steps: usize,
    /// Beta of the loss's moving average (0: none).
    #[arg(long, value_parser = unit_interval, default_value_t = 0.98)]
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds this many times its minimum.
    #[arg(long, value_parser = positive_f64, default_value_t = 4.0)]
    pub diverge_factor: f64,
    /// Use a seeded subset of this many training samples.
    #[arg(long, value_parser = positive_usize)]
    pub train_subset: Option<usize>,
    /// Directory for lr_find.png, lr_find.svg, lr_find.csv and lr_find.json (created if
    /// missing; its parent must exist).
    #[arg(long, value_name = "DIR", default_value = "lr-find")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn describe_stop(r: &LrFindResult) -> String {
    match r.stop {
        Stop::Completed => format!("completed all {} steps", r.points.len()),
        Stop::Diverged { step, lr } => format!(
            "stopped at step {} (lr {lr:.2e}): the smoothed loss diverged",
            step + 1
        ),
        Stop::NonFinite { step, lr } => format!(
            "stopped at step {} (lr {lr:.2e}): the loss was not finite",
            step + 1
        ),
    }
}

/// Runs `wgtrain lr-find`.
pub fn lr_find_command(a: LrFindArgs) -> Result<()> {
    check_outputs([(Some(a.out.as_path()), OutputKind::Dir)])?;
    let cfg = LrFindConfig {
        start_lr: a.start_lr,
        end_lr: a.end_lr,
        steps: a.steps,
        smoothing: a.smoothing,
        diverge_factor: a.diverge_factor,
        chunk: 10,
    };
    cfg.validate()?;
    let run = RunConfig {
        hidden: a.hidden.0.clone(),
        batch_size: a.batch_size,
        sgd: SgdConfig {
            weight_decay: a.weight_decay,
            momentum: a.momentum,
            nesterov: a.nesterov,
            ..SgdConfig::default()
        },
        normalization: normalization(&a.data),
        seed: a.seed,
        ..RunConfig::default()
    };
    run.sgd.validate()?;
    let mnist = with_subset(load_data(&a.data, a.quiet)?, a.train_subset, a.seed)?;
    let mut engines = Engines::open(&a.device)?;
    let progress = bar(a.steps as u64, a.quiet, "lr-find")?;
    let result = engines.with(&run, RunData::from(&mnist), None, |engine| {
        note!(
            "lr-find: MLP {}, batch {}, lr {:.1e} to {:.1e} over {} steps; {}",
            engine.setup().shared().spec,
            a.batch_size,
            a.start_lr,
            a.end_lr,
            a.steps,
            engine.describe()
        );
        Ok(lr_find(engine, &cfg, &mut |s| {
            progress.set_position(s as u64)
        })?)
    })?;
    progress.finish_and_clear();
    say!("{}", describe_stop(&result));
    if let (Some(lr), Some(l)) = (result.min_loss_lr, result.min_loss) {
        say!(
            "minimum smoothed loss {l:.4} at lr {lr:.3e} (the average lags the loss: too high to train at); minimum / 10 = {:.3e}",
            lr / 10.0
        );
    }
    match result.steepest {
        Some(s) => say!("steepest descent of the smoothed loss at lr {s:.3e}"),
        None => say!("the smoothed loss never descends: no steepest point"),
    }
    match result.suggestion() {
        Some(s) => say!("suggested learning rate: {s:.3e}"),
        None => say!("no suggestion: the loss was not finite from the first step"),
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json = a.out.join("lr_find.json");
    let body = serde_json::json!({
        "suggestion": result.suggestion(),
        "suggestion_method": "steepest descent of the smoothed loss against log(lr); minimum-loss lr / 10 when the curve never descends",
        "result": &result,
    });
    std::fs::write(&json, serde_json::to_string_pretty(&body)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let csv_path = a.out.join("lr_find.csv");
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("writing {}", csv_path.display()))?;
    for p in &result.points {
        w.serialize(p)?;
    }
    w.flush()?;
    let mut written = vec![json, csv_path];
    if !result.points.is_empty() {
        written.extend(plot::lr_find_curve(&result, &a.out, "lr_find")?);
    }
    for p in written {
        note!("wrote {}", p.display());
    }
    Ok(())
}
