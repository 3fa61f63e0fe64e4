//! The `wgtrain` command line: the clap parser ([`Cli`], one [`Command`] per subcommand),
//! the dispatch to the subcommands and the one exit-code rule: bad arguments and bad input
//! files (a dataset, a checkpoint, a metrics file, `MNIST_DIR`), all found before the work
//! starts, exit with code 2 and a one-line error; failures during the work (a GPU error, a
//! diverged run, a failed write or download) exit with code 1.
//!
//! Imports point one way: this file imports the subcommands; each subcommand (`train`,
//! `eval`, `devices`, `download`, `lr_find`, `sweep`, `plot`, `profile`, `bench`) owns its
//! `Args` and its command function and imports only the shared modules `common` (argument
//! groups and helpers), `engines` (device flags to an engine) and `interrupt` (Ctrl-C and
//! SIGTERM), and print through `console` (a closed stdout stops the printing, never the
//! run); `train` also uses `profile`'s `--profile` helpers, and `sweep_pbt` (`sweep --search
//! pbt`) uses `sweep`'s flags. The shared modules import no subcommand.

#[macro_use]
mod console;
mod bench;
mod bench_population;
mod common;
mod devices;
mod download;
mod engines;
mod eval;
mod interrupt;
mod lr_find;
mod plot;
mod profile;
mod save;
mod sweep;
mod sweep_configs;
mod sweep_pbt;
mod train;
mod train_state;

use anyhow::Result;
use clap::{Parser, Subcommand};

use common::BadInput;

/// Train neural networks with WGSL compute shaders on any GPU (wgpu), or on the CPU.
#[derive(Parser, Debug)]
#[command(name = "wgtrain", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MLP on MNIST (or any directory of IDX files).
    Train(train::TrainArgs),
    /// Evaluate a saved model on the test set.
    Eval(eval::EvalArgs),
    /// List every adapter with its type and the limits that matter here.
    Devices(devices::DevicesArgs),
    /// Download a dataset and verify its checksums.
    Download(download::DownloadArgs),
    /// Learning-rate range test: ramp the lr exponentially, plot the loss, suggest an lr.
    LrFind(lr_find::LrFindArgs),
    /// Hyperparameter sweep (grid or random) on a validation split, with median pruning.
    Sweep(sweep::SweepArgs),
    /// Learning curves from a --metrics file, or a sweep's pictures from its directory.
    Plot(plot::PlotArgs),
    /// Time every kernel of N training steps: per-kernel table, optional Chrome trace.
    Profile(profile::ProfileArgs),
    /// Time one epoch per batch size on the GPU and CPU paths side by side.
    Bench(bench::BenchArgs),
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            if let Some((code, line)) = interrupt::report(&e) {
                note!("error: {line}");
                return code;
            }
            note!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// Runs the subcommand the arguments chose.
fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train::train_command(a),
        Command::Eval(a) => eval::eval_command(a),
        Command::Devices(a) => devices::devices_command(a),
        Command::Profile(a) => profile::profile_command(a),
        Command::Bench(a) => bench::bench_command(a),
        Command::LrFind(a) => lr_find::lr_find_command(a),
        Command::Sweep(a) if a.search == sweep::SearchChoice::Pbt => {
            sweep::tidy_new_out(a, sweep_pbt::pbt_command)
        }
        Command::Sweep(a) => sweep::tidy_new_out(a, sweep::sweep_command),
        Command::Plot(a) => plot::plot_command(a),
        Command::Download(a) => download::download_command(a),
    }
}

/// The one exit-code rule for an error: 2 for bad arguments and bad inputs found before
/// the work starts ([`BadInput`], and the library errors [`is_usage_error`] lists), 1 for
/// failures during the work, 128 + the signal when a signal stopped it
/// ([`wgtrain::Error::Interrupted`]: 130 for Ctrl-C, 143 for SIGTERM; see
/// [`interrupt::report`]).
fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<wgtrain::Error>()
        .is_some_and(|e| matches!(e, wgtrain::Error::Interrupted { .. }))
    {
        return interrupt::report(e).map_or(interrupt::EXIT_INTERRUPTED, |(code, _)| code);
    }
    let usage = e.downcast_ref::<BadInput>().is_some()
        || e.downcast_ref::<wgtrain::Error>()
            .is_some_and(is_usage_error);
    if usage { 2 } else { 1 }
}

/// Errors that mean "the arguments were wrong", which exit with code 2 like clap's own.
fn is_usage_error(e: &wgtrain::Error) -> bool {
    match e {
        // A size the arguments chose (batch, hidden sizes) that this adapter cannot hold.
        // (An output path is checked before the work by `common::check_outputs`, which
        // marks its refusal as `BadInput`; an `Output` error from a write during the work,
        // a full disk say, is a failure: exit 1.)
        wgtrain::Error::InvalidConfig { .. }
        // Another run writes the same output: found before any work.
        | wgtrain::Error::Locked { .. }
        | wgtrain::Error::LockedInside { .. }
        | wgtrain::Error::LockedWithin { .. }
        | wgtrain::Error::LimitExceeded { .. } => true,
        // A name or backend the user chose that matches nothing.
        wgtrain::Error::NoAdapter {
            filter,
            explicit_backend,
            ..
        } => !filter.is_empty() || *explicit_backend,
        // Labels that do not fit the class count, found before any work.
        wgtrain::Error::Data(d) => d.is_bad_input(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use clap::CommandFactory;
    use wgtrain::output::OutputKind;

    use super::common::{bad_input, check_outputs};
    use super::{Cli, exit_code};

    /// The same error kind exits 2 when found before the work and 1 during it: an output
    /// path refused by the up-front check, against a write that fails after training.
    #[test]
    fn an_output_error_exits_2_before_the_work_and_1_during_it() {
        let missing = Path::new("/nonexistent/dir/m.jsonl");
        let before = check_outputs([(Some(missing), OutputKind::File)]).unwrap_err();
        assert_eq!(exit_code(&before), 2, "{before:#}");
        let during: anyhow::Error = wgtrain::Error::Output {
            path: PathBuf::from("m.safetensors"),
            reason: "write failed: No space left on device".into(),
        }
        .into();
        assert_eq!(exit_code(&during), 1);
        let diverged: anyhow::Error = wgtrain::Error::NonFiniteLoss {
            epoch: 1,
            step: 2,
            last_finite: "none".into(),
        }
        .into();
        assert_eq!(exit_code(&diverged), 1);
        let malformed = bad_input(wgtrain::Error::Format {
            path: PathBuf::from("m.jsonl"),
            reason: "line 1: not an epoch record".into(),
        })
        .context("reading the metrics file");
        assert_eq!(exit_code(&malformed), 2, "context keeps the mark");
        let usage: anyhow::Error = wgtrain::Error::InvalidConfig {
            name: "gamma",
            value: "0.5".into(),
            reason: "applies to --lr-schedule step only".into(),
        }
        .into();
        assert_eq!(exit_code(&usage), 2);
    }

    /// Every flag and positional of `cmd` and of its subcommands, as (command path, argument).
    fn arguments(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            out.push((path.to_owned(), a.clone()));
        }
        for sub in cmd.get_subcommands() {
            arguments(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    /// Regression (issue 10, item 14): `--epochs`, `--batch-size`, `--momentum`,
    /// `--dampening`, `--nesterov`, `--eta-min`, `--warmup-start-factor`, `--pct-start`,
    /// `--plateau-cooldown` and `--min-lr` had no help text. Every argument of every
    /// subcommand now says what it does.
    #[test]
    fn every_flag_of_every_subcommand_has_a_help_text() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut args = Vec::new();
        arguments(&cmd, "wgtrain", &mut args);
        assert!(args.len() > 100, "only {} arguments found", args.len());
        let missing: Vec<String> = args
            .iter()
            .filter(|(_, a)| a.get_help().is_none_or(|h| h.to_string().trim().is_empty()))
            .map(|(path, a)| format!("{path} {}", a.get_id()))
            .collect();
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    /// The flags with a PyTorch counterpart name it, and those with a unit state it.
    #[test]
    fn flag_help_names_the_pytorch_counterpart_and_the_unit() {
        let cmd = Cli::command();
        let train = cmd.find_subcommand("train").expect("train");
        let cases = [
            ("epochs", "full passes over the training set"),
            ("batch_size", "DataLoader batch_size"),
            ("momentum", "torch.optim.SGD momentum"),
            ("dampening", "torch.optim.SGD dampening"),
            ("nesterov", "torch.optim.SGD nesterov=True"),
            ("eta_min", "CosineAnnealingLR eta_min"),
            ("warmup_start_factor", "LinearLR start_factor"),
            ("pct_start", "OneCycleLR pct_start"),
            ("plateau_cooldown", "ReduceLROnPlateau cooldown: epochs"),
            ("min_lr", "ReduceLROnPlateau min_lr"),
            ("step_size", "StepLR step_size: epochs"),
            ("t_max", "T_max in epochs"),
            ("anneal_strategy", "OneCycleLR anneal_strategy"),
            ("three_phase", "OneCycleLR three_phase=True"),
            ("div_factor", "OneCycleLR div_factor"),
            ("final_div_factor", "OneCycleLR final_div_factor"),
            ("plateau_mode", "ReduceLROnPlateau mode"),
            ("plateau_threshold", "ReduceLROnPlateau threshold"),
            ("plateau_threshold_mode", "ReduceLROnPlateau threshold_mode"),
            ("plateau_eps", "ReduceLROnPlateau eps"),
        ];
        for (id, want) in cases {
            let arg = train
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("train has no {id}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains(want), "--{id}: {help:?} lacks {want:?}");
        }
    }
}
