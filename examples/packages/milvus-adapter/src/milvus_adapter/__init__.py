"""Example plugin: Milvus vector database."""


def describe() -> str:
    return "Milvus vector database (milvus-adapter 0.5.1)"
