"""``noisybench run`` of a grid with ``[tune]``: the tuning stage, the choice, then the evaluation stage.

The stages are ordinary plans of runs (skipped when finished, resumed when interrupted, claimed in the store), so
the driver may stop anywhere: rerunning the same command finds the finished trials, makes the same choice from
their stored noisy-validation accuracies and goes on. Locally one ``run`` does both stages. On Slurm, ``run``
waits for the tuning jobs and then submits the evaluation; with ``--detach`` it submits the tuning stage and
returns, and running it again once those jobs have finished submits the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from noisybench.tuning.trials import TunePlan, choose, describe_choice

#: Final states of a run: a trial in one of them has done all it will.
TERMINAL = ("done", "failed")
#: ``stage(runs, planned, expected fingerprints, what)`` -> (records or None when detached, decision).
Stage = Callable[[list, list, dict[str, str], str], tuple[list | None, Any]]


def run_tuned(plan: TunePlan, store: Any, stage: Stage, closing: Callable[[list, dict[str, str]], int],
              detach: bool = False, log: Callable[[str], None] = print) -> int:
    """Run both stages of ``plan`` into ``store`` (a :class:`~noisybench.store.ResultStore`); ``closing(records,
    current fingerprints)`` prints the final table and returns the exit status."""
    from noisybench.orchestration.fingerprint import fingerprints

    trials = plan.trial_runs()
    log(plan.summary())
    expected = fingerprints(trials)
    records, decision = stage(trials, trials, expected, "tuning stage")
    missing = [r for r in trials if r.run_id not in decision.current or store.status(r.run_id) not in TERMINAL]
    if missing:
        if records is None or detach:
            log(f"tuning stage submitted ({len(missing)} of {len(trials)} trial runs to come): run the same command "
                "again once those jobs have finished; it then chooses each setting's trial and submits the evaluation "
                f"stage (follow with `noisybench status {store.root}`)")
        else:
            log(f"tuning stage incomplete: {len(missing)} of {len(trials)} trial runs have no current result (stale, "
                "or trained by another process); the evaluation stage waits for all of them: run this command again")
        return 0
    chosen = choose(plan, store)
    for cell in plan.cells:
        log(describe_choice(cell, chosen[cell.key]))
    evaluation = plan.evaluation_runs({k: c.trial for k, c in chosen.items() if c.trial is not None})
    expected.update(fingerprints(evaluation))
    more, final = stage(evaluation, trials + evaluation, expected, "evaluation stage")
    if more is None:
        return 0
    current = decision.current | final.current
    return closing([*(records or []), *more], {run_id: expected[run_id] for run_id in current})
