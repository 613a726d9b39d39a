"""A campaign's driver memory does not grow with its budget: 10^8 samples, stopped after seconds.

Creating the store, finding its pending chunks and submitting chunks all cost memory per row
before: a 10^8-sample campaign had grown its driver to 1.9 GB within 30 s without simulating
anything.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cluster import cluster_client, run_campaign
    from simulators import make_simulator

    if __name__ == "__main__":
        with cluster_client("local", n_workers=1, dashboard_address="127.0.0.1:0") as client:
            run_campaign(
                make_simulator("gaussian_linear", dim=2), Path(sys.argv[1]), n_samples=10**8,
                campaign_seed=0, chunk_size=500, client=client, progress=False,
            )
    """
)
LIMIT_MB = 600


@pytest.mark.slow
def test_a_campaign_of_1e8_samples_starts_in_bounded_memory(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    store = tmp_path / "big.zarr"
    driver = subprocess.Popen(
        [sys.executable, str(script), str(store)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak, written = 0, 0
    try:
        process = psutil.Process(driver.pid)
        deadline = time.monotonic() + 90
        chunks = store / "status" / "c"
        while time.monotonic() < deadline and driver.poll() is None:
            peak = max(peak, process.memory_info().rss)
            written = len(list(chunks.iterdir())) if chunks.is_dir() else 0
            if written >= 40:  # 20,000 rows simulated: well under way
                break
            time.sleep(0.1)
        for _ in range(20):  # and a few seconds more of it
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        _, stderr = driver.communicate(timeout=60)
    print(f"10^8-sample campaign: {written} chunks written, driver peak RSS {peak / 1e6:.0f} MB")
    assert written >= 40, stderr.decode()[-2000:]
    assert peak < LIMIT_MB * 1e6
    # the store has its full size on disk, in metadata only
    assert (store / "status" / "zarr.json").read_text().count("100000000") >= 1
