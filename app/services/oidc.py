"""The OpenID provider, as this server (a relying party) speaks to it, through authlib.

Authorization code flow with PKCE (S256), a state and a nonce. The provider's endpoints
come from its discovery document (`<issuer>/.well-known/openid-configuration`), read once
per process; its signing keys (JWKS) likewise, and again when an ID token names a key not
among them (the provider rotated its keys). authlib verifies the ID token: its signature
against those keys, its issuer, its audience (our client id), its nonce and its expiry.
Every call here goes over the network: callers run it on a worker thread, holding no
database connection. A failure is a domain error with a sentence; the library's own
message goes to the log only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from joserfc.errors import JoseError

from app.errors import BadGateway, Unauthorized
from app.settings import Settings

log = logging.getLogger(__name__)

# How long one request to the provider may take.
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what the callback needs to finish the sign-in."""

    url: str
    state: str
    nonce: str
    code_verifier: str


class _Provider(OAuth2Mixin, OpenIDMixin, BaseApp):
    """authlib's framework-free client app: its discovery, PKCE, token and ID token code."""

    client_cls = OAuth2Session


@functools.cache
def _provider(issuer: str, client_id: str, client_secret: str, scopes: str) -> _Provider:
    return _Provider(
        framework=None,  # used only to store refreshed tokens, which this never asks for
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        client_kwargs={
            "scope": scopes,
            "code_challenge_method": "S256",
            "default_timeout": TIMEOUT_SECONDS,
        },
    )


def _for(settings: Settings) -> _Provider:
    provider = _provider(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret,
        settings.oidc_scopes,
    )
    metadata = provider.load_server_metadata()
    # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was asked of.
    if str(metadata.get("issuer", "")).rstrip("/") != settings.oidc_issuer.rstrip("/"):
        log.error("the provider's discovery document names issuer %r", metadata.get("issuer"))
        raise BadGateway(
            f"{settings.oidc_label} is not set up the way this server expects; tell the "
            "administrator (the issuer does not match)."
        )
    return provider


def discover(settings: Settings) -> None:
    """Read the provider's discovery document (`instashare-server check`); raises BadGateway."""
    try:
        _for(settings)
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        raise _unreachable(settings, exc) from None


def _unreachable(settings: Settings, exc: Exception) -> BadGateway:
    log.warning("the OpenID provider failed: %s", exc)
    return BadGateway(f"{settings.oidc_label} did not answer as expected; try again in a moment.")


def authorization(settings: Settings, redirect_uri: str) -> Authorization:
    """A new sign-in at the provider, coming back to `redirect_uri`."""
    try:
        made = _for(settings).create_authorization_url(redirect_uri)
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        raise _unreachable(settings, exc) from None
    return Authorization(made["url"], made["state"], made["nonce"], made["code_verifier"])


def verified_claims(
    settings: Settings, *, redirect_uri: str, code: str, code_verifier: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims for the authorization `code`, once verified (see the module)."""
    try:
        provider = _for(settings)
        token = provider.fetch_access_token(
            redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
        )
        claims = provider.parse_id_token(token, nonce=nonce)
    except (AuthlibBaseError, JoseError, ValueError) as exc:
        # A code used twice or made for another sign-in, a token signed with another key,
        # for another client, with another nonce, expired: all the same to the person.
        log.warning("a sign-in at the OpenID provider was refused: %r", exc)
        raise Unauthorized(
            f"The sign-in at {settings.oidc_label} could not be verified; sign in again."
        ) from None
    except (requests.RequestException, KeyError, RuntimeError) as exc:
        raise _unreachable(settings, exc) from None
    if claims is None:
        raise _unreachable(settings, ValueError("the token response holds no ID token"))
    return dict(claims)
