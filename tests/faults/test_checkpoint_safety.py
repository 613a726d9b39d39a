"""Damaged and unsafe checkpoints: a fall-back to the previous good one, or an error naming the
file; never a silent restart from scratch, never a NaN read as data, never planted code run.

Covers the files that tests/emulators/test_emulator_checkpoint.py (emulator.pt: garbage bytes,
planted pickle) and tests/inference/test_posterior_files.py (posterior: truncated, planted
pickle) do not: the emulator's resume checkpoints, NPE training states, level stand-ins, and
checkpoints whose bytes were overwritten in place.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fault_stores import write_gaussian_store

from emulators import CheckpointError, EmulatorSpec, FidelityLevel, train_emulator
from emulators.levels import STAND_IN_FORMAT, load_stand_in
from inference import NPEPosterior, NPESettings, ResultFileError, load_posterior, train_npe
from simulators import make_simulator
from simulators.errors import EmustudyError

LEVEL = FidelityLevel(
    name="damaged",
    simplification=1.0,
    emulator=EmulatorSpec(
        transforms=1, hidden_features=8, hidden_layers=1, batch_size=64, max_epochs=4, patience=99
    ),
)
SETTINGS = NPESettings(
    hidden_features=16, num_transforms=1, training_batch_size=64, max_num_epochs=12
)
SIMULATOR = make_simulator("gaussian_linear", dim=3)


class _Planted:
    """A pickle payload: unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _truncate(path: Path, marker: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path, marker: Path) -> None:
    """Overwrite 64 bytes in the middle in place (0xFF bytes read as NaN if taken for floats)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def _plant(path: Path, marker: Path) -> None:
    torch.save({"format": "anything", "state_dict": _Planted(marker)}, path)


DAMAGES: dict[str, Callable[[Path, Path], None]] = {
    "truncated": _truncate,
    "garbled": _garble,
    "planted": _plant,
}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished store of 1000 valid Gaussian-linear rows (dim 3)."""
    return write_gaussian_store(tmp_path_factory.mktemp("store") / "train.zarr", 1000, dim=3)


# Trains in a child that SIGKILLs itself once the checkpoint of epoch argv[4] is on disk.
_KILLED_RUN = textwrap.dedent(
    """
    import json, os, signal, sys, torch
    torch.set_num_threads(1)
    from emulators import FidelityLevel, train_emulator
    from emulators.train import _ResumePoint

    original = _ResumePoint.on_train_epoch_end

    def save_then_die(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if trainer.current_epoch == int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)

    _ResumePoint.on_train_epoch_end = save_then_die
    store, level, out_dir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    train_emulator(store, FidelityLevel.model_validate(level), out_dir, seed=0, progress=False)
    """
)


def _kill_emulator_training_after(epoch: int, store: Path, out_dir: Path) -> Path:
    """Train ``LEVEL`` in a child killed once the checkpoint of ``epoch`` is on disk."""
    level = json.dumps(LEVEL.model_dump(mode="json"))
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(store), level, str(out_dir), str(epoch)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return out_dir


@pytest.fixture(scope="module")
def killed_emulator_run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of an emulator training killed after its third epoch: the resume
    folder holds last.ckpt (epoch 2) and previous.ckpt (epoch 1)."""
    out_dir = _kill_emulator_training_after(2, store, tmp_path_factory.mktemp("killed"))
    assert {p.name for p in (out_dir / "checkpoints").iterdir()} >= {"last.ckpt", "previous.ckpt"}
    return out_dir


@pytest.fixture(scope="module")
def straight_emulator(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same level trained without interruption."""
    return train_emulator(store, LEVEL, tmp_path_factory.mktemp("straight"), seed=0, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_last_ckpt_falls_back_to_the_previous_one(
    damage: str, store: Path, killed_emulator_run: Path, straight_emulator: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "run"
    shutil.copytree(killed_emulator_run, out_dir)
    last, marker = out_dir / "checkpoints" / "last.ckpt", tmp_path / "payload-ran"
    DAMAGES[damage](last, marker)
    with pytest.warns(UserWarning, match=f"resume checkpoint {last} .*resuming from .*previous"):
        path = train_emulator(store, LEVEL, out_dir, seed=0, progress=False)
    assert not marker.exists()
    resumed = torch.load(path, weights_only=True)
    assert resumed["training"]["resumed_from"].endswith("previous.ckpt")
    straight = torch.load(straight_emulator, weights_only=True)
    for name, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name


def test_a_run_killed_after_its_first_epoch_resumes_with_early_stopping_up_to_date(
    store: Path, straight_emulator: Path, tmp_path: Path
) -> None:
    """The first checkpoint is written after EarlyStopping has judged the epoch (it once held
    best_score = inf, and was refused as "NaN or infinite weights")."""
    out_dir = _kill_emulator_training_after(0, store, tmp_path / "run")
    state = torch.load(out_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0
    stopping = next(v for k, v in state["callbacks"].items() if k.startswith("EarlyStopping"))
    assert float(stopping["best_score"]) == state["callbacks"]["_BestWeights"]["loss"]
    resumed = torch.load(
        train_emulator(store, LEVEL, out_dir, seed=0, progress=False), weights_only=True
    )
    assert resumed["training"]["resumed_from"].endswith("last.ckpt")
    straight = torch.load(straight_emulator, weights_only=True)
    for name, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name


def test_no_readable_resume_checkpoint_is_an_error_not_a_restart(
    store: Path, killed_emulator_run: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "run"
    shutil.copytree(killed_emulator_run, out_dir)
    folder, marker = out_dir / "checkpoints", tmp_path / "payload-ran"
    _truncate(folder / "last.ckpt", marker)
    _plant(folder / "previous.ckpt", marker)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(EmustudyError, match=f"no readable resume checkpoint in {folder}") as err:
        train_emulator(store, LEVEL, out_dir, seed=0, progress=False)
    assert "last.ckpt" in str(err.value) and "previous.ckpt" in str(err.value)
    assert f"delete {folder}" in str(err.value)
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing removed
    assert not (out_dir / "emulator.pt").exists()


@pytest.fixture(scope="module")
def npe_run(store: Path, tmp_path_factory: pytest.TempPathFactory):
    """A finished checkpointed NPE training: its state folder and the posterior it gave."""
    from simulators.store import load_pairs

    theta, x, _ = load_pairs(store)
    folder = tmp_path_factory.mktemp("npe") / "states"
    with pytest.warns(UserWarning, match="max_num_epochs"):
        posterior = train_npe(
            theta, x, SIMULATOR.prior, SETTINGS, seed=5, checkpoint=folder, checkpoint_every=0
        )
    assert torch.load(folder / "latest.pt", weights_only=True)["finished"]
    assert not torch.load(folder / "previous.pt", weights_only=True)["finished"]
    return theta, x, folder, posterior


def _same_weights(a: NPEPosterior, b: NPEPosterior) -> None:
    weights = a.posterior.posterior_estimator.state_dict()
    for name, value in b.posterior.posterior_estimator.state_dict().items():
        assert torch.equal(value, weights[name]), name


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_npe_training_state_falls_back_to_the_previous_one(
    damage: str, npe_run, tmp_path: Path
) -> None:
    theta, x, folder, posterior = npe_run
    copy, marker = tmp_path / "states", tmp_path / "payload-ran"
    shutil.copytree(folder, copy)
    DAMAGES[damage](copy / "latest.pt", marker)
    with (
        pytest.warns(UserWarning, match=f"{copy / 'latest.pt'} was not used"),
        pytest.warns(UserWarning, match="max_num_epochs"),
    ):
        resumed = train_npe(theta, x, SIMULATOR.prior, SETTINGS, seed=5, checkpoint=copy)
    assert not marker.exists()
    # previous.pt is the state after the last epoch: only the end of training is redone.
    assert resumed.training.resumed_epochs == SETTINGS.max_num_epochs + 1
    assert resumed.training.validation_loss == posterior.training.validation_loss
    _same_weights(posterior, resumed)


def test_no_readable_npe_training_state_is_an_error_not_a_restart(npe_run, tmp_path: Path) -> None:
    theta, x, folder, _ = npe_run
    copy, marker = tmp_path / "states", tmp_path / "payload-ran"
    shutil.copytree(folder, copy)
    _garble(copy / "latest.pt", marker)
    _plant(copy / "previous.pt", marker)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    with pytest.raises(ResultFileError, match=f"no readable NPE training state in {copy}") as err:
        train_npe(theta, x, SIMULATOR.prior, SETTINGS, seed=5, checkpoint=copy)
    assert "latest.pt" in str(err.value) and "previous.pt" in str(err.value)
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_a_finished_state_is_not_trained_again(npe_run, tmp_path: Path) -> None:
    theta, x, folder, posterior = npe_run
    shutil.copytree(folder, tmp_path / "states")
    again = train_npe(theta, x, SIMULATOR.prior, SETTINGS, seed=5, checkpoint=tmp_path / "states")
    assert again.training.resumed_epochs == posterior.training.epochs
    _same_weights(posterior, again)


def test_a_garbled_posterior_file_or_nan_weights_are_refused(npe_run, tmp_path: Path) -> None:
    *_, posterior = npe_run
    path, marker = tmp_path / "posterior.pt", tmp_path / "unused"
    posterior.save(path)
    _garble(path, marker)
    with pytest.raises(ResultFileError, match=str(path)):
        load_posterior(path, SIMULATOR.prior)
    posterior.save(path)
    payload = torch.load(path, weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], torch.nan)
    torch.save(payload, path)
    with pytest.raises(ResultFileError, match=f"{path}.*NaN"):
        load_posterior(path, SIMULATOR.prior)


def test_an_emulator_checkpoint_with_nan_weights_is_refused(
    straight_emulator: Path, tmp_path: Path
) -> None:
    checkpoint = torch.load(straight_emulator, weights_only=True)
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][name] = torch.full_like(checkpoint["state_dict"][name], torch.nan)
    path = tmp_path / "emulator.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=f"{path} holds NaN"):
        load_stand_in(path)


def test_a_planted_or_edited_stand_in_is_refused(tmp_path: Path) -> None:
    marker, path = tmp_path / "payload-ran", tmp_path / "emulator.pt"
    torch.save({"format": STAND_IN_FORMAT, "spec": _Planted(marker)}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_stand_in(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()
    torch.save({"format": STAND_IN_FORMAT, "spec": {"kind": "nonsense"}}, path)
    with pytest.raises(CheckpointError, match=f"{path} is a stand-in record whose level"):
        load_stand_in(path)
