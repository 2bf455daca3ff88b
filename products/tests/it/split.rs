//! Largest-remainder splitting: the parts sum to the price and each is within one fen
//! of its exact share.

use pdx_products::{RevenueSplit, allocate, largest_remainder};
use proptest::prelude::*;

/// |part − amount·w/W| < 1, checked exactly as |part·W − amount·w| < W.
fn within_one_fen(part: i64, amount: i64, w: u64, total: u64) -> bool {
    let lhs = i128::from(part) * i128::from(total) - i128::from(amount) * i128::from(w);
    lhs.abs() < i128::from(total)
}

fn a_split() -> impl Strategy<Value = RevenueSplit> {
    (0u32..=10_000, 0u32..=10_000).prop_map(|(a, b)| {
        let platform = b.min(10_000 - a);
        RevenueSplit {
            public_finance_bp: a,
            platform_bp: platform,
            developer_bp: 10_000 - a - platform,
        }
    })
}

proptest! {
    #[test]
    fn revenue_split_parts_sum_to_the_price(price in 1i64..=10_000_000_000_000, split in a_split()) {
        let parts = split.split(price).unwrap();
        prop_assert_eq!(parts.iter().map(|(_, p)| p).sum::<i64>(), price);
        let bps = [split.public_finance_bp, split.developer_bp, split.platform_bp];
        for ((_, part), bp) in parts.iter().zip(bps) {
            prop_assert!(*part >= 0);
            prop_assert!(within_one_fen(*part, price, u64::from(bp), 10_000), "{part} of {price} at {bp}");
        }
    }

    #[test]
    fn small_prices_round_exactly(price in 1i64..=1_000, split in a_split()) {
        let parts = split.split(price).unwrap();
        prop_assert_eq!(parts.iter().map(|(_, p)| p).sum::<i64>(), price);
    }

    #[test]
    fn largest_remainder_over_any_weights(amount in 0i64..=i64::MAX / 2, weights in prop::collection::vec(0u64..=1_000_000, 1..12)) {
        prop_assume!(weights.iter().any(|w| *w > 0));
        let total: u64 = weights.iter().sum();
        let parts = largest_remainder(amount, &weights).unwrap();
        prop_assert_eq!(parts.iter().map(|p| i128::from(*p)).sum::<i128>(), i128::from(amount));
        for (p, w) in parts.iter().zip(&weights) {
            prop_assert!(within_one_fen(*p, amount, *w, total));
        }
    }

    #[test]
    fn allocation_over_regions_keeps_every_payee_within_a_fen(
        price in 1i64..=100_000_000,
        split in a_split(),
        weights in prop::collection::vec(1u64..=5, 1..5),
    ) {
        let regions: Vec<(String, u64)> = weights.iter().enumerate().map(|(i, w)| (format!("R{i}"), *w)).collect();
        let cells = allocate(price, &split, &regions).unwrap();
        prop_assert_eq!(cells.iter().map(|c| c.amount_minor).sum::<i64>(), price);
        let parts = split.split(price).unwrap();
        for (kind, part) in parts {
            let of_kind: Vec<_> = cells.iter().filter(|c| c.payee_kind == kind).collect();
            prop_assert_eq!(of_kind.iter().map(|c| c.amount_minor).sum::<i64>(), part);
            let total: u64 = weights.iter().sum();
            for c in of_kind {
                let w = regions.iter().find(|(r, _)| *r == c.region).unwrap().1;
                prop_assert!(within_one_fen(c.amount_minor, part, w, total));
            }
        }
    }
}

#[test]
fn split_must_sum_to_ten_thousand() {
    let bad = RevenueSplit {
        public_finance_bp: 5000,
        platform_bp: 5000,
        developer_bp: 1,
    };
    assert!(bad.split(100).is_err());
    let zero = RevenueSplit {
        public_finance_bp: 0,
        platform_bp: 0,
        developer_bp: 0,
    };
    assert!(zero.validate().is_err());
}
