"""locale_gen against a locale.gen (or Ubuntu's supported.d) in tmp_path, with stand-ins for `locale -a` and
locale-gen on PATH that read and write a list in tmp_path: this machine's locales are never generated."""
import os

import pytest
import voluptuous as vol

from modules.tasks.locale_gen import LocaleGen, fix_case, set_locales

LOCALE_GEN = "# This file lists locales\n# de_CH.UTF-8 UTF-8\n#  en_US.UTF-8 UTF-8\n# fr_FR ISO-8859-1\n"


@pytest.fixture
def fakes(target, tmp_path, monkeypatch):
    """`locale -a` prints tmp_path/generated; Debian's locale-gen generates what locale.gen enables."""
    generated, log, bin_dir = tmp_path / "generated", tmp_path / "calls", tmp_path / "bin"
    generated.write_text("C\nC.utf8\nPOSIX\n")
    bin_dir.mkdir()
    scripts = {
        "locale": f'[ "$1" = -a ] && cat {generated}\n',
        "locale-gen": (f'echo "locale-gen $*" >> {log}\n'
                       f'if [ -d {target}/supported.d ]; then\n'
                       f'  [ "$1" = --purge ] && {{ printf "C\\nC.utf8\\nPOSIX\\n"; cut -d" " -f1 {target}/supported.d/local'
                       f' | sed s/UTF-8/utf8/; }} > {generated} && exit 0\n'
                       f'  for n; do echo "$n UTF-8" >> {target}/supported.d/local; echo "$n" | sed s/UTF-8/utf8/'
                       f' >> {generated}; done; exit 0\nfi\n'
                       f'{{ printf "C\\nC.utf8\\nPOSIX\\n"; grep -v "^#" {target}/locale.gen | cut -d" " -f1 | '
                       f'sed s/UTF-8/utf8/; }} > {generated}\n'),
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(LocaleGen, "locale_gen", str(target / "locale.gen"))
    monkeypatch.setattr(LocaleGen, "supported_dir", str(target / "supported.d"))
    monkeypatch.setattr(LocaleGen, "supported", str(target / "SUPPORTED"))
    return generated, log


def test_debian_enables_generates_and_removes(h, target, fakes):
    generated, log = fakes
    (target / "locale.gen").write_text(LOCALE_GEN)
    checked = h.run("locale_gen", {"name": "de_CH.UTF-8"}, check=True)
    assert checked.status == "ok" and not log.exists()            # Ansible's check mode reports ok
    result = h.run("locale_gen", {"name": ["de_CH.UTF-8", "en_US.UTF-8"]})
    assert result.changed and result.data == {"name": ["de_CH.UTF-8", "en_US.UTF-8"]}
    assert (target / "locale.gen").read_text() == ("# This file lists locales\nde_CH.UTF-8 UTF-8\n"
                                                   "en_US.UTF-8 UTF-8\n# fr_FR ISO-8859-1\n")
    assert "de_CH.utf8" in generated.read_text() and log.read_text() == "locale-gen \n"
    assert h.run("locale_gen", {"name": "de_CH.UTF-8,en_US.UTF-8"}).status == "ok"
    removed = h.run("locale_gen", {"name": "en_US.UTF-8", "state": "absent"})
    assert removed.changed and "# en_US.UTF-8 UTF-8\n" in (target / "locale.gen").read_text()
    assert h.run("locale_gen", {"name": "en_US.UTF-8", "state": "absent"}).status == "ok"


def test_ubuntu_generates_by_name_and_purges(h, target, fakes):
    generated, log = fakes
    (target / "supported.d").mkdir()
    (target / "supported.d/local").write_text("")
    (target / "SUPPORTED").write_text("de_CH.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n")
    assert h.run("locale_gen", {"name": "en_US.UTF-8"}).changed
    assert log.read_text() == "locale-gen en_US.UTF-8\n" and "en_US.utf8" in generated.read_text()
    assert h.run("locale_gen", {"name": "en_US.UTF-8"}).status == "ok"
    assert h.run("locale_gen", {"name": "en_US.UTF-8", "state": "absent"}).changed
    assert (target / "supported.d/local").read_text() == "" and log.read_text().endswith("locale-gen --purge\n")


def test_errors(h, target, fakes):
    none = h.run("locale_gen", {"name": "de_CH.UTF-8"})
    assert none.failed and 'Is the package "locales" installed?' in none.msg
    (target / "locale.gen").write_text(LOCALE_GEN)
    bad = h.run("locale_gen", {"name": ["xx_YY.UTF-8", "C.UTF-8"]})     # C.UTF-8: generated, so available
    assert bad.failed and bad.msg.endswith("not available on your system: xx_YY.UTF-8")
    with pytest.raises(vol.Invalid):
        h.params("locale_gen", {"name": []})


def test_helpers():
    assert fix_case("de_CH.utf8") == "de_CH.UTF-8"
    assert set_locales("de_CH.UTF-8 UTF-8\n", ("de_CH.UTF-8",), False) == "# de_CH.UTF-8 UTF-8\n"
    assert set_locales("#de_CH.UTF-8 UTF-8\n", ("de_CH",), True) == "#de_CH.UTF-8 UTF-8\n"
