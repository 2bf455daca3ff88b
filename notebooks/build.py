"""Writes the three notebooks from the cells below (run: python build.py)."""

import nbformat as nbf


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbf.v4.new_code_cell(c.strip()) for c in cells]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids keep regenerated notebooks diff-free
    return nb


SETUP = """
import io, json, subprocess, tempfile
import polars as pl
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from pdx_nb import Pdx, admin, key_for, PDX_BIN, DATA_DIR
"""

DEV = [
    "md:# 01 — The enterprise developer's journey\n\ncatalog → dummy data → model dry run → grant → job → review and release → product.\nRuns against a `pdx serve` over a data directory populated by `pdx demo` (see README.md).",
    SETUP,
    "md:## The catalog",
    """
dev_org, dev = key_for("developer")
catalog = dev.get("/v1/datasets")["items"]
print(pl.DataFrame([{k: d[k] for k in ("id", "title", "level", "open_attribute")} for d in catalog]))
electricity = next(d for d in catalog if d["title"] == "Enterprise electricity consumption")
assert electricity["level"] == "L2"
""",
    "md:## Dummy data: the schema, never a real row",
    """
dummy = dev.get(f"/v1/datasets/{electricity['id']}/dummy?rows=200&format=csv")
df = pl.read_csv(io.BytesIO(dummy)) if isinstance(dummy, bytes) else pl.DataFrame(dummy)
print(df.head())
assert set(df.columns) >= {"district", "industry", "kwh_12m"}
""",
    "md:## Dry run on dummy data (no budget spent)",
    """
SQL = "SELECT district, COUNT(*) AS enterprises, AVG(kwh_12m) AS mean_kwh FROM data GROUP BY district"
dry = dev.post("/v1/dry-run", {"kind": "sql", "body": SQL, "dataset_id": electricity["id"], "rows": 300})
assert [c["name"] for c in dry["columns"]] == ["district", "enterprises", "mean_kwh"]
""",
    "md:## A grant, approved by the provider",
    """
_, provider = key_for("provider", org_id=electricity["provider_org"])
grant = dev.post("/v1/grants", {
    "dataset_id": electricity["id"], "purpose": "notebook: district statistics",
    "columns": ["district", "industry", "kwh_12m"], "model_kinds": ["sql"],
    "term_days": 30, "epsilon": 0.0, "delta": 0.0, "query_budget": 5}, want=201)
provider.post(f"/v1/grants/{grant['id']}/decision", {"approve": True})
""",
    "md:## The job: the output waits in quarantine",
    """
model = dev.post("/v1/models", {"name": "districts", "kind": "sql", "body": SQL}, want=201)
job = dev.post("/v1/runs", {"model_id": model["id"], "inputs": [{"dataset_id": electricity["id"], "grant_id": grant["id"]}]}, want=202)
job = dev.wait_job(job["id"])
output = job["result"]["output_id"]
assert dev.get(f"/v1/outputs/{output}")["status"] == "quarantined"
""",
    "md:## Review and release (an output checker), then download",
    """
_, reviewer = key_for("reviewer")
released = reviewer.post(f"/v1/review/{output}", {"approve": True, "reason": "district aggregates"})
assert released["status"] == "released"
rows = pl.DataFrame(dev.get(f"/v1/outputs/{output}/download?format=json"))
print(rows)
assert rows["enterprises"].sum() > 0
fig, ax = plt.subplots()
ax.bar(rows["district"].to_list(), rows["mean_kwh"].to_list())
ax.set_title("Mean 12-month consumption per district (kWh)")
""",
    "md:## A product from the release",
    """
product = dev.post("/v1/products", {
    "title": "Electricity by district (notebook)", "description": "Enterprises and mean kWh per district",
    "licence": {"kind": "commercial_internal", "term_days": 30}, "price_minor": 50_000,
    "split": {"public_finance_bp": 3000, "platform_bp": 1000, "developer_bp": 6000},
    "releases": [released["release_id"]]}, want=201)
assert product["status"] == "pending_review"
assert product["manifest"]["sources"][0]["output_hash"] == released["output_hash"]
print(product["id"], product["status"])
""",
]

EXCHANGE = [
    "md:# 02 — The trading platform\n\nlisting review → orders → settlement and reconciliation, with revenue charts.",
    SETUP,
    "md:## Listing review: the exchange lists every pending product",
    """
_, exchange = key_for("exchange")
pending = exchange.get("/v1/products?status=pending_review")
for p in pending:
    listed = exchange.post(f"/v1/products/{p['id']}/list")
    assert listed["status"] == "listed" and listed["registration_no"].startswith("PDX-DP-")
_, buyer = key_for("buyer")
on_sale = buyer.get("/v1/products")
print(pl.DataFrame([{k: p[k] for k in ("id", "title", "price_minor", "status")} for p in on_sale]))
assert len(on_sale) >= 1
""",
    "md:## Orders: an Idempotency-Key makes a retry safe",
    """
orders = []
for i, p in enumerate(on_sale):
    idem = f"nb-{p['id']}"
    first = buyer.post("/v1/orders", {"product_id": p["id"]}, want=201, headers={"Idempotency-Key": idem})
    again = buyer.post("/v1/orders", {"product_id": p["id"]}, want=200, headers={"Idempotency-Key": idem})
    assert again["id"] == first["id"]
    paid = buyer.post(f"/v1/orders/{first['id']}/pay", {"payment_ref": f"nb-bank-{i}"})
    assert paid["status"] == "paid"
    tar = buyer.get(f"/v1/orders/{first['id']}/download")
    assert isinstance(tar, bytes) and len(tar) > 0
    orders.append(first["id"])
""",
    "md:## Revenue",
    """
mine = pl.DataFrame(buyer.get("/v1/orders"))
print(mine.select("id", "product_id", "price_minor", "status"))
assert mine["status"].to_list() == ["delivered"] * len(orders)
# The exchange's order book holds every buyer's orders (the demo's among them).
book = pl.DataFrame(exchange.get("/v1/orders?limit=1000"))
print(book.group_by("status").agg(pl.len().alias("orders"), pl.col("price_minor").sum()).sort("status"))
assert set(orders) <= set(book["id"].to_list()) and book.height > len(orders)
by_dev = pl.DataFrame(exchange.get("/v1/reconciliation?group_by=developer")["rows"])
print(by_dev)
fig, ax = plt.subplots()
ax.bar(by_dev["key"].to_list(), (by_dev["paid_minor"] / 100).to_list(), label="paid")
ax.bar(by_dev["key"].to_list(), (by_dev["remitted_minor"] / 100).to_list(), label="remitted")
ax.legend(); ax.set_title("Revenue per developer (CNY)")
""",
    "md:## Settlement and reconciliation\n\nA month is settled once it has ended; `pdx demo` settled its own month. The books reconcile to the fen.",
    """
recon = exchange.get("/v1/reconciliation?group_by=total")
print(json.dumps(recon["total"], indent=1))
assert recon["exact"] is True
t = recon["total"]
fig, ax = plt.subplots()
ax.bar(["paid", "refunded", "remitted", "unsettled"], [t["paid_minor"] / 100, t["refunded_minor"] / 100, t["remitted_minor"] / 100, t["unsettled_minor"] / 100])
ax.set_title("Books (CNY)")
assert t["paid_minor"] - t["refunded_minor"] == t["remitted_minor"] + t["unsettled_minor"]
""",
]

SUPERVISOR = [
    "md:# 03 — The supervisor's audit\n\nverification → ledger contents → privacy budget and revenue → a product's lineage graph → offline receipt checks with `pdx ledger verify-receipt`.",
    SETUP,
    "md:## A checkpoint and the published key",
    """
_, sup = key_for("supervisor")
checkpoint = sup.post("/v1/ledger/checkpoint", want=201)
public_key = sup.get("/v1/ledger/public-key")
public_key = (public_key.decode() if isinstance(public_key, bytes) else public_key).strip()
print(public_key)
""",
    "md:## What the ledger holds",
    """
entries, page = [], sup.get("/v1/ledger/entries?limit=1000")
entries += page["entries"]
kinds = pl.DataFrame([{"seq": e["seq"], "kind": e["kind"]} for e in entries])
counts = kinds.group_by("kind").len().sort("kind")
print(counts)
assert {"asset_certificate", "release", "product_listing", "transaction"} <= set(counts["kind"].to_list())
fig, ax = plt.subplots()
ax.barh(counts["kind"].to_list(), counts["len"].to_list())
ax.set_title("Ledger entries by kind")
""",
    "md:## Privacy budget and revenue",
    """
grants = pl.DataFrame(sup.get("/v1/grants"))
print(grants.select("id", "dataset_id", "epsilon", "epsilon_spent"))
assert (grants["epsilon_spent"] <= grants["epsilon"] + 1e-9).all()
recon = sup.get("/v1/reconciliation?group_by=total")
assert recon["exact"] is True
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
a.bar(grants["id"].to_list(), grants["epsilon_spent"].to_list()); a.set_title("ε spent per grant"); a.tick_params(axis="x", rotation=90)
b.bar(["paid", "remitted"], [recon["total"]["paid_minor"] / 100, recon["total"]["remitted_minor"] / 100]); b.set_title("CNY")
""",
    "md:## Lineage: a product traced to its certified sources\n\nproduct → released outputs → jobs and models → certified dataset versions → source departments. Every hop carries a ledger receipt, and the server lists any row that disagrees with its entry.",
    """
listing = next(e for e in reversed(entries) if e["kind"] == "product_listing")
product_id = json.loads(listing["payload"])["product_id"]
lineage = sup.get(f"/v1/audit/lineage/product/{product_id}")
assert lineage["complete"] is True and lineage["problems"] == [], lineage["problems"]
assert lineage["listing"]["seq"] == listing["seq"]
assert lineage["releases"] and all(v["certificate"] for r in lineage["releases"] for v in r["datasets"])

nodes, edges = {}, []  # key -> (column, label)
def node(key, column, label):
    nodes.setdefault(key, (column, label))
    return key
top = node(("product", product_id), 0, "product\\n" + lineage["title"][:26])
for r in lineage["releases"]:
    rel = node(("release", r["release_id"]), 1, f"release\\nledger seq {r['release']['seq']}")
    job = node(("job", r["job"]["job_id"]), 2, f"{r['model']['kind']} job\\nmodel {r['model']['model_hash'][:10]}")
    edges += [(top, rel), (rel, job)]
    for v in r["datasets"]:
        version = node(("version", v["dataset_id"], v["version"]), 3, f"{v['title'][:24]} v{v['version']}\\n{v['certificate_no']}")
        source = node(("source", v["provider_org"], v["source_department"]), 4, v["source_department"][:26])
        edges += [(job, version), (version, source)]
columns = {}
for key, (column, _) in nodes.items():
    columns.setdefault(column, []).append(key)
pos = {k: (c, (len(ks) - 1) / 2 - i) for c, ks in columns.items() for i, k in enumerate(ks)}
fig, ax = plt.subplots(figsize=(13, 1.5 + 1.2 * max(len(ks) for ks in columns.values())))
for a, b in edges:
    ax.annotate("", xy=pos[b], xytext=pos[a], arrowprops=dict(arrowstyle="->", color="grey", shrinkA=45, shrinkB=45))
for key, (column, label) in nodes.items():
    ax.text(*pos[key], label, ha="center", va="center", fontsize=8, bbox=dict(boxstyle="round", fc="#fff7d6", ec="#a08020"))
ax.set_xlim(-0.6, 4.6); ax.set_ylim(min(y for _, y in pos.values()) - 0.8, max(y for _, y in pos.values()) + 0.8)
ax.axis("off"); ax.set_title("Lineage of " + product_id)
print(len(lineage["releases"]), "releases,", len({k for k in nodes if k[0] == "version"}), "certified dataset versions")
""",
    "md:## Offline receipts: `pdx ledger verify-receipt`\n\nEvery receipt on the lineage path is checked with nothing but the published key; a tampered copy must fail.",
    """
def receipts(value):
    if isinstance(value, dict):
        for field, child in value.items():
            yield from ([child] if field == "receipt" else receipts(child))
    elif isinstance(value, list):
        for child in value:
            yield from receipts(child)

release = next(e for e in entries if e["kind"] == "release")
path_receipts = list(receipts(lineage)) + [sup.get(f"/v1/ledger/receipt/{release['seq']}")]
assert len(path_receipts) >= 5
def verify_receipt(receipt, d, name):
    path = f"{d}/{name}.json"
    with open(path, "w") as f:
        json.dump(receipt, f)
    return subprocess.run([PDX_BIN, "ledger", "verify-receipt", "--key", f"{d}/ledger.pub", path], capture_output=True, text=True)
with tempfile.TemporaryDirectory() as d:
    with open(f"{d}/ledger.pub", "w") as f:
        f.write(public_key + "\\n")
    for i, receipt in enumerate(path_receipts):
        out = verify_receipt(receipt, d, f"receipt-{i}")
        assert out.returncode == 0, (receipt["entry"]["seq"], out.stdout, out.stderr)
    print(out.stdout.strip())
    tampered = json.loads(json.dumps(path_receipts[0]))
    tampered["entry"]["payload"] += " "
    out = verify_receipt(tampered, d, "tampered")
    print(out.stdout.strip(), out.stderr.strip())
    assert out.returncode != 0
print(len(path_receipts), "receipts verified offline; the tampered copy was refused")
""",
]

for name, cells in [("01_enterprise_developer", DEV), ("02_trading_platform", EXCHANGE), ("03_supervisor_audit", SUPERVISOR)]:
    nbf.write(notebook(cells), f"{name}.ipynb")
