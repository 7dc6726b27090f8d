//! MNIST-style IDX files of unsigned bytes, raw or gzip-compressed (detected from the content):
//! images (magic `0x00000803`: count, rows, columns) and labels (magic `0x00000801`: count).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::{DataError, RawSet, Split};

/// The largest payload accepted from an IDX header (4 GiB; MNIST is 47 MB). Anything larger is a
/// corrupt header, and refusing it keeps a gzip file from making us allocate without bound.
const MAX_PAYLOAD: u64 = 1 << 32;

/// An IDX array: its dimensions and its bytes.
struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Loads an images file and, if given, its labels file.
pub(super) fn load(images: &Path, labels: Option<&Path>) -> Result<RawSet, DataError> {
    let idx = read_idx(images, 3)?;
    let [count, height, width] = idx.dims[..] else {
        // read_idx checked the number of dimensions; keep a typed error all the same.
        return Err(DataError::BadIdxMagic {
            path: images.to_owned(),
            found: 0,
            expected: IMAGES_MAGIC,
        });
    };
    let labels = match labels {
        None => None,
        Some(path) => {
            let labels = read_idx(path, 1)?;
            if labels.data.len() != count {
                return Err(DataError::LabelCountMismatch {
                    images: images.to_owned(),
                    labels: path.to_owned(),
                    image_count: count,
                    label_count: labels.data.len(),
                });
            }
            Some(labels.data)
        }
    };
    Ok(RawSet {
        bytes: idx.data,
        count,
        channels: 1,
        height,
        width,
        labels,
    })
}

const IMAGES_MAGIC: &str = "0x00000803 (unsigned-byte images: count, rows, columns)";
const LABELS_MAGIC: &str = "0x00000801 (unsigned-byte labels: count)";

/// Reads an IDX file of unsigned bytes with `ndims` dimensions, checking every size it declares
/// against what the file holds.
fn read_idx(path: &Path, ndims: u8) -> Result<Idx, DataError> {
    let io = |e| DataError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut buffered = BufReader::new(file);
    let compressed = buffered.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if compressed {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };

    let header_len = 4 + 4 * usize::from(ndims);
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut reader, &mut header).map_err(io)?;
    if got < 4 {
        return Err(DataError::IdxHeaderTruncated {
            path: path.to_owned(),
            found: got as u64,
            compressed,
        });
    }
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if header[..4] != [0, 0, 0x08, ndims] {
        let expected = if ndims == 1 {
            LABELS_MAGIC
        } else {
            IMAGES_MAGIC
        };
        return Err(DataError::BadIdxMagic {
            path: path.to_owned(),
            found,
            expected,
        });
    }
    if got < header_len {
        return Err(DataError::IdxHeaderTruncated {
            path: path.to_owned(),
            found: got as u64,
            compressed,
        });
    }
    let dims: Vec<u64> = header[4..]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let dims_text = dims
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("×");
    let payload = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_PAYLOAD);
    let (Some(payload), Ok(dims)) = (
        payload,
        dims.iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>(),
    ) else {
        return Err(DataError::IdxDimensionsTooLarge {
            path: path.to_owned(),
            dims: dims_text,
            max: MAX_PAYLOAD,
        });
    };
    let declared = match dims[..] {
        [count, rows, cols] => format!("{count} images of {rows}×{cols}"),
        [count] => format!("{count} labels"),
        _ => dims_text,
    };
    let what = if ndims == 1 { "labels" } else { "pixels" };
    let truncated = |found: u64| DataError::IdxTruncated {
        path: path.to_owned(),
        declared: declared.clone(),
        payload: what,
        found,
        compressed,
    };
    let mut data = Vec::new();
    if !compressed {
        // The file's length is known: check it before allocating anything for the payload.
        let available = file_len.saturating_sub(header_len as u64);
        if available < payload {
            return Err(truncated(available));
        }
        data.reserve_exact(usize::try_from(payload).map_err(|_| truncated(available))?);
    }
    // Compressed data grows the buffer only as fast as real bytes arrive, up to the payload.
    reader.take(payload).read_to_end(&mut data).map_err(io)?;
    if (data.len() as u64) < payload {
        return Err(truncated(data.len() as u64));
    }
    Ok(Idx { dims, data })
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The file names tried for one split's images or labels, in order of preference.
fn candidates(split: Split, kind: &str, idx: &str) -> Vec<String> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let mut names = Vec::new();
    for sep in ['-', '.'] {
        let base = format!("{prefix}-{kind}{sep}{idx}-ubyte");
        names.push(format!("{base}.gz"));
        names.push(base);
    }
    names
}

fn first_existing(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Finds the images (and labels, if present) of `split` in an MNIST-style directory. `None` when
/// the directory holds no IDX images of either split; an error when it holds only the other one.
pub(super) fn find_in_dir(
    dir: &Path,
    split: Split,
) -> Result<Option<(PathBuf, Option<PathBuf>)>, DataError> {
    let wanted = candidates(split, "images", "idx3");
    if let Some(images) = first_existing(dir, &wanted) {
        let labels = first_existing(dir, &candidates(split, "labels", "idx1"));
        return Ok(Some((images, labels)));
    }
    let other = match split {
        Split::Train => Split::Test,
        Split::Test => Split::Train,
    };
    if first_existing(dir, &candidates(other, "images", "idx3")).is_some() {
        return Err(DataError::MissingSplit {
            path: dir.to_owned(),
            split,
            looked_for: wanted.join(", "),
        });
    }
    Ok(None)
}

/// The labels file belonging to an images file (`…images…idx3…` → `…labels…idx1…`, with or
/// without `.gz`), if it exists.
pub(super) fn find_labels_for(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    if !name.contains("images") {
        return None;
    }
    let labels = name
        .replacen("images", "labels", 1)
        .replacen("idx3", "idx1", 1);
    let toggled = match labels.strip_suffix(".gz") {
        Some(stripped) => stripped.to_owned(),
        None => format!("{labels}.gz"),
    };
    let dir = images.parent().unwrap_or_else(|| Path::new("."));
    [labels, toggled]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::test_util::TempDir;
    use super::super::{DataError, LoadOptions, Split, open};
    use super::*;

    /// An IDX file of unsigned bytes.
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).expect("gzip in memory");
        enc.finish().expect("gzip in memory")
    }

    /// Three 2×3 images (pixel = 10·image + position) with labels 4, 7, 4.
    fn sample() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..3u8)
            .flat_map(|i| (0..6u8).map(move |p| 10 * i + p))
            .collect();
        (idx_bytes(&[3, 2, 3], &pixels), idx_bytes(&[3], &[4, 7, 4]))
    }

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }

    #[test]
    fn raw_directory() {
        let dir = TempDir::new("idx-raw");
        let (images, labels) = sample();
        write(&dir, "train-images-idx3-ubyte", &images);
        write(&dir, "train-labels-idx1-ubyte", &labels);
        let set = open(dir.path(), &LoadOptions::default()).expect("load");
        assert_eq!(
            (set.count, set.channels, set.height, set.width),
            (3, 1, 2, 3)
        );
        assert_eq!(set.image(1), &[10.0, 11.0, 12.0, 13.0, 14.0, 15.0]);
        assert_eq!(set.labels, Some(vec![4, 7, 4]));

        let fours = open(
            dir.path(),
            &LoadOptions {
                class: Some(4),
                ..Default::default()
            },
        )
        .expect("filter");
        assert_eq!(fours.count, 2);
        assert_eq!(fours.image(1)[0], 20.0);
        let one = open(
            dir.path(),
            &LoadOptions {
                class: Some(4),
                limit: Some(1),
                ..Default::default()
            },
        )
        .expect("filter + limit");
        assert_eq!((one.count, one.pixels[0]), (1, 0.0));
        let err = open(
            dir.path(),
            &LoadOptions {
                class: Some(3),
                ..Default::default()
            },
        )
        .expect_err("no 3s");
        assert!(
            matches!(err, DataError::NoSuchClass { class: 3, .. }),
            "{err}"
        );

        // Only train files: asking for the test split names what was looked for.
        let err = open(
            dir.path(),
            &LoadOptions {
                split: Split::Test,
                ..Default::default()
            },
        )
        .expect_err("no test");
        assert!(matches!(err, DataError::MissingSplit { .. }), "{err}");
        assert!(err.to_string().contains("t10k-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn gzip_directory_dotted_names_and_test_split() {
        let dir = TempDir::new("idx-gz");
        let (images, labels) = sample();
        write(&dir, "t10k-images.idx3-ubyte.gz", &gzip(&images));
        write(&dir, "t10k-labels.idx1-ubyte.gz", &gzip(&labels));
        write(
            &dir,
            "train-images.idx3-ubyte.gz",
            &gzip(&idx_bytes(&[1, 1, 1], &[200])),
        );
        let test = open(
            dir.path(),
            &LoadOptions {
                split: Split::Test,
                ..Default::default()
            },
        )
        .expect("load");
        assert_eq!(test.count, 3);
        assert_eq!(test.pixels[17], 25.0);
        assert_eq!(test.labels, Some(vec![4, 7, 4]));
        // The train split has no labels file: it loads unlabelled, and a class filter says why not.
        let train = open(dir.path(), &LoadOptions::default()).expect("load train");
        assert_eq!(
            (train.count, train.pixels.clone(), train.labels),
            (1, vec![200.0], None)
        );
        let err = open(
            dir.path(),
            &LoadOptions {
                class: Some(1),
                ..Default::default()
            },
        )
        .expect_err("no labels");
        assert!(matches!(err, DataError::NoLabels { .. }), "{err}");
    }

    #[test]
    fn single_files_find_their_labels() {
        let dir = TempDir::new("idx-single");
        let (images, labels) = sample();
        let raw = write(&dir, "fashion-images-idx3-ubyte", &images);
        write(&dir, "fashion-labels-idx1-ubyte.gz", &gzip(&labels));
        let set = open(&raw, &LoadOptions::default()).expect("load raw file");
        assert_eq!(set.labels, Some(vec![4, 7, 4]));
        // A name without the pattern, sniffed as gzip: loads, unlabelled.
        let odd = write(&dir, "digits", &gzip(&images));
        let set = open(
            &odd,
            &LoadOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .expect("load sniffed");
        assert_eq!((set.count, set.labels.is_none()), (2, true));
        assert_eq!(set.pixels.len(), 12);
        // A raw IDX without a telling name is sniffed from its magic.
        let sniffed = write(&dir, "blob", &images);
        assert_eq!(
            open(&sniffed, &LoadOptions::default())
                .expect("load raw sniffed")
                .count,
            3
        );
    }

    #[test]
    fn truncated_pixels_raw_and_gzip() {
        let dir = TempDir::new("idx-trunc");
        let bytes = idx_bytes(&[60000, 28, 28], &[0; 1200]);
        let raw = write(&dir, "train-images-idx3-ubyte", &bytes);
        let err = open(&raw, &LoadOptions::default()).expect_err("truncated");
        assert!(
            matches!(
                err,
                DataError::IdxTruncated {
                    found: 1200,
                    compressed: false,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: IDX header says 60000 images of 28×28 but the file holds only 1200 bytes of pixels",
                raw.display()
            )
        );
        let gz = write(&dir, "x-images-idx3-ubyte.gz", &gzip(&bytes));
        let err = open(&gz, &LoadOptions::default()).expect_err("truncated gz");
        assert!(
            matches!(
                err,
                DataError::IdxTruncated {
                    found: 1200,
                    compressed: true,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().ends_with("(after decompression)"), "{err}");
        // A gzip stream cut short is an I/O error naming the file.
        let mut cut = gzip(&idx_bytes(&[10, 28, 28], &[7; 7840]));
        cut.truncate(cut.len() / 2);
        let cut = write(&dir, "cut-images-idx3-ubyte.gz", &cut);
        let err = open(&cut, &LoadOptions::default()).expect_err("cut gz");
        assert!(
            matches!(err, DataError::Io { .. } | DataError::IdxTruncated { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("cut-images"), "{err}");
    }

    #[test]
    fn truncated_header() {
        let dir = TempDir::new("idx-header");
        let short = write(&dir, "a-images-idx3-ubyte", &[0, 0, 8]);
        let err = open(&short, &LoadOptions::default()).expect_err("3 bytes");
        assert!(
            matches!(err, DataError::IdxHeaderTruncated { found: 3, .. }),
            "{err}"
        );
        let short = write(&dir, "b-images-idx3-ubyte", &[0, 0, 8, 3, 0, 0, 0, 1, 0]);
        let err = open(&short, &LoadOptions::default()).expect_err("9 bytes");
        assert!(
            matches!(err, DataError::IdxHeaderTruncated { found: 9, .. }),
            "{err}"
        );
        let empty = write(&dir, "c-images-idx3-ubyte", &[]);
        let err = open(&empty, &LoadOptions::default()).expect_err("empty file");
        assert!(
            matches!(err, DataError::IdxHeaderTruncated { found: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn wrong_magic() {
        let dir = TempDir::new("idx-magic");
        // A labels file where images are expected.
        let labels = write(
            &dir,
            "train-images-idx3-ubyte",
            &idx_bytes(&[3], &[1, 2, 3]),
        );
        let err = open(&labels, &LoadOptions::default()).expect_err("1-d");
        assert!(
            matches!(err, DataError::BadIdxMagic { found: 0x0801, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0x00000801"), "{err}");
        // Float data (type 0x0D).
        let mut floats = idx_bytes(&[1, 1, 1], &[0; 4]);
        floats[2] = 0x0d;
        let floats = write(&dir, "f-images-idx3-ubyte", &floats);
        let err = open(&floats, &LoadOptions::default()).expect_err("floats");
        assert!(
            matches!(err, DataError::BadIdxMagic { found: 0x0d03, .. }),
            "{err}"
        );
        // Text with an idx-looking name.
        let text = write(&dir, "notes-idx3-ubyte", b"hello world, this is text");
        let err = open(&text, &LoadOptions::default()).expect_err("text");
        assert!(matches!(err, DataError::BadIdxMagic { .. }), "{err}");
    }

    #[test]
    fn absurd_dimensions() {
        let dir = TempDir::new("idx-absurd");
        let mut bytes = idx_bytes(&[1 << 31, 28, 28], &[0; 84]);
        bytes.truncate(100);
        let raw = write(&dir, "train-images-idx3-ubyte", &bytes);
        let err = open(&raw, &LoadOptions::default()).expect_err("absurd");
        assert!(
            matches!(err, DataError::IdxDimensionsTooLarge { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("2147483648×28×28"), "{err}");
        let gz = write(&dir, "g-images-idx3-ubyte.gz", &gzip(&bytes));
        let err = open(&gz, &LoadOptions::default()).expect_err("absurd gz");
        assert!(
            matches!(err, DataError::IdxDimensionsTooLarge { .. }),
            "{err}"
        );
        // Overflowing u64 altogether.
        let huge = write(
            &dir,
            "h-images-idx3-ubyte",
            &idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]),
        );
        let err = open(&huge, &LoadOptions::default()).expect_err("overflow");
        assert!(
            matches!(err, DataError::IdxDimensionsTooLarge { .. }),
            "{err}"
        );
        // Large but under the cap, in a tiny file: refused before allocating.
        let big = write(
            &dir,
            "i-images-idx3-ubyte",
            &idx_bytes(&[1 << 20, 64, 64], &[0; 50]),
        );
        let err = open(&big, &LoadOptions::default()).expect_err("big");
        assert!(
            matches!(err, DataError::IdxTruncated { found: 50, .. }),
            "{err}"
        );
    }

    #[test]
    fn label_count_mismatch_and_bad_labels() {
        let dir = TempDir::new("idx-labels");
        let (images, _) = sample();
        write(&dir, "train-images-idx3-ubyte", &images);
        let labels = write(&dir, "train-labels-idx1-ubyte", &idx_bytes(&[2], &[1, 2]));
        let err = open(dir.path(), &LoadOptions::default()).expect_err("mismatch");
        assert!(
            matches!(
                err,
                DataError::LabelCountMismatch {
                    image_count: 3,
                    label_count: 2,
                    ..
                }
            ),
            "{err}"
        );
        std::fs::write(&labels, idx_bytes(&[5], &[1, 2])).expect("rewrite");
        let err = open(dir.path(), &LoadOptions::default()).expect_err("truncated labels");
        assert!(
            matches!(
                err,
                DataError::IdxTruncated {
                    payload: "labels",
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn zero_images_is_empty() {
        let dir = TempDir::new("idx-empty");
        let path = write(
            &dir,
            "train-images-idx3-ubyte",
            &idx_bytes(&[0, 28, 28], &[]),
        );
        let err = open(&path, &LoadOptions::default()).expect_err("empty");
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }
}
