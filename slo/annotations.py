"""The words of every SLO alert, for Prometheus rules and Grafana alert rules alike."""

from __future__ import annotations

from slo import conventions as names
from slo.model import ResolvedSlo, number


def literal(text: str) -> str:
    """``text`` as plain text inside an alert template: a ``{{`` that a selector or query holds
    (a label value) printed by an action instead of opening one (``}}`` alone is text to Go)."""
    return text.replace("{{", '{{ "{{" }}')


def alert_text(slo: ResolvedSlo, alert: str, burning: str = "") -> dict[str, str]:
    """``summary``, ``description`` and (when the catalogue has one) ``runbook_url``; for the
    burn-rate alerts (``alert`` is the severity) the catalogue's annotations over them.

    ``burning`` says how fast, for the burn-rate alerts (e.g. "at one of: 14.4x over 1h/5m").
    """
    service, name = slo.service.name, slo.slo.name
    if alert == names.ALERT_ABSENT:
        text = {
            "summary": f"{service} reports no metrics for its {name} SLO",
            "description": (
                f"No series match {literal(slo.events.total_selector.render())} for "
                f"{slo.alerting.absent_for}: the {name} SLO of {service} cannot be judged. Check "
                "the scrape target and the service selector in the SLO catalogue."
            ),
        }
    else:
        text = {
            "summary": f"{service} is burning its {name} error budget too fast",
            "description": (
                f"The {name} SLO of {service} ({number(slo.objective * 100)}% over "
                f"{slo.period}) is burning its error budget {burning}."
            ),
        }
    if slo.alerting.runbook_url:
        text["runbook_url"] = slo.alerting.runbook_url
    if alert != names.ALERT_ABSENT:
        own = {"page": slo.alerting.page_annotations, "ticket": slo.alerting.ticket_annotations}
        text.update({**slo.alerting.annotations, **own[alert]})
    return text
