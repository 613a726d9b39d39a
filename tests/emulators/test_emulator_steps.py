"""Several batches per Lightning step: the same batches, in the same order, the same weights."""

from __future__ import annotations

from pathlib import Path

import torch

from emulators import EmulatorSpec, StoreDataModule
from emulators.module import ConditionalDensityModule
from emulators.train import _BestWeights, batches_per_step, make_trainer


def _loaded(store: Path, per_step: int) -> StoreDataModule:
    data = StoreDataModule(store, EmulatorSpec(batch_size=256), seed=0, batches_per_step=per_step)
    data.setup("fit")
    return data


def test_grouped_loaders_hand_out_the_same_batches_in_order(shared_gaussian_store: Path) -> None:
    single, grouped = _loaded(shared_gaussian_store, 1), _loaded(shared_gaussian_store, 3)
    batches = list(single.train_dataloader())
    groups = list(grouped.train_dataloader())
    assert [len(group) for group in groups] == [3, 3, 2]  # 8 batches of 1,800 rows
    flat = [batch for group in groups for batch in group]
    assert len(flat) == len(batches)
    for (theta, x), (theta_g, x_g) in zip(batches, flat, strict=True):
        assert torch.equal(theta, theta_g) and torch.equal(x, x_g)
    assert sum(len(t) for g in grouped.val_dataloader() for t, _ in g) == 200


def test_training_with_grouped_steps_gives_the_same_weights(shared_gaussian_store: Path) -> None:
    spec = EmulatorSpec(batch_size=256, max_epochs=2, patience=100)
    weights = []
    for per_step in (1, 4):
        data = StoreDataModule(shared_gaussian_store, spec, seed=0, batches_per_step=per_step)
        data.setup("fit")
        torch.manual_seed(0)
        module = ConditionalDensityModule(spec.model_dump(mode="json"), data.theta_dim, 3)
        module.set_statistics(data.statistics)
        trainer = make_trainer(2, callbacks=[_BestWeights()], logger=False, progress=False)
        trainer.fit(module, datamodule=data)
        weights.append(module.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not torch.equal(weights[0]["theta_mean"], torch.zeros(3))  # statistics were set


def test_batches_per_step_holds_few_rows_at_once() -> None:
    assert [batches_per_step(b) for b in (64, 512, 1024, 2048, 10_000)] == [8, 8, 4, 2, 1]
