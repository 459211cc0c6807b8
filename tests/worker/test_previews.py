"""Previews: the worker makes a small WebP of an image with `ready`, the owner fetches it.

Images are made here with Pillow; the job is the worker's own (`run_jobs` runs it in
process, the first test has a real Celery worker make one).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.helpers import assert_problem, run_jobs, upload, wait_until
from tests.worker.support import LiveWorker, live_worker

ORIENTATION = 0x0112
GPS = 0x8825


def image_bytes(fmt: str, size=(1200, 800), mode="RGB", **save) -> bytes:
    image = Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30))
    image.paste((20, 20, 220) if mode == "RGB" else (20, 20, 220, 255), (0, 0, size[0] // 2, 40))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def photo_turned_sideways() -> bytes:
    """A JPEG stored 1200x800 whose EXIF says "turn 90°", with a location in its metadata."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[GPS] = {2: (52.0, 31.0, 12.0)}
    return image_bytes("JPEG", exif=exif.tobytes())


@pytest.fixture
def live(settings, tmp_path) -> Iterator[LiveWorker]:
    with live_worker(settings, tmp_path, "instashare_previews") as running:
        yield running


def preview(client, account, file_id: str):
    return client.get(f"/api/v1/files/{file_id}/preview", headers=account.headers)


def upload_ready(app, client, account, content: bytes, filename: str) -> str:
    created = upload(client, account, content, filename)
    assert created.status_code == 202, created.text
    assert run_jobs(app) == ["ready"]
    return created.json()["id"]


def test_a_real_worker_makes_a_photos_preview_upright_and_without_its_metadata(live):
    client, alice = live.client, live.account
    created = upload(client, alice, photo_turned_sideways(), "holiday.jpg")
    assert created.status_code == 202, created.text
    file_id = created.json()["id"]
    wait_until(
        lambda: (
            client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()["status"]
            == "ready"
        ),
        timeout=60,
        what="the photo ready",
    )
    got = preview(client, alice, file_id)
    assert got.status_code == 200, got.text
    assert got.headers["Content-Type"] == "image/webp"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in got.headers["Cache-Control"]
    thumbnail = Image.open(io.BytesIO(got.content))
    assert thumbnail.format == "WEBP"
    assert thumbnail.size == (213, 320)  # upright: the 1200x800 photo stands 800x1200
    assert not thumbnail.getexif()  # no location, no camera, nothing the uploader wrote
    assert b"Exif" not in got.content


@pytest.mark.parametrize(
    ("fmt", "name", "mode"),
    [
        ("PNG", "logo.png", "RGBA"),
        ("GIF", "anim.gif", "RGB"),
        ("WEBP", "w.webp", "RGB"),
        ("BMP", "old.bmp", "RGB"),
    ],
)
def test_common_image_types_get_a_preview_at_most_320_px_a_side(
    app, client, alice, fmt, name, mode
):
    file_id = upload_ready(app, client, alice, image_bytes(fmt, mode=mode), name)
    got = preview(client, alice, file_id)
    assert got.status_code == 200, got.text
    thumbnail = Image.open(io.BytesIO(got.content))
    assert thumbnail.size == (320, 213)
    assert thumbnail.mode == ("RGBA" if mode == "RGBA" else "RGB")  # transparency kept


def test_a_client_with_the_preview_is_told_it_has_not_changed(app, client, alice):
    file_id = upload_ready(app, client, alice, image_bytes("PNG"), "a.png")
    first = preview(client, alice, file_id)
    again = client.get(
        f"/api/v1/files/{file_id}/preview",
        headers={**alice.headers, "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"just some text\n" * 100, "notes.txt"),
        # Claims to be a JPEG, is a page: no decoder but the image ones is tried.
        (b"<html><script>alert(1)</script></html>", "evil.jpg"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "x.png"),
        (image_bytes("PNG")[:200], "cut.png"),  # a broken image
        (image_bytes("TIFF"), "scan.png"),  # a decoder we do not use, whatever the name says
    ],
)
def test_files_that_are_not_images_we_decode_are_ready_without_a_preview(
    app, client, alice, content, name
):
    file_id = upload_ready(app, client, alice, content, name)
    body = assert_problem(preview(client, alice, file_id), 404)
    assert body["detail"] == "This file has no preview: only images get one, once they are ready."


@pytest.mark.parametrize("side", [5_000, 20_000])
def test_an_image_of_too_many_pixels_is_not_decoded(app, client, alice, side):
    """A one-colour PNG of 25 M pixels (over our 16 M) or 400 M (over Pillow's own limit)
    is a few hundred KB; decoded, it would take hundreds of MB to GB."""
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, "PNG")
    bomb = out.getvalue()
    assert len(bomb) < 1024 * 1024
    file_id = upload_ready(app, client, alice, bomb, "bomb.png")
    assert_problem(preview(client, alice, file_id), 404)


def test_only_the_owner_gets_a_preview_and_it_goes_with_the_file(app, client, alice, bob):
    file_id = upload_ready(app, client, alice, image_bytes("JPEG"), "me.jpg")
    assert preview(client, alice, file_id).status_code == 200
    assert_problem(preview(client, bob, file_id), 404)
    assert client.delete(f"/api/v1/files/{file_id}", headers=alice.headers).status_code == 204
    assert_problem(preview(client, alice, file_id), 404)
