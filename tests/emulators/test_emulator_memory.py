"""Large allocations are mmap'd while an emulator trains, and only then."""

import subprocess
import sys

PROBE = """
import numpy as np
from emulators.memory import large_allocations_mapped, mapped_bytes

def grows(nbytes):
    before = mapped_bytes()
    block = np.ones(nbytes, dtype=np.uint8)
    return mapped_bytes() - before, block

with large_allocations_mapped(2**20) as applied:
    inside, _ = grows(3 * 2**20)
outside, _ = grows(3 * 2**20)
print(applied, inside, outside)
"""


def test_large_allocations_are_mapped_inside_the_block_only():
    # a fresh interpreter, so earlier frees in this process do not move glibc's threshold
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
    )
    applied, inside, outside = done.stdout.split()
    assert applied == "True"  # glibc here and in CI
    assert int(inside) >= 3 * 2**20  # the 3 MiB array came from mmap
    assert int(outside) == 0  # after the block: the heap, below the restored 32 MiB threshold
