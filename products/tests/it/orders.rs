//! Orders: idempotency keys, payment, delivery archives, terms and refunds.

use pdx_ids::{OrderId, ProductId};
use pdx_ledger::kinds::{self, Transaction};
use pdx_ledger::{EntryKind, Receipt};
use pdx_products::archive::read_tar;
use pdx_products::{NewOrder, OrderFilter, OrderStatus, ProductsError};

use crate::support::{Env, actor, exchange, org, parquet_bytes};

fn order_for(product_id: &ProductId) -> NewOrder {
    NewOrder {
        product_id: product_id.clone(),
    }
}

#[tokio::test]
async fn idempotency_key_replays_the_same_order_and_refuses_another_body() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 1_000).await;
        let q = env.listed("org-dev", "GD-SZ", 2_000).await;
        let buyer = actor("org-buyer");
        let first = env
            .products
            .place_order(&buyer, "key-1", &order_for(&p.id))
            .await
            .unwrap();
        assert!(first.created, "{}", env.name);
        assert_eq!(first.order.status, OrderStatus::Pending);
        assert_eq!(first.order.price_minor, 1_000);
        let again = env
            .products
            .place_order(&buyer, "key-1", &order_for(&p.id))
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.order, first.order);

        let e = env
            .products
            .place_order(&buyer, "key-1", &order_for(&q.id))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProductsError::IdempotencyMismatch { .. }),
            "{e}"
        );
        assert_eq!(e.status_hint(), 422);

        // Keys are per buyer: another buyer's same key is a new order.
        let other = env
            .products
            .place_order(&actor("org-buyer-2"), "key-1", &order_for(&p.id))
            .await
            .unwrap();
        assert!(other.created);
        assert_ne!(other.order.id, first.order.id);

        for bad in ["", "\u{7f}", &"k".repeat(256)] {
            assert!(matches!(
                env.products
                    .place_order(&buyer, bad, &order_for(&p.id))
                    .await,
                Err(ProductsError::Invalid(_))
            ));
        }
        let e = env
            .products
            .place_order(
                &buyer,
                "key-2",
                &order_for(&ProductId::parse("prd_missing").unwrap()),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::NotFound(_)), "{e}");
        let mine = OrderFilter {
            buyer_org: Some(org(&buyer.org)),
            ..OrderFilter::default()
        };
        assert_eq!(env.products.all_orders(&mine, 100).await.unwrap().len(), 1);
        env.cleanup().await;
    }
}

#[tokio::test]
async fn the_order_book_narrows_by_buyer_product_and_status() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 1_000).await;
        let q = env.listed("org-dev", "GD-SZ", 2_000).await;
        let (alice, bob) = (actor("org-alice"), actor("org-bob"));
        let a1 = env
            .products
            .place_order(&alice, "a1", &order_for(&p.id))
            .await
            .unwrap();
        env.products
            .place_order(&alice, "a2", &order_for(&q.id))
            .await
            .unwrap();
        let b1 = env
            .products
            .place_order(&bob, "b1", &order_for(&p.id))
            .await
            .unwrap();
        env.products
            .pay(&bob, &b1.order.id, "bank-b1")
            .await
            .unwrap();

        let ids = |orders: Vec<pdx_products::Order>| -> Vec<OrderId> {
            let mut ids: Vec<OrderId> = orders.into_iter().map(|o| o.id).collect();
            ids.sort();
            ids
        };
        let book = |filter: OrderFilter| {
            let products = env.products.clone();
            async move { ids(products.all_orders(&filter, 100).await.unwrap()) }
        };
        assert_eq!(book(OrderFilter::default()).await.len(), 3, "{}", env.name);
        let of_p = book(OrderFilter {
            product_id: Some(p.id.clone()),
            ..OrderFilter::default()
        })
        .await;
        let mut want = vec![a1.order.id.clone(), b1.order.id.clone()];
        want.sort();
        assert_eq!(of_p, want, "{}", env.name);
        let paid = book(OrderFilter {
            status: Some(OrderStatus::Paid),
            ..OrderFilter::default()
        })
        .await;
        assert_eq!(paid, vec![b1.order.id.clone()], "{}", env.name);
        let alice_pending_p = book(OrderFilter {
            buyer_org: Some(org("org-alice")),
            product_id: Some(p.id.clone()),
            status: Some(OrderStatus::Pending),
        })
        .await;
        assert_eq!(alice_pending_p, vec![a1.order.id.clone()], "{}", env.name);
        // A buyer's own listing is the book narrowed to that buyer.
        let bobs = book(OrderFilter {
            buyer_org: Some(org(&bob.org)),
            ..OrderFilter::default()
        })
        .await;
        assert_eq!(bobs, vec![b1.order.id.clone()]);
        // The limit keeps the newest.
        assert_eq!(
            env.products
                .all_orders(&OrderFilter::default(), 1)
                .await
                .unwrap()
                .len(),
            1
        );
        env.cleanup().await;
    }
}

#[tokio::test]
async fn paying_twice_writes_one_transaction_and_the_price_is_a_snapshot() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 12_345).await;
        let buyer = actor("org-buyer");
        let o = env
            .products
            .place_order(&buyer, "k", &order_for(&p.id))
            .await
            .unwrap()
            .order;
        let paid = env.products.pay(&buyer, &o.id, "PAY-001").await.unwrap();
        assert_eq!(paid.status, OrderStatus::Paid, "{}", env.name);
        assert_eq!(paid.payment_ref.as_deref(), Some("PAY-001"));
        assert_eq!(
            paid.licence_expires_at.as_deref(),
            Some("2027-11-05T10:00:00Z")
        );
        let seq = paid.transaction_seq.unwrap();
        let entry = env.ledger.entry(seq).await.unwrap().unwrap();
        let tx: Transaction = kinds::decode(&entry).unwrap();
        assert_eq!(tx.order_id, o.id.as_str());
        assert_eq!(tx.amount_minor, 12_345);
        assert_eq!(tx.buyer_org, "org-buyer");
        assert_eq!(tx.seller_org, "org-dev");
        assert_eq!(tx.payment_ref, "PAY-001");

        // Same reference again: the same order, no new entry.
        let size = env.ledger.size().await.unwrap();
        let again = env.products.pay(&buyer, &o.id, "PAY-001").await.unwrap();
        assert_eq!(again, paid);
        let e = env
            .products
            .pay(&buyer, &o.id, "PAY-002")
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Conflict(_)), "{e}");
        assert_eq!(env.ledger.size().await.unwrap(), size);
        let totals = env.products.ledger_totals().await.unwrap();
        assert_eq!(totals.transaction_entries, 1);

        // Another buyer's order is "not found", for every operation.
        let stranger = actor("org-stranger");
        let missing = OrderId::parse("ord_missing").unwrap();
        for e in [
            env.products
                .pay(&stranger, &o.id, "PAY-X")
                .await
                .unwrap_err(),
            env.products.order(&stranger, &o.id).await.unwrap_err(),
            env.products.download(&stranger, &o.id).await.unwrap_err(),
            env.products
                .pay(&buyer, &missing, "PAY-X")
                .await
                .unwrap_err(),
            env.products
                .refund(&exchange(), &missing, "x")
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(e, ProductsError::NotFound(_)), "{e}");
            assert_eq!(e.status_hint(), 404);
        }
        env.cleanup().await;
    }
}

#[tokio::test]
async fn a_delisted_product_cannot_be_ordered_or_paid_but_licences_continue() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 700).await;
        let buyer = actor("org-buyer");
        let paid = env
            .products
            .place_order(&buyer, "a", &order_for(&p.id))
            .await
            .unwrap()
            .order;
        env.products.pay(&buyer, &paid.id, "PAY-A").await.unwrap();
        let pending = env
            .products
            .place_order(&buyer, "b", &order_for(&p.id))
            .await
            .unwrap()
            .order;
        env.products
            .delist(&exchange(), &p.id, "withdrawn")
            .await
            .unwrap();
        assert!(matches!(
            env.products
                .place_order(&buyer, "c", &order_for(&p.id))
                .await,
            Err(ProductsError::Conflict(_))
        ));
        // A replayed key still answers with its order.
        let replay = env
            .products
            .place_order(&buyer, "b", &order_for(&p.id))
            .await
            .unwrap();
        assert_eq!(replay.order.id, pending.id);
        assert!(matches!(
            env.products.pay(&buyer, &pending.id, "PAY-B").await,
            Err(ProductsError::Conflict(_))
        ));
        env.products.download(&buyer, &paid.id).await.unwrap();
        env.cleanup().await;
    }
}

#[tokio::test]
async fn download_ships_data_manifest_licence_and_a_verifying_receipt() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 5_000).await;
        let buyer = actor("org-buyer");
        let o = env
            .products
            .place_order(&buyer, "k", &order_for(&p.id))
            .await
            .unwrap()
            .order;

        let e = env.products.download(&buyer, &o.id).await.unwrap_err();
        assert!(matches!(e, ProductsError::NotPaid(_)), "{}: {e}", env.name);
        assert_eq!(e.status_hint(), 402);

        let paid = env.products.pay(&buyer, &o.id, "PAY-9").await.unwrap();
        let archive = env.products.download(&buyer, &o.id).await.unwrap();
        let reg = p.registration_no.clone().unwrap();
        let top = format!("{reg}-{}", o.id);
        assert_eq!(archive.file_name, format!("{top}.tar"));
        assert_eq!(archive.content_type, "application/x-tar");
        let members = read_tar(&archive.bytes).unwrap();
        let names: Vec<&str> = members
            .iter()
            .map(|(n, _)| n.strip_prefix(&format!("{top}/")).unwrap())
            .collect();
        let release = &p.manifest.sources[0].release_id;
        assert_eq!(
            names,
            vec![
                "manifest.json".to_string(),
                "licence.json".into(),
                "LICENCE.txt".into(),
                "receipt.json".into(),
                format!("data/00-{release}.parquet"),
                "BLAKE3SUMS".into(),
            ]
        );
        let file = |n: &str| &members.iter().find(|(m, _)| m.ends_with(n)).unwrap().1;
        // The manifest is byte for byte what the listing hashed.
        assert_eq!(
            blake3::hash(file("manifest.json")).as_bytes(),
            &p.manifest_hash.0
        );
        assert_eq!(file(".parquet"), &parquet_bytes(release.as_str()));
        let licence: serde_json::Value = serde_json::from_slice(file("licence.json")).unwrap();
        assert_eq!(licence["licensee"], "org-buyer");
        assert_eq!(licence["kind"], "commercial_internal");
        assert_eq!(licence["registration_no"], reg.as_str());
        assert_eq!(licence["valid_until"], "2027-11-05T10:00:00Z");
        // The receipt is of the order's Transaction entry and verifies offline.
        let receipt: Receipt = serde_json::from_slice(file("receipt.json")).unwrap();
        receipt.verify(&env.ledger.verifier()).unwrap();
        assert_eq!(receipt.entry.seq, paid.transaction_seq.unwrap());
        assert_eq!(receipt.entry.kind, EntryKind::Transaction);
        let sums = String::from_utf8(file("BLAKE3SUMS").clone()).unwrap();
        for (name, data) in &members[..members.len() - 1] {
            let short = name.strip_prefix(&format!("{top}/")).unwrap();
            assert!(
                sums.contains(&format!("{}  {short}\n", blake3::hash(data).to_hex())),
                "{short}"
            );
        }
        // An independent tar reads it too.
        let tar_path = env.dir.path().join(&archive.file_name);
        std::fs::write(&tar_path, &archive.bytes).unwrap();
        if let Ok(out) = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&tar_path)
            .output()
        {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let listed = String::from_utf8(out.stdout).unwrap();
            assert_eq!(listed.lines().count(), 6, "{listed}");
        }

        let delivered = env.products.order(&buyer, &o.id).await.unwrap();
        assert_eq!(delivered.status, OrderStatus::Delivered);
        // Downloads repeat within the term, and each is logged.
        env.clock.advance_ms(3_600_000);
        env.products.download(&buyer, &o.id).await.unwrap();
        let log = env.products.downloads(&o.id).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].buyer_org, "org-buyer");
        assert_eq!(log[0].actor_key, buyer.key_id);
        assert_eq!(
            log[0].archive_hash,
            blake3::hash(&archive.bytes).to_hex().to_string()
        );
        assert_eq!(log[0].archive_bytes, archive.bytes.len() as u64);

        // After the term: refused.
        env.clock.advance_ms(366 * 86_400_000);
        let e = env.products.download(&buyer, &o.id).await.unwrap_err();
        assert!(matches!(e, ProductsError::LicenceExpired { .. }), "{e}");
        assert_eq!(e.status_hint(), 403);
        assert!(e.to_string().contains("2027-11-05T10:00:00Z"), "{e}");
        assert_eq!(env.products.downloads(&o.id).await.unwrap().len(), 2);
        env.cleanup().await;
    }
}

#[tokio::test]
async fn refund_revokes_the_licence_once() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 900).await;
        let buyer = actor("org-buyer");
        let o = env
            .products
            .place_order(&buyer, "k", &order_for(&p.id))
            .await
            .unwrap()
            .order;
        let e = env
            .products
            .refund(&exchange(), &o.id, "no payment")
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Conflict(_)), "{e}");
        env.products.pay(&buyer, &o.id, "PAY-1").await.unwrap();
        let r = env
            .products
            .refund(&exchange(), &o.id, "data error")
            .await
            .unwrap();
        assert_eq!(r.status, OrderStatus::Refunded, "{}", env.name);
        assert_eq!(r.refund_reason.as_deref(), Some("data error"));
        let again = env
            .products
            .refund(&exchange(), &o.id, "again")
            .await
            .unwrap();
        assert_eq!(again, r);
        let totals = env.products.ledger_totals().await.unwrap();
        assert_eq!((totals.refund_entries, totals.refunds_minor), (1, 900));
        let e = env.products.download(&buyer, &o.id).await.unwrap_err();
        assert!(matches!(e, ProductsError::LicenceRevoked(_)), "{e}");
        assert!(matches!(
            env.products.pay(&buyer, &o.id, "PAY-1").await,
            Err(ProductsError::Conflict(_))
        ));
        env.cleanup().await;
    }
}
