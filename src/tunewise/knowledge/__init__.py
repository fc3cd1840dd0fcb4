"""Knowledge: documents, chunks, embeddings and retrieval (dense, BM25, hybrid) over a corpus on disk.

    loaders.load_documents   files and folders -> Document (txt, md, html, pdf, jsonl)
    chunker.chunk_document   Document -> Chunk, token-aware, sentence-respecting
    embedder.open_embedder   texts -> unit vectors (local sentence-transformers or an OpenAI-compatible
                             endpoint), cached per text in SQLite
    index.KnowledgeIndex     incremental LanceDB + BM25 index; search(query, k, retriever)
    evaluation               recall@k, reciprocal rank and answer hits for retrieval

Heavy libraries (lancedb, bm25s, trafilatura, pypdf, sentence-transformers) are imported only when used.
"""
