"""``ppl-ad migrate``: findings, exit codes, --fix, and no false positives."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from ppl_ad import migrate

USES = '''import os
import ppl_ad as pa
from ppl_ad.backends import SymPy


@pa.model(backend="sympy")
def m(y):
    pass


ld = pa.logdensity(m(1.0), backend="sympy")
b = pa.backends.get("sympy")
v = SymPy(max_operations=10)
os.environ["PPL_AD_BACKEND"] = "sympy"
'''

NEAR_MISSES = '''"""Uses sympy; backend="sympy" in a docstring is not code."""
import sympy
from sympy import symbols

sympy_backend = None
x, y = sympy.symbols("x y")
sympy = "sympy"
plot(library="sympy")
# pa.logdensity(m, backend="sympy")
ld = pa.logdensity(m, backend="jax")
'''


def _project(tmp_path):
    (tmp_path / "uses.py").write_text(USES)
    (tmp_path / "clean.py").write_text(NEAR_MISSES)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.other]\nbackend = "sympy"\n\n[tool.ppl_ad]\nbackend = "sympy"  # old\n'
    )
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\nenv = PPL_AD_BACKEND=sympy\n")
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ['backend="sympy"']},
            {"cell_type": "code", "metadata": {}, "source": ["%matplotlib inline\n", "import ppl_ad as pa\n",
                                                              "ld = pa.logdensity(m, backend='sympy')\n"],
             "outputs": [], "execution_count": None},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    (tmp_path / "demo.ipynb").write_text(json.dumps(notebook))
    return tmp_path


def test_findings_in_every_kind_of_file(tmp_path):
    findings = migrate.scan([_project(tmp_path)], environ={})
    where = {(f.path.replace(str(tmp_path) + "/", ""), f.line) for f in findings}
    assert where == {
        ("uses.py", 6), ("uses.py", 11), ("uses.py", 12), ("uses.py", 13), ("uses.py", 14),
        ("pyproject.toml", 5), ("setup.cfg", 2), ("demo.ipynb [cell 2]", 3),
    }
    assert all(f.backend == "sympy" for f in findings)
    text = str(next(f for f in findings if f.path.endswith("pyproject.toml")))
    assert text.startswith(f"{tmp_path}/pyproject.toml:5: config key backend uses deprecated backend 'sympy' -> use 'jax' (")


def test_no_false_positives(tmp_path):
    (tmp_path / "clean.py").write_text(NEAR_MISSES)
    (tmp_path / "pyproject.toml").write_text('[tool.other]\nbackend = "sympy"\n[tool.ppl_ad]\nbackend = "jax"\n')
    assert migrate.scan([tmp_path], environ={}) == []


def test_environment_variable(tmp_path):
    findings = migrate.scan([tmp_path], environ={"PPL_AD_BACKEND": "sympy"})
    assert [(f.path, f.what) for f in findings] == [("environment", "environment variable PPL_AD_BACKEND")]


def test_exit_codes(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PPL_AD_BACKEND", raising=False)
    (tmp_path / "clean.py").write_text(NEAR_MISSES)
    assert migrate.main(SimpleNamespace(paths=[str(tmp_path)], fix=False)) == 0
    (tmp_path / "uses.py").write_text(USES)
    assert migrate.main(SimpleNamespace(paths=[str(tmp_path)], fix=False)) == 1
    assert "uses.py:11: pa.logdensity(backend=...) uses deprecated backend 'sympy' -> use 'jax'" in capsys.readouterr().out


def test_fix_rewrites_simple_cases_and_prints_diff(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PPL_AD_BACKEND", raising=False)
    _project(tmp_path)
    assert migrate.main(SimpleNamespace(paths=[str(tmp_path)], fix=True)) == 1
    out = capsys.readouterr().out
    assert '-ld = pa.logdensity(m(1.0), backend="sympy")' in out
    assert '+ld = pa.logdensity(m(1.0), backend="jax")' in out
    fixed = (tmp_path / "uses.py").read_text()
    assert '@pa.model(backend="jax")' in fixed and 'backend="jax")\n' in fixed
    assert 'pa.backends.get("sympy")' in fixed  # not a simple case: reported, not rewritten
    toml = (tmp_path / "pyproject.toml").read_text()
    assert toml == '[tool.other]\nbackend = "sympy"\n\n[tool.ppl_ad]\nbackend = "jax"  # old\n'
    assert (tmp_path / "clean.py").read_text() == NEAR_MISSES
    remaining = migrate.scan([tmp_path], environ={})
    assert not any(f.fixable for f in remaining)
    assert len(remaining) == 5


def test_cli_wiring(tmp_path, monkeypatch, capsys):
    from ppl_ad.cli import main

    monkeypatch.delenv("PPL_AD_BACKEND", raising=False)
    (tmp_path / "ppl_ad.toml").write_text('[models.eight_schools]\nbackend = "sympy"\n')
    assert main(["migrate", str(tmp_path)]) == 1
    assert "ppl_ad.toml:2: config key backend" in capsys.readouterr().out


CONSTANTS = '''import ppl_ad as pa

BACKEND = "sympy"
OTHER: str = "sympy"
FINE = "jax"
CHANGED = "sympy"
CHANGED = "jax"


@pa.model(backend=BACKEND)
def m(y):
    pass


ld = pa.logdensity(m(1.0), backend=OTHER)
b = pa.backends.get(BACKEND)
ok = pa.logdensity(m(1.0), backend=FINE)
unclear = pa.logdensity(m(1.0), backend=CHANGED)
'''


def test_backend_given_by_a_module_constant(tmp_path):
    (tmp_path / "consts.py").write_text(CONSTANTS)
    findings = migrate.scan([tmp_path], environ={})
    assert [(f.line, f.backend, f.fixable) for f in findings] == [(10, "sympy", False), (15, "sympy", False),
                                                                  (16, "sympy", False)]
    assert "via BACKEND = 'sympy' (line 3)" in findings[0].what
    assert "via OTHER = 'sympy' (line 4)" in str(findings[1])
    # --fix leaves constants alone (they may have other uses); they are reported for a manual change
    assert migrate.fix(findings) == "" and (tmp_path / "consts.py").read_text() == CONSTANTS


def test_dotenv_files_pointed_at_or_found(tmp_path):
    (tmp_path / ".env").write_text("# settings\nOTHER=1\nexport PPL_AD_BACKEND='sympy'\n")
    (tmp_path / "prod.env").write_text("PPL_AD_BACKEND=jax\n")
    (tmp_path / ".env.local").write_text("PPL_AD_BACKEND = sympy  # old\n")
    found = migrate.scan([tmp_path / ".env"], environ={})
    assert [(f.line, f.what, f.backend) for f in found] == [(3, "PPL_AD_BACKEND setting", "sympy")]
    walked = {Path(f.path).name for f in migrate.scan([tmp_path], environ={})}
    assert walked == {".env", ".env.local"}


def test_the_sympy_limit_in_the_migration_guide_is_the_codes():
    import re

    from ppl_ad.backends import SymPy

    text = (Path(__file__).resolve().parents[1] / "docs" / "migration.md").read_text()
    stated = {int(n.replace(",", "").replace("_", "")) for n in re.findall(r"more than ([\d,_]+) operations", text)}
    assert stated == {SymPy().max_operations}
    assert "SymPy(max_operations=" in text
