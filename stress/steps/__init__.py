"""Training steps: ``GuardedStep`` for users (``guard.py`` imports only torch and the numerics),
injected faults, and the sessions that stress-test a step."""
