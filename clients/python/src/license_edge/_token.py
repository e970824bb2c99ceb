"""Token verification with PyJWT, to the same rules as the token crate (license-edge-token):
EdDSA only, no ``crit``, ``typ`` JWT if present, the ``kid`` from the key set, the signature
before the claims, then the times (with the offline grace when asked, never longer), the
issuer, the audience and the machine."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Mapping, Optional

import jwt

from .errors import TokenRefused

REQUIRED = ("iss", "sub", "aud", "iat", "nbf", "exp", "sid")

Keys = Dict[str, Any]


def keys_from_jwks(text: str) -> Keys:
    """The Ed25519 keys of a JWKS document, by ``kid``."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise TokenRefused("the key set is not JSON", "malformed") from e
    keys: Keys = {}
    for jwk in doc.get("keys", []) if isinstance(doc, dict) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str):
            continue
        try:
            keys[kid] = jwt.PyJWK.from_dict(jwk, algorithm="EdDSA").key
        except jwt.PyJWTError:
            continue
    return keys


def machine_id_hash(machine_id: str) -> str:
    return hashlib.sha256(machine_id.encode()).hexdigest()


def verify(token: str, keys: Keys, *, issuer: str, audience: str, leeway: int,
           machine_id: Optional[str], now: int, offline_grace: bool) -> Dict[str, Any]:
    """The verified claims of ``token``, or :class:`TokenRefused` with the crate's code."""
    if len(token) > 4096:
        raise TokenRefused("token too large", "token_too_large")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise TokenRefused("malformed token", "malformed") from e
    if header.get("alg") != "EdDSA":
        raise TokenRefused("only EdDSA", "unsupported_algorithm")
    if "crit" in header:
        raise TokenRefused("crit header", "unsupported_critical_header")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() != "jwt"):
        raise TokenRefused("typ is not JWT", "unsupported_type")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise TokenRefused("unknown kid", "unknown_key")
    try:
        claims = jwt.decode(
            token, keys[kid], algorithms=["EdDSA"],
            options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False, "verify_aud": False, "verify_iss": False})
    except jwt.InvalidSignatureError as e:
        raise TokenRefused("bad signature", "bad_signature") from e
    except jwt.PyJWTError as e:
        raise TokenRefused(f"malformed token: {e}", "malformed") from e
    if not isinstance(claims, dict):
        raise TokenRefused("claims are not an object", "malformed")
    for name in REQUIRED:
        if name not in claims:
            raise TokenRefused(f"no {name}", "missing_claim")
    for name in ("iat", "nbf", "exp"):
        if not isinstance(claims[name], int) or isinstance(claims[name], bool):
            raise TokenRefused(f"{name} is not an integer", "invalid_claim")
    if "jti" in claims and claims["jti"] != claims["sid"]:
        raise TokenRefused("jti differs from sid", "invalid_claim")
    check_claims(claims, issuer=issuer, audience=audience, leeway=leeway,
                 machine_id=machine_id, now=now, offline_grace=offline_grace)
    return claims


def check_claims(claims: Mapping[str, Any], *, issuer: str, audience: str, leeway: int,
                 machine_id: Optional[str], now: int, offline_grace: bool) -> None:
    """The checks that depend on the time, the policy and the machine (the crate's
    ``recheck``)."""
    if now >= lapses_at(claims, leeway, offline_grace):
        raise TokenRefused("expired", "expired")
    if now + leeway < claims["nbf"]:
        raise TokenRefused("not yet valid", "not_yet_valid")
    if claims["iat"] > now + leeway:
        raise TokenRefused("issued in the future", "issued_in_future")
    if claims["iss"] != issuer:
        raise TokenRefused("wrong issuer", "wrong_issuer")
    if claims["aud"] != audience:
        raise TokenRefused("wrong audience", "wrong_audience")
    if machine_id is not None and claims.get("mid") != machine_id_hash(machine_id):
        raise TokenRefused("another machine's token", "machine_mismatch")


def lapses_at(claims: Mapping[str, Any], leeway: int, offline_grace: bool) -> int:
    """The first second the token is refused: ``exp`` plus the leeway, or offline plus the
    larger of the leeway and the token's ``offline_grace`` (the server's; never longer)."""
    grace = claims.get("offline_grace")
    after = leeway
    if offline_grace and isinstance(grace, int) and not isinstance(grace, bool):
        after = max(leeway, grace)
    return int(claims["exp"]) + after
