"""ALBEF's pretraining objective as a plug: image-caption pairs, ITC + ITM + image-conditioned MLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmtrain.config.commands import PretrainConfig
from lmtrain.config.data import ImageCaptionDataConfig
from lmtrain.config.objectives import ImageTextConfig
from lmtrain.data.image_caption_sets import caption_tokenizer, load_image_caption_data
from lmtrain.data.image_text import ImageTextCollator, ImageTextDataset
from lmtrain.data.pretraining import masking_spec
from lmtrain.files.cache_home import open_cache_folder
from lmtrain.models.capabilities import Capability
from lmtrain.objectives.base import Objective
from lmtrain.objectives.image_text import ImageTextObjective, check_batch_setup
from lmtrain.objectives.plug import PretrainingObjective, PretrainingSets
from lmtrain.objectives.retrieval import chance_recall
from lmtrain.shell_words import command, comment, override


class ImageTextPretraining(PretrainingObjective):
    """ALBEF (Li et al. 2021) on generated shapes scenes or captions files."""

    config_class = ImageTextConfig
    cfg: ImageTextConfig  # an objective is built from its own config_class (the objective config's _target_ names it)
    data_config = ImageCaptionDataConfig
    needs = Capability.IMAGE_TEXT

    def min_seq_len(self) -> tuple[int, str]:
        """[CLS] ... [SEP] around at least one caption token."""
        return 3, "[CLS] ... [SEP]: 2 special tokens and at least one caption token"

    def prepare(self, cfg: PretrainConfig, context: Any) -> PretrainingSets:
        """Image-caption pairs with crops, flips and (if ``mlm_weight`` > 0) MLM masks; the caption tokenizer
        trained by rank 0 (or the resumed run's own)."""
        data_cfg, obj = cfg.data, self.cfg
        check_batch_setup(cfg.model.queue_size, cfg.trainer.batch_size, context.dist.world_size, obj.itm_weight)
        data = load_image_caption_data(
            data_cfg.source,
            list(data_cfg.train_files),
            list(data_cfg.eval_files),
            data_cfg.image_root,
            data_cfg.eval_fraction,
            data_cfg.split_seed,
            cfg.model.image_size,
            data_cfg.skip_bad_images,
            data_cfg.shapes_train,
            data_cfg.shapes_eval,
            allow_outside_root=data_cfg.allow_outside_root,
        )
        tokenizer = context.run_tokenizer(
            lambda: caption_tokenizer(
                data, cfg.tokenizer, data_cfg.max_words, str(open_cache_folder(data_cfg.cache_dir))
            )
        )
        masking = masking_spec(obj, tokenizer) if obj.mlm_weight > 0 else None
        common = dict(
            tokenizer=tokenizer,
            image_size=cfg.model.image_size,
            max_seq_len=data_cfg.max_seq_len,
            max_words=data_cfg.max_words,
            masking=masking,
            crop_min_scale=data_cfg.crop_min_scale,
            flip=data_cfg.flip,
        )
        train_set = ImageTextDataset(data.train, data.images, train=True, seed=cfg.trainer.seed, **common)
        eval_set = ImageTextDataset(data.eval, data.images, train=False, seed=cfg.trainer.seed + 1, **common)
        return PretrainingSets(
            tokenizer,
            train_set,
            eval_set,
            ImageTextCollator(tokenizer.id("pad")),
            description=f"{len(train_set)} train / {len(eval_set)} held-out pairs ({data.source})",
            summary={"data": data.source, "train_pairs": len(train_set), "eval_pairs": len(eval_set)},
            extra={"eval_images": len({p.image_id for p in data.eval})},
        )

    def head_names(self) -> tuple[str, ...]:
        """The MLM head when the MLM loss is on (the ITM head is part of the model)."""
        return ("mlm",) if self.cfg.mlm_weight > 0 else ()

    def loss(self, sets: PretrainingSets, steps_per_epoch: int) -> Objective:
        """ALBEF's weighted losses; alpha ramps up over the first epoch."""
        obj = self.cfg
        return ImageTextObjective(
            itc_weight=obj.itc_weight,
            itm_weight=obj.itm_weight,
            mlm_weight=obj.mlm_weight,
            alpha=obj.alpha,
            alpha_warmup_steps=steps_per_epoch,
            hard_negatives=obj.hard_negatives,
            rerank_k=obj.rerank_k,
            queue_start=obj.queue_start,
        )

    def baselines(self, sets: PretrainingSets) -> dict[str, float]:
        """Recall@k of a random ranking of the held-out images."""
        return chance_recall(sets.extra["eval_images"])

    def next_commands(self, run: Path) -> list[str]:
        """Retrieval fine-tuning and ranking."""
        return [
            command("finetune", "task=retrieval", override("init", run)),
            comment(
                f"{command('predict', override('ckpt', run))} input=CAPTIONS_FILE images=IMAGES_FOLDER  "
                "(your captions, one per line, and a folder of images to rank)"
            ),
        ]
