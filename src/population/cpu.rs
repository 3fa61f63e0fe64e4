//! `CpuPopulation`: the CPU path of population training. Each member is a
//! [`CpuEngine`] (its parameters, gradients, momentum and activations); a step runs every
//! training member's stages in turn on the same minibatch, so member k's arithmetic is that
//! of a single CPU run of its configuration, bit for bit. Members run in parallel (rayon):
//! at MNIST sizes one member's products leave cores idle. Frozen and diverged members are
//! skipped: on the CPU a pruned trial costs nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::config::RunConfig;
use crate::cpu_engine::CpuEngine;
use crate::engine::{Engine, EvalSet, Evaluation, RunData};
use crate::error::{Error, Result};
use crate::optim::SgdConfig;
use crate::step::{StepRecord, StepSums};

use super::{
    MEMBER_FIRST, MEMBER_FROZEN, MemberStep, PopulationEngine, PopulationSetup, check_member,
};

/// The CPU population engine. See the module docs.
pub struct CpuPopulation<'a> {
    setup: PopulationSetup,
    members: Vec<CpuEngine<'a>>,
}

impl<'a> CpuPopulation<'a> {
    /// Opens K CPU engines, one per configuration, on the same data.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`PopulationSetup::new`].
    pub fn new(configs: &[RunConfig], data: RunData<'a>) -> Result<CpuPopulation<'a>> {
        let setup = PopulationSetup::new(configs, data)?;
        let members = configs
            .iter()
            .map(|c| CpuEngine::new(c, data))
            .collect::<Result<Vec<_>>>()?;
        Ok(CpuPopulation { setup, members })
    }
}

impl PopulationEngine for CpuPopulation<'_> {
    fn setup(&self) -> &PopulationSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        format!(
            "{}, {} members",
            self.members[0].describe(),
            self.members.len()
        )
    }

    /// Checks `stop` before every step.
    fn train_epoch_until(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<StepSums>>> {
        let k = self.members.len();
        check_table(member_steps.len(), steps.len(), k)?;
        let mut sums: Vec<Vec<StepSums>> = vec![Vec::with_capacity(steps.len()); k];
        let mut diverged = vec![false; k];
        for (i, st) in steps.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                progress(i);
                return Ok(sums);
            }
            let row = &member_steps[i * k..(i + 1) * k];
            // Members in parallel: at MNIST sizes one member's SGEMMs leave cores idle.
            let step_sums: Vec<Result<StepSums>> = self
                .members
                .par_iter_mut()
                .zip(row.par_iter().zip(diverged.par_iter()))
                .map(|(engine, (ms, &dead))| {
                    if dead {
                        Ok([f32::NAN, 0.0])
                    } else if ms.flags & MEMBER_FROZEN != 0 {
                        Ok([0.0, 0.0])
                    } else {
                        let first = ms.flags & MEMBER_FIRST != 0;
                        engine.step(order, st.offset as usize, st.batch as usize, ms.lr, first)
                    }
                })
                .collect();
            for (m, s) in step_sums.into_iter().enumerate() {
                let s = s?;
                diverged[m] = !s[0].is_finite();
                sums[m].push(s);
            }
            if i % 16 == 15 {
                progress(i + 1);
            }
        }
        progress(steps.len());
        Ok(sums)
    }

    fn evaluate(&mut self, set: EvalSet) -> Result<Vec<Evaluation>> {
        self.members.iter_mut().map(|e| e.evaluate(set)).collect()
    }

    fn dispatches_per_step(&self) -> usize {
        self.members.len() * self.members[0].dispatches_per_step()
    }

    fn params(&mut self, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.members.len())?;
        self.members[member].params()
    }

    fn set_params(&mut self, member: usize, params: &[f32]) -> Result<()> {
        check_member(member, self.members.len())?;
        self.members[member].set_params(params)
    }

    fn copy_member(&mut self, from: usize, to: usize) -> Result<()> {
        check_member(from, self.members.len())?;
        check_member(to, self.members.len())?;
        let params = self.members[from].params()?;
        let velocity = self.members[from].velocity().to_vec();
        self.members[to].set_state(&params, &velocity);
        Ok(())
    }

    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()> {
        check_member(member, self.members.len())?;
        sgd.validate()?;
        self.members[member].set_sgd(sgd);
        self.setup.members[member].config.sgd = sgd.clone();
        Ok(())
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()> {
        let setup = self.setup.member_setup(member, cfg)?;
        self.members[member].restart(setup.clone());
        self.setup.members[member] = setup;
        Ok(())
    }
}

/// Checks that an epoch's member table is `[steps, K]`.
///
/// # Errors
/// [`Error::InvalidConfig`] naming both lengths.
pub fn check_table(len: usize, steps: usize, k: usize) -> Result<()> {
    if len == steps * k {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            name: "member steps",
            value: format!("{len} entries"),
            reason: format!("an epoch of {steps} steps for {k} members needs {steps} x {k}"),
        })
    }
}
