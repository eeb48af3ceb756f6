"""Shared plumbing of the perpdex services: configuration, JSON logs, HTTP helpers."""
