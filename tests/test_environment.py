"""environment.yml (the conda environment of `snakemake --use-conda`) agrees with pyproject.toml.

Conda cannot be installed on the CI machines (no channel access), so nothing
here solves or builds the environment: the test compares the two files, which
is what drifts when a dependency is added or a bound raised in one of them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PIP = "pip"

# Where each runtime dependency of pyproject.toml comes from in environment.yml: its name on
# conda-forge/bioconda, or PIP (the PyPI name, in the `pip:` section). Explicit for every
# dependency, so a new one in pyproject.toml fails here until it is placed.
SOURCES = {
    "torch": PIP,  # PyPI wheels carry CUDA; conda-forge calls it pytorch, with other builds
    "torchvision": PIP,  # must match the torch build
    "open-clip-torch": PIP,  # needs the pip torch
    "geoopt": PIP,  # on the pip torch
    "numpy": "numpy",
    "scipy": "scipy",
    "pyarrow": "pyarrow",
    "polars": "polars",
    "scikit-learn": "scikit-learn",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "pyyaml": "pyyaml",
    "jsonschema": "jsonschema",
    "pillow": "pillow",
    "snakemake": "snakemake",  # bioconda / conda-forge
    "snakemake-executor-plugin-slurm": PIP,  # bioconda lags the PyPI releases
    "snakemake-executor-plugin-slurm-jobstep": PIP,
    "dvc": "dvc",
}
# In the environment and not in pyproject's dependencies: the interpreter, pip, the project itself.
EXTRA_CONDA = {"python", "pip"}
EXTRA_PIP = {"-e ."}

SPEC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][A-Za-z0-9.]*)$")


def _normalise(name: str) -> str:
    """PEP 503: PyPI compares names case-insensitively with runs of -, _ and . equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _lower_bound(spec: str, where: str) -> tuple[str, str]:
    match = SPEC.match(spec.strip())
    if not match:
        raise AssertionError(f"{where}: {spec!r} is not of the form 'name>=version' (the project's convention)")
    return match.group(1), match.group(2)


def pyproject_dependencies(path: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """Normalised PyPI name -> lower bound, for [project].dependencies."""
    project = tomllib.loads(path.read_text())["project"]
    out = {}
    for spec in project["dependencies"]:
        name, bound = _lower_bound(spec, f"{path.name} [project].dependencies")
        out[_normalise(name)] = bound
    return out


def environment_entries(env: dict, where: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(conda name -> lower bound, pip name -> lower bound); None for an entry without a bound."""
    conda: dict[str, str | None] = {}
    pip: dict[str, str | None] = {}
    for item in env.get("dependencies") or []:
        if isinstance(item, dict) and set(item) == {"pip"}:
            for spec in item["pip"]:
                if spec in EXTRA_PIP:
                    pip[spec] = None
                else:
                    name, bound = _lower_bound(spec, f"{where} pip:")
                    pip[_normalise(name)] = bound
        elif isinstance(item, str):
            if item in EXTRA_CONDA:
                conda[item] = None
            else:
                name, bound = _lower_bound(item, f"{where} dependencies")
                conda[name.lower()] = bound
        else:
            raise AssertionError(f"{where}: unexpected dependency entry {item!r}")
    return conda, pip


def disagreements(required: dict[str, str], env: dict, where: str, complete: bool = True) -> list[str]:
    """What in `env` disagrees with pyproject's `required` bounds (empty: they agree).

    complete: every dependency must be there (environment.yml); a per-rule environment may
    hold a subset, but each with pyproject's bound and nothing pyproject does not declare.
    """
    problems = []
    conda, pip = environment_entries(env, where)
    for name in sorted(set(required) - set(SOURCES)):
        problems.append(f"{name}: in pyproject.toml but not in SOURCES of tests/test_environment.py"
                        " (say whether it comes from conda, under which name, or from pip)")
    expected_conda = {SOURCES[n]: b for n, b in required.items() if SOURCES.get(n, PIP) != PIP}
    expected_pip = {n: b for n, b in required.items() if SOURCES.get(n) == PIP}
    for section, expected, found, extras in (("dependencies", expected_conda, conda, EXTRA_CONDA),
                                             ("pip", expected_pip, pip, EXTRA_PIP)):
        for name, bound in sorted(expected.items()):
            if name not in found:
                if complete:
                    problems.append(f"{where} {section}: {name}>={bound} missing (pyproject.toml has it)")
            elif found[name] != bound:
                problems.append(f"{where} {section}: {name}>={found[name]}, pyproject.toml says >={bound}")
        for name in sorted(set(found) - set(expected) - extras):
            problems.append(f"{where} {section}: {name} is not a dependency in pyproject.toml"
                            + (" (or belongs in the other section)" if name in SOURCES or name in SOURCES.values()
                               else ""))
    if complete and "python" in conda:
        python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
        spec = next(i for i in env["dependencies"] if isinstance(i, str) and i.startswith("python"))
        if spec.replace(" ", "") != f"python{python}":
            problems.append(f"{where}: {spec!r} but pyproject.toml requires-python is {python!r}")
    elif complete:
        problems.append(f"{where}: no python entry")
    return problems


def rule_environments() -> dict[Path, list[str]]:
    """Every env file named by a `conda:` directive (resolved as Snakemake does, from the rule's file)."""
    found: dict[Path, list[str]] = {}
    for source in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        text = source.read_text()
        for match in re.finditer(r"^[ \t]*conda:\s*[\"']([^\"']+)[\"']", text, re.MULTILINE):
            path = (source.parent / match.group(1)).resolve()
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault(path, []).append(f"{source.relative_to(REPO)}:{line}")
    return found


def test_sources_name_every_pyproject_dependency():
    assert set(pyproject_dependencies()) == set(SOURCES), (
        f"pyproject.toml only: {sorted(set(pyproject_dependencies()) - set(SOURCES))}; "
        f"SOURCES only: {sorted(set(SOURCES) - set(pyproject_dependencies()))}")


def test_environment_yml_has_the_same_packages_and_bounds_as_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    problems = disagreements(pyproject_dependencies(), env, "environment.yml")
    assert not problems, "\n".join(problems)
    assert "-e ." in environment_entries(env, "environment.yml")[1]  # the project itself


def test_every_rule_environment_exists_and_agrees():
    envs = rule_environments()
    assert envs, "no conda: directive found in Snakefile or workflow/rules/*.smk"
    required = pyproject_dependencies()
    for path, users in envs.items():
        assert path.is_file(), f"{path} (named by {', '.join(users)}) does not exist"
        complete = path == (REPO / "environment.yml").resolve()
        problems = disagreements(required, yaml.safe_load(path.read_text()), path.name, complete=complete)
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize("edit, expected", [
    (lambda deps: deps.__setitem__(2, "numpy>=1.20"), "numpy>=1.20, pyproject.toml says >=1.26"),
    (lambda deps: deps.remove("dvc>=3.50"), "dvc>=3.50 missing"),
    (lambda deps: deps.insert(3, "requests>=2"), "requests is not a dependency"),
    (lambda deps: deps.insert(3, "torch>=2.3"), "torch is not a dependency in pyproject.toml (or belongs in the other"),
    (lambda deps: deps.__setitem__(0, "python>=3.10"), "requires-python is '>=3.11'"),
])
def test_a_drifted_environment_is_reported(edit, expected):
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["dependencies"][:3] == ["python>=3.11", "pip", "numpy>=1.26"]  # what the edits assume
    edit(env["dependencies"])
    problems = disagreements(pyproject_dependencies(), env, "environment.yml")
    assert any(expected in p for p in problems), problems


def test_a_new_pyproject_dependency_must_be_placed(tmp_path):
    text = (REPO / "pyproject.toml").read_text().replace('"dvc>=3.50",', '"dvc>=3.50",\n    "rich>=13",')
    (tmp_path / "pyproject.toml").write_text(text)
    required = pyproject_dependencies(tmp_path / "pyproject.toml")
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    problems = disagreements(required, env, "environment.yml")
    assert any("rich: in pyproject.toml but not in SOURCES" in p for p in problems), problems
