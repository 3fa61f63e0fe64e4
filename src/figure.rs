//! What every wgtrain picture shares: the bundled font and rendering one figure to PNG and
//! SVG (plotters' bitmap and SVG backends). Used by the learning curves and sweep plots
//! ([`crate::tune::plot`]) and the per-class pictures ([`crate::metrics::plot`]).

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// The font family every picture draws with: DejaVu Sans, registered by [`register_font`].
pub(crate) const FONT: &str = "sans-serif";

static REGISTER_FONT: Once = Once::new();

/// Registers DejaVu Sans as plotters' `sans-serif` (once per process).
pub(crate) fn register_font() {
    REGISTER_FONT.call_once(|| {
        // The font is a valid TrueType file shipped by the dejavu crate; if plotters ever
        // refused it, drawing text would report the error.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// A plotters error as the message [`save`] reports.
pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Something drawn on one canvas.
pub(crate) trait Figure {
    /// Canvas size in pixels (width, height).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Renders `fig` to `dir/stem.png` and `dir/stem.svg`, creating `dir` if it is missing
/// (output paths are checked before any work, so its parent exists).
///
/// # Errors
/// [`Error::Io`] naming the directory or the file that could not be written or drawn.
pub(crate) fn save(fig: &impl Figure, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let fail = |path: &Path, e: String| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("drawing the plot: {e}")),
    };
    // A picture that failed part-way (a full disk) is removed, not left truncated.
    let removed_on_error = |path: &Path, r: Result<()>| {
        if r.is_err() {
            let _ = std::fs::remove_file(path);
        }
        r
    };
    let png = dir.join(format!("{stem}.png"));
    removed_on_error(&png, {
        let root = BitMapBackend::new(&png, fig.size()).into_drawing_area();
        (|| {
            root.fill(&WHITE).map_err(|e| fail(&png, err(e)))?;
            fig.draw(&root).map_err(|e| fail(&png, e))?;
            root.present().map_err(|e| fail(&png, err(e)))
        })()
    })?;
    let svg = dir.join(format!("{stem}.svg"));
    removed_on_error(&svg, {
        let root = SVGBackend::new(&svg, fig.size()).into_drawing_area();
        (|| {
            root.fill(&WHITE).map_err(|e| fail(&svg, err(e)))?;
            fig.draw(&root).map_err(|e| fail(&svg, e))?;
            root.present().map_err(|e| fail(&svg, err(e)))
        })()
    })?;
    Ok(vec![png, svg])
}
