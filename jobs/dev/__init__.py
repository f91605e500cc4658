"""Dev-only tools, never shipped to executors: the model setup step, the loopback standalone
cluster, the code zip for `--py-files`."""
