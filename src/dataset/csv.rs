//! The training set's CSV, in one place: its columns, the writing of a [`Dataset`](super::Dataset)'s
//! rows (`leadscore dataset`) and the reading back of the rows a gate or a baseline judges
//! ([`HeldOut`]: `leadscore compare`, `leadscore baseline`, [`crate::monitor::baseline`]).
//! `models/train/train.py` reads the same columns (its `DATASET_COLUMNS`).
//!
//! The format: a header of [`KEY_COLUMNS`] then the card's feature names; one row per
//! [`Row`]: kind, id, decision time (ms), outcome time (ms, empty for a negative), label (0/1),
//! then each feature as the shortest decimal that reads back as the same `f32`. Quoting is the
//! `csv` crate's (only where needed).
//!
//! [`HeldOut`] does no I/O: it takes a header and records from any CSV reader. Streams are read
//! and written through the `csv` crate with the `cli` feature ([`write`], [`read_held_out`]).

use super::Row;
use crate::model::card::Card;
use crate::score::{shortest_f64, Scorer};

/// The columns before the features, in order.
pub const KEY_COLUMNS: [&str; 5] = [
    "subject_kind",
    "subject_id",
    "decision_ts",
    "outcome_ts",
    "label",
];
/// The decision time column (ms).
pub const DECISION_TS: &str = "decision_ts";
/// The label column (0 or 1).
pub const LABEL: &str = "label";

/// The header: [`KEY_COLUMNS`] then the feature names.
pub fn header(features: &[String]) -> impl Iterator<Item = &str> {
    KEY_COLUMNS
        .into_iter()
        .chain(features.iter().map(String::as_str))
}

impl Row {
    /// The row's cells, in [`header`] order (features as their shortest `f32` decimal).
    pub fn cells(&self) -> impl Iterator<Item = String> + '_ {
        [
            self.kind.as_str().to_string(),
            self.subject_id.clone(),
            self.decision_ts.to_string(),
            self.outcome_ts.map(|t| t.to_string()).unwrap_or_default(),
            self.label().to_string(),
        ]
        .into_iter()
        .chain(self.features.iter().map(|&v| shortest_f64(v).to_string()))
    }
}

/// Why held-out rows could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum HeldOutError {
    /// A dataset line is unusable (line 1 is the header).
    #[error("line {line}: {message}")]
    Data {
        /// 1-based line number in the CSV.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A bundle's features do not fit the rows read (a bundle that was not among the needs).
    #[error("card.json: {0}")]
    Card(String),
}

/// A bundle whose features the dataset must provide: its role (for error messages) and its card.
#[derive(Debug, Clone, Copy)]
pub struct Needs<'a> {
    /// `active`, `candidate`, `baselined`.
    pub role: &'a str,
    /// The bundle's card.
    pub card: &'a Card,
}

/// The held-out rows of a dataset: decision time, label and the feature columns the bundles read.
#[derive(Debug, Clone)]
pub struct HeldOut {
    holdout_from: Option<i64>,
    ts_col: usize,
    label_col: usize,
    width: usize,
    /// (header index, column name) of each kept feature column.
    kept: Vec<(usize, String)>,
    rows_read: u64,
    labels: Vec<bool>,
    /// Row-major, `kept.len()` values per row.
    values: Vec<f32>,
}

impl HeldOut {
    /// Checks the header (line 1) against the bundles' features and starts an empty set.
    pub fn new<'h>(
        header: impl IntoIterator<Item = &'h str>,
        needs: &[Needs<'_>],
        holdout_from: Option<i64>,
    ) -> Result<HeldOut, HeldOutError> {
        let header: Vec<&str> = header.into_iter().collect();
        let err = |message: String| HeldOutError::Data { line: 1, message };
        for (i, h) in header.iter().enumerate() {
            if header[..i].contains(h) {
                return Err(err(format!("column `{h}` appears twice in the header")));
            }
        }
        let find = |name: &str| header.iter().position(|h| *h == name);
        let ts_col = find(DECISION_TS)
            .ok_or_else(|| err(format!("the header has no `{DECISION_TS}` column")))?;
        let label_col =
            find(LABEL).ok_or_else(|| err(format!("the header has no `{LABEL}` column")))?;
        let mut kept: Vec<(usize, String)> = Vec::new();
        for n in needs {
            for f in &n.card.features {
                let i = find(&f.name).ok_or_else(|| {
                    err(format!(
                        "column `{}` is missing: a feature of the {} bundle ({}); the header has: {}",
                        f.name,
                        n.role,
                        n.card.model_version,
                        header.join(",")
                    ))
                })?;
                if !kept.iter().any(|(j, _)| *j == i) {
                    kept.push((i, f.name.clone()));
                }
            }
        }
        Ok(HeldOut {
            holdout_from,
            ts_col,
            label_col,
            width: header.len(),
            kept,
            rows_read: 0,
            labels: Vec::new(),
            values: Vec::new(),
        })
    }

    /// Reads one data record (its 1-based line number for errors); keeps it if it is held out.
    /// Every row's `decision_ts` and `label` are checked; feature values only on kept rows.
    pub fn push<'r>(
        &mut self,
        line: u64,
        record: impl IntoIterator<Item = &'r str>,
    ) -> Result<(), HeldOutError> {
        let cells: Vec<&str> = record.into_iter().collect();
        let err = |message: String| HeldOutError::Data { line, message };
        if cells.len() != self.width {
            return Err(err(format!(
                "{} fields, the header has {}",
                cells.len(),
                self.width
            )));
        }
        self.rows_read += 1;
        let ts: i64 = cells[self.ts_col].parse().map_err(|_| {
            err(format!(
                "decision_ts {:?} is not an integer (ms)",
                cells[self.ts_col]
            ))
        })?;
        let label = match cells[self.label_col] {
            "0" => false,
            "1" => true,
            other => return Err(err(format!("label {other:?} is not 0 or 1"))),
        };
        if self.holdout_from.is_some_and(|from| ts < from) {
            return Ok(());
        }
        let start = self.values.len();
        for (i, name) in &self.kept {
            let cell = cells[*i];
            // `NaN` is a missing input, as `leadscore dataset` writes it; anything else must be
            // a finite number.
            match cell.parse::<f32>() {
                Ok(v) if v.is_finite() || cell == "NaN" => self.values.push(v),
                _ => {
                    self.values.truncate(start);
                    return Err(err(format!(
                        "column `{name}`: {cell:?} is neither a finite number nor NaN (missing)"
                    )));
                }
            }
        }
        self.labels.push(label);
        Ok(())
    }

    /// Data rows read (held out or not).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Held-out rows kept.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no row was held out.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Labels of the held-out rows.
    pub fn labels(&self) -> &[bool] {
        &self.labels
    }

    /// The first decision time held out (`None`: every row).
    pub fn holdout_from(&self) -> Option<i64> {
        self.holdout_from
    }

    /// Positives among the held-out rows.
    pub fn positives(&self) -> u64 {
        self.labels.iter().filter(|&&b| b).count() as u64
    }

    /// Each held-out row as one bundle's model input, in its card's feature order.
    pub fn feature_vectors(&self, scorer: &Scorer) -> Result<Vec<Vec<f32>>, HeldOutError> {
        let names = scorer.features().names();
        let k = self.kept.len();
        // Position of each of this bundle's features among the kept columns.
        let cols: Vec<usize> = names
            .iter()
            .map(|n| {
                self.kept.iter().position(|(_, c)| c == n).ok_or_else(|| {
                    HeldOutError::Card(format!("feature `{n}` was not read from the dataset"))
                })
            })
            .collect::<Result<_, _>>()?;
        // Values were checked as read (finite, or NaN for a missing input).
        Ok((0..self.len())
            .map(|r| {
                let row = &self.values[r * k..(r + 1) * k];
                cols.iter().map(|&c| row[c]).collect()
            })
            .collect())
    }

    /// The rows for which `keep(row index)` holds (a segment), with the same columns.
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> HeldOut {
        let k = self.kept.len();
        let mut out = self.clone_empty();
        for r in (0..self.len()).filter(|&r| keep(r)) {
            out.labels.push(self.labels[r]);
            out.values
                .extend_from_slice(&self.values[r * k..(r + 1) * k]);
        }
        out.rows_read = out.labels.len() as u64;
        out
    }

    fn clone_empty(&self) -> HeldOut {
        HeldOut {
            holdout_from: self.holdout_from,
            ts_col: self.ts_col,
            label_col: self.label_col,
            width: self.width,
            kept: self.kept.clone(),
            rows_read: 0,
            labels: Vec::new(),
            values: Vec::new(),
        }
    }
}

#[cfg(feature = "cli")]
pub use stream::{read_held_out, write, ReadError};

/// Whole CSV streams through the `csv` crate (a CLI dependency: the wasm front ends read no CSV).
#[cfg(feature = "cli")]
mod stream {
    use std::io::{Read, Write};

    use super::{header, HeldOut, HeldOutError, Needs};
    use crate::dataset::Row;

    /// Writes the header and `rows` to `out` and flushes it.
    pub fn write<W: Write>(out: W, features: &[String], rows: &[Row]) -> Result<(), ::csv::Error> {
        let mut w = ::csv::Writer::from_writer(out);
        w.write_record(header(features))?;
        let mut record = Vec::with_capacity(super::KEY_COLUMNS.len() + features.len());
        for row in rows {
            record.clear();
            record.extend(row.cells());
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    }

    /// Why a dataset stream could not be read.
    #[derive(Debug, thiserror::Error)]
    pub enum ReadError {
        /// A line's content is unusable.
        #[error(transparent)]
        Rows(#[from] HeldOutError),
        /// Not readable as CSV (its position names the line).
        #[error(transparent)]
        Csv(#[from] ::csv::Error),
        /// Reading the rest of the stream (for its hash) failed.
        #[error(transparent)]
        Io(#[from] std::io::Error),
    }

    /// A reader that hashes what passes through it: the dataset's sha256 without a second read.
    struct Hashing<R> {
        inner: R,
        hasher: sha2::Sha256,
    }

    impl<R: Read> Read for Hashing<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            sha2::Digest::update(&mut self.hasher, &buf[..n]);
            Ok(n)
        }
    }

    /// Reads the held-out rows of a dataset CSV; returns them and the stream's hex sha256.
    pub fn read_held_out<R: Read>(
        input: R,
        needs: &[Needs<'_>],
        holdout_from: Option<i64>,
    ) -> Result<(HeldOut, String), ReadError> {
        let mut rdr = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(Hashing {
                inner: input,
                hasher: sha2::Digest::new(),
            });
        let header = rdr.headers()?.clone();
        let mut rows = HeldOut::new(header.iter(), needs, holdout_from)?;
        let mut record = ::csv::StringRecord::new();
        while rdr.read_record(&mut record)? {
            let line = record.position().map_or(0, |p| p.line());
            rows.push(line, record.iter())?;
        }
        let mut rest = rdr.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink())?;
        let digest = sha2::Digest::finalize(rest.hasher);
        let sha = crate::hex::encode(&digest);
        Ok((rows, sha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::embedded;

    fn card_with(features: &[&str]) -> Card {
        let mut c = Card::parse(embedded::CARD).unwrap();
        c.features.retain(|f| features.contains(&f.name.as_str()));
        c
    }

    #[test]
    fn held_out_rows_check_header_and_cells() {
        let card = card_with(&["admin_pages", "page_value"]);
        let needs = [Needs {
            role: "active",
            card: &card,
        }];
        let header = "subject_kind,subject_id,decision_ts,outcome_ts,label,page_value,admin_pages";
        let mut h = HeldOut::new(header.split(','), &needs, Some(100)).unwrap();
        h.push(2, "visitor,a,99,,1,1.5,2".split(',')).unwrap();
        h.push(3, "visitor,b,100,150,1,1.5,2".split(',')).unwrap();
        h.push(4, "visitor,c,200,,0,0,0".split(',')).unwrap();
        assert_eq!((h.rows_read(), h.len(), h.positives()), (3, 2, 1));
        let e = h
            .push(5, "visitor,d,x,,0,0,0".split(','))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 5: decision_ts"), "{e}");
        let e = h
            .push(6, "visitor,d,300,,yes,0,0".split(','))
            .unwrap_err()
            .to_string();
        assert!(e.contains("label \"yes\""), "{e}");
        let e = h
            .push(7, "visitor,d,300,,0,inf,0".split(','))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 7: column `page_value`"), "{e}");
        assert!(h.push(8, "visitor,d,300,,0,0".split(',')).is_err());
        // A rejected row leaves no partial values behind.
        assert_eq!(h.values.len(), 2 * 2);
        // `NaN` is a missing input, as `leadscore dataset` writes it.
        h.push(10, "visitor,e,300,,0,NaN,1".split(',')).unwrap();
        assert_eq!(h.values.len(), 3 * 2);
        assert_eq!(h.values[4..].iter().filter(|v| v.is_nan()).count(), 1);
        // Rows before holdout_from are skipped even with bad features.
        h.push(9, "visitor,d,5,,0,oops,0".split(',')).unwrap();

        let e = HeldOut::new("decision_ts,label,admin_pages".split(','), &needs, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 1: column `page_value` is missing: a feature of the active bundle"),
            "{e}"
        );
        assert!(HeldOut::new("label,page_value,admin_pages".split(','), &needs, None).is_err());
        assert!(HeldOut::new(
            "decision_ts,page_value,admin_pages".split(','),
            &needs,
            None
        )
        .is_err());
        assert!(HeldOut::new(
            "decision_ts,label,label,page_value,admin_pages".split(','),
            &needs,
            None
        )
        .is_err());
    }

    #[cfg(feature = "cli")]
    #[test]
    fn rows_written_read_back() {
        use crate::dataset::SubjectKind;
        let card = card_with(&["admin_pages", "page_value"]);
        let names: Vec<String> = card.features.iter().map(|f| f.name.clone()).collect();
        let rows = [
            Row {
                kind: SubjectKind::Visitor,
                subject_id: "a,\"b\"".into(),
                decision_ts: 100,
                outcome_ts: Some(150),
                features: vec![2.0, 0.1],
            },
            Row {
                kind: SubjectKind::Lead,
                subject_id: "l".into(),
                decision_ts: 200,
                outcome_ts: None,
                features: vec![0.0, 1.5],
            },
        ];
        let mut out = Vec::new();
        write(&mut out, &names, &rows).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "subject_kind,subject_id,decision_ts,outcome_ts,label,{},{}\n\
                 visitor,\"a,\"\"b\"\"\",100,150,1,2,0.1\nlead,l,200,,0,0,1.5\n",
                names[0], names[1]
            )
        );
        let needs = [Needs {
            role: "active",
            card: &card,
        }];
        let (h, sha) = read_held_out(out.as_slice(), &needs, None).unwrap();
        assert_eq!((h.rows_read(), h.len(), h.positives()), (2, 2, 1));
        assert_eq!(sha, crate::model::sha256_hex(&out));
    }
}
