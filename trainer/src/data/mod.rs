//! Real image data into memory: MNIST-style IDX files, CIFAR-10 binary batches, folders of
//! PNG/JPEG/GIF images and single pictures, all loaded into one [`ImageSet`] of `f32` pixels in
//! `[0, 255]`, laid out NCHW.
//!
//! [`open`] detects the format from the path (see its documentation); [`open_resized`] also
//! resizes every image on load, which folders of mixed sizes need. Bad input never panics: every
//! problem is a [`DataError`] naming the file and what is wrong with it, and sizes declared in
//! headers are checked against the real file before anything is allocated for them.

mod cifar;
mod folder;
mod idx;
pub mod kdd;
pub mod toy;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Images in memory: `pixels` holds `count × channels × height × width` values in [0, 255] (f32),
/// row-major NCHW.
#[derive(Clone, PartialEq)]
pub struct ImageSet {
    /// All pixel values, image after image, each image plane after plane (C·H·W values each).
    pub pixels: Vec<f32>,
    /// Number of images.
    pub count: usize,
    /// Channels per image: 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// One class label per image, when the source has them (MNIST, Fashion-MNIST, CIFAR-10).
    pub labels: Option<Vec<u8>>,
}

impl fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pixels themselves would drown any log; the shape is what matters.
        f.debug_struct("ImageSet")
            .field("count", &self.count)
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("labelled", &self.labels.is_some())
            .finish()
    }
}

impl ImageSet {
    /// Builds a set from raw parts, checking that `pixels` and `labels` have the right lengths.
    pub fn new(
        pixels: Vec<f32>,
        count: usize,
        channels: usize,
        height: usize,
        width: usize,
        labels: Option<Vec<u8>>,
    ) -> Result<Self, DataError> {
        let expected = count
            .checked_mul(channels)
            .and_then(|n| n.checked_mul(height))
            .and_then(|n| n.checked_mul(width));
        if expected != Some(pixels.len()) {
            return Err(DataError::ShapeMismatch {
                what: format!("{count} images of {channels}×{height}×{width}"),
                expected: expected.map_or_else(|| "more than usize::MAX".into(), |n| n.to_string()),
                found: pixels.len(),
            });
        }
        if let Some(labels) = &labels
            && labels.len() != count
        {
            return Err(DataError::ShapeMismatch {
                what: format!("labels for {count} images"),
                expected: count.to_string(),
                found: labels.len(),
            });
        }
        Ok(Self {
            pixels,
            count,
            channels,
            height,
            width,
            labels,
        })
    }

    /// Number of values in one image: C·H·W.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// One image's C·H·W values.
    ///
    /// # Panics
    /// If `index >= self.len()`, like slice indexing; [`ImageSet::get`] is the checked form.
    pub fn image(&self, index: usize) -> &[f32] {
        let len = self.image_len();
        &self.pixels[index * len..(index + 1) * len]
    }

    /// One image's C·H·W values, or `None` when `index` is out of range.
    pub fn get(&self, index: usize) -> Option<&[f32]> {
        if index >= self.count {
            return None;
        }
        let len = self.image_len();
        self.pixels.get(index * len..(index + 1) * len)
    }

    /// The label of image `index`, when the set has labels and the index is in range.
    pub fn label(&self, index: usize) -> Option<u8> {
        self.labels
            .as_ref()
            .and_then(|labels| labels.get(index).copied())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Keeps the images whose label is `class` (error if there are no labels / none match).
    pub fn filter_class(self, class: u8) -> Result<Self, DataError> {
        self.filter_class_from(class, "image set")
    }

    fn filter_class_from(self, class: u8, origin: &str) -> Result<Self, DataError> {
        let Some(labels) = &self.labels else {
            return Err(DataError::NoLabels {
                origin: origin.to_owned(),
                class,
            });
        };
        let len = self.image_len();
        let keep: Vec<usize> = (0..self.count)
            .filter(|&i| labels.get(i) == Some(&class))
            .collect();
        if keep.is_empty() {
            return Err(DataError::NoSuchClass {
                origin: origin.to_owned(),
                class,
            });
        }
        let mut pixels = Vec::with_capacity(keep.len() * len);
        for &i in &keep {
            pixels.extend_from_slice(&self.pixels[i * len..(i + 1) * len]);
        }
        Ok(Self {
            pixels,
            count: keep.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            labels: Some(vec![class; keep.len()]),
        })
    }

    /// First `n` images (all if fewer).
    #[must_use]
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.count);
        self.pixels.truncate(n * self.image_len());
        if let Some(labels) = &mut self.labels {
            labels.truncate(n);
        }
        self.count = n;
        self
    }

    /// Splits off the last `n` images as a held-out set: (train, held_out). If `n` is more than
    /// the set holds, everything is held out and the training part is empty.
    #[must_use]
    pub fn split_off(mut self, n: usize) -> (Self, Self) {
        let n = n.min(self.count);
        let keep = self.count - n;
        let held_pixels = self.pixels.split_off(keep * self.image_len());
        let held_labels = self.labels.as_mut().map(|labels| labels.split_off(keep));
        let held = Self {
            pixels: held_pixels,
            count: n,
            channels: self.channels,
            height: self.height,
            width: self.width,
            labels: held_labels,
        };
        self.count = keep;
        (self, held)
    }

    /// Resizes every image to `size`×`size` (triangle filter, i.e. bilinear when enlarging and an
    /// area-weighted average when shrinking; a non-square image is center-cropped to a square
    /// first) and converts it to `channels` (1 = luminance, 3 = gray replicated to RGB).
    ///
    /// Errors if `size` is 0 or `channels` is neither 1 nor 3.
    pub fn resize(self, size: usize, channels: usize) -> Result<Self, DataError> {
        check_target(size, channels)?;
        if size == self.height && size == self.width && channels == self.channels {
            return Ok(self);
        }
        let len = self.image_len();
        let mut pixels = Vec::with_capacity(self.count * channels * size * size);
        for i in 0..self.count {
            let image = &self.pixels[i * len..(i + 1) * len];
            pixels.extend(square_resize(
                image,
                self.channels,
                self.height,
                self.width,
                size,
                channels,
            ));
        }
        Ok(Self {
            pixels,
            count: self.count,
            channels,
            height: size,
            width: size,
            labels: self.labels,
        })
    }

    /// Pads every image with `value` on all sides to `size`×`size` (for 28×28 MNIST → 32×32
    /// without resampling; an odd difference puts the extra row/column at the bottom/right);
    /// error if `size` is smaller than the current height or width.
    pub fn pad_to(self, size: usize, value: f32) -> Result<Self, DataError> {
        if size < self.height || size < self.width {
            return Err(DataError::PadTooSmall {
                size,
                height: self.height,
                width: self.width,
            });
        }
        if size == self.height && size == self.width {
            return Ok(self);
        }
        let (h, w, c) = (self.height, self.width, self.channels);
        let top = (size - h) / 2;
        let left = (size - w) / 2;
        let len = self.image_len();
        let mut pixels = vec![value; self.count * c * size * size];
        for i in 0..self.count {
            for ch in 0..c {
                let src_plane = i * len + ch * h * w;
                let dst_plane = (i * c + ch) * size * size;
                for y in 0..h {
                    let src = &self.pixels[src_plane + y * w..src_plane + (y + 1) * w];
                    let dst = dst_plane + (top + y) * size + left;
                    pixels[dst..dst + w].copy_from_slice(src);
                }
            }
        }
        Ok(Self {
            pixels,
            count: self.count,
            channels: c,
            height: size,
            width: size,
            labels: self.labels,
        })
    }
}

/// Options for [`open`] and [`open_resized`]. The class filter is applied first, then the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// Keep at most this many images (the first ones, after the class filter).
    pub limit: Option<usize>,
    /// Keep only images with this label (needs a labelled source).
    pub class: Option<u8>,
    /// Which part of a data set with a train/test split to load.
    pub split: Split,
}

/// The part of a data set with a train/test split (MNIST, Fashion-MNIST, CIFAR-10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training images (`train-*` IDX files, `data_batch_*.bin`).
    #[default]
    Train,
    /// The test images (`t10k-*` IDX files, `test_batch.bin`).
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Everything that can go wrong loading or transforming image data. Messages name the file and
/// the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path does not exist.
    #[error("{}: no such file or directory", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// A data set directory lacks the files for the requested split.
    #[error("{}: no {split} data here (looked for {looked_for})", path.display())]
    MissingSplit {
        /// The directory.
        path: PathBuf,
        /// The split asked for.
        split: Split,
        /// The file names tried.
        looked_for: String,
    },
    /// The path is not in any format this loader knows.
    #[error("{}: unrecognised data format (looked for {looked_for})", path.display())]
    UnknownFormat {
        /// The file or directory.
        path: PathBuf,
        /// What was looked for.
        looked_for: String,
    },
    /// Reading (or decompressing) a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A row of a CSV table cannot be used.
    #[error("{}, line {line}: {reason}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file is too short to hold an IDX header.
    #[error("{}: only {found} bytes, too short for an IDX header{}", path.display(), after_gunzip(*compressed))]
    IdxHeaderTruncated {
        /// The file.
        path: PathBuf,
        /// Bytes found.
        found: u64,
        /// Whether the file was gzip-compressed.
        compressed: bool,
    },
    /// The IDX magic number is not the one expected (wrong type or number of dimensions).
    #[error("{}: IDX magic number is {found:#010x}, expected {expected}", path.display())]
    BadIdxMagic {
        /// The file.
        path: PathBuf,
        /// The magic number found (big-endian u32).
        found: u32,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// The IDX header declares more data than the file holds.
    #[error("{}: IDX header says {declared} but the file holds only {found} bytes of {payload}{}", path.display(), after_gunzip(*compressed))]
    IdxTruncated {
        /// The file.
        path: PathBuf,
        /// What the header declares, in words ("60000 images of 28×28").
        declared: String,
        /// What the payload is ("pixels", "labels").
        payload: &'static str,
        /// Payload bytes found.
        found: u64,
        /// Whether the file was gzip-compressed.
        compressed: bool,
    },
    /// The IDX header declares absurd dimensions.
    #[error("{}: IDX header declares dimensions {dims}, more than the {max} bytes this loader accepts; the file is corrupt or not IDX", path.display())]
    IdxDimensionsTooLarge {
        /// The file.
        path: PathBuf,
        /// The declared dimensions ("2147483648×28×28").
        dims: String,
        /// The largest payload accepted.
        max: u64,
    },
    /// The labels file has a different number of entries than the images file.
    #[error("{}: {label_count} labels, but {} holds {image_count} images", labels.display(), images.display())]
    LabelCountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Images declared.
        image_count: usize,
        /// Labels declared.
        label_count: usize,
    },
    /// A CIFAR-10 batch file whose length is not a whole number of 3073-byte records.
    #[error("{}: {len} bytes is not a whole number of CIFAR-10 records (1 label byte + 3072 pixel bytes = 3073 bytes each)", path.display())]
    CifarBadLength {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// Images in one folder differ in size.
    #[error("{}: image is {other_width}×{other_height} but {} is {first_width}×{first_height}; all images must have one size (open_resized resizes them on load)", other.display(), first.display())]
    InconsistentSizes {
        /// The first image, which set the size.
        first: PathBuf,
        /// Its width.
        first_width: usize,
        /// Its height.
        first_height: usize,
        /// The first image of another size.
        other: PathBuf,
        /// Its width.
        other_width: usize,
        /// Its height.
        other_height: usize,
    },
    /// The source holds no images.
    #[error("{}: holds no images", path.display())]
    Empty {
        /// The file or directory.
        path: PathBuf,
    },
    /// No image has the requested class label.
    #[error("{origin}: no image has class {class}")]
    NoSuchClass {
        /// The data source (a path, or "image set").
        origin: String,
        /// The class asked for.
        class: u8,
    },
    /// A class was asked for but the data has no labels.
    #[error("{origin}: has no labels, so class {class} cannot be selected")]
    NoLabels {
        /// The data source (a path, or "image set").
        origin: String,
        /// The class asked for.
        class: u8,
    },
    /// `pad_to` was asked for a size smaller than the images.
    #[error("cannot pad {width}×{height} images to {size}×{size}: the target is smaller")]
    PadTooSmall {
        /// The target size.
        size: usize,
        /// The current height.
        height: usize,
        /// The current width.
        width: usize,
    },
    /// A resize target that cannot be produced.
    #[error(
        "cannot resize to {size}×{size} with {channels} channels: size must be at least 1 and channels 1 or 3"
    )]
    BadTarget {
        /// The target size.
        size: usize,
        /// The target channel count.
        channels: usize,
    },
    /// Buffers whose lengths do not match the declared shape.
    #[error("{what} need {expected} values, got {found}")]
    ShapeMismatch {
        /// The shape, in words.
        what: String,
        /// The length the shape needs.
        expected: String,
        /// The length given.
        found: usize,
    },
}

fn after_gunzip(compressed: bool) -> &'static str {
    if compressed {
        " (after decompression)"
    } else {
        ""
    }
}

impl DataError {
    /// Wraps an I/O error with the path it concerns (a missing path becomes `NotFound`).
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_owned(),
            }
        } else {
            DataError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Opens a data source, detecting the format from the path:
/// - a directory containing MNIST/Fashion-MNIST IDX files (`train-images-idx3-ubyte`,
///   `train-images.idx3-ubyte`, `t10k-images-idx3-ubyte`, `t10k-images.idx3-ubyte`, each
///   optionally `.gz`; labels `*-labels-idx1-ubyte` / `*-labels.idx1-ubyte`, loaded when
///   present); `options.split` picks train or t10k;
/// - a single IDX image file (gzip-compressed or raw), with labels found next to it when its
///   name contains `images`/`idx3` (`…-labels-idx1-ubyte[.gz]`);
/// - a CIFAR-10 binary batch file (`*.bin`: records of 1 label byte + 3072 bytes of RGB planes,
///   32×32), or a directory (or its `cifar-10-batches-bin` subdirectory) holding
///   `data_batch_1.bin`..`data_batch_5.bin` (Train: those present, in order) or
///   `test_batch.bin` (Test);
/// - a single image file (PNG/JPEG/GIF): a set of one image (a texture);
/// - otherwise a directory of PNG/JPEG/GIF images, searched recursively and sorted by path;
///   other files, hidden files and macOS `._*` files are skipped. Images load at their native
///   size, and differing sizes are an [`DataError::InconsistentSizes`] error (use
///   [`open_resized`]). If any image has colour the set is RGB and gray images are replicated.
///
/// Gray images have 1 channel, colour images 3 (alpha is dropped). The class filter, then the
/// limit, of `options` are applied; a source with no images at all is an error.
pub fn open(path: &Path, options: &LoadOptions) -> Result<ImageSet, DataError> {
    match detect(path, options.split)? {
        Source::IdxDir(images, labels) | Source::IdxFile(images, labels) => {
            let raw = idx::load(&images, labels.as_deref())?;
            finish(raw, options, path)
        }
        Source::Cifar(files) => finish(cifar::load(&files, options)?, options, path),
        Source::ImageFile => finish(
            folder::load_files(path, &[path.to_owned()], options)?,
            options,
            path,
        ),
        Source::Folder => {
            let files = folder::list_images(path)?;
            finish(folder::load_files(path, &files, options)?, options, path)
        }
    }
}

/// The image files of a folder as [`open`] finds them (recursively, sorted by path, hidden files
/// skipped), or the path itself when it is one image file.
pub fn image_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    match detect(path, Split::Train)? {
        Source::Folder => folder::list_images(path),
        Source::ImageFile => Ok(vec![path.to_owned()]),
        _ => Err(DataError::Empty { path: path.to_owned() }),
    }
}

/// Like [`open`], but every image is resized to `size`×`size` and converted to `channels`
/// (1 or 3) as described at [`ImageSet::resize`]. Folders of mixed sizes load this way, one image
/// at a time, so memory holds only the resized set.
pub fn open_resized(
    path: &Path,
    options: &LoadOptions,
    size: usize,
    channels: usize,
) -> Result<ImageSet, DataError> {
    check_target(size, channels)?;
    match detect(path, options.split)? {
        Source::ImageFile => {
            folder::load_files_resized(path, &[path.to_owned()], options, size, channels)
        }
        Source::Folder => {
            let files = folder::list_images(path)?;
            folder::load_files_resized(path, &files, options, size, channels)
        }
        _ => open(path, options)?.resize(size, channels),
    }
}

/// What a path turned out to be.
enum Source {
    /// MNIST-style directory: the images file and, if found, the labels file.
    IdxDir(PathBuf, Option<PathBuf>),
    /// A single IDX images file and, if found, its labels file.
    IdxFile(PathBuf, Option<PathBuf>),
    /// CIFAR-10 batch files, in load order.
    Cifar(Vec<PathBuf>),
    /// A single picture.
    ImageFile,
    /// A folder of pictures.
    Folder,
}

const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "gif"];

fn detect(path: &Path, split: Split) -> Result<Source, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        if let Some((images, labels)) = idx::find_in_dir(path, split)? {
            return Ok(Source::IdxDir(images, labels));
        }
        if let Some(files) = cifar::find_in_dir(path, split)? {
            return Ok(Source::Cifar(files));
        }
        return Ok(Source::Folder);
    }
    let ext = extension(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        return Ok(Source::ImageFile);
    }
    if ext == "bin" {
        return Ok(Source::Cifar(vec![path.to_owned()]));
    }
    if name.contains("idx") {
        return Ok(Source::IdxFile(path.to_owned(), idx::find_labels_for(path)));
    }
    // No telling name: sniff the first bytes.
    let mut head = [0u8; 16];
    let n = read_head(path, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0, 0, 8]) {
        return Ok(Source::IdxFile(path.to_owned(), idx::find_labels_for(path)));
    }
    if image::guess_format(head).is_ok() {
        return Ok(Source::ImageFile);
    }
    Err(DataError::UnknownFormat {
        path: path.to_owned(),
        looked_for: "an IDX file (raw or .gz), a CIFAR-10 .bin batch, or a PNG/JPEG/GIF image"
            .into(),
    })
}

fn read_head(path: &Path, buf: &mut [u8]) -> Result<usize, DataError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut filled = 0;
    let mut reader = file.take(buf.len() as u64);
    loop {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
}

/// Lower-case extension of a path ("" when none).
fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Images as raw bytes (0–255) straight from a loader, before selection and conversion to f32.
struct RawSet {
    bytes: Vec<u8>,
    count: usize,
    channels: usize,
    height: usize,
    width: usize,
    labels: Option<Vec<u8>>,
}

/// Applies the class filter and the limit of `options`, then converts to f32.
fn finish(raw: RawSet, options: &LoadOptions, origin: &Path) -> Result<ImageSet, DataError> {
    if raw.count == 0 {
        return Err(DataError::Empty {
            path: origin.to_owned(),
        });
    }
    let len = raw.channels * raw.height * raw.width;
    let limit = options.limit.unwrap_or(usize::MAX);
    let selected: Vec<usize> = match options.class {
        None => (0..raw.count.min(limit)).collect(),
        Some(class) => {
            let Some(labels) = &raw.labels else {
                return Err(DataError::NoLabels {
                    origin: origin.display().to_string(),
                    class,
                });
            };
            let keep: Vec<usize> = (0..raw.count)
                .filter(|&i| labels.get(i) == Some(&class))
                .take(limit)
                .collect();
            if keep.is_empty() && limit > 0 {
                return Err(DataError::NoSuchClass {
                    origin: origin.display().to_string(),
                    class,
                });
            }
            keep
        }
    };
    let mut pixels = Vec::with_capacity(selected.len() * len);
    for &i in &selected {
        let Some(image) = raw.bytes.get(i * len..(i + 1) * len) else {
            return Err(DataError::ShapeMismatch {
                what: format!("{}: {} images of {len} bytes", origin.display(), raw.count),
                expected: (raw.count * len).to_string(),
                found: raw.bytes.len(),
            });
        };
        pixels.extend(image.iter().map(|&b| f32::from(b)));
    }
    let labels = raw.labels.map(|labels| {
        selected
            .iter()
            .filter_map(|&i| labels.get(i).copied())
            .collect()
    });
    ImageSet::new(
        pixels,
        selected.len(),
        raw.channels,
        raw.height,
        raw.width,
        labels,
    )
}

fn check_target(size: usize, channels: usize) -> Result<(), DataError> {
    if size == 0 || !(channels == 1 || channels == 3) {
        return Err(DataError::BadTarget { size, channels });
    }
    Ok(())
}

/// Converts one C·H·W image between 1 and 3 channels (luminance with Rec. 709 weights, or gray
/// replicated). Other channel counts are returned unchanged.
fn convert_channels(image: &[f32], channels: usize, plane: usize, target: usize) -> Vec<f32> {
    match (channels, target) {
        (3, 1) => (0..plane)
            .map(|p| 0.2126 * image[p] + 0.7152 * image[plane + p] + 0.0722 * image[2 * plane + p])
            .collect(),
        (1, 3) => image.iter().chain(image).chain(image).copied().collect(),
        _ => image.to_vec(),
    }
}

/// Center-crops one C·H·W image to a square, resizes it to `size`×`size` with a triangle filter
/// and converts it to `target` channels.
fn square_resize(
    image: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    size: usize,
    target: usize,
) -> Vec<f32> {
    let side = height.min(width);
    let top = (height - side) / 2;
    let left = (width - side) / 2;
    let converted;
    let (image, channels) = if target < channels {
        converted = convert_channels(image, channels, height * width, target);
        (converted.as_slice(), target)
    } else {
        (image, channels)
    };
    let rows = filter_weights(side, size);
    let cols = filter_weights(side, size);
    let mut out = Vec::with_capacity(channels * size * size);
    let mut horizontal = vec![0f32; side * size];
    for ch in 0..channels {
        let plane = &image[ch * height * width..(ch + 1) * height * width];
        // Horizontal pass over the cropped rows: side × size.
        for y in 0..side {
            let row = &plane[(top + y) * width + left..(top + y) * width + left + side];
            for (x, (start, weights)) in cols.iter().enumerate() {
                horizontal[y * size + x] =
                    weights.iter().zip(&row[*start..]).map(|(w, v)| w * v).sum();
            }
        }
        // Vertical pass: size × size.
        for (start, weights) in &rows {
            for x in 0..size {
                out.push(
                    weights
                        .iter()
                        .enumerate()
                        .map(|(k, w)| w * horizontal[(start + k) * size + x])
                        .sum(),
                );
            }
        }
    }
    if target > channels {
        convert_channels(&out, channels, size * size, target)
    } else {
        out
    }
}

/// Triangle-filter weights for resampling `input` samples to `output`: for each output sample,
/// the first input index and the normalised weights from there on (as `image`'s
/// `FilterType::Triangle`: the filter widens by the shrink factor when shrinking).
fn filter_weights(input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
    if input == 0 {
        // An empty image has nothing to sample: every output is an empty (zero) sum.
        return vec![(0, Vec::new()); output];
    }
    let ratio = input as f64 / output as f64;
    let scale = ratio.max(1.0);
    let support = scale; // the triangle's radius is 1 input sample, widened when shrinking
    (0..output)
        .map(|o| {
            let center = (o as f64 + 0.5) * ratio;
            let first = ((center - support).floor().max(0.0) as usize).min(input - 1);
            let end = ((center + support).ceil() as usize).clamp(first + 1, input);
            let mut weights: Vec<f64> = (first..end)
                .map(|i| (1.0 - ((i as f64 + 0.5 - center) / scale).abs()).max(0.0))
                .collect();
            let sum: f64 = weights.iter().sum();
            if sum > 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            } else {
                // Cannot happen for a triangle (the nearest sample always has weight > 0), but a
                // box fallback keeps the output finite regardless.
                let n = weights.len() as f64;
                weights.iter_mut().for_each(|w| *w = 1.0 / n);
            }
            (first, weights.into_iter().map(|w| w as f32).collect())
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Temporary directories for the loader tests.
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "trainer-data-test-{}-{n}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        pub(crate) fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(count: usize, channels: usize, h: usize, w: usize) -> ImageSet {
        let pixels = (0..count * channels * h * w)
            .map(|v| (v % 256) as f32)
            .collect();
        let labels = Some((0..count).map(|i| (i % 3) as u8).collect());
        ImageSet::new(pixels, count, channels, h, w, labels).expect("valid shape")
    }

    #[test]
    fn new_checks_lengths() {
        assert!(matches!(
            ImageSet::new(vec![0.0; 5], 2, 1, 2, 2, None),
            Err(DataError::ShapeMismatch { found: 5, .. })
        ));
        assert!(matches!(
            ImageSet::new(vec![0.0; 8], 2, 1, 2, 2, Some(vec![1])),
            Err(DataError::ShapeMismatch { found: 1, .. })
        ));
        assert!(matches!(
            ImageSet::new(vec![], usize::MAX, 2, 2, 2, None),
            Err(DataError::ShapeMismatch { .. })
        ));
        let s = ImageSet::new(vec![0.0; 8], 2, 1, 2, 2, None).expect("valid");
        assert_eq!((s.len(), s.is_empty(), s.image_len()), (2, false, 4));
        assert_eq!(
            format!("{s:?}"),
            "ImageSet { count: 2, channels: 1, height: 2, width: 2, labelled: false }"
        );
    }

    #[test]
    fn image_get_label() {
        let s = set(3, 1, 2, 2);
        assert_eq!(s.image(1), &[4.0, 5.0, 6.0, 7.0]);
        assert_eq!(s.get(2), Some(&[8.0, 9.0, 10.0, 11.0][..]));
        assert_eq!(s.get(3), None);
        assert_eq!(s.label(2), Some(2));
        assert_eq!(s.label(3), None);
    }

    #[test]
    fn filter_class_keeps_matching() {
        let s = set(7, 1, 1, 2).filter_class(1).expect("class 1 exists");
        assert_eq!(s.count, 2); // images 1 and 4
        assert_eq!(s.pixels, vec![2.0, 3.0, 8.0, 9.0]);
        assert_eq!(s.labels, Some(vec![1, 1]));
    }

    #[test]
    fn filter_class_errors() {
        let err = set(3, 1, 1, 1).filter_class(9).expect_err("no class 9");
        assert!(
            matches!(err, DataError::NoSuchClass { class: 9, .. }),
            "{err}"
        );
        let mut unlabelled = set(3, 1, 1, 1);
        unlabelled.labels = None;
        let err = unlabelled.filter_class(0).expect_err("no labels");
        assert!(matches!(err, DataError::NoLabels { class: 0, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "image set: has no labels, so class 0 cannot be selected"
        );
    }

    #[test]
    fn truncate_and_split_off() {
        let s = set(5, 1, 1, 2);
        let t = s.clone().truncate(2);
        assert_eq!((t.count, t.pixels.len()), (2, 4));
        assert_eq!(t.labels, Some(vec![0, 1]));
        assert_eq!(s.clone().truncate(99).count, 5);

        let (train, held) = s.clone().split_off(2);
        assert_eq!((train.count, held.count), (3, 2));
        assert_eq!(train.pixels, (0..6).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(held.pixels, vec![6.0, 7.0, 8.0, 9.0]);
        assert_eq!(train.labels, Some(vec![0, 1, 2]));
        assert_eq!(held.labels, Some(vec![0, 1]));

        let (train, held) = s.split_off(10);
        assert_eq!((train.count, held.count, train.pixels.len()), (0, 5, 0));
        assert!(train.is_empty());
    }

    #[test]
    fn resize_constant_stays_constant() {
        for (h, w, size) in [(10, 10, 4), (4, 4, 9), (7, 12, 5), (28, 28, 32), (3, 3, 3)] {
            let s = ImageSet::new(vec![77.0; 2 * 3 * h * w], 2, 3, h, w, None).expect("valid");
            let r = s.resize(size, 3).expect("resize");
            assert_eq!((r.count, r.channels, r.height, r.width), (2, 3, size, size));
            assert!(
                r.pixels.iter().all(|&v| (v - 77.0).abs() < 1e-3),
                "{h}×{w} → {size}"
            );
        }
    }

    #[test]
    fn resize_checkerboard_averages() {
        let n = 16;
        let pixels = (0..n * n)
            .map(|i| if (i / n + i % n) % 2 == 0 { 0.0 } else { 255.0 })
            .collect();
        let r = ImageSet::new(pixels, 1, 1, n, n, None)
            .expect("valid")
            .resize(n / 2, 1)
            .expect("resize");
        // Away from the border every output pixel averages two black and two white pixels.
        for y in 1..n / 2 - 1 {
            for x in 1..n / 2 - 1 {
                let v = r.pixels[y * n / 2 + x];
                assert!((v - 127.5).abs() < 1e-3, "({x},{y}) = {v}");
            }
        }
        // At the border the filter is clipped, but still mixes the two colours.
        assert!(r.pixels.iter().all(|&v| (v - 127.5).abs() < 40.0));
    }

    #[test]
    fn resize_identity_and_upscale() {
        let s = set(2, 1, 3, 3);
        assert_eq!(s.clone().resize(3, 1).expect("same size"), s);
        // A 2-pixel ramp enlarged stays within its range and keeps its order.
        let ramp = ImageSet::new(vec![0.0, 100.0, 0.0, 100.0], 1, 1, 2, 2, None).expect("valid");
        let up = ramp.resize(4, 1).expect("upscale");
        let row = &up.pixels[..4];
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert_eq!((row[0], row[3]), (0.0, 100.0));
    }

    #[test]
    fn resize_crops_center_and_converts_channels() {
        // 1×3 gray image, columns 10, 20, 30: the square crop is the middle column.
        let s = ImageSet::new(vec![10.0, 20.0, 30.0], 1, 1, 1, 3, None).expect("valid");
        let r = s.resize(1, 3).expect("resize");
        assert_eq!((r.channels, r.pixels.clone()), (3, vec![20.0, 20.0, 20.0]));
        // RGB → luminance.
        let rgb = ImageSet::new(vec![255.0, 0.0, 0.0], 1, 3, 1, 1, None).expect("valid");
        let gray = rgb.resize(1, 1).expect("resize");
        assert!((gray.pixels[0] - 0.2126 * 255.0).abs() < 1e-3);
        // Bad targets are errors, not panics.
        assert!(matches!(
            set(1, 1, 2, 2).resize(0, 1),
            Err(DataError::BadTarget { size: 0, .. })
        ));
        assert!(matches!(
            set(1, 1, 2, 2).resize(2, 2),
            Err(DataError::BadTarget { channels: 2, .. })
        ));
    }

    #[test]
    fn pad_to_centers() {
        let s = ImageSet::new(vec![1.0, 2.0, 3.0, 4.0], 1, 1, 2, 2, Some(vec![5])).expect("valid");
        let p = s.clone().pad_to(4, -1.0).expect("pad");
        #[rustfmt::skip]
        let expected = vec![
            -1.0, -1.0, -1.0, -1.0,
            -1.0,  1.0,  2.0, -1.0,
            -1.0,  3.0,  4.0, -1.0,
            -1.0, -1.0, -1.0, -1.0,
        ];
        assert_eq!((p.height, p.width, p.pixels), (4, 4, expected));
        assert_eq!(p.labels, Some(vec![5]));
        let mnist_like = ImageSet::new(vec![9.0; 2 * 28 * 28], 2, 1, 28, 28, None).expect("valid");
        let padded = mnist_like.pad_to(32, 0.0).expect("pad");
        assert_eq!(padded.pixels.len(), 2 * 32 * 32);
        assert_eq!(padded.image(1)[2 * 32 + 2], 9.0);
        assert_eq!(padded.image(1)[2 * 32 + 1], 0.0);
        assert_eq!(
            padded.pixels.iter().filter(|&&v| v == 9.0).count(),
            2 * 28 * 28
        );
        assert!(matches!(s.clone().pad_to(2, 0.0), Ok(same) if same == s));
        let err = s.pad_to(1, 0.0).expect_err("too small");
        assert!(
            matches!(err, DataError::PadTooSmall { size: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn options_serde_names() {
        // `serde` is only derived here; the trainer's config parser uses it. Check Split's names
        // through Display, which matches the serde rename.
        assert_eq!(Split::Train.to_string(), "train");
        assert_eq!(Split::Test.to_string(), "test");
        assert_eq!(LoadOptions::default().split, Split::Train);
    }

    #[test]
    fn open_missing_and_unknown() {
        let dir = test_util::TempDir::new("unknown");
        let err = open(&dir.join("nope"), &LoadOptions::default()).expect_err("missing");
        assert!(matches!(err, DataError::NotFound { .. }), "{err}");
        let odd = dir.join("notes.txt");
        std::fs::write(&odd, b"hello, not an image").expect("write");
        let err = open(&odd, &LoadOptions::default()).expect_err("unknown");
        assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("notes.txt"), "{err}");
    }

    /// A data set fetched by `scripts/fetch-data.sh` into the repository's `data/` (or
    /// `$TRAINER_DATA_DIR`), or `None` (with a note) when it is absent.
    fn fetched(name: &str) -> Option<PathBuf> {
        let root = std::env::var_os("TRAINER_DATA_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../data"),
            PathBuf::from,
        );
        let dir = root.join(name);
        if dir.is_dir() {
            Some(dir)
        } else {
            println!("skipped: no {} (run scripts/fetch-data.sh)", dir.display());
            None
        }
    }

    /// Real MNIST, when `scripts/fetch-data.sh` has fetched it (skipped otherwise).
    #[test]
    fn real_mnist_if_present() {
        let Some(dir) = fetched("mnist") else { return };
        let train = open(&dir, &LoadOptions::default()).expect("load MNIST train");
        assert_eq!(
            (train.count, train.channels, train.height, train.width),
            (60000, 1, 28, 28)
        );
        let labels = train.labels.as_ref().expect("MNIST has labels");
        let mut counts = [0usize; 10];
        for &l in labels {
            counts[usize::from(l)] += 1;
        }
        assert_eq!(
            counts,
            [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        );
        assert!(train.pixels.iter().all(|&v| (0.0..=255.0).contains(&v)));
        let test = open(
            &dir,
            &LoadOptions {
                split: Split::Test,
                limit: Some(10),
                class: None,
            },
        )
        .expect("load MNIST test");
        assert_eq!(test.count, 10);
        assert_eq!(
            test.labels.as_deref(),
            Some(&[7, 2, 1, 0, 4, 1, 4, 9, 5, 9][..])
        );
        let sevens = open(
            &dir,
            &LoadOptions {
                class: Some(7),
                limit: Some(100),
                split: Split::Train,
            },
        )
        .expect("class filter");
        assert_eq!(sevens.count, 100);
    }

    /// Real Fashion-MNIST (gzipped IDX), when fetched.
    #[test]
    fn real_fashion_mnist_if_present() {
        let Some(dir) = fetched("fashion-mnist") else {
            return;
        };
        let test = open(
            &dir,
            &LoadOptions {
                split: Split::Test,
                ..Default::default()
            },
        )
        .expect("load");
        assert_eq!(
            (test.count, test.channels, test.height, test.width),
            (10000, 1, 28, 28)
        );
        let labels = test.labels.as_ref().expect("labels");
        for class in 0..10u8 {
            assert_eq!(labels.iter().filter(|&&l| l == class).count(), 1000);
        }
        let padded = test.truncate(4).pad_to(32, 0.0).expect("pad");
        assert_eq!((padded.height, padded.width), (32, 32));
    }

    /// The fetched textures and photos load resized, and refuse to load at mixed native sizes.
    #[test]
    fn real_textures_and_photos_if_present() {
        let Some(textures) = fetched("textures") else {
            return;
        };
        let set = open_resized(&textures, &LoadOptions::default(), 64, 3).expect("textures");
        assert!(set.count >= 3, "{set:?}");
        assert!(matches!(
            open(&textures, &LoadOptions::default()),
            Err(DataError::InconsistentSizes { .. })
        ));
        let brick = open(&textures.join("brick.png"), &LoadOptions::default()).expect("brick");
        assert_eq!((brick.count, brick.channels), (1, 1));
        let Some(photos) = fetched("photos") else {
            return;
        };
        let set = open_resized(&photos, &LoadOptions::default(), 32, 3).expect("photos");
        assert_eq!((set.count, set.channels, set.height), (4, 3, 32));
    }
}
