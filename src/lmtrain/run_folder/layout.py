"""The run directory contract shared by every command (see README, "Run directory").

```
<run dir>/.hydra/config.yaml      resolved config (written by Hydra)
<run dir>/metrics.jsonl           one JSON object per logging / evaluation event, with "step"
<run dir>/summary.json            final metrics, wall time, tokens/s
<run dir>/tokenizer.json          the tokenizer the run used
<run dir>/checkpoints/step-N/     model.safetensors, model.json, tokenizer.json, trainer_state.pt
<run dir>/checkpoints/last        link to the newest complete checkpoint
<run dir>/.lmtrain-files          what lmtrain created in the folder (see lmtrain.run_folder.manifest)
```
Other commands find runs by this layout, so it is a public contract. Every file is written through
:mod:`lmtrain.files.atomic`: never through a link, and never over a file lmtrain did not write.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lmtrain.files.atomic import make_dirs, open_text, write_text

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINTS_DIR = "checkpoints"


def hydra_run_dir() -> Path:
    """The output directory Hydra chose for this job (the current directory outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # not running under Hydra (tests, library use)
        return Path.cwd()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN / inf; null keeps every line parseable
    if hasattr(value, "item"):
        return _json_safe(value.item())
    return value


class RunDir:
    """Writes the files of one run directory.

    Args:
        path: the run directory (created if missing).
    """

    def __init__(self, path: str | Path):
        self.path = make_dirs(Path(path))

    @property
    def metrics_path(self) -> Path:
        """``metrics.jsonl``."""
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        """``summary.json``."""
        return self.path / SUMMARY_FILE

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``."""
        return self.path / CHECKPOINTS_DIR

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one event ``{"step": step, **metrics}`` to ``metrics.jsonl``."""
        record = {"step": step, **{k: _json_safe(v) for k, v in metrics.items()}}
        with open_text(self.metrics_path) as f:
            f.write(json.dumps(record) + "\n")

    def truncate_metrics(self, after_step: int) -> None:
        """Drop events with ``step > after_step`` (a resumed run re-logs them, never twice)."""
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= after_step:
                    kept.append(line)
            except json.JSONDecodeError:  # a line cut by a crash: drop it
                continue
        write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` atomically."""
        write_text(self.summary_path, json.dumps({k: _json_safe(v) for k, v in summary.items()}, indent=2) + "\n")


def lower_is_better(metric: str) -> bool:
    """Direction of a metric by its name: losses and perplexities fall, everything else rises."""
    return any(word in metric for word in ("loss", "ppl", "perplexity"))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All events of a run's ``metrics.jsonl`` (empty if there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
