//! # pdx-ids: one type per kind of identifier
//!
//! Every record pdx keeps has an id with a readable prefix (`ds_3f9a…` for a dataset,
//! `job_…` for a job, `org-…` for an organisation). Before this crate they were all bare
//! `String`s, so a job id could be passed where an output id was meant and nothing
//! noticed. Here each kind is its own newtype:
//!
//! - **Form.** An id is `{prefix}{separator}{body}`: the kind's prefix, its separator
//!   (`_`, or `-` for organisations, none for API keys) and a body of 1 to 64 lowercase
//!   ASCII letters, digits, `_` or `-` (nothing a path, a query or a log line treats
//!   specially). Fresh ids have a random body of 16 hex digits (12 for
//!   organisations), as the ids minted before the types existed, so stored ids parse.
//! - **Parsing** ([`std::str::FromStr`], serde, sqlx) accepts only that form and fails
//!   with an [`IdError`] naming the kind, never echoing the input: a malformed id in a
//!   URL path means "no such resource" (the HTTP layer answers 404), and an error must
//!   not carry a caller's or a stored value anywhere.
//! - **Printing** ([`std::fmt::Display`], serde, sqlx) is the string itself, so the JSON
//!   API, the database columns and the ledger payloads are byte-for-byte what they were.
//! - **OpenAPI** (feature `openapi`, which the binary enables). Each type is a named
//!   string schema with its pattern, so clients see which kind of id each field and path
//!   parameter takes.
//!
//! [`VersionRef`] names one version of a dataset (`ds_…@3`), the form certificates,
//! lineage and provenance cite. [`ReleaseRef`] names a released output by its release
//! id or by its output id (a developer packaging a product may give either).
//!
//! The ledger crate does not use these types: its entry payloads are a wire format a
//! supervisor verifies on its own, and it depends on no other pdx crate.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// The longest body an id may have (fresh ids have 16 characters).
pub const MAX_BODY_LEN: usize = 64;

/// The start of every [`IdError`] message; the HTTP layer recognises a malformed id
/// in a path by it (and answers 404, as for an id that does not exist).
pub const MALFORMED_ID: &str = "malformed id";

/// An input that is not an id of the expected kind. It names the kind, not the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed id: not a {kind} id")]
pub struct IdError {
    /// The kind of id expected, e.g. "dataset".
    pub kind: &'static str,
}

/// Whether `body` is 1 to [`MAX_BODY_LEN`] lowercase ASCII letters, digits, `_` or `-`.
fn valid_body(body: &str) -> bool {
    !body.is_empty()
        && body.len() <= MAX_BODY_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_' || b == b'-')
}

/// Checks `s` against `{prefix}{sep}{body}`.
fn check_form(s: &str, prefix: &str, sep: &str, kind: &'static str) -> Result<(), IdError> {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(sep))
        .filter(|body| valid_body(body))
        .map(|_| ())
        .ok_or(IdError { kind })
}

/// A random body of `bytes` bytes as lowercase hex.
fn random_body(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::Rng::fill(&mut rand::thread_rng(), buf.as_mut_slice());
    hex::encode(buf)
}

/// The OpenAPI schema of a string id with this pattern and example.
#[cfg(feature = "openapi")]
fn string_schema(
    description: &str,
    pattern: &str,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .pattern(Some(pattern))
        .max_length(Some(80))
        .examples([serde_json::Value::String(example.to_string())])
        .into()
}

/// Declares one id type: the newtype, parsing, printing, serde, sqlx and OpenAPI.
macro_rules! id_type {
    (
        $(#[$doc:meta])*
        $name:ident, kind = $kind:literal, prefix = $prefix:literal, sep = $sep:literal,
        random_bytes = $bytes:literal, example = $example:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;
            /// What the kind is called in errors.
            pub const KIND: &'static str = $kind;

            /// A fresh random id of this kind.
            pub fn random() -> Self {
                Self(format!("{}{}{}", $prefix, $sep, random_body($bytes)))
            }

            /// Parses `s`, which must have this kind's form.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_form(s, $prefix, $sep, $kind)?;
                Ok(Self(s.to_string()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                check_form(&s, $prefix, $sep, $kind)?;
                Ok(Self(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }

        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&self.0, buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(
                value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                Ok(Self::try_from(s)?)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema(
                    concat!("A ", $kind, " id."),
                    concat!("^", $prefix, $sep, "[0-9a-z_-]{1,64}$"),
                    $example,
                )
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

id_type!(
    /// An organisation (provider, developer, exchange, buyer, supervisor...).
    OrgId, kind = "organisation", prefix = "org", sep = "-", random_bytes = 6,
    example = "org-3f9a0c12b4e5"
);
id_type!(
    /// An API key (the public half of `pdx_{key id}_{secret}`).
    KeyId, kind = "key", prefix = "", sep = "", random_bytes = 8,
    example = "3f9a0c12b4e5d6a7"
);
id_type!(
    /// A catalog entry (a dataset and all its versions).
    DatasetId, kind = "dataset", prefix = "ds", sep = "_", random_bytes = 8,
    example = "ds_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A background job (ingest, model run, FHE query, verification).
    JobId, kind = "job", prefix = "job", sep = "_", random_bytes = 8,
    example = "job_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A registered algorithm model.
    ModelId, kind = "model", prefix = "mdl", sep = "_", random_bytes = 8,
    example = "mdl_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A quarantined run output awaiting review.
    OutputId, kind = "output", prefix = "out", sep = "_", random_bytes = 8,
    example = "out_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A reviewed output released from the sandbox.
    ReleaseId, kind = "release", prefix = "rel", sep = "_", random_bytes = 8,
    example = "rel_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A data product listed on the exchange.
    ProductId, kind = "product", prefix = "prd", sep = "_", random_bytes = 8,
    example = "prd_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A developer's grant to use a dataset.
    GrantId, kind = "grant", prefix = "gr", sep = "_", random_bytes = 8,
    example = "gr_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A buyer's order for a product.
    OrderId, kind = "order", prefix = "ord", sep = "_", random_bytes = 8,
    example = "ord_3f9a0c12b4e5d6a7"
);
id_type!(
    /// One delivery of a purchased product.
    DownloadId, kind = "download", prefix = "dl", sep = "_", random_bytes = 8,
    example = "dl_3f9a0c12b4e5d6a7"
);
id_type!(
    /// An objection filed against a release or dataset.
    ObjectionId, kind = "objection", prefix = "obj", sep = "_", random_bytes = 8,
    example = "obj_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A private-lookup (FHE) template.
    FheTemplateId, kind = "FHE template", prefix = "ft", sep = "_", random_bytes = 8,
    example = "ft_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A bank's registered FHE server key.
    FheKeyId, kind = "FHE key", prefix = "fk", sep = "_", random_bytes = 8,
    example = "fk_3f9a0c12b4e5d6a7"
);
id_type!(
    /// An encrypted lookup query.
    FheQueryId, kind = "FHE query", prefix = "fq", sep = "_", random_bytes = 8,
    example = "fq_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A subject's registered consent-signing key.
    ConsentKeyId, kind = "consent key", prefix = "ck", sep = "_", random_bytes = 8,
    example = "ck_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A supervisor's request to open a consent commitment.
    ConsentRequestId, kind = "consent request", prefix = "cr", sep = "_", random_bytes = 8,
    example = "cr_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A provider's request to change a dataset's open attribute (SD22 Art.8).
    AttributeChangeId, kind = "change request", prefix = "oac", sep = "_", random_bytes = 8,
    example = "oac_3f9a0c12b4e5d6a7"
);
id_type!(
    /// The data authority's emergency relaxation of a dataset's open attribute (XT
    /// Art.23(7)).
    RelaxationId, kind = "relaxation", prefix = "rlx", sep = "_", random_bytes = 8,
    example = "rlx_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A request, from anyone, to open a dataset or publish a new one (SD22 Art.9, 12).
    OpenDataRequestId, kind = "open-data request", prefix = "odr", sep = "_", random_bytes = 8,
    example = "odr_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A government department's request to share another provider's dataset (GD18).
    ShareRequestId, kind = "share request", prefix = "shr", sep = "_", random_bytes = 8,
    example = "shr_3f9a0c12b4e5d6a7"
);
id_type!(
    /// The data authority's yearly evaluation of one provider (GD21 Art.48-49).
    EvaluationId, kind = "evaluation", prefix = "evl", sep = "_", random_bytes = 8,
    example = "evl_3f9a0c12b4e5d6a7"
);
id_type!(
    /// The data authority's rectification order (GD21 Art.52; GD18 Art.31).
    RectificationId, kind = "rectification order", prefix = "rct", sep = "_", random_bytes = 8,
    example = "rct_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A provider's filing of a not-shared classification with the authority (GD21 Art.13).
    FilingId, kind = "filing", prefix = "fil", sep = "_", random_bytes = 8,
    example = "fil_3f9a0c12b4e5d6a7"
);
id_type!(
    /// A download or export recorded on the ledger (GD18 Art.28; XT Art.34(4)).
    AccessId, kind = "access record", prefix = "acc", sep = "_", random_bytes = 8,
    example = "acc_3f9a0c12b4e5d6a7"
);

/// One version of a dataset, written `{dataset id}@{version}` (versions count from 1).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionRef {
    /// The dataset.
    pub dataset: DatasetId,
    /// The version number, from 1.
    pub version: u64,
}

impl VersionRef {
    /// The reference to `version` of `dataset`.
    pub fn new(dataset: DatasetId, version: u64) -> Self {
        Self { dataset, version }
    }
}

impl FromStr for VersionRef {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "dataset version";
        let (dataset, version) = s.split_once('@').ok_or(IdError { kind: KIND })?;
        let dataset = DatasetId::parse(dataset).map_err(|_| IdError { kind: KIND })?;
        // Digits only: `u64::from_str` would also take a leading `+`.
        if version.is_empty() || version.len() > 19 || !version.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(IdError { kind: KIND });
        }
        let version: u64 = version.parse().map_err(|_| IdError { kind: KIND })?;
        if version == 0 {
            return Err(IdError { kind: KIND });
        }
        Ok(Self { dataset, version })
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.dataset, self.version)
    }
}

impl fmt::Debug for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl serde::Serialize for VersionRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for VersionRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for VersionRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            "One version of a dataset: the dataset id, `@`, the version number.",
            "^ds_[0-9a-z_-]{1,64}@[1-9][0-9]{0,18}$",
            "ds_3f9a0c12b4e5d6a7@1",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for VersionRef {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("VersionRef")
    }
}

/// A released output named by its release id or by the id of the output released.
///
/// It reads and prints as the bare id (`rel_…` or `out_…`, told apart by the prefix),
/// in JSON too; anything else fails to parse with an [`IdError`] that does not echo it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReleaseRef {
    /// By release id.
    Release(ReleaseId),
    /// By the id of the output that was released.
    Output(OutputId),
}

impl ReleaseRef {
    /// What the kind is called in errors.
    pub const KIND: &'static str = "release or output";

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match self {
            ReleaseRef::Release(id) => id.as_str(),
            ReleaseRef::Output(id) => id.as_str(),
        }
    }
}

impl From<ReleaseId> for ReleaseRef {
    fn from(id: ReleaseId) -> Self {
        ReleaseRef::Release(id)
    }
}

impl From<OutputId> for ReleaseRef {
    fn from(id: OutputId) -> Self {
        ReleaseRef::Output(id)
    }
}

impl FromStr for ReleaseRef {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if let Ok(id) = ReleaseId::parse(s) {
            return Ok(ReleaseRef::Release(id));
        }
        OutputId::parse(s)
            .map(ReleaseRef::Output)
            .map_err(|_| IdError { kind: Self::KIND })
    }
}

impl fmt::Display for ReleaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ReleaseRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ReleaseRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ReleaseRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some("A released output: its release id, or its output id."))
            .item(<ReleaseId as utoipa::PartialSchema>::schema())
            .item(<OutputId as utoipa::PartialSchema>::schema())
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ReleaseRef {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ReleaseRef")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_parse_and_print_as_themselves() {
        let id = JobId::random();
        assert!(id.as_str().starts_with("job_"));
        assert_eq!(id.as_str().len(), "job_".len() + 16);
        assert_eq!(JobId::parse(id.as_str()).unwrap(), id);
        let org = OrgId::random();
        assert!(org.as_str().starts_with("org-"));
        assert_eq!(org.to_string().parse::<OrgId>().unwrap(), org);
        let key = KeyId::random();
        assert_eq!(key.as_str().len(), 16);
        assert_eq!(KeyId::parse(key.as_str()).unwrap(), key);
    }

    #[test]
    fn ids_of_another_kind_or_form_are_refused_without_echoing_them() {
        for bad in [
            "",
            "job_",
            "out_3f9a0c12b4e5d6a7",
            "job-3f9a",
            "JOB_3f9a",
            "job_3F9A",
            "job_3f9a/../x",
            "job_3f9a 1",
            "job_\u{e9}",
        ] {
            let err = JobId::parse(bad).unwrap_err();
            assert_eq!(err.kind, "job", "{bad:?}");
            assert!(err.to_string().starts_with(MALFORMED_ID));
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{bad:?} echoed");
            }
        }
        assert!(JobId::parse(&format!("job_{}", "a".repeat(MAX_BODY_LEN))).is_ok());
        assert!(JobId::parse(&format!("job_{}", "a".repeat(MAX_BODY_LEN + 1))).is_err());
        // The organisation separator is a hyphen; bodies may hold `_` and `-`.
        assert!(OrgId::parse("org_3f9a0c12b4e5").is_err());
        assert!(OrgId::parse("org-buyer-01").is_ok());
        assert!(JobId::parse("job_running_1f").is_ok());
    }

    #[test]
    fn json_is_the_bare_string_and_a_wrong_kind_fails_to_deserialize() {
        let id = ReleaseId::parse("rel_bench").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"rel_bench\"");
        let back: ReleaseId = serde_json::from_str("\"rel_bench\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<ReleaseId>("\"out_bench\"").unwrap_err();
        assert!(err.to_string().starts_with(MALFORMED_ID));
    }

    #[test]
    fn version_refs_round_trip_and_refuse_other_forms() {
        let v: VersionRef = "ds_ab@12".parse().unwrap();
        assert_eq!(v.dataset.as_str(), "ds_ab");
        assert_eq!(v.version, 12);
        assert_eq!(v.to_string(), "ds_ab@12");
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"ds_ab@12\"");
        for bad in [
            "ds_ab", "ds_ab@", "ds_ab@x", "ds_ab@0", "ds_ab@+1", "out_ab@1", "@1",
        ] {
            assert!(bad.parse::<VersionRef>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_release_ref_is_told_apart_by_its_prefix() {
        let r: ReleaseRef = "rel_ab".parse().unwrap();
        assert_eq!(r, ReleaseRef::Release(ReleaseId::parse("rel_ab").unwrap()));
        let o: ReleaseRef = "out_ab".parse().unwrap();
        assert_eq!(o, ReleaseRef::Output(OutputId::parse("out_ab").unwrap()));
        assert_eq!(serde_json::to_string(&o).unwrap(), "\"out_ab\"");
        let err = "job_ab".parse::<ReleaseRef>().unwrap_err();
        assert_eq!(err.kind, ReleaseRef::KIND);
        assert!(!err.to_string().contains("job_ab"));
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn the_openapi_schema_is_a_named_string_with_the_pattern() {
        use utoipa::{PartialSchema, ToSchema};
        assert_eq!(DatasetId::name(), "DatasetId");
        let json = serde_json::to_value(DatasetId::schema()).unwrap();
        assert_eq!(json["type"], "string");
        assert_eq!(json["pattern"], "^ds_[0-9a-z_-]{1,64}$");
        let json = serde_json::to_value(OrgId::schema()).unwrap();
        assert_eq!(json["pattern"], "^org-[0-9a-z_-]{1,64}$");
    }
}
