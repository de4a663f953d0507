"""The autoscaling policy of service deployments: replicas for the calls in flight in their hosts.

Drivers call the hosts directly (the data path), so Serve's own count of ongoing requests sees only
the calls made through handles; each replica reports its host's calls in flight
(``record_autoscaling_stats``) and this policy sizes the deployment on their sum plus the handle calls:
``ceil(total / target_ongoing_requests)`` replicas, within the deployment's bounds, growing at once and
shrinking only after ``downscale_periods`` decisions in a row asked for fewer (no flapping).

Self-contained (no apipeline imports): Serve's controller unpickles it by value, so the cluster needs
no apipeline to run it.
"""

from __future__ import annotations

import math
from typing import Any


def in_flight_policy(ctx: Any, downscale_periods: int = 20) -> tuple[int, dict[str, Any]]:
    metrics = ctx.aggregated_metrics or {}
    in_hosts = float(sum((metrics.get("in_flight") or {}).values()))
    via_handles = float(ctx.total_num_requests or 0)
    target = float(getattr(ctx.config, "target_ongoing_requests", None) or 2.0)
    low, high = ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas
    want = max(low, min(high, math.ceil((in_hosts + via_handles) / target)))
    current = ctx.target_num_replicas
    state = dict(ctx.policy_state or {})
    if want >= current:
        state["lower"] = 0
        return want, state
    state["lower"] = int(state.get("lower", 0)) + 1
    if state["lower"] >= downscale_periods:
        state["lower"] = 0
        return want, state
    return current, state
