"""The canary renderer: stack configuration and the Kubernetes bodies of SLO-gated canaries.

Pure Python, no Pulumi. It builds on the SLO engine in ``slo/``; ``slo/`` never imports it.
"""
