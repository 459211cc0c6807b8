"""A service account key made by the tests, for signed download URLs (never sent anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SIGNER = "signer@instashare-test.iam.gserviceaccount.com"


def service_account_key(directory: Path) -> tuple[Path, bytes]:
    """A new RSA key in a service account key file as Google hands them out; (the file,
    the public key in PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "instashare-test",
                "private_key_id": "test-key",
                "private_key": pem,
                "client_email": SIGNER,
                "client_id": "1",
                "token_uri": "http://127.0.0.1:9/token",  # never asked: signing is local
            }
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public
