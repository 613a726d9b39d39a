"""A training run killed by SIGKILL resumes from its last checkpoint and ends as it would have."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from emulators import EmulatorSpec, FidelityLevel, train_emulator

LEVEL = FidelityLevel(
    name="resumable",
    simplification=1.0,
    emulator=EmulatorSpec(
        transforms=1, hidden_features=8, hidden_layers=1, batch_size=64, max_epochs=8, patience=50
    ),
)

# Trains in a child process that SIGKILLs itself right after the checkpoint of its third epoch
# is on disk: a hard kill at a known point, with nothing flushed or cleaned up.
_KILLED_RUN = textwrap.dedent(
    """
    import json, os, signal, sys
    from emulators import FidelityLevel, train_emulator
    from emulators.train import _ResumePoint

    saves = []
    original = _ResumePoint.on_train_epoch_end

    def save_then_die(self, trainer, pl_module):
        original(self, trainer, pl_module)
        saves.append(trainer.current_epoch)
        if len(saves) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    _ResumePoint.on_train_epoch_end = save_then_die
    if __name__ == "__main__":
        store, level, out_dir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
        train_emulator(store, FidelityLevel.model_validate(level), out_dir, seed=0, progress=False)
    """
)


def _kill_midway(store: Path, out_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "killed_run.py"
    script.write_text(_KILLED_RUN)
    level = json.dumps(LEVEL.model_dump(mode="json"))
    done = subprocess.run(
        [sys.executable, str(script), str(store), level, str(out_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint_and_finishes(
    shared_gaussian_store: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "killed"
    _kill_midway(shared_gaussian_store, out_dir, tmp_path)
    assert (out_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (out_dir / "emulator.pt").exists()

    resumed = torch.load(
        train_emulator(shared_gaussian_store, LEVEL, out_dir, seed=0, progress=False),
        weights_only=True,
    )
    assert resumed["training"]["resumed_from"].endswith("last.ckpt")
    assert resumed["training"]["epochs"] == LEVEL.emulator.max_epochs
    assert not (out_dir / "checkpoints").exists()  # cleared once the emulator is written
    rows = (out_dir / "logs").glob("version_*/metrics.csv")
    epochs_logged = sorted(
        int(float(line.split(",")[0] or 0))
        for path in rows
        for line in path.read_text().splitlines()[1:]
        if line.split(",")[0]
    )
    assert min(epochs_logged[len(epochs_logged) // 2 :]) > 0  # the second run did not restart

    straight = torch.load(
        train_emulator(shared_gaussian_store, LEVEL, tmp_path / "straight", seed=0, progress=False),
        weights_only=True,
    )
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert straight["training"]["best_epoch"] == resumed["training"]["best_epoch"]


def test_a_resume_folder_of_another_run_is_not_used(
    shared_gaussian_store: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"level": "someone else's"}))
    (folder / "last.ckpt").write_bytes(b"not a checkpoint")
    quick = LEVEL.model_copy(
        update={"emulator": LEVEL.emulator.model_copy(update={"max_epochs": 1})}
    )
    path = train_emulator(shared_gaussian_store, quick, tmp_path, seed=0, progress=False)
    assert torch.load(path, weights_only=True)["training"]["resumed_from"] is None
