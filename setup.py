"""Maps the brief's top-level folders onto one import namespace.

harness/ is the `l2chaos` package; faults/, stacks/ and scenarios/ install as
`l2chaos.faults`, `l2chaos.stacks` and `l2chaos.scenarios`, so generic folder names
never collide with other distributions in a user's site-packages. Packages are found
on disk (every folder with an __init__.py) so the list never drifts from the tree.
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
    here = Path(__file__).parent
    found: list[str] = []
    for name, folder in ROOTS.items():
        root = here / folder
        for init in sorted(root.rglob("__init__.py")):
            rel = init.parent.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            found.append(".".join([name, *rel.parts]) if rel.parts else name)
    return found


setup(packages=_packages(), package_dir=ROOTS)
