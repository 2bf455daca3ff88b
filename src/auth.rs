//! Who is calling, and what they may do.
//!
//! Every request carries `Authorization: Bearer pdx_<key id>_<secret>`. The middleware in
//! [`crate::http`] turns it into a [`Principal`]. Authorization is decided in one place,
//! [`Principal::authorize`], from a route's [`Policy`] (which roles) and, for handlers
//! that touch an owned resource, the owning organisation. Routes without a policy are
//! refused: deny by default.

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
    /// Regulator or auditor.
    Supervisor,
    /// Platform operator: organisations and keys.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 9] = [
        Role::Provider,
        Role::Developer,
        Role::Reviewer,
        Role::Exchange,
        Role::Buyer,
        Role::Subject,
        Role::Authority,
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
    /// Whether the organisation is suspended (writes are refused).
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
    /// Any organisation with an allowed role (catalog reads, public ledger kinds).
    Any,
    /// Only the owning organisation; supervisors read everything.
    OwnOrgOrSupervisor,
    /// Only the owning organisation.
    OwnOrg,
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
    /// The organisation is suspended and the route writes (403).
    Suspended,
    /// The resource belongs to someone else; reported as absent (404) so that ids of
    /// other organisations' resources cannot be probed.
    NotOwner,
}

impl Principal {
    /// The one authorization decision: role, suspension, and (if given) ownership.
    pub fn authorize(&self, policy: &Policy, owner_org: Option<&OrgId>) -> Result<(), Denied> {
        if !policy.roles.contains(&self.role) {
            return Err(Denied::Role);
        }
        if policy.writes && self.suspended {
            return Err(Denied::Suspended);
        }
        match (policy.owner, owner_org) {
            (_, None) | (Owner::Any, _) => Ok(()),
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
    fn suspended_orgs_may_read_but_not_write() {
        let mut s = p(Role::Developer);
        s.suspended = true;
        assert_eq!(s.authorize(&DEV_OWNED, Some(&org("org-o1"))), Ok(()));
        let write = Policy {
            writes: true,
            ..DEV_OWNED
        };
        assert_eq!(
            s.authorize(&write, Some(&org("org-o1"))),
            Err(Denied::Suspended)
        );
    }

    #[test]
    fn role_names_parse_back() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
