"""``ppl-ad migrate``: find (and fix) uses of deprecated or removed AD backends.

Scans Python files (with :mod:`ast`, so comments, docstrings and unrelated strings are never
reported; a module-level constant such as ``BACKEND = "sympy"`` is followed into the
``backend=BACKEND`` that uses it), Jupyter notebooks (code cells parsed as Python),
``.toml`` / ``.cfg`` / ``.ini`` configuration (``backend = "sympy"`` inside ``[tool.ppl_ad]``
or ``ppl_ad`` sections, and ``PPL_AD_BACKEND=sympy``), dotenv files (``.env``, ``.env.*``,
``*.env``: ``PPL_AD_BACKEND=sympy``, with or without ``export``), and the current
``PPL_AD_BACKEND`` environment variable. The
deprecated backends and their replacements come from :mod:`ppl_ad._deprecations`.

Exit status: 1 when anything was found, 0 otherwise. ``--fix`` rewrites the simple cases
(a string literal in a ``backend=`` keyword, a ``backend = "..."`` config line) in place and
prints a unified diff.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ppl_ad._deprecations import BACKEND_DEPRECATIONS

__all__ = ["Finding", "scan", "fix", "main", "REPLACEMENTS"]

# Deprecated backend name -> the name --fix writes instead.
REPLACEMENTS = {"sympy": "jax"}
_CLASSES = {"SymPy": "sympy"}  # backend value classes -> backend name
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".ipynb_checkpoints", "site-packages"}
_CONFIG_SUFFIXES = {".toml", ".cfg", ".ini"}


@dataclass(frozen=True)
class Finding:
    """One use of a deprecated backend.

    Attributes
    ----------
    path : str
        File (or ``"environment"``), with ``[cell N]`` for notebooks.
    line : int
        1-based line (within the cell for notebooks; 0 for the environment).
    what : str
        What uses it, e.g. ``backend= keyword``.
    backend : str
        The deprecated backend name.
    fixable : bool
        Whether ``--fix`` rewrites it.
    """

    path: str
    line: int
    what: str
    backend: str
    fixable: bool = False

    def __str__(self) -> str:
        replacement = REPLACEMENTS.get(self.backend, "jax")
        reason = BACKEND_DEPRECATIONS[self.backend].reason.split(" (")[0].rstrip(".")
        return (
            f"{self.path}:{self.line}: {self.what} uses deprecated backend '{self.backend}' -> "
            f"use '{replacement}' ({reason}; see docs/migration.md)"
        )


def _deprecated(value) -> str | None:
    if isinstance(value, str) and value.strip().lower() in BACKEND_DEPRECATIONS:
        return value.strip().lower()
    return None


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _deprecated(node.value)
    return None


def _module_constants(tree) -> dict[str, tuple[str, int]]:
    """Module-level names bound to a deprecated backend name: ``{NAME: (backend, line)}``.

    A name also bound to anything else at module level is left out (its value is not known).
    """
    constants, other = {}, set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                name = _literal(value)
                if name:
                    constants[target.id] = (name, node.lineno)
                else:
                    other.add(target.id)
    return {k: v for k, v in constants.items() if k not in other}


def _resolve(node, constants) -> tuple[str | None, str]:
    """The deprecated backend named by ``node`` (a literal or a module constant) and how."""
    name = _literal(node)
    if name:
        return name, ""
    if isinstance(node, ast.Name) and node.id in constants:
        backend, line = constants[node.id]
        return backend, f" via {node.id} = '{backend}' (line {line})"
    return None, ""


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _scan_python(source: str, path: str, line_offset: int = 0) -> list[Finding]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []

    def add(node, what, name, fixable=False):
        found.append(Finding(path, node.lineno + line_offset, what, name, fixable))

    constants = _module_constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = _dotted(node.func)
            short = func.rsplit(".", 1)[-1]
            for keyword in node.keywords:
                if keyword.arg == "backend":
                    name, via = _resolve(keyword.value, constants)
                    if name:
                        what = "@pa.model(backend=...)" if short == "model" else f"{func or 'call'}(backend=...)"
                        # a literal is rewritten by --fix; a constant is reported (it may have other uses)
                        add(keyword.value, what + via, name, fixable=not via)
            if short == "get" and "backends" in func and node.args:
                name, via = _resolve(node.args[0], constants)
                if name:
                    add(node, f"{func}(...){via}", name)
            if short == "logdensity" and len(node.args) >= 2:
                name, via = _resolve(node.args[1], constants)
                if name:
                    add(node, f"{func}(model, backend){via}", name)
            if short in _CLASSES:
                add(node, f"{short}() backend value", _CLASSES[short])
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            name, via = _resolve(node.value, constants)
            if not name:
                continue
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and "environ" in _dotted(target.value)
                    and isinstance(target.slice, ast.Constant)
                    and target.slice.value == "PPL_AD_BACKEND"
                ):
                    add(node, "os.environ['PPL_AD_BACKEND']" + via, name)
        if isinstance(node, ast.Call) and _dotted(node.func).endswith(("environ.setdefault", "setenv")):
            args = node.args
            if len(args) >= 2 and isinstance(args[0], ast.Constant) and args[0].value == "PPL_AD_BACKEND":
                name, via = _resolve(args[1], constants)
                if name:
                    add(node, f"{_dotted(node.func)}('PPL_AD_BACKEND', ...){via}", name)
    return sorted(found, key=lambda f: f.line)


_SECTION = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(?:[#;].*)?$")
_BACKEND_LINE = re.compile(r"""^(\s*backend\s*=\s*)(["']?)([A-Za-z_-]+)(["']?)(\s*(?:[#;].*)?)$""")
_ENV_LINE = re.compile(r"""PPL_AD_BACKEND\s*=\s*["']?([A-Za-z_-]+)""")
_DOTENV_LINE = re.compile(r"""^(?:export\s+)?PPL_AD_BACKEND\s*=\s*["']?\s*([A-Za-z_-]+)""")


def _ppl_ad_section(section: str, path: Path) -> bool:
    section = section.strip().strip('"')
    if section == "tool.ppl_ad" or section.startswith("tool.ppl_ad."):
        return True
    if section == "ppl_ad" or section.startswith("ppl_ad."):
        return True
    # ppl_ad.toml: the [tool.ppl_ad] header is optional, so [models.x] is ppl_ad's too
    return path.name == "ppl_ad.toml" and (section == "models" or section.startswith("models."))


def _scan_config(text: str, path: Path) -> list[Finding]:
    found = []
    in_ppl_ad = path.name == "ppl_ad.toml"
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header:
            in_ppl_ad = _ppl_ad_section(header.group(1), path)
            continue
        match = _BACKEND_LINE.match(line)
        if match and in_ppl_ad and _deprecated(match.group(3)):
            found.append(Finding(str(path), number, "config key backend", _deprecated(match.group(3)), True))
            continue
        env = _ENV_LINE.search(line.split("#")[0])
        if env and _deprecated(env.group(1)):
            found.append(Finding(str(path), number, "PPL_AD_BACKEND setting", _deprecated(env.group(1))))
    return found


def _is_dotenv(path: Path) -> bool:
    """``.env``, ``.env.local``, ``prod.env``: files of ``NAME=value`` lines."""
    return path.name == ".env" or path.name.startswith(".env.") or path.suffix == ".env"


def _scan_dotenv(text: str, path: Path) -> list[Finding]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(stripped)
        if match and _deprecated(match.group(1)):
            found.append(Finding(str(path), number, "PPL_AD_BACKEND setting", _deprecated(match.group(1))))
    return found


def _cells(path: Path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook.get("cells", []), start=1):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            # IPython magics and shell escapes are not Python
            lines = ["" if s.lstrip().startswith(("%", "!")) else s for s in source.splitlines()]
            yield index, "\n".join(lines)


def _scan_file(path: Path) -> list[Finding]:
    try:
        if path.suffix == ".py":
            return _scan_python(path.read_text(encoding="utf-8"), str(path))
        if path.suffix == ".ipynb":
            found = []
            for index, source in _cells(path):
                # reported, not rewritten: --fix edits plain files only
                found += [
                    Finding(f.path, f.line, f.what, f.backend, False)
                    for f in _scan_python(source, f"{path} [cell {index}]")
                ]
            return found
        if path.suffix in _CONFIG_SUFFIXES:
            return _scan_config(path.read_text(encoding="utf-8"), path)
        if _is_dotenv(path):
            return _scan_dotenv(path.read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    return []


def _files(paths):
    for root in paths:
        root = Path(root)
        if root.is_file():
            yield root
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            for name in sorted(files):
                candidate = Path(folder) / name
                if candidate.suffix in {".py", ".ipynb"} | _CONFIG_SUFFIXES or _is_dotenv(candidate):
                    yield candidate


def scan(paths, environ=None) -> list[Finding]:
    """Every use of a deprecated backend under ``paths`` (files or folders) and in ``environ``.

    Parameters
    ----------
    paths : list of str or Path
    environ : mapping, optional
        Environment to check for ``PPL_AD_BACKEND`` (``os.environ`` by default; pass ``{}``
        to skip).
    """
    environ = os.environ if environ is None else environ
    found = []
    for path in _files(paths):
        found += _scan_file(path)
    name = _deprecated(environ.get("PPL_AD_BACKEND"))
    if name:
        found.append(Finding("environment", 0, "environment variable PPL_AD_BACKEND", name))
    return found


def _fix_python_source(source: str, findings) -> str:
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    targets = {f.line for f in findings if f.fixable}
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = keyword.value
                name = _literal(value) if keyword.arg == "backend" else None
                if name and value.lineno in targets and value.lineno == value.end_lineno:
                    edits.append((value.lineno, value.col_offset, value.end_col_offset, name))
    for lineno, start, end, name in sorted(edits, reverse=True):
        line = lines[lineno - 1]
        raw = line.encode("utf-8")
        literal = raw[start:end].decode("utf-8")
        quote = literal[-1] if literal[-1] in "'\"" else '"'
        raw = raw[:start] + f"{quote}{REPLACEMENTS[name]}{quote}".encode("utf-8") + raw[end:]
        lines[lineno - 1] = raw.decode("utf-8")
    return "".join(lines)


def _fix_config_text(text: str, findings) -> str:
    lines = text.splitlines(keepends=True)
    for finding in findings:
        if finding.fixable:
            line = lines[finding.line - 1]
            match = _BACKEND_LINE.match(line.rstrip("\r\n"))
            if match:
                ending = line[len(line.rstrip("\r\n")):]
                lines[finding.line - 1] = (
                    f"{match.group(1)}{match.group(2)}{REPLACEMENTS[finding.backend]}"
                    f"{match.group(4)}{match.group(5)}{ending}"
                )
    return "".join(lines)


def fix(findings) -> str:
    """Rewrite the fixable findings in place; return the unified diff of the changes."""
    by_path: dict[str, list] = {}
    for finding in findings:
        if finding.fixable and Path(finding.path).is_file():
            by_path.setdefault(finding.path, []).append(finding)
    diff = []
    for path, items in by_path.items():
        before = Path(path).read_text(encoding="utf-8")
        after = _fix_python_source(before, items) if path.endswith(".py") else _fix_config_text(before, items)
        if after != before:
            Path(path).write_text(after, encoding="utf-8")
            diff += difflib.unified_diff(
                before.splitlines(keepends=True), after.splitlines(keepends=True),
                fromfile=f"a/{path}", tofile=f"b/{path}",
            )
    return "".join(diff)


def main(args) -> int:
    """Run ``ppl-ad migrate``: print findings, optionally fix them; exit 1 when any were found."""
    paths = list(getattr(args, "paths", None) or ["."])
    missing = [str(p) for p in paths if not os.path.exists(p)]
    if missing:
        from ppl_ad.errors import ConfigError

        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    findings = scan(paths)
    for finding in findings:
        print(finding)
    if getattr(args, "fix", False) and findings:
        diff = fix(findings)
        if diff:
            print(diff, end="" if diff.endswith("\n") else "\n")
        fixed = len(findings) - len(scan(paths))
        print(f"fixed {fixed} of {len(findings)}; the rest need a manual change (see docs/migration.md)")
    if not findings:
        print("no uses of deprecated ppl_ad backends found")
    return 1 if findings else 0
