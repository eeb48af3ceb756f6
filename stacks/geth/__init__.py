"""go-ethereum in developer mode as an l2chaos target (stack `geth`).

`python -m l2chaos.stacks.geth ARGS...` replaces itself with the geth binary (found as
`$L2CHAOS_GETH`, else ~/.cache/l2chaos/bin/geth, which `.ci/setup` builds, else `geth`
on PATH), so the service's process is geth itself: a SIGKILL reaches the node.
"""

from pathlib import Path

STACK_FILE = Path(__file__).with_name("stack.yaml")
GETH_VERSION = "1.17.10"
