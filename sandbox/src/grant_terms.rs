//! Grant terms: the kind of a grant's purpose and the open-use agreement (开放利用协议)
//! the developer accepts by filing (SD22 Art.14; XT Art.30; GD21 Art.26).
//!
//! **The purpose's kind.** Beside its free-text purpose, every grant has a
//! [`PurposeKind`]: `research`, `public_interest` or `commercial`. It decides which
//! product licences the grant's results may carry (the compatibility table is in the
//! products crate's documentation, `pdx_products::revenue`): a research or
//! public-interest purpose never feeds a commercial product. An application that names
//! no kind gets `research` when it is research-only (asked for, or on a research-only
//! dataset) and `commercial` otherwise, which is what such grants meant before kinds
//! existed. A research-only grant cannot be `commercial` (422; GD21 Art.26: data shared
//! for research serves research and the public interest only), and a `research` purpose
//! makes the grant research-only.
//!
//! **The agreement.** The developer sends the agreement text it accepts (`agreement`),
//! or accepts the platform's standard agreement, which [`standard_agreement`] composes
//! from the application's own terms. Either is stored with the grant byte for byte, and
//! its BLAKE3 ([`agreement_hash`], plain BLAKE3 of the UTF-8 bytes, so that anyone
//! holding the text can check it) is on each `GrantDecision` entry of the grant together
//! with the purpose and its kind. The provider's approval may narrow the terms; the
//! approved terms are on the approval's entry, the accepted text stays as filed.

use pdx_ledger::Hash32;
use serde::{Deserialize, Serialize};

use crate::grants::GrantApplication;
use crate::{Result, SandboxError};

/// Longest agreement text, in characters.
pub const MAX_AGREEMENT_CHARS: usize = 20_000;

/// The kind of a grant's purpose, which decides the licences its results may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PurposeKind {
    /// Research (科研): results feed research-only or public-interest products only.
    Research,
    /// Public interest (公益): results feed research-only or public-interest products
    /// only.
    PublicInterest,
    /// Industrial or commercial use: any licence.
    Commercial,
}

impl PurposeKind {
    /// The wire name (`research`, `public_interest`, `commercial`).
    pub fn as_str(self) -> &'static str {
        match self {
            PurposeKind::Research => "research",
            PurposeKind::PublicInterest => "public_interest",
            PurposeKind::Commercial => "commercial",
        }
    }

    /// Parses a stored wire name (an internal fault when it is not one).
    pub fn parse(s: &str) -> Result<PurposeKind> {
        match s {
            "research" => Ok(PurposeKind::Research),
            "public_interest" => Ok(PurposeKind::PublicInterest),
            "commercial" => Ok(PurposeKind::Commercial),
            _ => Err(SandboxError::Internal(
                "a stored grant purpose kind is unknown".into(),
            )),
        }
    }

    /// True for the one kind whose results may feed a commercial product.
    pub fn allows_commercial_use(self) -> bool {
        matches!(self, PurposeKind::Commercial)
    }
}

/// BLAKE3 of an agreement text: plain BLAKE3 of its UTF-8 bytes.
pub fn agreement_hash(text: &str) -> Hash32 {
    Hash32(*blake3::hash(text.as_bytes()).as_bytes())
}

/// The terms fixed when an application is filed.
#[derive(Clone, Debug)]
pub(crate) struct FiledTerms {
    /// The purpose's kind.
    pub purpose_kind: PurposeKind,
    /// Whether the grant is research-only (asked for, the dataset's, or a research
    /// purpose).
    pub research_only: bool,
    /// The agreement text accepted, as stored.
    pub agreement_text: String,
    /// Its BLAKE3.
    pub agreement_hash: Hash32,
}

/// Checks an agreement text the developer sent: not blank, at most
/// [`MAX_AGREEMENT_CHARS`] characters, no control characters but line breaks and tabs.
/// It is kept exactly as sent (not trimmed): its hash is of the bytes the developer has.
fn checked_agreement(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(SandboxError::Invalid(
            "`agreement` must not be blank: send the agreement text you accept, or leave it \
             out to accept the platform's standard agreement"
                .into(),
        ));
    }
    if text.chars().count() > MAX_AGREEMENT_CHARS {
        return Err(SandboxError::Invalid(format!(
            "`agreement` is longer than {MAX_AGREEMENT_CHARS} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(SandboxError::Invalid(
            "`agreement` contains control characters".into(),
        ));
    }
    Ok(())
}

/// The platform's standard open-use agreement for an application, composed from its own
/// terms (deterministic: the same application gives the same text and hash).
pub fn standard_agreement(
    app: &GrantApplication,
    kind: PurposeKind,
    research_only: bool,
) -> String {
    let mut columns = app.columns.clone();
    columns.sort();
    columns.dedup();
    let mut kinds: Vec<&str> = app.model_kinds.iter().map(|k| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    format!(
        "PDX OPEN-USE AGREEMENT (开放利用协议)\n\
         \n\
         Dataset: {dataset}\n\
         Purpose ({kind}): {purpose}\n\
         Columns: {columns}\n\
         Model kinds: {kinds}\n\
         Term: {term} days from approval\n\
         Privacy budget: epsilon {epsilon}, delta {delta}; at most {queries} model runs\n\
         Research only: {research}\n\
         \n\
         1. The data is used only for the stated purpose, only through models run in the \
         sandbox, and neither it nor any result is passed to a third party except as a data \
         product under its licence (GD18 Art.16; XT Art.25, Art.42).\n\
         2. Only vetted results leave the sandbox; every run, release and spend of the \
         privacy budget is recorded on the ledger.\n\
         3. Products built on the results carry only licences that fit the purpose: a \
         research or public-interest purpose never feeds a commercial product (GD21 \
         Art.26).\n\
         4. The provider may narrow these terms when approving, and may revoke the grant; \
         a revocation or suspension ends the use at once.\n",
        dataset = app.dataset_id,
        kind = kind.as_str(),
        purpose = app.purpose.trim(),
        columns = columns.join(", "),
        kinds = kinds.join(", "),
        term = app.term_days,
        epsilon = app.epsilon,
        delta = app.delta,
        queries = app.query_budget,
        research = if research_only { "yes" } else { "no" },
    )
}

/// The purpose's kind, research-only flag and agreement of an application on a dataset
/// that is (`dataset_research_only`) or is not research-only; see the module docs.
pub(crate) fn filed_terms(
    app: &GrantApplication,
    dataset_research_only: bool,
) -> Result<FiledTerms> {
    let research_only_asked = app.research_only || dataset_research_only;
    let purpose_kind = match app.purpose_kind {
        Some(kind) => kind,
        None if research_only_asked => PurposeKind::Research,
        None => PurposeKind::Commercial,
    };
    if research_only_asked && purpose_kind == PurposeKind::Commercial {
        return Err(SandboxError::Invalid(
            "a research-only grant (asked for, or on a research-only dataset) cannot serve a \
             commercial purpose: data shared for research serves research and the public \
             interest only (GD21 Art.26); set `purpose_kind` to `research` or \
             `public_interest`"
                .into(),
        ));
    }
    let research_only = research_only_asked || purpose_kind == PurposeKind::Research;
    let agreement_text = match &app.agreement {
        Some(text) => {
            checked_agreement(text)?;
            text.clone()
        }
        None => standard_agreement(app, purpose_kind, research_only),
    };
    let agreement_hash = agreement_hash(&agreement_text);
    Ok(FiledTerms {
        purpose_kind,
        research_only,
        agreement_text,
        agreement_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::ModelKind;

    fn application(research_only: bool, kind: Option<PurposeKind>) -> GrantApplication {
        GrantApplication {
            dataset_id: pdx_ids::DatasetId::parse("ds_1").unwrap(),
            purpose: "district energy study".into(),
            columns: vec!["kwh".into(), "district".into()],
            model_kinds: vec![ModelKind::Sql],
            term_days: 365,
            epsilon: 0.0,
            delta: 0.0,
            query_budget: 10,
            research_only,
            purpose_kind: kind,
            agreement: None,
        }
    }

    #[test]
    fn kinds_default_from_research_only_and_research_is_never_commercial() {
        let t = filed_terms(&application(false, None), false).unwrap();
        assert_eq!(t.purpose_kind, PurposeKind::Commercial);
        assert!(!t.research_only);
        let t = filed_terms(&application(true, None), false).unwrap();
        assert_eq!(t.purpose_kind, PurposeKind::Research);
        let t = filed_terms(&application(false, None), true).unwrap();
        assert_eq!(t.purpose_kind, PurposeKind::Research);
        assert!(t.research_only);
        let t = filed_terms(&application(false, Some(PurposeKind::Research)), false).unwrap();
        assert!(
            t.research_only,
            "a research purpose makes the grant research-only"
        );
        let t = filed_terms(&application(false, Some(PurposeKind::PublicInterest)), true).unwrap();
        assert_eq!(t.purpose_kind, PurposeKind::PublicInterest);
        assert!(filed_terms(&application(true, Some(PurposeKind::Commercial)), false).is_err());
        assert!(filed_terms(&application(false, Some(PurposeKind::Commercial)), true).is_err());
    }

    #[test]
    fn agreements_are_kept_as_sent_and_hashed_plainly() {
        let mut app = application(false, None);
        let text = "  I accept the terms.\nSigned: energy-analytics  ";
        app.agreement = Some(text.into());
        let t = filed_terms(&app, false).unwrap();
        assert_eq!(t.agreement_text, text);
        assert_eq!(
            t.agreement_hash.0,
            *blake3::hash(text.as_bytes()).as_bytes()
        );
        for bad in [" \n ", "a\u{0}b"] {
            app.agreement = Some(bad.into());
            assert!(filed_terms(&app, false).is_err(), "{bad:?}");
        }
        app.agreement = Some("x".repeat(MAX_AGREEMENT_CHARS + 1));
        assert!(filed_terms(&app, false).is_err());
    }

    #[test]
    fn the_standard_agreement_is_deterministic_and_names_the_terms() {
        let app = application(false, None);
        let a = filed_terms(&app, false).unwrap();
        let b = filed_terms(&app, false).unwrap();
        assert_eq!(a.agreement_text, b.agreement_text);
        assert_eq!(a.agreement_hash, b.agreement_hash);
        assert!(
            a.agreement_text
                .contains("Purpose (commercial): district energy study")
        );
        assert!(a.agreement_text.contains("Columns: district, kwh"));
    }
}
