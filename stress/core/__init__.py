"""What a check is: modes and dtype facts, numerics, options and outcomes, recipes and strategies,
and the checks. ``options``, ``outcomes`` and ``validation`` import nothing heavy."""
