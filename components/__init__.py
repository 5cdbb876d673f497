"""Thin Pulumi ComponentResources that turn the bodies rendered by ``slo/`` into resources."""
