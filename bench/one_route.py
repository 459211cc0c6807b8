"""The yardstick of bench/request_path.py: a Connexion app (AsyncApp, as ours) with one route
and nothing else.

`gunicorn -k uvicorn_worker.UvicornWorker one_route:app` (from bench/) serves it.
"""

from __future__ import annotations

from connexion import AsyncApp

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "one route", "version": "1"},
    "paths": {
        "/hello": {
            "get": {
                "operationId": "one_route.hello",
                "responses": {
                    "200": {
                        "description": "a greeting",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        }
    },
}


def hello():
    """A small JSON answer."""
    return {"hello": "world"}


app = AsyncApp(__name__)
app.add_api(SPEC)
