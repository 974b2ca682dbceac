"""``ppl-ad bench --executor`` and ``benchmarks/validate_posteriordb.py --executor``: cells as Dask tasks.

Each cell still runs in a process of its own on a worker; the tests use a real two-process
``LocalCluster`` and one tiny cell each.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import subprocess
from pathlib import Path

import pytest

from ppl_ad.bench import cli
from ppl_ad.cli import main as ppl_ad_main
from ppl_ad.errors import ConfigError

distributed = pytest.importorskip("distributed")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "validate_posteriordb.py"


@pytest.fixture(scope="module")
def address():
    """The scheduler address of a two-process LocalCluster, closed at the end."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def validate():
    spec = importlib.util.spec_from_file_location("validate_posteriordb", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_cells_run_as_tasks_on_the_cluster(address, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "CROSSOVER_DIMS", (2,))  # one crossover cell
    status = ppl_ad_main(["bench", "--executor", address, "--models", "normal_normal", "--backends", "jax-forward",
                          "--repeats", "2", "--out", str(tmp_path), "--no-progress"])
    assert status == 0
    result = json.loads((tmp_path / "backends.json").read_text())
    assert result["executor"] == address
    [cell] = result["cells"]
    assert (cell["model"], cell["name"], cell["correct"]) == ("normal_normal", "jax-forward", "ok")
    assert [(c["name"], c["d"]) for c in result["crossover"]] == [("jax-forward", 2)]
    assert f"cells ran as Dask tasks on {address}" in (tmp_path / "backends.md").read_text()


def test_no_scheduler_at_the_address_is_a_clear_error():
    from ppl_ad.infer.distributed import connect

    with pytest.raises(ConfigError, match="no Dask scheduler answered at 'tcp://127.0.0.1:9'"):
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass


def test_bench_sampling_on_an_executor_is_refused():
    with pytest.raises(ConfigError, match="--sampling"):
        cli.main(argparse.Namespace(sampling=True, executor="tcp://127.0.0.1:9"))


def test_validation_runs_a_posterior_as_a_task(address, validate, tmp_path):
    name = "eight_schools-eight_schools_noncentered"
    validate.main(["--executor", address, "--only", name, "--draws", "40", "--tune", "40", "--chains", "1",
                   "--out", str(tmp_path)])  # so few draws may fail the moments: the run is what is tested
    [result] = json.loads((tmp_path / "posteriordb_validation.json").read_text())
    assert result["summary"]["posterior"] == name
    assert result["summary"]["verdict"] in ("pass", "FAIL")
    assert (result["summary"]["chains"], result["summary"]["draws"]) == (1, 40)
    assert {row["name"] for row in result["rows"]} >= {"mu", "tau"}
    assert name in (tmp_path / "posteriordb_validation.md").read_text()


def test_a_crashed_validation_cell_becomes_an_error_row(validate, tmp_path):
    args = argparse.Namespace(chains=1, draws=40, tune=40)
    done = subprocess.CompletedProcess(["python", "-"], -9, stdout="", stderr="Killed\n")
    result = validate._from_process("kidiq-kidscore_momiq", args, done)
    assert result["summary"]["verdict"] == "error" and "Killed" in result["summary"]["note"]
    validate.write_report(tmp_path, [result])  # the report takes it
    assert "| kidiq-kidscore_momiq | error |" in (tmp_path / "posteriordb_validation.md").read_text()
