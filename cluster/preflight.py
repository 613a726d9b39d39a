"""Checks that a cluster profile can start on this machine, before anything runs.

``emustudy validate`` runs them: a study with ``profile: slurm`` validated on a laptop is fine
(it will be copied to the cluster), but the user should hear there, not an hour later, that this
machine has no SLURM, that slurmctld does not answer, or that the profile's partition does not
exist.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

__all__ = ["profile_problems"]

_FIX = (
    "run it on a login node of your SLURM cluster, start the single-node SLURM of "
    "cluster/local_slurm.sh (as root), or use `cluster: {profile: local}`"
)


def profile_problems(profile: Any) -> list[str]:
    """What would stop ``profile``'s cluster from starting here (empty when nothing was found).

    Parameters
    ----------
    profile : ClusterProfile
        A loaded profile (:func:`cluster.profiles.load_profile`); only ``kind: slurm`` is checked.

    Returns
    -------
    list of str
        One sentence per problem, naming it and the fix.
    """
    if getattr(profile, "kind", None) != "slurm":
        return []
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return [f"cluster profile kind 'slurm' needs SLURM, but sbatch is not on PATH here: {_FIX}"]
    try:
        found = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return [f"SLURM's sinfo did not answer ({err}); is slurmctld running? {_FIX}"]
    if found.returncode != 0:
        reason = found.stderr.strip()
        return [f"SLURM's sinfo failed ({reason}): slurmctld is not reachable; {_FIX}"]
    partitions = sorted({name.rstrip("*") for name in found.stdout.split()})
    queue = getattr(profile, "queue", None)
    if queue and queue not in partitions:
        return [
            f"the profile's partition (queue: {queue}) is not one of this SLURM's: "
            f"{', '.join(partitions) or 'none'}; set `queue:` in the profile (or in "
            "cluster.overrides) to one of them"
        ]
    return []
