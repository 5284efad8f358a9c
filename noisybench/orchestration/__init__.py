"""Running a plan: which runs to (re)train, in which processes, and with what guarantees.

* :mod:`~noisybench.orchestration.runner`: one run, from its configuration to its stored record (claims,
  checkpoints, failures recorded with their reason);
* :mod:`~noisybench.orchestration.resume`: what a plan still has to train, given the store;
* :mod:`~noisybench.orchestration.fingerprint` (and ``fingerprint_legacy``): what a run's numbers depend on
  beyond its configuration, and when a stored run is stale;
* :mod:`~noisybench.orchestration.interrupt`: Ctrl-C, SIGTERM and preemption;
* :mod:`~noisybench.orchestration.progress`: the progress lines;
* :mod:`~noisybench.orchestration.executors`: where runs execute (in process, a local worker pool, Slurm).
"""
