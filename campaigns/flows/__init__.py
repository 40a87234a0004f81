"""Flows: people enter (a real-time segment, an audience, by hand), then steps send, wait,
branch and act on them, run by campaigns.flows.engine. shared/API.md "Flows"."""
