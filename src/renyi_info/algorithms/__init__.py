"""The algorithms behind every quantity, on trusted inputs (validated at the public door).

- `exact`: the entropy of one Gram by its spectrum (``"eig"``), the Frobenius identity (alpha = 2) or
  matrix powers (integer alpha);
- `lanczos`: stochastic Lanczos quadrature (``method="lanczos"``), matrix-free (a package: options,
  operators, quadrature, estimator, gradient);
- `fused`, `triton_tiles`: the tile-streaming alpha = 2 reduction (PyTorch tiles and Triton kernels);
- `routes`: how an entropy term of features is evaluated (``gram``, ``fused``, ``feature``, ``dual``)
  and the cost model that picks the route;
- `petz`: the Petz-Rényi divergence with its Daleckii-Krein backward.

What each kernel contributes (its Gram, tile form and features, diagonal, Lanczos operands) comes from its
definition in `renyi_info.kernels`; nothing here tests a kernel's name. Nothing here imports the public front
doors; see "Architecture" in the docs.
"""
