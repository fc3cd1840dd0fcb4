"""Knowledge: embeddings now; loaders, chunking, vector stores and retrieval as they arrive."""
