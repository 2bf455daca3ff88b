//! Fuzz-target bodies for the heavy targets of `fuzz/` (issue #25): SQL admission and
//! the disclosure rewrite ([`sql_admission`]), CSV and Parquet ingest ([`ingest_csv`],
//! [`ingest_parquet`]) and the FHE request bodies ([`fhe_request`]).
//!
//! A fuzzing build compiles every dependency again with coverage instrumentation; for
//! polars, DataFusion and TFHE-rs that takes most of an hour on two cores, so `.ci/run`
//! fuzzes these targets only once that build fits its time budget. Every test run
//! replays their committed inputs instead: the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` only call the functions here, and this crate's integration
//! tests run every file of `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/`
//! through the same functions in the ordinary test build.
//! Each function panics when one of its properties fails (the submodules list them);
//! a fixture built once per process holds what the inputs are checked against.

mod fhe;
mod ingest;
mod sql;

pub use fhe::{FheFixture, fhe_request};
pub use ingest::{IngestFixture, ingest_csv, ingest_parquet};
pub use sql::{SqlFixture, sql_admission};

use polars::prelude::PolarsError;

use crate::fhe::FheError;
use crate::sql::SqlError;

/// Why a fixture could not be built (never caused by a fuzz input).
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// Writing a fixture file failed.
    #[error("writing a fixture file: {0}")]
    Io(#[from] std::io::Error),
    /// Building the fixture's data failed.
    #[error("building the fixture's data: {0}")]
    Build(String),
    /// The SQL sandbox refused the fixture's tables.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Generating the fixture's key or ciphertexts failed.
    #[error(transparent)]
    Fhe(#[from] FheError),
    /// Building the fixture's frame failed.
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

/// A unified social credit code, distinct for each `i` (the fixtures' enterprise keys).
fn credit_code(i: i64) -> String {
    format!("91440300MA5F{i:05}X")
}

/// The fuzz input read as a sequence of decisions; past its end every read is zero.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// Everything not read yet.
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// One of `items`, chosen by the next byte; `None` only when `items` is empty.
    fn pick<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        let choice = usize::from(self.byte());
        items.get(choice % items.len().max(1))
    }

    /// Applies the rest of the input to `bytes` as edits, four input bytes each: an
    /// operation (overwrite, insert, delete), a position (u16, wrapped) and a value.
    fn edit(&mut self, bytes: &mut Vec<u8>) {
        while !self.rest.is_empty() {
            let op = self.byte();
            let at = usize::from(u16::from_le_bytes([self.byte(), self.byte()]));
            let value = self.byte();
            match op % 3 {
                0 => {
                    let len = bytes.len().max(1);
                    if let Some(b) = bytes.get_mut(at % len) {
                        *b = value;
                    }
                }
                1 => bytes.insert(at % (bytes.len() + 1), value),
                _ => {
                    if !bytes.is_empty() {
                        bytes.remove(at % bytes.len());
                    }
                }
            }
        }
    }
}
