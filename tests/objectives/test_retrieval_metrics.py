"""Recall@k both ways against a hand-computed example, and the ITM re-ranking's candidate rule."""

import numpy as np
import pytest
import torch

from lmtrain.objectives.retrieval import RetrievalSet, group_by_image, recall_at_k, retrieval_metrics
from tests.albef_fixtures import tiny_model

IMG2TXT = [[0, 1], [2], [3, 4]]
TXT2IMG = np.array([0, 0, 1, 2, 2])
SCORE_I2T = np.array(
    [
        [0.1, 0.9, 0.8, 0.2, 0.3],  # best: caption 1, its own -> rank 0
        [0.5, 0.4, 0.3, 0.9, 0.8],  # its caption 2 is last -> rank 4
        [0.2, 0.1, 0.3, 0.4, 0.6],
    ]
)  # caption 4, its own -> rank 0
SCORE_T2I = np.array(
    [
        [0.9, 0.1, 0.5],  # image 0: rank 0
        [0.2, 0.8, 0.1],  # image 0: rank 1
        [0.1, 0.3, 0.7],  # image 1: rank 1
        [0.3, 0.2, 0.9],  # image 2: rank 0
        [0.8, 0.1, 0.4],
    ]
)  # image 2: rank 1


def test_recall_at_k_by_hand():
    metrics = recall_at_k(SCORE_I2T, SCORE_T2I, IMG2TXT, TXT2IMG)
    assert metrics["txt_r1"] == pytest.approx(2 / 3) and metrics["txt_r5"] == 1.0 and metrics["txt_r10"] == 1.0
    assert metrics["img_r1"] == pytest.approx(2 / 5) and metrics["img_r5"] == 1.0
    assert metrics["txt_r_mean"] == pytest.approx((2 / 3 + 2) / 3)
    assert metrics["img_r_mean"] == pytest.approx((0.4 + 2) / 3)
    assert metrics["r_mean"] == pytest.approx(((2 / 3 + 2) / 3 + (0.4 + 2) / 3) / 2)


def test_group_by_image_links_captions_and_images():
    first, txt2img, img2txt = group_by_image(np.array([7, 7, 3, 9, 9]))
    assert list(txt2img) == [1, 1, 0, 2, 2] and img2txt == [[2], [0, 1], [3, 4]] and list(first) == [2, 0, 3]


def test_reranking_only_reorders_the_contrastive_top_k():
    torch.manual_seed(0)
    model = tiny_model().eval()
    n_img, n_txt = 6, 9
    with torch.no_grad():
        image_states = model.encode_image(torch.randn(n_img, 3, 16, 16))
        ids, mask = torch.randint(5, 60, (n_txt, 7)), torch.ones(n_txt, 7, dtype=torch.bool)
        text_states = model.encode_text(ids, mask)
        data = RetrievalSet(
            model.image_features(image_states),
            model.text_features(text_states),
            np.arange(n_txt) % n_img,
            [[i, i + 6] if i + 6 < n_txt else [i] for i in range(n_img)],
            image_states,
            text_states,
            mask,
        )
        itc_only = retrieval_metrics(None, data, k=0)
        top1 = retrieval_metrics(model, data, k=1)  # one candidate per query: the contrastive ranking's first
    assert top1["txt_r1"] == itc_only["txt_r1"] and top1["img_r1"] == itc_only["img_r1"]
