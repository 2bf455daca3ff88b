//! # pdx: the binary's library
//!
//! The `pdx` binary wires the crates together: configuration, the axum server, API keys,
//! the demo, and the command-line tools. Data flows top-down:
//!
//! ```text
//! main.rs ── config ──► app::App (db, accounts, ledger, sandbox, products) ──► server ──► http::router
//!                                                             │
//!        http::observe (request id, timeout, access log, metrics)
//!        http::authorize (bearer key → Principal, route policy → role check,
//!                         http::limits: rate per key, lock-out, uploads, body sizes)
//!        handlers (http::keys, http::ledger_api, …) ── Caller::owns for ownership
//!
//! portal (web pages, same server) ── Viewer (session cookie) ── Portal::get/send ──►
//!        the same /v1 router in-process, through http::authorize as the viewer's key
//! ```
//!
//! Business logic lives in the crates (`pdx-ledger`, `pdx-sandbox`, `pdx-products`,
//! `pdx-algorithms`); this package only adapts it to HTTP and the CLI. Where one crate
//! needs something from another it does not depend on, it declares a trait, and
//! [`bridges`] implements it once (the products crate's view of the sandbox's released
//! outputs is [`bridges::SandboxReleases`], held by [`app::App`]).

pub mod accounts;
pub mod app;
pub mod auth;
pub mod bridges;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod portal;
pub mod samples;
pub mod server;
pub mod supervision;
pub mod tls;
