"""The stages: each a `DataFrame -> DataFrame` function (or a factory of one from its own
settings), in the order of the flow: render, langid, tag, exclude, dedup (with components),
and the mixture stages."""
