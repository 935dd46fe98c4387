"""press_selfhosted as the Agent of container servers: Press's agent protocol answered in-process."""
