//! Products over `ReleasedOutputs`: releases resolved by id, the implementation's own
//! refusals handed back unchanged, and no listing while the developer is suspended.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use pdx_ids::{OrgId, ProductId, ReleaseId};
use pdx_products::{
    LicenceKind, OutputsError, ProductFilter, ProductStatus, ProductsError, ReleaseRef,
    ReleasedOutputs, ReleasedSource,
};

use crate::support::{Env, actor, dataset, exchange, new_product, org, split};

/// A stand-in for the binary's implementation over the sandbox and the accounts.
struct Fake {
    sources: BTreeMap<ReleaseId, ReleasedSource>,
    suspended: BTreeSet<OrgId>,
}

/// A released output named by its release id.
fn rel(id: &str) -> ReleaseRef {
    ReleaseRef::Release(ReleaseId::parse(id).unwrap())
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FakeError(String);

#[async_trait]
impl ReleasedOutputs for Fake {
    type Error = FakeError;

    async fn released_sources(
        &self,
        developer_org: &OrgId,
        releases: &[ReleaseRef],
    ) -> Result<Vec<ReleasedSource>, FakeError> {
        releases
            .iter()
            .map(|r| {
                let s = match r {
                    ReleaseRef::Release(id) => self.sources.get(id),
                    ReleaseRef::Output(_) => None,
                };
                let s = s.ok_or_else(|| FakeError(format!("no release {r}")))?;
                let id = &s.release_id;
                if s.developer_org != *developer_org {
                    return Err(FakeError(format!("release {id} is another developer's")));
                }
                Ok(s.clone())
            })
            .collect()
    }

    async fn developer_suspended(&self, org: &OrgId) -> Result<bool, FakeError> {
        Ok(self.suspended.contains(org))
    }
}

#[tokio::test]
async fn products_are_packaged_and_listed_through_released_outputs() {
    for env in Env::all().await {
        let mine = env.source("org-dev-a", "rel_a", vec![dataset("ds_a", "GD-SZ", false)]);
        let theirs = env.source("org-dev-b", "rel_b", vec![dataset("ds_b", "GD-GZ", false)]);
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
        for ids in [vec![rel("rel_b")], vec![rel("rel_a"), rel("rel_missing")]] {
            let e = env
                .products
                .package_releases(&dev, new(), &ids, &fake)
                .await
                .unwrap_err();
            assert!(matches!(e, OutputsError::Outputs(_)), "{}: {e}", env.name);
        }
        // This crate's own limits are checked before any lookup.
        let none: Vec<ReleaseRef> = Vec::new();
        let too_many: Vec<ReleaseRef> = (0..65).map(|i| rel(&format!("rel_{i}"))).collect();
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
            .package_releases(&dev, new(), &[rel("rel_a")], &fake)
            .await
            .unwrap();
        assert_eq!(p.status, ProductStatus::PendingReview);
        assert_eq!(p.developer_org, "org-dev-a");
        assert_eq!(p.manifest.sources.len(), 1);
        assert_eq!(p.manifest.sources[0].release_id, "rel_a");
        assert_eq!(p.manifest.sources[0].output_hash, mine.output_hash);

        // Not listed while the developer is suspended, and nothing changes.
        fake.suspended.insert(org("org-dev-a"));
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
            .list_unless_suspended(
                &exchange(),
                &ProductId::parse("prd_missing").unwrap(),
                &fake,
            )
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

#[test]
fn a_release_ref_is_a_release_or_an_output_id_and_nothing_else() {
    let r: ReleaseRef = "rel_ab12".parse().unwrap();
    assert_eq!(r, rel("rel_ab12"));
    let o: ReleaseRef = "out_ab12".parse().unwrap();
    assert!(matches!(&o, ReleaseRef::Output(id) if id == "out_ab12"));
    assert_eq!(serde_json::to_string(&o).unwrap(), "\"out_ab12\"");
    let back: Vec<ReleaseRef> = serde_json::from_str("[\"rel_ab12\", \"out_ab12\"]").unwrap();
    assert_eq!(back, vec![r, o]);
    for bad in ["", "rel-ab12", "job_ab12", "REL_ab12", "rel_ab/12"] {
        let e = bad.parse::<ReleaseRef>().unwrap_err();
        assert!(e.to_string().starts_with(pdx_ids::MALFORMED_ID), "{bad:?}");
        assert!(
            bad.is_empty() || !e.to_string().contains(bad),
            "{bad:?} echoed"
        );
    }
    assert!(serde_json::from_str::<ReleaseRef>("\"ds_ab12\"").is_err());
}
