"""A domain's current traffic against its limits, and a summary of all traffic."""

from __future__ import annotations

from dataclasses import asdict

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from api import examples
from api.limits import TOTAL
from api.schemas import DomainStatsSchema, SummarySchema
from api.series import domain_name
from api.services import Services, services
from core.model import METRICS, PERIODS
from storage import Limits

blp = Blueprint("traffic", __name__, description="Rates, limits and summaries.")

#: Rate name -> the limit it is held against.
RATE_LIMITS = {
    "rx_bitrate": "max_rx_bitrate",
    "tx_bitrate": "max_tx_bitrate",
    "clicks_per_s": "max_clicks_per_s",
}


def exceeded(rates: dict[str, float], limits: Limits) -> dict[str, bool]:
    """Which rates are strictly above a set (non-zero) limit."""
    caps = asdict(limits)
    return {rate: 0 < caps[cap] < rates[rate] for rate, cap in RATE_LIMITS.items()}


def _domain_rates(svc: Services, name: str) -> tuple[dict[str, float], dict] | None:
    stats = svc.storage.domain_stats(name)
    if stats is None:
        return None
    rates = {
        "rx_bitrate": stats.rx_bitrate,
        "tx_bitrate": stats.tx_bitrate,
        "clicks_per_s": stats.clicks_per_s,
    }
    return rates, {
        "totals": stats.totals,
        "peaks": {"rx_bitrate": stats.peak_rx_bitrate, "tx_bitrate": stats.peak_tx_bitrate},
    }


@blp.route("/domains/<domain:domain>")
class DomainTraffic(MethodView):
    @blp.response(200, DomainStatsSchema, example=examples.DOMAIN_STATS)
    def get(self, domain: str) -> dict:
        """A domain's totals by period, rates (last 10 s), peaks (last hour) and limits."""
        svc = services()
        name = domain_name(domain)
        all_limits = svc.storage.limits  # a round trip on Redis: read once
        limits = all_limits.get(name, Limits())
        found = _domain_rates(svc, name)
        if found is None:
            if name not in all_limits:
                abort(404, message=f"no traffic seen for {name} and no limits set")
            zero = dict.fromkeys(METRICS, 0)
            rates = dict.fromkeys(RATE_LIMITS, 0.0)
            found = (
                rates,
                {
                    "totals": {p.name: zero for p in PERIODS},
                    "peaks": {"rx_bitrate": 0.0, "tx_bitrate": 0.0},
                },
            )
        rates, rest = found
        return {
            "status": "ok",
            "domain": name,
            **rest,
            "rates": rates,
            "limits": asdict(limits),
            "exceeded": exceeded(rates, limits),
        }


@blp.route("/summary")
class Summary(MethodView):
    @blp.response(200, SummarySchema, example=examples.SUMMARY)
    def get(self) -> dict:
        """All traffic now: totals, rates, top domains, active domains, limits exceeded."""
        svc = services()
        storage = svc.storage
        totals = {}
        for period in PERIODS:
            summary = storage.summary(period.seconds)
            totals[period.name] = {
                "clicks": summary.clicks,
                "bytes_in": summary.bytes_in,
                "bytes_out": summary.bytes_out,
            }
        rx, tx, clicks = storage.total_rates()
        rates = {"rx_bitrate": rx, "tx_bitrate": tx, "clicks_per_s": clicks}
        over = []
        for name, limits in sorted(storage.limits.items()):
            if name == TOTAL:
                current = rates
            else:
                found = _domain_rates(svc, name)
                if found is None:
                    continue
                current = found[0]
            caps = asdict(limits)
            for rate, is_over in exceeded(current, limits).items():
                if is_over:
                    cap = RATE_LIMITS[rate]
                    over.append(
                        {"domain": name, "limit": cap, "value": current[rate], "max": caps[cap]}
                    )
        top = {by: dict(storage.top(60, 10, by).items) for by in METRICS}
        return {
            "status": "ok",
            "totals": totals,
            "rates": rates,
            "active_domains": storage.summary(60).domains,
            "top": top,
            "exceeded": over,
        }
