"""The reference perpetual-futures exchange stack (see stack.yaml)."""

from pathlib import Path

__all__ = ["STACK_FILE"]

STACK_FILE = Path(__file__).with_name("stack.yaml")
