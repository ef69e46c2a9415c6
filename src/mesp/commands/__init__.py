"""One module per CLI verb; see :mod:`mesp.cli`."""
