"""Reports: the JSON model (the source of truth), its Markdown and HTML views, atomic storage and
a journal, comparison with a baseline and merging of shards."""
