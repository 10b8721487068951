"""Shared pytest configuration: the hypothesis profiles of the test suite.

Choose one with the environment variable ``HYPOTHESIS_PROFILE``:

* ``ci`` (default): few examples, derandomized, so the whole suite stays fast
  and a CI run is reproducible;
* ``dev``: more random examples, for local work on an op or a solver;
* ``fuzz``: 10 000 examples per property, for a long bug hunt;
* ``mutation``: ``ci`` without the shrink phase (tools/mutation.py): a mutant's first
  failing example kills it, and shrinking it can take minutes per mutant.

Deadlines are off everywhere: tracing plus relaxation of a drawn program has
a variable cost, and a slow example is not a wrong one.
"""

import os

from hypothesis import HealthCheck, Phase, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("fuzz", max_examples=10_000, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("mutation", parent=settings.get_profile("ci"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Lean recordings (one-sweep gradients) release every answer no VJP reads, however small:
# in production only arrays of 4 kB and more are released, but the suite's programs are
# small, and releasing everything puts every op's `reads=` declaration to the test (a VJP
# reading a released value raises ReleasedValueError).
import ardiff.op  # noqa: E402

ardiff.op.RELEASE_MIN_BYTES = 0
