"""Functions referenced by the valid labs of the conformance suite."""


def summarize(path: str, scale: int = 1) -> dict:
    return {"path": path, "scale": scale}
