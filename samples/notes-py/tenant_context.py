"""The gateway's tenant-context token (X-Tenant-Context), verified as docs/tenant-context.md says.

The rules, in order: one header; a compact JWS whose header has alg ES256 (nothing else), typ
tenant-context+jwt and a kid naming a key of the JWKS; a signature that verifies with that key;
exp not passed and nbf reached (5 s of clock skew either way); the app's name in aud; every claim
present. A dedicated instance then takes only its own tenant (tenant_id) on a token minted for it
(its tenant id in aud); a shared instance refuses silo tenants.
"""

import base64
import binascii
import json
import re
import threading
import uuid

import p256

HEADER = "X-Tenant-Context"
TYPE = "tenant-context+jwt"
ALGORITHM = "ES256"
CLOCK_SKEW = 5
ISOLATION_MODELS = ("pool", "bridge", "silo")

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_STRING_CLAIMS = ("tenant_id", "slug", "tier", "isolation", "sub", "jti")
_TIME_CLAIMS = ("iat", "nbf", "exp")


class Verdict:
    """The outcome: its name (the test vectors' word), the HTTP status that refuses it, and a reason."""

    __slots__ = ("name", "status", "reason", "context")

    def __init__(self, name, status, reason, context=None):
        self.name = name
        self.status = status
        self.reason = reason
        self.context = context

    @property
    def valid(self):
        return self.context is not None


class TenantContext:
    """The verified claims an app works with."""

    __slots__ = ("tenant_id", "slug", "tier", "isolation", "subject", "roles", "expires")

    def __init__(self, claims):
        self.tenant_id = str(uuid.UUID(claims["tenant_id"]))
        self.slug = claims["slug"]
        self.tier = claims["tier"]
        self.isolation = claims["isolation"]
        self.subject = claims["sub"]
        self.roles = tuple(claims["roles"])
        self.expires = claims["exp"]


def _refused(name, reason, status=401):
    return Verdict(name, status, reason)


def parse_jwks(text):
    """The public EC P-256 keys of a JWKS, by kid; ValueError saying what is wrong."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError("is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError("is not a JSON Web Key Set with keys")
    result = {}
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") != "EC" or key.get("crv") != "P-256":
            raise ValueError("holds a key that is not EC P-256")
        if "d" in key:
            raise ValueError("holds a private key; an app gets public keys only")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("holds a key without a kid")
        try:
            x = _coordinate(key.get("x"))
            y = _coordinate(key.get("y"))
        except ValueError:
            raise ValueError(f"key {kid}: x and y are 32-byte base64url values") from None
        if not p256.is_on_curve(x, y):
            raise ValueError(f"key {kid} is not a point of P-256")
        result[kid] = (x, y)
    return result


def _coordinate(value):
    raw = _decode(value)
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return int.from_bytes(raw, "big")


def _decode(part):
    if not isinstance(part, str) or not _BASE64URL.fullmatch(part) or len(part) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def _json_object(part):
    value = json.loads(_decode(part), parse_constant=_no_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Verifier:
    """Verifies tokens for one app instance; caches the verified ones by their exact text until they expire."""

    MAX_CACHED = 10_000

    def __init__(self, keys, audience, instance_tenant=None):
        self._keys = keys
        self._audience = audience
        self._instance_tenant = str(uuid.UUID(instance_tenant)) if instance_tenant else None
        self._cache = {}
        self._lock = threading.Lock()

    def verify(self, token, now):
        """The verdict on token (a str, or None when the request had no single header) at now (unix seconds)."""
        if not token:
            return _refused("missing", "No tenant context: this app serves requests that come through the Tenantry gateway only.")
        with self._lock:
            context = self._cache.get(token)
        if context is not None:
            if now <= context.expires + CLOCK_SKEW:
                return Verdict("valid", 200, None, context)
            with self._lock:
                self._cache.pop(token, None)
            return _refused("expired", "The tenant context has expired.")
        verdict = self._verify(token, now)
        if verdict.valid:
            self._remember(token, verdict.context, now)
        return verdict

    def _remember(self, token, context, now):
        with self._lock:
            if len(self._cache) >= self.MAX_CACHED:
                for stale in [t for t, c in self._cache.items() if now > c.expires + CLOCK_SKEW]:
                    del self._cache[stale]
                if len(self._cache) >= self.MAX_CACHED:
                    self._cache.clear()
            self._cache[token] = context

    def _verify(self, token, now):
        parts = token.split(".")
        if len(parts) != 3:
            return _refused("malformed", "The tenant context is not a compact JWS.")
        try:
            header = _json_object(parts[0])
        except ValueError:
            return _refused("malformed", "The tenant context's header is not base64url JSON.")
        if header.get("alg") != ALGORITHM:
            return _refused("bad-signature", "The tenant context is not signed with ES256.")
        if "crit" in header:
            return _refused("malformed", "The tenant context names critical header extensions this app does not know.")
        key = self._keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
        if key is None:
            return _refused("bad-signature", "The tenant context is signed with a key the gateway does not publish.")
        try:
            signature = _decode(parts[2])
        except ValueError:
            return _refused("bad-signature", "The tenant context's signature is not base64url.")
        if not p256.verify(key[0], key[1], (parts[0] + "." + parts[1]).encode("ascii"), signature):
            return _refused("bad-signature", "The tenant context's signature does not verify.")
        if header.get("typ") != TYPE:
            return _refused("malformed", f"The tenant context's typ is not {TYPE}.")
        try:
            claims = _json_object(parts[1])
        except ValueError:
            return _refused("malformed", "The tenant context's claims are not base64url JSON.")

        for name in _TIME_CLAIMS:
            if not _is_number(claims.get(name)):
                return _refused("malformed", f"The tenant context lacks a numeric {name}.")
        if now > claims["exp"] + CLOCK_SKEW:
            return _refused("expired", "The tenant context has expired.")
        if now < claims["nbf"] - CLOCK_SKEW:
            return _refused("expired", "The tenant context is not valid yet.")

        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            return _refused("malformed", "The tenant context lacks an aud.")
        if self._audience not in audiences:
            return _refused("wrong-audience", "The tenant context is for another app.")

        for name in _STRING_CLAIMS:
            if not isinstance(claims.get(name), str):
                return _refused("malformed", f"The tenant context lacks the claim {name}.")
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return _refused("malformed", "The tenant context lacks the claim roles.")
        if not claims["slug"] or claims["isolation"] not in ISOLATION_MODELS:
            return _refused("malformed", "The tenant context's slug or isolation is not valid.")
        try:
            context = TenantContext(claims)
        except ValueError:
            return _refused("malformed", "The tenant context's tenant_id is not a UUID.")

        if self._instance_tenant is not None:
            if context.tenant_id != self._instance_tenant:
                return _refused("wrong-tenant", "This is a dedicated instance of another tenant.", 403)
            if not any(a.lower() == self._instance_tenant for a in audiences):
                # The right tenant, but a token minted for the shared instances: not for this one.
                return _refused("wrong-audience", "The tenant context was not issued for this dedicated instance.", 403)
        elif context.isolation == "silo":
            return _refused("wrong-tenant", "This shared instance does not serve dedicated tenants.", 403)
        return Verdict("valid", 200, None, context)
