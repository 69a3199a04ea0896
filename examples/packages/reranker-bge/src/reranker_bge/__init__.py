"""Example plugin: BGE reranker."""


def describe() -> str:
    return "BGE reranker (reranker-bge 0.1.0)"
