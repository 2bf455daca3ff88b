//! # pdx-products: data products and trading
//!
//! Listings, licences and their propagation, orders with idempotency keys, delivery,
//! the revenue split (basis points, largest-remainder rounding to the fen), settlement
//! and remittance. Every economically significant step is a ledger entry written in the
//! same transaction as the business row.
//!
//! Filled by the products issue.
