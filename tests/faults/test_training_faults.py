"""Training killed by SIGKILL at random points, then run again: it resumes, recomputes nothing
finished, and ends exactly (tolerance zero: bit for bit) as an uninterrupted run.

The kills land after a delay drawn from a fixed-seed generator once the first checkpoint is on
disk, so they hit any point of an epoch, a checkpoint write included. Killed runs are child
processes running the real training functions; every process trains on one torch thread, so
their arithmetic is the same as this test process's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_stores import write_gaussian_store

from emulators import EmulatorSpec, FidelityLevel, train_emulator
from inference import child_seed, load_posterior, train_npe
from inference.resume import resumable
from pipelines.config import load_config
from pipelines.scoring import train_replicates
from pipelines.units import LikelihoodSource
from simulators import make_simulator
from simulators.store import load_pairs

QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
FRACTIONS = np.random.default_rng(20240607).uniform(0.05, 0.3, size=3)
"""Kill delays, as fractions of the training time of an uninterrupted run here (so that the
kills land inside training whatever the machine's speed)."""

LEVEL = FidelityLevel(
    name="killed",
    simplification=1.0,
    emulator=EmulatorSpec(
        transforms=1, hidden_features=8, hidden_layers=1, batch_size=64, max_epochs=30, patience=99
    ),
)
INFERENCE = {
    "density_estimator": "maf",
    "hidden_features": 16,
    "num_transforms": 1,
    "training_batch_size": 64,
    "max_num_epochs": 30,
    "stop_after_epochs": 99,  # never stops early: the run is long enough to be killed
    "replicates": 2,
}


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _run_and_kill(script: str, args: list[str], ready, delay: float) -> None:
    """Run ``script`` in a child, wait until ``ready()`` is true, wait ``delay``, SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready():
        assert child.poll() is None, f"the child ended before its checkpoint: {child.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"finished before the kill: {stderr[-2000:]}"


_EMULATOR_RUN = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from emulators import FidelityLevel, train_emulator
    store, level, out_dir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    train_emulator(store, FidelityLevel.model_validate(level), out_dir, seed=0, progress=False)
    """
)


def _epochs_logged(log: Path) -> list[int]:
    lines = log.read_text().splitlines()
    column = lines[0].split(",").index("epoch")
    return sorted({int(float(line.split(",")[column])) for line in lines[1:]})


@pytest.mark.slow
def test_emulator_training_killed_at_a_random_point_resumes_exactly(tmp_path: Path) -> None:
    store = write_gaussian_store(tmp_path / "train.zarr", dim=3)
    straight = torch.load(
        train_emulator(store, LEVEL, tmp_path / "straight", seed=0, progress=False),
        weights_only=True,
    )
    seconds = straight["training"]["seconds"]

    out_dir = tmp_path / "killed"
    last = out_dir / "checkpoints" / "last.ckpt"
    level = json.dumps(LEVEL.model_dump(mode="json"))
    args = [str(store), level, str(out_dir)]
    _run_and_kill(_EMULATOR_RUN, args, last.exists, FRACTIONS[0] * seconds)
    assert not (out_dir / "emulator.pt").exists()
    # The run resumes from last.ckpt, or from previous.ckpt when the kill fell between the two.
    resume_from = last if last.exists() else last.with_name("previous.ckpt")
    done = torch.load(resume_from, weights_only=True)["epoch"]
    assert 0 <= done < LEVEL.emulator.max_epochs - 1

    resumed = torch.load(
        train_emulator(store, LEVEL, out_dir, seed=0, progress=False), weights_only=True
    )
    assert resumed["training"]["resumed_from"] == str(resume_from)
    logs = sorted((out_dir / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    # No epoch up to the checkpoint is trained again, and every later one is trained once.
    assert _epochs_logged(logs[-1] / "metrics.csv") == list(
        range(done + 1, LEVEL.emulator.max_epochs)
    )
    assert not (out_dir / "checkpoints").exists()
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for name, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name
    assert straight["training"]["best_epoch"] == resumed["training"]["best_epoch"]
    assert straight["training"]["best_val_loss"] == resumed["training"]["best_val_loss"]


_INFER_RUN = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from pathlib import Path
    from inference import MethodContext, MethodSettings, child_seed, train_posterior_to
    from simulators import make_simulator
    from simulators.store import load_pairs
    store, settings, outs, seed = sys.argv[1:5]
    theta, x, _ = load_pairs(Path(store))
    prior = make_simulator("gaussian_linear", **json.loads(sys.argv[5])).prior
    settings = MethodSettings.model_validate_json(settings)
    # The loop of pipelines.scoring.train_replicates, saving a state after every epoch.
    for index, out in enumerate(json.loads(outs)):
        seed_i = child_seed(int(seed), index)
        context = MethodContext(checkpoint_every=0)
        train_posterior_to(out, "npe", theta, x, prior, settings, seed=seed_i, context=context)
    """
)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_npe_training_killed_twice_at_random_points_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicates of the infer stage, killed twice while training the second one."""
    config = load_config(QUICKSTART, output_dir=tmp_path, inference=INFERENCE)
    store = write_gaussian_store(tmp_path / "train.zarr", **config.simulator.settings)
    prior = make_simulator(config.simulator.name, **config.simulator.settings).prior
    theta, x, _ = load_pairs(store)
    seed, settings = 11, config.inference.method_settings
    with pytest.warns(UserWarning, match="max_num_epochs"):
        straight = train_npe(theta, x, prior, settings, seed=child_seed(seed, 1))
    seconds = straight.training.seconds

    level = tmp_path / "level"
    outs = [level / "posterior.pt", level / "posterior-1.pt"]
    args = [str(store), settings.model_dump_json(), json.dumps([str(p) for p in outs]), str(seed)]
    args.append(json.dumps(config.simulator.settings))
    latest = level / "posterior-1.training" / "latest.pt"
    _run_and_kill(_INFER_RUN, args, latest.exists, FRACTIONS[1] * seconds)
    assert outs[0].is_file() and not outs[1].exists()
    first = outs[0].read_bytes(), _mtime(outs[0])
    seen = _mtime(latest)
    _run_and_kill(_INFER_RUN, args, lambda: _mtime(latest) > seen, FRACTIONS[2] * seconds)
    assert not outs[1].exists()
    state = latest if latest.exists() else latest.with_name("previous.pt")
    done = torch.load(state, weights_only=True)["epoch"]
    assert 0 < done < INFERENCE["max_num_epochs"]

    trained_epochs: list[int] = []
    from sbi.inference import NPE

    resumable_npe = resumable(NPE)
    original = resumable_npe._train_epoch

    def counted(self: object, *args: object) -> float:
        trained_epochs.append(self.epoch)
        return original(self, *args)

    monkeypatch.setattr(resumable_npe, "_train_epoch", counted)
    with pytest.warns(UserWarning, match="max_num_epochs"):
        train_replicates(  # the infer stage's task
            "npe", settings, prior, store, None, outs, seed, LikelihoodSource()
        )
    # Replicate 0 was finished: kept as it was. Replicate 1 went on from its last saved epoch.
    assert (outs[0].read_bytes(), _mtime(outs[0])) == first
    assert trained_epochs == list(range(done, INFERENCE["max_num_epochs"] + 1))
    assert not (level / "posterior-1.training").exists()

    resumed = load_posterior(outs[1], prior)
    assert resumed.training.resumed_epochs == done
    assert straight.training.training_loss == resumed.training.training_loss
    assert straight.training.validation_loss == resumed.training.validation_loss
    weights = straight.posterior.posterior_estimator.state_dict()
    for name, value in resumed.posterior.posterior_estimator.state_dict().items():
        assert torch.equal(value, weights[name]), name
    theta_test, x_test = theta[:200], x[:200] + 0.05
    np.testing.assert_array_equal(
        straight.log_prob(theta_test, x_test), resumed.log_prob(theta_test, x_test)
    )
