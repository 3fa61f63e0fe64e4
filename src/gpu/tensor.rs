//! `GpuTensor`: a storage buffer plus its shape, with upload and readback through a
//! separate `MAP_READ` staging buffer; `View`: a sub-range of a buffer bound to one kernel
//! argument (for example one layer's weight inside the flat parameter buffer).

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// An f32 range of a buffer, as bound to one kernel argument. `offset` is in bytes and a
/// multiple of the adapter's `min_storage_buffer_offset_alignment`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset into `buffer`.
    pub offset: u64,
    /// Length in f32 (or u32) elements.
    pub len: usize,
}

impl<'a> View<'a> {
    /// The whole buffer as `[len]` elements.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        View {
            buffer,
            offset: 0,
            len: (buffer.size() / 4) as usize,
        }
    }

    /// A bind-group resource for the first `len` elements read as `ceil(len / 4)` whole
    /// vec4s, for kernels that load four elements per instruction.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the offset is not 16-byte aligned or the buffer ends
    /// inside the last vec4 (buffers from [`Gpu::storage_buffer`] are padded to 16 bytes).
    pub fn vec4_binding(&self, what: &str, len: usize) -> Result<wgpu::BindingResource<'a>> {
        let bytes = (len.max(1) as u64).next_multiple_of(4) * 4;
        if !self.offset.is_multiple_of(16) || self.offset + bytes > self.buffer.size() {
            return Err(Error::InvalidConfig {
                name: "kernel operand",
                value: format!(
                    "{what}: {len} elements at byte {} of a {}-byte buffer",
                    self.offset,
                    self.buffer.size()
                ),
                reason: "vec4 loads need a 16-byte aligned offset and whole vec4s in the buffer"
                    .into(),
            });
        }
        Ok(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(bytes),
        }))
    }

    /// A bind-group resource for this range.
    pub fn binding(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new((self.len.max(1) as u64) * 4),
        })
    }
}

/// A row-major f32 tensor resident on the GPU.
pub struct GpuTensor {
    pub buffer: wgpu::Buffer,
    /// Shape, outermost first, e.g. `[batch, in_features]`.
    pub shape: Vec<usize>,
}

impl GpuTensor {
    /// Uploads `data` (row-major, `shape.iter().product()` elements).
    pub fn upload(gpu: &Gpu, label: &str, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "{label}: data does not match shape {shape:?}"
        );
        let buffer = gpu.storage_buffer(
            label,
            (data.len() * 4) as u64,
            wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        )?;
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        Ok(GpuTensor {
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// A tensor filled with NaN, so that an element a kernel fails to write shows up in tests.
    pub fn poisoned(gpu: &Gpu, label: &str, shape: &[usize]) -> Result<GpuTensor> {
        let n: usize = shape.iter().product();
        GpuTensor::upload(gpu, label, &vec![f32::NAN; n], shape)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole tensor as a kernel argument.
    pub fn view(&self) -> View<'_> {
        View {
            buffer: &self.buffer,
            offset: 0,
            len: self.len(),
        }
    }

    /// Copies the tensor back to the host (blocking).
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let bytes = read_buffer(gpu, "tensor", &self.buffer, 0, (self.len() * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

/// A reusable `MAP_READ` staging buffer: allocated once, so per-epoch readbacks add no
/// allocations on the GPU.
pub struct Readback {
    staging: wgpu::Buffer,
}

impl Readback {
    /// A staging buffer of `bytes` (rounded up to 4).
    pub fn new(gpu: &Gpu, label: &str, bytes: u64) -> Readback {
        let staging = gpu.buffer(
            label,
            bytes.max(4).next_multiple_of(4),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        Readback { staging }
    }

    /// Copies `bytes` from `src` at `offset` and returns them (blocking: submits, waits, maps).
    pub fn read(
        &self,
        gpu: &Gpu,
        what: &str,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let bytes = bytes.next_multiple_of(4);
        assert!(
            bytes <= self.staging.size(),
            "readback of {bytes} B exceeds its staging buffer"
        );
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(src, offset, &self.staging, 0, bytes);
        gpu.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        self.staging
            .slice(0..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                // The receiver outlives the poll below; a send error cannot happen.
                let _ = tx.send(r);
            });
        gpu.wait()?;
        let what = what.to_string();
        rx.recv()
            .map_err(|e| Error::Readback {
                what: what.clone(),
                reason: e.to_string(),
            })?
            .map_err(|e| Error::Readback {
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let out = {
            let view = self
                .staging
                .slice(0..bytes)
                .get_mapped_range()
                .map_err(|e| Error::Readback {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            view.to_vec()
        };
        self.staging.unmap();
        gpu.take_error(&format!("reading back {what}"))?;
        Ok(out)
    }
}

/// One-shot readback through a temporary staging buffer (tests, checkpoints, eval).
pub fn read_buffer(
    gpu: &Gpu,
    what: &str,
    src: &wgpu::Buffer,
    offset: u64,
    bytes: u64,
) -> Result<Vec<u8>> {
    Readback::new(gpu, "staging", bytes).read(gpu, what, src, offset, bytes)
}
