//! [`Session`]: an engine, the trainer driving it, and what they borrow, in one owned value
//! that a Python object can hold.
//!
//! The library's engine borrows its data and GPU (`Box<dyn Engine + 'a>`), and its
//! [`Trainer`] borrows the engine mutably (`Trainer<'e>`): a chain of two borrows, which
//! self-referencing-struct crates (ouroboros, self_cell) do not express (a field borrowing
//! mutably from a field that itself borrows). So this module does by hand what they would
//! generate, in one place:
//! - the data and the GPU are `Arc`s whose heap allocations never move, held in the
//!   session's own fields until the engine is gone;
//! - the engine is a leaked `Box` (a raw pointer), reached only through the trainer, and
//!   freed in `Drop` after the trainer;
//! - the `'static` lifetimes given to the borrows never leave this module: [`Session::with`]
//!   lends the trainer to a closure that must accept any lifetime.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wgtrain::data::Mnist;
use wgtrain::engine::{Engine, RunData};
use wgtrain::train::Trainer;
use wgtrain::{Device, GpuDevice, RunConfig};

/// An open population: the engine on its device, its trainer, its data.
pub struct Session {
    // Fields drop in declaration order after `Drop::drop`: the trainer and the engine are
    // released there, then the GPU and the data they borrowed.
    trainer: ManuallyDrop<Trainer<'static>>,
    /// The engine, from `Box::into_raw`; the trainer holds the only reference to it.
    engine: NonNull<dyn Engine + 'static>,
    _gpu: Option<Arc<GpuDevice>>,
    _data: Arc<Mnist>,
}

// SAFETY: the session owns everything its references point to, and every engine the
// library opens is `Send` (checked at compile time below), as are the trainer's own
// fields; a Python object holding a session is only ever used by one thread at a time
// (pyo3's borrow checking), so moving it to the thread that runs an epoch is sound.
unsafe impl Send for Session {}

// SAFETY: a shared `&Session` gives access to nothing (every method takes `&mut self`), so
// sharing one between threads cannot race. (pyo3 requires its classes to be `Sync`.)
unsafe impl Sync for Session {}

/// Compile-time proof that what a session holds may move between threads.
#[allow(dead_code)]
fn engines_are_send() {
    fn send<T: Send>() {}
    send::<wgtrain::cpu_engine::CpuEngine<'static>>();
    send::<wgtrain::gpu::engine::GpuEngine<'static>>();
    send::<Arc<GpuDevice>>();
    send::<Arc<Mnist>>();
}

impl Session {
    /// Opens the engine for `configs` on `data` (on `gpu`, else the CPU) and its trainer.
    ///
    /// # Errors
    /// As [`wgtrain::open`] and [`Trainer::new`].
    pub fn open(
        data: Arc<Mnist>,
        gpu: Option<Arc<GpuDevice>>,
        configs: &[RunConfig],
        stop: Arc<AtomicBool>,
    ) -> wgtrain::Result<Session> {
        // SAFETY: both point into `Arc` allocations that the session keeps (its `_data`
        // and `_gpu` fields) until after the engine is dropped.
        let data_ref: &'static Mnist = unsafe { &*Arc::as_ptr(&data) };
        let gpu_ref: Option<&'static GpuDevice> = gpu.as_ref().map(|g| unsafe { &*Arc::as_ptr(g) });
        let device = gpu_ref.map_or(Device::Cpu, GpuDevice::device);
        let engine: Box<dyn Engine + 'static> =
            wgtrain::open(device, configs, RunData::from(data_ref))?;
        let engine = NonNull::from(Box::leak(engine));
        // SAFETY: the pointer is valid (just leaked) and this is the only reference made
        // from it until `Drop`, which drops the trainer before freeing the engine.
        let trainer = match Trainer::new(unsafe { &mut *engine.as_ptr() }) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: the trainer that borrowed the engine is gone (it failed).
                drop(unsafe { Box::from_raw(engine.as_ptr()) });
                return Err(e);
            }
        };
        let mut trainer = ManuallyDrop::new(trainer);
        trainer.set_stop_flag(stop);
        Ok(Session {
            trainer,
            engine,
            _gpu: gpu,
            _data: data,
        })
    }

    /// Lends the trainer (and through [`Trainer::engine`] the engine) to `f`, which must
    /// work for any lifetime, so no borrow escapes.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Trainer<'_>) -> R) -> R {
        f(&mut self.trainer)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the trainer is dropped exactly once, here; then nothing references the
        // engine, which `open` leaked from a `Box` and nothing else frees.
        unsafe {
            ManuallyDrop::drop(&mut self.trainer);
            drop(Box::from_raw(self.engine.as_ptr()));
        }
    }
}
