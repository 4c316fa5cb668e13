"""How long `provspec selftest` takes, per role and profile, against its floor.

For each role and profile the self-test judges, runs the reference plus the faults (all of
them with --full, else an evenly spread sample of --sample per row) through the self-test's
own runner, and prints: wall time, CPU time (this process and its reaped workers), runs per
second, and the ratio of the wall time to the floor. The floor is the work no runner can avoid:
the runs' exchanges at one in-process ASGI round trip each, plus their signatures at one
sign and one verify each, both costs measured in this same run. "in runs" is the CPU time
the runs themselves took (in their workers); the rest of "CPU s" is starting the workers
(an interpreter and the suite's imports each) and the runner's own work. With --together the selected
runs go through one self-test invocation (one pool, as `provspec selftest` does) and the rows
are that invocation's runs, grouped. Not a test: figures vary with the machine and its load.

    python bench/selftest_speed.py [--sample 3 | --full] [--jobs 2] [--role agent] [--together]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conformance.selftest import BUILT_ROLES, RunStats, judged, run_selftest
from mocks.faults import catalogue
from spec.requirement import Role
from spec.schemas import default_store
from wire import jose


@dataclass
class Row:
    role: str
    profile: str
    wall_s: float
    cpu_s: float
    runs: list[RunStats]

    def floor_s(self, round_trip_s: float, signature_s: float) -> float:
        return sum(r.exchanges * round_trip_s + r.signatures * signature_s for r in self.runs)


def round_trip_cost(count: int = 400) -> float:
    """Seconds of one in-process ASGI round trip (httpx over ASGITransport, a JSON answer)."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/health", health)])

    async def loop() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(50):
                await client.get("/health")
            started = time.perf_counter()
            for _ in range(count):
                await client.get("/health")
            return (time.perf_counter() - started) / count

    return asyncio.run(loop())


def signature_cost(count: int = 400) -> float:
    """Seconds of one EdDSA compact-JWS sign plus one verify (the mocks' signing algorithm)."""
    key = jose.generate_key("EdDSA")
    keys = jose.parse_jwks(jose.jwks([key]))
    claims = {"iss": "https://bench", "sub": "usr_1", "aud": "p", "iat": 0, "exp": 1 << 40}
    started = time.perf_counter()
    for _ in range(count):
        token = jose.sign(claims, key, typ="JWT")
        jose.verify_signature(token, keys=keys, algorithms=["EdDSA"], typ="JWT")
    return (time.perf_counter() - started) / count


def cpu_now() -> float:
    """CPU seconds of this process and of every child it has waited for (pool workers)."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def faults_of(role: str, profile: str, sample: int | None) -> list[str]:
    """The row's faults: all (sample None) or `sample` spread evenly over the sorted list."""
    family = default_store().profile(profile).family
    names = sorted(f.name for f in catalogue().values() if f.mock == role and family in f.profiles)
    if sample is None or sample >= len(names):
        return names
    if sample <= 0:
        return []
    step = len(names) / sample
    return [names[int(i * step)] for i in range(sample)]


def timed(
    profiles: Sequence[str], roles: Sequence[Role], faults: Sequence[str], jobs: int
) -> tuple[float, float, list[tuple[str, str, RunStats]]]:
    # A glob that matches nothing still runs the references (an empty list would mean "all").
    only = [glob.escape(name) for name in faults] or ["-no-fault-"]
    cpu, started = cpu_now(), time.perf_counter()
    result = run_selftest(profiles, roles=roles, jobs=jobs, only=only)
    wall = time.perf_counter() - started
    return wall, cpu_now() - cpu, [(role, p, stats) for role, p, _, stats in result.runs]


def main() -> None:
    parser = argparse.ArgumentParser(description="selftest wall and CPU per role, vs its floor")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sample", type=int, default=3, help="faults per row (default 3)")
    mode.add_argument("--full", action="store_true", help="every fault of every row")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--role", action="append", choices=[r.value for r in BUILT_ROLES])
    parser.add_argument("--profile", action="append")
    parser.add_argument(
        "--together", action="store_true", help="one self-test over every row, as the CLI runs"
    )
    args = parser.parse_args()
    sample = None if args.full else args.sample
    roles = [Role(r) for r in args.role] if args.role else list(BUILT_ROLES)
    profiles = args.profile or default_store().profiles()
    kinds = [(role, p) for role in roles for p in profiles if judged(role, p)]
    round_trip_s, signature_s = round_trip_cost(), signature_cost()
    print(f"selftest speed: {os.cpu_count()} CPU(s), --jobs {args.jobs}, ", end="")
    print("every fault" if sample is None else f"{sample} fault(s) per row plus its reference")
    print(
        f"floor costs: in-process ASGI round trip {round_trip_s * 1e6:.0f} µs, "
        f"EdDSA sign+verify {signature_s * 1e6:.0f} µs\n"
    )
    header = f"{'role':<16}{'profile':<16}{'runs':>5}{'wall s':>9}{'CPU s':>9}{'in runs':>8}"
    header += f"{'runs/s':>8}"
    header += f"{'s/run':>7}{'exch/run':>9}{'sig/run':>8}{'floor s':>9}{'x floor':>8}"
    header += f"{'est. all s':>11}"
    print(header, flush=True)
    rows: list[Row] = []
    estimated_all = 0.0

    def show(row: Row) -> None:
        nonlocal estimated_all
        count = len(row.runs)
        floor = row.floor_s(round_trip_s, signature_s)
        every = len(faults_of(row.role, row.profile, None)) + 1
        # All of the row's runs at the rate this row went (pool start included, so high).
        estimate = row.wall_s / count * every if count else 0.0
        estimated_all += estimate
        print(
            f"{row.role:<16}{row.profile:<16}{count:>5}{row.wall_s:>9.1f}{row.cpu_s:>9.1f}"
            f"{sum(r.cpu_s for r in row.runs):>8.1f}"
            f"{count / row.wall_s if row.wall_s else 0:>8.2f}{row.wall_s / count:>7.2f}"
            f"{statistics.mean(r.exchanges for r in row.runs):>9.0f}"
            f"{statistics.mean(r.signatures for r in row.runs):>8.0f}"
            f"{floor:>9.2f}{row.wall_s / floor if floor else 0:>8.1f}{estimate:>11.0f}",
            flush=True,
        )

    total_wall = total_cpu = 0.0
    if args.together:
        wanted = sorted({f for role, p in kinds for f in faults_of(role.value, p, sample)})
        total_wall, total_cpu, runs = timed(profiles, roles, wanted, args.jobs)
        for role, p in kinds:
            mine = [stats for r, q, stats in runs if (r, q) == (role.value, p)]
            # Within one pool a row's share of the wall time is its runs' wall over the width.
            wall = sum(s.wall_s for s in mine) / args.jobs
            rows.append(Row(role.value, p, wall, sum(s.cpu_s for s in mine), mine))
            show(rows[-1])
    else:
        for role, p in kinds:
            wall, cpu, runs = timed([p], [role], faults_of(role.value, p, sample), args.jobs)
            rows.append(Row(role.value, p, wall, cpu, [stats for _, _, stats in runs]))
            show(rows[-1])
            total_wall += wall
            total_cpu += cpu
    floor = sum(row.floor_s(round_trip_s, signature_s) for row in rows)
    run_count = sum(len(row.runs) for row in rows)
    in_runs = sum(r.cpu_s for row in rows for r in row.runs)
    print(
        f"\ntotal: {run_count} runs, wall {total_wall:.1f} s, CPU {total_cpu:.1f} s "
        f"(wall/CPU {total_wall / total_cpu if total_cpu else 0:.2f}; {in_runs:.1f} s of it in "
        f"the runs, the rest starting workers and judging), "
        f"{run_count / total_wall if total_wall else 0:.2f} runs/s, floor {floor:.2f} s "
        f"({total_wall / floor if floor else 0:.0f}x)"
    )
    if sample is not None:
        print(f"every fault at these rates: about {estimated_all:.0f} s wall")


if __name__ == "__main__":
    main()
