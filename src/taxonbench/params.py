"""Loading and validating ``params.yaml`` (the experiment set).

The schema ``schemas/params.schema.yaml`` (also at
``workflow/schemas/params.schema.yaml``) is the single description of every
key. Validation fills the schema's defaults and turns the first violation into
one message naming the key path, e.g. ``params.yaml: train.epochz: unknown key
(did you mean 'epochs'?)``.

This module imports only the standard library, PyYAML and jsonschema, so the
Snakefile can import it without torch.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

from taxonbench.declare import build_options
from taxonbench.errors import TaxonbenchError

T = TypeVar("T")


def schema() -> dict:
    """The params JSON-Schema (draft 2020-12)."""
    text = resources.files("taxonbench").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


def _key_path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _subschema(root: dict, parts: list[Any]) -> dict:
    """The schema node that describes the value at ``parts`` (best effort)."""
    node = root
    for p in parts:
        if isinstance(p, int):
            node = node.get("items", {})
        elif p in node.get("properties", {}):
            node = node["properties"][p]
        else:
            node = node.get("additionalProperties", {}) if isinstance(
                node.get("additionalProperties"), dict
            ) else {}
    return node


def _fill_defaults(value: Any, sch: dict) -> Any:
    """Insert the schema's ``default`` values for absent keys, recursively."""
    if not isinstance(value, dict):
        return value
    props = sch.get("properties", {})
    for key, sub in props.items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _fill_defaults(value[key], sub)
    extra = sch.get("additionalProperties")
    if isinstance(extra, dict):
        for key in value:
            if key not in props:
                _fill_defaults(value[key], extra)
    return value


def _raise_first_violation(value: Any, node: dict, root: dict, prefix: list[Any], source: str) -> None:
    """Validate ``value`` against the schema ``node`` (the part of ``root`` at ``prefix``); the first
    violation becomes one message naming its key path."""
    validator = jsonschema.Draft202012Validator({**node, "$defs": root.get("$defs", {})})
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), str(e.path)))
    if not errors:
        return
    err = errors[0]
    parts = prefix + list(err.absolute_path)
    sub = _subschema(node, list(err.absolute_path))
    if err.validator == "additionalProperties":
        known = list(sub.get("properties", {}))
        unexpected = [k for k in err.instance if k not in known]
        key = unexpected[0] if unexpected else "?"
        hint = difflib.get_close_matches(str(key), known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else f"; valid keys: {', '.join(known)}"
        raise TaxonbenchError(f"{source}: {_key_path(parts + [key])}: unknown key{suggestion}")
    if err.validator == "required":
        raise TaxonbenchError(f"{source}: {_key_path(parts)}: {err.message}")
    raise TaxonbenchError(f"{source}: {_key_path(parts)}: {err.message}"
                          + (f" ({sub.get('description').strip()})" if sub.get("description") else ""))


def check_train_override(override: Any, where: str, source: str = "params") -> None:
    """A ``methods.<experiment>.train`` block against the schema of ``train`` (its keys override those)."""
    sch = schema()
    _raise_first_violation(override, sch["properties"]["train"], sch, where.split("."), source)


def validate_params(cfg: Mapping[str, Any], source: str = "params") -> dict:
    """Validate ``cfg`` against the schema, fill defaults and check cross-references.

    Returns a new dict; raises :class:`TaxonbenchError` naming the first bad key.
    """
    cfg = copy.deepcopy(dict(cfg))
    sch = schema()
    _raise_first_violation(cfg, sch, sch, [], source)
    cfg = _fill_defaults(cfg, sch)
    _check_references(cfg, source)
    return cfg


def _check_references(cfg: dict, source: str) -> None:
    """Names in ``experiments`` and ``tables`` must refer to defined datasets."""
    defined = list(cfg["datasets"])
    for i, name in enumerate(cfg["experiments"]["datasets"]):
        if name not in defined:
            hint = difflib.get_close_matches(name, defined, n=1)
            raise TaxonbenchError(
                f"{source}: experiments.datasets[{i}]: {name!r} is not defined under 'datasets'"
                + (f" (did you mean {hint[0]!r}?)" if hint else f"; defined: {', '.join(defined)}")
            )
    for key in ("extra_methods", "dataset_methods"):
        for dataset in cfg["experiments"].get(key, {}):
            if dataset not in cfg["experiments"]["datasets"]:
                raise TaxonbenchError(
                    f"{source}: experiments.{key}.{dataset}: not among experiments.datasets "
                    f"({', '.join(cfg['experiments']['datasets'])})"
                )
    for figure, spec in cfg.get("figures", {}).items():  # a figure may show a dataset models are trained on
        if spec["dataset"] not in defined:
            raise TaxonbenchError(f"{source}: figures.{figure}.dataset: {spec['dataset']!r} is not defined under "
                                  f"'datasets' ({', '.join(defined)})")
    blocks = [("tables", table, spec) for table, spec in cfg.get("tables", {}).items()]
    for section, name, spec in blocks:
        named = [("dataset", spec["dataset"])] if spec.get("dataset") else []
        named += [(f"datasets.{column}", d) for column, d in (spec.get("datasets") or {}).items()
                  if d is not None]  # null: a column not in this run
        for key, dataset in named:
            if dataset not in cfg["experiments"]["datasets"]:
                raise TaxonbenchError(
                    f"{source}: {section}.{name}.{key}: {dataset!r} is not among "
                    f"experiments.datasets ({', '.join(cfg['experiments']['datasets'])})"
                )


def deep_merge(base: dict, override: Mapping[str, Any]) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(*paths: str | os.PathLike) -> dict:
    """Read one or more YAML files (later ones override earlier ones) and validate."""
    if not paths:
        paths = ("params.yaml",)
    merged: dict = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise TaxonbenchError(f"params file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TaxonbenchError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise TaxonbenchError(f"{path}: expected a mapping at the top level")
        merged = deep_merge(merged, data)
    return validate_params(merged, source=" + ".join(str(p) for p in paths))


def parse_settings(text: str, what: str = "--settings") -> dict:
    """Parse the JSON settings a Snakemake rule passes to a CLI step."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaxonbenchError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise TaxonbenchError(f"{what}: expected a JSON object")
    return value


# ------------------------------------------------------------ step settings
def dataset_settings(cfg: dict, dataset: str) -> dict:
    """Everything ``prepare`` needs for one dataset."""
    if dataset not in cfg["datasets"]:
        raise TaxonbenchError(f"dataset {dataset!r} is not defined under 'datasets'")
    return {"name": dataset, "seed": cfg["seed"], **cfg["datasets"][dataset]}


def train_settings(cfg: dict, dataset: str, method: str) -> dict:
    """The resolved training settings of one (dataset, method) experiment.

    Global ``train`` settings, overridden by ``methods.<method>.train``; the
    method's other keys are its hyper-parameters. ``method`` is the experiment's
    name; a ``method:`` key inside its block names the registered method it
    runs (so one method can run as several experiments, e.g. ``hccf_L67:
    {method: hccf, levels: [6, 7]}``); without it the name is the method.
    ``dataset`` is the dataset trained on (for a cross-dataset experiment, its
    ``trained_on``).
    """
    method_cfg = copy.deepcopy(cfg.get("methods", {}).get(method, {}))
    train_override = method_cfg.pop("train", {})
    registered = method_cfg.pop("method", method)
    method_cfg.pop("trained_on", None)  # where the model comes from (taxonbench.plan), not a hyper-parameter
    train = deep_merge(cfg.get("train", {}), train_override)
    return {
        "dataset": dataset,
        "method": registered,
        "experiment": method,
        "seed": cfg["seed"],
        "device": cfg["device"],
        "train": train,
        "hparams": method_cfg,
    }


def trained_on(cfg: Mapping, dataset: str, experiment: str) -> str:
    """The dataset whose model an experiment evaluated on ``dataset`` uses."""
    return cfg.get("methods", {}).get(experiment, {}).get("trained_on") or dataset


def inference_options(cfg: dict, inference: str) -> dict:
    """The options block of one inference method (``inference_options.<name>``)."""
    return dict(cfg.get("inference_options", {}).get(inference, {}))


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build a typed options dataclass, rejecting unknown keys, wrong types and values outside the
    declared choices and ranges (:func:`taxonbench.declare.build_options`).

    ``where`` names the block in messages, e.g. ``datasets.synthetic_balanced.options``.
    """
    return build_options(cls, data, where)
