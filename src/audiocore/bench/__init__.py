"""The benchmarks behind ``audiocore bench`` and ``audiocore loadtest`` (the ``bench`` extra).

``harness``: the runner and the ``Case``/``Impl`` types; ``cases_*``: one module of cases per
kernel family, each timing audiocore beside its peers; the peers written here
(``seed_gateway``, ``offshelf_gateway``, ``ogg_peer``, ``aiortc_*_queue``) and the load test's
baseline bridge (``usual_bridge``, run as ``python -m audiocore.bench.usual_bridge``).
Importing a case module imports its peers (soxr, opuslib, av, ...): never imported by the
package's hot paths.
"""
