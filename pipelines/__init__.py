"""Pipelines: the study config, the stages, the report and the ``emustudy`` command.

``run_study`` and ``StudyRun`` are imported on first use: they pull in the stages and with them
Lightning, which commands that only read a config (``validate``, ``status``) and the child
processes of every command (which import the command's module again) need not pay for.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import StudyConfig, load_config
from pipelines.layout import StudyLayout

__all__ = ["StudyConfig", "StudyLayout", "StudyRun", "load_config", "run_study"]


def __getattr__(name: str) -> Any:
    if name not in ("StudyRun", "run_study"):
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    from pipelines import study

    value = getattr(study, name)
    globals()[name] = value
    return value
