"""The main job: NSGA-II over per-layer bit widths with exact hardware costs and QAT accuracy.

Modules, in the order data flows through them: ``config`` (the experiment file), ``experiment``
(assembles and runs it), ``hardware`` (per-layer mapper jobs and network totals), ``accuracy``
(QAT jobs), ``nsga2`` (the search), ``store`` (SQLite, the single source for resume),
``executors`` (local pool or Ray), ``results`` (what a run produced), ``report`` and ``plots``
(the results folder), ``headline`` (savings at no accuracy drop against uniform quantization)
and ``figures`` (the paper's figures).
"""
