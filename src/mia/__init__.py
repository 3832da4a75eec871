"""MIA: Multi-granularity Image-text Alignments for description-based person retrieval.

Niu, Huang, Ouyang and Wang, "Improving Description-Based Person Re-Identification by
Multi-Granularity Image-Text Alignments", IEEE TIP 2020.
"""

__version__ = "0.1.0"
