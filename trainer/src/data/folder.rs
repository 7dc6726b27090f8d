//! Folders of PNG/JPEG/GIF images and single image files. The format of each file is sniffed from
//! its content, so a misnamed file still decodes; the image crate's default limits bound what a
//! hostile header can make it allocate.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::{DataError, IMAGE_EXTENSIONS, ImageSet, LoadOptions, RawSet, extension, square_resize};

/// How deep `list_images` follows subdirectories (a guard against symlink loops).
const MAX_DEPTH: usize = 32;

/// The image files under `dir`, recursively, sorted by path. Hidden files and directories (names
/// starting with `.`, which covers macOS `._*` files) and other extensions are skipped.
pub(super) fn list_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    walk(dir, 0, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_owned(),
        });
    }
    Ok(files)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let io = |e| DataError::io(dir, e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let mut file_type = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        if file_type.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) => file_type = meta.file_type(),
                Err(_) => continue, // a dangling link is not an image
            }
        }
        if file_type.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, files)?;
            }
        } else if file_type.is_file() && IMAGE_EXTENSIONS.contains(&extension(&path).as_str()) {
            files.push(path);
        }
    }
    Ok(())
}

/// Decodes one image file. GIF has no gray mode, so a GIF whose pixels are all gray is returned
/// as a gray image.
fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let reader = image::ImageReader::open(path)
        .and_then(|reader| reader.with_guessed_format())
        .map_err(|e| DataError::io(path, e))?;
    let format = reader.format();
    let image = reader.decode().map_err(|e| DataError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if format == Some(image::ImageFormat::Gif) {
        let rgba = image.to_rgba8();
        if rgba.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]) {
            return Ok(DynamicImage::ImageLuma8(image.to_luma8()));
        }
    }
    Ok(image)
}

/// One decoded image as C·H·W bytes: 1 channel if it is gray, 3 if it has colour (alpha
/// dropped).
struct Planes {
    bytes: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
}

fn planes(image: &DynamicImage) -> Planes {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if image.color().has_color() {
        let rgb = image.to_rgb8();
        let interleaved = rgb.as_raw();
        let mut bytes = Vec::with_capacity(interleaved.len());
        for ch in 0..3 {
            bytes.extend(interleaved.iter().skip(ch).step_by(3));
        }
        Planes {
            bytes,
            channels: 3,
            height,
            width,
        }
    } else {
        Planes {
            bytes: image.to_luma8().into_raw(),
            channels: 1,
            height,
            width,
        }
    }
}

fn no_labels(origin: &Path, options: &LoadOptions) -> Result<(), DataError> {
    match options.class {
        Some(class) => Err(DataError::NoLabels {
            origin: origin.display().to_string(),
            class,
        }),
        None => Ok(()),
    }
}

/// Loads `files` (at most `options.limit` of them) at their native size, which must be the same
/// for all. If any has colour, all become RGB.
pub(super) fn load_files(
    origin: &Path,
    files: &[PathBuf],
    options: &LoadOptions,
) -> Result<RawSet, DataError> {
    no_labels(origin, options)?;
    let take = options.limit.unwrap_or(usize::MAX);
    let mut images: Vec<Planes> = Vec::new();
    for path in files.iter().take(take) {
        let image = planes(&decode(path)?);
        if let (Some(first), Some(first_path)) = (images.first(), files.first())
            && (image.height, image.width) != (first.height, first.width)
        {
            return Err(DataError::InconsistentSizes {
                first: first_path.clone(),
                first_width: first.width,
                first_height: first.height,
                other: path.clone(),
                other_width: image.width,
                other_height: image.height,
            });
        }
        images.push(image);
    }
    let channels = images.iter().map(|i| i.channels).max().unwrap_or(1);
    let (height, width) = images.first().map_or((0, 0), |i| (i.height, i.width));
    let mut bytes = Vec::with_capacity(images.len() * channels * height * width);
    for image in &images {
        for _ in 0..channels / image.channels {
            bytes.extend_from_slice(&image.bytes);
        }
    }
    let count = images.len();
    if count == 0 && take > 0 {
        return Err(DataError::Empty {
            path: origin.to_owned(),
        });
    }
    Ok(RawSet {
        bytes,
        count,
        channels,
        height,
        width,
        labels: None,
    })
}

/// Loads `files` (at most `options.limit` of them), resizing each to `size`×`size` with
/// `channels` channels as it is decoded.
pub(super) fn load_files_resized(
    origin: &Path,
    files: &[PathBuf],
    options: &LoadOptions,
    size: usize,
    channels: usize,
) -> Result<ImageSet, DataError> {
    no_labels(origin, options)?;
    if files.is_empty() {
        return Err(DataError::Empty {
            path: origin.to_owned(),
        });
    }
    let files = &files[..files.len().min(options.limit.unwrap_or(usize::MAX))];
    let mut pixels = Vec::with_capacity(files.len() * channels * size * size);
    for path in files {
        let image = planes(&decode(path)?);
        let values: Vec<f32> = image.bytes.iter().map(|&b| f32::from(b)).collect();
        pixels.extend(square_resize(
            &values,
            image.channels,
            image.height,
            image.width,
            size,
            channels,
        ));
    }
    ImageSet::new(pixels, files.len(), channels, size, size, None)
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    use super::super::test_util::TempDir;
    use super::super::{DataError, LoadOptions, open, open_resized};

    fn gray(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| Luma([f(x, y)]))
    }

    #[test]
    fn folder_of_pngs_sorted_recursive_skipping_hidden() {
        let dir = TempDir::new("folder-png");
        std::fs::create_dir_all(dir.join("b/deeper")).expect("mkdir");
        std::fs::create_dir_all(dir.join(".hidden")).expect("mkdir");
        gray(3, 2, |x, y| (10 * y + x) as u8)
            .save(dir.join("b/deeper/z.png"))
            .expect("save");
        gray(3, 2, |_, _| 200)
            .save(dir.join("a.PNG"))
            .expect("save");
        gray(3, 2, |_, _| 1)
            .save(dir.join(".dot.png"))
            .expect("save");
        gray(3, 2, |_, _| 1)
            .save(dir.join(".hidden/x.png"))
            .expect("save");
        std::fs::write(dir.join("._a.png"), b"macOS resource fork").expect("write");
        std::fs::write(dir.join("readme.txt"), b"not an image").expect("write");
        let set = open(dir.path(), &LoadOptions::default()).expect("load");
        assert_eq!(
            (set.count, set.channels, set.height, set.width),
            (2, 1, 2, 3)
        );
        assert_eq!(set.image(0), &[200.0; 6]);
        assert_eq!(set.image(1), &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        assert_eq!(set.labels, None);

        let one = open(
            dir.path(),
            &LoadOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .expect("limit");
        assert_eq!(one.count, 1);
        let err = open(
            dir.path(),
            &LoadOptions {
                class: Some(1),
                ..Default::default()
            },
        )
        .expect_err("no labels");
        assert!(matches!(err, DataError::NoLabels { class: 1, .. }), "{err}");
    }

    #[test]
    fn colour_alpha_and_mixed_channels() {
        let dir = TempDir::new("folder-colour");
        RgbaImage::from_pixel(2, 2, Rgba([10, 20, 30, 0]))
            .save(dir.join("1.png"))
            .expect("save");
        gray(2, 2, |_, _| 77).save(dir.join("2.png")).expect("save");
        let set = open(dir.path(), &LoadOptions::default()).expect("load");
        assert_eq!((set.count, set.channels), (2, 3));
        assert_eq!(
            set.image(0),
            &[
                10.0, 10.0, 10.0, 10.0, 20.0, 20.0, 20.0, 20.0, 30.0, 30.0, 30.0, 30.0
            ]
        );
        assert_eq!(set.image(1), &[77.0; 12]);
    }

    #[test]
    fn single_files_jpeg_gif() {
        let dir = TempDir::new("folder-single");
        let jpeg = dir.join("photo.jpg");
        RgbImage::from_pixel(16, 8, Rgb([200, 100, 50]))
            .save(&jpeg)
            .expect("save jpeg");
        let set = open(&jpeg, &LoadOptions::default()).expect("load jpeg");
        assert_eq!(
            (set.count, set.channels, set.height, set.width),
            (1, 3, 8, 16)
        );
        let means: Vec<f32> = (0..3)
            .map(|c| set.pixels[c * 128..(c + 1) * 128].iter().sum::<f32>() / 128.0)
            .collect();
        for (mean, want) in means.iter().zip([200.0, 100.0, 50.0]) {
            assert!((mean - want).abs() < 4.0, "{means:?}");
        }
        let resized = open_resized(&jpeg, &LoadOptions::default(), 4, 1).expect("resize jpeg");
        assert_eq!((resized.channels, resized.height, resized.width), (1, 4, 4));

        // GIF stores palette colours only: an all-gray GIF loads as 1 channel, a coloured one as 3.
        let gif = dir.join("tex.gif");
        RgbImage::from_fn(4, 4, |x, _| {
            if x < 2 {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        })
        .save(&gif)
        .expect("save gif");
        let set = open(&gif, &LoadOptions::default()).expect("load gif");
        assert_eq!((set.count, set.channels, set.height), (1, 1, 4));
        assert_eq!(&set.pixels[..4], &[0.0, 0.0, 255.0, 255.0]);
        let colour = dir.join("colour.gif");
        RgbImage::from_pixel(2, 2, Rgb([255, 0, 0]))
            .save(&colour)
            .expect("save gif");
        let set = open(&colour, &LoadOptions::default()).expect("load colour gif");
        assert_eq!(
            (set.channels, set.pixels[0], set.pixels[4]),
            (3, 255.0, 0.0)
        );
    }

    #[test]
    fn inconsistent_sizes_and_open_resized() {
        let dir = TempDir::new("folder-sizes");
        gray(4, 4, |_, _| 50).save(dir.join("a.png")).expect("save");
        RgbImage::from_pixel(8, 6, Rgb([90, 90, 90]))
            .save(dir.join("b.png"))
            .expect("save");
        let err = open(dir.path(), &LoadOptions::default()).expect_err("sizes differ");
        assert!(
            matches!(
                err,
                DataError::InconsistentSizes {
                    other_width: 8,
                    other_height: 6,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("a.png") && text.contains("b.png") && text.contains("8×6"),
            "{text}"
        );

        let set = open_resized(dir.path(), &LoadOptions::default(), 3, 3).expect("resized");
        assert_eq!(
            (set.count, set.channels, set.height, set.width),
            (2, 3, 3, 3)
        );
        assert!(set.image(0).iter().all(|&v| (v - 50.0).abs() < 1e-3));
        assert!(set.image(1).iter().all(|&v| (v - 90.0).abs() < 1e-3));
        let limited = open_resized(
            dir.path(),
            &LoadOptions {
                limit: Some(1),
                ..Default::default()
            },
            2,
            1,
        )
        .expect("limit");
        assert_eq!(limited.count, 1);
        let err = open_resized(dir.path(), &LoadOptions::default(), 0, 1).expect_err("size 0");
        assert!(matches!(err, DataError::BadTarget { .. }), "{err}");
    }

    #[test]
    fn corrupted_png() {
        let dir = TempDir::new("folder-corrupt");
        let good = dir.join("a.png");
        gray(8, 8, |x, y| (x * y) as u8).save(&good).expect("save");
        let mut bytes = std::fs::read(&good).expect("read");
        let mid = bytes.len() / 2;
        bytes.truncate(mid);
        std::fs::write(dir.join("b.png"), &bytes).expect("write");
        let err = open(dir.path(), &LoadOptions::default()).expect_err("corrupt");
        assert!(matches!(err, DataError::Decode { .. }), "{err}");
        assert!(err.to_string().contains("b.png"), "{err}");
        std::fs::write(dir.join("b.png"), b"\x89PNG\r\n\x1a\ngarbage").expect("write");
        let err = open(&dir.join("b.png"), &LoadOptions::default()).expect_err("garbage");
        assert!(matches!(err, DataError::Decode { .. }), "{err}");
        let err =
            open_resized(dir.path(), &LoadOptions::default(), 4, 1).expect_err("corrupt resized");
        assert!(matches!(err, DataError::Decode { .. }), "{err}");
    }

    #[test]
    fn empty_folders() {
        let dir = TempDir::new("folder-empty");
        let err = open(dir.path(), &LoadOptions::default()).expect_err("empty");
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        assert!(err.to_string().ends_with("holds no images"), "{err}");
        std::fs::write(dir.join("notes.txt"), b"text").expect("write");
        std::fs::write(dir.join("._x.png"), b"junk").expect("write");
        let err = open_resized(dir.path(), &LoadOptions::default(), 8, 1).expect_err("still empty");
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }
}
