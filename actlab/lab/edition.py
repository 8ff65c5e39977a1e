"""The Chinese edition: ``notebooks/zh/`` built from the English notebooks and one translation file each.

A translation file (``notebooks/zh/translations/<notebook>.json``) maps the id of each English
markdown cell to ``{"en_sha256": <hash of the English text it translates>, "zh": <the translation>}``.
``build`` copies every code cell (source and outputs) of the English notebook unchanged and puts each
markdown cell's translation in its place; a cell without a translation, or whose translation was
made for an older English text (the hash differs), is refused by name. So the two editions cannot
drift apart silently: change an English cell, and ``make test`` names the translation to update.

Usage: ``python -m actlab.lab.edition`` (``make zh``) rebuilds every Chinese notebook.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from actlab.checkpoints import write_atomic
from actlab.settings import REPO_ROOT

ENGLISH = REPO_ROOT / "notebooks"
CHINESE = ENGLISH / "zh"
TRANSLATIONS = CHINESE / "translations"
COLAB_PREFIX = "https://colab.research.google.com/github/actlab/actlab/blob/main/notebooks/"


class TranslationError(ValueError):
    """A translation file that cannot be used: unreadable, malformed, or behind its English notebook."""


class StaleTranslationError(TranslationError):
    """An English markdown cell without an up-to-date translation."""


@dataclass(frozen=True)
class Problem:
    """One English markdown cell whose translation is missing or was made for another text."""

    notebook: str
    cell_id: str
    reason: str
    first_line: str

    def __str__(self) -> str:
        return f"{self.notebook}, cell {self.cell_id} ({self.first_line!r}): {self.reason}"


def text_hash(text: str) -> str:
    """The SHA-256 of an English cell's text, as a translation records it."""
    return hashlib.sha256(text.encode()).hexdigest()


def cell_text(cell: dict) -> str:
    """A cell's source as one string."""
    return "".join(cell["source"])


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def translation_file(notebook: Path) -> Path:
    """Where the translation of an English notebook lives."""
    return TRANSLATIONS / f"{notebook.stem}.json"


def read_translation(notebook: Path) -> dict[str, dict[str, str]]:
    """The translation of ``notebook``: cell id to its English text's hash and the Chinese text.

    Read as UTF-8 whatever the locale; a file that is not such a mapping is refused with a
    ``TranslationError`` that names the file and, where one is at fault, the cell.
    """
    path = translation_file(notebook)
    if not path.exists():
        return {}
    try:
        translation = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise TranslationError(f"{path} cannot be read as a UTF-8 JSON file: {err}") from err
    if not isinstance(translation, dict):
        raise TranslationError(f"{path} must hold a JSON object mapping cell ids to translations.")
    for cell_id, entry in translation.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in ("en_sha256", "zh")):
            raise TranslationError(f"{path}, cell {cell_id}: a translation must be an object with the strings "
                                   f"\"en_sha256\" and \"zh\", not {entry!r:.80}.")
    return translation


def problems(notebook: Path, translation: dict[str, dict[str, str]]) -> list[Problem]:
    """Every markdown cell of ``notebook`` whose translation is missing or stale."""
    found = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = cell_text(cell)
        entry = translation.get(cell["id"])
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        if entry is None:
            found.append(Problem(notebook.name, cell["id"], "no translation", first))
        elif entry.get("en_sha256") != text_hash(text):
            found.append(Problem(notebook.name, cell["id"], "translated from an older English text", first))
    return found


def build(notebook: Path, translation: dict[str, dict[str, str]]) -> dict:
    """The Chinese notebook: the English one with each markdown cell translated, code cells unchanged."""
    found = problems(notebook, translation)
    if found:
        raise StaleTranslationError("Update the translation in " + str(translation_file(notebook)) + ":\n  "
                                    + "\n  ".join(map(str, found)))
    chinese = copy.deepcopy(json.loads(notebook.read_text(encoding="utf-8")))
    english_link, chinese_link = COLAB_PREFIX + notebook.name, COLAB_PREFIX + "zh/" + notebook.name
    for cell in chinese["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = _lines(translation[cell["id"]]["zh"].replace(english_link, chinese_link))
    return chinese


def english_notebooks() -> list[Path]:
    """The numbered English notebooks, in order."""
    return sorted(ENGLISH.glob("[0-9][0-9]_*.ipynb"))


def main() -> int:
    """Rebuild every Chinese notebook; name every stale translation and exit 1 if there is one."""
    failed = False
    for notebook in english_notebooks():
        try:
            chinese = build(notebook, read_translation(notebook))
        except TranslationError as err:
            print(err, file=sys.stderr)
            failed = True
            continue
        write_atomic(CHINESE / notebook.name, (json.dumps(chinese, indent=1, ensure_ascii=False) + "\n").encode())
        print(f"notebooks/zh/{notebook.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
