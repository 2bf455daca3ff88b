//! Command-line tools beyond `serve` and `demo`.

pub mod backup;
pub mod backup_format;
pub mod backup_pg;
pub mod bench;
pub mod bench_deid;
pub mod bench_fhe;
pub mod bench_orders;
pub mod bench_portal;
pub mod bench_sandbox;
pub mod bench_soak;
pub mod fhe;
pub mod ledger;
pub mod reconcile;
pub mod restore;
pub mod witness;
pub mod zones;

/// A progress bar in the house style, hidden when stderr is not a terminal.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
