"""Packer templates as recipes: `recipe import web.pkr.hcl -o web.yml`.

HCL2 templates (a *.pkr.hcl or *.pkr.json file, or a folder of them with its
*.auto.pkrvars.* files) and JSON templates of Packer's first format. The steps,
one module each:

  reader, files, hcl_syntax, hcl_template,
  legacy_reader, names                               the files into a Template (template.py)
  hcl_expressions, go_templates, expressions         HCL2 and Go template expressions into Jinja
  mapping                                            the option tables' machinery: rules, notes, leftovers
  builders (builder_rules, installer_rules,
  qemu_builder, appliance_builders, amazon_builder),
  provisioners (provisioner_tools), post_processors,
  variables                                          the Template's parts as the recipe's (one table each)
  recipe, draft, writer                              the recipe assembled, then written with comments
"""
from __future__ import annotations

from pathlib import Path

from engine.recipe.importer import Imported, Importer, ImportOptions
from modules.importers.packer.files import TEMPLATE_SUFFIXES, PathMapper
from modules.importers.packer.reader import looks_legacy, read_template
from modules.importers.packer.recipe import make_recipe
from modules.importers.packer.writer import write


class PackerImporter(Importer, name="packer"):
    description = "HashiCorp Packer templates: HCL2 (*.pkr.hcl, *.pkr.json, or a folder of them) and JSON"

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        if path.is_dir():
            return any(p.name.endswith(TEMPLATE_SUFFIXES) for p in path.iterdir())
        return path.name.endswith(TEMPLATE_SUFFIXES) or (path.suffix == ".json" and looks_legacy(path))

    def convert(self, path: Path, options: ImportOptions) -> Imported:
        template = read_template(path, options)
        folder = path.resolve() if path.is_dir() else path.resolve().parent
        paths = PathMapper(workdir=options.workdir.resolve(), template_dir=folder,
                           recipe_dir=options.destination.resolve().parent)
        draft = make_recipe(template, paths)
        written = {part.key for part in draft.variables}
        withheld = tuple(str(part.value) for part in draft.secrets if part.value not in written)
        return Imported(text=write(draft), leftovers=draft.leftovers(), secrets=withheld)
