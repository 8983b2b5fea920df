"""The label graph as data: order-preserving embeddings of a taxonomy (Dhall's thesis, Chapters 5-6).

The branch of the pipeline without images (docs/embeddings.md):

* :mod:`~taxonbench.label_graph.edges`: the edge dataset made from any
  taxonomy (transitive closure, basic and non-basic edges, val / test
  edges with their fixed negatives) and the pick-per-level negative sampler;
* :mod:`~taxonbench.label_graph.edge_metrics`: edge classification at a
  threshold chosen on validation edges, and graph reconstruction (full-F1);
* :mod:`~taxonbench.label_graph.models`: the registered embedding models
  (order-embeddings, Euclidean and hyperbolic entailment cones);
* :mod:`~taxonbench.label_graph.train`: label-only training (§5.5);
* :mod:`~taxonbench.label_graph.joint`: the joint image + label embedding (§5.6).

``edges`` and ``edge_metrics`` are torch-free; the others import torch.
"""
