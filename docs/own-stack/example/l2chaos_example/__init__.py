"""Example l2chaos plugin: `example.link_flap` (a fault), `example.block_progress` (an
invariant) and the stack `mydex` (stack.yaml next to this file)."""

from pathlib import Path

STACK_FILE = Path(__file__).with_name("stack.yaml")
