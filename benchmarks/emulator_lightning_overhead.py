"""Lightning's overhead against a plain PyTorch loop training the same emulator, side by side.

Run ``python benchmarks/emulator_lightning_overhead.py``. Both train the same
``ConditionalDensityModule`` (MAF, 3 transforms of 2x64) from the same initial weights on the
same batches (the same ``StoreDataModule`` loaders: 50,000 Gaussian-linear rows in 5-D, batch
512) for the same number of epochs, with validation every epoch and the best weights kept:

* plain: a hand-written loop (Adam step per batch, validation loss per epoch, best-weights copy);
* Lightning, bare, one batch per step: ``make_trainer`` (the Trainer ``train_emulator`` uses)
  with the best-weights callback, no logger, no checkpoint;
* Lightning, as in ``train_emulator``: ``batches_per_step(512)`` = 8 batches per Lightning step
  (the same batches in the same order, one Adam step each), the CSV logger and the per-epoch
  resume checkpoint.

The plain loop and ``train_emulator``'s Lightning loop must end with the same weights (checked).

Runs alternate (plain, bare, full, plain, ...) and the fastest of ``REPEATS`` is kept for each,
which filters out the noise of a shared machine; CPU time (``time.process_time``, one torch
thread) is printed too, as it is less sensitive to other processes. Target: overhead <= 10 %.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
import warnings
from pathlib import Path

import lightning
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger

from emulators import EmulatorSpec
from emulators.data import StoreDataModule
from emulators.module import ConditionalDensityModule
from emulators.train import (
    _BestWeights,
    _quiet_lightning,
    _ResumePoint,
    batches_per_step,
    make_trainer,
)
from simulators import Stream, make_simulator, sample_seeds
from simulators.store import Status, create_store, store_identity, write_rows

N_ROWS, EPOCHS, REPEATS = 50_000, 6, 5
SPEC = EmulatorSpec(batch_size=512, max_epochs=EPOCHS, patience=100)


def _store(folder: Path) -> Path:
    simulator = make_simulator("gaussian_linear", dim=5)
    rng = np.random.default_rng(0)
    theta = simulator.prior.sample(rng, N_ROWS)
    x = theta + math.sqrt(0.1) * rng.standard_normal(theta.shape)  # the model, vectorised
    seeds = sample_seeds(0, np.arange(N_ROWS), Stream.SIMULATION)
    store = folder / "train.zarr"
    identity = store_identity(simulator, n_samples=N_ROWS, chunk_size=N_ROWS, campaign_seed=0)
    create_store(store, identity, simulator.prior.names, simulator.output_names)
    ok = np.full(N_ROWS, Status.OK, dtype=np.int8)
    write_rows(store, 0, theta=theta, x=x, seed=seeds, elapsed=np.zeros(N_ROWS), status=ok)
    return store


def _fresh(data: StoreDataModule, initial: dict) -> ConditionalDensityModule:
    module = ConditionalDensityModule(SPEC.model_dump(mode="json"), data.theta_dim, data.x_dim)
    module.load_state_dict(initial)
    data.set_epoch(0)
    return module


def plain(data: StoreDataModule, initial: dict) -> tuple[float, float, dict]:
    module = _fresh(data, initial)
    optimiser = module.configure_optimizers()
    best, best_state = math.inf, None
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(EPOCHS):
        module.train()
        for theta, x in data.train_dataloader():
            optimiser.zero_grad()
            loss = module._nll(theta, x)
            loss.backward()
            optimiser.step()
        module.eval()
        with torch.no_grad():
            total, count = 0.0, 0
            for theta, x in data.val_dataloader():
                total += float(module._nll(theta, x)) * len(x)
                count += len(x)
        if total / count < best:
            best = total / count
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    assert best_state is not None
    return time.perf_counter() - began, time.process_time() - cpu, best_state


def with_lightning(
    data: StoreDataModule, initial: dict, folder: Path | None
) -> tuple[float, float, dict]:
    module = _fresh(data, initial)
    callbacks = [_BestWeights()]
    logger = False
    if folder is not None:
        callbacks.append(_ResumePoint(folder / "last.ckpt"))
        logger = CSVLogger(folder, name="logs")
    trainer = make_trainer(EPOCHS, callbacks=callbacks, logger=logger, progress=False)
    began, cpu = time.perf_counter(), time.process_time()
    trainer.fit(module, datamodule=data)
    return time.perf_counter() - began, time.process_time() - cpu, module.state_dict()


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # one thread each, as two trainings share a 2-core machine
    with tempfile.TemporaryDirectory() as name, _quiet_lightning(True):
        folder = Path(name)
        store = _store(folder)
        data = StoreDataModule(store, SPEC, seed=0)
        data.setup()
        per_step = batches_per_step(SPEC.batch_size)
        grouped = StoreDataModule(store, SPEC, seed=0, batches_per_step=per_step)
        grouped.setup()
        lightning.seed_everything(0, verbose=False)
        module = ConditionalDensityModule(SPEC.model_dump(mode="json"), data.theta_dim, data.x_dim)
        module.set_statistics(data.statistics)
        initial = copy.deepcopy(module.state_dict())
        times: dict[str, list[tuple[float, float]]] = {"plain": [], "bare": [], "full": []}
        for repeat in range(REPEATS):
            *took, plain_state = plain(data, initial)
            times["plain"].append(tuple(took))
            times["bare"].append(with_lightning(data, initial, None)[:2])
            *took, full_state = with_lightning(grouped, initial, folder / f"run{repeat}")
            times["full"].append(tuple(took))
        difference = max(
            float((plain_state[key].double() - full_state[key].double()).abs().max())
            for key in plain_state
        )
    best = {key: min(wall for wall, _ in values) for key, values in times.items()}
    best_cpu = {key: min(cpu for _, cpu in values) for key, values in times.items()}
    steps = EPOCHS * math.ceil(data.n_train / SPEC.batch_size)
    print(f"{N_ROWS} rows, batch {SPEC.batch_size}, {EPOCHS} epochs ({steps} steps), MAF 3x(2x64)")
    print(
        f"| loop | best wall of {REPEATS} (s) | all walls (s) | wall overhead "
        "| best CPU time (s) | CPU overhead |"
    )
    print("|---|---|---|---|---|---|")
    labels = {
        "plain": "plain PyTorch",
        "bare": "Lightning, bare, 1 batch per step",
        "full": f"Lightning, as train_emulator ({per_step} batches per step, CSV log, "
        "resume checkpoint)",
    }
    for key, label in labels.items():
        runs = ", ".join(f"{wall:.2f}" for wall, _ in times[key])
        overhead = 100 * (best[key] / best["plain"] - 1)
        cpu = 100 * (best_cpu[key] / best_cpu["plain"] - 1)
        print(
            f"| {label} | {best[key]:.2f} | {runs} | {overhead:+.1f} % "
            f"| {best_cpu[key]:.2f} | {cpu:+.1f} % |"
        )
    print(f"largest weight difference, plain loop vs train_emulator's loop: {difference:.2e}")


if __name__ == "__main__":
    main()
