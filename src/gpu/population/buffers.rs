//! Every buffer of a GPU population, allocated once: the datasets and sample orders
//! (shared, as a single run's), the members' parameters, gradients and momentum stacked
//! `[K, P]` (P, the flat layout's length, is a multiple of 64 floats), the minibatch X and
//! labels (shared: one gather per step), every other activation `[K, rows, O]` per member
//! (each member's block padded to whole vec4s), the metrics `[K, M]` (each member's status
//! header and per-step sums), the SGD table (no-decay ranges, per-member settings, the
//! epoch's [`crate::population::MemberStep`]s) and the step records.

use crate::engine::{EVAL_BATCH, RunData, RunSetup};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::engine::buffers::{DeviceDataset, f32_buffer, index_buffer, upload_dataset};
use crate::gpu::kernels::STEP_STRIDE;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::model::ParamLayout;

/// A per-member tensor: one buffer of `[K, stride]` floats.
pub(super) struct Stacked {
    pub buffer: wgpu::Buffer,
    /// Floats between consecutive members (a multiple of 4).
    pub stride: usize,
}

impl Stacked {
    fn new(gpu: &Gpu, label: &str, members: usize, per_member: usize) -> Result<Stacked> {
        let stride = per_member.next_multiple_of(4);
        Ok(Stacked {
            buffer: f32_buffer(gpu, label, members * stride)?,
            stride,
        })
    }
}

/// Activations for `rows` rows per member (the larger of the training and evaluation
/// minibatches).
pub(super) struct Activations {
    /// `[rows, I]` minibatch inputs, shared by the members.
    pub x: wgpu::Buffer,
    /// `[rows]` minibatch labels, shared.
    pub y: wgpu::Buffer,
    /// `hidden[l]`: `[K, rows, O_l]`, output of layer l for l < L - 1.
    pub hidden: Vec<Stacked>,
    /// `[K, rows, C]`.
    pub logits: Stacked,
    /// `[K, rows, C]`.
    pub dlogits: Stacked,
    /// `dhidden[l]`: gradient with respect to `hidden[l]`.
    pub dhidden: Vec<Stacked>,
    /// `[K, rows, 2]`: per-row loss and correct flag.
    pub rows: Stacked,
}

/// The buffers of one population.
pub(super) struct PopBuffers {
    pub layout: ParamLayout,
    pub members: usize,
    pub train: DeviceDataset,
    pub test: DeviceDataset,
    /// `[K, P]` parameters, gradients and momentum.
    pub params: Stacked,
    pub grads: Stacked,
    pub velocity: Stacked,
    pub order: wgpu::Buffer,
    pub validation_order: wgpu::Buffer,
    pub test_order: wgpu::Buffer,
    pub act: Activations,
    pub dummy: wgpu::Buffer,
    /// u32 words: the no-decay ranges (every bias, `[start, end)` pairs), then 8 words of
    /// settings per member from [`PopBuffers::hyper_offset`], then the epoch's
    /// `[steps, K]` member steps (2 words each) from [`PopBuffers::steps_offset`].
    pub table: wgpu::Buffer,
    /// Number of no-decay ranges at the head of `table`.
    pub ranges: usize,
    pub hyper_offset: usize,
    pub steps_offset: usize,
    /// `[K, METRICS_HEADER + steps·2]` (stride padded): per member a status header, then
    /// per-step sums.
    pub train_metrics: Stacked,
    pub steps: wgpu::Buffer,
    /// `[P]`: a member's parameters or momentum on their way to another member.
    pub scratch: wgpu::Buffer,
    pub max_train_steps: usize,
    pub eval_rows: usize,
}

impl PopBuffers {
    /// Allocates every buffer of a population of `members` (set-ups sharing model, split
    /// and minibatch size) on `data`, and uploads each member's initial parameters.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] when a buffer does not fit the adapter.
    pub fn allocate(gpu: &Gpu, members: &[RunSetup], data: RunData<'_>) -> Result<PopBuffers> {
        let shared = &members[0];
        let k = members.len();
        let layout = shared.spec.layout();
        let b = shared.config.batch_size;
        let validation = &shared.validation;
        // As the single engine (`crate::gpu::engine::buffers`): the same evaluation
        // minibatch, so the same matmul shapes and kernels.
        let eval_rows = b.max(EVAL_BATCH.min(data.test.len().max(validation.len())));
        let max_train_steps = shared.train_indices.len().div_ceil(b);
        let records = max_train_steps
            + data.test.len().div_ceil(eval_rows)
            + validation.len().div_ceil(eval_rows);
        let steps_bytes = records as u64 * STEP_STRIDE;
        gpu.check_buffer("the step records", steps_bytes, "use a larger --batch-size")?;
        let p = layout.len;
        let params = Stacked::new(gpu, "population.params", k, p)?;
        for (m, s) in members.iter().enumerate() {
            gpu.queue.write_buffer(
                &params.buffer,
                (m * params.stride * 4) as u64,
                bytemuck::cast_slice(&s.init),
            );
        }
        let ranges: Vec<u32> = layout
            .bias_ranges()
            .iter()
            .flat_map(|&(s, e)| [s as u32, e as u32])
            .collect();
        let hyper_offset = ranges.len();
        let steps_offset = hyper_offset + 8 * k;
        let table = gpu.storage_buffer(
            "population.sgd_table",
            ((steps_offset + 2 * k * max_train_steps) * 4) as u64,
            wgpu::BufferUsages::COPY_DST,
        )?;
        gpu.queue
            .write_buffer(&table, 0, bytemuck::cast_slice(&ranges));
        let identity: Vec<u32> = (0..data.test.len() as u32).collect();
        Ok(PopBuffers {
            train: upload_dataset(gpu, "train", data.train)?,
            test: upload_dataset(gpu, "test", data.test)?,
            grads: Stacked::new(gpu, "population.grads", k, p)?,
            velocity: Stacked::new(gpu, "population.velocity", k, p)?,
            params,
            order: gpu.storage_buffer(
                "order",
                data.train.len() as u64 * 4,
                wgpu::BufferUsages::COPY_DST,
            )?,
            validation_order: index_buffer(gpu, "validation.order", validation)?,
            test_order: index_buffer(gpu, "test.order", &identity)?,
            act: Activations::new(gpu, &layout, k, eval_rows)?,
            dummy: f32_buffer(gpu, "unused", 4)?,
            table,
            ranges: ranges.len() / 2,
            hyper_offset,
            steps_offset,
            train_metrics: Stacked::new(
                gpu,
                "train.metrics",
                k,
                METRICS_HEADER + 2 * max_train_steps,
            )?,
            steps: gpu.buffer(
                "steps",
                steps_bytes,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            ),
            scratch: f32_buffer(gpu, "population.scratch", p)?,
            members: k,
            max_train_steps,
            eval_rows,
            layout,
        })
    }

    /// A `[K, per_member]` metrics buffer (evaluation sets).
    pub fn metrics(&self, gpu: &Gpu, label: &str, steps: usize) -> Result<Stacked> {
        Stacked::new(gpu, label, self.members, METRICS_HEADER + 2 * steps)
    }
}

impl Activations {
    fn new(gpu: &Gpu, layout: &ParamLayout, k: usize, rows: usize) -> Result<Activations> {
        let layers = &layout.layers;
        let hidden = &layers[..layers.len() - 1];
        let classes = layers[layers.len() - 1].outputs;
        let per_layer = |name: &str| -> Result<Vec<Stacked>> {
            hidden
                .iter()
                .enumerate()
                .map(|(l, s)| Stacked::new(gpu, &format!("{name}{l}"), k, rows * s.outputs))
                .collect()
        };
        Ok(Activations {
            x: f32_buffer(gpu, "x", rows * layers[0].inputs)?,
            y: f32_buffer(gpu, "y", rows)?,
            hidden: per_layer("hidden")?,
            logits: Stacked::new(gpu, "logits", k, rows * classes)?,
            dlogits: Stacked::new(gpu, "dlogits", k, rows * classes)?,
            dhidden: per_layer("dhidden")?,
            rows: Stacked::new(gpu, "rows", k, rows * 2)?,
        })
    }
}
