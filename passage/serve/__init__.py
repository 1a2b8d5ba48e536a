"""``passage serve``: a model file behind HTTP, with micro-batching, limits, metrics and a live
reading-trace page. ``create_app(model_or_path)`` gives the ASGI app; ``run`` serves it with
uvicorn. Needs the ``serve`` extra (``pip install 'passage[serve]'``)."""

from passage.serve.app import create_app

__all__ = ["create_app"]
