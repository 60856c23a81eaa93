"""Every case of audiocore.bench.cases_* under pytest-benchmark, ours and peers grouped per operation.

Run: ``pytest bench/ --benchmark-group-by=group``; ``audiocore bench`` times the same cases
with interleaved rounds and prints speedups.
"""

from __future__ import annotations

import pytest

from audiocore.bench.harness import all_cases

_PARAMS = []
for _case in all_cases():
    for _impl in [_case.ours, *_case.peers]:
        _PARAMS.append(pytest.param(_case, _impl, id=f"{_case.op} | {_impl.name}"))


@pytest.mark.parametrize("case, impl", _PARAMS)
def test_case(benchmark, case, impl) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = case.op
    benchmark.extra_info["ours"] = impl is case.ours
    if case.check is not None:
        case.check()
    benchmark(impl.fn, *impl.args)
