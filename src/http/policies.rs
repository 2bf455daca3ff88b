//! The authorization policy of every `/v1` route, in one table.
//!
//! The auth middleware looks the matched route up here and refuses it if absent; the
//! route-coverage test checks that every route in the OpenAPI document has exactly one
//! entry and that no entry is stale.

use axum::http::Method;

use crate::auth::{Owner, Policy, Role};

use Role::*;

const EVERYONE: &[Role] = &Role::ALL;

/// Any authenticated caller may read (catalog metadata, public ledger data).
const READ_ALL: Policy = Policy {
    roles: EVERYONE,
    owner: Owner::Any,
    writes: false,
};

/// Providers write; which dataset they may touch is checked by ownership.
const PROVIDER_WRITES: Policy = Policy {
    roles: &[Provider],
    owner: Owner::OwnOrg,
    writes: true,
};

/// (method, route template, policy).
pub const POLICIES: &[(&str, &str, Policy)] = &[
    // organisations and keys: admin only
    (
        "GET",
        "/v1/orgs",
        Policy {
            roles: &[Admin, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "POST",
        "/v1/orgs",
        Policy {
            roles: &[Admin],
            owner: Owner::Any,
            writes: true,
        },
    ),
    (
        "GET",
        "/v1/keys",
        Policy {
            roles: &[Admin],
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "POST",
        "/v1/keys",
        Policy {
            roles: &[Admin],
            owner: Owner::Any,
            writes: true,
        },
    ),
    (
        "DELETE",
        "/v1/keys/{key_id}",
        Policy {
            roles: &[Admin],
            owner: Owner::Any,
            writes: true,
        },
    ),
    (
        "GET",
        "/v1/whoami",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    // ledger: everyone reads (filtered by visibility inside); checkpoints on demand by
    // supervisors and admins
    (
        "GET",
        "/v1/ledger/entries",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/ledger/entries/{seq}",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/ledger/checkpoint",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "POST",
        "/v1/ledger/checkpoint",
        Policy {
            roles: &[Supervisor, Admin],
            owner: Owner::Any,
            writes: true,
        },
    ),
    (
        "GET",
        "/v1/ledger/public-key",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/ledger/proof/inclusion",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/ledger/proof/consistency",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/ledger/receipt/{seq}",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: false,
        },
    ),
    // catalog: every role reads metadata, reports, certificates and dummy data;
    // providers register datasets and upload versions of their own
    ("GET", "/v1/datasets", READ_ALL),
    ("POST", "/v1/datasets", PROVIDER_WRITES),
    ("GET", "/v1/datasets/{id}", READ_ALL),
    ("GET", "/v1/datasets/{id}/versions", READ_ALL),
    ("POST", "/v1/datasets/{id}/versions", PROVIDER_WRITES),
    ("GET", "/v1/datasets/{id}/versions/{version}", READ_ALL),
    (
        "GET",
        "/v1/datasets/{id}/versions/{version}/certificate",
        READ_ALL,
    ),
    // the open-attribute rule inside refuses every conditional or not-open dataset
    (
        "GET",
        "/v1/datasets/{id}/versions/{version}/download",
        READ_ALL,
    ),
    ("GET", "/v1/datasets/{id}/dummy", READ_ALL),
    ("GET", "/v1/elements", READ_ALL),
    ("POST", "/v1/elements", PROVIDER_WRITES),
    // jobs: the owning organisation, or a supervisor
    ("GET", "/v1/jobs", READ_ALL),
    (
        "GET",
        "/v1/jobs/{id}",
        Policy {
            roles: EVERYONE,
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
];

/// The policy of a route, if it has one.
pub fn policy_for(method: &Method, route: &str) -> Option<Policy> {
    POLICIES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, p)| *p)
}
