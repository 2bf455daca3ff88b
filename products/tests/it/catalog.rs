//! Products: creation, provenance manifest, licence propagation, review and listing.

use pdx_ids::ProductId;
use pdx_ledger::kinds::{self, ProductDelisting, ProductListing};
use pdx_products::{LicenceKind, ProductFilter, ProductStatus, ProductsError, ProvenanceManifest};

use crate::support::{Env, actor, dataset, exchange, key_of, new_product, org, split};

#[tokio::test]
async fn create_generates_the_manifest_and_listing_puts_its_hash_on_the_ledger() {
    for env in Env::all().await {
        let dev = actor("org-dev");
        let s1 = env.source(
            "org-dev",
            "rel_1",
            vec![
                dataset("ds_a", "GD-SZ", false),
                dataset("ds_b", "GD-GZ", false),
            ],
        );
        let s2 = env.source("org-dev", "rel_2", vec![dataset("ds_a", "GD-SZ", false)]);
        let p = env
            .products
            .create_product(
                &dev,
                new_product(LicenceKind::CommercialInternal, 19_900, split(2000, 500)),
                vec![s1.clone(), s2],
            )
            .await
            .unwrap();
        assert_eq!(p.status, ProductStatus::PendingReview, "{}", env.name);
        assert_eq!(p.registration_no, None);
        // ds_a is read twice but counts once: one dataset per region.
        let regions: Vec<(String, u64)> = p
            .regions
            .iter()
            .map(|r| (r.region.clone(), r.datasets))
            .collect();
        assert_eq!(regions, vec![("GD-GZ".into(), 1), ("GD-SZ".into(), 1)]);
        let m = &p.manifest;
        assert_eq!(m.format, "pdx-provenance/v1");
        assert_eq!(m.sources.len(), 2);
        assert_eq!(m.sources[0].release_id, "rel_1");
        assert_eq!(m.sources[0].model_hash, s1.model_hash);
        assert_eq!(
            m.sources[0].reviewers,
            vec![key_of("org-reviewer-1"), key_of("org-reviewer-2")]
        );
        let d = &m.sources[0].datasets[1];
        assert_eq!(d.source_department, "Municipal Bureau of Statistics");
        assert!(d.certificate_no.starts_with("PDX-CERT-2026-"));
        assert_eq!(d.acquired, "2026-10-01");
        // The permitted-use text defaults to the kind's.
        assert!(p.licence.permitted_use.contains("within the licensee"));
        // The manifest never shows the server-side path.
        let text = serde_json::to_string(m).unwrap();
        assert!(!text.contains(".parquet"), "{text}");

        let listed = env.products.list(&exchange(), &p.id).await.unwrap();
        assert_eq!(listed.status, ProductStatus::Listed);
        let reg = listed.registration_no.clone().unwrap();
        assert_eq!(reg, "PDX-DP-2026-000001");
        let entry = env
            .ledger
            .entry(listed.listing_seq.unwrap())
            .await
            .unwrap()
            .unwrap();
        let payload: ProductListing = kinds::decode(&entry).unwrap();
        assert_eq!(payload.registration_no, reg);
        assert_eq!(payload.product_id, p.id.as_str());
        assert_eq!(payload.licence, "commercial_internal");
        assert_eq!(payload.price_minor, 19_900);
        assert_eq!(payload.manifest_hash, p.manifest_hash);
        assert_eq!(entry.actor, exchange());

        // A second product gets the next number; listing twice is a conflict.
        let q = env.listed("org-dev", "GD-SZ", 500).await;
        assert_eq!(q.registration_no.as_deref(), Some("PDX-DP-2026-000002"));
        let again = env.products.list(&exchange(), &p.id).await.unwrap_err();
        assert!(matches!(again, ProductsError::Conflict(_)), "{again}");
        assert_eq!(again.status_hint(), 409);

        // Delisting writes its entry with the same registration number.
        let gone = env
            .products
            .delist(&exchange(), &p.id, "provider objection")
            .await
            .unwrap();
        assert_eq!(gone.status, ProductStatus::Delisted);
        assert_eq!(gone.status_reason.as_deref(), Some("provider objection"));
        let entry = env
            .ledger
            .entry(gone.delisting_seq.unwrap())
            .await
            .unwrap()
            .unwrap();
        let payload: ProductDelisting = kinds::decode(&entry).unwrap();
        assert_eq!(payload.registration_no, reg);
        assert_eq!(payload.reason, "provider objection");
        let e = env
            .products
            .delist(&exchange(), &p.id, "again")
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Conflict(_)), "{e}");

        let listed_now = env
            .products
            .products(&ProductFilter {
                status: Some(ProductStatus::Listed),
                ..ProductFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            listed_now.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
            vec![q.id.clone()]
        );
        let mine = env
            .products
            .products(&ProductFilter {
                developer_org: Some(org("org-dev")),
                ..ProductFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), 2);
        env.cleanup().await;
    }
}

#[tokio::test]
async fn manifest_hash_is_the_blake3_of_its_canonical_bytes() {
    for env in Env::all().await {
        let p = env.listed("org-dev", "GD-SZ", 100).await;
        let value = serde_json::to_value(&p.manifest).unwrap();
        let bytes = pdx_ledger::canonical::to_canonical_vec(&value).unwrap();
        assert_eq!(blake3::hash(&bytes).as_bytes(), &p.manifest_hash.0);
        let back: ProvenanceManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, p.manifest);
        env.cleanup().await;
    }
}

#[tokio::test]
async fn research_only_sources_cannot_carry_a_commercial_licence() {
    for env in Env::all().await {
        let dev = actor("org-dev");
        let ro_dataset = env.source("org-dev", "rel_ro", vec![dataset("ds_uni", "GD-SZ", true)]);
        let mut ro_grant = env.source(
            "org-dev",
            "rel_grant",
            vec![dataset("ds_x", "GD-SZ", false)],
        );
        ro_grant.research_only_grant = true;
        for (src, needle) in [(ro_dataset, "ds_uni"), (ro_grant, "research-only grant")] {
            for kind in [
                LicenceKind::CommercialInternal,
                LicenceKind::CommercialRedistribution,
            ] {
                let e = env
                    .products
                    .create_product(
                        &dev,
                        new_product(kind, 100, split(1000, 1000)),
                        vec![src.clone()],
                    )
                    .await
                    .unwrap_err();
                assert!(matches!(e, ProductsError::Conflict(_)), "{}: {e}", env.name);
                assert_eq!(e.status_hint(), 409);
                assert!(e.is_client_error());
                let msg = e.to_string();
                assert!(
                    msg.contains("research-only") && msg.contains(needle),
                    "{msg}"
                );
            }
            // Under a research-only licence it is fine, and it lists.
            let p = env
                .products
                .create_product(
                    &dev,
                    new_product(LicenceKind::ResearchOnly, 100, split(1000, 1000)),
                    vec![src],
                )
                .await
                .unwrap();
            assert!(p.research_only_sources);
            env.products.list(&exchange(), &p.id).await.unwrap();
        }
        env.cleanup().await;
    }
}

#[tokio::test]
async fn create_refuses_foreign_releases_bad_splits_and_prices() {
    for env in Env::all().await {
        let dev = actor("org-dev");
        let mine = env.source("org-dev", "rel_mine", vec![dataset("ds_1", "GD-SZ", false)]);
        let theirs = env.source(
            "org-other",
            "rel_theirs",
            vec![dataset("ds_2", "GD-SZ", false)],
        );
        let good = new_product(LicenceKind::CommercialInternal, 100, split(1000, 1000));

        let e = env
            .products
            .create_product(&dev, good.clone(), vec![mine.clone(), theirs])
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Forbidden(_)), "{e}");
        assert_eq!(e.status_hint(), 403);
        assert!(e.to_string().contains("rel_theirs"));

        let mut bad_split = good.clone();
        bad_split.split.developer_bp += 1;
        let e = env
            .products
            .create_product(&dev, bad_split, vec![mine.clone()])
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Invalid(_)), "{e}");
        assert!(e.is_client_error());
        assert!(e.to_string().contains("10001"), "{e}");

        for price in [0, -5] {
            let mut p = good.clone();
            p.price_minor = price;
            let e = env
                .products
                .create_product(&dev, p, vec![mine.clone()])
                .await
                .unwrap_err();
            assert!(matches!(e, ProductsError::Invalid(_)), "{e}");
            assert_eq!(e.status_hint(), 422);
        }

        let mut usd = good.clone();
        usd.currency = "USD".into();
        assert!(matches!(
            env.products
                .create_product(&dev, usd, vec![mine.clone()])
                .await,
            Err(ProductsError::Invalid(_))
        ));
        let mut no_term = good.clone();
        no_term.licence.term_days = 0;
        assert!(matches!(
            env.products
                .create_product(&dev, no_term, vec![mine.clone()])
                .await,
            Err(ProductsError::Invalid(_))
        ));
        assert!(matches!(
            env.products
                .create_product(&dev, good.clone(), vec![])
                .await,
            Err(ProductsError::Invalid(_))
        ));
        assert!(matches!(
            env.products
                .create_product(&dev, good.clone(), vec![mine.clone(), mine.clone()])
                .await,
            Err(ProductsError::Invalid(_))
        ));
        let mut blank = good.clone();
        blank.title = "  ".into();
        assert!(matches!(
            env.products
                .create_product(&dev, blank, vec![mine.clone()])
                .await,
            Err(ProductsError::Invalid(_))
        ));

        // Unknown products are not found, for every operation.
        let missing = ProductId::parse("prd_missing").unwrap();
        for e in [
            env.products.product(&missing).await.unwrap_err(),
            env.products.list(&exchange(), &missing).await.unwrap_err(),
            env.products
                .delist(&exchange(), &missing, "x")
                .await
                .unwrap_err(),
            env.products
                .reject(&exchange(), &missing, "x")
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(e, ProductsError::NotFound(_)), "{e}");
            assert_eq!(e.status_hint(), 404);
        }
        // Nothing was created by the refusals.
        assert!(
            env.products
                .products(&ProductFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        env.cleanup().await;
    }
}

#[tokio::test]
async fn rejected_products_are_not_listed_and_cannot_be_ordered() {
    for env in Env::all().await {
        let src = env.source("org-dev", "rel_r", vec![dataset("ds_r", "GD-SZ", false)]);
        let p = env
            .products
            .create_product(
                &actor("org-dev"),
                new_product(LicenceKind::CommercialInternal, 100, split(1000, 1000)),
                vec![src],
            )
            .await
            .unwrap();
        let r = env
            .products
            .reject(&exchange(), &p.id, "cells below threshold")
            .await
            .unwrap();
        assert_eq!(r.status, ProductStatus::Rejected);
        assert!(matches!(
            env.products.list(&exchange(), &p.id).await,
            Err(ProductsError::Conflict(_))
        ));
        let e = env
            .products
            .place_order(
                &actor("org-buyer"),
                "k1",
                &pdx_products::NewOrder {
                    product_id: p.id.clone(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ProductsError::Conflict(_)), "{e}");
        env.cleanup().await;
    }
}
