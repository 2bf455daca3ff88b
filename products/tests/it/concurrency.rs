//! 1,000 concurrent orders from 50 buyers, with concurrent retries of the same
//! idempotency key and concurrent double payments: one order per key, one Transaction
//! per paid order, exact reconciliation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use pdx_ledger::kinds::{self, Transaction};
use pdx_ledger::store::Visibility;
use pdx_products::{NewOrder, OrderPlacement, OrderStatus, Period, ReconGroupBy};

use crate::support::{Env, actor, exchange};

const ORDERS: usize = 1_000;
const BUYERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_with_retries_pay_once_and_reconcile_exactly() {
    for env in Env::all().await {
        let started = Instant::now();
        let products = [
            env.listed("org-dev-a", "GD-SZ", 9_999).await,
            env.listed("org-dev-a", "GD-GZ", 1_001).await,
            env.listed("org-dev-b", "GD-SZ", 333).await,
        ];

        // Every 10th order is submitted twice, concurrently, with the same key.
        let mut tasks = Vec::new();
        for i in 0..ORDERS {
            let copies = if i % 10 == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let p = env.products.clone();
                let product_id = products[i % products.len()].id.clone();
                tasks.push(tokio::spawn(async move {
                    let buyer = actor(&format!("org-buyer-{:02}", i % BUYERS));
                    let placed = p
                        .place_order(&buyer, &format!("order-{i}"), &NewOrder { product_id })
                        .await;
                    (i, placed)
                }));
            }
        }
        let mut placed: BTreeMap<usize, Vec<OrderPlacement>> = BTreeMap::new();
        for t in futures_util::future::join_all(tasks).await {
            let (i, r) = t.unwrap();
            placed
                .entry(i)
                .or_default()
                .push(r.unwrap_or_else(|e| panic!("{}: {e}", env.name)));
        }
        assert_eq!(placed.len(), ORDERS);
        let mut order_ids = BTreeSet::new();
        for (i, ps) in &placed {
            assert_eq!(
                ps.iter().filter(|p| p.created).count(),
                1,
                "order {i}: {ps:?}"
            );
            assert!(ps.iter().all(|p| p.order.id == ps[0].order.id), "order {i}");
            // As the ledger's payloads name them.
            assert!(order_ids.insert(ps[0].order.id.to_string()));
        }
        let placed_s = started.elapsed();

        // Pay all; every 10th is paid twice concurrently (a retried payment).
        let mut tasks = Vec::new();
        for (i, ps) in &placed {
            let o = ps[0].order.clone();
            let copies = if i % 10 == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let p = env.products.clone();
                let o = o.clone();
                tasks.push(tokio::spawn(async move {
                    let buyer = actor(o.buyer_org.as_str());
                    p.pay(&buyer, &o.id, &format!("PAY-{}", o.id)).await
                }));
            }
        }
        for t in futures_util::future::join_all(tasks).await {
            let o = t.unwrap().unwrap_or_else(|e| panic!("{}: {e}", env.name));
            assert_eq!(o.status, OrderStatus::Paid);
        }

        // Exactly one Transaction entry per paid order.
        let entries = env
            .ledger
            .entries(0, 100_000, &Visibility::All)
            .await
            .unwrap();
        let mut seen = BTreeSet::new();
        for e in &entries {
            if let Some(tx) = kinds::decode::<Transaction>(e) {
                assert!(
                    seen.insert(tx.order_id.clone()),
                    "duplicate entry for {}",
                    tx.order_id
                );
            }
        }
        assert_eq!(seen, order_ids, "{}", env.name);
        let paid_total: i64 = (0..ORDERS)
            .map(|i| products[i % products.len()].price_minor)
            .sum();
        let r = env
            .products
            .reconcile(ReconGroupBy::Developer)
            .await
            .unwrap();
        assert!(r.exact, "{r:#?}");
        assert_eq!(r.total.paid_minor, paid_total);
        assert_eq!(r.total.unsettled_minor, paid_total);
        assert_eq!(r.ledger.transaction_entries, ORDERS as u64);

        // A few refunds, then settle November and reconcile every way.
        for (_, ps) in placed.iter().step_by(97) {
            env.products
                .refund(&exchange(), &ps[0].order.id, "test refund")
                .await
                .unwrap();
        }
        env.clock.set_ms(Period::parse("2026-12").unwrap().from_ms);
        let s = env.products.settle(&exchange(), "2026-11").await.unwrap();
        let refunded: i64 = placed
            .iter()
            .step_by(97)
            .map(|(_, ps)| ps[0].order.price_minor)
            .sum();
        assert_eq!(
            s.remittances.iter().map(|r| r.amount_minor).sum::<i64>(),
            paid_total - refunded
        );
        for g in [
            ReconGroupBy::Total,
            ReconGroupBy::ProviderRegion,
            ReconGroupBy::Developer,
            ReconGroupBy::Period,
        ] {
            let r = env.products.reconcile(g).await.unwrap();
            assert!(r.exact, "{g:?}: {r:#?}");
            assert_eq!(r.total.unsettled_minor, 0);
        }
        eprintln!(
            "{}: {ORDERS} orders placed in {placed_s:?}, all paid, settled and reconciled in {:?}",
            env.name,
            started.elapsed()
        );
        env.cleanup().await;
    }
}
