"""Template variants: LLM paraphrases and translations of templates, validated and written for
review (``instructmill templates paraphrase|translate``)."""
