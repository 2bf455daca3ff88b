//! `pdx bench deid`: the de-identification pipeline against raw polars, in one run.
//!
//! | row | what | baseline |
//! |---|---|---|
//! | Adult end to end | parse + validate `adult.csv`, de-identify (k = 5, ≤ 1% suppressed, lattice search over 8 hierarchies), write content-addressed Parquet | polars reads the same CSV and counts the equivalence classes of the raw quasi-identifiers |
//! | generated N rows | de-identify an in-memory table with 5 quasi-identifiers (lattice search + generalisation + suppression) | polars counts the equivalence classes of the raw quasi-identifiers |
//!
//! Peak memory is the process's high-water mark (`VmHWM`), read after each row.

use std::time::Instant;

use anyhow::Context;
use pdx_algorithms::deid::baseline::{generated_table, raw_class_count, read_csv_raw};
use pdx_algorithms::deid::ingest::{TextEncoding, UploadFormat, read_upload};
use pdx_algorithms::deid::pipeline::deidentify;
use pdx_algorithms::deid::storage::store_content_addressed;

use pdx_sandbox::catalog::OpenAttribute;

use super::bench::median;

/// The process's peak resident memory in MiB (Linux), if known.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs the benchmark and prints a markdown table.
pub fn run(adult_runs: usize, rows: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let adult_dir = crate::samples::shared_data_dir().join("adult");
    let adult = crate::samples::adult_dataset(&adult_dir, OpenAttribute::Conditional)?;
    let csv = adult_dir.join("adult.csv");
    let qis = [
        "sex",
        "age",
        "race",
        "marital-status",
        "education",
        "native-country",
        "workclass",
        "occupation",
    ];
    let format = UploadFormat::Csv {
        delimiter: ';',
        encoding: TextEncoding::Utf8,
    };
    let key = [7u8; 32];
    // Stored as the server stores it: sealed under a keyring.
    let kek = pdx_seal::Kek::from_bytes([9; 32]);
    let at_rest = pdx_seal::AtRest::sealed(pdx_seal::Keyring::create(
        &dir.path().join(pdx_seal::KEYRING_FILE_NAME),
        &kek,
    )?);

    let bar = super::progress_bar(adult_runs as u64 * 2, "adult");
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    let mut last_report = None;
    for _ in 0..adult_runs {
        let t = Instant::now();
        let frame = read_upload(&pdx_seal::AtRest::Plain, &csv, &format, &adult.schema)?;
        let out = deidentify(frame, &adult.schema, &key)?;
        let mut result = out.frame;
        store_content_addressed(&mut result, dir.path(), &at_rest)?;
        ours.push(t.elapsed());
        last_report = Some(out.report);
        bar.inc(1);

        let t = Instant::now();
        let raw = read_csv_raw(&csv, b';')?;
        let classes = raw_class_count(&raw, &qis)?;
        base.push(t.elapsed());
        anyhow::ensure!(classes > 0, "baseline found no classes");
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = last_report.context("no Adult run")?;
    let adult_peak = peak_mib();

    let bar = super::progress_bar(3, "generated");
    let (schema, frame) = generated_table(rows, 42)?;
    bar.inc(1);
    let gen_qis = ["age", "sex", "region", "education", "occupation"];
    let t = Instant::now();
    let classes = raw_class_count(&frame, &gen_qis)?;
    let gen_base = t.elapsed();
    bar.inc(1);
    let t = Instant::now();
    let out = deidentify(frame, &schema, &key)?;
    let gen_ours = t.elapsed();
    bar.finish_and_clear();
    let gen_peak = peak_mib();

    let (o, b) = (median(ours), median(base));
    println!(
        "| benchmark | pdx median | baseline median (raw polars, same run) | ratio | peak memory |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| Adult k=5 end to end ({adult_runs} runs) | {:.1} ms | {:.1} ms | {:.1}× | {} |",
        o.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        o.as_secs_f64() / b.as_secs_f64().max(1e-9),
        adult_peak
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "n/a".into()),
    );
    println!(
        "| {rows} rows, 5 QIs, k=5 | {:.2} s ({:.0} rows/s) | {:.2} s | {:.1}× | {} |",
        gen_ours.as_secs_f64(),
        rows as f64 / gen_ours.as_secs_f64().max(1e-9),
        gen_base.as_secs_f64(),
        gen_ours.as_secs_f64() / gen_base.as_secs_f64().max(1e-9),
        gen_peak
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "n/a".into()),
    );
    println!();
    println!(
        "Adult: k achieved {}, levels {:?}, suppressed {} of {}, lattice {} nodes / {} evaluated, \
         prosecutor risk max {:.4} avg {:.4}, marketer {:.4}, unique share {:.4} → {:.4}, \
         information loss {} = {:.4}",
        report.k_achieved,
        report.levels,
        report.suppressed,
        report.records_in,
        report.lattice.nodes,
        report.lattice.evaluated,
        report.risk.prosecutor_max,
        report.risk.prosecutor_avg,
        report.risk.marketer_avg,
        report.risk.unique_share_before,
        report.risk.unique_share_after,
        report.information_loss.metric,
        report.information_loss.value,
    );
    println!(
        "Generated: {} raw classes; k achieved {}, levels {:?}, suppressed {}, lattice {} nodes / {} evaluated",
        classes,
        out.report.k_achieved,
        out.report.levels,
        out.report.suppressed,
        out.report.lattice.nodes,
        out.report.lattice.evaluated,
    );
    Ok(())
}
