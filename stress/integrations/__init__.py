"""torch-stress in other tools: the ``stress`` command, the pytest plugin, target discovery and
replay."""
