"""A token server for the CNCF distribution registry's `auth: token`, for wharf's tests.

Written and started by `cargo xtask backends up` with the moto venv's Python (moto pulls in
`cryptography`). It follows the Docker token authentication spec as distribution 2.8 checks
it: `GET /token?service=…&scope=…` with optional Basic credentials answers
`{"token", "access_token", "expires_in", "issued_at"}`, the token an RS256 JWT whose header
carries the signing certificate in `x5c` (the registry's `rootcertbundle` is that
self-signed certificate) and whose claims are iss, sub, aud (= service), exp, nbf, iat, jti
and access[{type, name, actions}].

The test user gets every action it asks for; an anonymous client gets a token with no
access (the registry then answers 401 insufficient_scope); wrong credentials get 401.
`GET /stats` counts issued and refused tokens, and the tokens issued per repository named
in their scopes (so a test can count the tokens of its own repository); `GET /health` is
the readiness probe.
Neither tokens nor passwords are ever logged.
"""

import argparse
import base64
import datetime
import hmac
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ACTIONS = {"pull", "push", "delete", "*"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create_key(directory: str, issuer: str):
    """The signing key and its self-signed certificate, created once and kept."""
    key_path = os.path.join(directory, "key.pem")
    cert_path = os.path.join(directory, "cert.pem")
    if os.path.exists(key_path) and os.path.exists(cert_path):
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        return key, cert
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(cert_path + ".tmp", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(key_path + ".tmp", key_path)
    os.replace(cert_path + ".tmp", cert_path)
    return key, cert


def parse_scope(item: str):
    """`repository:name:pull,push` → access entry; names may contain ':' (host:port/…)."""
    parts = item.split(":")
    if len(parts) < 3:
        return None
    kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
    granted = sorted(set(actions.split(",")) & ACTIONS)
    return {"type": kind, "name": name, "actions": granted}


class Server:
    def __init__(self, args):
        self.user = args.user
        with open(args.password_file) as f:
            self.password = f.read().strip()
        self.issuer = args.issuer
        self.expires_in = args.expires_in
        self.key, self.cert = load_or_create_key(args.dir, args.issuer)
        self.x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.lock = threading.Lock()
        self.issued = 0
        self.refused = 0
        self.by_repository = {}

    def token(self, subject: str, service: str, scopes):
        now = int(time.time())
        access = []
        if subject:
            for scope in scopes:
                for item in scope.split(" "):
                    entry = parse_scope(item)
                    if entry is not None:
                        access.append(entry)
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        with self.lock:
            self.issued += 1
            names = set()
            for scope in scopes:
                for item in scope.split(" "):
                    entry = parse_scope(item)
                    if entry is not None and entry["type"] == "repository":
                        names.add(entry["name"])
            for name in names:
                self.by_repository[name] = self.by_repository.get(name, 0) + 1
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        return {
            "token": signing_input + "." + b64url(signature),
            "access_token": signing_input + "." + b64url(signature),
            "expires_in": self.expires_in,
            "issued_at": issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def make_handler(server: Server):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, body, extra=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/health":
                return self.reply(200, {"ok": True})
            if url.path == "/stats":
                with server.lock:
                    return self.reply(
                        200,
                        {
                            "issued": server.issued,
                            "refused": server.refused,
                            "repositories": dict(server.by_repository),
                        },
                    )
            if url.path != "/token":
                return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            query = parse_qs(url.query)
            service = (query.get("service") or [""])[0]
            subject = ""
            auth = self.headers.get("Authorization")
            if auth is not None:
                user, password = "", ""
                if auth.startswith("Basic "):
                    try:
                        decoded = base64.b64decode(auth[6:]).decode()
                        user, _, password = decoded.partition(":")
                    except Exception:  # noqa: BLE001 - any garbage is a refusal
                        pass
                if user != server.user or not hmac.compare_digest(password, server.password):
                    with server.lock:
                        server.refused += 1
                    self.log_message("refused user %r", user)
                    return self.reply(
                        401,
                        {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                        [("WWW-Authenticate", 'Basic realm="wharf-test-token-server"')],
                    )
                subject = user
            self.log_message("token for %r: %s", subject, query.get("scope", []))
            return self.reply(200, server.token(subject, service, query.get("scope", [])))

        def log_message(self, fmt, *args):
            sys.stderr.write("token-server: " + (fmt % args) + "\n")
            sys.stderr.flush()

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="where key.pem and cert.pem live")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--expires-in", type=int, default=300)
    args = parser.parse_args()
    server = Server(args)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(server))
    httpd.daemon_threads = True
    sys.stderr.write(f"token-server: listening on 127.0.0.1:{args.port}\n")
    sys.stderr.flush()
    httpd.serve_forever()


if __name__ == "__main__":
    main()
