//! Products: creation with the provenance manifest, review, listing, delisting, queries.

use std::collections::{BTreeMap, BTreeSet};

use pdx_ids::{DatasetId, OrgId, ProductId};
use pdx_ledger::kinds::{ProductDelisting, ProductListing};
use pdx_ledger::{Actor, Hash32};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::Products;
use crate::clock::{rfc3339, year_of};
use crate::error::{ProductsError, Result};
use crate::model::{
    CURRENCY, Licence, LicenceKind, MANIFEST_FORMAT, MAX_TERM_DAYS, ManifestSource, NewProduct,
    Product, ProductFilter, ProductStatus, ProvenanceManifest, RegionShare, ReleasedSource,
};
use crate::revenue::{check_price, check_public_finance_share, check_purposes};
use crate::rows::{actor_org, get_opt_u64, get_u64, line_field, text_field, to_i64};
use crate::split::RevenueSplit;

/// Most released outputs in one product.
pub(crate) const MAX_SOURCES: usize = 64;

const PRODUCT_COLUMNS: &str = "id, developer_org, title, description, licence_kind, \
    licence_term_days, permitted_use, price_minor, currency, public_finance_bp, developer_bp, \
    platform_bp, research_only, manifest, manifest_hash, status, status_reason, registration_no, \
    listing_seq, delisting_seq, created_ms, listed_ms, closed_ms";

fn bp(row: &AnyRow, col: &str) -> Result<u32> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| ProductsError::Internal(format!("{col} out of range")))
}

/// A product's revenue split, from a row with its three `*_bp` columns.
pub(crate) fn split_from_row(row: &AnyRow) -> Result<RevenueSplit> {
    Ok(RevenueSplit {
        public_finance_bp: bp(row, "public_finance_bp")?,
        platform_bp: bp(row, "platform_bp")?,
        developer_bp: bp(row, "developer_bp")?,
    })
}

fn licence_kind(text: &str) -> Result<LicenceKind> {
    LicenceKind::parse(text)
        .ok_or_else(|| ProductsError::Internal(format!("licence kind {text:?}")))
}

fn product_from_row(row: &AnyRow, regions: Vec<RegionShare>) -> Result<Product> {
    let manifest_text: String = row.try_get("manifest")?;
    let manifest: ProvenanceManifest = serde_json::from_str(&manifest_text)
        .map_err(|e| ProductsError::Internal(format!("stored manifest: {e}")))?;
    let hash_hex: String = row.try_get("manifest_hash")?;
    let term = get_u64(row, "licence_term_days")?;
    let listed_ms: Option<i64> = row.try_get("listed_ms")?;
    let closed_ms: Option<i64> = row.try_get("closed_ms")?;
    let research_only: i64 = row.try_get("research_only")?;
    Ok(Product {
        id: row.try_get::<ProductId, _>("id")?,
        developer_org: row.try_get::<OrgId, _>("developer_org")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        licence: Licence {
            kind: licence_kind(&row.try_get::<String, _>("licence_kind")?)?,
            term_days: u32::try_from(term)
                .map_err(|_| ProductsError::Internal("licence term out of range".into()))?,
            permitted_use: row.try_get("permitted_use")?,
        },
        price_minor: row.try_get("price_minor")?,
        currency: row.try_get("currency")?,
        split: RevenueSplit {
            public_finance_bp: bp(row, "public_finance_bp")?,
            platform_bp: bp(row, "platform_bp")?,
            developer_bp: bp(row, "developer_bp")?,
        },
        regions,
        research_only_sources: research_only != 0,
        status: ProductStatus::parse(&row.try_get::<String, _>("status")?)?,
        status_reason: row.try_get("status_reason")?,
        registration_no: row.try_get("registration_no")?,
        listing_seq: get_opt_u64(row, "listing_seq")?,
        delisting_seq: get_opt_u64(row, "delisting_seq")?,
        manifest,
        manifest_hash: Hash32::from_hex(&hash_hex)
            .map_err(|_| ProductsError::Internal("stored manifest hash".into()))?,
        created_at: rfc3339(row.try_get("created_ms")?),
        listed_at: listed_ms.map(rfc3339),
        closed_at: closed_ms.map(rfc3339),
    })
}

/// Why a set of sources is research-only (empty if it is not).
fn research_only_reasons(sources: &[ReleasedSource]) -> Vec<String> {
    let mut reasons = Vec::new();
    for s in sources {
        if s.research_only_grant {
            reasons.push(format!(
                "release {} ran under a research-only grant",
                s.release_id
            ));
        }
        for d in &s.datasets {
            if d.research_only {
                reasons.push(format!(
                    "release {} reads research-only dataset {} ({})",
                    s.release_id, d.dataset_id, d.title
                ));
            }
        }
    }
    reasons
}

fn licence_conflict(kind: LicenceKind, reasons: &[String]) -> ProductsError {
    ProductsError::Conflict(format!(
        "a product with research-only sources can only carry a non-commercial licence \
         (research_only or public_interest), not {}: {}",
        kind.as_str(),
        reasons.join("; ")
    ))
}

/// The error for an update that matched no row: not found, or in the wrong state.
async fn missing_or_state(
    conn: &mut AnyConnection,
    id: &ProductId,
    action: &str,
) -> Result<ProductsError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM products WHERE id = $1")
        .bind(id.clone())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match status {
        None => ProductsError::NotFound(format!("product {id}")),
        Some(s) => ProductsError::Conflict(format!("product {id} is {s}; cannot {action}")),
    })
}

impl Products {
    /// Creates a product from the developer's own released outputs, pending review.
    ///
    /// Generates the provenance manifest; refuses another developer's release
    /// (`Forbidden`); a split not summing to 10,000, a negative price, a price of 0
    /// under any licence but `public_interest`, a paid product whose split gives public
    /// finance less than the configured minimum, and a licence that does not fit a
    /// source grant's purpose (`Invalid`; see [`crate::revenue`]); and a commercial
    /// licence over any research-only source (`Conflict`).
    pub async fn create_product(
        &self,
        developer: &Actor,
        new: NewProduct,
        sources: Vec<ReleasedSource>,
    ) -> Result<Product> {
        let title = line_field(&new.title, "title", 200)?;
        let description = text_field(&new.description, "description", 10_000)?;
        let licence = &new.licence;
        if licence.term_days == 0 || licence.term_days > MAX_TERM_DAYS {
            return Err(ProductsError::Invalid(format!(
                "licence term must be 1 to {MAX_TERM_DAYS} days, not {}",
                licence.term_days
            )));
        }
        let permitted_use = if licence.permitted_use.trim().is_empty() {
            licence.kind.default_permitted_use().to_string()
        } else {
            text_field(&licence.permitted_use, "permitted use", 4000)?
        };
        // Only a public-interest product may be free (GY ch.6; `crate::revenue`).
        check_price(new.price_minor, licence.kind)?;
        if new.currency != CURRENCY {
            return Err(ProductsError::Invalid(format!(
                "currency must be {CURRENCY}, not {:?}",
                new.currency
            )));
        }
        new.split.validate()?;
        check_public_finance_share(new.price_minor, &new.split, self.public_finance_min_bp)?;
        if sources.is_empty() {
            return Err(ProductsError::Invalid(
                "a product needs at least one released output".into(),
            ));
        }
        if sources.len() > MAX_SOURCES {
            return Err(ProductsError::Invalid(format!(
                "a product takes at most {MAX_SOURCES} released outputs"
            )));
        }

        // Ownership first: another developer's release is refused whatever else is wrong.
        let developer_org = actor_org(developer)?;
        for s in &sources {
            if s.developer_org != developer_org {
                return Err(ProductsError::Forbidden(format!(
                    "release {} belongs to another developer",
                    s.release_id
                )));
            }
        }
        let mut release_ids = BTreeSet::new();
        // dataset id -> provider region (a dataset read by two releases counts once).
        let mut dataset_regions: BTreeMap<&DatasetId, String> = BTreeMap::new();
        let mut paths = Vec::with_capacity(sources.len());
        for s in &sources {
            if !release_ids.insert(&s.release_id) {
                return Err(ProductsError::Invalid(format!(
                    "release {} is named twice",
                    s.release_id
                )));
            }
            let path = s.output_path.to_str().ok_or_else(|| {
                ProductsError::Invalid(format!(
                    "release {}: output path is not UTF-8",
                    s.release_id
                ))
            })?;
            paths.push(path.to_string());
            if s.datasets.is_empty() {
                return Err(ProductsError::Invalid(format!(
                    "release {} names no source dataset",
                    s.release_id
                )));
            }
            for d in &s.datasets {
                let did = &d.dataset_id;
                line_field(&d.title, "dataset title", 500)?;
                line_field(&d.source_department, "source department", 200)?;
                let region = line_field(&d.provider_region, "provider region", 64)?;
                line_field(&d.certificate_no, "certificate number", 128)?;
                line_field(&d.acquired, "acquisition date", 40)?;
                match dataset_regions.get(did) {
                    Some(r) if *r != region => {
                        return Err(ProductsError::Invalid(format!(
                            "dataset {did} is given two provider regions ({r}, {region})"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        dataset_regions.insert(did, region);
                    }
                }
            }
        }
        // The licence fits each source grant's purpose (GD21 Art.26; 422 naming both).
        check_purposes(
            sources
                .iter()
                .map(|s| (s.release_id.to_string(), s.grant_purpose)),
            licence.kind,
        )?;
        let reasons = research_only_reasons(&sources);
        if licence.kind.is_commercial() && !reasons.is_empty() {
            return Err(licence_conflict(licence.kind, &reasons));
        }
        let mut regions: BTreeMap<String, u64> = BTreeMap::new();
        for region in dataset_regions.into_values() {
            *regions.entry(region).or_default() += 1;
        }

        let id = ProductId::random();
        let now = self.clock.now_ms();
        let manifest = ProvenanceManifest {
            format: MANIFEST_FORMAT.to_string(),
            product_id: id.clone(),
            title: title.clone(),
            developer_org: developer_org.clone(),
            licence: licence.kind,
            generated_at: rfc3339(now),
            sources: sources
                .iter()
                .map(|s| ManifestSource {
                    release_id: s.release_id.clone(),
                    output_hash: s.output_hash,
                    model_hash: s.model_hash,
                    reviewers: s.reviewers.clone(),
                    research_only_grant: s.research_only_grant,
                    grant_purpose: s.grant_purpose,
                    datasets: s.datasets.clone(),
                })
                .collect(),
        };
        let value = serde_json::to_value(&manifest)
            .map_err(|e| ProductsError::Internal(format!("manifest: {e}")))?;
        let manifest_text = pdx_ledger::canonical::to_canonical_string(&value)
            .map_err(|e| ProductsError::Internal(format!("manifest: {e}")))?;
        let manifest_hash = blake3::hash(manifest_text.as_bytes()).to_hex().to_string();

        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO products (id, developer_org, title, description, licence_kind, \
             licence_term_days, permitted_use, price_minor, currency, public_finance_bp, \
             developer_bp, platform_bp, research_only, manifest, manifest_hash, status, \
             created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17)",
        )
        .bind(id.clone())
        .bind(developer_org)
        .bind(title)
        .bind(description)
        .bind(licence.kind.as_str())
        .bind(i64::from(licence.term_days))
        .bind(permitted_use)
        .bind(new.price_minor)
        .bind(new.currency.clone())
        .bind(i64::from(new.split.public_finance_bp))
        .bind(i64::from(new.split.developer_bp))
        .bind(i64::from(new.split.platform_bp))
        .bind(i64::from(!reasons.is_empty()))
        .bind(manifest_text)
        .bind(manifest_hash)
        .bind(ProductStatus::PendingReview.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (pos, (s, path)) in sources.iter().zip(paths).enumerate() {
            sqlx::query(
                "INSERT INTO product_sources (product_id, position, release_id, output_hash, \
                 output_path) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.clone())
            .bind(to_i64(pos as u64, "position")?)
            .bind(s.release_id.clone())
            .bind(s.output_hash.to_hex())
            .bind(path)
            .execute(&mut *tx)
            .await?;
        }
        for (region, weight) in &regions {
            sqlx::query(
                "INSERT INTO product_regions (product_id, region, weight) VALUES ($1, $2, $3)",
            )
            .bind(id.clone())
            .bind(region.clone())
            .bind(to_i64(*weight, "weight")?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.product(&id).await
    }

    /// Reviews and lists a product (exchange): assigns its registration number and
    /// appends the `ProductListing` entry.
    pub async fn list(&self, exchange: &Actor, product_id: &ProductId) -> Result<Product> {
        let now = self.clock.now_ms();
        let mut tx = self.db.begin_write().await?;
        // Claim the product first: a concurrent second listing finds it listed.
        let claimed = sqlx::query(
            "UPDATE products SET status = $2, listed_ms = $3 WHERE id = $1 AND status = $4",
        )
        .bind(product_id.clone())
        .bind(ProductStatus::Listed.as_str())
        .bind(now)
        .bind(ProductStatus::PendingReview.as_str())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Err(missing_or_state(&mut tx, product_id, "list it").await?);
        }
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(product_id.clone())
            .fetch_one(&mut *tx)
            .await?;
        let product = product_from_row(&row, Vec::new())?;
        // Licence propagation, again at review (the rule may not be bypassed by data
        // written some other way).
        if product.research_only_sources && product.licence.kind.is_commercial() {
            let mut reasons = Vec::new();
            for s in &product.manifest.sources {
                if s.research_only_grant || s.datasets.iter().any(|d| d.research_only) {
                    reasons.push(format!("release {} has research-only data", s.release_id));
                }
            }
            return Err(licence_conflict(product.licence.kind, &reasons));
        }
        // The revenue rules and the grant purposes, again at review: the configured
        // minimum may have been raised since the product was created.
        check_price(product.price_minor, product.licence.kind)?;
        check_public_finance_share(
            product.price_minor,
            &product.split,
            self.public_finance_min_bp,
        )?;
        check_purposes(
            product
                .manifest
                .sources
                .iter()
                .map(|s| (s.release_id.to_string(), s.grant_purpose)),
            product.licence.kind,
        )?;
        let year = year_of(now)?;
        let serial: i64 = sqlx::query_scalar(
            "INSERT INTO product_registration_counters (year, last_serial) VALUES ($1, 1) \
             ON CONFLICT (year) DO UPDATE SET last_serial = \
             product_registration_counters.last_serial + 1 RETURNING last_serial",
        )
        .bind(i64::from(year))
        .fetch_one(&mut *tx)
        .await?;
        let registration_no = format!("PDX-DP-{year:04}-{serial:06}");
        let appended = self
            .ledger
            .append(
                &mut tx,
                exchange,
                &ProductListing {
                    product_id: product.id.to_string(),
                    registration_no: registration_no.clone(),
                    developer_org: product.developer_org.to_string(),
                    licence: product.licence.kind.as_str().to_string(),
                    price_minor: product.price_minor,
                    currency: product.currency.clone(),
                    manifest_hash: product.manifest_hash,
                },
            )
            .await?;
        sqlx::query("UPDATE products SET registration_no = $2, listing_seq = $3 WHERE id = $1")
            .bind(product_id.clone())
            .bind(registration_no)
            .bind(to_i64(appended.seq, "seq")?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.product(product_id).await
    }

    /// Refuses a product at review (exchange), with a reason; nothing is listed.
    pub async fn reject(
        &self,
        _exchange: &Actor,
        product_id: &ProductId,
        reason: &str,
    ) -> Result<Product> {
        let reason = line_field(reason, "reason", 1000)?;
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE products SET status = $2, status_reason = $3, closed_ms = $4 \
             WHERE id = $1 AND status = $5",
        )
        .bind(product_id.clone())
        .bind(ProductStatus::Rejected.as_str())
        .bind(reason)
        .bind(self.clock.now_ms())
        .bind(ProductStatus::PendingReview.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(missing_or_state(&mut tx, product_id, "reject it").await?);
        }
        tx.commit().await?;
        self.product(product_id).await
    }

    /// Removes a listed product from sale, with a reason, appending `ProductDelisting`.
    ///
    /// The caller is the exchange or the product's developer (the binary checks which).
    /// Paid licences continue; pending orders can no longer be paid.
    pub async fn delist(
        &self,
        actor: &Actor,
        product_id: &ProductId,
        reason: &str,
    ) -> Result<Product> {
        let reason = line_field(reason, "reason", 1000)?;
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE products SET status = $2, status_reason = $3, closed_ms = $4 \
             WHERE id = $1 AND status = $5",
        )
        .bind(product_id.clone())
        .bind(ProductStatus::Delisted.as_str())
        .bind(reason.clone())
        .bind(self.clock.now_ms())
        .bind(ProductStatus::Listed.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(missing_or_state(&mut tx, product_id, "delist it").await?);
        }
        let registration_no: Option<String> =
            sqlx::query_scalar("SELECT registration_no FROM products WHERE id = $1")
                .bind(product_id.clone())
                .fetch_one(&mut *tx)
                .await?;
        let registration_no = registration_no
            .ok_or_else(|| ProductsError::Internal("listed product without a number".into()))?;
        let appended = self
            .ledger
            .append(
                &mut tx,
                actor,
                &ProductDelisting {
                    product_id: product_id.to_string(),
                    registration_no,
                    reason,
                },
            )
            .await?;
        sqlx::query("UPDATE products SET delisting_seq = $2 WHERE id = $1")
            .bind(product_id.clone())
            .bind(to_i64(appended.seq, "seq")?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.product(product_id).await
    }

    /// Delists every listed product of a developer organisation (a supervisor's
    /// suspension), each with its own `ProductDelisting` entry; returns the ids delisted.
    ///
    /// A product delisted concurrently by someone else is skipped, so a retry after a
    /// partial failure finishes the job without delisting anything twice.
    pub async fn delist_all_of(
        &self,
        actor: &Actor,
        developer_org: &OrgId,
        reason: &str,
    ) -> Result<Vec<ProductId>> {
        // Checked once up front: a bad reason must not fail half-way through.
        let reason = line_field(reason, "reason", 1000)?;
        let mut delisted = Vec::new();
        loop {
            let page = self
                .products(&ProductFilter {
                    status: Some(ProductStatus::Listed),
                    developer_org: Some(developer_org.clone()),
                    limit: Some(1000),
                    offset: None,
                })
                .await?;
            if page.is_empty() {
                return Ok(delisted);
            }
            let mut progressed = false;
            for product in page {
                match self.delist(actor, &product.id, &reason).await {
                    Ok(_) => {
                        delisted.push(product.id);
                        progressed = true;
                    }
                    Err(ProductsError::Conflict(_)) => progressed = true,
                    Err(e) => return Err(e),
                }
            }
            if !progressed {
                return Ok(delisted);
            }
        }
    }

    /// One product, in any status.
    pub async fn product(&self, product_id: &ProductId) -> Result<Product> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(product_id.clone())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| ProductsError::NotFound(format!("product {product_id}")))?;
        let mut regions = self.regions_of(std::slice::from_ref(product_id)).await?;
        product_from_row(&row, regions.remove(product_id).unwrap_or_default())
    }

    /// Products matching a filter, oldest first.
    pub async fn products(&self, filter: &ProductFilter) -> Result<Vec<Product>> {
        let mut sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE 1 = 1");
        let mut n = 0;
        if filter.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if filter.developer_org.is_some() {
            n += 1;
            sql.push_str(&format!(" AND developer_org = ${n}"));
        }
        sql.push_str(&format!(
            " ORDER BY created_ms, id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(d) = &filter.developer_org {
            q = q.bind(d.clone());
        }
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        q = q
            .bind(i64::from(limit))
            .bind(i64::from(filter.offset.unwrap_or(0)));
        let rows = q.fetch_all(self.db.pool()).await?;
        let ids: Vec<ProductId> = rows
            .iter()
            .map(|r| r.try_get::<ProductId, _>("id"))
            .collect::<Result<_, _>>()?;
        let mut regions = self.regions_of(&ids).await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| product_from_row(row, regions.remove(&id).unwrap_or_default()))
            .collect()
    }

    /// Provider regions of each product, sorted by region.
    pub(crate) async fn regions_of(
        &self,
        ids: &[ProductId],
    ) -> Result<BTreeMap<ProductId, Vec<RegionShare>>> {
        let mut out: BTreeMap<ProductId, Vec<RegionShare>> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT product_id, region, weight FROM product_regions WHERE product_id IN ({}) \
                 ORDER BY product_id, region",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(self.db.pool()).await? {
                out.entry(row.try_get::<ProductId, _>("product_id")?)
                    .or_default()
                    .push(RegionShare {
                        region: row.try_get("region")?,
                        datasets: get_u64(&row, "weight")?,
                    });
            }
        }
        Ok(out)
    }
}
