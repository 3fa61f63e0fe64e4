//! Every buffer of a GPU engine, allocated once when it opens: the datasets (u8, resident)
//! and sample orders, the minibatch X and labels (shared by the members: one gather per
//! step), the members' parameters, gradients and momentum stacked `[K, P]` (P, the flat
//! layout's length, is a multiple of 64 floats), every other activation `[K, rows, O]`
//! (each member's block padded to whole vec4s), the metrics `[K, M]` (each member's status
//! header and per-step sums), the SGD table ([`SgdTable`]: no-decay ranges, per-member
//! settings, the epoch's member steps), the step records, and for `--precision f16` the f16
//! copies of X, the hidden activations and the parameters. The momentum buffer holds the
//! members' gradient sums after the momentum (`[2, K, P]`): the running sum of a minibatch
//! that spans several micro-steps ([`crate::step`]) is read and written by the same
//! binding as the momentum, so the fused update needs no extra binding.

use crate::config::Precision;
use crate::data::Dataset;
use crate::engine::{PopulationSetup, RunData};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::kernels::STEP_STRIDE;
use crate::gpu::kernels::sgd_update::{SgdTable, member_settings};
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::model::ParamLayout;
use crate::optim::SgdConfig;

/// A dataset resident on the GPU: pixels `[N, I]` as packed u8, labels `[N]` u32.
pub(crate) struct DeviceDataset {
    pub pixels: wgpu::Buffer,
    pub labels: wgpu::Buffer,
}

/// A per-member tensor: one buffer of `[K, stride]` elements.
pub(crate) struct Stacked {
    pub buffer: wgpu::Buffer,
    /// Elements between consecutive members (a multiple of 4).
    pub stride: usize,
}

impl Stacked {
    /// `[members, per_member]` f32, each member's block padded to whole vec4s.
    fn f32(gpu: &Gpu, label: &str, members: usize, per_member: usize) -> Result<Stacked> {
        let stride = per_member.next_multiple_of(4);
        Ok(Stacked {
            buffer: f32_buffer(gpu, label, members * stride)?,
            stride,
        })
    }

    /// `[members, per_member]` f16 (2 bytes each), each block padded to whole vec4s.
    fn f16(gpu: &Gpu, label: &str, members: usize, per_member: usize) -> Result<Stacked> {
        let stride = per_member.next_multiple_of(4);
        let bytes = (members * stride * 2) as u64;
        Ok(Stacked {
            buffer: gpu.storage_buffer(label, bytes, wgpu::BufferUsages::COPY_DST)?,
            stride,
        })
    }

    /// Byte offset of member `member`'s block of 4-byte elements.
    pub fn offset(&self, member: usize) -> u64 {
        (member * self.stride * 4) as u64
    }
}

/// Activation buffers sized for the largest minibatch (training or evaluation).
pub(crate) struct Activations {
    /// `[rows, I]` minibatch inputs, shared by the members.
    pub x: wgpu::Buffer,
    /// `[rows]` minibatch labels, shared.
    pub y: wgpu::Buffer,
    /// `hidden[l]`: `[K, rows, O_l]`, output of layer l for l < L - 1.
    pub hidden: Vec<Stacked>,
    /// `[K, rows, C]`.
    pub logits: Stacked,
    /// `[K, rows, C]`: gradient of the mean loss with respect to the logits.
    pub dlogits: Stacked,
    /// `dhidden[l]`: gradient with respect to `hidden[l]`.
    pub dhidden: Vec<Stacked>,
    /// `[K, rows, 2]`: per-row loss and correct flag of the softmax stage.
    pub rows: Stacked,
}

/// The f16 copies of `--precision f16` ([`Precision::F16`]), the operands of
/// `matmul_f16`: f16 elements, laid out as their f32 originals.
pub(crate) struct F16Buffers {
    /// `[rows, I]` f16 copy of `x` (shared).
    pub x16: wgpu::Buffer,
    /// `hidden16[l]`: `[K, rows, O_l]` f16 copy of `hidden[l]` (same strides).
    pub hidden16: Vec<Stacked>,
    /// `[K, P]` f16 copy of `params` (same element offsets), refreshed after every update.
    pub params16: Stacked,
}

/// The buffers of one engine.
pub(crate) struct RunBuffers {
    pub layout: ParamLayout,
    /// K.
    pub members: usize,
    pub train: DeviceDataset,
    pub test: DeviceDataset,
    /// `[K, P]` flat parameters, gradients and momentum (layout of `layout`); `velocity`'s
    /// buffer holds the gradient sums `[K, P]` after the momentum (from float
    /// [`RunBuffers::sum_offset`]).
    pub params: Stacked,
    pub grads: Stacked,
    pub velocity: Stacked,
    /// `[N_train]` the epoch's sample order, written once per epoch.
    pub order: wgpu::Buffer,
    /// The validation indices and the test set's identity order.
    pub validation_order: wgpu::Buffer,
    pub test_order: wgpu::Buffer,
    pub act: Activations,
    /// Bound where a kernel's optional operand is absent.
    pub dummy: wgpu::Buffer,
    /// The SGD table (u32 words; layout `sgd`), read by `sgd_update` and the fused update.
    pub table: wgpu::Buffer,
    pub sgd: SgdTable,
    /// `[K, METRICS_HEADER + steps·2]` (stride padded): per member a status header, then
    /// per-step sums.
    pub train_metrics: Stacked,
    /// Step records `STEP_STRIDE` bytes apart: the training steps, then each held-out
    /// set's evaluation minibatches.
    pub steps: wgpu::Buffer,
    /// `[P]`: a member's parameters or momentum on their way to another member (a buffer
    /// cannot be copied onto itself).
    pub scratch: wgpu::Buffer,
    /// The micro-batch B0: the rows of a step (the largest a step has).
    pub batch: usize,
    /// Most training steps in an epoch.
    pub max_train_steps: usize,
    /// Rows of an evaluation minibatch (and of the activation buffers).
    pub eval_rows: usize,
    /// The f16 operands, for `--precision f16` runs only.
    pub f16: Option<F16Buffers>,
}

impl RunBuffers {
    /// Allocates and fills every buffer of `setup`'s members on `data`.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when a buffer does not fit the adapter.
    pub fn allocate(gpu: &Gpu, setup: &PopulationSetup, data: RunData<'_>) -> Result<RunBuffers> {
        let shared = setup.shared();
        let k = setup.len();
        let layout = shared.spec.layout();
        let b = setup.micro_batch();
        let validation = &shared.validation;
        let eval_rows = setup.activation_rows(data.test.len());
        let max_train_steps = shared.train_indices.len().div_ceil(b);
        let records = max_train_steps
            + data.test.len().div_ceil(eval_rows)
            + validation.len().div_ceil(eval_rows);
        let steps_bytes = records as u64 * STEP_STRIDE;
        gpu.check_buffer("the step records", steps_bytes, "use a larger --batch-size")?;
        let p = layout.len;
        // P is a multiple of 64 floats: the stride needs no padding.
        // `copies` blocks of `[K, P]` in one buffer.
        let stacked = |label: &str, copies: usize| -> Result<Stacked> {
            let usage = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
            let hint = "use fewer members (--population) or smaller --hidden sizes";
            let bytes = (copies * k * p * 4) as u64;
            let buffer = gpu.storage_buffer_hinted(label, bytes, usage, hint)?;
            Ok(Stacked { buffer, stride: p })
        };
        let params = stacked("the buffer `params` (parameters)", 1)?;
        for (m, s) in setup.members.iter().enumerate() {
            gpu.queue.write_buffer(
                &params.buffer,
                params.offset(m),
                bytemuck::cast_slice(&s.init),
            );
        }
        let ranges: Vec<u32> = layout
            .bias_ranges()
            .iter()
            .flat_map(|&(s, e)| [s as u32, e as u32])
            .collect();
        let sgd = SgdTable::new(ranges.len() / 2, k, max_train_steps);
        let table = gpu.storage_buffer(
            "sgd_table",
            (sgd.words() * 4) as u64,
            wgpu::BufferUsages::COPY_DST,
        )?;
        gpu.queue
            .write_buffer(&table, 0, bytemuck::cast_slice(&ranges));
        let identity: Vec<u32> = (0..data.test.len() as u32).collect();
        let bufs = RunBuffers {
            train: upload_dataset(gpu, "train", data.train)?,
            test: upload_dataset(gpu, "test", data.test)?,
            grads: stacked("the buffer `grads` (gradients)", 1)?,
            velocity: stacked("the buffer `velocity` (momentum and gradient sums)", 2)?,
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
            sgd,
            train_metrics: Stacked::f32(
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
            scratch: f32_buffer(gpu, "scratch", p)?,
            members: k,
            batch: b,
            max_train_steps,
            eval_rows,
            f16: match shared.config.precision {
                Precision::F32 => None,
                Precision::F16 => Some(F16Buffers::new(gpu, &layout, k, eval_rows)?),
            },
            layout,
        };
        for (m, s) in setup.members.iter().enumerate() {
            bufs.write_settings(gpu, m, &s.config.sgd);
            if let Some(f) = &bufs.f16 {
                gpu.queue.write_buffer(
                    &f.params16.buffer,
                    (m * f.params16.stride * 2) as u64,
                    &f16_bytes(&s.init),
                );
            }
        }
        Ok(bufs)
    }

    /// Float of the velocity buffer where the gradient sums `[K, P]` start (after the
    /// momentum).
    pub fn sum_offset(&self) -> usize {
        self.members * self.velocity.stride
    }

    /// A `[K, METRICS_HEADER + 2 · steps]` metrics buffer (evaluation sets).
    pub fn metrics(&self, gpu: &Gpu, label: &str, steps: usize) -> Result<Stacked> {
        Stacked::f32(gpu, label, self.members, METRICS_HEADER + 2 * steps)
    }

    /// Writes member `member`'s SGD settings into the table: the one place hyperparameters
    /// reach the kernels.
    pub fn write_settings(&self, gpu: &Gpu, member: usize, sgd: &SgdConfig) {
        gpu.queue.write_buffer(
            &self.table,
            (self.sgd.settings_at(member) * 4) as u64,
            bytemuck::cast_slice(&member_settings(sgd)),
        );
    }
}

pub(crate) fn upload_dataset(gpu: &Gpu, name: &str, ds: &Dataset) -> Result<DeviceDataset> {
    let bytes = ds.images.len() as u64;
    if bytes > u64::from(u32::MAX) {
        return Err(Error::LimitExceeded {
            what: format!("the {name} set's pixels (32-bit indexing)"),
            requested: bytes,
            max: u64::from(u32::MAX),
            unit: "bytes",
            hint: "use a smaller dataset".into(),
        });
    }
    let hint = "this dataset does not fit this adapter's storage-buffer limits; use a GPU with larger limits or --device cpu";
    let pixels = gpu.storage_buffer(
        &format!("{name}.pixels"),
        bytes,
        wgpu::BufferUsages::COPY_DST,
    )?;
    gpu.check_binding(&format!("the {name} set's pixels"), bytes, hint)?;
    let mut padded = ds.images.clone();
    padded.resize(ds.images.len().next_multiple_of(4), 0);
    gpu.queue.write_buffer(&pixels, 0, &padded);
    let labels = gpu.storage_buffer(
        &format!("{name}.labels"),
        ds.labels.len() as u64 * 4,
        wgpu::BufferUsages::COPY_DST,
    )?;
    gpu.queue
        .write_buffer(&labels, 0, bytemuck::cast_slice(&ds.labels));
    Ok(DeviceDataset { pixels, labels })
}

/// A `[len]` f32 storage buffer that can be written and read back.
pub(crate) fn f32_buffer(gpu: &Gpu, label: &str, len: usize) -> Result<wgpu::Buffer> {
    let usage = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    gpu.storage_buffer(label, len as u64 * 4, usage)
}

/// A `[len]` u32 index buffer holding `indices`.
pub(crate) fn index_buffer(gpu: &Gpu, label: &str, indices: &[u32]) -> Result<wgpu::Buffer> {
    let buffer = gpu.storage_buffer(
        label,
        indices.len() as u64 * 4,
        wgpu::BufferUsages::COPY_DST,
    )?;
    gpu.queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(indices));
    Ok(buffer)
}

impl Activations {
    /// Activation buffers of `rows` rows per member for the model of `layout`.
    fn new(gpu: &Gpu, layout: &ParamLayout, k: usize, rows: usize) -> Result<Activations> {
        let layers = &layout.layers;
        let hidden = &layers[..layers.len() - 1];
        let classes = layers[layers.len() - 1].outputs;
        let per_layer = |what: &str, name: &str| -> Result<Vec<Stacked>> {
            let label = |l| format!("the buffer `{name}{l}` (layer {l} {what})");
            hidden
                .iter()
                .enumerate()
                .map(|(l, s)| Stacked::f32(gpu, &label(l), k, rows * s.outputs))
                .collect()
        };
        Ok(Activations {
            x: f32_buffer(
                gpu,
                "the buffer `x` (minibatch inputs)",
                rows * layers[0].inputs,
            )?,
            y: f32_buffer(gpu, "the buffer `y` (minibatch labels)", rows)?,
            hidden: per_layer("activations", "hidden")?,
            logits: Stacked::f32(gpu, "the buffer `logits`", k, rows * classes)?,
            dlogits: Stacked::f32(gpu, "the buffer `dlogits`", k, rows * classes)?,
            dhidden: per_layer("activation gradients", "dhidden")?,
            rows: Stacked::f32(gpu, "rows", k, rows * 2)?,
        })
    }
}

/// `v` as f16 bytes, saturated at ±65504 and rounded to nearest even (`half`), padded to
/// whole 4-byte words (what `write_buffer` copies): the host's version of
/// `shaders/convert_f16.wgsl`.
pub(crate) fn f16_bytes(v: &[f32]) -> Vec<u8> {
    let max = half::f16::MAX.to_f32();
    let mut bytes: Vec<u8> = v
        .iter()
        .flat_map(|&x| half::f16::from_f32(x.clamp(-max, max)).to_le_bytes())
        .collect();
    bytes.resize(v.len().next_multiple_of(2) * 2, 0);
    bytes
}

impl F16Buffers {
    /// The f16 buffers of `rows` rows per member for the model of `layout`.
    fn new(gpu: &Gpu, layout: &ParamLayout, k: usize, rows: usize) -> Result<F16Buffers> {
        let layers = &layout.layers;
        let hidden16 = layers[..layers.len() - 1]
            .iter()
            .enumerate()
            .map(|(l, s)| {
                let label = format!("the buffer `hidden16_{l}` (layer {l} activations, f16)");
                Stacked::f16(gpu, &label, k, rows * s.outputs)
            })
            .collect::<Result<_>>()?;
        let x16 = gpu.storage_buffer(
            "the buffer `x16` (minibatch inputs, f16)",
            ((rows * layers[0].inputs).next_multiple_of(2) * 2) as u64,
            wgpu::BufferUsages::COPY_DST,
        )?;
        Ok(F16Buffers {
            x16,
            hidden16,
            params16: Stacked::f16(gpu, "the buffer `params16` (f16 weights)", k, layout.len)?,
        })
    }
}
