"""`lmtrain predict` with an ALBEF run: the best images of a folder for each caption, or the best
captions of a file for each image (contrastive top candidates, re-ranked by the matching head).

    lmtrain predict ckpt=<run> input=queries.txt images=photos/      # one caption per line
    lmtrain predict ckpt=<run> input=photo.jpg captions=captions.txt  # an image, a folder, or a list of paths
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from lmtrain.config.commands import PredictConfig
from lmtrain.config.tasks import RetrievalPredictConfig
from lmtrain.data.captions import pre_caption
from lmtrain.data.collate import PadCollator
from lmtrain.data.image_text import frame_captions
from lmtrain.data.images import eval_transform, load_image
from lmtrain.errors import UserError
from lmtrain.tasks.prediction_io import read_inputs, write_records
from lmtrain.tasks.retrieval_init import load_albef
from lmtrain.training.precision import resolve_device

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_files(folder: str, key: str) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted; UserError if there are none."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"{key}={folder} is not a folder; give a folder of images.")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{key}={folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return files


def query_images(source: str | None) -> list[Path]:
    """The query images ``input`` names: an image file, a folder of images, or a file listing image paths."""
    if not source:
        raise UserError("input is not set: give an image, a folder of images, or a file with one image path per line.")
    path = Path(source).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [path]
    if path.is_dir():
        return image_files(source, "input")
    return [Path(line.strip()).expanduser() for line in read_inputs(source)]


@torch.no_grad()
def _encode_images(model, paths: list[Path], device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, E), encoder states (N, 1 + P, Dv)) of ``paths``, on the CPU."""
    size = model.spec.vision.image_size
    feats, states = [], []
    for start in range(0, len(paths), batch_size):
        images = torch.stack(
            [eval_transform(load_image(p, keep_side=2 * size), size) for p in paths[start : start + batch_size]]
        ).to(device)
        s = model.encode_image(images)
        feats.append(model.image_features(s).float().cpu())
        states.append(s.cpu())
    return torch.cat(feats), torch.cat(states)


@torch.no_grad()
def _encode_texts(
    model, tokenizer, texts: list[str], max_seq_len: int, max_words: int, device, batch_size: int
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(features (N, E), per-caption (states (T, D), mask (T,))) on the CPU."""
    ids = frame_captions(tokenizer, [pre_caption(t, max_words) for t in texts], max_seq_len)
    collate = PadCollator(tokenizer.id("pad"))
    feats: list[torch.Tensor] = []
    per_text: list[tuple[torch.Tensor, torch.Tensor]] = []
    for start in range(0, len(ids), batch_size):
        batch = collate([{"input_ids": x} for x in ids[start : start + batch_size]])
        mask = batch["attention_mask"].to(device)
        states = model.encode_text(batch["input_ids"].to(device), mask)
        feats.append(model.text_features(states).float().cpu())
        per_text.extend((states[i].cpu(), mask[i].cpu()) for i in range(len(states)))
    return torch.cat(feats), per_text


@torch.no_grad()
def _itm_scores(model, text: tuple[torch.Tensor, torch.Tensor], image_states: torch.Tensor, device) -> torch.Tensor:
    """Probability that each of ``image_states`` (K, 1 + P, Dv) matches one caption."""
    states, mask = text
    K = image_states.shape[0]
    fused = model.fuse(states.expand(K, -1, -1).to(device), mask.expand(K, -1).to(device), image_states.to(device))
    return model.itm_logits(fused).float().softmax(-1)[:, 1].cpu()


def _rerank(sims: torch.Tensor, k: int, top_k: int, itm_scores) -> list[tuple[int, dict[str, float]]]:
    """The ``k`` most similar candidates re-ranked by ``itm_scores(indices)``: the best ``top_k`` as
    (candidate index, {score, similarity})."""
    top = sims.topk(min(k, len(sims))).indices
    scores = itm_scores(top)
    return [
        (int(top[i]), {"score": round(float(scores[i]), 4), "similarity": round(float(sims[top[i]]), 4)})
        for i in scores.argsort(descending=True)[:top_k]
    ]


def predict_retrieval(cfg: PredictConfig, checkpoint: Path, options: RetrievalPredictConfig) -> list[dict[str, Any]]:
    """Rank ``task.images`` for each caption of ``cfg.input``, or ``task.captions`` for each image of it.

    Args:
        cfg: the predict config (``input``, ``output``, ``batch_size``, ``device``).
        checkpoint: the ALBEF checkpoint.
        options: the task's predict keys (``task.images`` | ``task.captions``, ``task.top_k``).

    Returns:
        One record per query: ``query`` and ``matches`` (best first), each with the image or caption,
        its matching probability (``score``) and its contrastive similarity.
    """
    if bool(options.images) == bool(options.captions):
        raise UserError(
            "an ALBEF checkpoint ranks images or captions: give task.images=<folder> to find images for "
            "the captions of input=, or task.captions=<file> to find captions for the images of input=."
        )
    device = resolve_device(cfg.device, key="device")
    model, tokenizer, meta = load_albef(checkpoint, "ckpt", device)
    task = meta.get("task") or {}
    max_seq_len, max_words = task.get("max_seq_len", model.spec.text.max_positions), task.get("max_words", 30)
    k = max(options.top_k, task.get("rerank_k", 16))
    if options.images:  # captions ask, images answer
        captions, images = read_inputs(cfg.input), image_files(options.images, "task.images")
    else:  # images ask, captions answer
        images, captions = query_images(cfg.input), read_inputs(options.captions, key="task.captions")
    image_feat, image_states = _encode_images(model, images, device, cfg.batch_size)
    text_feat, texts = _encode_texts(model, tokenizer, captions, max_seq_len, max_words, device, cfg.batch_size)
    records = []
    if options.images:
        for q, caption in enumerate(captions):
            matches = _rerank(
                image_feat @ text_feat[q],
                k,
                options.top_k,
                lambda top, q=q: _itm_scores(model, texts[q], image_states[top], device),
            )
            records.append({"query": caption, "matches": [{"image": str(images[i]), **m} for i, m in matches]})
    else:
        for q, path in enumerate(images):
            matches = _rerank(
                text_feat @ image_feat[q],
                k,
                options.top_k,
                lambda top, q=q: torch.cat(
                    [_itm_scores(model, texts[t], image_states[q : q + 1], device) for t in top.tolist()]
                ),
            )
            records.append({"query": str(path), "matches": [{"caption": captions[i], **m} for i, m in matches]})
    log.info("predict: %d quer%s with %s (retrieval)", len(records), "y" if len(records) == 1 else "ies", checkpoint)
    write_records(records, cfg.output, format_record)
    return records


def format_record(record: dict[str, Any]) -> str:
    """A query's matches as one line: ``match<TAB>score`` pairs, best first, tab separated."""
    return "\t".join(f"{m.get('image', m.get('caption'))}\t{m['score']:.4f}" for m in record["matches"])
