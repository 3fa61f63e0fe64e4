//! Pictures of per-class results, each written as PNG and SVG: the confusion matrix as a
//! heat map, and a grid of the most confidently misclassified images with their true and
//! predicted labels.
//!
//! Drawn with `plotters` like the learning curves ([`crate::tune::plot`]): the bitmap
//! backend for PNG, the SVG backend for SVG, text in DejaVu Sans compiled into the binary,
//! so the pictures are the same on a headless machine. Images are drawn pixel by pixel as
//! rectangles (ink dark on white; blank pixels are not drawn), which both backends render
//! exactly and keeps the SVG small.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::figure::{FONT, Figure, err, save};
use crate::metrics::{Confusion, Mistake};

/// Correct predictions (the diagonal): Tableau blue.
const BLUE: RGBColor = RGBColor(31, 119, 180);
/// Errors (off the diagonal): Tableau red.
const RED: RGBColor = RGBColor(214, 39, 40);
const GRID: RGBColor = RGBColor(225, 225, 225);
const GREY: RGBColor = RGBColor(110, 110, 110);

type DrawResult = std::result::Result<(), String>;

/// `white + t · (color - white)`, t in [0, 1].
fn shade(color: RGBColor, t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |c: u8| (255.0 - t * (255.0 - f64::from(c))).round() as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// Black or white, whichever reads better on `bg` (by its luma, ITU-R BT.601).
fn ink_on(bg: RGBColor) -> RGBColor {
    let luma = 0.299 * f64::from(bg.0) + 0.587 * f64::from(bg.1) + 0.114 * f64::from(bg.2);
    if luma < 140.0 { WHITE } else { BLACK }
}

fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    at: (i32, i32),
    size: f64,
    color: RGBColor,
    pos: Pos,
) -> DrawResult {
    // plotters' ab_glyph backend places each glyph at `(size / 2 + top) as i32`: at odd or
    // fractional sizes that truncation lifts '.' and ',' a pixel above the baseline.
    // Even sizes keep every glyph on it.
    let size = (size / 2.0).round().max(1.0) * 2.0;
    let style = TextStyle::from((FONT, size).into_font())
        .color(&color)
        .pos(pos);
    area.draw(&Text::new(s.to_string(), at, style)).map_err(err)
}

/// Pixels a title at size 20 needs (DejaVu Sans averages under 11 pixels a character),
/// with a margin: the canvas widens rather than clip it.
fn title_width(title: &str) -> u32 {
    title.chars().count() as u32 * 11 + 40
}

const CENTER: Pos = Pos {
    h_pos: HPos::Center,
    v_pos: VPos::Center,
};

struct Heatmap<'a> {
    confusion: &'a Confusion,
    names: &'a [String],
    title: &'a str,
    cell: u32,
    /// Widths of the row-label column and the accuracy column, in pixels.
    label_w: u32,
}

const TOP: u32 = 100;
const LEFT_MARGIN: u32 = 44;
const ACC_W: u32 = 92;
const BOTTOM: u32 = 72;

impl Heatmap<'_> {
    fn grid_origin(&self) -> (i32, i32) {
        ((LEFT_MARGIN + self.label_w) as i32, TOP as i32)
    }
}

impl Figure for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let c = self.confusion.classes() as u32;
        let grid = c * self.cell;
        let w = (LEFT_MARGIN + self.label_w + grid + ACC_W + 24)
            .max(560)
            .max(title_width(self.title));
        (w, TOP + grid + BOTTOM)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let m = self.confusion;
        let c = m.classes();
        let cell = self.cell as i32;
        let (x0, y0) = self.grid_origin();
        let grid = c as i32 * cell;
        let (w, _) = self.size();
        text(root, self.title, (w as i32 / 2, 24), 20.0, BLACK, CENTER)?;
        text(
            root,
            "predicted class",
            (x0 + grid / 2, y0 - 48),
            15.0,
            BLACK,
            CENTER,
        )?;
        let style = TextStyle::from((FONT, 16.0).into_font().transform(FontTransform::Rotate270))
            .color(&BLACK)
            .pos(CENTER);
        root.draw(&Text::new("true class", (16, y0 + grid / 2), style))
            .map_err(err)?;
        let max_off = (0..c)
            .flat_map(|t| (0..c).filter(move |&p| p != t).map(move |p| (t, p)))
            .map(|(t, p)| m.count(t, p))
            .max()
            .unwrap_or(0);
        let font = (f64::from(self.cell) * 0.34).clamp(8.0, 15.0);
        for t in 0..c {
            for p in 0..c {
                let n = m.count(t, p);
                let bg = if t == p {
                    shade(BLUE, m.class_accuracy(t).unwrap_or(0.0))
                } else if n > 0 {
                    // Errors are tinted by count against the largest error, never fainter
                    // than 12% so that a single error still shows.
                    shade(RED, 0.12 + 0.88 * n as f64 / max_off.max(1) as f64)
                } else {
                    WHITE
                };
                let (x, y) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], bg.filled()))
                    .map_err(err)?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], GRID))
                    .map_err(err)?;
                if n > 0 {
                    text(
                        root,
                        &n.to_string(),
                        (x + cell / 2, y + cell / 2),
                        font,
                        ink_on(bg),
                        CENTER,
                    )?;
                }
            }
        }
        root.draw(&Rectangle::new([(x0, y0), (x0 + grid, y0 + grid)], GREY))
            .map_err(err)?;
        let label_font = (f64::from(self.cell) * 0.3).clamp(9.0, 14.0);
        for k in 0..c {
            let mid = k as i32 * cell + cell / 2;
            text(
                root,
                &self.names[k],
                (x0 - 8, y0 + mid),
                label_font,
                BLACK,
                Pos::new(HPos::Right, VPos::Center),
            )?;
            text(
                root,
                &k.to_string(),
                (x0 + mid, y0 - 14),
                label_font,
                BLACK,
                CENTER,
            )?;
            let acc = m
                .class_accuracy(k)
                .map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a));
            text(
                root,
                &acc,
                (x0 + grid + ACC_W as i32 - 12, y0 + mid),
                label_font,
                BLACK,
                Pos::new(HPos::Right, VPos::Center),
            )?;
        }
        text(
            root,
            "accuracy",
            (x0 + grid + ACC_W as i32 - 12, y0 - 14),
            label_font,
            BLACK,
            Pos::new(HPos::Right, VPos::Center),
        )?;
        let note_y = y0 + grid + 26;
        text(
            root,
            &format!(
                "{} samples, {} correct ({:.2}%). Each cell counts samples of its row's class predicted as its column's.",
                m.samples(),
                m.correct(),
                100.0 * m.accuracy()
            ),
            (x0 + grid / 2, note_y),
            13.0,
            GREY,
            CENTER,
        )?;
        text(
            root,
            &format!(
                "Blue: correct, shaded by the class's accuracy. Red: errors, shaded by count (darkest = {max_off})."
            ),
            (x0 + grid / 2, note_y + 20),
            13.0,
            GREY,
            CENTER,
        )?;
        Ok(())
    }
}

/// Draws the confusion matrix as a heat map to `dir/stem.png` and `dir/stem.svg`: rows
/// are true classes labelled with `names`, columns predicted classes (by index), each cell
/// with its count; the diagonal is blue by per-class accuracy, errors red by count; the
/// per-class accuracy is printed right of each row. Returns the paths.
///
/// # Errors
/// [`Error::InvalidConfig`] when `names` does not have one name per class; [`Error::Io`]
/// naming the file that could not be drawn or written.
pub fn confusion_heatmap(
    confusion: &Confusion,
    names: &[String],
    title: &str,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>> {
    if names.len() != confusion.classes() {
        return Err(Error::InvalidConfig {
            name: "class names",
            value: names.len().to_string(),
            reason: format!("need one per class ({})", confusion.classes()),
        });
    }
    let c = confusion.classes().max(1) as u32;
    // 10 classes: 56-pixel cells; EMNIST's 47: 16-pixel cells.
    let cell = (720 / c).clamp(16, 56);
    // About 8 pixels per character at the row labels' size, plus the gap to the grid.
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as u32;
    let label_w = longest * 8 + 16;
    save(
        &Heatmap {
            confusion,
            names,
            title,
            cell,
            label_w,
        },
        dir,
        stem,
    )
}

struct MistakeGrid<'a> {
    mistakes: &'a [Mistake],
    data: &'a Dataset,
    names: &'a [String],
    title: &'a str,
    columns: usize,
    scale: u32,
}

const TILE_TEXT: u32 = 58;
const TILE_PAD: u32 = 14;
const GRID_TOP: u32 = 64;

impl MistakeGrid<'_> {
    fn tile(&self) -> (u32, u32) {
        let img_w = self.data.cols as u32 * self.scale;
        let img_h = self.data.rows as u32 * self.scale;
        (img_w.max(132) + TILE_PAD, img_h + TILE_TEXT + TILE_PAD)
    }
}

impl Figure for MistakeGrid<'_> {
    fn size(&self) -> (u32, u32) {
        let (tw, th) = self.tile();
        let rows = self.mistakes.len().div_ceil(self.columns).max(1) as u32;
        (
            (self.columns as u32 * tw + 2 * TILE_PAD)
                .max(520)
                .max(title_width(self.title)),
            GRID_TOP + rows * th + TILE_PAD,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let (w, _) = self.size();
        let (tw, th) = self.tile();
        text(root, self.title, (w as i32 / 2, 24), 20.0, BLACK, CENTER)?;
        text(
            root,
            "true class, predicted class with its softmax probability, test sample index",
            (w as i32 / 2, 46),
            13.0,
            GREY,
            CENTER,
        )?;
        let used = self.columns.min(self.mistakes.len().max(1)) as u32;
        let left = (w - used * tw) / 2;
        let s = self.scale as i32;
        let (rows, cols) = (self.data.rows, self.data.cols);
        for (k, m) in self.mistakes.iter().enumerate() {
            let (gx, gy) = ((k % self.columns) as u32, (k / self.columns) as u32);
            let tx = (left + gx * tw) as i32;
            let ty = (GRID_TOP + gy * th) as i32;
            let img_w = cols as i32 * s;
            let ix = tx + (tw as i32 - img_w) / 2;
            let iy = ty + TILE_PAD as i32 / 2;
            let pixels = self.data.image(m.index);
            for r in 0..rows {
                for c in 0..cols {
                    let p = pixels[r * cols + c];
                    if p == 0 {
                        continue;
                    }
                    let g = 255 - p;
                    let (x, y) = (ix + c as i32 * s, iy + r as i32 * s);
                    root.draw(&Rectangle::new(
                        [(x, y), (x + s, y + s)],
                        RGBColor(g, g, g).filled(),
                    ))
                    .map_err(err)?;
                }
            }
            let img_h = rows as i32 * s;
            root.draw(&Rectangle::new(
                [(ix - 1, iy - 1), (ix + img_w + 1, iy + img_h + 1)],
                GRID,
            ))
            .map_err(err)?;
            let cx = tx + tw as i32 / 2;
            let ly = iy + img_h + 14;
            text(
                root,
                &format!("true {}", self.names[m.label]),
                (cx, ly),
                14.0,
                BLACK,
                CENTER,
            )?;
            text(
                root,
                &format!(
                    "pred {} ({:.1}%)",
                    self.names[m.predicted.class],
                    100.0 * m.predicted.confidence
                ),
                (cx, ly + 18),
                14.0,
                RED,
                CENTER,
            )?;
            text(
                root,
                &format!("#{}", m.index),
                (cx, ly + 35),
                11.0,
                GREY,
                CENTER,
            )?;
        }
        Ok(())
    }
}

/// Draws the misclassified images `mistakes` (indices into `data`) in a grid of up to 8
/// columns, each with its true class, predicted class and confidence, and its index, to
/// `dir/stem.png` and `dir/stem.svg`. Returns the paths.
///
/// # Errors
/// [`Error::InvalidConfig`] when a mistake's index or class is out of range of `data` or
/// `names`; [`Error::Io`] naming the file that could not be drawn or written.
pub fn mistakes_grid(
    mistakes: &[Mistake],
    data: &Dataset,
    names: &[String],
    title: &str,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>> {
    if let Some(m) = mistakes.iter().find(|m| {
        m.index >= data.len() || m.label >= names.len() || m.predicted.class >= names.len()
    }) {
        return Err(Error::InvalidConfig {
            name: "mistake",
            value: format!(
                "sample {} (true {}, predicted {})",
                m.index, m.label, m.predicted.class
            ),
            reason: format!(
                "outside the {} samples or {} classes",
                data.len(),
                names.len()
            ),
        });
    }
    // 28x28 images at 4x; larger images at a scale that keeps tiles near 112 pixels.
    let scale = (112 / data.rows.max(data.cols).max(1) as u32).max(1);
    save(
        &MistakeGrid {
            mistakes,
            data,
            names,
            title,
            columns: 8,
            scale,
        },
        dir,
        stem,
    )
}
