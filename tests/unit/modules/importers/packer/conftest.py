"""Run the real `recipe import` on templates written into tmp_path, then the real `recipe validate` on its output.

Both go through engine.cli.main.main, the function the `recipe` command runs, in the test's process (tests
elsewhere run the command itself). The working directory is tmp_path: Packer takes a template's relative paths
from there, and so does the importer.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from ruamel.yaml import YAML

from engine.cli.main import main
from engine.recipe.compile import CompileOptions, compile_recipe
from engine.recipe.model import Recipe


@dataclass
class Imported:
    code: int
    out: str
    err: str
    path: Path                       # the recipe written (-o)
    validate: Callable[[], tuple[int, str]]

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def comments(self) -> str:
        """Every comment of the recipe as one line of text (wrapped comments joined again)."""
        lines = (line.strip() for line in self.text.splitlines())
        return " ".join(line.lstrip("#").strip() for line in lines if line.startswith("#"))

    @property
    def document(self) -> Any:
        return YAML(typ="safe").load(self.text)

    def recipe(self, *assignments: str) -> Recipe:
        """The recipe as `recipe run` would compile it (the checks of validate, and the model it builds)."""
        return compile_recipe(self.path, CompileOptions(placeholder_ids=True, var_assignments=assignments))

    def task(self, module: str, index: int = 0) -> dict:
        return [t for t in self.document["tasks"] if module in t][index]


@pytest.fixture
def packer(tmp_path, monkeypatch, capsys) -> Callable[..., Imported]:
    """packer({"web.pkr.hcl": text, "scripts/a.sh": text}, "web.pkr.hcl", *options) -> Imported."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("RECIPE_VAR_")]:
        monkeypatch.delenv(name)

    def validate(path: Path) -> tuple[int, str]:
        code = main(["validate", str(path)])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    def run(files: dict[str, str], template: str, *options: str, output: str = "recipes/web.yml") -> Imported:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        code = main(["import", template, "-o", output, *options])
        captured = capsys.readouterr()
        return Imported(code, captured.out, captured.err, tmp_path / output, lambda: validate(tmp_path / output))

    return run


def valid(imported: Imported) -> Recipe:
    """The imported recipe passes the real `recipe validate`; its compiled model, to look into."""
    code, output = imported.validate()
    assert code == 0, output + "\n" + imported.text
    assert "valid" in output
    return imported.recipe()
