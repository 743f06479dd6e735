"""GET /images/{id}/regions: the data a client-side viewer repaints from, checked by
redoing /query's matching from it (the rules viewer.js ports) with fake models."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from seglens.core.viewdata import display_runs, overlap_pairs
from server_support import API, harness


def _array(field: dict) -> np.ndarray:
    data = np.frombuffer(
        base64.b64decode(field["data_base64"]), dtype="<" + {"uint32": "u4", "float32": "f4"}[field["dtype"]]
    )
    return data.reshape(field["shape"])


def client_matches(
    view: dict, threshold: float, merge: float, strategy: str
) -> list[tuple[str, float, list[int]]]:
    """The viewer's rules (viewer.js `matchRegions`), from the route's data only."""
    probs = _array(view["scores"]["probabilities"]).astype(np.float64)
    k, e = view["scores"]["num_keywords"], view["scores"]["num_exclusions"]
    first, second = _array(view["overlaps"]["first"]), _array(view["overlaps"]["second"])
    inter, areas = _array(view["overlaps"]["intersection"]), _array(view["overlaps"]["areas"])
    iou: dict[tuple[int, int], float] = {}
    for i, j, c in zip(first.tolist(), second.tolist(), inter.tolist(), strict=True):
        iou[(i, j)] = iou[(j, i)] = c / (areas[i] + areas[j] - c)
    t32 = float(np.float32(threshold))
    out = []
    for kw in range(k):
        members = []
        for r, row in enumerate(probs):
            best = int(np.argmax(row[:k]))
            is_excl = e and max(row[k : k + e]) >= t32 and max(row[k : k + e]) > row[best]
            if best == kw and row[best] >= t32 and not is_excl:
                members.append(r)
        members.sort(key=lambda r: -probs[r, kw])
        taken: set[int] = set()
        for s in members:
            if s in taken:
                continue
            group = [s] + [m for m in members if m not in taken and m != s and iou.get((s, m), 0.0) > merge]
            taken.update(group)
            regions = sorted(group) if strategy == "union" else [s]
            out.append((view["keywords"][kw], float(probs[s, kw]), [s, *[r for r in regions if r != s]]))
    return sorted(out, key=lambda m: -m[1])


def test_regions_give_the_same_matches_as_query(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        query = "red, blue, -green"
        view = h.client.get(
            f"{API}/images/{image}/regions", params={"query": query, "max_side_px": 80}
        ).json()
        for threshold, merge, strategy in [
            (0.0, 0.0, "union"),
            (0.2, 0.5, "nms"),
            (0.3, 1.0, "nms"),
            (0.05, 0.1, "nms"),
        ]:
            body = {
                "image_id": image,
                "query": query,
                "threshold": threshold,
                "merge_threshold": merge,
                "merge_strategy": strategy,
                "overlay": False,
            }
            answer = h.client.post(f"{API}/query", json=body).json()
            expected = [(m["keyword"], m["score"], m["region_indices"]) for m in answer["matches"]]
            assert client_matches(view, threshold, merge, strategy) == expected
    assert view["num_regions"] == 3 and (view["masks"]["width"], view["masks"]["height"]) == (80, 60)
    runs, offsets = _array(view["masks"]["runs"]), _array(view["masks"]["offsets"])
    assert all(int(runs[offsets[i] : offsets[i + 1]].sum()) == 80 * 60 for i in range(3))
    assert view["scores"]["classes"][:3] == ["red", "blue", "green"]


def test_regions_without_masks_give_only_the_probabilities(tmp_path):
    with harness(tmp_path) as h:
        image = h.upload(1)[0]
        view = h.client.get(f"{API}/images/{image}/regions", params={"query": "red", "masks": "false"}).json()
    assert view["masks"] is None and view["overlaps"] is None
    assert _array(view["scores"]["probabilities"]).shape[0] == view["num_regions"] == 3


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"query": "-red"}, 422, "invalid_query"),
        ({"masks": "false"}, 422, "invalid_params"),
        ({"max_side_px": 8}, 422, "validation_error"),
        ({"max_side_px": "big"}, 422, "validation_error"),
        ({"points_per_side": 33}, 422, "invalid_params"),
        ({"query": ""}, 422, "validation_error"),
    ],
)
def test_bad_region_requests_get_4xx(tmp_path, params, status, code):
    with harness(tmp_path, max_points_per_side=32) as h:
        image = h.upload(1)[0]
        response = h.client.get(f"{API}/images/{image}/regions", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_unknown_image_is_404(tmp_path):
    with harness(tmp_path) as h:
        response = h.client.get(f"{API}/images/{'0' * 64}/regions")
    assert response.status_code == 404


def test_display_runs_are_row_major_and_overlaps_exact():
    from seglens.core.masks import coarse_iou_matrix, encode_masks

    masks = np.zeros((3, 4, 6), bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 0:2, 0:3] = True
    masks[2, 3, 5] = True
    runs = display_runs(encode_masks(masks), (4, 6))
    first = runs.runs[runs.offsets[0] : runs.offsets[1]].tolist()
    assert first == [8, 3, 3, 3, 7]  # row 1 cols 2-4, row 2 cols 2-4
    assert runs.runs[runs.offsets[2] : runs.offsets[3]].tolist() == [23, 1]
    pairs = overlap_pairs(masks)
    assert list(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == [(0, 1)]
    iou = pairs.intersection[0] / (pairs.areas[0] + pairs.areas[1] - pairs.intersection[0])
    assert iou == coarse_iou_matrix(masks)[0, 1]
