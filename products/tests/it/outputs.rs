//! Products over `ReleasedOutputs`: releases resolved by id, the implementation's own
//! refusals handed back unchanged, and no listing while the developer is suspended.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use pdx_products::{
    LicenceKind, OutputsError, ProductFilter, ProductStatus, ProductsError, ReleasedOutputs,
    ReleasedSource,
};

use crate::support::{Env, actor, dataset, exchange, new_product, split};

/// A stand-in for the binary's implementation over the sandbox and the accounts.
struct Fake {
    sources: BTreeMap<String, ReleasedSource>,
    suspended: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FakeError(String);

#[async_trait]
impl ReleasedOutputs for Fake {
    type Error = FakeError;

    async fn released_sources(
        &self,
        developer_org: &str,
        releases: &[String],
    ) -> Result<Vec<ReleasedSource>, FakeError> {
        releases
            .iter()
            .map(|id| {
                let s = self
                    .sources
                    .get(id)
                    .ok_or_else(|| FakeError(format!("no release {id}")))?;
                if s.developer_org != developer_org {
                    return Err(FakeError(format!("release {id} is another developer's")));
                }
                Ok(s.clone())
            })
            .collect()
    }

    async fn developer_suspended(&self, org: &str) -> Result<bool, FakeError> {
        Ok(self.suspended.contains(org))
    }
}

#[tokio::test]
async fn products_are_packaged_and_listed_through_released_outputs() {
    for env in Env::all().await {
        let mine = env.source("org-dev-a", "rel-a", vec![dataset("ds-a", "GD-SZ", false)]);
        let theirs = env.source("org-dev-b", "rel-b", vec![dataset("ds-b", "GD-GZ", false)]);
        let mut fake = Fake {
            sources: [mine.clone(), theirs]
                .into_iter()
                .map(|s| (s.release_id.clone(), s))
                .collect(),
            suspended: BTreeSet::new(),
        };
        let dev = actor("org-dev-a");
        let new = || new_product(LicenceKind::CommercialInternal, 10_000, split(1500, 1000));

        // The implementation's refusals come back as its own errors; nothing is stored.
        for ids in [
            vec!["rel-b".to_string()],
            vec!["rel-a".to_string(), "rel-missing".to_string()],
        ] {
            let e = env
                .products
                .package_releases(&dev, new(), &ids, &fake)
                .await
                .unwrap_err();
            assert!(matches!(e, OutputsError::Outputs(_)), "{}: {e}", env.name);
        }
        // This crate's own limits are checked before any lookup.
        let none: Vec<String> = Vec::new();
        let too_many: Vec<String> = (0..65).map(|i| format!("rel-{i}")).collect();
        for ids in [none, too_many] {
            let e = env
                .products
                .package_releases(&dev, new(), &ids, &fake)
                .await
                .unwrap_err();
            assert!(
                matches!(e, OutputsError::Products(ProductsError::Invalid(_))),
                "{}: {e}",
                env.name
            );
        }
        assert!(
            env.products
                .products(&ProductFilter::default())
                .await
                .unwrap()
                .is_empty(),
            "{}",
            env.name
        );

        // The developer's own release: the product `create_product` makes of it.
        let p = env
            .products
            .package_releases(&dev, new(), &["rel-a".to_string()], &fake)
            .await
            .unwrap();
        assert_eq!(p.status, ProductStatus::PendingReview);
        assert_eq!(p.developer_org, "org-dev-a");
        assert_eq!(p.manifest.sources.len(), 1);
        assert_eq!(p.manifest.sources[0].release_id, "rel-a");
        assert_eq!(p.manifest.sources[0].output_hash, mine.output_hash);

        // Not listed while the developer is suspended, and nothing changes.
        fake.suspended.insert("org-dev-a".to_string());
        let e = env
            .products
            .list_unless_suspended(&exchange(), &p.id, &fake)
            .await
            .unwrap_err();
        match e {
            OutputsError::Products(e) => {
                assert!(
                    matches!(&e, ProductsError::DeveloperSuspended { org } if org == "org-dev-a"),
                    "{}: {e}",
                    env.name
                );
                assert_eq!(e.status_hint(), 409);
                assert_eq!(
                    e.to_string(),
                    "the product's developer organisation is suspended"
                );
            }
            other => panic!("{}: {other}", env.name),
        }
        assert_eq!(
            env.products.product(&p.id).await.unwrap().status,
            ProductStatus::PendingReview
        );
        let e = env
            .products
            .list_unless_suspended(&exchange(), "prd_missing", &fake)
            .await
            .unwrap_err();
        assert!(
            matches!(e, OutputsError::Products(ProductsError::NotFound(_))),
            "{}: {e}",
            env.name
        );

        // Reinstated: listed, with a registration number.
        fake.suspended.clear();
        let listed = env
            .products
            .list_unless_suspended(&exchange(), &p.id, &fake)
            .await
            .unwrap();
        assert_eq!(listed.status, ProductStatus::Listed);
        assert!(listed.registration_no.is_some());
        env.cleanup().await;
    }
}
