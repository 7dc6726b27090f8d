//! CIFAR-10 binary batches: records of 1 label byte followed by 3072 pixel bytes (the red, green
//! and blue 32×32 planes, row-major), which is already the NCHW layout of an [`super::ImageSet`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{DataError, LoadOptions, RawSet, Split};

/// Side of a CIFAR-10 image.
const SIDE: usize = 32;
/// Pixel bytes per record: 3 planes of 32×32.
const PIXELS: usize = 3 * SIDE * SIDE;
/// Bytes per record: the label, then the pixels.
const RECORD: usize = 1 + PIXELS;

/// The batch files of `split` in a CIFAR-10 directory (or its `cifar-10-batches-bin`
/// subdirectory): `data_batch_1.bin`..`data_batch_5.bin` present, in order, for Train;
/// `test_batch.bin` for Test. `None` when neither split's files are there.
pub(super) fn find_in_dir(dir: &Path, split: Split) -> Result<Option<Vec<PathBuf>>, DataError> {
    for base in [dir.to_owned(), dir.join("cifar-10-batches-bin")] {
        let train: Vec<PathBuf> = (1..=5)
            .map(|i| base.join(format!("data_batch_{i}.bin")))
            .filter(|p| p.is_file())
            .collect();
        let test = base.join("test_batch.bin");
        let has_test = test.is_file();
        if train.is_empty() && !has_test {
            continue;
        }
        return match split {
            Split::Train if !train.is_empty() => Ok(Some(train)),
            Split::Test if has_test => Ok(Some(vec![test])),
            _ => Err(DataError::MissingSplit {
                path: base,
                split,
                looked_for: match split {
                    Split::Train => "data_batch_1.bin … data_batch_5.bin".into(),
                    Split::Test => "test_batch.bin".into(),
                },
            }),
        };
    }
    Ok(None)
}

/// Loads the records of `files` in order. Without a class filter, reading stops once the limit
/// is reached.
pub(super) fn load(files: &[PathBuf], options: &LoadOptions) -> Result<RawSet, DataError> {
    let wanted = match options.class {
        None => options.limit.unwrap_or(usize::MAX),
        Some(_) => usize::MAX,
    };
    let mut bytes = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        if labels.len() >= wanted {
            break;
        }
        let io = |e| DataError::io(path, e);
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len % RECORD as u64 != 0 {
            return Err(DataError::CifarBadLength {
                path: path.clone(),
                len,
            });
        }
        let records = usize::try_from(len / RECORD as u64)
            .map_err(|_| DataError::CifarBadLength {
                path: path.clone(),
                len,
            })?
            .min(wanted - labels.len());
        // `records` is bounded by the file's real length, so this allocation is too.
        let mut data = Vec::with_capacity(records * RECORD);
        file.take((records * RECORD) as u64)
            .read_to_end(&mut data)
            .map_err(io)?;
        if data.len() < records * RECORD {
            // The file shrank while we read it.
            return Err(DataError::CifarBadLength {
                path: path.clone(),
                len: data.len() as u64,
            });
        }
        bytes.reserve(records * PIXELS);
        labels.reserve(records);
        for record in data.chunks_exact(RECORD) {
            labels.push(record[0]);
            bytes.extend_from_slice(&record[1..]);
        }
    }
    Ok(RawSet {
        bytes,
        count: labels.len(),
        channels: 3,
        height: SIDE,
        width: SIDE,
        labels: Some(labels),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::TempDir;
    use super::super::{DataError, LoadOptions, Split, open, open_resized};
    use super::*;

    /// A batch of records with the given labels; record `i` has red = i, green = 100 + i,
    /// blue = 200 + i everywhere, except pixel (0, 1) of the red plane, which is 255.
    fn batch(labels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &label) in labels.iter().enumerate() {
            out.push(label);
            for plane in 0..3u8 {
                let mut values = vec![100 * plane + i as u8; SIDE * SIDE];
                if plane == 0 {
                    values[1] = 255;
                }
                out.extend(values);
            }
        }
        out
    }

    #[test]
    fn single_batch_file() {
        let dir = TempDir::new("cifar-file");
        let path = dir.join("some_batch.bin");
        std::fs::write(&path, batch(&[3, 8, 3, 0])).expect("write");
        let set = open(&path, &LoadOptions::default()).expect("load");
        assert_eq!(
            (set.count, set.channels, set.height, set.width),
            (4, 3, 32, 32)
        );
        assert_eq!(set.labels, Some(vec![3, 8, 3, 0]));
        let image = set.image(2);
        assert_eq!((image[0], image[1], image[2]), (2.0, 255.0, 2.0));
        assert_eq!(image[SIDE * SIDE], 102.0);
        assert_eq!(image[2 * SIDE * SIDE + 5], 202.0);

        let threes = open(
            &path,
            &LoadOptions {
                class: Some(3),
                ..Default::default()
            },
        )
        .expect("class");
        assert_eq!((threes.count, threes.image(1)[0]), (2, 2.0));
        let first = open(
            &path,
            &LoadOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .expect("limit");
        assert_eq!((first.count, first.labels), (1, Some(vec![3])));
        let gray = open_resized(&path, &LoadOptions::default(), 16, 1).expect("resized");
        assert_eq!((gray.count, gray.channels, gray.height), (4, 1, 16));
    }

    #[test]
    fn directory_splits_and_subdirectory() {
        let dir = TempDir::new("cifar-dir");
        let sub = dir.join("cifar-10-batches-bin");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("data_batch_1.bin"), batch(&[1, 2])).expect("write");
        std::fs::write(sub.join("data_batch_2.bin"), batch(&[5])).expect("write");
        std::fs::write(sub.join("test_batch.bin"), batch(&[9, 9, 9])).expect("write");
        let train = open(dir.path(), &LoadOptions::default()).expect("train");
        assert_eq!(train.labels, Some(vec![1, 2, 5]));
        let limited = open(
            &sub,
            &LoadOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .expect("limit");
        assert_eq!(limited.labels, Some(vec![1, 2]));
        let test = open(
            dir.path(),
            &LoadOptions {
                split: Split::Test,
                ..Default::default()
            },
        )
        .expect("test");
        assert_eq!(test.count, 3);

        std::fs::remove_file(sub.join("test_batch.bin")).expect("rm");
        let err = open(
            dir.path(),
            &LoadOptions {
                split: Split::Test,
                ..Default::default()
            },
        )
        .expect_err("no test");
        assert!(
            matches!(
                err,
                DataError::MissingSplit {
                    split: Split::Test,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("test_batch.bin"), "{err}");
    }

    #[test]
    fn bad_length() {
        let dir = TempDir::new("cifar-bad");
        let path = dir.join("data_batch_1.bin");
        let mut bytes = batch(&[1, 2]);
        bytes.pop();
        std::fs::write(&path, &bytes).expect("write");
        let err = open(dir.path(), &LoadOptions::default()).expect_err("bad length");
        assert!(
            matches!(err, DataError::CifarBadLength { len: 6145, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("data_batch_1.bin: 6145 bytes"),
            "{err}"
        );
        std::fs::write(&path, b"").expect("write");
        let err = open(&path, &LoadOptions::default()).expect_err("empty");
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }
}
