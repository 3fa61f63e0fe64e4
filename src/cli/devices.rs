//! `wgtrain devices`: every adapter with its type and the limits that matter here.

use anyhow::Result;
use clap::Args;

use wgtrain::gpu;

use super::common::Backend;

/// Which adapters to list.
#[derive(Args, Debug, Clone)]
pub struct DevicesArgs {
    /// Only this backend (default: every backend, GL included).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

/// Runs `wgtrain devices`.
pub fn devices_command(d: DevicesArgs) -> Result<()> {
    let adapters = gpu::list_adapters(Some(
        d.backend.map_or(wgpu::Backends::all(), |b| b.to_wgpu()),
    ));
    if adapters.is_empty() {
        anyhow::bail!(
            "no GPU adapter found. On headless Linux: apt-get install -y mesa-vulkan-drivers libvulkan1 (the lavapipe software adapter); or use --device cpu"
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        say!("[{i}] {a}");
    }
    Ok(())
}
