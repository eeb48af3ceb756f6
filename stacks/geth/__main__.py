"""Exec geth with the given arguments (see `l2chaos.stacks.geth`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def geth_binary() -> str | None:
    """Where geth is: $L2CHAOS_GETH, the l2chaos cache, or PATH."""
    given = os.environ.get("L2CHAOS_GETH")
    if given:
        return given
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "l2chaos" / "bin"
    if (cache / "geth").is_file():
        return str(cache / "geth")
    return shutil.which("geth")


def main() -> None:
    binary = geth_binary()
    if binary is None:
        print(
            "geth not found: run .ci/setup (it builds go-ethereum into ~/.cache/l2chaos/bin), "
            "or set L2CHAOS_GETH",
            file=sys.stderr,
        )
        sys.exit(3)
    os.execv(binary, [binary, *sys.argv[1:]])


if __name__ == "__main__":
    main()
