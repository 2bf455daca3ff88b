//! Revenue splitting with largest-remainder rounding.
//!
//! # The rounding rule
//!
//! An amount `A` (fen, `A >= 0`) is split over weights `w_1..w_n` (total `W > 0`):
//!
//! 1. each part starts at `floor(A * w_i / W)`;
//! 2. the fen left over (`A - sum`, always fewer than `n`) go one each to the parts
//!    with the largest remainders `A * w_i mod W`;
//! 3. ties go to the earlier part.
//!
//! The parts then sum to exactly `A`, and each is within one fen of its exact share
//! `A * w_i / W` (strictly: `|part * W - A * w_i| < W`). Arithmetic is in `u128`, so no
//! product overflows.
//!
//! A sale is split in two stages (see [`allocate`]): first over the payees, in the order
//! public finance, developer, platform (so a tie never rounds in the platform's own
//! favour), by the product's basis points; then each payee's part over the provider
//! regions of the product's source datasets, weighted by how many distinct datasets
//! each region provided. Each stage is a largest-remainder split, so every payee's
//! total is within one fen of its exact share, and every region's public-finance
//! account within one fen of its exact share of the public-finance part.

use serde::{Deserialize, Serialize};

use crate::error::{ProductsError, Result};

/// Basis points in a whole.
pub const BP_TOTAL: u32 = 10_000;

/// Splits `amount` over `weights` by largest remainder (see the module docs).
pub fn largest_remainder(amount: i64, weights: &[u64]) -> Result<Vec<i64>> {
    let amount_u = u128::try_from(amount)
        .map_err(|_| ProductsError::Invalid(format!("cannot split a negative amount {amount}")))?;
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if total == 0 {
        return Err(ProductsError::Invalid(
            "cannot split over weights that sum to zero".into(),
        ));
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut assigned: u128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let product = amount_u * u128::from(*w);
        let floor = product / total;
        assigned += floor;
        parts.push(floor);
        remainders.push((product % total, i));
    }
    // Fewer than n fen are left, and at least that many parts have a non-zero remainder
    // (the remainders sum to leftover * W, each below W).
    let leftover = amount_u - assigned;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders
        .iter()
        .take(usize::try_from(leftover).unwrap_or(usize::MAX))
    {
        parts[*i] += 1;
    }
    parts
        .into_iter()
        .map(|p| i64::try_from(p).map_err(|_| ProductsError::Internal("split overflow".into())))
        .collect()
}

/// Who receives a part of a sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PayeeKind {
    /// The public-finance account of the provider's region.
    PublicFinance,
    /// The developer organisation that built the product.
    Developer,
    /// The trading platform.
    Platform,
}

impl PayeeKind {
    /// The wire name (`public_finance`, `developer`, `platform`).
    pub fn as_str(&self) -> &'static str {
        match self {
            PayeeKind::PublicFinance => "public_finance",
            PayeeKind::Developer => "developer",
            PayeeKind::Platform => "platform",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<PayeeKind> {
        match s {
            "public_finance" => Some(PayeeKind::PublicFinance),
            "developer" => Some(PayeeKind::Developer),
            "platform" => Some(PayeeKind::Platform),
            _ => None,
        }
    }
}

/// A product's revenue split in basis points; the three must sum to 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevenueSplit {
    /// Provider share, paid to the public finance of the providers' regions.
    pub public_finance_bp: u32,
    /// Platform fee.
    pub platform_bp: u32,
    /// The developer's share (the rest).
    pub developer_bp: u32,
}

impl RevenueSplit {
    /// Checks that the parts sum to 10,000 basis points.
    pub fn validate(&self) -> Result<()> {
        let sum = u64::from(self.public_finance_bp)
            + u64::from(self.platform_bp)
            + u64::from(self.developer_bp);
        if sum != u64::from(BP_TOTAL) {
            return Err(ProductsError::Invalid(format!(
                "revenue split sums to {sum} basis points, not {BP_TOTAL} \
                 (public finance {} + platform {} + developer {})",
                self.public_finance_bp, self.platform_bp, self.developer_bp
            )));
        }
        Ok(())
    }

    /// Splits `amount` into (public finance, developer, platform) parts.
    pub fn split(&self, amount: i64) -> Result<[(PayeeKind, i64); 3]> {
        self.validate()?;
        let parts = largest_remainder(
            amount,
            &[
                u64::from(self.public_finance_bp),
                u64::from(self.developer_bp),
                u64::from(self.platform_bp),
            ],
        )?;
        Ok([
            (PayeeKind::PublicFinance, parts[0]),
            (PayeeKind::Developer, parts[1]),
            (PayeeKind::Platform, parts[2]),
        ])
    }
}

/// One cell of a sale's allocation: a payee's part attributed to one provider region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Provider region the part is attributed to.
    pub region: String,
    /// Payee kind.
    pub payee_kind: PayeeKind,
    /// Amount in fen (never negative for a sale).
    pub amount_minor: i64,
}

/// Splits a sale over payees, then each payee's part over `regions` (region, weight);
/// see the module docs. Cells of zero fen are left out.
pub fn allocate(
    amount: i64,
    split: &RevenueSplit,
    regions: &[(String, u64)],
) -> Result<Vec<Allocation>> {
    let weights: Vec<u64> = regions.iter().map(|(_, w)| *w).collect();
    let mut out = Vec::new();
    for (payee_kind, part) in split.split(amount)? {
        if part == 0 {
            continue;
        }
        for ((region, _), cell) in regions.iter().zip(largest_remainder(part, &weights)?) {
            if cell != 0 {
                out.push(Allocation {
                    region: region.clone(),
                    payee_kind,
                    amount_minor: cell,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirds_go_to_the_earlier_parts_on_ties() {
        assert_eq!(
            largest_remainder(100, &[1, 1, 1]).unwrap(),
            vec![34, 33, 33]
        );
        assert_eq!(largest_remainder(2, &[1, 1, 1]).unwrap(), vec![1, 1, 0]);
        assert_eq!(largest_remainder(0, &[5, 5]).unwrap(), vec![0, 0]);
        assert_eq!(largest_remainder(7, &[0, 3]).unwrap(), vec![0, 7]);
    }

    #[test]
    fn larger_remainder_wins() {
        // 1 fen at 2,000 / 3,000 / 5,000 bp: exact 0.2 / 0.3 / 0.5.
        assert_eq!(
            largest_remainder(1, &[2000, 3000, 5000]).unwrap(),
            vec![0, 0, 1]
        );
        assert_eq!(
            largest_remainder(999, &[2000, 3000, 5000]).unwrap(),
            vec![200, 300, 499]
        );
    }

    #[test]
    fn refuses_negative_amounts_and_zero_weights() {
        assert!(largest_remainder(-1, &[1]).is_err());
        assert!(largest_remainder(1, &[0, 0]).is_err());
        assert!(largest_remainder(1, &[]).is_err());
    }
}
