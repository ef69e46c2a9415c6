"""Training-side clustering: fast K-Shape, choosing K, and the readable pattern catalogue.

The distance and the idle rule live in :mod:`mesp.sbd` and routing in :mod:`mesp.router` (numpy only),
so serving shares them without importing scipy.
"""

from mesp.clustering.kshape import KShape
from mesp.clustering.select_k import SelectKResult, select_k
from mesp.clustering.catalogue import describe_clusters, plot_catalogue

__all__ = ["KShape", "SelectKResult", "describe_clusters", "plot_catalogue", "select_k"]
