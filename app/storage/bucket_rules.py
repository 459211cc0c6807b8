"""The bucket settings the GCS backend relies on: `instashare-server check` prints them and
`instashare-server bucket-rules` writes them out for `gcloud storage buckets update`."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from app.settings import Settings

DAY = 86400
# GCS keeps an unfinished resumable session for a week: a direct upload's client may
# finish one (its object lands in `tmp/`) after the sweep removed the upload.
SESSION_DAYS = 7


def origins(settings: Settings) -> list[str]:
    """The pages that upload straight to the bucket: the web app's own, and CORS ones."""
    found = list(settings.cors_origins)
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        found.insert(0, f"{parts.scheme}://{parts.netloc}")
    return sorted(set(found)) or ["https://YOUR-INSTASHARE-HOST"]


def cors(settings: Settings) -> list[dict]:
    """The bucket's CORS rules: browsers PUT to upload sessions (whose Origin GCS takes from
    the request that opened them) and read a session's `Range` after a break; signed
    download URLs are followed by navigations, which need none."""
    return [
        {
            "origin": origins(settings),
            "method": ["PUT", "GET", "HEAD"],
            "responseHeader": ["Content-Type", "Content-Range", "Range", "X-GUploader-UploadID"],
            "maxAgeSeconds": 3600,
        }
    ]


def lifecycle(settings: Settings) -> dict:
    """Delete what lies under `tmp/` past the longest an upload may be open, or a session may
    live: what the sweeps would remove, when no worker ran them."""
    days = max(SESSION_DAYS, math.ceil(settings.upload_expiry_seconds / DAY)) + 1
    return {
        "rule": [
            {"action": {"type": "Delete"}, "condition": {"age": days, "matchesPrefix": ["tmp/"]}}
        ]
    }


RULES = {"cors": cors, "lifecycle": lifecycle}
