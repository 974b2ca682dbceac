import argparse
import json
import os
import subprocess
import textwrap

import pytest

import ppl_ad as pa
from ppl_ad.bench import cli
from ppl_ad.bench._cell import main as cell_main
from ppl_ad.cli import main as ppl_ad_main

USER_MODEL = textwrap.dedent('''
    import numpy as np
    import ppl_ad as pa
    from ppl_ad import dist

    @pa.model
    def my_regression(x, y):
        b = pa.sample("b", dist.Normal(0.0, 1.0))
        pa.observe("y", dist.Normal(b * x, 1.0), y)

    bound = my_regression(x=np.arange(5.0), y=np.arange(5.0) * 0.5)
''')


def test_crashing_cell_is_recorded_as_error():
    rows = cli.run_cell("no_such_model", "jax-forward", repeats=1, timeout=120)
    assert len(rows) == 1
    assert rows[0]["correct"] == "error"
    assert "no_such_model" in rows[0]["note"] and "KeyError" in rows[0]["note"]


def test_hanging_cell_is_recorded_as_timeout():
    rows = cli.run_cell("normal_normal", "jax-forward", repeats=1, timeout=0.01)
    assert rows[0]["correct"] == "timeout" and rows[0]["gradient_us"] is None


def test_cell_prints_json_row(capsys):
    assert cell_main(["--model", "normal_normal", "--backend", "jax-forward", "--repeats", "2"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("CELL ")][0]
    row = json.loads(line[5:])
    assert row["model"] == "normal_normal" and row["correct"] == "ok" and row["dimension"] == 1


def test_report_written_from_cells(tmp_path, monkeypatch):
    fake = {"model": "m", "name": "jax", "mode": "reverse", "status": "supported", "prepare_s": 0.1,
            "logdensity_us": 2.0, "gradient_us": 5.0, "ratio": 2.5, "correct": "ok", "gradient_rel_error": 1e-12,
            "value_rel_error": 0.0, "repeats": 3, "note": "", "dimension": 4}
    calls = []

    def fake_run_cell(model, backend, **kw):
        calls.append((model, backend, kw.get("dims")))
        if kw.get("dims"):
            return [{**fake, "model": "regression", "name": backend, "d": d, "gradient_us": float(d)} for d in kw["dims"]]
        return [{**fake, "model": model, "name": backend}]

    monkeypatch.setattr(cli, "run_cell", fake_run_cell)
    args = argparse.Namespace(out=str(tmp_path), models="normal_normal", backends="jax,autograd", repeats=3,
                              timeout=5.0, peers=False, no_progress=True)
    assert cli.main(args) == 0
    assert ("normal_normal", "jax", None) in calls and ("regression", "autograd", cli.CROSSOVER_DIMS) in calls
    data = json.loads((tmp_path / "backends.json").read_text())
    assert len(data["cells"]) == 2 and len(data["crossover"]) == 2 * len(cli.CROSSOVER_DIMS)
    assert data["machine"]["cores"] and data["machine"]["versions"]["numpy"]
    md = (tmp_path / "backends.md").read_text()
    assert "## normal_normal (d = 4)" in md and "| jax | reverse | supported |" in md and "| 1000 | 1000 | 1000 |" in md
    assert "| 1e-12 |" not in md and "| 1.0e-12 | 0.0e+00 |" in md
    assert (tmp_path / "crossover.png").stat().st_size > 1000


def test_peers_side_by_side_in_report(tmp_path, monkeypatch):
    from ppl_ad.bench import peers

    monkeypatch.setattr(cli, "run_cell", lambda model, backend, **kw: [] if kw.get("dims") else [
        {"model": model, "name": backend, "mode": "reverse", "status": "supported", "correct": "ok",
         "gradient_us": 7.0 if backend == "jax" else 9.0, "dimension": 10, "note": ""}])
    monkeypatch.setattr(peers, "available_peers", lambda: ["pymc"])
    monkeypatch.setattr(peers, "run_peers", lambda models: [
        {"model": m, "name": "pymc", "gradient_us": 3.5, "note": ""} for m in models] + [
        {"model": m, "name": "numpyro", "gradient_us": None, "note": "numpyro is not installed"} for m in models])
    args = argparse.Namespace(out=str(tmp_path), models="eight_schools,normal_normal", backends="jax,autograd",
                              repeats=1, timeout=5.0, peers=True, no_progress=True)
    assert cli.main(args) == 0
    md = (tmp_path / "backends.md").read_text()
    assert "| eight_schools | jax | 7.0 | 3.5 | - | numpyro: numpyro is not installed |" in md
    assert "| normal_normal |" not in md.split("## Peers")[1]
    assert json.loads((tmp_path / "backends.json").read_text())["peers"][0]["name"] == "pymc"


@pytest.mark.parametrize("option, value, hint", [
    ("--backends", "jax,jaxx", "unknown backend 'jaxx'. Did you mean 'jax'?"),
    ("--models", "eight_shools", "unknown model 'eight_shools'. Did you mean 'eight_schools'?"),
])
def test_unknown_names_exit_nonzero_with_a_suggestion(tmp_path, capsys, option, value, hint):
    out = tmp_path / "out"
    assert ppl_ad_main(["bench", option, value, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppl-ad bench: error: ") and hint in err
    assert not out.exists()  # nothing ran


def test_unknown_sampler_name_exits_nonzero(capsys):
    assert ppl_ad_main(["bench", "--sampling", "--backends", "numpyr", "--no-progress"]) == 2
    assert "Did you mean 'numpyro'?" in capsys.readouterr().err


def test_unknown_sampler_option_exits_nonzero_with_the_closest_option(capsys):
    # it printed a ValueError traceback and exited 1
    assert ppl_ad_main(["bench", "--sampling", "--backends", "jax:vectorised", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppl-ad bench: error: ") and "did you mean 'vectorized'?" in err


def test_migrate_of_a_missing_path_is_an_error(capsys):
    assert ppl_ad_main(["migrate", "/no/such/folder"]) == 2
    assert "no such file or folder: /no/such/folder" in capsys.readouterr().err


def test_default_output_folder_is_ppl_ad_bench():
    args = __import__("ppl_ad.cli", fromlist=["build_parser"]).build_parser().parse_args(["bench"])
    assert args.out == "ppl-ad-bench" and cli.DEFAULT_OUT == "ppl-ad-bench"


def test_bench_runs_a_user_model_from_a_file_prints_the_table_and_writes_to_ppl_ad_bench(tmp_path, capsys):
    # the autouse fixture runs every test in tmp_path: the default output folder lands there
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.py").write_text(USER_MODEL)
    code = ppl_ad_main(["bench", "--model", "models/mine.py:bound", "--backends", "jax-forward",
                        "--repeats", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "model 'my_regression' (dimension 1)" in out
    line = next(x for x in out.splitlines() if x.startswith("jax-forward"))
    assert " ok " in line
    data = json.loads((tmp_path / "ppl-ad-bench" / "backends.json").read_text())
    assert [c["model"] for c in data["cells"]] == ["my_regression"] and data["crossover"] == []
    assert data["cells"][0]["correct"] == "ok"
    assert not (tmp_path / "benchmarks").exists()


def test_load_model_from_a_module_and_its_errors(tmp_path):
    (tmp_path / "mymodels.py").write_text(USER_MODEL)
    model = cli.load_model("mymodels:bound")
    assert isinstance(model, pa.Model) and model.name == "my_regression"
    with pytest.raises(pa.ModelError, match="without its data; bind the data"):
        cli.load_model("mymodels:my_regression")
    with pytest.raises(pa.ModelError, match="has no 'bund'. Did you mean 'bound'"):
        cli.load_model(f"{tmp_path / 'mymodels.py'}:bund")
    with pytest.raises(pa.ModelError, match="no file"):
        cli.load_model("nowhere/missing.py:bound")
    with pytest.raises(pa.ModelError, match="cannot import module"):
        cli.load_model("no_such_module_xyz:bound")
    with pytest.raises(pa.ModelError, match="expected path/to/file.py:NAME"):
        cli.load_model("mymodels")
    with pytest.raises(pa.ModelError, match="is a dict, not a ppl_ad model"):
        cli.load_model("mymodels:bound.data")


def test_cells_run_under_the_samplers_thread_limits(monkeypatch):
    from ppl_ad.bench.measure import measurement_environment

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS"):
        monkeypatch.delenv(name, raising=False)
    seen = {}

    def fake_run(cmd, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    from ppl_ad.bench import cells

    monkeypatch.setattr(cells.subprocess, "run", fake_run)  # cells.run_subprocess starts the cell process
    cli.run_cell("normal_normal", "jax", repeats=1)
    expected = measurement_environment()
    assert expected and all(seen[k] == v for k, v in expected.items())
    assert seen["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize("argv, named", [
    (["bench", "--repeats", "0"], "--repeats"), (["bench", "--repeats", "-3"], "--repeats"),
    (["bench", "--sampling", "--draws", "0"], "--draws"), (["bench", "--sampling", "--chains", "0"], "--chains"),
    (["bench", "--sampling", "--tune", "-1"], "--tune"), (["bench", "--timeout", "0"], "--timeout"),
])
def test_counts_below_their_minimum_stop_before_any_cell_runs(argv, named, capsys):
    with pytest.raises(SystemExit) as info:
        ppl_ad_main(argv)
    assert info.value.code == 2 and named in capsys.readouterr().err


@pytest.mark.parametrize("keyword", [{"repeats": 0}, {"repeats": -2}, {"points": 0}])
def test_benchmark_refuses_counts_below_one(keyword):
    from ppl_ad.testing import get_scenario

    with pytest.raises(ValueError, match=next(iter(keyword))):
        pa.benchmark(get_scenario("normal_normal").model(), backends=["autograd"], **keyword)
