//! Settlement, remittance, refund adjustments and reconciliation.

use std::collections::BTreeMap;

use pdx_ids::ProductId;
use pdx_ledger::kinds::{self, Remittance};
use pdx_products::{
    LicenceKind, NewOrder, PayeeKind, Period, ProductsError, ReconGroupBy, Settlement,
};

use crate::support::{Env, actor, dataset, exchange, new_product, split};

const DAY: i64 = 86_400_000;

fn by_payee(s: &Settlement) -> BTreeMap<String, i64> {
    s.remittances
        .iter()
        .map(|r| (r.payee.clone(), r.amount_minor))
        .collect()
}

async fn assert_exact(env: &Env) {
    for g in [
        ReconGroupBy::Total,
        ReconGroupBy::ProviderRegion,
        ReconGroupBy::Developer,
        ReconGroupBy::Period,
    ] {
        let r = env.products.reconcile(g).await.unwrap();
        assert!(r.exact, "{} {g:?}: {r:#?}", env.name);
    }
}

#[tokio::test]
async fn settlement_is_idempotent_and_a_late_refund_is_next_periods_adjustment() {
    for env in Env::all().await {
        let name = env.name;
        // P1: developer A, one dataset in GD-SZ; 15% public finance, 10% platform.
        let s1 = env.source("org-dev-a", "rel_a", vec![dataset("ds_1", "GD-SZ", false)]);
        let p1 = env
            .products
            .create_product(
                &actor("org-dev-a"),
                new_product(LicenceKind::CommercialInternal, 10_001, split(1500, 1000)),
                vec![s1],
            )
            .await
            .unwrap();
        env.products.list(&exchange(), &p1.id).await.unwrap();
        // P2: developer B, two datasets in GD-SZ and one in GD-GZ; 30% / 5%.
        let s2 = env.source(
            "org-dev-b",
            "rel_b",
            vec![
                dataset("ds_2", "GD-SZ", false),
                dataset("ds_3", "GD-SZ", false),
                dataset("ds_4", "GD-GZ", false),
            ],
        );
        let p2 = env
            .products
            .create_product(
                &actor("org-dev-b"),
                new_product(
                    LicenceKind::CommercialRedistribution,
                    3_333,
                    split(3000, 500),
                ),
                vec![s2],
            )
            .await
            .unwrap();
        env.products.list(&exchange(), &p2.id).await.unwrap();

        let buy = |buyer: &'static str, key: &'static str, product: ProductId| {
            let products = env.products.clone();
            async move {
                let b = actor(buyer);
                let o = products
                    .place_order(
                        &b,
                        key,
                        &NewOrder {
                            product_id: product,
                        },
                    )
                    .await
                    .unwrap()
                    .order;
                products
                    .pay(&b, &o.id, &format!("PAY-{key}"))
                    .await
                    .unwrap()
            }
        };
        let o1 = buy("org-buyer-1", "o1", p1.id.clone()).await;
        let o2 = buy("org-buyer-2", "o2", p1.id.clone()).await;
        let o3 = buy("org-buyer-1", "o3", p2.id.clone()).await;
        // Refunded in the month it was paid: nets to zero in that settlement.
        env.products
            .refund(&exchange(), &o2.id, "duplicate purchase")
            .await
            .unwrap();
        assert_exact(&env).await;

        let e = env
            .products
            .settle(&exchange(), "2026-11")
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Conflict(_)), "{name}: {e}");
        assert!(e.to_string().contains("has not ended"), "{e}");
        assert!(matches!(
            env.products.settle(&exchange(), "2026-13").await,
            Err(ProductsError::Invalid(_))
        ));
        assert!(matches!(
            env.products.settlement("2026-11").await,
            Err(ProductsError::NotFound(_))
        ));

        env.clock
            .set_ms(Period::parse("2026-12").unwrap().from_ms + DAY + 3_600_000);
        let size_before = env.ledger.size().await.unwrap();
        let nov = env.products.settle(&exchange(), "2026-11").await.unwrap();
        assert!(nov.newly_settled);
        assert_eq!(nov.from, "2026-11-01T00:00:00Z");
        assert_eq!(nov.to, "2026-12-01T00:00:00Z");
        let expected: BTreeMap<String, i64> = [
            ("org-dev-a", 7_501),
            ("org-dev-b", 2_166),
            ("pdx", 1_000 + 167),
            ("public-finance:GD-GZ", 333),
            ("public-finance:GD-SZ", 1_500 + 667),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(by_payee(&nov), expected, "{name}");
        assert_eq!(
            nov.remittances.iter().map(|r| r.amount_minor).sum::<i64>(),
            10_001 + 3_333
        );
        assert_eq!(env.ledger.size().await.unwrap(), size_before + 5);
        for r in &nov.remittances {
            let entry = env.ledger.entry(r.ledger_seq).await.unwrap().unwrap();
            let payload: Remittance = kinds::decode(&entry).unwrap();
            assert_eq!(payload.period, "2026-11");
            assert_eq!(payload.payee, r.payee);
            assert_eq!(
                payload.payee_kind,
                match r.payee_kind {
                    PayeeKind::PublicFinance => "public_finance",
                    PayeeKind::Developer => "developer",
                    PayeeKind::Platform => "platform",
                }
            );
            assert_eq!(payload.amount_minor, r.amount_minor);
            assert_eq!(payload.order_ids.len() as u64, r.order_count);
        }
        let dev_a = nov
            .remittances
            .iter()
            .find(|r| r.payee == "org-dev-a")
            .unwrap();
        let mut ids = vec![o1.id.to_string(), o2.id.to_string()];
        ids.sort();
        let entry = env.ledger.entry(dev_a.ledger_seq).await.unwrap().unwrap();
        assert_eq!(kinds::decode::<Remittance>(&entry).unwrap().order_ids, ids);

        // Re-running changes nothing.
        let again = env.products.settle(&exchange(), "2026-11").await.unwrap();
        assert!(!again.newly_settled);
        assert_eq!(again.remittances, nov.remittances);
        assert_eq!(env.ledger.size().await.unwrap(), size_before + 5);
        assert_eq!(
            env.products.settled_periods().await.unwrap(),
            vec!["2026-11"]
        );
        let total = env.products.reconcile(ReconGroupBy::Total).await.unwrap();
        assert_eq!(
            (
                total.total.paid_minor,
                total.total.refunded_minor,
                total.total.remitted_minor,
                total.total.unsettled_minor
            ),
            (10_001 * 2 + 3_333, 10_001, 13_334, 0)
        );
        assert_exact(&env).await;

        // December: o1 is refunded after its settlement, and a new sale of P2.
        env.products
            .refund(&exchange(), &o1.id, "buyer complaint upheld")
            .await
            .unwrap();
        let o4 = buy("org-buyer-3", "o4", p2.id.clone()).await;
        let r = env.products.reconcile(ReconGroupBy::Total).await.unwrap();
        assert_eq!(r.total.unsettled_minor, 3_333 - 10_001);
        assert!(r.exact, "{r:#?}");
        assert_exact(&env).await;

        let e = env
            .products
            .settle(&exchange(), "2026-10")
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Conflict(_)), "{e}");
        env.clock
            .set_ms(Period::parse("2027-01").unwrap().from_ms + DAY);
        let dec = env.products.settle(&exchange(), "2026-12").await.unwrap();
        let expected: BTreeMap<String, i64> = [
            ("org-dev-a", -7_501),
            ("org-dev-b", 2_166),
            ("pdx", -1_000 + 167),
            ("public-finance:GD-GZ", 333),
            ("public-finance:GD-SZ", -1_500 + 667),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(by_payee(&dec), expected, "{name}");
        let dev_a = dec
            .remittances
            .iter()
            .find(|r| r.payee == "org-dev-a")
            .unwrap();
        let entry = env.ledger.entry(dev_a.ledger_seq).await.unwrap().unwrap();
        let adj: Remittance = kinds::decode(&entry).unwrap();
        assert_eq!((adj.period.as_str(), adj.amount_minor), ("2026-12", -7_501));
        assert_eq!(adj.order_ids, vec![o1.id.to_string()]);

        let r = env.products.reconcile(ReconGroupBy::Total).await.unwrap();
        assert_eq!(r.total.unsettled_minor, 0);
        assert_eq!(r.total.remitted_minor, 3_333 * 2);
        assert_eq!(r.ledger.remittance_entries, 10);
        assert_exact(&env).await;

        let by_dev = env
            .products
            .reconcile(ReconGroupBy::Developer)
            .await
            .unwrap();
        let rows: Vec<(String, i64, i64, i64)> = by_dev
            .rows
            .iter()
            .map(|r| {
                (
                    r.key.clone(),
                    r.paid_minor,
                    r.refunded_minor,
                    r.remitted_minor,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("org-dev-a".to_string(), 20_002, 20_002, 0),
                ("org-dev-b".to_string(), 6_666, 0, 6_666),
            ]
        );
        let by_period = env.products.reconcile(ReconGroupBy::Period).await.unwrap();
        let rows: Vec<(String, i64, i64)> = by_period
            .rows
            .iter()
            .map(|r| (r.key.clone(), r.paid_minor, r.refunded_minor))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("2026-11".to_string(), 23_335, 10_001),
                ("2026-12".to_string(), 3_333, 10_001),
            ]
        );
        let by_region = env
            .products
            .reconcile(ReconGroupBy::ProviderRegion)
            .await
            .unwrap();
        let keys: Vec<&str> = by_region.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, vec!["GD-GZ", "GD-SZ"]);
        let sum: i64 = by_region.rows.iter().map(|r| r.paid_minor).sum();
        assert_eq!(sum, 10_001 * 2 + 3_333 * 2);
        let _ = o3;
        let _ = o4;
        env.cleanup().await;
    }
}

#[tokio::test]
async fn an_empty_period_settles_to_nothing_and_unsettled_lines_roll_forward() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 1_000).await;
        let buyer = actor("org-buyer");
        let o = env
            .products
            .place_order(
                &buyer,
                "k",
                &NewOrder {
                    product_id: p.id.clone(),
                },
            )
            .await
            .unwrap()
            .order;
        env.products.pay(&buyer, &o.id, "PAY").await.unwrap();
        env.clock.set_ms(Period::parse("2027-02").unwrap().from_ms);
        // November is skipped; December's settlement takes November's sale along.
        let oct = env.products.settle(&exchange(), "2026-10").await.unwrap();
        assert!(oct.remittances.is_empty(), "{}", env.name);
        let dec = env.products.settle(&exchange(), "2026-12").await.unwrap();
        assert_eq!(
            dec.remittances.iter().map(|r| r.amount_minor).sum::<i64>(),
            1_000
        );
        let jan = env.products.settle(&exchange(), "2027-01").await.unwrap();
        assert!(jan.remittances.is_empty());
        assert!(matches!(
            env.products.settle(&exchange(), "2026-11").await,
            Err(ProductsError::Conflict(_))
        ));
        assert_exact(&env).await;
        env.cleanup().await;
    }
}
