"""How a target is searched: targets, the float64 reference, evaluation, the Hypothesis search,
jobs, workers and the runner."""
