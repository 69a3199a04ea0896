"""Example plugin: Qdrant vector database."""


def describe() -> str:
    return "Qdrant vector database (qdrant-adapter 0.3.0)"
