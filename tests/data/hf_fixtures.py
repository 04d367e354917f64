"""`datasets` datasets written in a temporary folder: a dataset repository of parquet files, a
save_to_disk folder, and a Hugging Face cache holding a Hub id (all offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def offline_hf_cache(tmp_path: Path, monkeypatch) -> Path:
    """An empty Hugging Face datasets cache in ``tmp_path``, offline (no test reaches the Hub)."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub

    cache = tmp_path / "hf-home" / "datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def write_parquet_repo(folder: Path, splits: dict[str, dict[str, list]], features=None, shards: int = 2) -> Path:
    """A dataset repository: ``data/<split>-0000i-of-0000n.parquet`` files, as on the Hub.

    Args:
        folder: where to write it.
        splits: split name -> columns (name -> values).
        features: the `datasets` Features of the columns (ClassLabel names travel in the parquet schema).
        shards: files per split (rows cut in order).
    """
    import datasets

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, columns in splits.items():
        table = datasets.Dataset.from_dict(columns, features=features)
        size = -(-len(table) // shards)
        for shard in range(shards):
            part = table.select(range(shard * size, min(len(table), (shard + 1) * size)))
            part.to_parquet(str(folder / "data" / f"{split}-{shard:05d}-of-{shards:05d}.parquet"))
    return folder


def write_saved_dataset(folder: Path, splits: dict[str, dict[str, list]], features=None) -> Path:
    """A ``save_to_disk`` folder of a DatasetDict with ``splits``."""
    import datasets

    datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(columns, features=features) for split, columns in splits.items()}
    ).save_to_disk(str(folder))
    return folder


def cache_hub_dataset(repo: Path, hub_id: str, cache: Path, work: Path) -> None:
    """Put the dataset repository ``repo`` into the datasets cache ``cache`` as the Hub id ``hub_id``.

    `datasets` prepares the repository into Arrow files (``<name>/<config>/<version>/<hash>/``) as it does
    after downloading a Hub dataset; the folder is then filed under the Hub id's cache name
    (``owner___name``), where offline loading looks for it.
    """
    import datasets

    owner, name = hub_id.split("/")
    assert repo.name == name, "the Arrow files are named after the dataset"
    datasets.load_dataset_builder(str(repo), cache_dir=str(work)).download_and_prepare()
    shutil.copytree(work / name, cache / f"{owner}___{name}")
