"""Image-text retrieval (ALBEF): captions and images in, ITC + ITM fine-tuning, recall@1/5/10 both ways.

image-caption pairs (several captions per image) -> ALBEF (pretrained ALBEF | BERT text encoder
+ random or ALBEF image encoder | scratch) -> datasets -> ITC + ITM (with the image ids as
positives) -> recall@1/5/10 both ways, ITM re-ranked, as ALBEF reports it
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lmtrain.config.commands import FinetuneConfig
from lmtrain.config.data import RetrievalDataConfig
from lmtrain.config.tasks import RetrievalPredictConfig, RetrievalTaskConfig
from lmtrain.data.captions import pre_caption
from lmtrain.data.hf_tokenizer import configured_tokenizer
from lmtrain.data.image_caption_sets import ImageCaptionData, load_image_caption_data
from lmtrain.data.image_text import ImageTextCollator, ImageTextDataset
from lmtrain.data.tokenizer import TextTokenizer
from lmtrain.objectives.image_text import ImageTextObjective, check_batch_setup
from lmtrain.objectives.retrieval import chance_recall
from lmtrain.tasks.base import Task, TaskModel
from lmtrain.tasks.retrieval_init import resolve_retrieval_init


def read_retrieval_data(data_cfg: RetrievalDataConfig, image_size: int) -> ImageCaptionData:
    """The pairs of ``data.train_file`` / ``data.eval_file`` (or the generated shapes when unset), images
    at ``image_size``, the training pairs cut to ``data.max_examples``."""
    source = "files" if data_cfg.train_file else "shapes"
    data = load_image_caption_data(
        source,
        [data_cfg.train_file] if data_cfg.train_file else [],
        [data_cfg.eval_file] if data_cfg.eval_file else [],
        data_cfg.image_root,
        data_cfg.eval_fraction,
        data_cfg.split_seed,
        image_size,
        data_cfg.skip_bad_images,
        data_cfg.shapes_train,
        data_cfg.shapes_eval,
        key="data.train_file",
        allow_outside_root=data_cfg.allow_outside_root,
    )
    if data_cfg.max_examples:
        data.train = data.train[: data_cfg.max_examples]
    return data


class RetrievalTask(Task):
    """Fine-tune ALBEF to rank images for captions and captions for images.

    ALBEF has no task head: every encoder is fine-tuned. The images are read at the model's input
    size, known once :meth:`build_model` has the model (a pretrained ALBEF brings its own);
    :meth:`objective` and :meth:`meta` use the settings :meth:`build_model` and :meth:`datasets` saw.
    """

    name, head, causal = "retrieval", None, False
    config_class, data_config, predict_config = RetrievalTaskConfig, RetrievalDataConfig, RetrievalPredictConfig
    cfg: RetrievalDataConfig  # a task is built with its own data_config (the finetune config types `data` with it)
    options: RetrievalTaskConfig

    def __init__(
        self, data_cfg: RetrievalDataConfig, labels: list[str] | None = None, options: RetrievalTaskConfig | None = None
    ):
        super().__init__(data_cfg, labels, options)  # options: alpha, hard negatives, re-ranking, queue start
        self.data: ImageCaptionData | None = None
        self.image_size: int | None = None
        self.max_seq_len = data_cfg.max_seq_len
        self.steps_per_epoch = 1  # the momentum distillation weight ramps up over the first epoch
        self._epoch_steps: Callable[[int], int] = lambda n_pairs: 1  # optimizer steps per pass, from the run
        self.seed = 0

    def read(self) -> None:
        """Nothing yet: the images are read at the model's input size, once :meth:`build_model` knows it."""

    def _read_at(self, image_size: int) -> ImageCaptionData:
        if self.data is None or image_size != self.image_size:
            self.data, self.image_size = read_retrieval_data(self.cfg, image_size), image_size
            self.train, self.eval = self.data.train, self.data.eval
        return self.data

    @property
    def _pairs(self) -> ImageCaptionData:
        """The pairs :meth:`build_model` read (the datasets, baselines and data report come after it)."""
        assert self.data is not None, "build_model reads the pairs before anything uses them"
        return self.data

    def texts(self) -> list[str]:
        """The cleaned training captions (a scratch tokenizer is trained on them)."""
        assert self.image_size is not None, "build_model sets the image size before the tokenizer reads captions"
        return [pre_caption(p.caption, self.cfg.max_words) for p in self._read_at(self.image_size).train]

    def predict_command(self, run: Path) -> str:
        """A comment: ranking needs the user's captions and images."""
        from lmtrain.shell_words import command, comment, override

        return comment(
            f"{command('predict', override('ckpt', run))} input=CAPTIONS_FILE task.images=IMAGES_FOLDER  "
            "(your captions, one per line, and a folder of images to rank)"
        )

    def newest_backbone(self) -> Any:
        """The newest ALBEF pretrain run of this project."""
        from lmtrain.tasks.retrieval_init import newest_albef_run

        return newest_albef_run()

    def build_model(self, cfg: FinetuneConfig, context: Any) -> TaskModel:
        """The ALBEF ``cfg.init`` names (see :mod:`lmtrain.tasks.retrieval_init`), its batch set-up checked."""
        world_size = context.dist.world_size
        check_batch_setup(
            None, cfg.trainer.batch_size, world_size, 1.0
        )  # the batch now; the queue once the model is known
        self.seed = cfg.trainer.seed
        self._epoch_steps = lambda n: context.steps_per_epoch(n, cfg.trainer)
        self.image_size = cfg.model.image_size  # a scratch tokenizer reads the captions at the size of model.*
        torch.manual_seed(cfg.trainer.seed)  # new parts (cross-attention, a random image encoder) alike on every rank
        init = resolve_retrieval_init(
            cfg, lambda: context.run_tokenizer(lambda: configured_tokenizer(cfg.tokenizer, self.texts()))
        )
        model = init.model
        check_batch_setup(
            model.spec.queue_size,
            cfg.trainer.batch_size,
            world_size,
            1.0,
            queue_key="model.queue_size" if "ALBEF" not in init.source else f"the queue size of init={cfg.init}",
        )
        self._read_at(model.spec.vision.image_size)
        return TaskModel(model, init.tokenizer, init.source, model.family, model.spec.text.max_positions)

    def datasets(self, tokenizer: TextTokenizer, max_seq_len: int) -> tuple[ImageTextDataset, ImageTextDataset]:
        """Training pairs (random crops and flips) and held-out pairs, with captions framed for the text encoder."""
        self.max_seq_len = max_seq_len
        data = self._pairs
        assert self.image_size is not None, "read with the pairs, at the model's input size"
        framed = functools.partial(
            ImageTextDataset,
            tokenizer=tokenizer,
            image_size=self.image_size,
            max_seq_len=max_seq_len,
            max_words=self.cfg.max_words,
            crop_min_scale=self.cfg.crop_min_scale,
            flip=self.cfg.flip,
        )
        train = framed(data.train, data.images, train=True, seed=self.seed)
        held_out = framed(data.eval, data.images, train=False)
        self.steps_per_epoch = self._epoch_steps(len(train))
        return train, held_out

    def collator(self, tokenizer: TextTokenizer) -> ImageTextCollator:
        """Images stacked, captions padded."""
        return ImageTextCollator(tokenizer.id("pad"))

    def objective(self, class_weights: Any) -> ImageTextObjective:
        """ITC + ITM with the image ids as positives (no masked LM); ``class_weights`` does not apply."""
        opts = self.options
        return ImageTextObjective(
            mlm_weight=0.0,
            alpha=opts.alpha,
            alpha_warmup_steps=self.steps_per_epoch,
            hard_negatives=opts.hard_negatives,
            rerank_k=opts.rerank_k,
            queue_start=opts.queue_start,
        )

    def _eval_images(self) -> int:
        return len({p.image_id for p in self._pairs.eval})

    def baselines(self, tokenizer: TextTokenizer) -> dict[str, float]:
        """Recall@k of a random ranking of the held-out images."""
        return chance_recall(self._eval_images())

    def describe_data(self) -> dict[str, Any]:
        """Where the pairs came from and how many there are."""
        data = self._pairs
        return {
            "data": data.source,
            "train_pairs": len(data.train),
            "eval_pairs": len(data.eval),
            "eval_images": self._eval_images(),
        }

    def meta(self) -> dict[str, Any]:
        """What `lmtrain predict` needs: caption framing and the re-ranking depth."""
        return {
            "name": self.name,
            "max_seq_len": self.max_seq_len,
            "max_words": self.cfg.max_words,
            "rerank_k": self.options.rerank_k,
        }
