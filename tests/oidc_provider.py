"""A real OpenID provider for the single sign-on tests: `oidc-provider-mock` (PyPI), a
provider server made for tests, on a loopback port in a thread. It speaks the protocol over
HTTP (discovery, its authorization form, the token endpoint, signed ID tokens, JWKS); the
tests say which claims a person has there (`person`), then authorize as them at its form
(`authorize`) or refuse (`deny`), as a person at the provider would."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import httpx

CLIENT_ID = "instashare-tests"
CLIENT_SECRET = "not-a-secret-only-for-tests"


class Provider:
    def __init__(self, url: str):
        self.url = url  # its issuer

    def person(self, sub: str, **claims: object) -> None:
        """The claims the provider holds (and puts in ID tokens) for the subject `sub`."""
        response = httpx.put(f"{self.url}/users/{quote(sub, safe='')}", json=claims)
        assert response.status_code == 204, response.text

    def authorize(self, location: str, sub: str) -> str:
        """Sign in at the provider's form as `sub` (at `location`, where the app sent the
        browser); where the provider sends the browser back."""
        return self._submit(location, {"sub": sub})

    def deny(self, location: str) -> str:
        """Refuse the app at the provider's form; where the provider sends the browser."""
        return self._submit(location, {"action": "deny"})

    def _submit(self, location: str, form: dict[str, str]) -> str:
        assert location.startswith(self.url), location
        response = httpx.post(location, data=form)
        assert response.status_code == 302, response.text
        return response.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@contextlib.contextmanager
def running() -> Iterator[Provider]:
    """The provider on a free loopback port, until the context ends."""
    # Its authorization server (authlib's) refuses plain HTTP unless told: loopback only.
    saved = os.environ.get("AUTHLIB_INSECURE_TRANSPORT")
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    import authlib.deprecate  # noqa: F401 - adds authlib's own "always" filter first

    with warnings.catch_warnings():
        # The mock imports authlib.jose, which authlib now warns of.
        warnings.simplefilter("ignore")
        import oidc_provider_mock
    try:
        with oidc_provider_mock.run_server_in_thread() as server:
            yield Provider(f"http://localhost:{server.server_port}")
    finally:
        if saved is None:
            os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["AUTHLIB_INSECURE_TRANSPORT"] = saved
