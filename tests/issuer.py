"""A stand-in for Cognito: RSA and EC keys of our own, whose JWKS is served
over real HTTP so the server fetches and verifies exactly as in production."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://cognito-idp.test.amazonaws.com/pool-test"
AUDIENCE = "test-client-id"


class TestIssuer:
    def __init__(self) -> None:
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key(), as_dict=True)
        ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True)
        self.jwks = {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
                {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"},
            ]
        }
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def jwks_url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}/.well-known/jwks.json"

    def serve(self) -> "TestIssuer":
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                body = json.dumps(issuer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def token(
        self,
        sub: str | None = None,
        *,
        key: Any = None,
        kid: str = "rsa-1",
        alg: str = "RS256",
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """An ID token for sub (a fresh id when None); claims override or add."""
        now = int(time.time())
        payload = {
            "sub": sub or f"user-{uuid.uuid4().hex[:12]}",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "token_use": "id",
            "iat": now,
            "exp": now + 600,
            "cognito:username": "tester",
            **claims,
        }
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(payload, key or self.rsa_key, algorithm=alg, headers={"kid": kid})
