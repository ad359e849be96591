"""wow-gym agreement: paired agreement pooled over tasks, from finished `wow-gym evaluate` runs.

Reads each run's results.json (one run per task) and writes, in `out`: Pearson, Spearman and MMRV of imagined
against simulated success per task and pooled over every (policy, task) point (agreement.md,
agreement.json), and one scatter coloured by task (agreement.png). Typical use: make evaluate-pooled.
"""

from __future__ import annotations

import sys

from wow_gym.experiments.config_loading import start_run


def main(argv: list[str]) -> int:
    started = start_run("agreement", argv, __doc__, "agreement")
    if started is None:
        return 0
    values, out = started
    from wow_gym.policies.agreement import pool_agreement

    try:
        figures = pool_agreement(values["runs"] or [], out)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"wow-gym agreement: {error}") from None
    for name, c in figures.items():
        named = (("Pearson", c.pearson), ("Spearman", c.spearman), ("MMRV", c.mmrv))
        numbers = ", ".join(f"{key} {value:.3f}" for key, value in named if value is not None)
        print(f"{name}: {numbers or '-'}{f' ({c.note})' if c.note else ''}")
    print(f"plot and table: {out}/agreement.png, agreement.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
