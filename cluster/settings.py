"""How a campaign treats failing and hanging simulations: a small frozen settings model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CampaignSettings"]


class CampaignSettings(BaseModel):
    """Retries, timeouts and batching of a campaign's simulator calls.

    Attributes
    ----------
    retries : int
        Extra runs of a sample whose simulation raised, before it is recorded as failed. A batch
        that raises is first split into single samples, so one bad theta never fails its
        neighbours.
    timeout_s : float, optional
        Seconds one sample may take. When set, the simulator runs in a child process that is
        killed at the deadline (a batch of ``k`` rows gets ``timeout_s`` beyond ``k`` times the
        seconds per row measured on the worker, see :mod:`cluster.execute`), so even a simulator
        holding the GIL cannot take its Dask worker down; timed-out samples are not retried.
        None runs the simulator in the worker process itself, which is faster but cannot stop a
        hang.
    batch_size : int, optional
        Samples per simulator call inside a chunk; None passes the whole chunk at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    retries: int = Field(2, ge=0, le=100, description="extra runs of a sample that raised")
    timeout_s: float | None = Field(
        None, gt=0, description="seconds per sample; set it to stop hung simulations"
    )
    batch_size: int | None = Field(
        None, gt=0, description="samples per simulator call; default: the whole chunk"
    )

    def identity(self) -> dict[str, Any]:
        """The settings that decide a store's ledger, stored with the campaign's identity."""
        return {"retries": self.retries, "timeout_s": self.timeout_s}
