"""Example plugin: Qwen2-VL adapter. The project is qwen-adapter, the manifest vlm-adapter-qwen."""


def describe() -> str:
    return "Qwen2-VL adapter (vlm-adapter-qwen 0.2.0)"
