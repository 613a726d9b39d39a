"""A user's simulator, installed as a distribution with an entry point, works by name."""

import sys
import textwrap
import warnings

import numpy as np
import pytest

import simulators.registry
from simulators import ConfigError, available_simulators, make_simulator, refresh_plugins
from simulators.registry import ENTRY_POINT_GROUP

PLUGIN_MODULE = '''
"""A third-party simulator: x = scale * theta^2 + noise."""
import numpy as np

from simulators import Parameter, Prior, Simulator


class Square(Simulator):
    name = "myplugin"

    def __init__(self, scale=1.0):
        self.scale = float(scale)
        self.prior = Prior(parameters=(Parameter(name="t", distribution="normal"),))
        self.output_names = ("x",)

    @property
    def settings(self):
        return {"scale": self.scale}

    def simulate(self, theta, seeds):
        noise = np.array([np.random.default_rng(int(s)).normal() for s in seeds])
        return self.scale * theta**2 + 0.01 * noise[:, None]
'''


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """Distributions on sys.path, found by importlib.metadata as if pip-installed:
    ``myplugin`` (works), ``brokenplugin`` (its module does not exist) and a plugin that
    takes a built-in's name."""
    (tmp_path / "emustudy_myplugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    for dist, entry in (
        ("emustudy_myplugin", "myplugin = emustudy_myplugin:Square"),
        ("emustudy_broken", "brokenplugin = emustudy_no_such_module:Model"),
        ("emustudy_shadow", "lorenz96 = emustudy_myplugin:Square"),
    ):
        info = tmp_path / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh_plugins()  # the scan is cached per process: look at the new distributions
    yield
    sys.modules.pop("emustudy_myplugin", None)
    refresh_plugins()


def warned(record) -> str:
    return "\n".join(str(w.message) for w in record)


def test_a_plugin_is_made_by_name(installed_plugins):
    with pytest.warns(RuntimeWarning):  # from the broken and the shadowing plugin
        sim = make_simulator("myplugin", scale=2.0)
    theta = np.array([[1.0], [3.0]])
    x = sim.simulate(theta, np.array([1, 2], dtype=np.uint64))
    np.testing.assert_allclose(x, 2.0 * theta**2, atol=0.05)


def test_a_broken_plugin_warns_and_the_rest_still_work(installed_plugins):
    with pytest.warns(RuntimeWarning) as record:
        names = available_simulators()
    assert "'brokenplugin' (emustudy_no_such_module:Model) failed to load" in warned(record)
    assert "myplugin" in names and "lorenz96" in names and "brokenplugin" not in names


def test_a_plugin_cannot_replace_a_built_in(installed_plugins):
    with pytest.warns(RuntimeWarning) as record:
        sim = make_simulator("lorenz96")
    assert "plugin 'lorenz96' is ignored: a built-in simulator has that name" in warned(record)
    assert type(sim).__name__ == "Lorenz96"


def test_an_unknown_name_lists_built_ins_and_plugins(installed_plugins):
    with pytest.warns(RuntimeWarning), pytest.raises(ConfigError) as info:
        make_simulator("mypluggin")
    message = str(info.value)
    for name in ("myplugin", "lorenz96", "lorenz96_reduced", "hodgkin_huxley", "external"):
        assert name in message
    assert ENTRY_POINT_GROUP in message


def test_without_the_distribution_the_plugin_is_unknown():
    assert "myplugin" not in available_simulators()
    with pytest.raises(ConfigError, match="unknown simulator 'myplugin'"):
        make_simulator("myplugin")


def test_the_entry_point_scan_runs_once_per_process(monkeypatch):
    scans = []
    real = simulators.registry.entry_points

    def counted(**kwargs):
        scans.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(simulators.registry, "entry_points", counted)
    refresh_plugins()
    try:
        for name in ("gaussian_linear", "lorenz96", "gaussian_linear"):
            make_simulator(name)
        assert "hodgkin_huxley" in available_simulators()
        with pytest.raises(ConfigError, match="unknown simulator"):
            make_simulator("no_such_model")
        assert scans == [{"group": ENTRY_POINT_GROUP}]
        refresh_plugins()
        available_simulators()
        assert len(scans) == 2
    finally:
        refresh_plugins()  # forget the results the counting wrapper produced


def test_a_broken_plugin_warns_once_per_process_not_once_per_simulator(installed_plugins):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")  # every warning raised is recorded, repeats included
        for _ in range(3):
            make_simulator("myplugin", scale=1.0)
        available_simulators()
    assert warned(record).count("'brokenplugin' (emustudy_no_such_module:Model) failed") == 1


def test_every_call_builds_a_new_simulator():
    """Simulators hold per-run state (ExternalCommand.last_failures): instances are not shared."""
    first, second = make_simulator("lorenz96", F=12.0), make_simulator("lorenz96", F=12.0)
    assert first is not second and first.settings == second.settings
    first.fixed["F"] = 99.0
    assert second.fixed["F"] == 12.0
