"""The Chinese edition cannot drift from the English one without ``make test`` naming the cell."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from actlab.lab import edition

ENGLISH = edition.english_notebooks()


def test_every_notebook_has_a_chinese_twin():
    assert len(ENGLISH) >= 6
    for notebook in ENGLISH:
        assert (edition.CHINESE / notebook.name).is_file(), f"notebooks/zh/{notebook.name} is missing: run `make zh`"


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_every_english_text_has_an_up_to_date_translation(notebook):
    found = edition.problems(notebook, edition.read_translation(notebook))
    assert not found, "Update the translations (then `make zh`):\n" + "\n".join(map(str, found))


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_the_chinese_notebook_is_built_from_the_current_english_one(notebook):
    built = edition.build(notebook, edition.read_translation(notebook))
    committed = json.loads((edition.CHINESE / notebook.name).read_text())
    assert [(c["id"], c["cell_type"], c["source"]) for c in committed["cells"]] == [
        (c["id"], c["cell_type"], c["source"]) for c in built["cells"]], f"run `make zh` for {notebook.name}"


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_code_cells_are_the_english_ones_and_the_prose_is_chinese(notebook):
    english = json.loads(notebook.read_text())["cells"]
    chinese = json.loads((edition.CHINESE / notebook.name).read_text())["cells"]
    for en, zh in zip(english, chinese, strict=True):
        if en["cell_type"] == "code":
            assert zh["source"] == en["source"] and zh["metadata"] == en["metadata"]
        else:
            text = edition.cell_text(zh)
            assert re.search(r"[\u4e00-\u9fff]", text), f"{notebook.name}, cell {zh['id']} is untranslated: {text[:60]}"


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_translations_keep_formulas_and_code_spans(notebook):
    english = {c["id"]: edition.cell_text(c) for c in json.loads(notebook.read_text())["cells"]}
    for cell_id, entry in edition.read_translation(notebook).items():
        chinese = " ".join(entry["zh"].split())
        for pattern in (r"\$\$.+?\$\$|\$[^$]+\$", r"`[^`]+`"):
            spans = [" ".join(span.split()) for span in re.findall(pattern, english[cell_id], re.S)]
            missing = [span for span in spans if span not in chinese]
            assert not missing, f"{notebook.name}, cell {cell_id}: the translation lost {missing}"


def test_a_changed_english_cell_is_named(tmp_path, monkeypatch):
    notebook = tmp_path / ENGLISH[0].name
    shutil.copy(ENGLISH[0], notebook)
    values = json.loads(notebook.read_text())
    cell = next(c for c in values["cells"] if c["cell_type"] == "markdown")
    cell["source"] = [*cell["source"], " A sentence added later."]
    notebook.write_text(json.dumps(values))
    translation = edition.read_translation(ENGLISH[0])
    found = edition.problems(notebook, translation)
    assert [(p.cell_id, p.reason) for p in found] == [(cell["id"], "translated from an older English text")]
    with pytest.raises(edition.StaleTranslationError, match=cell["id"]):
        edition.build(notebook, translation)
    del translation[cell["id"]]
    assert edition.problems(notebook, translation)[0].reason == "no translation"


def numbers(text: str) -> list[str]:
    """The numbers of a text, thousands separators dropped: ``50,000`` and ``50000`` are one number."""
    return sorted(re.findall(r"\d+(?:\.\d+)?", re.sub(r"(?<=\d),(?=\d{3})", "", text)))


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_every_number_of_a_translation_is_the_english_cells(notebook):
    english = {c["id"]: edition.cell_text(c) for c in json.loads(notebook.read_text())["cells"]}
    wrong = [(cell_id, sorted(set(numbers(entry["zh"])) ^ set(numbers(english[cell_id]))))
             for cell_id, entry in edition.read_translation(notebook).items()
             if cell_id in english and set(numbers(entry["zh"])) != set(numbers(english[cell_id]))]
    assert not wrong, f"{notebook.name}: numbers that only one edition has, by cell: {wrong}"


def test_the_number_check_catches_a_changed_number():
    assert set(numbers("准确率为 88.70% 共 50,000 张")) != set(numbers("an accuracy of 88.07% on 50,000 images"))
    assert set(numbers("准确率为 88.70% 共 50000 张")) == set(numbers("an accuracy of 88.70% on 50,000 images"))


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_no_translation_of_a_cell_that_is_gone(notebook):
    markdown = {c["id"] for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "markdown"}
    orphans = sorted(set(edition.read_translation(notebook)) - markdown)
    assert not orphans, f"{edition.translation_file(notebook).name} translates cells that no longer exist: {orphans}"


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.name)
def test_the_chinese_outputs_are_the_english_runs(notebook):
    english = [c.get("outputs") for c in json.loads(notebook.read_text())["cells"]]
    chinese = [c.get("outputs") for c in json.loads((edition.CHINESE / notebook.name).read_text())["cells"]]
    assert chinese == english, f"run `make zh` for {notebook.name}"


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "cannot be read as a UTF-8 JSON file"),
    (b"\xff\xfe{}", "cannot be read as a UTF-8 JSON file"),
    (b'["a list"]', "must hold a JSON object mapping cell ids to translations"),
    (b'{"c01": "just text"}', 'cell c01: a translation must be an object with the strings "en_sha256" and "zh"'),
    (b'{"c01": {"en_sha256": "ab"}}', 'cell c01: a translation must be an object'),
    (b'{"c01": {"en_sha256": "ab", "zh": 3}}', 'cell c01: a translation must be an object'),
])
def test_a_malformed_translation_file_is_named_with_its_cell(tmp_path, monkeypatch, capsys, content, message):
    english = tmp_path / "en"
    english.mkdir()
    shutil.copy(edition.english_notebooks()[0], english)
    monkeypatch.setattr(edition, "ENGLISH", english)
    monkeypatch.setattr(edition, "CHINESE", tmp_path / "zh")
    monkeypatch.setattr(edition, "TRANSLATIONS", tmp_path / "translations")
    (tmp_path / "translations").mkdir()
    notebook = edition.english_notebooks()[0]
    edition.translation_file(notebook).write_bytes(content)
    with pytest.raises(edition.TranslationError, match=re.escape(message)):
        edition.read_translation(notebook)
    assert edition.main() == 1
    err = capsys.readouterr().err
    assert str(edition.translation_file(notebook)) in err and "Traceback" not in err
    assert not (tmp_path / "zh").exists()


def test_translations_are_read_as_utf8_whatever_the_locale():
    import os
    import subprocess
    import sys

    code = ("from actlab.lab import edition; notebook = edition.english_notebooks()[0]; "
            "print(len(edition.read_translation(notebook)) > 0)")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "True"
