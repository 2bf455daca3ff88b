"""Shared helpers for the pdx notebooks: a small HTTP client and key issuance.

The notebooks run against a live `pdx serve` whose data directory was populated by
`pdx demo` (see README.md). Configure with:
  PDX_URL       server URL (default http://127.0.0.1:8765)
  PDX_DATA_DIR  the server's data directory (its admin.key issues the notebook's keys)
  PDX_BIN       the pdx binary (default: pdx on PATH)
"""

import os
import secrets
from pathlib import Path

import httpx

URL = os.environ.get("PDX_URL", "http://127.0.0.1:8765")
DATA_DIR = Path(os.environ.get("PDX_DATA_DIR", "pdx-data"))
PDX_BIN = os.environ.get("PDX_BIN", "pdx")


class Pdx:
    """One API key's view of the server."""

    def __init__(self, key: str):
        self.http = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def req(self, method: str, path: str, want: int | tuple = 200, **kw):
        r = self.http.request(method, path, **kw)
        wants = want if isinstance(want, tuple) else (want,)
        assert r.status_code in wants, f"{method} {path}: {r.status_code} {r.text}"
        ctype = r.headers.get("content-type", "")
        return r.json() if "json" in ctype else r.content

    def get(self, path: str, **kw):
        return self.req("GET", path, **kw)

    def post(self, path: str, body=None, want=200, **kw):
        return self.req("POST", path, want=want, json=body, **kw)

    def wait_job(self, job_id: str, seconds: float = 300):
        import time

        deadline = time.time() + seconds
        while time.time() < deadline:
            job = self.get(f"/v1/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed"):
                assert job["status"] == "succeeded", job
                return job
            time.sleep(0.1)
        raise TimeoutError(job_id)


def admin() -> Pdx:
    """The administrator, from the data directory's admin.key."""
    return Pdx((DATA_DIR / "admin.key").read_text().strip())


def key_for(role: str, org_id: str | None = None, name: str | None = None) -> tuple[str, Pdx]:
    """A new key with `role`, in an existing organisation or a new one; returns (org id, client)."""
    a = admin()
    if org_id is None:
        name = name or f"nb-{role}-{secrets.token_hex(3)}"
        org_id = a.post("/v1/orgs", {"name": name, "region": "shenzhen"}, want=201)["id"]
    key = a.post("/v1/keys", {"org": org_id, "role": role}, want=201)["key"]
    return org_id, Pdx(key)
