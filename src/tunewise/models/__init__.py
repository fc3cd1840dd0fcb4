"""Model backends behind one async protocol: `openai:` (any OpenAI-compatible server) and `hf:` (local
transformers). A `lab:` model is an `hf:` folder the lab builds; it is resolved above this package."""

from tunewise.models.base import ChatRequest, Completion, Model, Piece, StreamingModel

__all__ = ["ChatRequest", "Completion", "Model", "Piece", "StreamingModel"]
