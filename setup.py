"""Packaging hook: an installed wheel carries the documentation (the help's knowledge base)
and the schema migrations, which live at the project's top level (README.md, docs/, sql/).

pyproject.toml holds all metadata; this only extends build_py to copy those files into the
package, where agents_pipeline.defs.help and agents_pipeline.core.settings look when the project
folder is not there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class build_py_with_data(build_py):
    def run(self) -> None:
        super().run()
        package = Path(self.build_lib) / "agents_pipeline"
        docs = package / "help" / "bundled_docs"
        shutil.rmtree(docs, ignore_errors=True)
        for src in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
            if src.is_file():
                dest = docs / src.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        sql = package / "bundled_sql"
        shutil.rmtree(sql, ignore_errors=True)
        sql.mkdir(parents=True)
        for src in sorted((ROOT / "sql").rglob("*.sql")):
            dest = sql / src.relative_to(ROOT / "sql")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)


setup(cmdclass={"build_py": build_py_with_data})
