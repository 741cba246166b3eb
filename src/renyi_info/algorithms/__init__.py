"""The algorithms behind every quantity, on trusted inputs (validated at the public door).

- `exact`: the entropy of one Gram by its spectrum (``"eig"``), the Frobenius identity (alpha = 2) or
  matrix powers (integer alpha);
- `lanczos`: stochastic Lanczos quadrature (``method="lanczos"``), matrix-free;
- `tiles`, `fused`, `triton_tiles`: the tile-streaming alpha = 2 reduction (PyTorch and Triton);
- `routes`: how an entropy term of features is evaluated (``gram``, ``fused``, ``feature``, ``dual``)
  and the cost model that picks the route;
- `petz`: the Petz-Rényi divergence with its Daleckii-Krein backward.

Nothing here imports the public front doors; see "Architecture" in the docs.
"""
