"""See and compare runs: find run directories, read their status and metrics, tabulate and plot them.

    discovery   run directories under some folders (``.hydra/config.yaml`` or ``metrics.jsonl``)
    run_files   a run's small files read as untrusted data (regular files only, bounded, typed)
    metrics_log ``metrics.jsonl`` streamed line by line, malformed lines skipped
    run_state   finished / running / interrupted / failed, from ``status.json`` or the files
    record      one run read back: config, overrides, summary, status, main metric (or why unreadable)
    display_text  text from a run folder made safe to print (control characters escaped)
    compare     the overrides that tell runs apart, legend labels, ranking by the main metric
    series      a metric's values against step, tokens seen or training time
    table       rows for ``lmtrain runs``: a rich table, JSON lines, CSV and Markdown
    drawing     pictures as shapes in pixel coordinates, written as PNG (with Pillow) or SVG
    chart       panels of lines, bars and heat maps, their ticks and legends, as data
    chart_drawing  a chart laid out and drawn as a picture
    plot        ``curves.png``: one panel per metric, one line per run
    baselines   the ``baseline/<name>`` scores a run recorded, drawn beside the metric they stand for
    task_plots  ``confusion.png`` and ``f1_per_class.png`` of fine-tuned runs, several side by side
    sweep       the Hydra callback that writes ``sweep_summary.csv`` / ``.md`` after ``-m``

Everything here reads the run directory contract (README, "Run directory") and nothing else,
so it works on runs of any command and of older versions.
"""

from lmtrain.runs.discovery import find_run_dirs
from lmtrain.runs.record import RunRecord, load_run, load_runs

__all__ = ["find_run_dirs", "RunRecord", "load_run", "load_runs"]
