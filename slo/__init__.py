"""SLO engine: typed catalogue in, Prometheus rules, promtool tests and canary gates out.

Pure Python with no Pulumi import, so it runs from the command line without a cluster.
"""
