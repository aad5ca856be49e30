"""Our own implementation of sentence-transformers' losses, drop-in for 6.x.

Written from the math and the papers; sentence-transformers is only the oracle the tests compare
against. The losses arrive in two parts (see the project's issues): the losses that are math on
embeddings, then the ones that wrap models or batches. ``lab.catalog`` lists all 29.
"""
