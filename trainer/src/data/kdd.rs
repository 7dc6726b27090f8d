//! KDD Cup 99 network records (the `kddcup.data_10_percent_corrected` CSV) as MEG's anomaly
//! data: 41 columns and a label per line, no header. As the authors' `data/kdd.py` does, the
//! categorical columns are one-hot encoded (after the numeric columns, each in the order
//! below, its values sorted), giving 121 features on the real file; "normal." records are
//! the anomaly class. The file is not installable here: its format is what is tested.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::DataError;

/// Columns per record before the label.
pub const COLUMNS: usize = 41;
/// The one-hot encoded columns (0-based: protocol_type, service, flag, land, logged_in,
/// is_host_login, is_guest_login).
pub const CATEGORICAL: [usize; 7] = [1, 2, 3, 6, 11, 20, 21];
/// Features of the real 10 % file after one-hot encoding (what MEG's KDD nets take).
pub const FEATURES: usize = 121;

/// The encoded table.
#[derive(Debug, Clone, PartialEq)]
pub struct KddTable {
    /// `rows × features` values, row-major.
    pub values: Vec<f32>,
    /// Features per row.
    pub features: usize,
    /// `true` for "normal." records (the anomaly class of the protocol).
    pub normal: Vec<bool>,
}

impl KddTable {
    /// Number of records.
    pub fn rows(&self) -> usize {
        self.normal.len()
    }

    /// Scales every feature to `[0, 1]` over the table (the authors fit a MinMaxScaler but
    /// train on the unscaled values; this is the option of using it).
    pub fn min_max_scale(&mut self) {
        for f in 0..self.features {
            let column = self.values.iter().skip(f).step_by(self.features);
            let (low, high) = column.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
            let span = if high > low { high - low } else { 1.0 };
            for v in self.values.iter_mut().skip(f).step_by(self.features) {
                *v = (*v - low) / span;
            }
        }
    }
}

/// Reads and encodes a KDD99 CSV file.
pub fn read(path: &Path) -> Result<KddTable, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound { path: path.to_owned() },
        _ => DataError::Io { path: path.to_owned(), source },
    })?;
    let bad = |line: usize, reason: String| DataError::BadRow { path: path.to_owned(), line, reason };
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != COLUMNS + 1 {
            return Err(bad(index + 1, format!("{} fields; a KDD99 record has {} (41 columns and a label)", fields.len(), COLUMNS + 1)));
        }
        for (column, field) in fields[..COLUMNS].iter().enumerate().filter(|(c, _)| !CATEGORICAL.contains(c)) {
            if !field.parse::<f32>().is_ok_and(f32::is_finite) {
                return Err(bad(index + 1, format!("column {} is \"{field}\", not a number", column + 1)));
            }
        }
        records.push((index + 1, fields.into_iter().map(str::to_string).collect::<Vec<_>>()));
    }
    if records.is_empty() {
        return Err(bad(0, "the file holds no records".into()));
    }
    let categories: BTreeMap<usize, Vec<String>> = CATEGORICAL
        .iter()
        .map(|&c| (c, records.iter().map(|(_, r)| r[c].clone()).collect::<BTreeSet<_>>().into_iter().collect()))
        .collect();
    let features = COLUMNS - CATEGORICAL.len() + categories.values().map(Vec::len).sum::<usize>();
    let mut values = Vec::with_capacity(records.len() * features);
    let mut normal = Vec::with_capacity(records.len());
    for (_, record) in &records {
        values.extend((0..COLUMNS).filter(|c| !CATEGORICAL.contains(c)).map(|c| record[c].parse::<f32>().unwrap_or(f32::NAN)));
        for (&column, names) in &categories {
            values.extend(names.iter().map(|name| if *name == record[column] { 1.0 } else { 0.0 }));
        }
        normal.push(record[COLUMNS] == "normal.");
    }
    Ok(KddTable { values, features, normal })
}
