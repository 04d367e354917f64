"""Image-text retrieval metrics as ALBEF evaluates them: contrastive top-k, re-ranked by the matching head.

Several captions may share one image (Flickr, COCO): an image is retrieved correctly when one of
its captions is ranked high enough, a caption when its own image is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RECALL_AT = (1, 5, 10)


def chance_recall(n_images: int) -> dict[str, float]:
    """Recall@k of a random ranking of ``n_images`` images (one right answer per query), as ``baseline/chance_r<k>``."""
    return {f"baseline/chance_r{k}": min(1.0, k / max(n_images, 1)) for k in RECALL_AT}


@dataclass
class RetrievalSet:
    """Every held-out image once and every caption once, with the links between them.

    Attributes:
        image_feat: (N_i, E) normalised image features; image_states: (N_i, 1 + P, Dv) or None.
        text_feat: (N_t, E) normalised caption features; text_states (N_t, T, D) and text_mask
            (N_t, T) or None (needed only to re-rank with the matching head).
        txt2img: (N_t,) the index of each caption's image.
        img2txt: for each image, the indices of its captions.
    """

    image_feat: torch.Tensor
    text_feat: torch.Tensor
    txt2img: np.ndarray
    img2txt: list[list[int]]
    image_states: torch.Tensor | None = None
    text_states: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None


def group_by_image(image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """For captions whose images have ``image_ids`` (N_t,): the first caption of each image,
    each caption's image index, and each image's caption indices."""
    unique, first, txt2img = np.unique(image_ids, return_index=True, return_inverse=True)
    img2txt: list[list[int]] = [[] for _ in unique]
    for t, i in enumerate(txt2img):
        img2txt[i].append(t)
    return first, txt2img, img2txt


def recall_at_k(
    score_i2t: np.ndarray, score_t2i: np.ndarray, img2txt: list[list[int]], txt2img: np.ndarray
) -> dict[str, float]:
    """Recall@1/5/10 both ways (as fractions) and their means, as ALBEF's ``itm_eval`` computes them.

    Args:
        score_i2t: (N_i, N_t) score of every caption for every image (higher = better match).
        score_t2i: (N_t, N_i) score of every image for every caption.
        img2txt: the captions of each image; txt2img: the image of each caption.
    Returns:
        ``txt_r1, txt_r5, txt_r10`` (image -> text: one of the image's captions within the top k),
        ``img_r1 ...`` (text -> image), ``txt_r_mean``, ``img_r_mean`` and ``r_mean``.
    """
    order = np.argsort(-score_i2t, axis=1, kind="stable")  # (N_i, N_t) best first
    position = np.argsort(order, axis=1, kind="stable")  # rank of each caption for each image
    i2t_rank = np.array([position[i, texts].min() for i, texts in enumerate(img2txt)])
    order = np.argsort(-score_t2i, axis=1, kind="stable")  # (N_t, N_i)
    t2i_rank = np.argmax(order == np.asarray(txt2img)[:, None], axis=1)
    metrics = {}
    for k in RECALL_AT:
        metrics[f"txt_r{k}"] = float(np.mean(i2t_rank < k))
    for k in RECALL_AT:
        metrics[f"img_r{k}"] = float(np.mean(t2i_rank < k))
    metrics["txt_r_mean"] = float(np.mean([metrics[f"txt_r{k}"] for k in RECALL_AT]))
    metrics["img_r_mean"] = float(np.mean([metrics[f"img_r{k}"] for k in RECALL_AT]))
    metrics["r_mean"] = (metrics["txt_r_mean"] + metrics["img_r_mean"]) / 2
    return metrics


@torch.no_grad()
def itm_rerank(
    model, data: RetrievalSet, sims: torch.Tensor, k: int, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each query's ``k`` best contrastive candidates by the matching head's score.

    As in ALBEF, candidates outside the top k score -100, so they rank below every re-ranked one.

    Args:
        model: an :class:`lmtrain.models.albef.AlbefModel` (in eval mode).
        data: features and encoder states of the held-out set.
        sims: (N_i, N_t) contrastive similarities.
        k: candidates per query.
        batch_size: image-caption pairs per fusion pass.
    Returns:
        (score_i2t (N_i, N_t), score_t2i (N_t, N_i)).
    """
    assert data.image_states is not None and data.text_states is not None and data.text_mask is not None, (
        "re-ranking fuses the encoder states (retrieval_metrics asks for it only when they are kept)"
    )
    device = next(model.parameters()).device
    n_img, n_txt = sims.shape
    k_i2t, k_t2i = min(k, n_txt), min(k, n_img)
    score_i2t = torch.full((n_img, n_txt), -100.0)
    score_t2i = torch.full((n_txt, n_img), -100.0)
    top_t = sims.topk(k_i2t, dim=1).indices  # (N_i, k)
    top_i = sims.T.topk(k_t2i, dim=1).indices  # (N_t, k)
    pairs = [(i, int(t)) for i in range(n_img) for t in top_t[i]]
    pairs += [(int(i), t) for t in range(n_txt) for i in top_i[t]]
    scores: list[torch.Tensor] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        img = torch.tensor([p[0] for p in chunk])
        txt = torch.tensor([p[1] for p in chunk])
        fused = model.fuse(
            data.text_states[txt].to(device), data.text_mask[txt].to(device), data.image_states[img].to(device)
        )
        scores.append(model.itm_logits(fused)[:, 1].float().cpu())
    flat = torch.cat(scores) if scores else torch.empty(0)
    n_first = n_img * k_i2t
    score_i2t.scatter_(1, top_t, flat[:n_first].view(n_img, k_i2t))
    score_t2i.scatter_(1, top_i, flat[n_first:].view(n_txt, k_t2i))
    return score_i2t.numpy(), score_t2i.numpy()


def retrieval_metrics(model, data: RetrievalSet, k: int) -> dict[str, float]:
    """Recall of the contrastive similarities (``itc_r_mean``) and, with ``k`` > 0 and encoder
    states, of the ITM re-ranking (ALBEF's reported numbers); without re-ranking the contrastive ones."""
    sims = data.image_feat.float() @ data.text_feat.float().T  # (N_i, N_t)
    itc = recall_at_k(sims.numpy(), sims.T.numpy(), data.img2txt, data.txt2img)
    if k <= 0 or data.image_states is None or model is None:
        return {**itc, "itc_r_mean": itc["r_mean"]}
    score_i2t, score_t2i = itm_rerank(model, data, sims, k)
    return {**recall_at_k(score_i2t, score_t2i, data.img2txt, data.txt2img), "itc_r_mean": itc["r_mean"]}
