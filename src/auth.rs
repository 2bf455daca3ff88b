//! Who is calling, and what they may do.
//!
//! Every request carries `Authorization: Bearer pdx_<key id>_<secret>`, except on the
//! routes of the open catalog ([`Owner::Public`]), which anyone may read without a key
//! (SD22 Art.10). The middleware in [`crate::http`] turns a key into a [`Principal`];
//! a request without a key on a public route has none at all (the handler sees
//! [`crate::http::Visitor::Anonymous`], never a made-up organisation), and a request
//! *with* a key that does not authenticate is refused (401) on every route, public or
//! not: a bad key never becomes anonymous. Authorization is decided in one place: at
//! the route, [`Principal::admit`] (role and suspension); inside a handler,
//! [`Principal::authorize`] for the organisation that owns a resource. Routes without a
//! policy are refused: deny by default.
//!
//! **Suspension** (XT Art.33; SD22 Art.19). A supervisor may suspend an organisation
//! for misuse. From its next request on, every key of a suspended organisation is
//! refused (403):
//! - every write (every route that is not a GET, and any route marked `writes`);
//! - every read that hands out data or outputs: downloads (dataset versions, released
//!   outputs, purchased products), dummy data, model runs and their results, outputs
//!   and releases, grants, jobs, FHE templates, keys and query results, orders, and
//!   every report. This is the default: a read is refused unless it is listed as
//!   [`WhileSuspended::Open`] (the list is in `crate::http::policies`).
//!
//! It keeps what lets it see where it stands and why, all of it metadata or public
//! records: who it is (`/v1/whoami`), the ledger as it may see it (its own entries,
//! among them the suspension, and the public kinds, with proofs and receipts), the
//! catalog's metadata (datasets, versions, certificates, revisions, data elements,
//! emergency relaxations; never rows), the public list of suspensions, the public
//! requests to open data, and the data authority's evaluations and rectification
//! orders (what it must put right). Its keys are not revoked: a reinstatement restores
//! everything at once.

use pdx_ids::{KeyId, OrgId};
use serde::{Deserialize, Serialize};

/// The roles of ARCHITECTURE.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Public agency that provides data.
    Provider,
    /// Enterprise building data products.
    Developer,
    /// Output checker.
    Reviewer,
    /// Trading platform operator.
    Exchange,
    /// Enterprise buying products.
    Buyer,
    /// Enterprise that banks look up privately (data subject, GD21 Art.41): registers
    /// consent keys and signs authorisations.
    Subject,
    /// The data authority (数据主管部门, the data bureau): approves or returns catalog
    /// entries submitted for publication (GD21 Art.10–11; XT Art.12), decides changes of
    /// published entries' open attributes (SD22 Art.8) and relaxes them in an emergency
    /// (XT Art.23(7)).
    Authority,
    /// A region's public-finance bureau (财政部门), the payee `public-finance:<region>`
    /// of its organisation's region: reads the remittances to that account (GY ch.6).
    Finance,
    /// Regulator or auditor.
    Supervisor,
    /// Platform operator: organisations and keys.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 10] = [
        Role::Provider,
        Role::Developer,
        Role::Reviewer,
        Role::Exchange,
        Role::Buyer,
        Role::Subject,
        Role::Authority,
        Role::Finance,
        Role::Supervisor,
        Role::Admin,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Developer => "developer",
            Role::Reviewer => "reviewer",
            Role::Exchange => "exchange",
            Role::Buyer => "buyer",
            Role::Subject => "subject",
            Role::Authority => "authority",
            Role::Finance => "finance",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role (expected one of {})", role_names()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Comma-separated role names, for messages.
pub fn role_names() -> String {
    Role::ALL.map(Role::as_str).join(", ")
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// Organisation id.
    pub org_id: OrgId,
    /// Role of the key used.
    pub role: Role,
    /// Public key id (never the key).
    pub key_id: KeyId,
    /// Whether the organisation is suspended (writes and reads of data are refused; see
    /// the module documentation).
    pub suspended: bool,
}

impl Principal {
    /// The ledger actor for this caller.
    pub fn actor(&self) -> pdx_ledger::Actor {
        pdx_ledger::Actor {
            org: self.org_id.to_string(),
            key_id: self.key_id.to_string(),
        }
    }
}

/// Which organisations may touch a resource once the role is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Anyone, without a key too: the open catalog, its certificates and their proofs,
    /// the public list of suspensions and the requests to open data (SD22 Art.9, 10,
    /// 12). A caller *with* a key is authenticated and checked as for [`Owner::Any`]
    /// (its role must be allowed; a bad key is a 401). Only routes whose handlers take
    /// [`crate::http::Visitor`] may carry it.
    Public,
    /// Any organisation with an allowed role (catalog reads, public ledger kinds).
    Any,
    /// Only the owning organisation; supervisors read everything.
    OwnOrgOrSupervisor,
    /// Only the owning organisation.
    OwnOrg,
}

/// Whether a suspended organisation may still call a route (see the module
/// documentation, XT Art.33). Writes are refused whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhileSuspended {
    /// A read that tells the organisation where it stands or is public anyway.
    Open,
    /// Refused: a write, or a read of data or outputs (the default).
    Refused,
}

/// A route's authorization policy.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Roles allowed to call the route at all.
    pub roles: &'static [Role],
    /// How ownership is decided for owned resources.
    pub owner: Owner,
    /// Whether the route changes state (refused for suspended organisations).
    pub writes: bool,
}

/// Why a caller is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The role may not call this route (403).
    Role,
    /// The organisation is suspended and the route writes or hands out data (403).
    Suspended,
    /// The resource belongs to someone else; reported as absent (404) so that ids of
    /// other organisations' resources cannot be probed.
    NotOwner,
}

impl Principal {
    /// The decision at the route, before any handler runs: the role, then the
    /// suspension rule (a suspended organisation is refused every write and every read
    /// that is not [`WhileSuspended::Open`]; module documentation).
    pub fn admit(&self, policy: &Policy, while_suspended: WhileSuspended) -> Result<(), Denied> {
        if !policy.roles.contains(&self.role) {
            return Err(Denied::Role);
        }
        if self.suspended && (policy.writes || while_suspended == WhileSuspended::Refused) {
            return Err(Denied::Suspended);
        }
        Ok(())
    }

    /// The decision inside a handler: role, suspension of a write, and (if given)
    /// ownership of the resource.
    pub fn authorize(&self, policy: &Policy, owner_org: Option<&OrgId>) -> Result<(), Denied> {
        if !policy.roles.contains(&self.role) {
            return Err(Denied::Role);
        }
        if policy.writes && self.suspended {
            return Err(Denied::Suspended);
        }
        match (policy.owner, owner_org) {
            (_, None) | (Owner::Any | Owner::Public, _) => Ok(()),
            (Owner::OwnOrgOrSupervisor, Some(_)) if self.role == Role::Supervisor => Ok(()),
            (_, Some(owner)) if *owner == self.org_id => Ok(()),
            _ => Err(Denied::NotOwner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    fn p(role: Role) -> Principal {
        Principal {
            org_id: org("org-o1"),
            role,
            key_id: KeyId::parse("k").unwrap(),
            suspended: false,
        }
    }

    const DEV_OWNED: Policy = Policy {
        roles: &[Role::Developer, Role::Supervisor],
        owner: Owner::OwnOrgOrSupervisor,
        writes: false,
    };

    #[test]
    fn role_then_owner_decide() {
        assert_eq!(
            p(Role::Buyer).authorize(&DEV_OWNED, None),
            Err(Denied::Role)
        );
        assert_eq!(
            p(Role::Developer).authorize(&DEV_OWNED, Some(&org("org-o1"))),
            Ok(())
        );
        assert_eq!(
            p(Role::Developer).authorize(&DEV_OWNED, Some(&org("org-o2"))),
            Err(Denied::NotOwner)
        );
        assert_eq!(
            p(Role::Supervisor).authorize(&DEV_OWNED, Some(&org("org-o2"))),
            Ok(())
        );
    }

    #[test]
    fn suspended_orgs_may_read_only_what_stays_open_and_never_write() {
        let active = p(Role::Developer);
        let mut s = p(Role::Developer);
        s.suspended = true;
        let write = Policy {
            writes: true,
            ..DEV_OWNED
        };
        // A read of data or outputs (the default): refused to the suspended org only.
        assert_eq!(active.admit(&DEV_OWNED, WhileSuspended::Refused), Ok(()));
        assert_eq!(
            s.admit(&DEV_OWNED, WhileSuspended::Refused),
            Err(Denied::Suspended)
        );
        // A read that stays open (the catalog's metadata, its ledger entries).
        assert_eq!(s.admit(&DEV_OWNED, WhileSuspended::Open), Ok(()));
        // A write, whatever the route's read rule says.
        assert_eq!(
            s.admit(&write, WhileSuspended::Open),
            Err(Denied::Suspended)
        );
        assert_eq!(active.admit(&write, WhileSuspended::Open), Ok(()));
        assert_eq!(
            s.authorize(&write, Some(&org("org-o1"))),
            Err(Denied::Suspended)
        );
        // The role is checked first: a wrong role is a 403 for its own reason.
        assert_eq!(
            p(Role::Buyer).admit(&DEV_OWNED, WhileSuspended::Open),
            Err(Denied::Role)
        );
    }

    #[test]
    fn public_routes_check_keyed_callers_as_any_organisation() {
        let public = Policy {
            roles: &Role::ALL,
            owner: Owner::Public,
            writes: false,
        };
        for role in Role::ALL {
            assert_eq!(p(role).admit(&public, WhileSuspended::Open), Ok(()));
            assert_eq!(p(role).authorize(&public, Some(&org("org-o2"))), Ok(()));
        }
    }

    #[test]
    fn role_names_parse_back() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
