//! Pictures people look at: grids of samples as PNG, one PNG per sample, animated GIFs of
//! sampling chains and strips of chain snapshots.
//!
//! Images come in as model-space `f32` values, NCHW, described by a [`Layout`]; the layout's
//! `range` maps to 0–255 (clamped) for display only. Every file is written atomically (a
//! temporary file in the same directory, then a rename), after creating missing parent
//! directories. Wrong buffer lengths and impossible layouts are [`ImageIoError`]s, never panics.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::png::PngEncoder;
pub use shared::generate::to_u8;

use image::{Delay, DynamicImage, ExtendedColorType, Frame, GrayImage, ImageEncoder, RgbImage};

/// Pixels between images in grids and strips.
pub const GAP: usize = 2;
/// The colour of the gaps (and of empty grid cells): mid-gray.
pub const GAP_VALUE: u8 = 128;
/// The most bytes one rendered picture may take (guards against absurd layouts).
const MAX_PICTURE_BYTES: usize = 1 << 30;

/// The shape of a batch of images and the value range that maps to black..white.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Number of images.
    pub count: usize,
    /// Channels per image: 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Model-space values `[black, white]`; values outside are clamped.
    pub range: [f32; 2],
}

impl Layout {
    /// Number of values in one image: C·H·W.
    pub fn image_len(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// Number of values `count` images need, or `None` if that overflows.
    pub fn total_len(&self) -> Option<usize> {
        self.count
            .checked_mul(self.channels)?
            .checked_mul(self.height)?
            .checked_mul(self.width)
    }

    /// Checks everything but buffer lengths: channels 1 or 3, non-zero sizes, a usable range.
    fn validate(&self) -> Result<(), ImageIoError> {
        if self.channels != 1 && self.channels != 3 {
            return Err(ImageIoError::BadLayout(format!(
                "{} channels; only 1 (gray) or 3 (RGB) can be shown",
                self.channels
            )));
        }
        if self.count == 0 || self.height == 0 || self.width == 0 {
            return Err(ImageIoError::BadLayout(format!(
                "{} images of {}×{}: nothing to draw",
                self.count, self.width, self.height
            )));
        }
        let [lo, hi] = self.range;
        if !lo.is_finite() || !hi.is_finite() || lo == hi {
            return Err(ImageIoError::BadRange { range: self.range });
        }
        Ok(())
    }

    /// Checks a buffer of `count` images.
    fn check_buffer(&self, what: &str, len: usize) -> Result<(), ImageIoError> {
        match self.total_len() {
            Some(expected) if expected == len => Ok(()),
            expected => Err(ImageIoError::BufferLength {
                what: what.to_owned(),
                shape: format!(
                    "{} images of {}×{}×{}",
                    self.count, self.channels, self.height, self.width
                ),
                expected: expected.map_or_else(|| "more than usize::MAX".into(), |n| n.to_string()),
                found: len,
            }),
        }
    }
}

/// Errors writing pictures. Messages name the file or the buffer and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    /// Creating a directory or writing/renaming a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The encoder refused the picture.
    #[error("{}: cannot encode: {message}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// A buffer's length does not match the layout.
    #[error("{what}: {shape} need {expected} values, got {found}")]
    BufferLength {
        /// Which buffer ("images", "frame 3").
        what: String,
        /// The layout, in words.
        shape: String,
        /// The length the layout needs.
        expected: String,
        /// The length given.
        found: usize,
    },
    /// A layout, column count, scale or frame list that cannot be drawn.
    #[error("cannot draw {0}")]
    BadLayout(String),
    /// A display range that is not finite or has equal ends.
    #[error("display range {range:?} is unusable: its ends must be finite and different")]
    BadRange {
        /// The range given.
        range: [f32; 2],
    },
}

/// NumPy `.npy` (format 1.0, little-endian f32, C order) bytes of `values` with `shape`, for
/// reading samples as numbers (`numpy.load`, the browser tests).
#[must_use]
pub fn npy_bytes(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// A picture being drawn: interleaved 8-bit gray or RGB.
struct Canvas {
    width: usize,
    height: usize,
    channels: usize,
    bytes: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, channels: usize) -> Result<Self, ImageIoError> {
        let len = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(channels));
        match len {
            Some(len) if len <= MAX_PICTURE_BYTES && u32::try_from(width.max(height)).is_ok() => {
                Ok(Self {
                    width,
                    height,
                    channels,
                    bytes: vec![GAP_VALUE; len],
                })
            }
            _ => Err(ImageIoError::BadLayout(format!(
                "a {width}×{height} picture: larger than the {MAX_PICTURE_BYTES} bytes allowed"
            ))),
        }
    }

    /// Draws one C·H·W image (already u8) with its top-left corner at (x0, y0), each pixel a
    /// `scale`×`scale` block.
    fn paint(&mut self, image: &[u8], layout: &Layout, x0: usize, y0: usize, scale: usize) {
        let (h, w, c) = (layout.height, layout.width, layout.channels);
        for y in 0..h {
            for x in 0..w {
                for dy in 0..scale {
                    let row = (y0 + y * scale + dy) * self.width;
                    for dx in 0..scale {
                        let at = (row + x0 + x * scale + dx) * self.channels;
                        for ch in 0..c {
                            self.bytes[at + ch] = image[(ch * h + y) * w + x];
                        }
                    }
                }
            }
        }
    }

    fn into_image(self) -> DynamicImage {
        // Canvas::new checked that the sides fit u32 and the buffer matches them.
        let (w, h) = (self.width as u32, self.height as u32);
        let image = if self.channels == 1 {
            GrayImage::from_raw(w, h, self.bytes).map(DynamicImage::ImageLuma8)
        } else {
            RgbImage::from_raw(w, h, self.bytes).map(DynamicImage::ImageRgb8)
        };
        image.unwrap_or_else(|| DynamicImage::new_luma8(w, h))
    }
}

/// The side length of `n` cells of `cell` pixels with gaps between them.
fn span(n: usize, cell: usize) -> Option<usize> {
    n.checked_mul(cell)?.checked_add(n.saturating_sub(1) * GAP)
}

fn check_scale(scale: usize) -> Result<(), ImageIoError> {
    if scale == 0 {
        return Err(ImageIoError::BadLayout(
            "at scale 0: the scale must be at least 1".into(),
        ));
    }
    Ok(())
}

fn too_large(what: &str) -> ImageIoError {
    ImageIoError::BadLayout(format!("{what}: its size overflows"))
}

/// Renders `layout.count` images (NCHW values) as one grid picture with `columns` columns
/// (0 picks ⌈√count⌉; more than `count` is cut to `count`), a [`GAP`]-pixel mid-gray gap between
/// cells, each image upscaled by `scale` (nearest neighbour). Gray images give a gray picture,
/// RGB an RGB one.
pub fn render_grid(
    images: &[f32],
    layout: &Layout,
    columns: usize,
    scale: usize,
) -> Result<DynamicImage, ImageIoError> {
    layout.validate()?;
    check_scale(scale)?;
    layout.check_buffer("images", images.len())?;
    let columns = match columns {
        0 => (1..=layout.count)
            .find(|c| c * c >= layout.count)
            .unwrap_or(1),
        c => c.min(layout.count),
    };
    let rows = layout.count.div_ceil(columns);
    let cell_w = layout
        .width
        .checked_mul(scale)
        .ok_or_else(|| too_large("a grid cell"))?;
    let cell_h = layout
        .height
        .checked_mul(scale)
        .ok_or_else(|| too_large("a grid cell"))?;
    let width = span(columns, cell_w).ok_or_else(|| too_large("the grid"))?;
    let height = span(rows, cell_h).ok_or_else(|| too_large("the grid"))?;
    let mut canvas = Canvas::new(width, height, layout.channels)?;
    let pixels = to_u8(images, layout.range);
    for (i, image) in pixels.chunks_exact(layout.image_len()).enumerate() {
        let (row, col) = (i / columns, i % columns);
        canvas.paint(
            image,
            layout,
            col * (cell_w + GAP),
            row * (cell_h + GAP),
            scale,
        );
    }
    Ok(canvas.into_image())
}

/// Renders a strip: one row per image, one column per frame (each frame a buffer of
/// `layout.count` images), with [`GAP`]-pixel gaps, upscaled by `scale`.
pub fn render_strip(
    frames: &[Vec<f32>],
    layout: &Layout,
    scale: usize,
) -> Result<DynamicImage, ImageIoError> {
    layout.validate()?;
    check_scale(scale)?;
    if frames.is_empty() {
        return Err(ImageIoError::BadLayout("a strip of no frames".into()));
    }
    for (i, frame) in frames.iter().enumerate() {
        layout.check_buffer(&format!("frame {i}"), frame.len())?;
    }
    let cell_w = layout
        .width
        .checked_mul(scale)
        .ok_or_else(|| too_large("a strip cell"))?;
    let cell_h = layout
        .height
        .checked_mul(scale)
        .ok_or_else(|| too_large("a strip cell"))?;
    let width = span(frames.len(), cell_w).ok_or_else(|| too_large("the strip"))?;
    let height = span(layout.count, cell_h).ok_or_else(|| too_large("the strip"))?;
    let mut canvas = Canvas::new(width, height, layout.channels)?;
    for (col, frame) in frames.iter().enumerate() {
        let pixels = to_u8(frame, layout.range);
        for (row, image) in pixels.chunks_exact(layout.image_len()).enumerate() {
            canvas.paint(
                image,
                layout,
                col * (cell_w + GAP),
                row * (cell_h + GAP),
                scale,
            );
        }
    }
    Ok(canvas.into_image())
}

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Writes `path` atomically: `write` fills a temporary file in the same directory, which is
/// then renamed over `path`. Missing parent directories are created.
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), ImageIoError>,
) -> Result<(), ImageIoError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| ImageIoError::Io { path: p, source }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let file = File::create(&temp).map_err(io(&temp))?;
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        writer.flush().map_err(io(&temp))?;
        drop(writer);
        std::fs::rename(&temp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_png(path: &Path, picture: &DynamicImage) -> Result<(), ImageIoError> {
    let color = match picture {
        DynamicImage::ImageLuma8(_) => ExtendedColorType::L8,
        _ => ExtendedColorType::Rgb8,
    };
    write_atomic(path, |writer| {
        PngEncoder::new(writer)
            .write_image(picture.as_bytes(), picture.width(), picture.height(), color)
            .map_err(|e| ImageIoError::Encode {
                path: path.to_owned(),
                message: e.to_string(),
            })
    })
}

/// A density map (row-major, `height × width`, any non-negative scale) as one RGB image
/// (CHW, 0–255) in a black → purple → orange → yellow colour ramp, scaled to its maximum:
/// pass it to [`save_grid`] with range `[0, 255]`.
pub fn heat_colours(values: &[f64]) -> Vec<f32> {
    const RAMP: [[f64; 3]; 5] = [[0.0, 0.0, 4.0], [87.0, 16.0, 110.0], [188.0, 55.0, 84.0], [249.0, 142.0, 9.0], [252.0, 255.0, 164.0]];
    let top = values.iter().copied().fold(0.0, f64::max);
    let mut planes: [Vec<f32>; 3] = std::array::from_fn(|_| Vec::with_capacity(values.len()));
    for v in values {
        let t = if top > 0.0 { (v / top).clamp(0.0, 1.0) } else { 0.0 } * (RAMP.len() - 1) as f64;
        let low = (t.floor() as usize).min(RAMP.len() - 2);
        let frac = t - low as f64;
        for (channel, plane) in planes.iter_mut().enumerate() {
            plane.push((RAMP[low][channel] * (1.0 - frac) + RAMP[low + 1][channel] * frac) as f32);
        }
    }
    planes.concat()
}

/// Saves `layout.count` images (NCHW f32, 1 or 3 channels) as one PNG grid with `columns`
/// columns (0: ⌈√count⌉) and a 2-pixel mid-gray gap, upscaling each image by integer `scale`
/// (nearest), so tiny 28×28 digits are visible. Creates parent dirs; writes atomically.
pub fn save_grid(
    path: &Path,
    images: &[f32],
    layout: &Layout,
    columns: usize,
    scale: usize,
) -> Result<(), ImageIoError> {
    write_png(path, &render_grid(images, layout, columns, scale)?)
}

/// Saves panels of different sizes side by side, top-aligned, with a [`GAP`]-pixel mid-gray
/// gap (e.g. a training texture, a synthesis of the same size and one twice as large). Each
/// panel is one image (`count` 1); all must have the same channel count.
pub fn save_row(path: &Path, panels: &[(&[f32], Layout)]) -> Result<(), ImageIoError> {
    let Some((_, first)) = panels.first() else {
        return Err(ImageIoError::BadLayout("a row of no panels".into()));
    };
    for (values, layout) in panels {
        layout.validate()?;
        layout.check_buffer("panel", values.len())?;
        if layout.channels != first.channels || layout.count != 1 {
            return Err(ImageIoError::BadLayout("the panels of a row must be single images with the same channels".into()));
        }
    }
    let width = panels.iter().map(|(_, l)| l.width).sum::<usize>() + GAP * (panels.len() - 1);
    let height = panels.iter().map(|(_, l)| l.height).max().unwrap_or(1);
    let mut canvas = Canvas::new(width, height, first.channels)?;
    let mut x = 0;
    for (values, layout) in panels {
        canvas.paint(&to_u8(values, layout.range), layout, x, 0, 1);
        x += layout.width + GAP;
    }
    write_png(path, &canvas.into_image())
}

/// Saves each image as its own PNG in `dir` named `{prefix}{index:04}.png` (at native size);
/// returns the paths written, in order. Creates `dir`; writes each file atomically.
pub fn save_each(
    dir: &Path,
    prefix: &str,
    images: &[f32],
    layout: &Layout,
) -> Result<Vec<PathBuf>, ImageIoError> {
    layout.validate()?;
    layout.check_buffer("images", images.len())?;
    let single = Layout {
        count: 1,
        ..*layout
    };
    let mut written = Vec::with_capacity(layout.count);
    for (i, image) in images.chunks_exact(layout.image_len()).enumerate() {
        let path = dir.join(format!("{prefix}{i:04}.png"));
        write_png(&path, &render_grid(image, &single, 1, 1)?)?;
        written.push(path);
    }
    Ok(written)
}

/// Saves an animated GIF that loops forever: `frames` is a list of batches (each NCHW values of
/// `layout.count` images), each rendered like [`save_grid`] and shown for `delay_ms`
/// (GIF stores hundredths of a second). Creates parent dirs; writes atomically.
pub fn save_gif(
    path: &Path,
    frames: &[Vec<f32>],
    layout: &Layout,
    columns: usize,
    scale: usize,
    delay_ms: u32,
) -> Result<(), ImageIoError> {
    if frames.is_empty() {
        return Err(ImageIoError::BadLayout("a GIF of no frames".into()));
    }
    let mut pictures = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let picture = render_grid(frame, layout, columns, scale).map_err(|e| match e {
            ImageIoError::BufferLength {
                shape,
                expected,
                found,
                ..
            } => ImageIoError::BufferLength {
                what: format!("frame {i}"),
                shape,
                expected,
                found,
            },
            other => other,
        })?;
        if picture.width() > u32::from(u16::MAX) || picture.height() > u32::from(u16::MAX) {
            return Err(ImageIoError::BadLayout(format!(
                "a {}×{} GIF: GIF sides are at most 65535",
                picture.width(),
                picture.height()
            )));
        }
        pictures.push(picture);
    }
    let encode_error = |e: image::ImageError| ImageIoError::Encode {
        path: path.to_owned(),
        message: e.to_string(),
    };
    write_atomic(path, |writer| {
        let mut encoder = GifEncoder::new_with_speed(writer, 10);
        encoder.set_repeat(Repeat::Infinite).map_err(encode_error)?;
        for picture in pictures {
            let delay = Delay::from_numer_denom_ms(delay_ms, 1);
            encoder
                .encode_frame(Frame::from_parts(picture.into_rgba8(), 0, 0, delay))
                .map_err(encode_error)?;
        }
        Ok(())
    })
}

/// Saves a strip of frames (e.g. a chain every N steps) as one PNG: rows = images, columns =
/// frames, 2-pixel mid-gray gaps, each image upscaled by `scale`. Creates parent dirs; writes
/// atomically.
pub fn save_strip(
    path: &Path,
    frames: &[Vec<f32>],
    layout: &Layout,
    scale: usize,
) -> Result<(), ImageIoError> {
    write_png(path, &render_strip(frames, layout, scale)?)
}

#[cfg(test)]
mod tests {
    use image::AnimationDecoder;
    use image::codecs::gif::GifDecoder;

    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "trainer-imageio-test-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn gray(count: usize, h: usize, w: usize) -> Layout {
        Layout {
            count,
            channels: 1,
            height: h,
            width: w,
            range: [0.0, 1.0],
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn npy_header_is_aligned_and_describes_the_array() {
        let bytes = npy_bytes(&[1.0, -2.5], &[1, 2]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).expect("ascii header");
        assert!(header.contains("'shape': (1, 2)") && header.ends_with('\n'), "{header}");
        assert_eq!(&bytes[10 + header_len..], [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat());
    }

    #[test]
    fn grid_renders_known_bytes() {
        // Three 2×2 gray images: 0, 1 and a diagonal; 2 columns, scale 2.
        let images = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let picture = render_grid(&images, &gray(3, 2, 2), 2, 2).expect("render");
        let picture = picture.as_luma8().expect("gray picture");
        assert_eq!(picture.dimensions(), (2 * 4 + 2, 2 * 4 + 2));
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            [0, 0, 0, 0, 128, 128, 255, 255, 255, 255],
            [0, 0, 0, 0, 128, 128, 255, 255, 255, 255],
            [0, 0, 0, 0, 128, 128, 255, 255, 255, 255],
            [0, 0, 0, 0, 128, 128, 255, 255, 255, 255],
            [128; 10],
            [128; 10],
            [255, 255, 0, 0, 128, 128, 128, 128, 128, 128],
            [255, 255, 0, 0, 128, 128, 128, 128, 128, 128],
            [0, 0, 255, 255, 128, 128, 128, 128, 128, 128],
            [0, 0, 255, 255, 128, 128, 128, 128, 128, 128],
        ].concat();
        assert_eq!(picture.as_raw(), &expected);
    }

    #[test]
    fn grid_columns_and_colour() {
        let layout = Layout {
            count: 5,
            channels: 3,
            height: 1,
            width: 1,
            range: [-1.0, 1.0],
        };
        // Image i is (red, green, blue) = (1, -1, 0) for i = 0, else gray 0.
        let mut images = vec![0.0; 15];
        images[0] = 1.0;
        images[1] = -1.0;
        let auto = render_grid(&images, &layout, 0, 3).expect("auto columns");
        assert_eq!((auto.width(), auto.height()), (3 * 3 + 2 * 2, 2 * 3 + 2));
        let rgb = auto.as_rgb8().expect("rgb");
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 128]);
        assert_eq!(rgb.get_pixel(2, 2).0, [255, 0, 128]);
        assert_eq!(rgb.get_pixel(3, 0).0, [128, 128, 128]); // gap
        assert_eq!(rgb.get_pixel(5, 0).0, [128, 128, 128]); // image 1: 0 → mid-gray
        let wide = render_grid(&images, &layout, 99, 1).expect("columns cut to count");
        assert_eq!((wide.width(), wide.height()), (5 + 4 * 2, 1));
    }

    #[test]
    fn save_grid_writes_png_atomically() {
        let dir = TempDir::new("grid");
        let path = dir.0.join("nested/deeper/grid.png");
        let images: Vec<f32> = (0..4 * 28 * 28).map(|i| (i % 256) as f32).collect();
        let layout = Layout {
            count: 4,
            channels: 1,
            height: 28,
            width: 28,
            range: [0.0, 255.0],
        };
        save_grid(&path, &images, &layout, 2, 3).expect("save");
        let back = image::open(&path).expect("decode png");
        assert_eq!((back.width(), back.height()), (2 * 84 + 2, 2 * 84 + 2));
        let back = back.to_luma8();
        assert_eq!(back.get_pixel(3, 0).0, [1]);
        assert_eq!(back.get_pixel(84 + 2, 0).0, [(784 % 256) as u8]);
        // Overwriting works, and no temporary file is left behind.
        save_grid(&path, &images, &layout, 4, 1).expect("overwrite");
        assert_eq!(image::open(&path).expect("decode").width(), 4 * 28 + 3 * 2);
        assert_eq!(
            names(&dir.0.join("nested/deeper")),
            vec!["grid.png".to_owned()]
        );
    }

    #[test]
    fn wrong_buffers_and_layouts_are_errors() {
        let dir = TempDir::new("errors");
        let path = dir.0.join("x.png");
        let err = save_grid(&path, &[0.0; 5], &gray(2, 2, 2), 1, 1).expect_err("short");
        assert!(
            matches!(err, ImageIoError::BufferLength { found: 5, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "images: 2 images of 1×2×2 need 8 values, got 5"
        );
        let bad_channels = Layout {
            channels: 2,
            ..gray(1, 1, 1)
        };
        assert!(matches!(
            save_grid(&path, &[0.0; 2], &bad_channels, 1, 1),
            Err(ImageIoError::BadLayout(_))
        ));
        assert!(matches!(
            save_grid(&path, &[], &gray(0, 2, 2), 1, 1),
            Err(ImageIoError::BadLayout(_))
        ));
        assert!(matches!(
            save_grid(&path, &[0.0], &gray(1, 1, 1), 1, 0),
            Err(ImageIoError::BadLayout(_))
        ));
        let flat = Layout {
            range: [1.0, 1.0],
            ..gray(1, 1, 1)
        };
        assert!(matches!(
            save_grid(&path, &[0.0], &flat, 1, 1),
            Err(ImageIoError::BadRange { .. })
        ));
        let nan = Layout {
            range: [0.0, f32::NAN],
            ..gray(1, 1, 1)
        };
        assert!(matches!(
            save_grid(&path, &[0.0], &nan, 1, 1),
            Err(ImageIoError::BadRange { .. })
        ));
        let huge = Layout {
            count: usize::MAX,
            ..gray(1, 1, 1)
        };
        assert!(matches!(
            save_grid(&path, &[0.0], &huge, 1, 1),
            Err(ImageIoError::BufferLength { .. })
        ));
        let err =
            save_grid(&path, &[0.0], &gray(1, 1, 1), 1, usize::MAX / 2).expect_err("absurd scale");
        assert!(matches!(err, ImageIoError::BadLayout(_)), "{err}");
        let frames = vec![vec![0.0; 4], vec![0.0; 3]];
        let err = save_strip(&path, &frames, &gray(1, 2, 2), 1).expect_err("short frame");
        assert!(err.to_string().starts_with("frame 1:"), "{err}");
        let err = save_gif(&dir.0.join("x.gif"), &frames, &gray(1, 2, 2), 1, 1, 100)
            .expect_err("short frame");
        assert!(
            matches!(&err, ImageIoError::BufferLength { what, .. } if what == "frame 1"),
            "{err}"
        );
        assert!(matches!(
            save_gif(&dir.0.join("x.gif"), &[], &gray(1, 2, 2), 1, 1, 100),
            Err(ImageIoError::BadLayout(_))
        ));
        assert!(matches!(
            save_strip(&path, &[], &gray(1, 2, 2), 1),
            Err(ImageIoError::BadLayout(_))
        ));
        assert!(matches!(
            save_each(&dir.0, "s", &[0.0; 3], &gray(1, 2, 2)),
            Err(ImageIoError::BufferLength { .. })
        ));
        // Nothing was written by any of these.
        assert!(names(&dir.0).is_empty(), "{:?}", names(&dir.0));
        // A path whose parent is a file cannot be created: an I/O error naming it.
        std::fs::write(dir.0.join("file"), b"x").expect("write");
        let err = save_grid(&dir.0.join("file/x.png"), &[0.0], &gray(1, 1, 1), 1, 1)
            .expect_err("parent is a file");
        assert!(matches!(err, ImageIoError::Io { .. }), "{err}");
    }

    #[test]
    fn gif_has_every_frame() {
        let dir = TempDir::new("gif");
        let path = dir.0.join("chain.gif");
        let layout = gray(4, 8, 8);
        let frames: Vec<Vec<f32>> = (0..3).map(|f| vec![f as f32 / 2.0; 4 * 64]).collect();
        save_gif(&path, &frames, &layout, 2, 2, 120).expect("save gif");
        let file = std::io::BufReader::new(File::open(&path).expect("open gif"));
        let decoded = GifDecoder::new(file)
            .expect("gif header")
            .into_frames()
            .collect_frames()
            .expect("frames");
        assert_eq!(decoded.len(), 3);
        for (frame, value) in decoded.iter().zip([0u8, 128, 255]) {
            let buffer = frame.buffer();
            assert_eq!(buffer.dimensions(), (2 * 16 + 2, 2 * 16 + 2));
            assert_eq!(buffer.get_pixel(0, 0).0, [value, value, value, 255]);
            assert_eq!(buffer.get_pixel(16, 0).0, [128, 128, 128, 255]);
            assert_eq!(frame.delay().numer_denom_ms(), (120, 1));
        }
        // The GIF loops forever (NETSCAPE2.0 extension, loop count 0).
        let bytes = std::fs::read(&path).expect("read gif");
        let at = bytes
            .windows(11)
            .position(|w| w == b"NETSCAPE2.0")
            .expect("loop extension");
        assert_eq!(&bytes[at + 11..at + 15], &[3, 1, 0, 0]);
    }

    #[test]
    fn colour_gif() {
        let dir = TempDir::new("gif-rgb");
        let path = dir.0.join("rgb.gif");
        let layout = Layout {
            count: 2,
            channels: 3,
            height: 4,
            width: 4,
            range: [0.0, 1.0],
        };
        let mut frame = vec![0.0; 2 * 3 * 16];
        frame[..16].fill(1.0); // image 0 red
        save_gif(&path, &[frame.clone(), frame], &layout, 0, 1, 50).expect("save");
        let file = std::io::BufReader::new(File::open(&path).expect("open gif"));
        let decoded = GifDecoder::new(file)
            .expect("gif header")
            .into_frames()
            .collect_frames()
            .expect("frames");
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].buffer().get_pixel(0, 0).0, [255, 0, 0, 255]);
        assert_eq!(decoded[0].buffer().get_pixel(6, 0).0, [0, 0, 0, 255]);
    }

    #[test]
    fn strip_dimensions_and_cells() {
        let dir = TempDir::new("strip");
        let path = dir.0.join("strip.png");
        let layout = gray(2, 3, 3);
        // Frame f: image 0 is f/4, image 1 is 1.
        let frames: Vec<Vec<f32>> = (0..4)
            .map(|f| [vec![f as f32 / 4.0; 9], vec![1.0; 9]].concat())
            .collect();
        save_strip(&path, &frames, &layout, 1).expect("save");
        let back = image::open(&path).expect("decode").to_luma8();
        assert_eq!(back.dimensions(), (4 * 3 + 3 * 2, 2 * 3 + 2));
        for f in 0..4u32 {
            assert_eq!(
                back.get_pixel(f * 5, 0).0,
                [to_u8(&[f as f32 / 4.0], [0.0, 1.0])[0]]
            );
            assert_eq!(back.get_pixel(f * 5 + 2, 5).0, [255]);
        }
        assert_eq!(back.get_pixel(3, 0).0, [GAP_VALUE]);
        assert_eq!(back.get_pixel(0, 3).0, [GAP_VALUE]);
    }

    #[test]
    fn each_image_its_own_file() {
        let dir = TempDir::new("each");
        let out = dir.0.join("samples");
        let layout = Layout {
            count: 3,
            channels: 3,
            height: 2,
            width: 5,
            range: [0.0, 255.0],
        };
        let images: Vec<f32> = (0..3 * 30).map(|i| i as f32).collect();
        let written = save_each(&out, "sample-", &images, &layout).expect("save");
        assert_eq!(written.len(), 3);
        assert_eq!(
            names(&out),
            vec!["sample-0000.png", "sample-0001.png", "sample-0002.png"]
        );
        let second = image::open(out.join("sample-0001.png"))
            .expect("decode")
            .to_rgb8();
        assert_eq!(second.dimensions(), (5, 2));
        assert_eq!(second.get_pixel(1, 1).0, [36, 46, 56]);
    }
}
