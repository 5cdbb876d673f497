"""SloDashboard: Grafana dashboards (and optionally alert rules) for every SLO.

Delivered through the Grafana API (pulumiverse-grafana; the token stays a Pulumi secret) or as
ConfigMaps that the Grafana sidecar loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_grafana as grafana

from delivery.stack import GrafanaConfig, ThanosConfig
from slo import bodies, dashboards, grafana_alerts
from slo.fleet import split
from slo.model import ResolvedSlo
from slo.rules import by_service

FOLDER_ANNOTATION = "grafana_folder"


@dataclass(frozen=True)
class SloDashboardArgs:
    slos: list[ResolvedSlo]
    grafana: GrafanaConfig
    token: pulumi.Input[str] | None = None
    # per service and SLO, how the stack's canary judge weighs evidence (a dashboard panel)
    statistics: dict[str, dict[str, dashboards.CanaryStatistic]] = field(default_factory=dict)
    placement: str = "local"
    # with placement thanos: where the fleet SLOs' dashboards read (and whether this stack has them)
    thanos: ThanosConfig = field(default_factory=ThanosConfig)


def rendered(args: SloDashboardArgs) -> dict[str, dict[str, Any]]:
    """Every dashboard by uid (``slo.bodies.dashboards``)."""
    fleet = args.thanos.datasource_uid if args.thanos.rules != "none" else None
    return bodies.dashboards(args.slos, args.grafana.datasource_uid, args.placement,
                             args.statistics, fleet)


class SloDashboard(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: SloDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("slo-canary:observability:SloDashboard", name, None, opts)
        cfg = args.grafana
        boards = rendered(args)
        self.uids = sorted(boards)
        self.urls: list[str] = []
        self.config_maps: list[k8s.core.v1.ConfigMap] = []
        if cfg.delivery == "api":
            self._through_api(name, args, boards)
        elif cfg.delivery == "configmap":
            for uid, board in sorted(boards.items()):
                cm = k8s.core.v1.ConfigMap(
                    f"{name}-{uid}",
                    metadata={
                        # uids may hold '_', object names may not; '.' keeps them distinct
                        "name": f"dashboard-{uid.replace('_', '.')}",
                        "namespace": cfg.namespace,
                        "labels": dict(cfg.sidecar_labels),
                        "annotations": {FOLDER_ANNOTATION: cfg.folder},
                    },
                    data={f"{uid}.json": json.dumps(board, sort_keys=True, indent=2)},
                    opts=pulumi.ResourceOptions(parent=self),
                )
                self.config_maps.append(cm)
        self.register_outputs({"uids": self.uids, "urls": self.urls})

    def _through_api(
        self, name: str, args: SloDashboardArgs, boards: dict[str, dict[str, Any]]
    ) -> None:
        cfg = args.grafana
        if args.token is None:
            raise ValueError("delivery: api needs a Grafana token")
        provider = grafana.Provider(
            f"{name}-grafana",
            url=cfg.url,
            auth=pulumi.Output.secret(args.token),
            opts=pulumi.ResourceOptions(parent=self),
        )
        opts = pulumi.ResourceOptions(parent=self, provider=provider)
        folder = grafana.oss.Folder(
            f"{name}-folder",
            title=cfg.folder,
            uid=dashboards.dashboard_uid(f"folder-{cfg.folder}"),
            opts=opts,
        )
        for uid, board in sorted(boards.items()):
            grafana.oss.Dashboard(
                f"{name}-{uid}",
                config_json=json.dumps(board, sort_keys=True),
                folder=folder.uid,
                overwrite=True,
                opts=opts,
            )
        self.urls = [f"{cfg.url.rstrip('/')}/d/{uid}" for uid in sorted(boards) if cfg.url]
        if cfg.alert_rules:
            # a fleet SLO split onto the Thanos Ruler alerts there, not from this Prometheus
            local = [s for s in args.slos if not split(s, args.placement)]
            for service, slos in sorted(by_service(local).items()):
                group = grafana_alerts.rule_group(service, slos, cfg.datasource_uid)
                grafana.alerting.RuleGroup(
                    f"{name}-{service}-alerts", folder_uid=folder.uid, opts=opts, **group
                )
