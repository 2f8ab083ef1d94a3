"""The claims page's verdicts do not change when the learners' floating-point order does."""
import numpy as np

from omnifer_lib.book import claims, config, pipeline


def test_verdicts_stay_when_the_learners_train_with_another_thread_count(tmp_path, monkeypatch):
    results = {}
    for threads in (1, 2):  # the thread count orders a convolution's sums, like a change of machine
        monkeypatch.setenv("OMNIFER_CACHE", str(tmp_path / f"threads{threads}"))
        pipeline.clear_memory_caches()
        results[threads] = claims.collect_results(config.load_profile("smoke", {"train_threads": threads}))
    pipeline.clear_memory_caches()
    one, two = (results[t][results[t]["table"].isin(["1", "2"])]["accuracy"].to_numpy() for t in (1, 2))
    assert len(one) == len(two) > 0
    assert (one != two).any(), "the second thread count changed no learner: this test would test nothing"
    # Under a rule that decides on the sign alone, the smoke run's "VAS + ResNet beats its baseline" went
    # from -1.4 (not reproduced) with one thread to +1.4 (inconclusive) with two, on an AMD EPYC.
    learners = [c for c in claims.paper_claims() if c.value != "cost_ratio"]  # cost ratios are timings
    verdicts = {t: claims.check_all(learners, results[t])["verdict"].tolist() for t in (1, 2)}
    changed = [(c.id, a, b) for c, a, b in zip(learners, verdicts[1], verdicts[2]) if a != b]
    assert not changed
    assert np.isin(verdicts[1], [claims.REPRODUCED, claims.NOT_REPRODUCED, claims.INCONCLUSIVE]).all()
