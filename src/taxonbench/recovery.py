"""Recovering from a crash or a damaged file without manual steps, or with the one command to type.

* :func:`rebuild_command` -- the Snakemake command that remakes one output (and, in the same run,
  everything downstream of it): ``snakemake --forcerun <path>``. Every "corrupt or truncated" message
  about a pipeline output ends with it.
* :func:`clear_stale_lock` -- a run killed hard (``kill -9``, a lost terminal) leaves Snakemake's lock in
  ``.snakemake/locks``, and the next run would stop with "Directory cannot be locked". At start the
  Snakefile removes that lock when no Snakemake, taxonbench or torchrun process works in the directory
  any more (Linux: read from ``/proc``; elsewhere the lock is left alone) and says so in one line.
  Outputs the killed jobs left half-written are then rerun (the profile's ``rerun-incomplete``), and a
  training resumes from its last epoch checkpoint.
* :func:`damaged_shards` -- the files of a prepared dataset that differ from what its manifest recorded
  (missing, or of another size: a truncated or replaced shard). The Snakefile checks them at start; in a
  real run it sets such a dataset's manifest aside (``manifest.json.damaged``), so Snakemake prepares the
  dataset again and reruns what depends on it. ``taxonbench verify`` checks the recorded SHA-256 of
  every file as well.

Torch-free: the Snakefile imports it at every start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

#: executables whose processes, working in a directory, mean a run is alive there
LIVE_PROGRAMS = ("snakemake", "taxonbench", "torchrun", "dvc")
#: modules run with ``python -m`` that count as the programs above
LIVE_MODULES = ("snakemake", "taxonbench.cli", "torch.distributed.run")
HASH_CHUNK = 1 << 20


def rebuild_command(path: str | os.PathLike) -> str:
    """``snakemake --forcerun <path>``: remakes ``path`` and then everything that depends on it."""
    return f"snakemake --forcerun {path}"


def rebuild_hint(path: str | os.PathLike) -> str:
    """``"; make it again: `snakemake --forcerun <path>`"`` for a pipeline output (under ``results/`` or
    ``data/``), ``""`` for any other file (a checkpoint of the user's, say)."""
    parts = Path(path).parts
    return f"; make it again: `{rebuild_command(path)}`" if "results" in parts or "data" in parts else ""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ stale locks
def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the (command name) is the state, then ppid
    return out


def _is_live_program(argv: list[str]) -> bool:
    for k, arg in enumerate(argv[:3]):
        name = os.path.basename(arg)
        if name in LIVE_PROGRAMS:
            return True
        if arg == "-m" and k + 1 < len(argv) and argv[k + 1] in LIVE_MODULES:
            return True
    return False


def live_processes(workdir: str | os.PathLike) -> list[tuple[int, str]]:
    """(pid, command line) of the Snakemake / taxonbench / torchrun / dvc processes working in ``workdir``,
    this process and its ancestors left out."""
    here = os.path.realpath(workdir)
    mine = _ancestors(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.path.realpath(entry / "cwd")
        except OSError:  # gone meanwhile, or another user's
            continue
        if cwd == here and _is_live_program([a for a in argv if a]):
            found.append((int(entry.name), " ".join(a for a in argv if a)))
    return found


def clear_stale_lock(workdir: str | os.PathLike = ".", alive: list[tuple[int, str]] | None = None) -> str | None:
    """Remove ``workdir/.snakemake/locks`` when no run is alive in ``workdir`` (``alive``: the
    :func:`live_processes`, when the caller has them); the line to print, if any."""
    locks = Path(workdir) / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()) or not Path("/proc/self/cwd").exists():
        return None
    alive = live_processes(workdir) if alive is None else alive
    if alive:
        pid, cmd = alive[0]
        return (f"taxonbench: {locks} is held, and a run is still working here (pid {pid}: {cmd[:120]}); "
                "wait for it to finish or stop it, then start again")
    shutil.rmtree(locks, ignore_errors=True)
    return (f"taxonbench: removed the lock a killed run left in {locks} (no Snakemake or taxonbench process "
            "works here any more); its unfinished outputs are made again")


def is_dry_run(argv: list[str]) -> bool:
    """Whether a Snakemake command line asks for a dry run (``-n``, ``--dry-run``, ``-pn``, ...)."""
    return any(a in ("--dry-run", "--dryrun", "--just-print")
               or (a.startswith("-") and not a.startswith("--") and a[1:].isalpha() and "n" in a) for a in argv[1:])


def recover_at_start(workdir: str | os.PathLike, datasets: list[str], argv: list[str]) -> list[str]:
    """What the Snakefile does before Snakemake builds its plan: clear a stale lock, and set aside the
    manifest of every prepared dataset (``data/shards/<name>``) whose files differ from their records, so
    that it is prepared again (in a dry run: only say so). The lines to print. ``/proc`` is read only when
    there is a lock or a damaged dataset to act on."""
    damaged = {}
    for name in datasets:
        directory = Path(workdir) / "data" / "shards" / name
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue  # not prepared yet; or unreadable, and the steps reading it name the file
        problems = damaged_shards(directory, manifest)
        if problems:
            damaged[name] = problems
    locks = Path(workdir) / ".snakemake" / "locks"
    if not damaged and not (locks.is_dir() and any(locks.iterdir())):
        return []
    alive = live_processes(workdir) if Path("/proc/self/cwd").exists() else []
    lines = [line for line in [clear_stale_lock(workdir, alive)] if line]
    if alive:  # another run works here: it may be preparing a dataset right now
        return lines
    dry = is_dry_run(argv)
    for name, problems in damaged.items():
        manifest_path = Path("data") / "shards" / name / "manifest.json"
        what = f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        if dry:
            lines.append(f"taxonbench: dataset {name!r} is damaged: {what}; a real run prepares it again "
                         f"(or: `{rebuild_command(manifest_path)}`)")
        else:
            set_aside_damaged(Path(workdir) / manifest_path.parent)
            lines.append(f"taxonbench: dataset {name!r} is damaged: {what}; preparing it again (its manifest is "
                         f"now {manifest_path.name}.damaged)")
    return lines


# ------------------------------------------------------------------ damaged shards
def damaged_shards(directory: str | os.PathLike, manifest: dict, *, hashes: bool = False) -> list[str]:
    """What is wrong with the files ``manifest`` (``directory``'s) recorded: one line per missing file, file
    of another size and, with ``hashes``, file of another SHA-256. A manifest without records (prepared by
    an older taxonbench) gives no line."""
    directory = Path(directory)
    problems = []
    for name, record in manifest.get("files", {}).items():  # name -> {"bytes", "sha256"}
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        size = path.stat().st_size
        if size != record["bytes"]:
            problems.append(f"{path}: {size:,} bytes, the manifest recorded {record['bytes']:,}")
        elif hashes and sha256_of(path) != record["sha256"]:
            problems.append(f"{path}: its SHA-256 differs from the one the manifest recorded")
    return problems


def set_aside_damaged(directory: str | os.PathLike, manifest_name: str = "manifest.json") -> Path:
    """Rename the manifest of a damaged dataset to ``<manifest>.damaged`` (Snakemake then prepares it again)."""
    manifest = Path(directory) / manifest_name
    target = manifest.with_name(manifest.name + ".damaged")
    os.replace(manifest, target)
    return target


__all__ = ["LIVE_PROGRAMS", "clear_stale_lock", "damaged_shards", "is_dry_run", "live_processes", "rebuild_command",
           "rebuild_hint", "recover_at_start", "set_aside_damaged", "sha256_of"]
