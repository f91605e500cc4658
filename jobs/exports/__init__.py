"""``instructmill export``'s parts: the formats (the fields of an exported row as Spark
expressions), the shards (files named before they are written, renamed into place through
Hadoop FileSystem) and the documents a consumer reads (the Hub dataset card, LLaMA-Factory's
``dataset_info.json``)."""
