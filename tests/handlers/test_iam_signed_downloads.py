"""Signed downloads signed by IAM signBlob (Cloud Run: the service's own identity, no key
file): INSTASHARE_GCS_SIGNING_ACCOUNT names the account, google-auth asks IAM to sign."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import google.auth
import google.auth.iam
import pytest
from google.auth import credentials as gcredentials
from google.auth import crypt

from app.settings import SettingsError
from app.storage import download_signer
from tests.handlers.test_signed_downloads import CONTENT, followed
from tests.helpers import free_port, make_settings, upload_ready
from tests.signing import SIGNER, service_account_key

TOKEN = "test-access-token"


class FixedToken(gcredentials.Credentials):
    """The runtime's default credentials, as on Cloud Run, with a token fixed by the test."""

    def refresh(self, request) -> None:
        self.token = TOKEN


@pytest.fixture
def fake_iam(tmp_path, monkeypatch):
    """A stand-in for Google's IAM Credentials API, which cannot run here (no Google Cloud
    in tests): POST /v1/projects/-/serviceAccounts/{email}:signBlob signs the payload with
    a key the test made (RS256, as IAM does) and answers {keyId, signedBlob}."""
    key_file, public_pem = service_account_key(tmp_path)
    signer = crypt.RSASigner.from_service_account_info(json.loads(key_file.read_text()))
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization", "")))
            signed = signer.sign(base64.b64decode(body["payload"]))
            answer = json.dumps(
                {"keyId": "test-key", "signedBlob": base64.b64encode(signed).decode()}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    # google-auth's endpoint, pointed at the stand-in; its default credentials, the fixed token.
    monkeypatch.setattr(
        google.auth.iam,
        "_IAM_SIGN_ENDPOINT",
        f"http://127.0.0.1:{port}/v1/projects/-/serviceAccounts/{{}}:signBlob",
    )
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (FixedToken(), None))
    yield public_pem, seen
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def iam_client(make_app, tmp_path_factory, database_url, gcs_emulator, fake_iam):
    settings = make_settings(
        tmp_path_factory.mktemp("iam"), database_url, "gcs", gcs_signing_account=SIGNER
    )
    app = make_app(settings)
    with app.test_client(follow_redirects=False) as client:
        yield app, client


def test_owner_download_redirects_to_a_url_signed_by_iam(iam_client, fake_iam, alice):
    app, client = iam_client
    public_pem, seen = fake_iam
    ready = upload_ready(client, app, alice, CONTENT, "report.txt")
    for round in (1, 2):
        answer = client.get(f"/api/v1/files/{ready}/content", headers=alice.headers)
        assert answer.status_code == 302, answer.text
        followed(answer.headers["Location"], public_pem)
        # One signBlob per URL, as the signing account, with the runtime's bearer token.
        assert (
            seen
            == [(f"/v1/projects/-/serviceAccounts/{SIGNER}:signBlob", f"Bearer {TOKEN}")] * round
        )


def test_iam_out_of_reach_is_a_503_sentence_not_a_crash(iam_client, fake_iam, alice, monkeypatch):
    app, client = iam_client
    ready = upload_ready(client, app, alice, CONTENT, "report.txt")
    monkeypatch.setattr(  # nothing listens there
        google.auth.iam,
        "_IAM_SIGN_ENDPOINT",
        f"http://127.0.0.1:{free_port()}/v1/projects/-/serviceAccounts/{{}}:signBlob",
    )
    answer = client.get(f"/api/v1/files/{ready}/content", headers=alice.headers)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "storage" in answer.json()["detail"].lower()


def test_check_names_the_iam_signer_and_a_key_with_an_account_is_refused(
    tmp_path, database_url, redis_url
):
    settings = make_settings(tmp_path, database_url, "gcs", gcs_signing_account=SIGNER)
    assert download_signer(settings) == f"IAM signBlob as {SIGNER} (runtime credentials)"
    key_file, _ = service_account_key(tmp_path)
    with pytest.raises(SettingsError, match="both set"):
        make_settings(
            tmp_path, database_url, "gcs", gcs_signing_account=SIGNER, gcs_signing_key=str(key_file)
        )
