"""What a link's page shows in place: thumbnails of its images, players for its audio and
video (their original bytes with Range, never counted), a type icon for everything else;
and what it refuses: files outside the link, players on a link that counts downloads,
thumbnails a page could only load with a password."""

from __future__ import annotations

import io

from PIL import Image

from tests.handlers.test_multi_links import BROWSER, folder, link, path_of, put
from tests.helpers import assert_problem, run_jobs

# Not real MP3 frames: the server never decodes media, it serves the bytes it was given.
SONG = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 400


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def an_album(client, app, account, **options) -> tuple[dict, dict[str, str]]:
    """album/{cover.png, song.mp3, notes.txt}, ready, and a link to the folder."""
    album = folder(client, account, "album")
    ids = {
        "cover": put(client, account, "cover.png", png(), album),
        "song": put(client, account, "song.mp3", SONG, album),
        "notes": put(client, account, "notes.txt", b"track list\n", album),
    }
    assert run_jobs(app) == ["ready"] * 3
    return link(client, account, ("folder", album), **options), ids


def test_the_page_shows_thumbnails_a_player_and_icons(local_client, local_app, alice):
    share, ids = an_album(local_client, local_app, alice)
    base = path_of(share)
    page = local_client.get(base, headers=BROWSER)
    assert page.status_code == 200, page.text
    assert "media-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.text
    token = base.rsplit("/", 1)[1]
    assert f'<img class="thumb" src="{token}/files/{ids["cover"]}/preview"' in html
    song = f"{token}/files/{ids['song']}/media"
    player = f'<audio class="player" controls preload="none" src="{song}"'
    assert player in html
    assert '<span class="type text" aria-hidden="true"></span>' in html  # notes.txt: an icon
    assert html.count("<audio") == 1 and "<video" not in html

    thumb = local_client.get(f"{base}/files/{ids['cover']}/preview")
    assert thumb.status_code == 200, thumb.text
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 240)
    listing = local_client.get(base, headers={"Accept": "application/json"}).json()
    previews = {entry["name"]: entry["preview_url"] for entry in listing["entries"]}
    assert previews["cover.png"].endswith(f"/files/{ids['cover']}/preview")
    assert previews["song.mp3"] is None and previews["notes.txt"] is None


def test_media_plays_from_the_original_bytes_with_ranges_and_counts_nothing(
    local_client, local_app, alice
):
    share, ids = an_album(local_client, local_app, alice)
    media = f"{path_of(share)}/files/{ids['song']}/media"
    whole = local_client.get(media)
    assert whole.status_code == 200, whole.text
    assert whole.content == SONG
    assert whole.headers["Content-Type"] == "audio/mpeg"
    assert whole.headers["Content-Disposition"].startswith("inline;")
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    part = local_client.get(media, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == SONG[100:200]
    listed = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"]
    assert listed[0]["downloads"] == 0  # playing is not downloading


def test_what_does_not_play_or_is_not_in_the_link_is_refused(local_client, local_app, alice, bob):
    share, ids = an_album(local_client, local_app, alice)
    base = path_of(share)
    body = assert_problem(local_client.get(f"{base}/files/{ids['notes']}/media"), 404)
    assert body["detail"] == "This file does not play in a page: download it instead."
    body = assert_problem(local_client.get(f"{base}/files/{ids['notes']}/preview"), 404)
    assert "no preview" in body["detail"]
    # Alice's own image outside the link, and Bob's: as absent as a file that never was.
    outside = put(local_client, alice, "private.png", png())
    theirs = put(local_client, bob, "bob.png", png())
    assert run_jobs(local_app) == ["ready", "ready"]
    for file_id in (outside, theirs):
        assert_problem(local_client.get(f"{base}/files/{file_id}/preview"), 404)
        assert_problem(local_client.get(f"{base}/files/{file_id}/media"), 404)


def test_a_link_that_counts_downloads_has_no_player(local_client, local_app, alice):
    share, ids = an_album(local_client, local_app, alice, max_downloads=2)
    base = path_of(share)
    assert "<audio" not in local_client.get(base, headers=BROWSER).text
    body = assert_problem(local_client.get(f"{base}/files/{ids['song']}/media"), 403)
    assert body["detail"] == (
        "This link counts its downloads, so its files do not play in the page: "
        "download them instead."
    )
    # Its thumbnails are no download: they still show.
    assert local_client.get(f"{base}/files/{ids['cover']}/preview").status_code == 200


def test_a_password_link_shows_nothing_in_place_without_its_password(
    local_client, local_app, alice
):
    share, ids = an_album(local_client, local_app, alice, password="open sesame please")
    base = path_of(share)
    assert_problem(local_client.get(f"{base}/files/{ids['cover']}/preview"), 401)
    assert_problem(local_client.get(f"{base}/files/{ids['song']}/media"), 401)
    with_password = {"X-Share-Password": "open sesame please"}
    got = local_client.get(f"{base}/files/{ids['cover']}/preview", headers=with_password)
    assert got.status_code == 200


def test_a_one_file_link_shows_its_image_and_plays_its_song(local_client, local_app, alice):
    cover = put(local_client, alice, "cover.png", png())
    song = put(local_client, alice, "song.mp3", SONG)
    assert run_jobs(local_app) == ["ready", "ready"]
    image_link = path_of(link(local_client, alice, ("file", cover)))
    page = local_client.get(image_link, headers=BROWSER).text
    assert '<img class="preview" src="' in page
    assert local_client.get(f"{image_link}/preview").status_code == 200
    assert_problem(local_client.get(f"{image_link}/media"), 404)
    song_link = path_of(link(local_client, alice, ("file", song)))
    assert "<audio" in local_client.get(song_link, headers=BROWSER).text
    assert local_client.get(f"{song_link}/media").content == SONG
