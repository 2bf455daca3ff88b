//! End-to-end tests of the pdx binary and HTTP API: one test binary, one module per area.
mod abuse;
mod audit;
mod catalog;
mod crash;
mod demo;
mod fhe;
mod foundation;
mod governance;
mod ledger_http;
mod notebooks;
mod open_attribute;
mod products;
mod restart;
mod sandbox;
mod support;
mod tls;
