"""What a finding means: the diagnosis of the first bad op, stability maps, precision comparison."""
