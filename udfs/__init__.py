"""Pure per-batch logic (templating, records, language ID, MinHash): never imports pyspark."""
