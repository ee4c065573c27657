"""Evaluation of separation models: one job per module.

- `run`: orchestration — load a model, read a set, separate, and the command line
  (`wildsep evaluate`, `python -m wildsep.evaluate`).
- `score`: per-source metrics of one example, and their summaries.
- `report`: Markdown tables, metrics.json and metrics.md.

See docs/evaluation.md.
"""

from wildsep.evaluate.report import to_markdown, write_results
from wildsep.evaluate.run import (
    DESCRIPTION,
    EvaluationError,
    add_arguments,
    evaluate,
    main,
    run_command,
    set_name,
)
from wildsep.evaluate.score import (
    LABELS,
    METRICS,
    TASK_METRIC,
    TASKS,
    classify_task,
    score_example,
    score_prompted,
    score_unconditional,
    summarise,
)

__all__ = [
    "DESCRIPTION",
    "LABELS",
    "METRICS",
    "TASKS",
    "TASK_METRIC",
    "EvaluationError",
    "add_arguments",
    "classify_task",
    "evaluate",
    "main",
    "run_command",
    "score_example",
    "score_prompted",
    "score_unconditional",
    "set_name",
    "summarise",
    "to_markdown",
    "write_results",
]
