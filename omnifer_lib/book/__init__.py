"""The book's machinery, apart from the paper's method: cached pipeline stages (``pipeline``) over
the artifact store (``store``, keys with code ``fingerprint``), profiles (``config``), the paper's
reported numbers (``paper``), tables, plots and claims of the chapters (``reporting``, ``plots``,
``selection_plots``, ``distill_plots``, ``dataset_figures``, ``claims``), and running and
publishing them (``runner``, ``provenance``, ``reproducibility``, the ``omnifer`` command in ``cli``).

``omnifer_lib.data``, ``models``, ``train``, ``evaluate``, ``select`` and ``distill`` - the
paper's method - never import this package.
"""
