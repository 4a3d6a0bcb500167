"""ECDSA signature verification on NIST P-256 with SHA-256 (the JWS algorithm ES256).

Written by hand because this sample runs on the Python standard library alone: hashlib has
SHA-256, but nothing in the standard library verifies an ECDSA signature, and a real app would
use a JWT library (PyJWT with cryptography) instead. Only verification is here: it handles
public values only (the token, the JWKS), so it needs no constant-time arithmetic. Points are
kept in Jacobian coordinates (X, Y, Z) standing for (X/Z^2, Y/Z^3), so a scalar multiplication
needs one modular inverse at the end instead of one per step.
"""

import hashlib

# The curve y^2 = x^3 + a*x + b over GF(p), base point G of prime order n (SEC 2, FIPS 186-4 D.1.2.3).
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_INFINITY = (1, 1, 0)


def _double(point):
    x, y, z = point
    if z == 0 or y == 0:
        return _INFINITY
    # dbl-2001-b, which uses a = -3.
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def _add(p1, p2):
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    if u1 == u2:
        # The same x: the same point (double it) or its negation (the sum is infinity).
        return _double(p1) if s1 == s2 else _INFINITY
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    z3 = h * z1 * z2 % P
    return (x3, y3, z3)


def _affine_x(point):
    x, _, z = point
    z_inverse = pow(z, -1, P)
    return x * z_inverse * z_inverse % P


def _twin_multiply(u1, q1, u2, q2):
    """u1*q1 + u2*q2 with one shared chain of doublings (Shamir's trick)."""
    both = _add(q1, q2)
    result = _INFINITY
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        result = _double(result)
        b1 = (u1 >> bit) & 1
        b2 = (u2 >> bit) & 1
        if b1 and b2:
            result = _add(result, both)
        elif b1:
            result = _add(result, q1)
        elif b2:
            result = _add(result, q2)
    return result


def is_on_curve(x, y):
    """True when (x, y) is a point of the curve (P-256 has cofactor 1, so also of the group of G)."""
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def verify(public_x, public_y, message, signature):
    """True when signature (the 64 bytes r || s of a JWS) signs message (bytes) for the key (x, y)."""
    if len(signature) != 64 or not is_on_curve(public_x, public_y):
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s < N):
        return False
    # SHA-256 gives 256 bits and n has 256 bits: the hash is used whole (no truncation).
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    point = _twin_multiply(e * w % N, (GX, GY, 1), r * w % N, (public_x, public_y, 1))
    if point[2] == 0:
        return False
    return _affine_x(point) % N == r
