"""Example plugin: Qwen2-VL adapter."""


def describe() -> str:
    return "Qwen2-VL adapter (vlm-adapter-qwen 0.2.0)"
