"""The book's publishing side: profiles (``config``), the paper's reported numbers (``paper``), what the
chapters show (``reporting``, ``plots``, ``selection_plots``, ``distill_plots``, ``dataset_figures``,
``claims``, ``discussion``, ``real_faces``, ``selection_chapter``, ``distill_chapter``, ``paper_tables``),
and running and publishing the chapters (``runner``, ``reproducibility``, ``distributed_run``, the
``omnifer`` command in ``cli``). The stages they read are :mod:`omnifer_lib.engine`.

``omnifer_lib.data``, ``models``, ``train``, ``evaluate``, ``select``, ``distill`` - the paper's method -
and the engine never import this package.
"""
