"""Pipelines: the study config, the stages, the report and the ``emustudy`` command."""

from pipelines.config import StudyConfig, load_config
from pipelines.layout import StudyLayout
from pipelines.study import StudyRun, run_study

__all__ = ["StudyConfig", "StudyLayout", "StudyRun", "load_config", "run_study"]
