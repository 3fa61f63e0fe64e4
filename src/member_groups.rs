//! A population split into groups of members, each group its own engine: how a population
//! larger than one storage binding trains on a GPU (issue 27 item 4). The GPU engine keeps
//! each tensor of all K members as one stacked buffer bound whole, so K is bounded by the
//! adapter's `max_storage_buffer_binding_size` (128 MiB on lavapipe and in WebGPU's
//! defaults): 256 members of 784-256-10 need 417 MB of weights and momentum.
//! [`crate::device::open`] splits such a population into [`MemberGroups`] of engines that
//! each fit ([`members_per_binding`]); their dispatches run one group after the other, over
//! the same minibatches, so member k trains exactly as in an unsplit population (and as its
//! single run): each group is an ordinary engine.
//!
//! Each group holds its own copy of the data set on the device (47 MB for MNIST): the cost
//! of reusing the engine unchanged, small next to the members' buffers of a population this
//! large.

use std::sync::atomic::AtomicBool;

use crate::config::RunConfig;
use crate::engine::{Engine, EvalSet, Evaluation, PopulationSetup, check_member, check_table};
use crate::error::{Error, Result};
use crate::model::MlpSpec;
use crate::optim::SgdConfig;
use crate::step::{MemberStep, StepRecord, StepSums};

/// Steps each group runs before the next group takes its turn: a Ctrl-C is honoured at
/// these boundaries (every group then has run the same steps), and each group's sums are
/// read back once per chunk.
pub const CHUNK_STEPS: usize = 128;

/// Bytes of one member's largest stacked tensor, with activation buffers of `rows` rows
/// ([`crate::engine::activation_rows`]): its momentum with its gradient sum (`2 P` f32 of
/// the padded layout, one buffer on the GPU: twice its parameters or gradients) or its
/// widest activation `[rows, O]`. A GPU population keeps each tensor as one buffer of K
/// members, bound whole, so K times this must fit one storage binding.
pub fn member_largest_tensor_bytes(spec: &MlpSpec, rows: usize) -> u64 {
    let widest = spec.sizes[1..].iter().copied().max().unwrap_or(0) as u64;
    4 * (2 * spec.layout().len as u64).max(rows as u64 * widest)
}

/// How many members' stacked tensors fit one binding of `binding_bytes`
/// ([`member_largest_tensor_bytes`] each), at least 1 (a member that does not fit alone is
/// refused by the engine with the limit named).
pub fn members_per_binding(spec: &MlpSpec, rows: usize, binding_bytes: u64) -> usize {
    let per = binding_bytes / member_largest_tensor_bytes(spec, rows).max(1);
    usize::try_from(per).unwrap_or(usize::MAX).max(1)
}

/// Engines for consecutive groups of a population's members, driven as one engine of K =
/// the sum of their members. Member indices are the population's: member k lives in the
/// group whose range holds k.
pub struct MemberGroups<'a> {
    groups: Vec<Box<dyn Engine + 'a>>,
    /// First member of each group, and K at the end.
    starts: Vec<usize>,
    setup: PopulationSetup,
}

impl<'a> MemberGroups<'a> {
    /// Joins `groups` (their members in order: group 0's first).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no groups, or groups of different micro-batches
    /// ([`PopulationSetup::micro_batch`]).
    pub fn new(groups: Vec<Box<dyn Engine + 'a>>) -> Result<MemberGroups<'a>> {
        if groups.is_empty() {
            return Err(Error::InvalidConfig {
                name: "population",
                value: "0 groups".into(),
                reason: "give at least one group of members".into(),
            });
        }
        // Every group steps through the population's micro-steps, which its buffers must
        // be sized for: the groups share one micro-batch.
        let micro = groups[0].setup().micro_batch();
        if let Some(g) = groups.iter().find(|g| g.setup().micro_batch() != micro) {
            return Err(Error::InvalidConfig {
                name: "population",
                value: format!(
                    "groups with smallest minibatch sizes {micro} and {}",
                    g.setup().micro_batch()
                ),
                reason: "a population split across storage bindings needs the smallest \
                         minibatch size in every group: train fewer members, or the members \
                         of each minibatch size as their own population"
                    .into(),
            });
        }
        let mut starts = vec![0];
        let mut members = Vec::new();
        for g in &groups {
            members.extend(g.setup().members.iter().cloned());
            starts.push(members.len());
        }
        Ok(MemberGroups {
            groups,
            starts,
            setup: PopulationSetup::from_parts(members, micro),
        })
    }

    /// Members per group, in order.
    pub fn group_sizes(&self) -> Vec<usize> {
        self.starts.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// The group holding `member` and its index there.
    fn locate(&self, member: usize) -> Result<(usize, usize)> {
        check_member(member, self.setup.len())?;
        let g = self.starts.partition_point(|&s| s <= member) - 1;
        Ok((g, member - self.starts[g]))
    }

    /// Refreshes the population's record of `member` after its group changed it.
    fn sync_setup(&mut self, member: usize) -> Result<()> {
        let (g, local) = self.locate(member)?;
        self.setup.members[member] = self.groups[g].setup().members[local].clone();
        Ok(())
    }
}

impl Engine for MemberGroups<'_> {
    fn setup(&self) -> &PopulationSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        let sizes = self.group_sizes();
        format!(
            "{} in {} groups of at most {} members (one storage binding each)",
            self.groups[0].describe(),
            sizes.len(),
            sizes.iter().max().copied().unwrap_or(0)
        )
    }

    /// Runs the epoch in chunks of [`CHUNK_STEPS`]: in each chunk group 0 runs first and
    /// alone watches `stop`; the other groups then run exactly the steps it ran, so every
    /// member has run the same steps when the epoch ends or stops.
    fn train_epoch(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<StepSums>>> {
        let k = self.setup.len();
        check_table(member_steps.len(), steps.len(), k)?;
        let never = AtomicBool::new(false);
        let groups = self.groups.len();
        let mut sums: Vec<Vec<StepSums>> = vec![Vec::with_capacity(steps.len()); k];
        let mut done = 0;
        while done < steps.len() {
            let planned = CHUNK_STEPS.min(steps.len() - done);
            // Each call is an epoch of its own to the group: records indexed from 0.
            let mut chunk: Vec<StepRecord> = steps[done..done + planned].to_vec();
            for (i, r) in chunk.iter_mut().enumerate() {
                r.index = i as u32;
            }
            let mut ran = planned;
            for (g, engine) in self.groups.iter_mut().enumerate() {
                let (first, last) = (self.starts[g], self.starts[g + 1]);
                let table: Vec<MemberStep> = (done..done + ran)
                    .flat_map(|s| member_steps[s * k + first..s * k + last].iter().copied())
                    .collect();
                let mut report = |n: usize| progress(done + (g * planned + n) / groups);
                let flag = if g == 0 { stop } else { &never };
                let out = engine.train_epoch(order, &chunk[..ran], &table, &mut report, flag)?;
                if g == 0 {
                    ran = out.first().map_or(0, Vec::len);
                }
                for (m, s) in out.into_iter().enumerate() {
                    sums[first + m].extend(s);
                }
            }
            done += ran;
            progress(done);
            if ran < planned {
                break;
            }
        }
        Ok(sums)
    }

    fn evaluate(&mut self, set: EvalSet) -> Result<Vec<Evaluation>> {
        let mut all = Vec::with_capacity(self.setup.len());
        for g in &mut self.groups {
            all.extend(g.evaluate(set)?);
        }
        Ok(all)
    }

    fn logits(&mut self, member: usize, set: EvalSet) -> Result<Vec<f32>> {
        let (g, local) = self.locate(member)?;
        self.groups[g].logits(local, set)
    }

    fn dispatches_per_step(&self) -> usize {
        self.groups.iter().map(|g| g.dispatches_per_step()).sum()
    }

    fn params(&mut self, member: usize) -> Result<Vec<f32>> {
        let (g, local) = self.locate(member)?;
        self.groups[g].params(local)
    }

    fn momentum(&mut self, member: usize) -> Result<Vec<f32>> {
        let (g, local) = self.locate(member)?;
        self.groups[g].momentum(local)
    }

    fn set_state(&mut self, member: usize, params: &[f32], momentum: Option<&[f32]>) -> Result<()> {
        let (g, local) = self.locate(member)?;
        self.groups[g].set_state(local, params, momentum)
    }

    /// Within a group on the device; across groups through the host (parameters and
    /// momentum read back and written).
    fn copy_member(&mut self, from: usize, to: usize) -> Result<()> {
        let (gf, lf) = self.locate(from)?;
        let (gt, lt) = self.locate(to)?;
        if gf == gt {
            return self.groups[gf].copy_member(lf, lt);
        }
        let params = self.groups[gf].params(lf)?;
        let momentum = self.groups[gf].momentum(lf)?;
        self.groups[gt].set_state(lt, &params, Some(&momentum))
    }

    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()> {
        let (g, local) = self.locate(member)?;
        self.groups[g].set_sgd(local, sgd)?;
        self.sync_setup(member)
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()> {
        let (g, local) = self.locate(member)?;
        // Checked against member 0 of the population, not only of the group.
        self.setup.member_setup(member, cfg)?;
        self.groups[g].replace_member(local, cfg)?;
        self.sync_setup(member)
    }
}
