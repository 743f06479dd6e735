"""POST /images and friends: content-addressed uploads, thumbnails, and a corpus of bad
uploads that must each get a clear 4xx and leave everything else as it was."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from server_support import API, BAD_UPLOADS, harness, jpeg_bytes, scene_png


def _files_on_disk(root):
    """Every file under the data directory except SQLite's journal files."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    )


def test_upload_returns_metadata_and_the_same_content_gets_the_same_id(tmp_path):
    with harness(tmp_path) as h:
        first = h.client.post(f"{API}/images", files=[("files", ("a.png", scene_png(1), "image/png"))])
        again = h.client.post(f"{API}/images", files=[("files", ("renamed.png", scene_png(1), "image/png"))])
    assert first.status_code == again.status_code == 200
    entry, repeat = first.json()["files"][0], again.json()["files"][0]
    assert entry["status"] == "created" and repeat["status"] == "exists"
    image = entry["image"]
    assert image["id"] == repeat["image"]["id"] == image["sha256"] and len(image["id"]) == 64
    assert (image["width"], image["height"], image["format"]) == (160, 120, "PNG")
    assert image["bytes"] == len(scene_png(1))
    assert image["thumbnail_url"] == f"{API}/images/{image['id']}/thumbnail"


def test_image_info_original_file_and_thumbnail_are_served(tmp_path):
    big = io.BytesIO()
    Image.new("RGB", (1200, 600), (10, 200, 30)).save(big, "JPEG")
    with harness(tmp_path) as h:
        uploaded = h.client.post(
            f"{API}/images", files=[("files", ("wide.jpg", big.getvalue(), "image/jpeg"))]
        )
        image = uploaded.json()["files"][0]["image"]
        info = h.client.get(f"{API}/images/{image['id']}")
        original = h.client.get(image["file_url"])
        thumbnail = h.client.get(image["thumbnail_url"])
        listed = h.client.get(f"{API}/images", params={"limit": 1}).json()
    assert info.json() == image
    assert original.content == big.getvalue() and original.headers["content-type"] == "image/jpeg"
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (256, 128)
    assert listed["total"] == 1 and listed["items"][0]["id"] == image["id"]


def test_exif_orientation_is_applied_to_the_reported_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), (200, 10, 10)).save(buffer, "JPEG", exif=exif.tobytes())
    with harness(tmp_path) as h:
        image = h.client.post(f"{API}/images", files=[("files", ("r.jpg", buffer.getvalue(), "image/jpeg"))])
    assert (image.json()["files"][0]["image"]["width"], image.json()["files"][0]["image"]["height"]) == (
        100,
        200,
    )


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gets_a_clear_4xx_and_disturbs_nothing(tmp_path, case):
    filename, content, status, code = BAD_UPLOADS[case]
    with harness(tmp_path) as h:
        good = h.upload(7)[0]
        before = _files_on_disk(tmp_path)
        response = h.client.post(f"{API}/images", files=[("files", (filename, content, "image/png"))])
        after = _files_on_disk(tmp_path)
        still_served = h.client.get(f"{API}/images/{good}/file")
        listed = h.client.get(f"{API}/images").json()
        health = h.client.get(f"{API}/health").json()
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert after == before
    assert still_served.status_code == 200 and still_served.content == scene_png(7)
    assert listed["total"] == 1 and health["status"] == "ready"
    assert not (tmp_path.parent / "etc").exists()


def test_fifty_megabytes_of_noise_is_refused_as_not_an_image(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, 50_000_000, dtype=np.uint8).tobytes()
    with harness(tmp_path) as h:
        response = h.client.post(f"{API}/images", files=[("files", ("noise.jpg", noise, "image/jpeg"))])
        assert h.client.get(f"{API}/images").json()["total"] == 0
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "not_an_image"


def test_a_file_over_the_upload_limit_gets_413(tmp_path):
    with harness(tmp_path, max_upload_bytes=2000) as h:
        response = h.client.post(f"{API}/images", files=[("files", ("big.jpg", jpeg_bytes(), "image/jpeg"))])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_a_request_body_over_the_request_limit_gets_413_before_parsing(tmp_path):
    with harness(tmp_path, max_request_bytes=10_000) as h:
        response = h.client.post(
            f"{API}/images", files=[("files", ("big.jpg", jpeg_bytes((640, 480)), "image/jpeg"))]
        )
        assert h.client.get(f"{API}/health").status_code == 200
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_mixed_upload_is_200_with_per_file_errors_and_keeps_the_good_files(tmp_path):
    files = [
        ("files", ("good-1.png", scene_png(1), "image/png")),
        ("files", ("notes.jpg", b"plain text", "image/jpeg")),
        ("files", ("good-2.png", scene_png(2), "image/png")),
        ("files", ("empty.png", b"", "image/png")),
    ]
    with harness(tmp_path) as h:
        response = h.client.post(f"{API}/images", files=files)
        total = h.client.get(f"{API}/images").json()["total"]
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"], total) == (2, 2, 2)
    assert [f["status"] for f in body["files"]] == ["created", "rejected", "created", "rejected"]
    assert [f["index"] for f in body["files"]] == [0, 1, 2, 3]
    assert body["files"][1]["error"]["code"] == "not_an_image" and body["files"][1]["image"] is None
    assert body["files"][3]["error"]["code"] == "empty_file"


def test_upload_where_every_file_is_rejected_answers_the_first_files_status_with_details(tmp_path):
    files = [
        ("files", ("notes.jpg", b"plain text", "image/jpeg")),
        ("files", ("empty.png", b"", "image/png")),
    ]
    with harness(tmp_path) as h:
        response = h.client.post(f"{API}/images", files=files)
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "not_an_image"
    assert [(d["index"], d["code"]) for d in error["details"]] == [(0, "not_an_image"), (1, "empty_file")]


def test_too_many_files_in_one_upload_is_400(tmp_path):
    files = [("files", (f"{n}.png", scene_png(n), "image/png")) for n in range(3)]
    with harness(tmp_path, max_files_per_upload=2) as h:
        response = h.client.post(f"{API}/images", files=files)
        assert h.client.get(f"{API}/images").json()["total"] == 0
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_files"


def test_upload_without_files_is_a_422_in_the_error_shape(tmp_path):
    with harness(tmp_path) as h:
        response = h.client.post(f"{API}/images", data={"other": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"][0]["loc"][-1] == "files"


@pytest.mark.parametrize("path", ["", "/file", "/thumbnail"])
def test_unknown_image_is_404(tmp_path, path):
    with harness(tmp_path) as h:
        response = h.client.get(f"{API}/images/{'0' * 64}{path}")
        traversal = h.client.get(f"{API}/images/..%2F..%2Fseglens.db{path}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "image_not_found"
    assert traversal.status_code == 404


def test_delete_image_removes_file_thumbnail_record_and_caches_but_not_an_image_a_job_needs(tmp_path):
    with harness(tmp_path) as h:
        loose, in_job = h.upload(1, 2)
        h.client.get(f"{API}/images/{loose}/thumbnail")
        assert h.client.post(f"{API}/query", json={"image_id": loose, "query": "red"}).status_code == 200
        job = h.create_job([in_job])
        h.proposer.open()
        h.wait_for(job["id"])
        sha = h.runtime.images.get(loose).pixels_sha256  # caches are keyed by pixels
        assert {p.parent.name for p in (tmp_path / "cache").rglob("*.np*")} >= {sha}

        refused = h.client.delete(f"{API}/images/{in_job}")
        deleted = h.client.delete(f"{API}/images/{loose}")
        again = h.client.delete(f"{API}/images/{loose}")
        after = [
            h.client.get(f"{API}/images/{loose}{suffix}").status_code
            for suffix in ("", "/file", "/thumbnail")
        ]
        query_after = h.client.post(f"{API}/query", json={"image_id": loose, "query": "red"})
        kept = h.client.get(f"{API}/images/{in_job}/file").status_code
        results = h.results(job["id"])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "image_in_use"
    assert deleted.status_code == 204 and again.status_code == 404
    assert after == [404, 404, 404] and query_after.status_code == 404
    assert kept == 200 and [r["status"] for r in results] == ["done"]
    left = _files_on_disk(tmp_path)
    assert not [p for p in left if loose in p], left
    # The loose image's cached regions and embeddings are gone; the job image's stay.
    image_dirs = {
        p.split("/")[3] for p in left if p.startswith("cache/") and p.split("/")[1] != "text-embeddings"
    }
    assert sha not in image_dirs and len(image_dirs) == 1


def test_deleting_one_of_two_uploads_with_the_same_pixels_keeps_the_shared_cache(tmp_path):
    png, bmp = io.BytesIO(scene_png(1)), io.BytesIO()
    Image.open(png).convert("RGB").save(bmp, "BMP")
    with harness(tmp_path) as h:
        ids = [
            h.client.post(f"{API}/images", files=[("files", (name, data.getvalue(), "image/x"))]).json()[
                "files"
            ][0]["image"]["id"]
            for name, data in (("a.png", png), ("a.bmp", bmp))
        ]
        assert ids[0] != ids[1]
        assert h.client.post(f"{API}/query", json={"image_id": ids[0], "query": "red"}).status_code == 200
        assert h.client.delete(f"{API}/images/{ids[0]}").status_code == 204
        calls = list(h.proposer.calls)
        answer = h.client.post(f"{API}/query", json={"image_id": ids[1], "query": "red"})
    assert answer.status_code == 200 and h.proposer.calls == calls  # still answered from the cache
