//! # pdx-products: data products and trading
//!
//! Released sandbox outputs become data products; the exchange reviews and lists them;
//! buyers order, pay and download them under a licence; revenue is split between the
//! public finance of the providers' regions, the developer and the platform, then
//! settled and remitted. Every economically significant step is a ledger entry written
//! in the same database transaction as the business row, so the two never disagree.
//! Orders and payments, the frequent writes, are group-committed
//! ([`pdx_ledger::group`]): concurrent buyers share a transaction and its commit, each
//! in a savepoint of its own, and each is answered once the commit is durable.
//!
//! ## Life cycle
//!
//! | step | who | rows | ledger |
//! |---|---|---|---|
//! | [`Products::create_product`] (or [`Products::package_releases`]) | developer | `products`, `product_sources`, `product_regions` | — |
//! | [`Products::list`] (or [`Products::list_unless_suspended`]) / [`Products::reject`] | exchange | status, registration no. | `ProductListing` |
//! | [`Products::delist`] | exchange or developer | status | `ProductDelisting` |
//! | [`Products::place_order`] | buyer | `orders` (price snapshot, idempotency key); a free product's order is paid at once | — (free: `Transaction` of 0 fen) |
//! | [`Products::pay`] | buyer | status, `revenue_lines` (the split) | `Transaction` |
//! | [`Products::download`] | buyer | `downloads` log, status → delivered | — |
//! | [`Products::refund`] | exchange | status, negated `revenue_lines` | `Refund` |
//! | [`Products::settle`] | exchange | `settlements`, `remittances` | one `Remittance` per payee |
//!
//! Roles are the binary's business: this crate trusts that a caller passed as the
//! exchange is one. It does check organisations: a developer can only package its own
//! releases, and a buyer only sees, pays and downloads its own orders (another buyer's
//! order is "not found").
//!
//! ## Provenance and licences
//!
//! [`Products::create_product`] generates the provenance manifest (SD22 Art.15) from the
//! [`ReleasedSource`]s the binary supplies, directly or through [`ReleasedOutputs`], the
//! trait it implements once (see [`outputs`]; this crate does not depend on the
//! sandbox): per release, the output and model hashes and the reviewers; per source
//! dataset, the title, source department, certificate number, version content hash and
//! acquisition date. It is stored as RFC 8785 canonical JSON;
//! those exact bytes are `manifest.json` in every download, and their BLAKE3 is
//! `ProductListing.manifest_hash`. A product with any research-only source (a
//! research-only grant or dataset) may only carry a non-commercial licence
//! (`research_only` or `public_interest`): anything else is a
//! [`ProductsError::Conflict`], at creation and again at listing.
//!
//! ## Revenue rules and licences that fit the grant's purpose
//!
//! See [`revenue`] (GY ch.6; GD21 Art.26): only a `public_interest` product may be
//! free (price 0; its order is complete at once, with a `Transaction` of 0 fen and no
//! remittance); a paid product gives public finance at least the configured minimum
//! share (default 1,000 bp, 10 %); and a product's licence must fit the purpose of each
//! source's grant, by this table (a misfit is a 422 naming both):
//!
//! | grant purpose | `research_only` | `public_interest` | `commercial_internal` | `commercial_redistribution` |
//! |---|---|---|---|---|
//! | `research` | yes | yes | no | no |
//! | `public_interest` | yes | yes | no | no |
//! | `commercial` | yes | yes | yes | yes |
//! | no grant (unconditionally open data) | yes | yes | yes | yes |
//!
//! ## Orders and idempotency
//!
//! An order is bound to `(buyer org, Idempotency-Key)` by a unique key, along with the
//! BLAKE3 of the request body. A retry with the same key and body returns the same
//! order (concurrent retries too: the loser of the insert reads the winner's row); the
//! same key with another body is [`ProductsError::IdempotencyMismatch`] (422). Paying
//! moves `pending → paid` with a conditional update; only the caller that made the
//! change appends the `Transaction` entry, in the same transaction, so paying twice
//! (or concurrently) writes one entry. The licence term runs from payment.
//!
//! ## Money and the rounding rule
//!
//! Money is `i64` fen (`BIGINT`), never floating point; the only currency is CNY. On
//! payment the price is split (see [`split`]): first over public finance, developer and
//! platform by the product's basis points, then each part over the provider regions by
//! the number of distinct source datasets from each, both by **largest remainder**:
//! every part starts at the floor of its exact share, the leftover fen go to the largest
//! remainders, ties to the earlier part (public finance, then developer, then platform).
//! The parts sum exactly to the price and each is within one fen of its exact share.
//! The cells become `revenue_lines`; a refund adds the negated lines.
//!
//! ## Settlement
//!
//! Periods are UTC calendar months, named `YYYY-MM`. A period can be settled once it
//! has ended, and periods are settled in order. Settling takes every unsettled revenue
//! line dated before the period's end (so lines of an unsettled earlier month roll
//! forward), sums them per payee, and writes one `Remittance` entry per payee; the
//! `settlements` row (keyed by period) and the unique `(period, payee)` key make a
//! re-run return the stored result and change nothing. A refund of an order already
//! settled is dated when it happens, so it falls into the next period's settlement as a
//! negative adjustment (a payee's remittance is negative if nothing else offsets it).
//! Payees: `public-finance:<region>`, the developer organisation, and
//! [`PLATFORM_ACCOUNT`].
//!
//! ## Reconciliation
//!
//! [`Products::reconcile`] checks paid − refunded = remitted + unsettled to the fen,
//! overall (paid and refunded from the orders, remitted from the remittances, unsettled
//! from the revenue lines, and the same sums from the ledger's own entries) and per
//! provider region, developer or period.
//!
//! ## Downloads
//!
//! A download is a POSIX ustar archive (written by [`archive`], no dependency), all
//! members under one directory `<registration no>-<order id>/`:
//!
//! - `manifest.json`: the provenance manifest, byte for byte as hashed on the ledger;
//! - `licence.json` and `LICENCE.txt`: the licence granted to the buyer, with its term;
//! - `receipt.json`: the offline ledger receipt of the order's `Transaction` entry;
//! - `data/NN-<release id>.parquet`: each released output, read from its path;
//! - `BLAKE3SUMS`: `<hash>  <name>` for every other member (the `b3sum` format).
//!
//! Only paid or delivered orders within the licence term download; each download is
//! logged in `downloads`.
//!
//! ## HTTP
//!
//! The binary serves this crate over HTTP; the crate itself stays free of HTTP. The
//! schemas for the binary's OpenAPI document (`utoipa::ToSchema` on the public types)
//! are derived only under the `openapi` feature, which the binary enables.

#![warn(missing_docs)]

pub mod archive;
mod catalog;
pub mod clock;
pub mod error;
pub mod model;
mod orders;
pub mod outputs;
pub mod revenue;
mod rows;
mod settlement;
pub mod split;

use pdx_ledger::Ledger;
use pdx_ledger::db::{Db, MigrationSet};
use pdx_seal::AtRest;

pub use clock::{Clock, Period};
pub use error::{ProductsError, Result};
pub use model::*;
pub use orders::{MAX_IDEMPOTENCY_KEY, OrderFilter};
pub use outputs::{OutputsError, ReleasedOutputs};
pub use pdx_ids::ReleaseRef;
pub use revenue::{
    DEFAULT_PUBLIC_FINANCE_MIN_BP, FREE_PAYMENT_REF, PayeeRemittance, RemittanceFilter,
};
pub use split::{Allocation, PayeeKind, RevenueSplit, allocate, largest_remainder};

/// The platform's payee account (the reserved platform organisation).
pub const PLATFORM_ACCOUNT: &str = "pdx";

/// This crate's migrations (table `_pdx_products_migrations`, versions 3001+).
pub fn migrations() -> MigrationSet {
    MigrationSet {
        table: "_pdx_products_migrations",
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// Products, orders, settlement and reconciliation over one database and ledger.
#[derive(Clone)]
pub struct Products {
    db: Db,
    ledger: Ledger,
    clock: Clock,
    /// The minimum public-finance share of a paid product, basis points ([`revenue`]).
    public_finance_min_bp: u32,
    /// How the released files a bundle ships are kept (sealed in the server).
    at_rest: AtRest,
}

impl Products {
    /// Runs this crate's migrations and opens it (the ledger must already be migrated).
    pub async fn open(db: Db, ledger: Ledger) -> Result<Products> {
        db.migrate(migrations()).await?;
        Ok(Products {
            db,
            ledger,
            clock: Clock::system(),
            public_finance_min_bp: DEFAULT_PUBLIC_FINANCE_MIN_BP,
            at_rest: AtRest::Plain,
        })
    }

    /// Reads released files (for bundles) through `at_rest`: the sandbox zones' handle
    /// in the server, where every zone file is sealed.
    pub fn with_zone_files(mut self, at_rest: AtRest) -> Products {
        self.at_rest = at_rest;
        self
    }

    /// Uses `clock` for "now" (licence terms, periods); the ledger keeps its own time.
    pub fn with_clock(mut self, clock: Clock) -> Products {
        self.clock = clock;
        self
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}
