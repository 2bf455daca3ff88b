//! The authorization policy of every `/v1` route, in one table.
//!
//! The auth middleware looks the matched route up here and refuses it if absent; the
//! route-coverage test checks that every route in the OpenAPI document has exactly one
//! entry and that no entry is stale.
//!
//! Routes with [`Owner::Public`] answer without a key too (the open catalog, SD22
//! Art.10; [`PUBLIC_READ`]). [`OPEN_WHILE_SUSPENDED`] lists the reads a suspended
//! organisation keeps (XT Art.33; the rule is documented in [`crate::auth`]); every
//! other route is refused to it.

use axum::http::Method;

use crate::auth::{Owner, Policy, Role, WhileSuspended};

use Role::*;

const EVERYONE: &[Role] = &Role::ALL;

/// Any authenticated caller may read (catalog metadata, public ledger data).
const READ_ALL: Policy = Policy {
    roles: EVERYONE,
    owner: Owner::Any,
    writes: false,
};

/// Anyone reads, without a key too (SD22 Art.10): the open catalog, certificates and
/// their proofs, the public list of suspensions, the requests to open data. A caller
/// with a key is authenticated as usual; the handler narrows what the public sees
/// (published entries only; rows of unconditionally open datasets only).
pub const PUBLIC_READ: Policy = Policy {
    roles: EVERYONE,
    owner: Owner::Public,
    writes: false,
};

/// Providers write; which dataset they may touch is checked by ownership.
const PROVIDER_WRITES: Policy = Policy {
    roles: &[Provider],
    owner: Owner::OwnOrg,
    writes: true,
};

/// Developers act on their own organisation's grants, models, runs and outputs.
const DEVELOPER_OWN: Policy = Policy {
    roles: &[Developer],
    owner: Owner::OwnOrg,
    writes: true,
};

/// Developers read their own; supervisors read everything.
const DEVELOPER_READS: Policy = Policy {
    roles: &[Developer, Supervisor],
    owner: Owner::OwnOrgOrSupervisor,
    writes: false,
};

/// Output checkers.
const REVIEWERS: Policy = Policy {
    roles: &[Reviewer],
    owner: Owner::Any,
    writes: true,
};

/// Output checkers read the queue and what they compare an output with.
const REVIEWER_READS: Policy = Policy {
    roles: &[Reviewer],
    owner: Owner::Any,
    writes: false,
};

/// The trading platform's operator acts (review, listing, refunds, settlement).
const EXCHANGE_WRITES: Policy = Policy {
    roles: &[Exchange],
    owner: Owner::Any,
    writes: true,
};

/// The exchange and supervisors read trading records of every organisation.
const EXCHANGE_READS: Policy = Policy {
    roles: &[Exchange, Supervisor],
    owner: Owner::Any,
    writes: false,
};

/// Buyers act on their own orders (another buyer's order is not found).
const BUYER_OWN: Policy = Policy {
    roles: &[Buyer],
    owner: Owner::OwnOrg,
    writes: true,
};

/// The data authority acts on the catalog: it approves or returns submitted entries,
/// decides open-attribute changes and relaxes attributes in an emergency.
const AUTHORITY_WRITES: Policy = Policy {
    roles: &[Authority],
    owner: Owner::Any,
    writes: true,
};

/// Supervisors read reports and traces across every organisation.
const SUPERVISOR_READS: Policy = Policy {
    roles: &[Supervisor],
    owner: Owner::Any,
    writes: false,
};

/// Supervisors act: verification jobs, suspensions, cosignatures.
const SUPERVISOR_WRITES: Policy = Policy {
    roles: &[Supervisor],
    owner: Owner::Any,
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
    // ledger: everyone reads, the public without a key too (filtered by visibility
    // inside: the public sees the public kinds only); checkpoints on demand by
    // supervisors and admins
    ("GET", "/v1/ledger/entries", PUBLIC_READ),
    ("GET", "/v1/ledger/entries/{seq}", PUBLIC_READ),
    ("GET", "/v1/ledger/checkpoint", PUBLIC_READ),
    (
        "POST",
        "/v1/ledger/checkpoint",
        Policy {
            roles: &[Supervisor, Admin],
            owner: Owner::Any,
            writes: true,
        },
    ),
    ("GET", "/v1/ledger/public-key", PUBLIC_READ),
    ("GET", "/v1/ledger/proof/inclusion", PUBLIC_READ),
    ("GET", "/v1/ledger/proof/consistency", PUBLIC_READ),
    ("GET", "/v1/ledger/receipt/{seq}", PUBLIC_READ),
    // catalog: every role reads metadata, reports, certificates and dummy data of
    // published entries (a not-open dataset's dummy data only its provider and
    // supervisors; an unpublished entry only its provider, the data authority and
    // supervisors: checked inside); providers register datasets as drafts, submit them,
    // edit their metadata and upload versions of their own; the data authority approves
    // or returns submitted entries (GD21 Art.10-11)
    //
    // The open catalog is public (SD22 Art.10): without a key, the list, the pages,
    // versions, certificates, and the dummy data and downloads of unconditionally open
    // datasets answer for published entries only (anything else is not found, or a 401
    // for rows of a dataset that is not unconditionally open: checked inside)
    ("GET", "/v1/datasets", PUBLIC_READ),
    ("POST", "/v1/datasets", PROVIDER_WRITES),
    ("GET", "/v1/datasets/{id}", PUBLIC_READ),
    ("PUT", "/v1/datasets/{id}", PROVIDER_WRITES),
    ("POST", "/v1/datasets/{id}/submit", PROVIDER_WRITES),
    ("POST", "/v1/datasets/{id}/review", AUTHORITY_WRITES),
    ("GET", "/v1/datasets/{id}/revisions", READ_ALL),
    ("GET", "/v1/datasets/{id}/versions", PUBLIC_READ),
    ("POST", "/v1/datasets/{id}/versions", PROVIDER_WRITES),
    ("GET", "/v1/datasets/{id}/versions/{version}", PUBLIC_READ),
    (
        "GET",
        "/v1/datasets/{id}/versions/{version}/certificate",
        PUBLIC_READ,
    ),
    // the open-attribute rule inside refuses every conditional or not-open dataset
    (
        "GET",
        "/v1/datasets/{id}/versions/{version}/download",
        PUBLIC_READ,
    ),
    ("GET", "/v1/datasets/{id}/dummy", PUBLIC_READ),
    ("GET", "/v1/elements", READ_ALL),
    ("POST", "/v1/elements", PROVIDER_WRITES),
    // open attributes after publication (SD22 Art.8, 10, 20; XT Art.23(7)): a provider
    // asks to change its own published dataset's attribute (another's is not found);
    // the data authority decides (not for its own organisation: checked inside) and
    // relaxes attributes in an emergency; the authority, supervisors and providers
    // (their own datasets' only, checked inside) list the requests; everyone who sees
    // a dataset reads its relaxations
    ("POST", "/v1/datasets/{id}/open-attribute", PROVIDER_WRITES),
    (
        "GET",
        "/v1/open-attribute-changes",
        Policy {
            roles: &[Provider, Authority, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "POST",
        "/v1/open-attribute-changes/{id}/decision",
        AUTHORITY_WRITES,
    ),
    (
        "POST",
        "/v1/datasets/{id}/emergency-relaxation",
        AUTHORITY_WRITES,
    ),
    ("GET", "/v1/datasets/{id}/emergency-relaxations", READ_ALL),
    // destruction (GD21 Art.40; XT Art.34(4)): a provider destroys a version of its own
    // dataset, or the whole dataset (another's is not found); the tombstones are read on
    // the catalog's routes
    (
        "POST",
        "/v1/datasets/{id}/versions/{version}/destruction",
        PROVIDER_WRITES,
    ),
    ("POST", "/v1/datasets/{id}/destruction", PROVIDER_WRITES),
    // how a dataset is used (SD22 Art.14): its provider (another's is not found: checked
    // inside), supervisors and the data authority
    (
        "GET",
        "/v1/datasets/{id}/usage",
        Policy {
            roles: &[Provider, Supervisor, Authority],
            owner: Owner::OwnOrg,
            writes: false,
        },
    ),
    // classification filings (GD21 Art.13): a not-shared classification is filed by the
    // registration or edit that makes it; the data authority and supervisors read every
    // filing, a provider its own (another's is not found: checked inside)
    (
        "GET",
        "/v1/classification-filings",
        Policy {
            roles: &[Provider, Authority, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/classification-filings/{id}",
        Policy {
            roles: &[Provider, Authority, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
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
    // sandbox: grants (developers apply, providers answer, supervisors read)
    (
        "GET",
        "/v1/grants",
        Policy {
            roles: &[Developer, Provider, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    ("POST", "/v1/grants", DEVELOPER_OWN),
    (
        "GET",
        "/v1/grants/{id}",
        Policy {
            roles: &[Developer, Provider, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    ("POST", "/v1/grants/{id}/decision", PROVIDER_WRITES),
    ("POST", "/v1/grants/{id}/revoke", PROVIDER_WRITES),
    (
        "GET",
        "/v1/datasets/{id}/output-policy",
        Policy {
            roles: &[Provider],
            owner: Owner::OwnOrg,
            writes: false,
        },
    ),
    ("PUT", "/v1/datasets/{id}/output-policy", PROVIDER_WRITES),
    // sharing between government departments (GD18; GD21 Art.22-23): a providing
    // department asks for another's dataset; the owning department decides a
    // conditional request and revokes a share (the requester: 403, anyone else: 404,
    // checked inside); only the requesting department downloads, while the share is
    // active (checked inside; refused to a suspended department, as every download);
    // both departments, the data authority and supervisors read a share (other
    // providers: 404, checked inside)
    (
        "GET",
        "/v1/share-requests",
        Policy {
            roles: &[Provider, Authority, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    ("POST", "/v1/share-requests", PROVIDER_WRITES),
    (
        "GET",
        "/v1/share-requests/{id}",
        Policy {
            roles: &[Provider, Authority, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    ("POST", "/v1/share-requests/{id}/decision", PROVIDER_WRITES),
    ("POST", "/v1/share-requests/{id}/revoke", PROVIDER_WRITES),
    (
        "GET",
        "/v1/share-requests/{id}/download",
        Policy {
            roles: &[Provider],
            owner: Owner::OwnOrg,
            writes: false,
        },
    ),
    // models, dry runs, runs and outputs: the developer's own
    ("GET", "/v1/models", DEVELOPER_READS),
    ("POST", "/v1/models", DEVELOPER_OWN),
    ("GET", "/v1/models/{id}", DEVELOPER_READS),
    ("POST", "/v1/dry-run", DEVELOPER_OWN),
    ("POST", "/v1/runs", DEVELOPER_OWN),
    ("GET", "/v1/outputs", DEVELOPER_READS),
    (
        "GET",
        "/v1/outputs/{id}",
        Policy {
            roles: &[Developer, Reviewer, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    // rows: the owner once released, reviewers while quarantined (checked inside)
    (
        "GET",
        "/v1/outputs/{id}/download",
        Policy {
            roles: &[Developer, Reviewer],
            owner: Owner::Any,
            writes: false,
        },
    ),
    // review: output checkers only (an output of their own organisation is not found,
    // and refused to their vote: checked inside); the previous release's rows are read
    // for the comparison, logged as every download
    ("GET", "/v1/review", REVIEWER_READS),
    ("GET", "/v1/review/{id}", REVIEWER_READS),
    ("POST", "/v1/review/{id}", REVIEWERS),
    ("GET", "/v1/review/{id}/previous", REVIEWER_READS),
    // private lookups: developers propose templates, upload server keys and query;
    // providers decide on templates of their datasets; supervisors read metadata
    (
        "GET",
        "/v1/fhe/templates",
        Policy {
            roles: &[Developer, Provider, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    ("POST", "/v1/fhe/templates", DEVELOPER_OWN),
    (
        "GET",
        "/v1/fhe/templates/{id}",
        Policy {
            roles: &[Developer, Provider, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    ("POST", "/v1/fhe/templates/{id}/decision", PROVIDER_WRITES),
    ("POST", "/v1/fhe/templates/{id}/retire", PROVIDER_WRITES),
    (
        "GET",
        "/v1/fhe/keys",
        Policy {
            roles: &[Developer],
            owner: Owner::OwnOrg,
            writes: false,
        },
    ),
    ("POST", "/v1/fhe/keys", DEVELOPER_OWN),
    (
        "GET",
        "/v1/fhe/keys/{id}",
        Policy {
            roles: &[Developer],
            owner: Owner::OwnOrg,
            writes: false,
        },
    ),
    ("DELETE", "/v1/fhe/keys/{id}", DEVELOPER_OWN),
    ("GET", "/v1/fhe/queries", DEVELOPER_READS),
    ("POST", "/v1/fhe/queries", DEVELOPER_OWN),
    ("GET", "/v1/fhe/queries/{id}", DEVELOPER_READS),
    // consent for private lookups (GD21 Art.41): subjects register their consent keys
    // (supervisors read them all); supervisors ask the bank to open a query's
    // commitment; the bank that made the query (checked inside: another organisation's
    // query is not found) opens or refuses; the bank and supervisors read the status
    (
        "GET",
        "/v1/consent/keys",
        Policy {
            roles: &[Subject, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    (
        "PUT",
        "/v1/consent/keys",
        Policy {
            roles: &[Subject],
            owner: Owner::OwnOrg,
            writes: true,
        },
    ),
    ("GET", "/v1/fhe/queries/{id}/consent", DEVELOPER_READS),
    (
        "POST",
        "/v1/fhe/queries/{id}/consent/request",
        SUPERVISOR_WRITES,
    ),
    ("POST", "/v1/fhe/queries/{id}/consent/open", DEVELOPER_OWN),
    ("POST", "/v1/fhe/queries/{id}/consent/refuse", DEVELOPER_OWN),
    // products: developers package their own releases; every role reads listed
    // products (pending and rejected ones only their developer, the exchange and
    // supervisors, checked inside); the exchange reviews, lists and rejects; the
    // exchange or the product's own developer delists
    ("GET", "/v1/products", READ_ALL),
    ("POST", "/v1/products", DEVELOPER_OWN),
    ("GET", "/v1/products/{id}", READ_ALL),
    ("POST", "/v1/products/{id}/list", EXCHANGE_WRITES),
    ("POST", "/v1/products/{id}/reject", EXCHANGE_WRITES),
    (
        "POST",
        "/v1/products/{id}/delist",
        Policy {
            roles: &[Exchange, Developer],
            owner: Owner::OwnOrg,
            writes: true,
        },
    ),
    // orders: buyers place, pay and download their own; the exchange refunds; the
    // exchange and supervisors read any order and list the whole book
    (
        "GET",
        "/v1/orders",
        Policy {
            roles: &[Buyer, Exchange, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    ("POST", "/v1/orders", BUYER_OWN),
    (
        "GET",
        "/v1/orders/{id}",
        Policy {
            roles: &[Buyer, Exchange, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    ("POST", "/v1/orders/{id}/pay", BUYER_OWN),
    ("POST", "/v1/orders/{id}/refund", EXCHANGE_WRITES),
    // a download is logged and marks the order delivered; a suspended buyer gets no data
    ("GET", "/v1/orders/{id}/download", BUYER_OWN),
    // settlement and reconciliation: the exchange settles; supervisors read
    ("POST", "/v1/settlements/{period}", EXCHANGE_WRITES),
    ("GET", "/v1/settlements/{period}", EXCHANGE_READS),
    ("GET", "/v1/reconciliation", EXCHANGE_READS),
    // remittances to public finance (GY ch.6): a region's public-finance bureau reads
    // the remittances to its own region's account (a period with none to it is not
    // found: checked inside); supervisors read every public-finance account's
    (
        "GET",
        "/v1/public-finance/remittances",
        Policy {
            roles: &[Finance, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    (
        "GET",
        "/v1/public-finance/remittances/{period}",
        Policy {
            roles: &[Finance, Supervisor],
            owner: Owner::OwnOrgOrSupervisor,
            writes: false,
        },
    ),
    // supervision: supervisors verify, report, trace and suspend; everyone reads the
    // public list of suspensions, the public without a key too (SD22 Art.19)
    ("POST", "/v1/audit/verify", SUPERVISOR_WRITES),
    ("GET", "/v1/audit/compliance", SUPERVISOR_READS),
    ("GET", "/v1/audit/budgets", SUPERVISOR_READS),
    // what left each dataset version: supervisors, and the provider for its own
    // datasets (checked inside: another provider's dataset is not found)
    (
        "GET",
        "/v1/audit/disclosure",
        Policy {
            roles: &[Provider, Supervisor],
            owner: Owner::Any,
            writes: false,
        },
    ),
    ("GET", "/v1/audit/lineage/product/{id}", SUPERVISOR_READS),
    ("GET", "/v1/audit/suspensions", PUBLIC_READ),
    ("POST", "/v1/audit/suspensions", SUPERVISOR_WRITES),
    // witnesses (supervisors' own keys) cosign checkpoints
    ("POST", "/v1/ledger/cosignatures", SUPERVISOR_WRITES),
    // objections: anyone objects; the objector and the provider read theirs
    // (supervisors all, checked inside); the dataset's provider answers
    ("GET", "/v1/objections", READ_ALL),
    (
        "POST",
        "/v1/objections",
        Policy {
            roles: EVERYONE,
            owner: Owner::Any,
            writes: true,
        },
    ),
    ("GET", "/v1/objections/{id}", READ_ALL),
    ("POST", "/v1/objections/{id}/answer", PROVIDER_WRITES),
    // requests to open data (SD22 Art.9, 12; GD21 Art.34): anyone files one, the
    // public without a key too (rate-limited per address); everyone reads them (the
    // requester's contact only its own organisation, the data authority, supervisors
    // and the provider it is routed to: checked inside); the data authority routes
    // each to a provider; that provider answers (another provider's is not found)
    (
        "POST",
        "/v1/open-data-requests",
        Policy {
            roles: EVERYONE,
            owner: Owner::Public,
            writes: true,
        },
    ),
    ("GET", "/v1/open-data-requests", PUBLIC_READ),
    ("GET", "/v1/open-data-requests/{id}", PUBLIC_READ),
    (
        "POST",
        "/v1/open-data-requests/{id}/route",
        AUTHORITY_WRITES,
    ),
    (
        "POST",
        "/v1/open-data-requests/{id}/answer",
        PROVIDER_WRITES,
    ),
    // the data authority's evaluations and rectification orders (GD21 Art.48-49, 52;
    // GD18 Art.30-31), public to every authenticated caller (SD22 Art.5): the authority
    // publishes evaluations, issues and closes orders; the ordered organisation answers
    // its own order (another organisation's is not found)
    ("GET", "/v1/evaluations", READ_ALL),
    ("POST", "/v1/evaluations", AUTHORITY_WRITES),
    ("GET", "/v1/rectifications", READ_ALL),
    ("POST", "/v1/rectifications", AUTHORITY_WRITES),
    ("GET", "/v1/rectifications/{id}", READ_ALL),
    (
        "POST",
        "/v1/rectifications/{id}/response",
        Policy {
            roles: &[
                Provider, Developer, Reviewer, Exchange, Buyer, Subject, Finance,
            ],
            owner: Owner::OwnOrg,
            writes: true,
        },
    ),
    ("POST", "/v1/rectifications/{id}/close", AUTHORITY_WRITES),
];

/// The reads a suspended organisation keeps (XT Art.33; [`crate::auth`]): who it is,
/// the ledger as it may see it (its own entries, the suspension among them, and the
/// public kinds, with their proofs), the catalog's metadata, the public list of
/// suspensions, the requests to open data, and the data authority's evaluations and
/// rectification orders (what it must put right). Never rows: dataset downloads and dummy
/// data are not here, nor anything of its grants, runs, outputs, FHE queries, orders
/// or jobs. A GET route not listed is refused to it (deny by default).
pub const OPEN_WHILE_SUSPENDED: &[&str] = &[
    "/v1/whoami",
    "/v1/ledger/entries",
    "/v1/ledger/entries/{seq}",
    "/v1/ledger/checkpoint",
    "/v1/ledger/public-key",
    "/v1/ledger/proof/inclusion",
    "/v1/ledger/proof/consistency",
    "/v1/ledger/receipt/{seq}",
    "/v1/datasets",
    "/v1/datasets/{id}",
    "/v1/datasets/{id}/revisions",
    "/v1/datasets/{id}/versions",
    "/v1/datasets/{id}/versions/{version}",
    "/v1/datasets/{id}/versions/{version}/certificate",
    "/v1/datasets/{id}/emergency-relaxations",
    "/v1/elements",
    "/v1/audit/suspensions",
    "/v1/open-data-requests",
    "/v1/open-data-requests/{id}",
    "/v1/evaluations",
    "/v1/rectifications",
    "/v1/rectifications/{id}",
];

/// Whether a suspended organisation may still call a route: the GET routes of
/// [`OPEN_WHILE_SUSPENDED`], nothing else.
pub fn while_suspended(method: &Method, route: &str) -> WhileSuspended {
    if *method == Method::GET && OPEN_WHILE_SUSPENDED.contains(&route) {
        WhileSuspended::Open
    } else {
        WhileSuspended::Refused
    }
}

/// The policy of a route, if it has one.
pub fn policy_for(method: &Method, route: &str) -> Option<Policy> {
    POLICIES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::{OPEN_WHILE_SUSPENDED, POLICIES, while_suspended};
    use crate::auth::{Owner, WhileSuspended};
    use axum::http::Method;

    #[test]
    fn the_reads_open_while_suspended_are_get_routes_that_hand_out_no_rows() {
        for route in OPEN_WHILE_SUSPENDED {
            let policy = super::policy_for(&Method::GET, route);
            assert!(policy.is_some_and(|p| !p.writes), "{route}: no read policy");
            assert_eq!(while_suspended(&Method::GET, route), WhileSuspended::Open);
            assert_eq!(
                while_suspended(&Method::POST, route),
                WhileSuspended::Refused,
                "{route}"
            );
            assert!(
                !route.ends_with("/download") && !route.ends_with("/dummy"),
                "{route} hands out rows"
            );
        }
        for refused in [
            "/v1/datasets/{id}/versions/{version}/download",
            "/v1/datasets/{id}/dummy",
            "/v1/outputs/{id}/download",
            "/v1/orders/{id}/download",
            "/v1/fhe/queries/{id}",
            "/v1/grants",
            "/v1/jobs/{id}",
        ] {
            assert_eq!(
                while_suspended(&Method::GET, refused),
                WhileSuspended::Refused,
                "{refused}"
            );
        }
    }

    #[test]
    fn public_routes_are_reads_but_the_filing_of_open_data_requests() {
        let mut public = 0;
        for (method, route, policy) in POLICIES {
            if policy.owner != Owner::Public {
                continue;
            }
            public += 1;
            assert!(
                *method == "GET" || (*method == "POST" && *route == "/v1/open-data-requests"),
                "{method} {route} must not be public"
            );
            assert_eq!(*method != "GET", policy.writes, "{method} {route}");
        }
        assert!(public >= 10, "only {public} public routes");
    }

    #[test]
    fn every_route_that_is_not_a_get_writes() {
        // The auth middleware treats every non-GET route as a write anyway; the table
        // says so too, so that reading it never misleads.
        for (method, route, policy) in POLICIES {
            if *method != "GET" {
                assert!(policy.writes, "{method} {route} must be marked as a write");
            }
        }
    }
}
