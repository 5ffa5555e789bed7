"""Talk to a local Portico control plane's admin API with the standard library only.

The local scripts (`up.py`, `dp.py`, `demo.py`) share this client so that they run
before any test dependency is installed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Everything the local scripts keep: the database, the token, node key pairs.
VAR = Path(os.environ.get("PORTICO_VAR") or ROOT / "var").resolve()
TOKEN_FILE = VAR / "admin-token"
DEFAULT_ADMIN_URL = "http://127.0.0.1:8001"


class AdminError(Exception):
    """Raised when the admin API answers with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def read_token() -> str:
    """Return the admin token from the environment or the local token file."""
    token = os.environ.get("PORTICO_ADMIN_TOKEN")
    if token:
        return token
    try:
        return TOKEN_FILE.read_text().strip()
    except OSError:
        raise SystemExit(
            "no admin token: set PORTICO_ADMIN_TOKEN or start the control plane "
            "with `make up` first"
        ) from None


class AdminClient:
    """Send JSON requests to the admin API with a bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode(errors="replace")
            raise AdminError(error.code, payload) from None
        except OSError as error:
            reason = getattr(error, "reason", error)
            raise SystemExit(
                f"portico: cannot reach the control plane at {self.base_url} "
                f"({reason}); is `make up` running?"
            ) from None
        return json.loads(raw) if raw else None

    def group(self, key: str) -> dict[str, Any]:
        """Return the runtime group named `key`, or with that id."""
        query = urllib.parse.urlencode({"filter[name][eq]": key})
        found = self.request("GET", f"/v2/runtime-groups?{query}")["data"]
        if found:
            group: dict[str, Any] = found[0]
            return group
        try:
            by_id: dict[str, Any] = self.request(
                "GET", f"/v2/runtime-groups/{urllib.parse.quote(key, safe='')}"
            )
        except AdminError:
            raise SystemExit(
                f"portico: no runtime group named {key!r}; create it first "
                "(README.md, or `make demo`)"
            ) from None
        return by_id

    def ensure_group(self, name: str, cluster_type: str) -> dict[str, Any]:
        """Return the runtime group called `name`, creating it if needed."""
        query = urllib.parse.urlencode({"filter[name][eq]": name})
        found = self.request("GET", f"/v2/runtime-groups?{query}")["data"]
        if found:
            group: dict[str, Any] = found[0]
            return group
        created: dict[str, Any] = self.request(
            "POST",
            "/v2/runtime-groups",
            {"name": name, "cluster_type": cluster_type},
        )
        return created
