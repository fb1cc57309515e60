"""The design's example recipe is the users' contract: it validates as written, and its shorthands mean
what they say (source_ami by name, an AMI name unique per build when none is given)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.recipe.compile import CompileOptions, compile_recipe
from modules.platforms.amazon.config import SourceAmiQuery

DESIGN = Path(__file__).resolve().parents[3] / "data" / "design"


@pytest.fixture
def design(tmp_path, monkeypatch) -> Path:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("web.yml", "site.conf.j2"):
        shutil.copy(DESIGN / name, tmp_path / name)
    return tmp_path / "web.yml"


def test_the_design_example_validates_as_written(design, capsys):
    assert main(["validate", str(design)]) == 0, capsys.readouterr().err
    assert "valid (2 build(s)" in capsys.readouterr().out


def test_source_ami_by_name_is_a_name_filter_and_ami_name_may_be_left_out(design):
    recipe = compile_recipe(design, CompileOptions())
    aws = next(b for b in recipe.builds if b.source.name == "aws")
    config = aws.source.config
    assert config.source_ami == SourceAmiQuery(filters={"name": ["debian-12-amd64-*"]}, owners=("136693071363",),
                                               most_recent=True)
    assert config.ami_name is None      # the build names it <recipe>-<source>-<build id>


@pytest.mark.parametrize("source_ami, words", [
    ("{owners: [self]}", "source_ami needs a name or filters"),
    ('{name: "a-*", filters: {name: "b-*"}}', "source_ami gives name twice"),
])
def test_a_source_ami_query_without_one_name_is_refused_at_its_line(design, capsys, source_ami, words):
    text = design.read_text().replace(
        'source_ami: {name: "debian-12-amd64-*", owners: ["136693071363"], most_recent: true}',
        f"source_ami: {source_ami}")
    design.write_text(text)
    assert main(["validate", str(design)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "source_ami:" in l)
    assert words in err and f"web.yml:{line}:" in err, err
