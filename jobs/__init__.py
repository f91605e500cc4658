"""Spark side of instructmill: session, config, readers, stages, writers and entry points."""
