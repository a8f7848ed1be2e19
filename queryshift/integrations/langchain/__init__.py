"""LangChain: adapted query embeddings for any ``Embeddings`` a vector store already uses.

Needs ``pip install queryshift[langchain]`` (``langchain-core``). ``import queryshift`` never
imports this package, so queryshift works without LangChain.
"""

from queryshift.integrations.langchain.embeddings import AdaptedEmbeddings, EncoderEmbeddings

__all__ = ["AdaptedEmbeddings", "EncoderEmbeddings"]
