//! Suspension: every listed product of a suspended developer is delisted on the ledger.

use pdx_ledger::EntryKind;
use pdx_ledger::kinds::{self, ProductDelisting};
use pdx_ledger::store::Visibility;
use pdx_products::{LicenceKind, ProductStatus};

use crate::support::{Env, actor, dataset, new_product, org, split};

#[tokio::test]
async fn delist_all_of_delists_only_the_developers_listed_products_once() {
    for env in Env::all().await {
        let a1 = env.listed("org-dev-a", "GD-SZ", 10_000).await;
        let a2 = env.listed("org-dev-a", "GD-GZ", 20_000).await;
        let b = env.listed("org-dev-b", "GD-SZ", 30_000).await;
        // A product still pending review is not listed, so there is nothing to delist.
        let src = env.source(
            "org-dev-a",
            "rel_pending",
            vec![dataset("ds_pending", "GD-SZ", false)],
        );
        let pending = env
            .products
            .create_product(
                &actor("org-dev-a"),
                new_product(LicenceKind::CommercialInternal, 5_000, split(1500, 1000)),
                vec![src],
            )
            .await
            .unwrap();
        let supervisor = actor("org-supervisor");
        let before = env.ledger.size().await.unwrap();
        let mut delisted = env
            .products
            .delist_all_of(
                &supervisor,
                &org("org-dev-a"),
                "organisation suspended: misuse",
            )
            .await
            .unwrap();
        delisted.sort();
        let mut want = vec![a1.id.clone(), a2.id.clone()];
        want.sort();
        assert_eq!(delisted, want, "{}", env.name);
        for id in &want {
            let p = env.products.product(id).await.unwrap();
            assert_eq!(p.status, ProductStatus::Delisted, "{}", env.name);
            assert_eq!(
                p.status_reason.as_deref(),
                Some("organisation suspended: misuse")
            );
            let seq = p.delisting_seq.unwrap();
            let entry = env.ledger.entry(seq).await.unwrap().unwrap();
            assert_eq!(entry.kind, EntryKind::ProductDelisting);
            assert_eq!(entry.actor.org, "org-supervisor");
            let d: ProductDelisting = kinds::decode(&entry).unwrap();
            assert_eq!(d.product_id, id.as_str());
        }
        assert_eq!(
            env.products.product(&b.id).await.unwrap().status,
            ProductStatus::Listed,
            "{}: another developer's product stays listed",
            env.name
        );
        assert_eq!(
            env.products.product(&pending.id).await.unwrap().status,
            ProductStatus::PendingReview
        );
        // Exactly one delisting entry each; running it again changes nothing.
        assert_eq!(env.ledger.size().await.unwrap(), before + 2, "{}", env.name);
        let again = env
            .products
            .delist_all_of(
                &supervisor,
                &org("org-dev-a"),
                "organisation suspended: misuse",
            )
            .await
            .unwrap();
        assert!(again.is_empty(), "{}: {again:?}", env.name);
        assert_eq!(env.ledger.size().await.unwrap(), before + 2);
        let delistings = env
            .ledger
            .entries(before, 100, &Visibility::All)
            .await
            .unwrap();
        assert!(
            delistings
                .iter()
                .all(|e| e.kind == EntryKind::ProductDelisting)
        );
        // A bad reason is refused before anything changes.
        assert!(
            env.products
                .delist_all_of(&supervisor, &org("org-dev-b"), "  ")
                .await
                .is_err()
        );
        assert_eq!(
            env.products.product(&b.id).await.unwrap().status,
            ProductStatus::Listed
        );
        env.cleanup().await;
    }
}
