"""Tuning every method on the same budget, selected on seeds it is not scored on.

* :mod:`~noisybench.tuning.config`: the grid's ``[tune]`` table;
* :mod:`~noisybench.tuning.trials`: the trials of each (method, setting) drawn from the method's search space;
* :mod:`~noisybench.tuning.selection`: choosing a configuration from the tuning seeds' results;
* :mod:`~noisybench.tuning.run`: the two stages of a tuned grid (tuning, then evaluation on the grid's seeds).

Search spaces themselves are part of the method contract (:mod:`noisybench.search_space`).
"""
