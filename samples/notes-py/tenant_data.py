"""Where a tenant's data lives, as the instance's environment and the data service say.

A dedicated instance serves one tenant and has its database in TENANTRY_DATABASE. A shared
instance has the pool database there, for pool tenants; a bridge tenant has its own database,
which the instance asks for at TENANTRY_DATA_URL with the request's own tenant-context token
(so the data service knows the tenant and that the gateway sent it) and remembers for 2 s.
"""

import json
import threading
import time
import urllib.error
import urllib.request

import store

CACHE_SECONDS = 2
MAX_CACHED = 10_000
LOOKUP_TIMEOUT_SECONDS = 5


class Unavailable(Exception):
    """The tenant's data cannot be reached now: status and problem fields for the answer."""

    def __init__(self, status, kind, title, detail, retry_after=None):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.retry_after = retry_after


class Locator:
    def __init__(self, database_path, data_url, dedicated):
        self._database = database_path
        self._data_url = data_url
        self._dedicated = dedicated
        self._cache = {}
        self._lock = threading.Lock()
        # No proxy from the environment: the data service is Tenantry's own, on this machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def database(self, context, token):
        """The database (a SQLite file's path or a pg.Target) of the tenant of context (token: the request's X-Tenant-Context)."""
        if self._dedicated or context.isolation != "bridge":
            return self._database
        if not self._data_url:
            raise Unavailable(500, "tenant-data-unavailable", "The tenant's data location is unknown.",
                              "This instance has no TENANTRY_DATA_URL to look up a bridge tenant's database.")
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(context.tenant_id)
        if cached is not None and now < cached[1]:
            return cached[0]
        path = self._lookup(token)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                for tenant in [t for t, (_, until) in self._cache.items() if now >= until]:
                    del self._cache[tenant]
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[context.tenant_id] = (path, now + CACHE_SECONDS)
        return path

    def _lookup(self, token):
        request = urllib.request.Request(self._data_url, headers={"X-Tenant-Context": token, "Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=LOOKUP_TIMEOUT_SECONDS) as response:
                raw = response.read(64 * 1024 + 1)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 401:
                raise Unavailable(401, "tenant-context-missing", "No tenant context.",
                                  "Tenantry refused this request's tenant context.") from None
            if e.code == 403:
                raise Unavailable(403, "tenant-mismatch", "Wrong tenant.",
                                  "This instance does not serve this tenant.") from None
            if e.code == 503:
                raise Unavailable(503, "tenant-not-active", "The tenant is not active.",
                                  "The tenant's data is not available now; try again shortly.", retry_after=1) from None
            raise Unavailable(502, "tenant-data-unavailable", "The tenant's data location is unavailable.",
                              f"The data service answered {e.code}.") from None
        except (urllib.error.URLError, OSError):
            raise Unavailable(503, "tenant-data-unavailable", "The tenant's data location is unavailable.",
                              "The data service did not answer; try again shortly.", retry_after=1) from None
        try:
            answer = json.loads(raw) if len(raw) <= 64 * 1024 else None
            return store.database(answer["database"])
        except store.UnsupportedDatabase:
            raise Unavailable(500, "database-unsupported", "The tenant's database is not supported.",
                              "This sample supports SQLite files and PostgreSQL over TCP.") from None
        except (ValueError, TypeError, KeyError):
            raise Unavailable(502, "tenant-data-unavailable", "The tenant's data location is unavailable.",
                              "The data service's answer is not {\"database\": …}.") from None
