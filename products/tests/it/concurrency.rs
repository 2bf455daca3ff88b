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

/// Payments read their order and product before their group and claim the order in
/// it only if both are unchanged: payments racing a delisting must each either pay in
/// full (one `Transaction` entry, revenue lines adding up to the price) or fail with a
/// conflict and leave nothing, and the books must reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_racing_a_delisting_pay_in_full_or_leave_nothing() {
    const PENDING: usize = 120;
    for env in Env::all().await {
        let product = env.listed("org-dev-a", "GD-SZ", 7_777).await;
        let mut orders = Vec::new();
        for i in 0..PENDING {
            let buyer = actor(&format!("org-buyer-{:02}", i % BUYERS));
            let placed = env
                .products
                .place_order(
                    &buyer,
                    &format!("race-{i}"),
                    &NewOrder {
                        product_id: product.id.clone(),
                    },
                )
                .await
                .unwrap();
            orders.push(placed.order);
        }
        // The delisting comes once a third of the payments are answered, while the
        // rest are being read, queued and claimed.
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (i, o) in orders.iter().enumerate() {
            let p = env.products.clone();
            let o = o.clone();
            let answered = answered.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_micros((i as u64 % 60) * 200)).await;
                let buyer = actor(o.buyer_org.as_str());
                let outcome = p.pay(&buyer, &o.id, &format!("PAY-{}", o.id)).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (o.id.clone(), outcome)
            }));
        }
        while answered.load(std::sync::atomic::Ordering::SeqCst) < PENDING / 3 {
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        env.products
            .delist(&exchange(), &product.id, "race test")
            .await
            .unwrap();
        let mut paid = BTreeSet::new();
        let mut refused = 0usize;
        for t in futures_util::future::join_all(tasks).await {
            let (id, outcome) = t.unwrap();
            match outcome {
                Ok(o) => {
                    assert_eq!(o.status, OrderStatus::Paid, "{}", env.name);
                    assert!(o.transaction_seq.is_some());
                    paid.insert(id.to_string());
                }
                Err(pdx_products::ProductsError::Conflict(_)) => refused += 1,
                Err(e) => panic!("{}: {e}", env.name),
            }
        }
        assert_eq!(paid.len() + refused, PENDING);
        assert!(
            paid.len() >= PENDING / 3,
            "{}: {} paid",
            env.name,
            paid.len()
        );
        // Every order paid has its one entry; no refused one has any.
        let entries = env
            .ledger
            .entries(0, 100_000, &Visibility::All)
            .await
            .unwrap();
        let with_entry: BTreeSet<String> = entries
            .iter()
            .filter_map(kinds::decode::<Transaction>)
            .map(|tx| tx.order_id)
            .collect();
        assert_eq!(with_entry, paid, "{}", env.name);
        // Every order still pending is one the delisting refused.
        for o in &orders {
            let stored = env.products.order_any(&o.id).await.unwrap();
            let expected = if paid.contains(&o.id.to_string()) {
                OrderStatus::Paid
            } else {
                OrderStatus::Pending
            };
            assert_eq!(stored.status, expected, "{}", env.name);
        }
        let r = env
            .products
            .reconcile(ReconGroupBy::Developer)
            .await
            .unwrap();
        assert!(r.exact, "{r:#?}");
        assert_eq!(r.total.paid_minor, 7_777 * paid.len() as i64);
        assert_eq!(r.ledger.transaction_entries, paid.len() as u64);
        eprintln!(
            "{}: {} paid before the delisting, {refused} refused after it",
            env.name,
            paid.len()
        );
        env.cleanup().await;
    }
}
