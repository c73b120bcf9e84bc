"""The real EfficientNet-Lite0 ONNX on real photos: stable, unit-norm, and variants rank above others."""

from __future__ import annotations

from typing import Any

import numpy as np

from services.search.domain import DIM, decode, to_tensor

BASES = ["chelsea", "coffee", "astronaut", "rocket", "camera", "coins", "hubble", "immuno"]


def test_embedding_is_stable_and_normalised(embedder: Any, photos: dict[str, bytes]) -> None:
    batch = np.stack([to_tensor(decode(photos[n])) for n in ("chelsea", "coffee")])
    a = embedder.embed(batch)
    b = embedder.embed(batch)
    single = embedder.embed(batch[:1])
    assert a.shape == (2, DIM) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)  # same input, same bytes out
    np.testing.assert_allclose(single[0], a[0], atol=1e-5)  # batching does not change a row
    # PNG round trip of the same pixels gives the same vector
    np.testing.assert_allclose(embedder.embed(to_tensor(decode(photos["chelsea"]))[None])[0], a[0], atol=1e-6)


def test_variants_rank_above_other_photos(embed_photo: Any) -> None:
    """For each photo, its mirror, crop and rotation are nearer than any other photo."""
    base = {n: embed_photo(n) for n in BASES}
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        for variant in ("flip", "crop", "rot"):
            q = embed_photo(f"{name}_{variant}")
            scores = {n: float(q @ v) for n, v in base.items()}
            best = max(scores, key=lambda n: scores[n])
            assert best == name, (name, variant, scores)
            others = max(s for n, s in scores.items() if n != name)
            assert scores[name] - others > 0.05, (name, variant, scores)


def test_cats_are_nearer_each_other_than_to_coins(embed_photo: Any) -> None:
    cat, cat_flip, coins, hubble = (embed_photo(n) for n in ("chelsea", "chelsea_flip", "coins", "hubble"))
    assert cat @ cat_flip > 0.85
    assert cat @ coins < cat @ cat_flip - 0.2
    assert cat @ hubble < cat @ cat_flip - 0.2
