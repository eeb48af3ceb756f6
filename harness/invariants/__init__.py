"""Invariant checkers over the run record, coverage ("sometimes") and expectations.

One module per checker (registered automatically, see `l2chaos.registry`), beside:

- `base`: the `Checker` interface and its `Verdict`;
- `record`: `RunRecord`, the run directory as checkers read it;
- `uses`, `coverage`, `expectations`: the scenario sections `invariants:`,
  `sometimes:` and `expect:`;
- `check`: `check_run(run_dir)`, a finished run directory → verdicts and an exit code.

This file imports nothing, so `l2chaos.invariants.base` can be imported (by the
registry, by plug-ins) without loading the checkers that use the registry.
"""
