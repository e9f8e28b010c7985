"""The judge's sentence vectors are bit-identical however texts are batched (issue 11 item 7).

The judge compares cosines with thresholds, and its embedder caches the first vector it computed for a text:
a vector that depended on its batch would make a verdict depend on which texts a request (or an earlier
request) happened to send along with it.
"""

from __future__ import annotations

import numpy as np
import pytest

from raddiff_evaluator.embedder import SentenceEmbedder

TEXTS = [
    "moderate right pleural effusion",
    "cardiomegaly",
    "an endotracheal tube whose tip lies in the right main bronchus, well below the carina, with a left effusion",
    "nodule",
    "no acute cardiopulmonary process",
    "severe cardiomegaly with pulmonary vascular congestion",
    "left lower lobe atelectasis",
    "pacemaker",
    "small left apical pneumothorax",
    "large bilateral pleural effusions",
    "right upper lobe consolidation",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    model = SentenceEmbedder()
    model.load()
    return model


def test_a_text_embeds_the_same_alone_and_among_others(embedder: SentenceEmbedder) -> None:
    alone = {t: embedder._embed([t])[0] for t in TEXTS[:3]}
    for batch in (TEXTS, TEXTS[::-1], TEXTS[:2], [TEXTS[2], TEXTS[0]], [TEXTS[1], *TEXTS[3:]]):
        rows = embedder._embed(batch)
        for text, vector in alone.items():
            if text in batch:
                np.testing.assert_array_equal(rows[batch.index(text)], vector, err_msg=f"{text!r} among {batch}")


def test_the_cache_holds_the_same_vector_whichever_request_came_first(embedder: SentenceEmbedder) -> None:
    first_alone, first_batched = SentenceEmbedder(), SentenceEmbedder()
    first_alone._tokenizer, first_alone._model = embedder._tokenizer, embedder._model
    first_batched._tokenizer, first_batched._model = embedder._tokenizer, embedder._model
    first_alone.encode([TEXTS[0]])
    first_batched.encode(TEXTS)
    np.testing.assert_array_equal(first_alone.encode(TEXTS), first_batched.encode(TEXTS))
