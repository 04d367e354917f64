"""ALBEF's losses: image-text contrastive (ITC), image-text matching (ITM) with hard negatives,
and masked LM conditioned on the image (MLM), each with momentum distillation.

    ITC: [CLS] features of images and captions, compared with the momentum features of this batch
         and of the queues; soft targets alpha * softmax(momentum similarities) + (1 - alpha) * ground truth
    ITM: the fused [CLS] of matching pairs, of each caption with a hard negative image and of each
         image with a hard negative caption (sampled in proportion to their contrastive similarity,
         never a pair of the same image)
    MLM: masked caption tokens predicted from the fused states; soft targets from the momentum model

Pairs of the same image (several captions of one photo, here or in the queue) count as positives.
In eval mode the objective returns features for retrieval metrics instead of training losses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmtrain.data.masking import IGNORE_INDEX
from lmtrain.models.albef import AlbefModel
from lmtrain.objectives.base import Objective, ObjectiveOutput, ratio
from lmtrain.objectives.retrieval import RetrievalSet, group_by_image, retrieval_metrics

EMPTY_SLOT = -100  # image id of a queue slot that was never filled
MASKED = -1e4  # logit of left-out similarities: exp() is 0, and 0 * log-probability stays finite


def soft_cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """sum over rows of -sum_j targets_ij * log softmax(logits)_ij."""
    return -(F.log_softmax(logits.float(), dim=1) * targets).sum()


class ImageTextObjective(Objective):
    """ITC + ITM + MLM, weighted (ALBEF pretraining); ITC + ITM (retrieval fine-tuning: ``mlm_weight=0``).

    Args:
        itc_weight, itm_weight, mlm_weight: weights of the three losses in the total.
        alpha: weight of the momentum model's soft targets (distillation); 0 = off.
        alpha_warmup_steps: alpha rises linearly from 0 over this many optimizer steps (ALBEF: the
            first epoch).
        hard_negatives: sample ITM negatives by contrastive similarity (ALBEF) or uniformly.
        rerank_k: evaluation: re-rank each query's k best contrastive candidates with the ITM head
            (0 = contrastive ranking only).
        queue_start: optimizer steps before the queued features join the contrastive loss (they are
            queued from the start). ALBEF starts from pretrained encoders and uses them at once (0);
            encoders trained from scratch begin with nearly identical features for every input, and
            against queued (older) features they learn the shortcut of moving every feature along
            with the training drift instead of telling inputs apart, so the queue waits.
    """

    main_metric = "r_mean"
    higher_is_better = True

    def __init__(
        self,
        itc_weight: float = 1.0,
        itm_weight: float = 1.0,
        mlm_weight: float = 1.0,
        alpha: float = 0.4,
        alpha_warmup_steps: int = 0,
        hard_negatives: bool = True,
        rerank_k: int = 16,
        queue_start: int = 0,
    ):
        self.weights = {"itc": itc_weight, "itm": itm_weight, "mlm": mlm_weight}
        self.alpha, self.alpha_warmup_steps = alpha, alpha_warmup_steps
        self.hard_negatives, self.rerank_k, self.queue_start = hard_negatives, rerank_k, queue_start
        self.head_names = ("mlm",) if mlm_weight > 0 else ()

    # ------------------------------------------------------------------ trainer hooks
    def after_optimizer_step(self, model: nn.Module) -> None:
        """Move the momentum encoders towards the online ones (EMA)."""
        assert isinstance(model, AlbefModel), "the objective trains ALBEF models (Capability.IMAGE_TEXT)"
        model.momentum_update()

    def count_targets(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Image-caption pairs, masked tokens (``mlm``) and real caption tokens."""
        counts = {
            "pairs": torch.tensor(batch["image"].shape[0], device=batch["image"].device),
            "tokens": batch["attention_mask"].sum(),
        }
        if "labels" in batch:
            counts["mlm"] = (batch["labels"] != IGNORE_INDEX).sum()
        return counts

    def current_alpha(self, model: AlbefModel) -> float:
        """The distillation weight at this step (ramped up over ``alpha_warmup_steps``)."""
        if self.alpha_warmup_steps <= 0:
            return self.alpha
        return self.alpha * min(1.0, float(model.steps_done) / self.alpha_warmup_steps)

    # ------------------------------------------------------------------ losses
    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], norm: dict[str, torch.Tensor]
    ) -> ObjectiveOutput:
        """Weighted ALBEF loss of ``batch`` (training) or retrieval features and held-out metrics (eval)."""
        assert isinstance(model, AlbefModel), "the objective trains ALBEF models (Capability.IMAGE_TEXT)"
        if not model.training:
            return self._evaluate(model, batch)
        model.clamp_temperature()
        alpha = self.current_alpha(model)
        images, ids, mask, idx = batch["image"], batch["input_ids"], batch["attention_mask"], batch["image_id"]
        image_states = model.encode_image(images)
        text_states = model.encode_text(ids, mask)
        image_feat, text_feat = model.image_features(image_states), model.text_features(text_states)
        with torch.no_grad():
            image_states_m = model.encode_image(images, momentum=True)
            image_feat_m = model.image_features(image_states_m, momentum=True)
            text_feat_m = model.text_features(model.encode_text(ids, mask, momentum=True), momentum=True)
        itc_sum, sim_i2t, sim_t2i = self._itc(model, image_feat, text_feat, image_feat_m, text_feat_m, idx, alpha)
        model.enqueue(image_feat_m, text_feat_m, idx)  # after the queues were read: first in, first out
        pairs = norm["pairs"].clamp(min=1)
        itm_sum, itm_correct, itm_count = self._itm(model, image_states, text_states, mask, idx, sim_i2t, sim_t2i)
        loss = self.weights["itc"] * itc_sum / pairs + self.weights["itm"] * itm_sum / (3 * pairs)
        sums = {
            "itc_loss_sum": itc_sum.detach(),
            "pair_count": norm["pairs"].new_tensor(len(idx)),
            "itm_loss_sum": itm_sum.detach(),
            "itm_correct": itm_correct,
            "itm_count": itm_count,
            "alpha_sum": torch.tensor(alpha * len(idx), device=ids.device),
            "temp_sum": model.temp.detach() * len(idx),
        }
        if self.weights["mlm"] > 0:
            mlm_sum, ce_sum, correct, count = self._mlm(model, batch, image_states, image_states_m, alpha)
            loss = loss + self.weights["mlm"] * mlm_sum / norm["mlm"].clamp(min=1)
            sums.update(mlm_loss_sum=ce_sum.detach(), mlm_correct=correct, mlm_count=count)
        return ObjectiveOutput(loss, sums)

    def _itc(self, model, image_feat, text_feat, image_feat_m, text_feat_m, idx, alpha):
        """Contrastive loss (summed over the batch, both directions averaged) and the similarities."""
        with torch.no_grad():
            idx_all = torch.cat([idx[None, :], model.idx_queue], dim=1)  # (1, B + Q)
            # Queue slots not yet filled hold random vectors, not features: leave them out. (Against
            # random negatives, collapsing every feature onto one direction is an easy first win.)
            empty = idx_all == EMPTY_SLOT  # (1, B + Q)
            if int(model.steps_done) < self.queue_start:
                empty[:, len(idx) :] = True
            empty = empty.expand(len(idx), -1)  # (B, B + Q)
            positives = ((idx[:, None] == idx_all) & ~empty).float()  # (B, B + Q): left-out slots are never targets
            sim_targets = positives / positives.sum(1, keepdim=True)
            image_feat_all = torch.cat([image_feat_m.T, model.image_queue], dim=1)  # (E, B + Q)
            text_feat_all = torch.cat([text_feat_m.T, model.text_queue], dim=1)  # (E, B + Q)
            if alpha > 0:
                sim_i2t_m = (image_feat_m @ text_feat_all / model.temp).masked_fill(empty, MASKED)  # (B, B + Q)
                sim_t2i_m = (text_feat_m @ image_feat_all / model.temp).masked_fill(empty, MASKED)
                i2t_targets = alpha * F.softmax(sim_i2t_m, dim=1) + (1 - alpha) * sim_targets
                t2i_targets = alpha * F.softmax(sim_t2i_m, dim=1) + (1 - alpha) * sim_targets
            else:
                i2t_targets = t2i_targets = sim_targets
        sim_i2t = (image_feat @ text_feat_all / model.temp).masked_fill(empty, MASKED)  # (B, B + Q)
        sim_t2i = (text_feat @ image_feat_all / model.temp).masked_fill(empty, MASKED)
        itc_sum = (soft_cross_entropy_sum(sim_i2t, i2t_targets) + soft_cross_entropy_sum(sim_t2i, t2i_targets)) / 2
        return itc_sum, sim_i2t, sim_t2i

    def negative_weights(self, sim: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Sampling weights (B, B) of in-batch negatives: softmax of the similarities (or uniform),
        zero for every pair of the same image, the positive itself included."""
        B = idx.shape[0]
        if self.hard_negatives:
            weights = F.softmax(sim[:, :B].float(), dim=1) + 1e-5
        else:
            weights = torch.ones(B, B, device=sim.device)
        return weights.masked_fill(idx[:, None] == idx[None, :], 0.0)

    def _itm(self, model, image_states, text_states, mask, idx, sim_i2t, sim_t2i):
        """Matching loss (summed), correct and counted pairs: positives, hard negative images and captions."""
        with torch.no_grad():
            w_t2i = self.negative_weights(sim_t2i, idx)  # (B, B): caption -> images
            w_i2t = self.negative_weights(sim_i2t, idx)  # (B, B): image -> captions
            # A row without any other image (every pair in the batch shows the same image) gets no negative.
            has_t2i, has_i2t = w_t2i.sum(1) > 0, w_i2t.sum(1) > 0
            neg_image = torch.multinomial(w_t2i[has_t2i], 1).squeeze(1)  # (n1,)
            neg_text = torch.multinomial(w_i2t[has_i2t], 1).squeeze(1)  # (n2,)
        fused_pos = model.fuse(text_states, mask, image_states)
        text_neg = torch.cat([text_states[has_t2i], text_states[neg_text]])  # (n1 + n2, T, D)
        mask_neg = torch.cat([mask[has_t2i], mask[neg_text]])
        image_neg = torch.cat([image_states[neg_image], image_states[has_i2t]])  # (n1 + n2, 1 + P, Dv)
        fused_neg = model.fuse(text_neg, mask_neg, image_neg)
        logits = model.itm_logits(torch.cat([fused_pos[:, :1], fused_neg[:, :1]])).float()  # (B + n1 + n2, 2)
        labels = torch.cat(
            [
                torch.ones(len(idx), dtype=torch.long, device=logits.device),
                torch.zeros(len(text_neg), dtype=torch.long, device=logits.device),
            ]
        )
        itm_sum = F.cross_entropy(logits, labels, reduction="sum")
        return itm_sum, (logits.argmax(-1) == labels).sum(), labels.new_tensor(len(labels))

    def _mlm(self, model, batch, image_states, image_states_m, alpha):
        """Masked LM on the fused states: (loss sum with distillation, plain CE sum, correct, count)."""
        mask, labels = batch["attention_mask"], batch["labels"]
        selected = labels != IGNORE_INDEX  # (B, T)
        targets = labels[selected]  # (N,)
        fused = model.fuse(model.encode_text(batch["mlm_input_ids"], mask), mask, image_states)
        logits = model.mlm_logits(fused[selected]).float()  # (N, V)
        ce_sum = F.cross_entropy(logits, targets, reduction="sum")
        loss_sum = ce_sum
        if alpha > 0:
            with torch.no_grad():
                states_m = model.encode_text(batch["mlm_input_ids"], mask, momentum=True)
                fused_m = model.fuse(states_m, mask, image_states_m, momentum=True)
                soft = F.softmax(model.mlm_logits(fused_m[selected], momentum=True).float(), dim=-1)
            loss_sum = (1 - alpha) * ce_sum + alpha * soft_cross_entropy_sum(logits, soft)
        return loss_sum, ce_sum, (logits.argmax(-1) == targets).sum(), selected.sum()

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _evaluate(self, model: AlbefModel, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
        """In-batch ITC loss, ITM accuracy against the hardest in-batch negative, MLM accuracy,
        and the features retrieval metrics are computed from."""
        images, ids, mask, idx = batch["image"], batch["input_ids"], batch["attention_mask"], batch["image_id"]
        image_states, text_states = model.encode_image(images), model.encode_text(ids, mask)
        image_feat, text_feat = model.image_features(image_states), model.text_features(text_states)
        sim = image_feat @ text_feat.T / model.temp  # (B, B)
        positives = (idx[:, None] == idx[None, :]).float()
        targets = positives / positives.sum(1, keepdim=True)
        itc_sum = (soft_cross_entropy_sum(sim, targets) + soft_cross_entropy_sum(sim.T, targets)) / 2
        sums = {"itc_loss_sum": itc_sum, "pair_count": idx.new_tensor(len(idx))}
        other = positives == 0
        has_neg = other.any(1)
        if has_neg.any():  # each caption with its most similar other image
            hardest = sim.T.masked_fill(~other, float("-inf")).argmax(1)[has_neg]
            fused = model.fuse(
                torch.cat([text_states, text_states[has_neg]]),
                torch.cat([mask, mask[has_neg]]),
                torch.cat([image_states, image_states[hardest]]),
            )
            logits = model.itm_logits(fused).float()
            labels = torch.cat([torch.ones(len(idx)), torch.zeros(int(has_neg.sum()))]).long().to(logits.device)
            sums.update(
                itm_loss_sum=F.cross_entropy(logits, labels, reduction="sum"),
                itm_correct=(logits.argmax(-1) == labels).sum(),
                itm_count=labels.new_tensor(len(labels)),
            )
        if self.weights["mlm"] > 0 and "labels" in batch:
            _, ce_sum, correct, count = self._mlm(model, batch, image_states, None, alpha=0.0)
            sums.update(mlm_loss_sum=ce_sum, mlm_correct=correct, mlm_count=count)
        keep = self.rerank_k > 0
        predictions = {
            "image_id": idx.cpu(),
            "image_feat": image_feat.float().cpu(),
            "text_feat": text_feat.float().cpu(),
            "image_states": image_states.cpu() if keep else None,
            "text_states": text_states.cpu() if keep else None,
            "text_mask": mask.cpu() if keep else None,
            # the model itself, so summarize can re-rank candidates with the matching head
            "model": model if keep else None,
        }
        return ObjectiveOutput(torch.zeros((), device=ids.device), sums, predictions)

    def retrieval_set(self, predictions: list[dict]) -> RetrievalSet:
        """The held-out images (once each) and captions of collected eval predictions."""
        image_ids = torch.cat([p["image_id"] for p in predictions]).numpy()
        first, txt2img, img2txt = group_by_image(image_ids)
        cat = lambda key: torch.cat([p[key] for p in predictions])  # noqa: E731
        image_feat = cat("image_feat")[first]
        image_states: torch.Tensor | None = None  # the encoder states, kept for re-ranking (rerank_k > 0)
        text_states: torch.Tensor | None = None
        text_mask: torch.Tensor | None = None
        if predictions[0]["image_states"] is not None:
            image_states = cat("image_states")[first]
            width = max(p["text_mask"].shape[1] for p in predictions)  # eval batches are padded separately
            text_states = torch.cat(
                [F.pad(p["text_states"], (0, 0, 0, width - p["text_states"].shape[1])) for p in predictions]
            )
            text_mask = torch.cat([F.pad(p["text_mask"], (0, width - p["text_mask"].shape[1])) for p in predictions])
        return RetrievalSet(
            image_feat, cat("text_feat"), np.asarray(txt2img), img2txt, image_states, text_states, text_mask
        )

    def summarize(self, sums: dict[str, float], predictions: list | None = None) -> dict[str, float]:
        """Losses and accuracies; with eval predictions also recall@1/5/10 both ways and ``r_mean``."""
        metrics = {"itc_loss": ratio(sums, "itc_loss_sum", "pair_count")}
        loss = self.weights["itc"] * metrics["itc_loss"]
        if "itm_count" in sums:
            metrics["itm_loss"] = ratio(sums, "itm_loss_sum", "itm_count")
            metrics["itm_acc"] = ratio(sums, "itm_correct", "itm_count")
            loss += self.weights["itm"] * metrics["itm_loss"]
        if "mlm_count" in sums:
            metrics["mlm_loss"] = ratio(sums, "mlm_loss_sum", "mlm_count")
            metrics["mlm_acc"] = ratio(sums, "mlm_correct", "mlm_count")
            loss += self.weights["mlm"] * metrics["mlm_loss"]
        metrics["loss"] = loss
        if "alpha_sum" in sums:
            metrics["alpha"] = ratio(sums, "alpha_sum", "pair_count")
            metrics["temp"] = ratio(sums, "temp_sum", "pair_count")
        if predictions:
            model = predictions[0]["model"]
            metrics.update(retrieval_metrics(model, self.retrieval_set(predictions), self.rerank_k))
        return metrics


def check_batch_setup(
    queue_size: int | None, batch_size: int, world_size: int, itm_weight: float, queue_key: str = "model.queue_size"
) -> None:
    """Fail before any work when the queue or the batch cannot work with ALBEF's losses.

    Raises:
        UserError: a queue size that is not a multiple of the global batch (the queue is filled
            one global batch at a time), or batches of one pair with the matching loss (its
            negatives come from the other pairs of the batch). ``queue_size=None`` checks the batch only.
    """
    from lmtrain.errors import UserError

    global_batch = batch_size * world_size
    if batch_size < 2 and itm_weight > 0:
        raise UserError(
            f"trainer.batch_size={batch_size}: the image-text matching loss draws its hard negatives "
            "from the other pairs of a batch, so a batch needs at least 2 pairs; raise "
            "trainer.batch_size (ALBEF uses 32-64 per device)."
        )
    if queue_size is not None and (queue_size <= 0 or queue_size % global_batch):
        raise UserError(
            f"{queue_key}={queue_size} is not a multiple of the global batch size {global_batch} "
            f"(trainer.batch_size={batch_size} x {world_size} process(es)): the feature queues are "
            f"filled one global batch at a time. Choose e.g. {queue_key}="
            f"{max(1, queue_size // global_batch) * global_batch}."
        )
