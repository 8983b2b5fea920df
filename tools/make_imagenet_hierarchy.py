#!/usr/bin/env python
"""Generate the WordNet hierarchy of the 1000 ILSVRC-2012 classes shipped with taxonbench.

Dev-time only: the adapter (``taxonbench.datasets.imagenet``) reads the two
files this script writes and never needs WordNet itself.

Input
  * WordNet 3.0's noun database ``data.noun`` (Princeton WordNet 3.0; on
    Debian/Ubuntu ``apt-get install wordnet-base`` puts it at
    ``/usr/share/wordnet/data.noun``). Format (``wndb(5WN)``): one synset a
    line, ``synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...]
    p_cnt [ptr...] | gloss``, ``w_cnt`` in hexadecimal, each pointer
    ``pointer_symbol synset_offset pos source/target``. ImageNet's wnid of a noun
    synset is ``n`` + its 8-digit offset.
  * The 1000 ILSVRC-2012 wnids, one a line (default: timm's
    ``timm/data/_info/imagenet_synsets.txt``, found without importing timm).

Output (into ``--out-dir``, default ``src/taxonbench/datasets/data``)
  * ``imagenet_wordnet_is_a.tsv``: ``parent<TAB>child`` for every hypernym
    (``@``) and instance-hypernym (``@i``) pointer of every synset that is one of
    the 1000 classes or one of their ancestors (the ancestor closure through both
    pointer kinds). Lines are grouped by child (children in wnid order) and,
    within a child, in the order WordNet lists the pointers, so a child's
    *first* line names its first-listed hypernym.
  * ``imagenet_wordnet_words.tsv``: ``wnid<TAB>name`` for every synset of that
    closure: the synset's first lemma, underscores turned into spaces.

Both start with ``#`` comment lines saying where they come from (the Debian
package version of ``wordnet-base``, the SHA-256 of the ``data.noun`` read, the
class list and the command). Run from the repository root::

    python tools/make_imagenet_hierarchy.py            # rewrite the shipped files
    python tools/make_imagenet_hierarchy.py --check    # exit 1 if they would change
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "taxonbench" / "datasets" / "data"
IS_A_FILE = "imagenet_wordnet_is_a.tsv"
WORDS_FILE = "imagenet_wordnet_words.tsv"
HYPERNYM_POINTERS = ("@", "@i")  # hypernym, instance hypernym


def timm_synsets() -> Path:
    """timm's list of the 1000 ILSVRC-2012 wnids (located without importing timm)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("timm is not installed: pass --synsets <file with the 1000 wnids>")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / "imagenet_synsets.txt"


def timm_version(path: Path) -> str:
    """timm's version, read from its ``version.py`` next to the synset list."""
    version = path.parents[2] / "version.py"
    if version.is_file():
        for line in version.read_text().splitlines():
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("'\"")
    return "unknown"


def debian_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             check=False)
    except OSError:
        return "unknown (no dpkg-query)"
    return out.stdout.strip() or "unknown (not installed as a Debian package)"


def license_text(path: Path) -> list[str]:
    """The WordNet license at the top of ``data.noun`` (lines ``  <n> <text>``), to be kept with any copy."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(line.strip().split(" ", 1)[1].rstrip() if " " in line.strip() else "")
    return lines


def parse_data_noun(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """``{wnid: (lemmas, hypernym wnids in pointer order)}`` of every noun synset."""
    synsets: dict[str, tuple[list[str], list[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("  ") or not line.strip():  # the license header
                continue
            fields = line.split(" | ", 1)[0].split()
            try:
                offset, n_words = fields[0], int(fields[3], 16)
                lemmas = [fields[4 + 2 * i] for i in range(n_words)]
                at = 4 + 2 * n_words
                n_pointers = int(fields[at])
                pointers = [fields[at + 1 + 4 * k: at + 5 + 4 * k] for k in range(n_pointers)]
            except (IndexError, ValueError) as exc:
                raise SystemExit(f"{path}:{number}: not a WordNet data line ({exc})") from None
            if fields[2] != "n" or len(offset) != 8 or any(len(p) != 4 for p in pointers):
                raise SystemExit(f"{path}:{number}: not a WordNet noun data line")
            hypernyms = [f"n{target}" for symbol, target, pos, _ in pointers
                         if symbol in HYPERNYM_POINTERS and pos == "n"]
            synsets[f"n{offset}"] = ([w.replace("_", " ") for w in lemmas], hypernyms)
    return synsets


def read_classes(path: Path) -> list[str]:
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(classes)) != len(classes):
        raise SystemExit(f"{path}: repeated wnids")
    return classes


def ancestor_closure(synsets: dict[str, tuple[list[str], list[str]]], classes: list[str]) -> set[str]:
    missing = [c for c in classes if c not in synsets]
    if missing:
        raise SystemExit(f"not WordNet 3.0 noun synsets: {', '.join(missing[:10])}")
    seen: set[str] = set()
    stack = list(classes)
    while stack:
        wnid = stack.pop()
        if wnid not in seen:
            seen.add(wnid)
            stack += synsets[wnid][1]
    return seen


def render(data_noun: Path, synsets_file: Path) -> dict[str, str]:
    """The text of both output files."""
    synsets = parse_data_noun(data_noun)
    classes = read_classes(synsets_file)
    closure = sorted(ancestor_closure(synsets, classes))
    digest = hashlib.sha256(data_noun.read_bytes()).hexdigest()
    provenance = [
        f"# Source: Princeton WordNet 3.0 noun database {data_noun.name} "
        f"(Debian package wordnet-base {debian_version('wordnet-base')}; sha256 {digest}).",
        f"# Classes: the {len(classes)} ILSVRC-2012 wnids of timm {timm_version(synsets_file)} "
        f"timm/data/_info/imagenet_synsets.txt; {len(closure)} synsets = the classes and all their ancestors",
        "# through hypernym (@) and instance-hypernym (@i) pointers.",
        "# Generated by: python tools/make_imagenet_hierarchy.py (taxonbench); do not edit by hand.",
        "# WordNet's license (from the header of data.noun), which applies to this derived data:",
        *[f"#   {line}".rstrip() for line in license_text(data_noun)],
    ]
    is_a = [*provenance,
            "# Columns: parent wnid, child wnid. Lines are grouped by child (in wnid order); a child's lines",
            "# follow WordNet's pointer order, so its first line names its first-listed hypernym."]
    is_a += [f"{parent}\t{child}" for child in closure for parent in synsets[child][1]]
    words = [*provenance, "# Columns: wnid, name (the synset's first lemma, underscores as spaces)."]
    words += [f"{wnid}\t{synsets[wnid][0][0]}" for wnid in closure]
    return {IS_A_FILE: "\n".join(is_a) + "\n", WORDS_FILE: "\n".join(words) + "\n"}


def data_lines(text: str) -> list[str]:
    """The non-comment lines of a generated file (what ``--check`` compares)."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-noun", type=Path, default=Path("/usr/share/wordnet/data.noun"),
                        help="WordNet 3.0 data.noun (default: %(default)s, from Debian's wordnet-base)")
    parser.add_argument("--synsets", type=Path, default=None,
                        help="the 1000 ILSVRC-2012 wnids, one a line (default: timm's imagenet_synsets.txt)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the data lines of the files in --out-dir differ")
    args = parser.parse_args(argv)
    if not args.data_noun.is_file():
        raise SystemExit(f"{args.data_noun} not found: apt-get install wordnet-base, or pass --data-noun")
    texts = render(args.data_noun, args.synsets or timm_synsets())
    if args.check:
        stale = [name for name, text in texts.items()
                 if not (args.out_dir / name).is_file()
                 or data_lines((args.out_dir / name).read_text()) != data_lines(text)]
        for name in stale:
            print(f"{args.out_dir / name} differs from what the generator makes", file=sys.stderr)
        return 1 if stale else 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (args.out_dir / name).write_text(text)
        print(f"wrote {args.out_dir / name} ({len(data_lines(text))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
