//! Every buffer of a GPU run, allocated once when the engine opens: the datasets (u8,
//! resident), the flat parameter, gradient and momentum buffers `[P]`, the activations for
//! the largest minibatch, the sample orders, the metrics buffers and the step records.

use crate::config::Precision;
use crate::data::Dataset;
use crate::engine::{RunData, RunSetup};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::gpu::kernels::{STEP_STRIDE, matmul_sgd};
use crate::model::ParamLayout;
use crate::optim::SgdConfig;

use crate::engine::EVAL_BATCH;

/// A dataset resident on the GPU: pixels `[N, I]` as packed u8, labels `[N]` u32.
pub(crate) struct DeviceDataset {
    pub pixels: wgpu::Buffer,
    pub labels: wgpu::Buffer,
}

/// Activation buffers sized for the largest minibatch (training or evaluation).
pub(super) struct Activations {
    /// `[rows, I]` minibatch inputs.
    pub x: wgpu::Buffer,
    /// `[rows]` minibatch labels.
    pub y: wgpu::Buffer,
    /// `hidden[l]`: output of layer l for l < L - 1; `[rows, O_l]`.
    pub hidden: Vec<wgpu::Buffer>,
    /// `[rows, C]`.
    pub logits: wgpu::Buffer,
    /// `[rows, C]`: gradient of the mean loss with respect to the logits.
    pub dlogits: wgpu::Buffer,
    /// `dhidden[l]`: gradient with respect to `hidden[l]`.
    pub dhidden: Vec<wgpu::Buffer>,
    /// `[rows, 2]`: per-row loss and correct flag of the softmax stage.
    pub rows: wgpu::Buffer,
}

/// The f16 copies of `--precision f16` ([`crate::config::Precision::F16`]), the operands
/// of `matmul_f16`: f16 elements, sized as their f32 originals.
pub(super) struct F16Buffers {
    /// `[rows, I]` f16 copy of `x`.
    pub x16: wgpu::Buffer,
    /// `hidden16[l]`: f16 copy of `hidden[l]`, `[rows, O_l]`.
    pub hidden16: Vec<wgpu::Buffer>,
    /// `[P]` f16 copy of `params` (same element offsets), refreshed after every update.
    pub params16: wgpu::Buffer,
}

/// The buffers of one run.
pub(super) struct RunBuffers {
    pub layout: ParamLayout,
    pub train: DeviceDataset,
    pub test: DeviceDataset,
    /// `[P]` flat parameters, gradients and momentum (layout of `layout`).
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub velocity: wgpu::Buffer,
    /// `[N_train]` the epoch's sample order, written once per epoch.
    pub order: wgpu::Buffer,
    /// The validation indices and the test set's identity order.
    pub validation_order: wgpu::Buffer,
    pub test_order: wgpu::Buffer,
    pub act: Activations,
    /// Bound where a kernel's optional operand is absent.
    pub dummy: wgpu::Buffer,
    /// `[2R]` u32 parameter ranges SGD does not decay (biases, without `decay_bias`).
    pub no_decay: wgpu::Buffer,
    /// Each layer's SGD record for the fused update (`matmul_sgd::record`), layer l's at
    /// float `l · sgd_record_stride`; rewritten when the SGD settings change.
    pub sgd_records: wgpu::Buffer,
    /// Floats between layers' SGD records: a record, rounded up to the adapter's storage
    /// offset alignment.
    pub sgd_record_stride: usize,
    /// `[METRICS_HEADER + steps·2]`: status header, then per-step sums.
    pub train_metrics: wgpu::Buffer,
    /// Step records `STEP_STRIDE` bytes apart: the training steps, then each held-out
    /// set's evaluation minibatches.
    pub steps: wgpu::Buffer,
    /// Most training steps in an epoch.
    pub max_train_steps: usize,
    /// Rows of an evaluation minibatch (and of the activation buffers).
    pub eval_rows: usize,
    /// The f16 operands, for `--precision f16` runs only.
    pub f16: Option<F16Buffers>,
}

impl RunBuffers {
    /// Allocates and fills every buffer of `setup`'s run on `data`.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when a buffer does not fit the adapter.
    pub fn allocate(gpu: &Gpu, setup: &RunSetup, data: RunData<'_>) -> Result<RunBuffers> {
        let cfg = &setup.config;
        let layout = setup.spec.layout();
        let b = cfg.batch_size;
        let validation = &setup.validation;
        let eval_rows = b.max(EVAL_BATCH.min(data.test.len().max(validation.len())));
        let params = param_buffer(gpu, "the buffer `params` (parameters)", &layout)?;
        gpu.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&setup.init));
        let identity: Vec<u32> = (0..data.test.len() as u32).collect();
        let no_decay_ranges: Vec<u32> = if cfg.sgd.decay_bias {
            vec![0, 0]
        } else {
            let ranges = layout.bias_ranges();
            ranges
                .iter()
                .flat_map(|&(s, e)| [s as u32, e as u32])
                .collect()
        };
        let sgd_record_stride = matmul_sgd::RECORD_WORDS
            .max(gpu.limits.min_storage_buffer_offset_alignment as usize / 4);
        let sgd_records = f32_buffer(gpu, "sgd_records", layout.layers.len() * sgd_record_stride)?;
        write_sgd_records(gpu, &sgd_records, sgd_record_stride, &layout, &cfg.sgd);
        let max_train_steps = setup.train_indices.len().div_ceil(b);
        let records = max_train_steps
            + data.test.len().div_ceil(eval_rows)
            + validation.len().div_ceil(eval_rows);
        let steps_bytes = records as u64 * STEP_STRIDE;
        gpu.check_buffer("the step records", steps_bytes, "use a larger --batch-size")?;
        Ok(RunBuffers {
            train: upload_dataset(gpu, "train", data.train)?,
            test: upload_dataset(gpu, "test", data.test)?,
            params,
            grads: param_buffer(gpu, "the buffer `grads` (gradients)", &layout)?,
            velocity: param_buffer(gpu, "the buffer `velocity` (momentum)", &layout)?,
            order: gpu.storage_buffer(
                "order",
                data.train.len() as u64 * 4,
                wgpu::BufferUsages::COPY_DST,
            )?,
            validation_order: index_buffer(gpu, "validation.order", validation)?,
            test_order: index_buffer(gpu, "test.order", &identity)?,
            act: Activations::new(gpu, &layout, eval_rows)?,
            dummy: f32_buffer(gpu, "unused", 4)?,
            no_decay: index_buffer(gpu, "no_decay", &no_decay_ranges)?,
            sgd_records,
            sgd_record_stride,
            train_metrics: f32_buffer(gpu, "train.metrics", METRICS_HEADER + max_train_steps * 2)?,
            steps: gpu.buffer(
                "steps",
                steps_bytes,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            ),
            max_train_steps,
            eval_rows,
            f16: match cfg.precision {
                Precision::F32 => None,
                Precision::F16 => Some(F16Buffers::new(gpu, &layout, eval_rows, &setup.init)?),
            },
            layout,
        })
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

/// Writes every layer's SGD record for `sgd` into `records`, `stride` floats apart (at
/// allocation and when the SGD settings change).
pub(super) fn write_sgd_records(
    gpu: &Gpu,
    records: &wgpu::Buffer,
    stride: usize,
    layout: &ParamLayout,
    sgd: &SgdConfig,
) {
    let mut words = vec![0u32; layout.layers.len() * stride];
    for (l, s) in layout.layers.iter().enumerate() {
        words[l * stride..l * stride + matmul_sgd::RECORD_WORDS]
            .copy_from_slice(&matmul_sgd::record(sgd, s.bias - s.weight));
    }
    gpu.queue
        .write_buffer(records, 0, bytemuck::cast_slice(&words));
}

/// A `[P]` parameter-sized buffer; its size depends on the layer sizes alone.
fn param_buffer(gpu: &Gpu, what: &str, layout: &ParamLayout) -> Result<wgpu::Buffer> {
    let usage = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    gpu.storage_buffer_hinted(
        what,
        layout.len as u64 * 4,
        usage,
        "use smaller --hidden sizes",
    )
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
    /// Activation buffers of `rows` rows for the model of `layout`.
    fn new(gpu: &Gpu, layout: &ParamLayout, rows: usize) -> Result<Activations> {
        let layers = &layout.layers;
        let hidden = &layers[..layers.len() - 1];
        let classes = layers[layers.len() - 1].outputs;
        let per_layer = |what: &str, name: &str| -> Result<Vec<wgpu::Buffer>> {
            let label = |l| format!("the buffer `{name}{l}` (layer {l} {what})");
            hidden
                .iter()
                .enumerate()
                .map(|(l, s)| f32_buffer(gpu, &label(l), rows * s.outputs))
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
            logits: f32_buffer(gpu, "the buffer `logits`", rows * classes)?,
            dlogits: f32_buffer(gpu, "the buffer `dlogits`", rows * classes)?,
            dhidden: per_layer("activation gradients", "dhidden")?,
            rows: f32_buffer(gpu, "rows", rows * 2)?,
        })
    }
}

/// `v` as f16 bytes, saturated at ±65504 and rounded to nearest even (`half`), padded to
/// whole 4-byte words (what `write_buffer` copies): the host's version of
/// `shaders/convert_f16.wgsl`.
pub(super) fn f16_bytes(v: &[f32]) -> Vec<u8> {
    let max = half::f16::MAX.to_f32();
    let mut bytes: Vec<u8> = v
        .iter()
        .flat_map(|&x| half::f16::from_f32(x.clamp(-max, max)).to_le_bytes())
        .collect();
    bytes.resize(v.len().next_multiple_of(2) * 2, 0);
    bytes
}

impl F16Buffers {
    /// The f16 buffers of `rows` rows for the model of `layout`, the weights' copy
    /// initialised from `init` (the f32 parameters `[P]`).
    fn new(gpu: &Gpu, layout: &ParamLayout, rows: usize, init: &[f32]) -> Result<F16Buffers> {
        let layers = &layout.layers;
        let f16_buffer = |label: &str, len: usize| {
            gpu.storage_buffer(label, len as u64 * 2, wgpu::BufferUsages::COPY_DST)
        };
        let hidden16 = layers[..layers.len() - 1]
            .iter()
            .enumerate()
            .map(|(l, s)| {
                let label = format!("the buffer `hidden16_{l}` (layer {l} activations, f16)");
                f16_buffer(&label, rows * s.outputs)
            })
            .collect::<Result<_>>()?;
        let params16 = f16_buffer("the buffer `params16` (f16 weights)", layout.len)?;
        gpu.queue.write_buffer(&params16, 0, &f16_bytes(init));
        Ok(F16Buffers {
            x16: f16_buffer(
                "the buffer `x16` (minibatch inputs, f16)",
                rows * layers[0].inputs,
            )?,
            hidden16,
            params16,
        })
    }
}
