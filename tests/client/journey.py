#!/usr/bin/env python3
"""The whole pdx journey through a client generated from the server's /openapi.json.

Issue #25: a client that a standard generator (openapi-python-client) made from the
OpenAPI document, and nothing else, registers, uploads, grants, runs, releases, lists
and orders. tests/e2e/client.rs generates the package and runs this script; it can also
be run by hand against any server (see below).

First the script checks that the generator dropped no operation: every operation of the
document must be a module of the package's api/ (under its first tag, named after its
operationId) with the generated sync_detailed, and the number of modules must be the
number of operations. A dropped one is named, and fails the script; the journey still
runs, up to the first dropped operation it needs.

Then each role acts with its own key, through the generated functions only:

  provider    registers the conditional electricity dataset (the JSON of --dataset, a
              NewDataset) and submits it; the data authority publishes it; the provider
              uploads the CSV of --csv as version 1, polls the ingest job, and reads the
              version's report and certificate;
  developer   asks for a grant on it for SQL models; the provider approves it;
              the developer registers a SQL model and runs it, and polls the job;
  reviewer    finds the output in the review queue and releases it;
  developer   downloads the released output's rows (its columns are the query's),
              packages it as a product;
  exchange    lists the product; the buyer sees it listed;
  buyer       orders it with an Idempotency-Key (the replay returns the same order),
              pays, reads the order back (paid, with its Transaction entry's seq), and
              downloads the product's archive (data, manifest, licence, receipt);
  supervisor  reads the Transaction entry from the ledger and the reconciliation
              (exact; since the order, the price paid and one Transaction entry).

Every step asserts its status and what it returns, so a broken client or server exits
non-zero, with the failed step and the server's problem document (which never holds a
key). At the end it writes --results: ok, the operation counts and the ids made.

Usage, by hand (keys from `pdx keys create`):
  curl -o openapi.json $PDX_URL/openapi.json
  python3 -m openapi_python_client generate --meta none --path openapi.json \
      --output-path DIR/pdx_client --config tests/client/generator.yaml
  journey.py --client DIR --openapi openapi.json --dataset FILE --csv FILE --results FILE
where --dataset is a registration such as pdx::samples::electricity_dataset() serialised
and --csv rows in its schema (tests/e2e/client.rs writes both). The environment gives the
server and the keys (never on a command line): PDX_URL, and PDX_PROVIDER_KEY,
PDX_DEVELOPER_KEY, PDX_REVIEWER_KEY, PDX_EXCHANGE_KEY, PDX_BUYER_KEY, PDX_SUPERVISOR_KEY
and PDX_AUTHORITY_KEY (a data authority's, which publishes catalog entries).
"""

import argparse
import importlib
import io
import json
import os
import pathlib
import re
import sys
import tarfile
import time
import uuid

# The generated package's name (tests/client/generator.yaml sets it).
PACKAGE = "pdx_client"
# The HTTP methods an OpenAPI path item can hold.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The developer's model: enterprises per district, far above any disclosure threshold.
MODEL_SQL = "SELECT district, COUNT(*) AS enterprises FROM data GROUP BY district"
MODEL_COLUMNS = ["district", "enterprises"]
# What the product costs, in fen.
PRICE_MINOR = 12_345
# How long a job may take before the journey gives up.
JOB_TIMEOUT_SECONDS = 300


class JourneyFailed(Exception):
    """A step did not give what the journey expects."""


def check(condition, message):
    """Fails the journey with `message` unless `condition` holds."""
    if not condition:
        raise JourneyFailed(message)


def expect(step, response, status):
    """The parsed body of `response`, which must have `status`; else the step fails with
    the server's answer (a problem document, which never holds a key)."""
    got = int(response.status_code)
    if got != status:
        body = response.content.decode("utf-8", errors="replace")[:2000]
        raise JourneyFailed(f"{step}: expected {status}, got {got}: {body}")
    print(f"ok  {step} ({got})", flush=True)
    return response.parsed


def snake(name):
    """A tag or operationId as the generator names its directory or module."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()


def check_operations(document, package_dir):
    """Every operation of the document is a generated module with `sync_detailed`, and
    there are as many modules as operations; returns (operations, modules, dropped)."""
    doc = json.loads(document.read_text(encoding="utf-8"))
    expected = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["default"])[0]
            name = operation.get("operationId") or f"{method}_{path}"
            expected.append((snake(tag), snake(name), f"{method.upper()} {path}"))
    api = package_dir / "api"
    modules = sorted((p.parent.name, p.stem) for p in api.glob("*/*.py") if p.name != "__init__.py")
    dropped = [
        f"{label} (api/{tag}/{name}.py)"
        for tag, name, label in expected
        if (tag, name) not in set(modules)
    ]
    print(f"operations in the document: {len(expected)}; generated modules: {len(modules)}")
    for label in dropped:
        print(f"dropped by the generator: {label}")
    for tag, name in modules:
        module = importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")
        check(hasattr(module, "sync_detailed"), f"api/{tag}/{name}.py has no sync_detailed")
    return len(expected), len(modules), dropped


def wait_job(get_job, client, job_id, step):
    """Polls a job until it finishes; it must succeed. Returns the finished job."""
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        job = expect(
            f"{step}: GET /v1/jobs/{{id}}", get_job.sync_detailed(job_id, client=client), 200
        )
        status = str(job.status)
        if status in ("succeeded", "failed"):
            check(status == "succeeded", f"{step}: the job failed: {job.to_dict()}")
            return job
        check(
            time.monotonic() < deadline,
            f"{step}: the job did not finish in {JOB_TIMEOUT_SECONDS} s",
        )
        time.sleep(0.2)


def journey(args, keys):
    """Runs the journey; returns what it made, for --results."""
    from pdx_client import AuthenticatedClient
    from pdx_client.api.catalog import (
        get_certificate,
        get_version,
        register_dataset,
        review_dataset,
        submit_dataset,
        upload_version,
    )
    from pdx_client.api.jobs import get_job
    from pdx_client.api.ledger import get_entry
    from pdx_client.api.products import (
        create_product,
        download_order,
        get_order,
        list_product,
        list_products,
        pay_order,
        place_order,
        reconciliation,
    )
    from pdx_client.api.sandbox import (
        apply_for_grant,
        decide_grant,
        download_output,
        get_output,
        register_model,
        review_output,
        review_queue,
        start_run,
    )
    from pdx_client.models import (
        CatalogReview,
        GrantAnswer,
        GrantApplication,
        NewDataset,
        NewModel,
        NewOrder,
        PaymentBody,
        ProductRequest,
        ReviewDecision,
        RunRequest,
    )
    from pdx_client.types import File

    def client(role):
        return AuthenticatedClient(base_url=args.url, token=keys[role], timeout=120.0)

    provider, developer, reviewer = client("provider"), client("developer"), client("reviewer")
    exchange, buyer, supervisor = client("exchange"), client("buyer"), client("supervisor")
    authority = client("authority")

    # Provider: register, submit; the data authority publishes.
    registration = NewDataset.from_dict(json.loads(args.dataset.read_text(encoding="utf-8")))
    dataset = expect(
        "provider: POST /v1/datasets",
        register_dataset.sync_detailed(client=provider, body=registration),
        201,
    )
    dataset_id = dataset.id
    check(str(dataset.status) == "draft", f"a new dataset is a draft: {dataset.status}")
    submitted = expect(
        "provider: POST /v1/datasets/{id}/submit",
        submit_dataset.sync_detailed(dataset_id, client=provider),
        200,
    )
    check(str(submitted.status) == "submitted", f"submitted: {submitted.status}")
    published = expect(
        "authority: POST /v1/datasets/{id}/review",
        review_dataset.sync_detailed(
            dataset_id, client=authority, body=CatalogReview.from_dict({"decision": "approve"})
        ),
        200,
    )
    check(str(published.status) == "published", f"published: {published.status}")

    # Provider: upload the CSV as version 1 and wait for its certificate.
    csv_bytes = args.csv.read_bytes()
    rows_uploaded = csv_bytes.decode("utf-8").count("\n") - 1
    job = expect(
        "provider: POST /v1/datasets/{id}/versions",
        upload_version.sync_detailed(
            dataset_id,
            client=provider,
            body=File(payload=io.BytesIO(csv_bytes), mime_type="application/octet-stream"),
            format_="csv",
        ),
        202,
    )
    wait_job(get_job, provider, job.id, "provider: ingest")
    version = expect(
        "provider: GET /v1/datasets/{id}/versions/1",
        get_version.sync_detailed(dataset_id, 1, client=provider),
        200,
    )
    check(0 < version.rows <= rows_uploaded, f"version rows {version.rows} of {rows_uploaded}")
    k_achieved = version.report.to_dict().get("k_achieved", 0)
    check(k_achieved >= registration.schema.privacy.k, f"k achieved {k_achieved}")
    certified = expect(
        "provider: GET /v1/datasets/{id}/versions/1/certificate",
        get_certificate.sync_detailed(dataset_id, 1, client=provider),
        200,
    )
    certificate = certified.certificate
    check(
        (certificate.dataset_id, certificate.version, certificate.rows)
        == (dataset_id, 1, version.rows),
        f"the certificate is not the version's: {certificate.to_dict()}",
    )
    check(certificate.certificate_no == version.certificate_no, "certificate numbers differ")
    check(certificate.content_hash == version.content_hash, "content hashes differ")

    # Developer: a grant for SQL models; the provider approves it.
    grant = expect(
        "developer: POST /v1/grants",
        apply_for_grant.sync_detailed(
            client=developer,
            body=GrantApplication.from_dict(
                {
                    "dataset_id": dataset_id,
                    "purpose": "enterprises per district, for a regional energy product",
                    "columns": ["district", "industry", "kwh_12m"],
                    "model_kinds": ["sql"],
                    "term_days": 365,
                    "epsilon": 0.0,
                    "delta": 0.0,
                    "query_budget": 20,
                }
            ),
        ),
        201,
    )
    approved = expect(
        "provider: POST /v1/grants/{id}/decision",
        decide_grant.sync_detailed(grant.id, client=provider, body=GrantAnswer(approve=True)),
        200,
    )
    check(str(approved.status) == "approved", f"grant approved: {approved.status}")

    # Developer: a SQL model, run under the grant.
    model = expect(
        "developer: POST /v1/models",
        register_model.sync_detailed(
            client=developer,
            body=NewModel.from_dict({"name": "districts", "kind": "sql", "body": MODEL_SQL}),
        ),
        201,
    )
    job = expect(
        "developer: POST /v1/runs",
        start_run.sync_detailed(
            client=developer,
            body=RunRequest.from_dict(
                {"model_id": model.id, "inputs": [{"dataset_id": dataset_id, "grant_id": grant.id}]}
            ),
        ),
        202,
    )
    job = wait_job(get_job, developer, job.id, "developer: run")
    output_id = job.result.to_dict()["output_id"]

    # Reviewer: the output is in the queue; release it.
    queue = expect("reviewer: GET /v1/review", review_queue.sync_detailed(client=reviewer), 200)
    check(
        any(item.output.id == output_id for item in queue),
        "the developer's output is not in the review queue",
    )
    released = expect(
        "reviewer: POST /v1/review/{id}",
        review_output.sync_detailed(
            output_id,
            client=reviewer,
            body=ReviewDecision(
                approve=True, reason="district counts over hundreds of enterprises"
            ),
        ),
        200,
    )
    check(str(released.status) == "released", f"released: {released.status}")
    release_id = released.release_id

    # Developer: the released output, downloaded as CSV.
    mine = expect(
        "developer: GET /v1/outputs/{id}",
        get_output.sync_detailed(output_id, client=developer),
        200,
    )
    check(str(mine.status) == "released", f"the developer sees it released: {mine.status}")
    # As JSON rows: the generator reads an answer as the first media type the document
    # lists for it, and for the downloads that is application/json (CSV and Parquet are
    # the same rows as other media types of the same 200).
    rows = expect(
        "developer: GET /v1/outputs/{id}/download?format=json",
        download_output.sync_detailed(output_id, client=developer, format_="json"),
        200,
    )
    rows = [row.to_dict() for row in rows]
    check(rows, "the released output has no rows")
    for row in rows:
        check(list(row) == MODEL_COLUMNS, f"output columns {list(row)}, expected {MODEL_COLUMNS}")
    counted = sum(row["enterprises"] for row in rows)
    check(0 < counted <= version.rows, f"{counted} enterprises counted of {version.rows}")

    # Developer: a product on the release; the exchange lists it; the buyer sees it.
    product = expect(
        "developer: POST /v1/products",
        create_product.sync_detailed(
            client=developer,
            body=ProductRequest.from_dict(
                {
                    "title": "District enterprise counts",
                    "description": "Enterprises per district, from certified electricity records",
                    "licence": {"kind": "commercial_internal", "term_days": 30},
                    "price_minor": PRICE_MINOR,
                    "split": {"public_finance_bp": 3000, "platform_bp": 1000, "developer_bp": 6000},
                    "releases": [release_id],
                }
            ),
        ),
        201,
    )
    listed = expect(
        "exchange: POST /v1/products/{id}/list",
        list_product.sync_detailed(product.id, client=exchange),
        200,
    )
    check(str(listed.status) == "listed", f"listed: {listed.status}")
    on_sale = expect("buyer: GET /v1/products", list_products.sync_detailed(client=buyer), 200)
    check(any(p.id == product.id for p in on_sale), "the buyer does not see the listed product")

    # The books before the sale (the journey may run on a server that has sold before).
    before = expect(
        "supervisor: GET /v1/reconciliation", reconciliation.sync_detailed(client=supervisor), 200
    )

    # Buyer: order with an idempotency key (a replay is the same order), pay.
    idempotency_key = f"journey-{uuid.uuid4()}"
    order = expect(
        "buyer: POST /v1/orders",
        place_order.sync_detailed(
            client=buyer, body=NewOrder(product_id=product.id), idempotency_key=idempotency_key
        ),
        201,
    )
    replay = expect(
        "buyer: POST /v1/orders (replayed key)",
        place_order.sync_detailed(
            client=buyer, body=NewOrder(product_id=product.id), idempotency_key=idempotency_key
        ),
        200,
    )
    check(replay.id == order.id, "a replayed Idempotency-Key made a second order")
    check(order.price_minor == PRICE_MINOR, f"order price {order.price_minor}")
    paid = expect(
        "buyer: POST /v1/orders/{id}/pay",
        pay_order.sync_detailed(
            order.id, client=buyer, body=PaymentBody(payment_ref=f"bank-{order.id}")
        ),
        200,
    )
    check(str(paid.status) == "paid", f"paid: {paid.status}")
    read_back = expect(
        "buyer: GET /v1/orders/{id}", get_order.sync_detailed(order.id, client=buyer), 200
    )
    check(str(read_back.status) == "paid", f"the order read back: {read_back.status}")
    check(read_back.transaction_seq == paid.transaction_seq, "the order's transaction seq changed")

    # Supervisor: the Transaction entry on the ledger.
    entry = expect(
        "supervisor: GET /v1/ledger/entries/{seq}",
        get_entry.sync_detailed(paid.transaction_seq, client=supervisor),
        200,
    )
    check(str(entry.kind) == "transaction", f"ledger entry kind {entry.kind}")
    check(order.id in str(entry.payload), "the Transaction entry does not name the order")

    # Buyer: the product's archive (data, manifest, licence, receipt); then delivered.
    response = download_order.sync_detailed(order.id, client=buyer)
    expect("buyer: GET /v1/orders/{id}/download", response, 200)
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        names = [name.split("/", 1)[-1] for name in archive.getnames()]
    for member in ("manifest.json", "licence.json", "receipt.json"):
        check(member in names, f"no {member} in the archive: {names}")
    check(
        any(n.startswith("data/") and n.endswith(".parquet") for n in names), f"no data in {names}"
    )
    delivered = expect(
        "buyer: GET /v1/orders/{id}", get_order.sync_detailed(order.id, client=buyer), 200
    )
    check(str(delivered.status) == "delivered", f"after the download: {delivered.status}")

    # Supervisor: the books reconcile to the fen, with this sale in them.
    books = expect(
        "supervisor: GET /v1/reconciliation", reconciliation.sync_detailed(client=supervisor), 200
    )
    check(books.exact is True, f"reconciliation not exact: {books.to_dict()}")
    paid_since = books.total.paid_minor - before.total.paid_minor
    check(paid_since == PRICE_MINOR, f"paid {paid_since} since the order, not {PRICE_MINOR}")
    sales = books.ledger.transaction_entries - before.ledger.transaction_entries
    check(sales == 1, f"{sales} Transaction entries since the order, not 1")

    return {
        "dataset_id": dataset_id,
        "certificate_no": certificate.certificate_no,
        "grant_id": grant.id,
        "output_id": output_id,
        "release_id": release_id,
        "product_id": product.id,
        "order_id": order.id,
        "transaction_seq": paid.transaction_seq,
    }


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--client", type=pathlib.Path, required=True, help="directory holding pdx_client"
    )
    parser.add_argument(
        "--openapi", type=pathlib.Path, required=True, help="the document it was generated from"
    )
    parser.add_argument("--dataset", type=pathlib.Path, required=True, help="a NewDataset, as JSON")
    parser.add_argument("--csv", type=pathlib.Path, required=True, help="the dataset's rows")
    parser.add_argument(
        "--results", type=pathlib.Path, required=True, help="where to write the results"
    )
    return parser.parse_args()


def main():
    args = parse_args()
    args.url = os.environ.get("PDX_URL", "")
    roles = ("provider", "developer", "reviewer", "exchange", "buyer", "supervisor", "authority")
    keys = {role: os.environ.get(f"PDX_{role.upper()}_KEY", "") for role in roles}
    missing = [f"PDX_{role.upper()}_KEY" for role, key in keys.items() if not key]
    if not args.url or missing:
        print(f"set PDX_URL and {', '.join(missing) or 'the keys'}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(args.client.resolve()))
    results = {"ok": False}
    failures = []
    try:
        # The journey runs even when operations were dropped, so that one run reports
        # both; it fails at the first dropped operation it needs.
        results["operations"], results["generated"], results["dropped"] = check_operations(
            args.openapi, args.client / PACKAGE
        )
        if results["dropped"]:
            failures.append(f"the generator dropped {len(results['dropped'])} operation(s)")
        elif results["generated"] != results["operations"]:
            failures.append(
                f"{results['operations']} operations but {results['generated']} modules "
                "(do two operations share a name?)"
            )
        results.update(journey(args, keys))
    except (JourneyFailed, ImportError) as failure:
        failures.append(str(failure))
    finally:
        results["ok"] = not failures and "order_id" in results
        results["failures"] = failures
        args.results.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
