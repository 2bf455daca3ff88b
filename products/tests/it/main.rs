//! pdx-products' one integration-test binary; each area is a module. Every test runs on
//! SQLite and, when `PDX_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL schema too.
mod catalog;
mod concurrency;
mod orders;
mod outputs;
mod settlement;
mod split;
mod support;
mod suspension;
