"""Loading refuses missing, corrupt, foreign and unsafe checkpoints with a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from emulators import CheckpointError, Emulator
from simulators.errors import EmustudyError


class _Planted:
    """A pickle payload: unpickling it opens (creates) ``marker`` for writing."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "emulator.pt"
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read emulator checkpoint {path}")):
        Emulator.load(path)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "emulator.pt"
    path.write_bytes(b"definitely not a torch file")
    with pytest.raises(CheckpointError, match="not a safe, readable emulator checkpoint"):
        Emulator.load(path)


def test_foreign_format_and_missing_entries(full_checkpoint: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "someone-else/3", "weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="found format 'someone-else/3'"):
        Emulator.load(foreign)
    checkpoint = torch.load(full_checkpoint, weights_only=True)
    del checkpoint["state_dict"]
    partial = tmp_path / "partial.pt"
    torch.save(checkpoint, partial)
    with pytest.raises(CheckpointError, match=r"lacks the entries \['state_dict'\]"):
        Emulator.load(partial)


def test_inconsistent_weights(full_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(full_checkpoint, weights_only=True)
    checkpoint["spec"]["emulator"]["hidden_features"] = 99
    wrong = tmp_path / "wrong.pt"
    torch.save(checkpoint, wrong)
    with pytest.raises(CheckpointError, match="inconsistent emulator checkpoint"):
        Emulator.load(wrong)


def test_planted_pickle_payload_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "emulator.pt"
    torch.save({"format": "emustudy-emulator/1", "spec": _Planted(marker)}, path)
    with pytest.raises(CheckpointError, match=re.escape(str(path))) as caught:
        Emulator.load(path)
    assert isinstance(caught.value, EmustudyError)
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()
