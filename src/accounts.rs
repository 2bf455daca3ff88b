//! Organisations and API keys: storage, issuing, revoking and authenticating.
//!
//! A key is `pdx_<key id>_<secret>`. The key id is public (logs, ledger actors); the
//! secret is 32 random bytes. Only BLAKE3(secret) is stored, and compared in constant
//! time. Every request re-reads the key row, so a revocation takes effect on the next
//! request.
//!
//! The last active admin key cannot be revoked ([`AccountError::LastAdminKey`]): without
//! one, organisations and keys could only be managed with the CLI on the server. An
//! admin key is rotated by issuing the new one first, then revoking the old one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use pdx_ids::{KeyId, OrgId};
use pdx_ledger::db::{Backend, Db, DbError, MigrationSet, now_ms};

use crate::auth::{Principal, Role};

/// Account storage failures.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// An organisation with that name exists.
    #[error("an organisation with that name already exists")]
    OrgExists,
    /// No such organisation.
    #[error("no such organisation")]
    NoSuchOrg,
    /// A name or label is empty, too long, or has control characters.
    #[error("{0}")]
    Invalid(String),
    /// The key is the platform's last active admin key (409): revoking it would leave no
    /// key able to manage organisations and keys.
    #[error(
        "refusing to revoke the last active admin key: without it, organisations and keys \
         could only be managed with the pdx CLI on the server. To rotate it, issue a new \
         admin key first (POST /v1/keys with {{\"org\": {org:?}, \"role\": \"admin\"}}, \
         or `pdx keys create --org {org:?} --role admin`), then revoke this one"
    )]
    LastAdminKey {
        /// Name of the key's organisation, for the rotation hint.
        org: String,
    },
}

/// PostgreSQL advisory lock (`hashtext` of this) held by every revocation, so that the
/// count of remaining admin keys cannot go stale before the update commits.
const ADMIN_KEYS_LOCK: &str = "pdx-admin-keys";

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Db(DbError::Sqlx(e))
    }
}

/// The root package's migrations: organisations and keys (0001), supervision (0002) and
/// the web portal's sessions (0003, owned by `crate::portal::session`).
pub fn migrations() -> MigrationSet {
    MigrationSet {
        table: "_pdx_accounts_migrations",
        sqlite: sqlx::migrate!("./migrations/sqlite"),
        postgres: sqlx::migrate!("./migrations/postgres"),
    }
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Org {
    /// Stable id.
    pub id: OrgId,
    /// Unique display name.
    pub name: String,
    /// Administrative region (decides the public-finance account for remittances).
    pub region: String,
    /// Suspended by a supervisor.
    pub suspended: bool,
    /// Creation time, ms since epoch.
    pub created_ms: i64,
}

/// A freshly issued key. The secret is shown once and never stored.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    /// Public key id.
    pub key_id: KeyId,
    /// The bearer token: keep it secret.
    pub key: String,
    /// Organisation id.
    pub org_id: OrgId,
    /// Role.
    pub role: Role,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in debug output.
        f.debug_struct("IssuedKey")
            .field("key_id", &self.key_id)
            .field("org_id", &self.org_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A key as listed (no secret, no hash).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    /// Public key id.
    pub key_id: KeyId,
    /// Organisation id.
    pub org_id: OrgId,
    /// Role.
    pub role: Role,
    /// Free-text label.
    pub label: String,
    /// Creation time, ms since epoch.
    pub created_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_ms: Option<i64>,
}

/// Organisation and key storage.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
}

fn check_text(value: &str, what: &str, max: usize) -> Result<(), AccountError> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(AccountError::Invalid(format!(
            "{what} must be 1 to {max} characters with no control characters"
        )));
    }
    Ok(())
}

fn org_from_row(row: &AnyRow) -> Result<Org, AccountError> {
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        region: row.try_get("region")?,
        suspended: row.try_get::<i64, _>("suspended")? != 0,
        created_ms: row.try_get("created_ms")?,
    })
}

fn key_from_row(row: &AnyRow) -> Result<KeyInfo, AccountError> {
    let role: String = row.try_get("role")?;
    Ok(KeyInfo {
        key_id: row.try_get("key_id")?,
        org_id: row.try_get("org_id")?,
        role: role
            .parse()
            .map_err(|_| AccountError::Invalid("stored role is unknown".into()))?,
        label: row.try_get("label")?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

/// Splits `pdx_<key id>_<secret>`.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("pdx_")?;
    let (key_id, secret) = rest.split_once('_')?;
    let hex_id = key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_id && !secret.is_empty() && secret.len() <= 128).then_some((key_id, secret))
}

impl Accounts {
    /// Account storage on a migrated database.
    pub fn new(db: Db) -> Accounts {
        Accounts { db }
    }

    /// True when no organisation exists yet (first start).
    pub async fn is_empty(&self) -> Result<bool, AccountError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM orgs")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }

    /// Creates an organisation.
    pub async fn create_org(&self, name: &str, region: &str) -> Result<Org, AccountError> {
        check_text(name, "organisation name", 128)?;
        check_text(region, "region", 64)?;
        if self.org_by_name(name).await?.is_some() {
            return Err(AccountError::OrgExists);
        }
        let org = Org {
            id: OrgId::random(),
            name: name.to_string(),
            region: region.to_string(),
            suspended: false,
            created_ms: now_ms(),
        };
        let inserted = sqlx::query(
            "INSERT INTO orgs (id, name, region, suspended, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org.id.clone())
        .bind(org.name.clone())
        .bind(org.region.clone())
        .bind(0i64)
        .bind(org.created_ms)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => Ok(org),
            // Lost a race with another creator of the same name.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AccountError::OrgExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The organisation with this name, creating it if absent.
    pub async fn ensure_org(&self, name: &str, region: &str) -> Result<Org, AccountError> {
        match self.create_org(name, region).await {
            Err(AccountError::OrgExists) => {
                self.org_by_name(name).await?.ok_or(AccountError::NoSuchOrg)
            }
            other => other,
        }
    }

    /// An organisation by name.
    pub async fn org_by_name(&self, name: &str) -> Result<Option<Org>, AccountError> {
        let row =
            sqlx::query("SELECT id, name, region, suspended, created_ms FROM orgs WHERE name = $1")
                .bind(name.to_string())
                .fetch_optional(self.db.pool())
                .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    /// An organisation by id.
    pub async fn org(&self, id: &OrgId) -> Result<Option<Org>, AccountError> {
        let row =
            sqlx::query("SELECT id, name, region, suspended, created_ms FROM orgs WHERE id = $1")
                .bind(id.clone())
                .fetch_optional(self.db.pool())
                .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    /// Every organisation, by name.
    pub async fn orgs(&self) -> Result<Vec<Org>, AccountError> {
        let rows =
            sqlx::query("SELECT id, name, region, suspended, created_ms FROM orgs ORDER BY name")
                .fetch_all(self.db.pool())
                .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Issues a key for an organisation.
    pub async fn issue_key(
        &self,
        org_id: &OrgId,
        role: Role,
        label: &str,
    ) -> Result<IssuedKey, AccountError> {
        check_text(label, "label", 128)?;
        if self.org(org_id).await?.is_none() {
            return Err(AccountError::NoSuchOrg);
        }
        let key_id = KeyId::random();
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        sqlx::query(
            "INSERT INTO api_keys (key_id, org_id, role, key_hash, label, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key_id.clone())
        .bind(org_id.clone())
        .bind(role.as_str().to_string())
        .bind(blake3::hash(secret.as_bytes()).as_bytes().to_vec())
        .bind(label.to_string())
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        Ok(IssuedKey {
            key: format!("pdx_{key_id}_{secret}"),
            key_id,
            org_id: org_id.clone(),
            role,
        })
    }

    /// Revokes a key; false if it does not exist or was already revoked. The last active
    /// admin key of the platform is refused with [`AccountError::LastAdminKey`].
    ///
    /// The check and the update are one write transaction (on SQLite `BEGIN IMMEDIATE`,
    /// on PostgreSQL under an advisory lock), so two concurrent revocations of the last two
    /// admin keys cannot both pass.
    pub async fn revoke_key(&self, key_id: &KeyId) -> Result<bool, AccountError> {
        let mut tx = self.db.begin_write().await?;
        if self.db.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(ADMIN_KEYS_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(
            "SELECT k.role AS role, o.name AS org_name FROM api_keys k \
             JOIN orgs o ON o.id = k.org_id WHERE k.key_id = $1 AND k.revoked_ms IS NULL",
        )
        .bind(key_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let role: String = row.try_get("role")?;
        if role == Role::Admin.as_str() {
            let others = sqlx::query(
                "SELECT COUNT(*) AS n FROM api_keys \
                 WHERE role = $1 AND revoked_ms IS NULL AND key_id <> $2",
            )
            .bind(Role::Admin.as_str())
            .bind(key_id.clone())
            .fetch_one(&mut *tx)
            .await?;
            if others.try_get::<i64, _>("n")? == 0 {
                let org: String = row.try_get("org_name")?;
                tx.rollback().await?;
                return Err(AccountError::LastAdminKey { org });
            }
        }
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_ms = $1 WHERE key_id = $2 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(key_id.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// One key's public information.
    pub async fn key(&self, key_id: &KeyId) -> Result<Option<KeyInfo>, AccountError> {
        let row = sqlx::query(
            "SELECT key_id, org_id, role, label, created_ms, revoked_ms FROM api_keys WHERE key_id = $1",
        )
        .bind(key_id.clone())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Every key, newest first.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, AccountError> {
        let rows = sqlx::query(
            "SELECT key_id, org_id, role, label, created_ms, revoked_ms FROM api_keys ORDER BY created_ms DESC",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Suspends or reinstates an organisation.
    pub async fn set_suspended(&self, org_id: &OrgId, suspended: bool) -> Result<(), AccountError> {
        let done = sqlx::query("UPDATE orgs SET suspended = $1 WHERE id = $2")
            .bind(i64::from(suspended))
            .bind(org_id.clone())
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::NoSuchOrg);
        }
        Ok(())
    }

    /// The principal behind a bearer token, or None for an unknown, wrong or revoked key.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, AccountError> {
        let Some((key_id, secret)) = split_token(token) else {
            return Ok(None);
        };
        // Uppercase hex passes the shape check but names no key (ids are lowercase).
        let Ok(key_id) = KeyId::parse(key_id) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT k.key_hash, k.role, k.org_id, o.suspended FROM api_keys k \
             JOIN orgs o ON o.id = k.org_id WHERE k.key_id = $1 AND k.revoked_ms IS NULL",
        )
        .bind(key_id.clone())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: Vec<u8> = row.try_get("key_hash")?;
        let Ok(stored) = <[u8; 32]>::try_from(stored.as_slice()) else {
            return Ok(None);
        };
        // blake3::Hash equality is constant-time.
        if blake3::hash(secret.as_bytes()) != blake3::Hash::from_bytes(stored) {
            return Ok(None);
        }
        principal_from_row(&row, key_id)
    }

    /// The principal of an active key, by its public id alone: what the web portal's
    /// session acts as (`crate::http::PortalIdentity`). The row is read afresh on
    /// every call, so a revoked key is None from its revocation on and a suspension
    /// shows at once. The secret is not checked here: the session proved it once, at
    /// sign-in, and only server code can name a key this way.
    pub async fn principal_of_key(
        &self,
        key_id: &KeyId,
    ) -> Result<Option<Principal>, AccountError> {
        let row = sqlx::query(
            "SELECT k.role, k.org_id, o.suspended FROM api_keys k \
             JOIN orgs o ON o.id = k.org_id WHERE k.key_id = $1 AND k.revoked_ms IS NULL",
        )
        .bind(key_id.clone())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        principal_from_row(&row, key_id.clone())
    }
}

/// The principal of an authenticated key's row (`role`, `org_id`, `suspended`); None if
/// the stored role is unknown to this version.
fn principal_from_row(row: &AnyRow, key_id: KeyId) -> Result<Option<Principal>, AccountError> {
    let role: String = row.try_get("role")?;
    let Ok(role) = role.parse::<Role>() else {
        return Ok(None);
    };
    Ok(Some(Principal {
        org_id: row.try_get("org_id")?,
        role,
        key_id,
        suspended: row.try_get::<i64, _>("suspended")? != 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::split_token;

    #[test]
    fn tokens_split_only_in_the_issued_shape() {
        assert_eq!(
            split_token("pdx_0123456789abcdef_s3cret"),
            Some(("0123456789abcdef", "s3cret"))
        );
        assert_eq!(split_token("pdx_0123_s3cret"), None);
        assert_eq!(split_token("Bearer x"), None);
        assert_eq!(split_token("pdx_0123456789abcdef_"), None);
    }
}
