import argparse
import json

from ppl_ad.bench import cli
from ppl_ad.bench._cell import main as cell_main


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
            "logdensity_us": 2.0, "gradient_us": 5.0, "ratio": 2.5, "correct": "ok", "max_rel_error": 1e-12,
            "repeats": 3, "note": "", "dimension": 4}
    calls = []

    def fake_run_cell(model, backend, **kw):
        calls.append((model, backend, kw.get("dims")))
        if kw.get("dims"):
            return [{**fake, "model": "regression", "name": backend, "d": d, "gradient_us": float(d)} for d in kw["dims"]]
        return [{**fake, "model": model, "name": backend}]

    monkeypatch.setattr(cli, "run_cell", fake_run_cell)
    args = argparse.Namespace(out=str(tmp_path), models="m", backends="jax,autograd", repeats=3, timeout=5.0,
                              peers=False, no_progress=True)
    assert cli.main(args) == 0
    assert ("m", "jax", None) in calls and ("regression", "autograd", cli.CROSSOVER_DIMS) in calls
    data = json.loads((tmp_path / "backends.json").read_text())
    assert len(data["cells"]) == 2 and len(data["crossover"]) == 2 * len(cli.CROSSOVER_DIMS)
    assert data["machine"]["cores"] and data["machine"]["versions"]["numpy"]
    md = (tmp_path / "backends.md").read_text()
    assert "## m (d = 4)" in md and "| jax | reverse | supported |" in md and "| 1000 | 1000.0 | 1000.0 |" in md
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
    args = argparse.Namespace(out=str(tmp_path), models="eight_schools,other", backends="jax,autograd", repeats=1,
                              timeout=5.0, peers=True, no_progress=True)
    assert cli.main(args) == 0
    md = (tmp_path / "backends.md").read_text()
    assert "| eight_schools | jax | 7.0 | 3.5 | - | numpyro: numpyro is not installed |" in md
    assert "| other |" not in md.split("## Peers")[1]
    assert json.loads((tmp_path / "backends.json").read_text())["peers"][0]["name"] == "pymc"
