"""The commands (`instructmill build | dedup | mix | check`): each reads its config, declares
its stages, runs them through `jobs.pipeline` and writes its outputs and manifest. Commands
never import each other."""
