"""License tokens with a standard JOSE library (PyJWT + cryptography), outside Rust.

    jose_interop.py verify JWKS_URL TOKEN AUDIENCE ISSUER   -> prints the verified claims as JSON
    jose_interop.py sign SEED_HEX KID CLAIMS_JSON            -> prints an EdDSA token

`verify` uses only the server's /.well-known/jwks.json, as any vendor service would.
"""

import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def verify(jwks_url: str, token: str, audience: str, issuer: str) -> None:
    client = jwt.PyJWKClient(jwks_url)
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "nbf", "sub", "aud", "iss"]},
    )
    print(json.dumps(claims))


def sign(seed_hex: str, kid: str, claims_json: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    token = jwt.encode(json.loads(claims_json), key, algorithm="EdDSA", headers={"kid": kid})
    print(token)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"verify": verify, "sign": sign}[command](*args)
