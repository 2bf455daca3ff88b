//! OpenAPI schemas of the types the HTTP API sends, under the `openapi` feature.
//!
//! [`Hash32`] and [`EntryKind`] serialise by hand (lowercase hex; the kind's wire
//! name), so their schemas are written by hand as the strings they are. The structs that
//! hold them ([`crate::Entry`], [`crate::Receipt`], [`crate::kinds::AssetCertificate`])
//! derive theirs, so a receipt in the document has every field a client checks.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::entry::{EntryKind, Hash32};

impl PartialSchema for Hash32 {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A 32-byte hash, as 64 lowercase hex digits."))
            .pattern(Some("^[0-9a-f]{64}$"))
            .into()
    }
}

impl ToSchema for Hash32 {}

impl PartialSchema for EntryKind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "What the entry records, by its kind's wire name (e.g. `asset_certificate`); \
                 a kind this build does not know is kept as written.",
            ))
            .into()
    }
}

impl ToSchema for EntryKind {}
