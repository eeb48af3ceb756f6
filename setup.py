"""Maps the brief's top-level folders onto one import namespace.

harness/ is the `l2chaos` package; faults/, stacks/ and scenarios/ install as
`l2chaos.faults`, `l2chaos.stacks` and `l2chaos.scenarios`, so generic folder names
never collide with other distributions in a user's site-packages. Packages are found
on disk (every folder with an __init__.py, and data-only folders) so the list never
drifts from the tree.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "l2chaos": "harness",
    "l2chaos.faults": "faults",
    "l2chaos.stacks": "stacks",
    "l2chaos.scenarios": "scenarios",
}


def _packages() -> list[str]:
    """Every folder with an __init__.py, and every data-only folder (SQL migrations,
    Dockerfiles, example stack files) so their files ship as package data."""
    here = Path(__file__).parent
    found: list[str] = []
    for name, folder in ROOTS.items():
        root = here / folder
        for sub in sorted(p for p in root.rglob("*") if p.is_dir()):
            rel = sub.relative_to(root)
            if "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
                continue
            if (sub / "__init__.py").is_file() or any(f.is_file() for f in sub.iterdir()):
                found.append(".".join([name, *rel.parts]))
        found.append(name)
    return sorted(set(found))


setup(packages=_packages(), package_dir=ROOTS)
