"""The cached-stage engine: the paper's pipeline as cached stages (``pipeline``: datasets, face
pretraining, the learners, selection, distillation, the final learners, CK+ folds, Table 8's timed
epochs) over the artifact store (``store``), whose keys hold the code each stage runs
(``fingerprint``), the record of the machine and commit that made a result (``provenance``), and
which dataset plays which of the paper's roles (``roles``).

It imports the paper's method (``omnifer_lib.data``, ``models``, ``train``, ``evaluate``, ``select``,
``distill``) and never the book's publishing side (:mod:`omnifer_lib.publish`), which reads it.
"""
