"""Instashare: the API (spec → handlers → services → models/storage)."""

import warnings

# Connexion imports Starlette's TestClient at startup, which warns on every server start
# unless the test-only transport `httpx2` is installed. Nothing here uses the TestClient.
warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
